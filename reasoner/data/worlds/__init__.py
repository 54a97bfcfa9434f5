"""Synthetic visual-math worlds: small rendered images with program-derived answers, captions and reasoning.

Built so that a tiny, randomly initialised Qwen2.5-VL (one visual token per 28x28 pixel cell) learns them in
minutes on a CPU: at level 1 every object is a large, solid, high-contrast shape, bar or thick 7-segment digit
aligned to the 28-px token grid, in images of 4-9 visual tokens, and only questions whose answer needs one
perceptual skill (count the inked cells, read a digit, find the tallest column). Levels 2-3 add objects,
colours, jitter, distractors, arithmetic and number options in bigger images (8-36 tokens).

Worlds (`TASKS`), per level: image size / visual tokens / question kinds
- `count`:  84x84/9 "how many shapes" (1-9) | 112x112/16 + "how many red", "which color most" | 168x168/36 + shapes
- `digits`: 56x56/4 read, larger | 112x56/8 add, difference, larger | 112x112/16 three digits, sum of red
- `bars`:   84x84/9 tallest, value | 112x112/16 + shortest, half-cell units | 168x168/36 six bars, sum

Every problem has an integer answer or is multiple choice (answer = choice text; the reasoning trace ends with
"That is option B."). No question gives its answer away in its text: options never let a model that ignores the
image beat chance (comparisons are free-form, since offering the two numbers would; tested). Everything is
deterministic given (task, level, seed, split); train and eval sets are disjoint parts of each world
(`split_of`), whatever their seeds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence

from reasoner.data.records.problem import ImageRef, Problem
from reasoner.data.worlds.base import CELL, COLOURS, LEVELS, Draft
from reasoner.data.worlds.worlds import build_bars, build_count, build_digits
from reasoner.errors import ReasonerError

__all__ = [
    "CELL",
    "COLOURS",
    "LEVELS",
    "TASKS",
    "generate",
    "generate_mixed",
    "problem_key",
    "split_of",
]

TASKS: dict[str, Callable[[random.Random, int], Draft]] = {
    "count": build_count,
    "digits": build_digits,
    "bars": build_bars,
}


SPLITS = ("train", "eval")
EVAL_SHARE = 0.2  # fraction of each world's problem space that only evaluation sets draw from


def problem_key(problem: Problem) -> str:
    """Identity of a problem for splitting and deduplication: image bytes + question + choices."""
    digest = hashlib.sha256()
    for image in problem.images:
        digest.update(image.sha256().encode())
    digest.update(problem.question.encode())
    digest.update(repr(problem.choices).encode())
    return digest.hexdigest()


def split_of(problem: Problem) -> str:
    """`train` or `eval`: a fixed partition of the problem space by `problem_key`, independent of any seed."""
    return "eval" if int(problem_key(problem)[:8], 16) < EVAL_SHARE * 16**8 else "train"


def _to_problem(draft: Draft, task: str, level: int, seed: int, index: int) -> Problem:
    metadata = {
        "source": "synthetic",
        "task": task,
        "level": level,
        "seed": seed,
        "kind": draft.kind,
        "question_type": "multi_choice" if draft.choices else "free_form",
        "img_width": draft.image.width,
        "img_height": draft.image.height,
        "scene": draft.scene,
    }
    return Problem(
        id=f"{task}-l{level}-s{seed}-{index}",
        question=draft.question,
        answer=draft.answer,
        answer_type=draft.answer_type,
        choices=draft.choices,
        images=[ImageRef.from_image(draft.image)],
        metadata=metadata,
        caption=draft.caption + ".",
        reasoning=draft.reasoning,
    )


def _check(task: str, level: int, n: int, split: str | None) -> None:
    if task not in TASKS:
        raise ReasonerError(f"unknown synthetic task {task!r}; allowed: {', '.join(TASKS)}")
    if level not in LEVELS:
        raise ReasonerError(
            f"synthetic level {level!r} is not allowed; allowed: {', '.join(map(str, LEVELS))}"
        )
    if split is not None and split not in SPLITS:
        raise ReasonerError(f"synthetic split {split!r} is not allowed; allowed: {', '.join(SPLITS)}")
    if n < 0:
        raise ReasonerError(f"number of problems must be >= 0, got {n}")


def generate(
    task: str, n: int, level: int = 1, seed: int = 0, *, split: str | None = "train"
) -> list[Problem]:
    """`n` problems of one task drawn i.i.d. from the level's world; deterministic in (task, level, seed, split).

    Train and eval sets come from disjoint parts of the problem space (`split_of`), so any training set is
    disjoint from any evaluation set whatever their seeds. Within a set a problem may repeat where a level's
    space is small (level-1 `count` has 81 one-shape scenes): skipping repeats would skew the answers.
    `split=None` draws from the whole space.
    """
    _check(task, level, n, split)
    problems: list[Problem] = []
    index = 0
    while len(problems) < n:
        if index > 100 * n + 1000:  # a world whose space hardly reaches this split
            raise ReasonerError(f"synthetic task {task!r} level {level}: too few {split} problems for n={n}")
        rng = random.Random(f"{task}:{level}:{seed}:{index}")
        problem = _to_problem(TASKS[task](rng, level), task, level, seed, index)
        index += 1
        if split is None or split_of(problem) == split:
            problem.metadata["split"] = split_of(problem)
            problems.append(problem)
    return problems


def generate_mixed(
    tasks: Sequence[str], n: int, level: int = 1, seed: int = 0, *, split: str | None = "train"
) -> list[Problem]:
    """`n` problems spread evenly over `tasks` (the first tasks get the remainder), shuffled by `seed`."""
    unique = list(dict.fromkeys(tasks))
    if not unique:
        raise ReasonerError(f"no synthetic task given; allowed: {', '.join(TASKS)}")
    problems: list[Problem] = []
    for i, task in enumerate(unique):
        share = n // len(unique) + (1 if i < n % len(unique) else 0)
        problems += generate(task, share, level, seed, split=split)
    random.Random(f"mix:{seed}").shuffle(problems)
    return problems
