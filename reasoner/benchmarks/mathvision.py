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

from reasoner.benchmarks.base import Benchmark
from reasoner.benchmarks.scoring import check_pids, scores_document
from reasoner.data.records.problem import Problem
from reasoner.data.sets.importers import load_mathvision
from reasoner.errors import ReasonerError
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


def load_problems(data_dir: str | Path, *, split: str = "testmini", images: bool = False) -> list[Problem]:
    """MATH-Vision problems of a data folder (`images=False`: for scoring, the pixels are not needed, so their
    files are not checked)."""
    return load_mathvision(data_dir, split=split, check_images=images)


def score_predictions_file(predictions: str | Path, data_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """`reasoner score mathvision`: read predictions and problems, score, write OUT/scores.json + items.jsonl."""
    return MATHVISION.score_file(predictions, data_dir, out_dir)


class MathVision(Benchmark):
    name = "mathvision"
    summary = "MATH-Vision testmini (testmini.jsonl + images/), scored by its own rules"
    needs_path = True
    evaluation_only = True
    fields = BREAKDOWN_FIELDS
    table_fields = ("level", "subject")

    def load_path(self, path: str | Path | None, *, images: bool = True) -> list[Problem]:
        return load_problems(path, images=images)

    def recognizes(self, path: Path) -> bool:
        return (path / "testmini.jsonl").is_file()

    def score(self, problems, responses, *, name: str, where: str = "responses") -> tuple[dict, list[dict]]:
        log.info("scoring %d responses against %d MATH-Vision problems", len(responses), len(problems))
        return score_responses(problems, responses, where=where)


MATHVISION = MathVision()
