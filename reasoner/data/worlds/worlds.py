"""The three worlds: `count` (shapes), `digits` (7-segment numbers) and `bars` (bar charts), levels 1-3.

Each `build_<task>(rng, level) -> Draft` draws one scene, asks one question about it and writes the answer,
a complete caption and a short reasoning trace, all derived from the scene it drew.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from reasoner.data.worlds.base import (
    CELL,
    COLOURS,
    GRID_GREY,
    SEGMENTS,
    SHAPES,
    WHITE,
    Draft,
    count_aloud,
    multiple_choice,
    number_choices,
    plural,
)

# -------------------------------------------------------------------------------------------------- count


@dataclass(frozen=True)
class CountLevel:
    """A grid x grid image, one shape (or nothing) per 28-px cell."""

    grid: int
    colours: tuple[str, ...]
    max_count: int  # of the asked-about colour, counted from 1
    size: tuple[int, int]  # shape side in px, min and max
    kinds: tuple[str, ...]  # question kinds, drawn uniformly (repeat one to weight it)
    number_choices: float = 0.5  # chance that a count is asked as multiple choice over four numbers
    fill: float = 0.5  # chance that a cell left over holds a distractor
    centred: bool = False  # shapes centred in their 28-px token cell (else jittered inside it)


# Level 1 asks only "how many shapes" (1-9) of 3x3 scenes, free-form: each of the 9 visual tokens is then simply
# ink or blank, and a tiny model need not also learn to find a number among lettered options. Up to 9, not 4: a
# 2x2 grid is learned completely by the first SFT stage, leaving the RL stages nothing to improve (README).
_COUNT_LEVELS = {
    1: CountLevel(3, ("red", "blue", "green"), 9, (18, 24), ("total",), number_choices=0.0, centred=True),
    2: CountLevel(4, ("red", "blue", "green"), 6, (16, 22), ("total", "count", "count", "most")),
    3: CountLevel(6, ("red", "blue", "green", "orange"), 9, (12, 20), ("count", "shape", "most")),
}


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, x: int, y: int, size: int, rgb: tuple) -> None:
    """A filled square, circle or upward triangle in the `size`-px box whose top-left corner is (x, y)."""
    box = (x, y, x + size - 1, y + size - 1)
    if shape == "square":
        draw.rectangle(box, fill=rgb)
    elif shape == "circle":
        draw.ellipse(box, fill=rgb)
    else:
        draw.polygon([(x + (size - 1) // 2, y), (x + size - 1, y + size - 1), (x, y + size - 1)], fill=rgb)


def _count_scene(
    rng: random.Random, cfg: CountLevel, target: str, k: int, *, distractors: bool = True
) -> list[dict[str, Any]]:
    """`k` shapes of colour `target` plus distractors of other colours, one per grid cell, jittered."""
    cells = rng.sample(range(cfg.grid**2), cfg.grid**2)
    others = [c for c in cfg.colours if c != target]
    fill = cfg.fill if distractors else 0.0
    n_other = sum(rng.random() < fill for _ in range(len(cells) - k))
    colours = [target] * k + [rng.choice(others) for _ in range(n_other)]
    shapes = []
    for cell, colour in zip(cells[: len(colours)], colours, strict=True):
        size = rng.randint(*cfg.size)
        slack = CELL - size - 2  # keep >= 2 px between shapes in neighbouring cells
        if cfg.centred:
            dx = dy = slack // 2
        else:
            dx, dy = rng.randint(0, slack), rng.randint(0, slack)
        row, col = divmod(cell, cfg.grid)
        shapes.append({"colour": colour, "shape": rng.choice(SHAPES), "row": row + 1, "col": col + 1,
                       "x": col * CELL + 1 + dx, "y": row * CELL + 1 + dy, "size": size})  # fmt: skip
    return sorted(shapes, key=lambda s: (s["row"], s["col"]))


def render_shapes(grid: int, shapes: list[dict[str, Any]]) -> Image.Image:
    """A white grid x grid-cell image with each shape (`colour`, `shape`, `x`, `y`, `size`) drawn on it."""
    image = Image.new("RGB", (grid * CELL, grid * CELL), WHITE)
    draw = ImageDraw.Draw(image)
    for s in shapes:
        draw_shape(draw, s["shape"], s["x"], s["y"], s["size"], COLOURS[s["colour"]])
    return image


def build_count(rng: random.Random, level: int) -> Draft:
    """Count all shapes, the shapes of one colour or of one kind, or name the most frequent colour."""
    cfg = _COUNT_LEVELS[level]
    kind = rng.choice(cfg.kinds)
    target = rng.choice(cfg.colours)
    shapes = _count_scene(rng, cfg, target, rng.randint(1, cfg.max_count), distractors=kind != "total")
    if kind == "most":
        shapes = _unique_majority(shapes, cfg.colours)
    caption = f"{len(shapes)} shapes on white, by (row, column): " + ", ".join(
        f"{s['colour']} {s['shape']} ({s['row']},{s['col']})" for s in shapes
    )
    draft = Draft(
        render_shapes(cfg.grid, shapes), kind, "", "", caption, "", {"grid": cfg.grid, "shapes": shapes}
    )
    if kind == "most":
        counts = {c: sum(s["colour"] == c for s in shapes) for c in cfg.colours}
        draft.answer = max(counts, key=counts.get)
        draft.question = "Which color has the most shapes?"
        listing = ", ".join(f"{c} {n}" for c, n in counts.items())
        draft.reasoning = f"{listing}. Most shapes are {draft.answer}."
        return multiple_choice(draft, list(cfg.colours))
    if kind == "shape":
        present = sorted({s["shape"] for s in shapes})  # ask about a shape that is there
        word = rng.choice(present)
        n = sum(s["shape"] == word for s in shapes)
        things, noun = f"{word}s", plural(n, word)
    elif kind == "count":
        n = sum(s["colour"] == target for s in shapes)
        things, noun = f"{target} shapes", f"{target} {plural(n, 'shape')}"
    else:
        n, things, noun = len(shapes), "shapes", plural(len(shapes), "shape")
    draft.question = f"How many {things} are there?"
    draft.answer = str(n)
    draft.reasoning = f"I count the {things}: {count_aloud(n, noun)}."
    if rng.random() < cfg.number_choices:
        return multiple_choice(draft, number_choices(rng, n, 0, cfg.grid**2))
    return draft


def _unique_majority(shapes: list[dict[str, Any]], colours: Sequence[str]) -> list[dict[str, Any]]:
    """Drop shapes of tied colours until one colour has strictly the most shapes."""
    while True:
        counts = {c: sum(s["colour"] == c for s in shapes) for c in colours}
        top = max(counts.values())
        tied = [c for c, n in counts.items() if n == top]
        if len(tied) == 1:
            return shapes
        drop = next(i for i in range(len(shapes) - 1, -1, -1) if shapes[i]["colour"] == tied[-1])
        shapes = shapes[:drop] + shapes[drop + 1 :]


# ------------------------------------------------------------------------------------------------- digits

_INKS = ("black", "blue", "purple", "green")  # dark inks; red is kept for "the red numbers" at level 3


@dataclass(frozen=True)
class DigitLevel:
    """Digits in a cols x rows layout of 28x56-px slots (two visual tokens per digit)."""

    cols: int
    rows: int
    count: int  # digits drawn
    add_values: tuple[int, int]  # range of the digits in sums
    kinds: tuple[str, ...]
    red: int = 0  # digits inked red, for "the sum of the red numbers"
    number_choices: float = 0.5  # chance that a sum is asked as multiple choice over four numbers


# Level 1 reads and compares (perception first); sums and differences start at level 2.
_DIGIT_LEVELS = {
    1: DigitLevel(2, 1, 2, (0, 9), ("read", "read", "larger"), number_choices=0.0),
    2: DigitLevel(4, 1, 2, (0, 9), ("add", "diff", "larger")),
    3: DigitLevel(4, 2, 3, (0, 9), ("add", "larger", "add_red"), red=2),
}
_GLYPH_W, _GLYPH_H, _STROKE, _MARGIN = CELL, 2 * CELL, 5, 3


def _segment_boxes(x: int, y: int) -> dict[str, tuple[int, int, int, int]]:
    """Pixel boxes of the 7 segments of a digit whose 28x56 slot starts at (x, y)."""
    left, right = x + _MARGIN, x + _GLYPH_W - _MARGIN - 1
    top, bottom = y + _MARGIN, y + _GLYPH_H - _MARGIN - 1
    mid = y + _GLYPH_H // 2
    half = _STROKE // 2
    return {
        "a": (left, top, right, top + _STROKE - 1),
        "d": (left, bottom - _STROKE + 1, right, bottom),
        "g": (left, mid - half, right, mid - half + _STROKE - 1),
        "f": (left, top, left + _STROKE - 1, mid),
        "b": (right - _STROKE + 1, top, right, mid),
        "e": (left, mid, left + _STROKE - 1, bottom),
        "c": (right - _STROKE + 1, mid, right, bottom),
    }


def draw_digit(draw: ImageDraw.ImageDraw, value: int, x: int, y: int, rgb: tuple) -> None:
    """Draw a thick 7-segment digit in the 28x56 slot at (x, y) (two visual tokens, top and bottom)."""
    boxes = _segment_boxes(x, y)
    for segment in SEGMENTS[value]:
        draw.rectangle(boxes[segment], fill=rgb)


def _digit_scene(rng: random.Random, cfg: DigitLevel, kind: str) -> tuple[Image.Image, list[dict[str, Any]]]:
    """Digits in distinct slots (left to right, top to bottom); distinct values when they are compared."""
    slots = sorted(rng.sample(range(cfg.cols * cfg.rows), cfg.count))
    low, high = cfg.add_values if kind.startswith("add") else (0, 9)
    if kind == "larger":
        values = rng.sample(range(low, high + 1), cfg.count)
    else:
        values = [rng.randint(low, high) for _ in slots]
    red = set(rng.sample(range(cfg.count), cfg.red))
    inks = ["red" if i in red else rng.choice(_INKS) for i in range(cfg.count)]
    image = Image.new("RGB", (cfg.cols * _GLYPH_W, cfg.rows * _GLYPH_H), WHITE)
    draw = ImageDraw.Draw(image)
    digits = []
    for slot, value, ink in zip(slots, values, inks, strict=True):
        row, col = divmod(slot, cfg.cols)
        draw_digit(draw, value, col * _GLYPH_W, row * _GLYPH_H, COLOURS[ink])
        digits.append({"value": value, "colour": ink, "slot": slot})
    return image, digits


def build_digits(rng: random.Random, level: int) -> Draft:
    """Read, add, subtract or compare 7-segment numbers."""
    cfg = _DIGIT_LEVELS[level]
    kind = rng.choice(cfg.kinds)
    image, digits = _digit_scene(rng, cfg, kind)
    values = [d["value"] for d in digits]
    caption = f"{len(digits)} seven-segment numbers on white, left to right, top to bottom: " + ", ".join(
        f"{d['value']} ({d['colour']})" for d in digits
    )
    scene = {"slots": [cfg.cols, cfg.rows], "digits": digits}
    numbers = ", ".join(map(str, values[:-1])) + f" and {values[-1]}"

    def draft(question: str, answer: int, reasoning: str) -> Draft:
        return Draft(image, kind, question, str(answer), caption, reasoning, scene)

    if kind == "read":
        side = rng.choice(("left", "right"))
        value = values[0] if side == "left" else values[-1]
        return draft(f"What is the {side} number?", value, f"The {side} number is {value}.")
    if kind == "larger":  # free-form: offered the numbers as options, a model could pick the larger unseen
        word = "larger" if len(values) == 2 else "largest"
        best = max(values)
        return draft(f"What is the {word} number?", best, f"The numbers are {numbers}. The {word} is {best}.")
    if kind == "diff":
        a, b = max(values), min(values)
        return draft("What is the larger number minus the smaller?", a - b,
                     f"The numbers are {numbers}. {a} - {b} = {a - b}.")  # fmt: skip
    if kind == "add_red":
        chosen = [d["value"] for d in digits if d["colour"] == "red"]
        question = "What is the sum of the red numbers?"
        prefix = f"The red numbers are {' and '.join(map(str, chosen))}."
    else:
        chosen, question, prefix = values, "What is the sum of the numbers?", f"The numbers are {numbers}."
    total = sum(chosen)
    result = draft(question, total, f"{prefix} {' + '.join(map(str, chosen))} = {total}.")
    if rng.random() < cfg.number_choices:
        return multiple_choice(result, number_choices(rng, total, 0, len(chosen) * cfg.add_values[1]))
    return result


# --------------------------------------------------------------------------------------------------- bars


@dataclass(frozen=True)
class BarLevel:
    """A square chart of `bars` 28-px columns; values are whole units of `unit` px from the bottom edge."""

    bars: int
    unit: int
    colours: tuple[str, ...]
    kinds: tuple[str, ...]

    @property
    def max_value(self) -> int:
        return self.bars * CELL // self.unit


_BAR_LEVELS = {
    1: BarLevel(3, CELL, ("red", "blue", "green", "orange", "purple"), ("tallest", "value")),
    2: BarLevel(4, CELL // 2, ("red", "blue", "green", "orange"), ("tallest", "shortest", "value")),
    3: BarLevel(
        6, CELL // 2, ("red", "blue", "green", "orange", "purple", "black"), ("tallest", "value", "sum")
    ),
}
_BAR_WIDTHS = (16, 18, 20, 22, 24)  # all bars of a chart share one width, centred in their 28-px column


def _bar_chart(
    rng: random.Random, cfg: BarLevel, colours: list[str], values: list[int]
) -> tuple[Image.Image, int]:
    """Render the chart; returns the image and the bar width (shared by all bars, centred in their column)."""
    size = cfg.bars * CELL
    image = Image.new("RGB", (size, size), WHITE)
    draw = ImageDraw.Draw(image)
    if cfg.unit < CELL:  # gridlines make half-cell units readable
        for v in range(1, cfg.max_value + 1):
            draw.line([(0, size - v * cfg.unit), (size - 1, size - v * cfg.unit)], fill=GRID_GREY)
    width = rng.choice(_BAR_WIDTHS)
    for i, (colour, value) in enumerate(zip(colours, values, strict=True)):
        x = i * CELL + (CELL - width) // 2
        draw.rectangle((x, size - value * cfg.unit, x + width - 1, size - 1), fill=COLOURS[colour])
    return image, width


def build_bars(rng: random.Random, level: int) -> Draft:
    """Read a bar chart: a bar's value, the tallest / shortest bar, or the sum of two bars."""
    cfg = _BAR_LEVELS[level]
    kind = rng.choice(cfg.kinds)
    colours = rng.sample(cfg.colours, cfg.bars)
    if kind in ("tallest", "shortest"):  # the extreme bar must be unique
        values = rng.sample(range(1, cfg.max_value + 1), cfg.bars)
    else:
        values = [rng.randint(1, cfg.max_value) for _ in colours]
    image, width = _bar_chart(rng, cfg, colours, values)
    listing = ", ".join(f"{c} {v}" for c, v in zip(colours, values, strict=True))
    caption = f"A bar chart with {cfg.bars} bars, left to right: {listing}"
    if cfg.unit < CELL:
        caption += f"; grey gridlines mark every unit from 1 to {cfg.max_value}"
    scene = {
        "unit": cfg.unit,
        "width": width,
        "bars": [{"colour": c, "value": v} for c, v in zip(colours, values, strict=True)],
    }

    def draft(question: str, answer: object, reasoning: str) -> Draft:
        return Draft(image, kind, question, str(answer), caption, reasoning, scene)

    if kind in ("tallest", "shortest"):
        best = colours[values.index(max(values) if kind == "tallest" else min(values))]
        return multiple_choice(
            draft(f"Which bar is the {kind}?", best, f"{listing}. The {kind} is {best}."), colours
        )
    if kind == "sum":
        i, j = sorted(rng.sample(range(cfg.bars), 2))
        a, b = values[i], values[j]
        return draft(f"What is the {colours[i]} bar plus the {colours[j]} bar?", a + b,
                     f"{colours[i]} {a}, {colours[j]} {b}. {a} + {b} = {a + b}.")  # fmt: skip
    i = rng.randrange(cfg.bars)
    return draft(
        f"What is the value of the {colours[i]} bar?", values[i], f"The {colours[i]} bar reaches {values[i]}."
    )
