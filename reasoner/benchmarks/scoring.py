"""The one way responses are scored and written, shared by every benchmark.

`score_with_rewards` reads each response with the one scorer (`rewards.score_batch`, the same scorer GRPO rewards
and SFT filtering use: rule-based extraction, no GPT, then MathVista's normalisation and an exact comparison) and
breaks accuracy down by metadata fields. Denominator: every problem of the set; a problem with no response, or an
empty one, counts wrong and is reported (`missing`, `empty`). Responses for ids the set lacks are rejected
(ReasonerError): they mean the predictions belong to another split or data set.

Refusals ("the question does not provide enough information"): policy `official` (the default, comparable with
published MathVista numbers) maps a multiple-choice refusal to a choice the way the official pipeline does
(nearest by edit distance); `strict` counts every refusal wrong.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import rewards
from reasoner import atomic
from reasoner.benchmarks.metrics import breakdown, percent
from reasoner.data.records.problem import Problem, json_object
from reasoner.data.records.scoring import score_pairs
from reasoner.errors import ReasonerError
from rewards.core import REFUSAL_POLICIES

SCORER = {
    "name": "reasoner rule-based MathVista scorer",
    "version": 2,
    "extraction": "rules (rewards.score_batch), no GPT",
    "normalisation": "official MathVista: letter/edit distance -> choice text, int(float(x)), "
    "round(x, precision), str(list); exact string match",
    "denominator": "all problems; missing and empty responses count as wrong",
}
_NAMED = 5  # how many offending pids an error message lists


@lru_cache(maxsize=1)
def rewards_fingerprint() -> str:
    """sha256 over the `rewards` package sources: identifies the exact scorer that produced a scores file."""
    digest = hashlib.sha256()
    for path in sorted(Path(rewards.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def problem_labels(problem: Problem, fields: Sequence[str] = ()) -> dict[str, Any]:
    """The breakdown labels of one problem: its metadata fields (skills stay a list), plus `answer_type` and
    `question_type` (derived from the choices when the metadata lacks it)."""
    labels = {name: problem.metadata.get(name) for name in fields}
    labels["answer_type"] = problem.answer_type
    if labels.get("question_type") is None:
        labels["question_type"] = "multi_choice" if problem.is_multiple_choice else "free_form"
    return labels


def check_pids(
    problems: Sequence[Problem], responses: Mapping[str, Any], *, where: str = "responses"
) -> None:
    """Raise ReasonerError when `responses` name pids that `problems` lack (a few named, all counted)."""
    known = {problem.id for problem in problems}
    unknown = [pid for pid in responses if pid not in known]
    if unknown:
        named = ", ".join(repr(pid) for pid in unknown[:_NAMED])
        raise ReasonerError(
            f"{where}: {len(unknown)} pid(s) are not in the {len(known)} benchmark problems (e.g. {named}); "
            "are these predictions for another split or data set?"
        )


def _unscored_item(problem: Problem, reason: str) -> dict[str, Any]:
    return {
        "pid": problem.id, "extraction": None, "prediction": None, "correct": False,
        "answer": problem.answer, "rule": "none", "reason": reason, "mapping": "none",
    }  # fmt: skip


def score_items(
    problems: Sequence[Problem], responses: Mapping[str, str | None], *, workers: int = 1,
    refusals: str = "official",
) -> list[dict[str, Any]]:
    """One item per problem, in problem order: `{"pid", "extraction", "prediction", "correct", "answer",
    "rule", "reason", "mapping"}` (rule/reason/mapping as in `rewards.RewardScore`). Missing and empty
    responses are wrong without being scored, with reason "missing" / "empty"."""
    items: list[dict[str, Any] | None] = []
    pending: list[tuple[int, Problem, str]] = []
    for problem in problems:
        response = responses.get(problem.id)
        if response is None and problem.id not in responses:
            items.append(_unscored_item(problem, "missing"))
        elif not (response or "").strip():
            items.append(_unscored_item(problem, "empty"))
        else:
            pending.append((len(items), problem, response))
            items.append(None)
    scores = score_pairs([(p, r) for _, p, r in pending], workers=workers, refusals=refusals)
    for (index, problem, _), score in zip(pending, scores, strict=True):
        items[index] = {
            "pid": problem.id,
            "extraction": score.extracted,
            "prediction": score.prediction,
            "correct": score.accuracy > 0,
            "answer": problem.answer,
            "rule": score.rule,
            "reason": score.reason,
            "mapping": score.mapping,
        }
    return [item for item in items if item is not None]


def score_with_rewards(
    problems: Sequence[Problem],
    responses: Mapping[str, str | None],
    *,
    workers: int = 1,
    refusals: str = "official",
    benchmark: str,
    fields: Sequence[str] = (),
    where: str = "responses",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score responses (pid -> text) against MathVista problems: `(scores, items)`.

    `scores` is the `scores.json` document (overall and per-field accuracy in percent over ALL problems,
    missing/empty counts); `items` the `items.jsonl` rows in problem order. Unknown pids raise ReasonerError
    naming `where`. The CLI and the pipeline both call this, so they score identically. Other problem sets
    (the synthetic ones) pass their own `benchmark` name and breakdown `fields` (metadata keys, e.g. task, level).
    """
    if not problems:
        raise ReasonerError(f"{benchmark}: no problems to score against")
    check_pids(problems, responses, where=where)
    if refusals not in REFUSAL_POLICIES:
        raise ReasonerError(f"refusal policy {refusals!r} is not one of {REFUSAL_POLICIES}")
    items = score_items(problems, responses, workers=workers, refusals=refusals)
    records = [
        {**problem_labels(p, fields), "correct": item["correct"]}
        for p, item in zip(problems, items, strict=True)
    ]
    scores = {
        **scores_document(benchmark, items, SCORER, records, fields),
        "mappings": dict(Counter(item["mapping"] for item in items).most_common()),
        "refusal_policy": refusals,
        "refusals": sum(item["mapping"] == "refusal" for item in items),
        "no_answer": sum(
            item["prediction"] is None and item["mapping"] != "refusal" and item["reason"] not in ("missing", "empty")
            for item in items
        ),
    }
    return scores, items


