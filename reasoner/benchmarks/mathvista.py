"""MathVista (testmini): its released files, the official query, and exact, GPT-free scoring.

The official harness (lupantech/MathVista `evaluation/`) asks GPT-4 to extract the answer from a response, then
normalises it and compares strings. Here the extraction is rule-based: the response goes through
`rewards.score_batch` (the same scorer GRPO rewards and SFT filtering use), which extracts the answer and applies
MathVista's normalisation (option letter -> choice text, nearest choice by edit distance, integer truncation,
float rounding to `precision`, lists as strings) before the exact comparison.

Denominator: every problem of the benchmark (all 1000 of testmini), as in the official harness, which scores
one result per problem. A problem with no response, or an empty one, counts as wrong and is reported
(`missing`, `empty`). Responses for pids the benchmark does not have are rejected (ReasonerError): they mean
the predictions belong to another split or data set, and silently dropping them would hide that.

Refusals ("the question does not provide enough information"): policy `official` (the default, comparable with
published numbers) maps a multiple-choice refusal to a choice the way the official pipeline does (nearest by
edit distance); `strict` counts every refusal wrong. `scores.json` reports the policy, the number of refusals
and the number of responses with no readable answer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasoner.benchmarks.base import Benchmark
from reasoner.benchmarks.mathvista_query import OFFICIAL_PROMPT, official_query
from reasoner.benchmarks.scoring import score_with_rewards
from reasoner.data.records.problem import Problem
from reasoner.data.sets.sources import load_mathvista
from reasoner.errors import ReasonerError
from reasoner.prompts import Template
from rewards.core import REFUSAL_POLICIES

log = logging.getLogger(__name__)

BENCHMARK = "mathvista_testmini"
BREAKDOWN_FIELDS: tuple[str, ...] = (
    "task", "skills", "grade", "question_type", "answer_type", "context", "source", "language", "category",
)  # fmt: skip


def score_responses(
    problems: Sequence[Problem],
    responses: Mapping[str, str | None],
    *,
    workers: int = 1,
    refusals: str = "official",
    benchmark: str = BENCHMARK,
    fields: Sequence[str] = BREAKDOWN_FIELDS,
    where: str = "responses",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score responses (pid -> text) against MathVista problems: `(scores, items)` (`scoring.score_with_rewards`
    with MathVista's name and breakdown fields: task, skills, grade, ...)."""
    return score_with_rewards(
        problems, responses, workers=workers, refusals=refusals, benchmark=benchmark, fields=fields, where=where
    )


def load_problems(data_dir: str | Path, *, split: str = "testmini") -> list[Problem]:
    """MathVista problems from a data folder (via `reasoner.data.sets.sources.load_mathvista`), checked to exist."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ReasonerError(
            f"{data_dir}: MathVista data folder not found (it should hold {split}.json or the hub parquet export)"
        )
    if not os.access(data_dir, os.R_OK | os.X_OK):
        raise ReasonerError(f"{data_dir}: MathVista data folder is not readable")
    return load_mathvista(data_dir, split=split)


def score_predictions_file(
    predictions: str | Path, data_dir: str | Path, out_dir: str | Path, *, workers: int = 1,
    refusals: str = "official",
) -> dict[str, Any]:
    """`reasoner score mathvista`: read predictions and problems, score, write OUT/scores.json + items.jsonl."""
    return MATHVISTA.score_file(predictions, data_dir, out_dir, workers=workers, refusals=refusals)


class MathVista(Benchmark):
    name = "mathvista"
    summary = "MathVista testmini (testmini.json, images optional, or the hub parquet export)"
    needs_path = True
    evaluation_only = True
    fields = BREAKDOWN_FIELDS
    table_fields = ("task", "skills")
    official_prompt = OFFICIAL_PROMPT
    score_options = {
        "workers": {"type": int, "default": 1, "help": "scoring worker processes (default 1)"},
        "refusals": {
            "choices": REFUSAL_POLICIES, "default": "official",
            "help": "official (default, as the published numbers: a multiple-choice refusal still lands on the "
            "nearest choice) or strict (a refusal is wrong)",
        },
    }  # fmt: skip

    def load_path(self, path: str | Path | None, *, images: bool = True) -> list[Problem]:
        return load_problems(path)

    def recognizes(self, path: Path) -> bool:
        return path.is_dir()  # the fallback folder: MATH-Vision's (testmini.jsonl) is recognized first

    def template(self, prompt: str) -> Template:
        return official_query() if prompt == OFFICIAL_PROMPT else super().template(prompt)

    def score(self, problems, responses, *, name: str, where: str = "responses", workers: int = 1,
              refusals: str = "official") -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if workers < 1:
            raise ReasonerError(f"--workers must be at least 1, got {workers}")
        log.info("scoring %d responses against %d MathVista problems", len(responses), len(problems))
        return score_responses(problems, responses, workers=workers, refusals=refusals, where=where)


MATHVISTA = MathVista()
