"""The one bridge from a `Problem` to `rewards`: what the scorer needs to judge a response to it.

Every caller that scores a problem goes through here: GRPO rewards (the local engine's rollouts, and the verl
RL parquet's `extra_info`, which `rewards/verl.py` hands back to `rewards.score`), self-distillation and
distillation verification, pass-rate estimation, and evaluation. So a setting that changes how answers are
judged is added in `scorer_arguments` once and reaches every one of them.

    >>> scorer_arguments(problem)
    {'answer_type': 'float', 'choices': None, 'precision': 2, 'unit': '$', 'question': 'How much ...?'}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import rewards
from reasoner.data.records.problem import Problem


def scorer_arguments(problem: Problem) -> dict[str, Any]:
    """The keyword arguments of `rewards.score` that come from the problem (besides its ground truth).

    Every answer type a record may have (`records.ANSWER_TYPES`) is one `rewards` judges; choices go as a plain
    list (the scorer and the verl parquet both take that); the question lets a yes/no answer that only states a
    comparison be read against it."""
    return {
        "answer_type": problem.answer_type,
        "choices": list(problem.choices) if problem.choices else None,
        "precision": problem.precision,
        "unit": problem.unit,
        "question": problem.question,
    }


def score_request(problem: Problem, response: str) -> dict[str, Any]:
    """One `rewards.score_batch` item: the response, the problem's answer and its `scorer_arguments`."""
    return {"response": response, "ground_truth": problem.answer, **scorer_arguments(problem)}


def score_pairs(
    pairs: Iterable[tuple[Problem, str]],
    *,
    weights: rewards.RewardWeights | None = None,
    workers: int = 1,
    **options: Any,
) -> list[rewards.RewardScore]:
    """Score (problem, response) pairs in order with `rewards.score_batch` (plain accuracy unless `weights`;
    `options` are the scorer's reading options, e.g. `extraction`, `refusals`)."""
    items = [score_request(problem, response) for problem, response in pairs]
    return rewards.score_batch(items, workers=workers, weights=weights, **options)
