"""Exact MATH-Vision scoring: responses in, `scores.json` + `items.jsonl` out, by the benchmark's own rules.

MATH-Vision's official evaluation is rule-based (no GPT judge); `rewards.mathvision` re-implements its extraction
and equality, and reads our `<answer>` tag first (see that module for the rules and the differences). Accuracy
is reported overall, by level (1-5) and by subject (16), in percent of ALL problems: a missing or empty
response counts wrong, as for MathVista. Predictions name problems by MATH-Vision id; an unknown id is an error.

    reasoner score mathvision --predictions P.jsonl --data ../shared/data/mathvision --out OUT
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasoner.data.records import Problem
from reasoner.errors import ReasonerError
from reasoner.eval.mathvista import check_pids, read_predictions, scores_document, write_outputs
from rewards.mathvision import judge

log = logging.getLogger(__name__)

BENCHMARK = "mathvision_testmini"
BREAKDOWN_FIELDS = ("level", "subject", "question_type")
SCORER = {
    "name": "reasoner rule-based MATH-Vision scorer",
    "version": 1,
    "extraction": "official MATH-V rules (evaluation/evaluate.py), on the <answer> tag's content when present",
    "equality": "official MATH-V is_equal: text, tuples, numbers to 2 decimals; against the letter and the option",
    "denominator": "all problems; missing and empty responses count as wrong",
}


def gold_sides(problem: Problem) -> tuple[str, str]:
    """(gold answer, gold option text) as the official script compares them: (letter, option) for multiple
    choice, (value, "") for free-form problems."""
    letter = problem.metadata.get("answer_letter")
    if problem.choices:
        if not letter:
            raise ReasonerError(
                f"problem {problem.id}: multiple choice without metadata.answer_letter; import MATH-Vision with "
                "`reasoner data import --format mathvision`"
            )
        return letter, problem.answer
    return problem.answer, ""


def _item(problem: Problem, response: str | None) -> dict[str, Any]:
    gold, option = gold_sides(problem)
    item = {"pid": problem.id, "answer": gold, "option": option or None}
    if response is None or not response.strip():
        reason = "missing" if response is None else "empty"
        return {
            **item,
            "extraction": None,
            "correct": False,
            "rule": "none",
            "reason": reason,
            "matched": "none",
        }
    verdict = judge(response, gold, option)
    return {
        **item,
        "extraction": verdict.extracted,
        "correct": verdict.correct,
        "rule": verdict.rule,
        "reason": "match" if verdict.correct else "mismatch",
        "matched": verdict.matched,
    }


def score_responses(
    problems: Sequence[Problem],
    responses: Mapping[str, str | None],
    *,
    benchmark: str = BENCHMARK,
    where: str = "responses",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score responses (id -> text) against MATH-Vision problems: `(scores, items)`, in problem order.

    `scores` is the `scores.json` document (overall, per level and per subject accuracy in percent of all
    problems); a response for an id the problems lack raises ReasonerError naming `where`."""
    if not problems:
        raise ReasonerError(f"{benchmark}: no problems to score against")
    check_pids(problems, responses, where=where)
    items = [_item(problem, responses.get(problem.id)) for problem in problems]
    records = [
        {**{name: problem.metadata.get(name) for name in BREAKDOWN_FIELDS}, "correct": item["correct"]}
        for problem, item in zip(problems, items, strict=True)
    ]
    scores = {
        **scores_document(benchmark, items, SCORER, records, BREAKDOWN_FIELDS),
        "rules": dict(Counter(item["rule"] for item in items).most_common()),
    }
    return scores, items


def load_problems(data_dir: str | Path, *, split: str = "testmini") -> list[Problem]:
    """MATH-Vision problems of a data folder for scoring (images are not needed, so not checked)."""
    from reasoner.data.importers import load_mathvision

    return load_mathvision(data_dir, split=split, check_images=False)


def score_predictions_file(
    predictions: str | Path, data_dir: str | Path, out_dir: str | Path
) -> dict[str, Any]:
    """`reasoner score mathvision`: read predictions and problems, score, write OUT/scores.json + items.jsonl."""
    responses = read_predictions(predictions)
    problems = load_problems(data_dir)
    log.info("scoring %d responses against %d MATH-Vision problems", len(responses), len(problems))
    scores, items = score_responses(problems, responses, where=str(predictions))
    write_outputs(out_dir, scores, items)
    return scores
