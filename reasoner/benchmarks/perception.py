"""Scoring of perception items (`reasoner.data.worlds.perception`): accuracy per family, beside its chance level.

Every response is read by the one scorer (`reasoner.benchmarks.scoring.score_items` -> `rewards.score`): an option
letter (or the option's text) for caption items, an integer for counts. The rows of `scores["breakdown"]["family"]`:

- one per family (`relation`, `attribution`, `order`, `spatial`, `negation`, `counting`), over its original
  items: did the model pick the true caption over the hard negatives (or give the count);
- `hard_positive`: over the twin items: did the model ACCEPT the paraphrase over the same hard negatives;
- `pair` ("brittleness"): over the (item, twin) pairs: both right, i.e. the positive accepted AND the negative
  rejected in both phrasings. A model that rejects every paraphrase, or that matches wording, fails here.

Each row also has `chance` (percent): the mean over its items of 1 / options (counting: 1 / size of the stated
range); for a pair the product of its two items' chances. `scores["chance"]` repeats them for the report.
`p_above_chance` is the exact one-sided test that the row beats guessing (`metrics.above_chance_p`): a family
whose p is not small (say above 0.01) is read as at chance, whatever its accuracy.
A missing or empty response counts wrong, as everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reasoner.benchmarks.base import Benchmark
from reasoner.benchmarks.metrics import above_chance_p, breakdown, percent
from reasoner.benchmarks.scoring import SCORER, check_pids, rewards_fingerprint, score_items
from reasoner.config import DatasetConfig
from reasoner.data.records.problem import Problem
from reasoner.data.worlds.compose import generate_compose
from reasoner.data.worlds.perception import FAMILIES
from reasoner.errors import ReasonerError

BENCHMARK = "perception"
ROWS = (*FAMILIES, "hard_positive", "pair")
FIELDS = ("variant", "level", "source")


def _row(flags: Sequence[bool], chances: Sequence[float]) -> dict[str, Any]:
    n = len(flags)
    return {
        "n": n,
        "correct": sum(flags),
        "accuracy": percent(sum(flags), n),
        "chance": round(100.0 * sum(chances) / n, 2) if n else 0.0,
        "p_above_chance": above_chance_p(flags, chances),
    }


def family_rows(problems: Sequence[Problem], correct: Sequence[bool]) -> dict[str, dict[str, Any]]:
    """The per-family, hard-positive and pair rows (see the module docstring); a row with no items is left out."""
    groups: dict[str, tuple[list[bool], list[float]]] = {row: ([], []) for row in ROWS}
    pairs: dict[str, list[tuple[bool, float]]] = {}
    for problem, flag in zip(problems, correct, strict=True):
        meta = problem.metadata
        row = "hard_positive" if meta.get("variant") == "hard_positive" else meta["family"]
        groups[row][0].append(bool(flag))
        groups[row][1].append(float(meta["chance"]))
        if meta.get("pair"):
            pairs.setdefault(meta["pair"], []).append((bool(flag), float(meta["chance"])))
    for members in pairs.values():
        if len(members) == 2:
            groups["pair"][0].append(members[0][0] and members[1][0])
            groups["pair"][1].append(members[0][1] * members[1][1])
    return {row: _row(*groups[row]) for row in ROWS if groups[row][0]}


def score_responses(
    problems: Sequence[Problem],
    responses: Mapping[str, str | None],
    *,
    benchmark: str = BENCHMARK,
    where: str = "responses",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score responses (pid -> text) against perception items: `(scores, items)`, items in problem order."""
    if not problems:
        raise ReasonerError(f"{benchmark}: no problems to score against")
    missing = [p.id for p in problems if p.metadata.get("family") not in FAMILIES][:5]
    if missing:
        raise ReasonerError(
            f"{benchmark}: problems {missing} have no metadata.family; allowed families: {', '.join(FAMILIES)}"
        )
    check_pids(problems, responses, where=where)
    items = score_items(problems, responses, refusals="strict")
    correct = [item["correct"] for item in items]
    for item, problem in zip(items, problems, strict=True):
        item["family"], item["variant"] = problem.metadata["family"], problem.metadata.get("variant")
    rows = family_rows(problems, correct)
    records = [
        {**{name: p.metadata.get(name) for name in FIELDS}, "correct": flag}
        for p, flag in zip(problems, correct, strict=True)
    ]
    scores = {
        "benchmark": benchmark,
        "n": len(items),
        "correct": sum(correct),
        "accuracy": percent(sum(correct), len(items)),
        "chance_overall": round(100.0 * sum(p.metadata["chance"] for p in problems) / len(problems), 2),
        "missing": sum(item["reason"] == "missing" for item in items),
        "empty": sum(item["reason"] == "empty" for item in items),
        "scorer": {**SCORER, "refusals": "strict (a refusal is wrong)", "rewards_sha256": rewards_fingerprint()},
        "breakdown": {"family": rows, **breakdown(records, FIELDS)},
        "chance": {row: values["chance"] for row, values in rows.items()},
        "missing_pids": [item["pid"] for item in items if item["reason"] == "missing"],
    }
    return scores, items


def format_rows(scores: Mapping[str, Any]) -> str:
    """A console table: per family row, n, accuracy, chance and the p of the test that it beats chance."""
    lines = [f"{scores['benchmark']}: accuracy {scores['accuracy']:.2f}% (chance {scores['chance_overall']:.2f}%)"]
    lines.append(f"{'family':<14} {'n':>5} {'acc %':>7} {'chance %':>9} {'p above chance':>15}")
    for row, values in scores["breakdown"]["family"].items():
        p = values.get("p_above_chance")
        shown = "" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"
        lines.append(f"{row:<14} {values['n']:>5} {values['accuracy']:>7.2f} {values['chance']:>9.2f} {shown:>15}")
    return "\n".join(lines)


class Perception(Benchmark):
    name = "perception"
    summary = "the rendered compositional world: pick the caption that fits (or count), scored per family"
    generated = True
    tasks = FAMILIES

    def load(self, ds: DatasetConfig) -> list[Problem]:
        return generate_compose(ds.tasks, ds.n, level=ds.level, seed=ds.seed, split=ds.split.value)

    def score(self, problems, responses, *, name: str, where: str = "responses") -> tuple[dict, list[dict]]:
        return score_responses(problems, responses, benchmark=name, where=where)


PERCEPTION = Perception()
