"""Description accuracy: a model describes a rendered world's image; the description is scored against the image's
exact caption, fact by fact, so a reader sees perception move.

The set (`source: descriptions`) is drawn like `synthetic` (`reasoner.data.worlds.generate_mixed`: `tasks`, `n`,
`level`, `seed`, `split`), one problem per image; each problem's reference is its caption (the question is not
shown). It is always prompted with its own template, `caption` (configs/prompts/caption.txt), whatever the run's
`prompt` (`Benchmark.prompt`).

Facts. A caption is read into facts with one grammar, the captions' own (`worlds.py`):

- the stated count, with what is counted: `8 shapes`, `2 seven-segment numbers`, `A bar chart with 3 bars`;
- shapes: `<colour> <shape> (<row>,<column>)`: two facts per shape, its colour and its shape, both keyed by its cell
  (a shape put in another cell states facts about the wrong cell);
- numbers: `<value> (<colour>)` in the listed order: two facts per number, its value and its colour, keyed by its
  place in the list (1st, 2nd, ...);
- bars: `<colour> <value>` after `left to right:`, in order: a bar's colour and value, keyed by its place;
- gridlines (bar charts, level 2+): `gridlines mark every unit from <a> to <b>`: one fact, the range.

A description is read with the same grammar, leniently: lower case, any whitespace, anywhere in the text (a
description in other words scores only what it states in the captions' grammar; facts of another world's grammar
count as stated, and wrong). Each statement is a fact stated, a repeated one twice.

Per item: `recall` = facts of the caption the description states / facts of the caption; `precision` = facts
stated that are the caption's / facts stated (an invented object, a repeated or a wrong one lowers it, so listing
every possible object scores badly); `f1` their harmonic mean; `exact` = every fact stated, nothing else. A missing
or empty response, or one stating no fact, scores 0 on all four. Headline `accuracy` = mean F1 in percent;
`stderr` its standard error (sample sd / sqrt(n), in points); `exact`, `recall`, `precision` their means in
percent; the breakdown by task and level has the same per group. `items.jsonl`'s `correct` is `exact` (the
report's item-by-item comparison of two stages counts exact descriptions).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasoner.benchmarks.base import Benchmark
from reasoner.benchmarks.scoring import check_pids
from reasoner.config import DatasetConfig
from reasoner.data.records.files import read_problems
from reasoner.data.records.problem import Problem
from reasoner.data.worlds import COLOURS, TASKS, generate_mixed
from reasoner.data.worlds.base import SHAPES
from reasoner.errors import ReasonerError

FIELDS = ("task", "level")
SCORER = {
    "name": "reasoner description facts",
    "version": 1,
    "facts": "counts, objects (colour, shape or value) by cell or order, gridline range; read from the caption and "
    "the response with the captions' grammar",
    "headline": "mean F1 of stated vs caption facts, percent",
    "denominator": "all problems; missing, empty and fact-less responses score 0",
}
_COLOUR = "|".join(COLOURS)
_SHAPE = "|".join(SHAPES)
_COUNTS = (  # (what is counted, its pattern)
    ("shapes", re.compile(r"(\d+) shapes?\b")),
    ("numbers", re.compile(r"(\d+) seven[- ]?segment (?:numbers?|digits?)\b")),
    ("bars", re.compile(r"(\d+) bars?\b")),
)
_SHAPE_ITEM = re.compile(rf"\b({_COLOUR}) ({_SHAPE})s? ?\( ?(\d+) ?, ?(\d+) ?\)")
_NUMBER_ITEM = re.compile(rf"\b(\d+) ?\( ?({_COLOUR}) ?\)")
_BAR_ITEM = re.compile(rf"\b({_COLOUR}) (\d+)\b")
_GRIDLINES = re.compile(r"gridlines?\b[^.;]*?\bfrom (\d+) to (\d+)")

Fact = tuple[Any, ...]


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def facts(text: str) -> Counter[Fact]:
    """The facts a caption or description states, in the captions' grammar (see the module docstring), each as
    often as it is stated."""
    text = _normal(text)
    found: Counter[Fact] = Counter()
    for what, pattern in _COUNTS:
        found.update(("count", what, int(m.group(1))) for m in pattern.finditer(text))
    for m in _SHAPE_ITEM.finditer(text):
        cell = (int(m.group(3)), int(m.group(4)))
        found.update([("shape", cell, "colour", m.group(1)), ("shape", cell, "shape", m.group(2))])
    for place, m in enumerate(_NUMBER_ITEM.finditer(text), start=1):
        found.update([("number", place, "value", int(m.group(1))), ("number", place, "colour", m.group(2))])
    for place, m in enumerate(_BAR_ITEM.finditer(_bar_listing(text)), start=1):
        found.update([("bar", place, "colour", m.group(1)), ("bar", place, "value", int(m.group(2)))])
    found.update(("gridlines", int(m.group(1)), int(m.group(2))) for m in _GRIDLINES.finditer(text))
    return found


def _bar_listing(text: str) -> str:
    """Where bars are listed: the text with shape and number listings, counts and gridline ranges blanked (so
    "red square (1,2)" or "3 bars" is not read as a bar)."""
    for pattern in (_SHAPE_ITEM, _NUMBER_ITEM, _GRIDLINES, *(p for _, p in _COUNTS)):
        text = pattern.sub(" | ", text)
    return text


def describe_fact(fact: Fact) -> str:
    """A fact as a short phrase for items.jsonl, e.g. `bar 2 value 3`, `shape (1,2) colour red`."""
    if fact[0] == "count":
        return f"{fact[2]} {fact[1]}"
    if fact[0] == "gridlines":
        return f"gridlines {fact[1]} to {fact[2]}"
    kind, key, attribute, value = fact
    key = f"({key[0]},{key[1]})" if isinstance(key, tuple) else str(key)
    return f"{kind} {key} {attribute} {value}"


def score_description(caption: str, response: str | None) -> dict[str, Any]:
    """One description against its caption: `{"facts", "stated", "matched", "recall", "precision", "f1", "exact",
    "missed", "wrong"}` (fractions in [0, 1]; `missed` / `wrong` the caption facts not stated / the stated facts
    that are not the caption's, as phrases)."""
    reference = facts(caption)
    stated = facts(response or "")
    matched = sum((reference & stated).values())
    total, said = sum(reference.values()), sum(stated.values())
    recall = matched / total if total else 0.0
    precision = matched / said if said else 0.0
    f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    return {
        "facts": total, "stated": said, "matched": matched, "recall": recall, "precision": precision, "f1": f1,
        "exact": bool(total) and matched == total == said,
        "missed": [describe_fact(f) for f in (reference - stated).elements()],
        "wrong": [describe_fact(f) for f in (stated - reference).elements()],
    }  # fmt: skip


def _mean_percent(values: Sequence[float]) -> float:
    return round(100.0 * statistics.fmean(values), 2) if values else 0.0


def _group(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "n": len(items),
        "correct": sum(item["exact"] for item in items),
        "accuracy": _mean_percent([item["f1"] for item in items]),
        "exact": _mean_percent([item["exact"] for item in items]),
        "recall": _mean_percent([item["recall"] for item in items]),
        "precision": _mean_percent([item["precision"] for item in items]),
    }


def _stderr(values: Sequence[float]) -> float:
    """Standard error of a mean of fractions, in percentage points (0.0 for fewer than two)."""
    return round(100.0 * statistics.stdev(values) / math.sqrt(len(values)), 2) if len(values) > 1 else 0.0


def score_responses(
    problems: Sequence[Problem], responses: Mapping[str, str | None], *, benchmark: str = "descriptions",
    where: str = "responses",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score descriptions (pid -> text) against the problems' captions: `(scores, items)`, items in problem order."""
    if not problems:
        raise ReasonerError(f"{benchmark}: no problems to score against")
    uncaptioned = [p.id for p in problems if not p.caption][:5]
    if uncaptioned:
        raise ReasonerError(f"{benchmark}: problems {uncaptioned} have no caption to score a description against")
    check_pids(problems, responses, where=where)
    items = []
    for problem in problems:
        response = responses.get(problem.id)
        reason = "missing" if problem.id not in responses else "empty" if not (response or "").strip() else "scored"
        result = score_description(problem.caption, response if reason == "scored" else None)
        items.append({"pid": problem.id, **{f: problem.metadata.get(f) for f in FIELDS}, "correct": result["exact"],
                      "reason": reason, **result})  # fmt: skip
    groups: dict[str, dict[str, Any]] = {}
    for field in FIELDS:
        values = sorted({str(item[field]) for item in items if item[field] is not None})
        members = {v: [item for item in items if str(item[field]) == v] for v in values}
        ordered = sorted(members, key=lambda v: (-len(members[v]), v))
        groups[field] = {v: _group(members[v]) for v in ordered}
    reasons = Counter(item["reason"] for item in items)
    scores = {
        "benchmark": benchmark,
        **_group(items),
        "stderr": _stderr([item["f1"] for item in items]),
        "missing": reasons.get("missing", 0),
        "empty": reasons.get("empty", 0),
        "no_facts": sum(item["reason"] == "scored" and not item["stated"] for item in items),
        "scorer": SCORER,
        "breakdown": groups,
        "missing_pids": [item["pid"] for item in items if item["reason"] == "missing"],
    }
    return scores, items


class Descriptions(Benchmark):
    name = "descriptions"
    summary = "describe a rendered world's image (count, digits, bars); scored fact by fact against its caption"
    generated = True
    tasks = tuple(TASKS)
    fields = FIELDS
    table_fields = FIELDS
    prompt = "caption"

    def load(self, ds: DatasetConfig) -> list[Problem]:
        return generate_mixed(ds.tasks or list(TASKS), ds.n, level=ds.level, seed=ds.seed, split=ds.split.value)

    def load_path(self, path: str | Path | None, *, images: bool = True) -> list[Problem]:
        """A problems file whose problems have captions (`reasoner data synthetic`, `reasoner eval --benchmark
        descriptions`)."""
        return read_problems(path)

    def score(self, problems, responses, *, name: str, where: str = "responses") -> tuple[dict, list[dict]]:
        return score_responses(problems, responses, benchmark=name, where=where)


DESCRIPTIONS = Descriptions()