def read_predictions(path: str | Path) -> dict[str, str | None]:
    """Read a predictions JSONL (`{"pid": ..., "response": ...}` per line) into pid -> response.

    Blank lines are skipped; other keys are ignored; a null response counts as empty. Malformed lines,
    missing keys and duplicate pids raise ReasonerError naming the file and line numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise ReasonerError(f"{path}: predictions file not found")
    responses: dict[str, str | None] = {}
    first_line: dict[str, int] = {}
    duplicates: list[str] = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                pid, response = _parse_prediction(line, f"{path}: line {number}")
                if pid in first_line:
                    duplicates.append(f"{pid!r} (lines {first_line[pid]} and {number})")
                    continue
                first_line[pid] = number
                responses[pid] = response
    except UnicodeDecodeError as err:
        raise ReasonerError(f"{path}: not UTF-8 text: {err}") from None
    if duplicates:
        raise ReasonerError(
            f"{path}: {len(duplicates)} duplicate pid(s): {', '.join(duplicates[:_NAMED])}; "
            "keep one response per pid"
        )
    if not responses:
        raise ReasonerError(f"{path}: no predictions (the file has no JSON lines)")
    return responses


def _parse_prediction(line: str, where: str) -> tuple[str, str | None]:
    row = json_object(line, where)
    for key in ("pid", "response"):
        if key not in row:
            raise ReasonerError(f"{where}: key {key!r} is missing; each line needs 'pid' and 'response'")
    pid, response = row["pid"], row["response"]
    # MathVista pids are numeric strings; accept a bare integer as the same pid.
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)
    if not isinstance(pid, str) or not pid:
        raise ReasonerError(f"{where}: 'pid' must be a non-empty string, got {pid!r}")
    if response is not None and not isinstance(response, str):
        raise ReasonerError(f"{where}: 'response' must be a string or null, got {type(response).__name__}")
    return pid, response


def write_outputs(out_dir: str | Path, scores: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> Path:
    """Write `scores.json` and `items.jsonl` into `out_dir`, each atomically (tmp file + os.replace)."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReasonerError(f"{out_dir}: cannot create the output folder: {err}") from None
    for name, write, data in (("items.jsonl", atomic.write_jsonl, items), ("scores.json", atomic.write_json, scores)):
        try:
            write(out_dir / name, data)
        except OSError as err:
            raise ReasonerError(f"{out_dir / name}: cannot write: {err}") from None
    return out_dir


def scores_document(
    benchmark: str, items: Sequence[Mapping[str, Any]], scorer: Mapping[str, Any], records: list[dict], fields
) -> dict[str, Any]:
    """The `scores.json` fields every benchmark shares: counts, accuracy over all items, the scorer and its code
    hash, reasons, the breakdown of `records` by `fields`, and the missing ids."""
    reasons = Counter(item["reason"] for item in items)
    correct = sum(item["correct"] for item in items)
    return {
        "benchmark": benchmark,
        "n": len(items),
        "correct": correct,
        "accuracy": percent(correct, len(items)),
        "missing": reasons.get("missing", 0),
        "empty": reasons.get("empty", 0),
        "scorer": {**scorer, "rewards_sha256": rewards_fingerprint()},
        "reasons": dict(reasons.most_common()),
        "breakdown": breakdown(records, fields),
        "missing_pids": [item["pid"] for item in items if item["reason"] == "missing"],
    }


def format_table(scores: Mapping[str, Any], fields: Sequence[str] = ("task", "skills")) -> str:
    """A compact console table: overall accuracy, missing/empty counts, then accuracy per value of `fields`."""
    lines = [
        f"{scores['benchmark']}: accuracy {scores['accuracy']:.2f}% "
        f"({scores['correct']}/{scores['n']}; missing {scores['missing']}, empty {scores['empty']}, "
        "both counted wrong)",
    ]
    if "exact" in scores:  # descriptions: accuracy is the mean fact F1; `correct` counts exact descriptions
        lines[0] = (
            f"{scores['benchmark']}: accuracy (mean fact F1) {scores['accuracy']:.2f}% ± {scores['stderr']:.2f}, "
            f"exact {scores['exact']:.2f}% ({scores['correct']}/{scores['n']}), recall {scores['recall']:.2f}%, "
            f"precision {scores['precision']:.2f}%; missing {scores['missing']}, empty {scores['empty']} (score 0)"
        )
    if "refusals" in scores:  # MathVista's reading counts refusals; MATH-Vision's official rules do not
        lines.append(
            f"refusals {scores['refusals']} (policy {scores['refusal_policy']}), "
            f"no readable answer {scores['no_answer']}"
        )
    if scores["missing"]:
        shown = ", ".join(scores["missing_pids"][:10])
        more = " ..." if scores["missing"] > 10 else ""
        lines.append(f"missing pids: {shown}{more}")
    width = max(
        [len(v) + 2 for f in fields for v in scores["breakdown"].get(f, {})] + [len(f) for f in fields]
    )
    for field in fields:
        lines.append(f"{field:<{width}}  {'n':>5}  {'acc %':>6}")
        for value, group in scores["breakdown"].get(field, {}).items():
            lines.append(f"  {value:<{width - 2}}  {group['n']:>5}  {group['accuracy']:>6.2f}")
    return "\n".join(lines)
