"""A problems file (`.jsonl` / `.parquet`, e.g. from `reasoner data import`): the one scorer, broken down by its
metadata (`task`, `level`, `question_type`, `answer_type`).

A set whose every problem names its perception `family` (the compositional world, an imported ARO or What'sUp
file) is scored per family beside chance (`benchmarks.perception`) whatever its source; a set whose every problem
names its question `kind` (the synthetic worlds) also gets its `prior`: the best constant answer per kind, what a
model scores that ignores the image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasoner.benchmarks import perception
from reasoner.benchmarks.base import Benchmark
from reasoner.benchmarks.metrics import answer_prior, percent
from reasoner.data.records.files import read_problems
from reasoner.data.records.problem import Problem
from reasoner.data.worlds.perception import is_perception
from reasoner.prompts import LETTERS


def prior_of(problems: Sequence[Problem]) -> dict[str, Any]:
    """`{"prior_overall", "prior"}` (`metrics.answer_prior` per task, in percent) for a set whose every problem
    names its question `kind` (the synthetic worlds); empty for any other set."""
    if not all("kind" in p.metadata for p in problems):
        return {}
    rows = [(str(p.metadata.get("task", "")), str(p.metadata["kind"]), constant_answer(p)) for p in problems]
    tallies = answer_prior(rows)
    overall = percent(sum(t.correct for t in tallies.values()), len(problems))
    return {"prior_overall": overall, "prior": {task: t.accuracy for task, t in tallies.items()}}


def constant_answer(problem: Problem) -> str:
    """What an answer given to every question must be to score `problem`: its option letter, or its answer."""
    if problem.choices and problem.answer in problem.choices:
        return LETTERS[problem.choices.index(problem.answer)]
    return problem.answer


class Problems(Benchmark):
    name = "file"
    summary = "a problems file (.jsonl or .parquet), e.g. written by `reasoner data import`"
    needs_path = True

    def load_path(self, path: str | Path | None, *, images: bool = True) -> list[Problem]:
        return read_problems(path)

    def recognizes(self, path: Path) -> bool:
        return path.is_file()

    def score(
        self, problems: Sequence[Problem], responses: Mapping[str, str | None], *, name: str,
        where: str = "responses", **options: Any,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if is_perception(problems):
            return perception.score_responses(problems, responses, benchmark=name, where=where)
        scores, items = super().score(problems, responses, name=name, where=where, **options)
        return {**scores, **prior_of(problems)}, items


PROBLEMS = Problems()
