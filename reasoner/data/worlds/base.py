"""Shared pieces of the synthetic worlds: palette, the token grid, the `Draft` a world builds, trace helpers."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from PIL import Image

from reasoner.prompts import LETTERS

CELL = 28  # pixels per visual token of Qwen2.5-VL (patch 14, spatial merge 2)
LEVELS = (1, 2, 3)
WHITE = (255, 255, 255)
GRID_GREY = (210, 210, 210)
COLOURS = {
    "red": (220, 30, 30),
    "blue": (30, 70, 230),
    "green": (20, 160, 50),
    "orange": (250, 140, 0),
    "purple": (140, 40, 180),
    "black": (0, 0, 0),
}
SHAPES = ("square", "circle", "triangle")
# 7-segment digits: a top, b top-right, c bottom-right, d bottom, e bottom-left, f top-left, g middle.
SEGMENTS = {
    0: "abcdef", 1: "bc", 2: "abdeg", 3: "abcdg", 4: "bcfg", 5: "acdfg", 6: "acdefg", 7: "abc", 8: "abcdefg",
    9: "abcdfg",
}  # fmt: skip


@dataclass
class Draft:
    """What one task builder produces before it becomes a `Problem`."""

    image: Image.Image
    kind: str
    question: str
    answer: str
    caption: str
    reasoning: str
    scene: dict[str, Any]
    choices: list[str] | None = None
    answer_type: str = "integer"


def multiple_choice(draft: Draft, choices: list[str]) -> Draft:
    """Turn a draft into multiple choice: answer stays the choice text; the trace ends naming the letter."""
    draft.choices = choices
    draft.answer_type = "text"
    draft.reasoning += f" That is option {LETTERS[choices.index(draft.answer)]}."
    return draft


def number_choices(rng: random.Random, answer: int, low: int, high: int) -> list[str]:
    """Four consecutive numbers within [low, high] that contain `answer` at a random position."""
    start = rng.randint(max(low, answer - 3), min(answer, max(low, high - 3)))
    return [str(v) for v in range(start, start + 4)]


def count_aloud(count: int, noun: str) -> str:
    """'1, 2, 3. There are 3 red shapes': the enumeration a counting trace spells out."""
    return (
        ", ".join(str(i) for i in range(1, count + 1))
        + f". There {'is' if count == 1 else 'are'} {count} {noun}"
    )


def plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"
