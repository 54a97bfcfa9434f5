"""Accuracy and its breakdown by metadata fields: pure functions over plain records.

Used for MathVista (task, skills, grade, ...), for the synthetic evaluation sets (task, level, ...) and by the
report. Conventions, the same as the official MathVista `calculate_score.py`:
- accuracy is a percentage rounded to two decimals; a group of size 0 never appears;
- a field whose value is a list or tuple is multi-label: the record counts toward each of its (distinct) values,
  so the group sizes of such a field may sum to more than the number of records;
- a record whose field is missing or None is left out of that field's groups (it still counts overall).
Groups are ordered by size (largest first), then by name, so tables line up across runs and stages.

Noise: `standard_error` is the binomial standard error of one accuracy (the noise of evaluating on n items);
`spread` summarises one accuracy measured in runs of several seeds (the noise of training).

Baseline: `answer_prior` is what a model scores that gives one fixed answer to every question of a kind,
ignoring the image: the best such answer per kind, chosen on the evaluation set itself (so an upper bound on
any image-blind constant answer).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tally:
    """How many records a group has and how many of them are correct."""

    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        """Percent correct, rounded to two decimals (0.0 for an empty group)."""
        return percent(self.correct, self.n)

    def to_dict(self) -> dict[str, Any]:
        """`{"n", "correct", "accuracy"}` as written into scores files."""
        return {"n": self.n, "correct": self.correct, "accuracy": self.accuracy}


def percent(correct: int | float, n: int) -> float:
    """`100 * correct / n` rounded to two decimals; 0.0 when `n` is 0."""
    return round(100.0 * correct / n, 2) if n else 0.0


def standard_error(accuracy: float, n: int) -> float:
    """The binomial standard error `sqrt(p (1 - p) / n)` of a percent `accuracy` over `n` items, in percentage
    points, rounded to two decimals (0.0 at 0% or 100%, and for n = 0)."""
    if n <= 0:
        return 0.0
    p = min(max(accuracy / 100.0, 0.0), 1.0)
    return round(100.0 * math.sqrt(p * (1.0 - p) / n), 2)


def mcnemar_p(gained: int, lost: int) -> float:
    """Exact two-sided McNemar test of two models scored on the same items: of the items only one of them gets
    right, `gained` are the second model's and `lost` the first's. The chance of a split at least this uneven if
    neither model were better (a binomial test of the smaller count among `gained + lost` at 1/2); 1.0 when no item
    differs."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1))
    return min(1.0, 2 * tail / 2**n)


def above_chance_p(correct: Sequence[bool], chances: Sequence[float]) -> float:
    """Exact one-sided test that a set of answers beats guessing: the chance that a guesser, right on item i with
    probability `chances[i]` (a fraction), gets at least as many items right as `correct` does (the tail of the
    Poisson-binomial distribution; a plain binomial test when every item has the same chance). 1.0 for no items."""
    if len(correct) != len(chances):
        raise ValueError(f"{len(correct)} answers but {len(chances)} chance levels")
    dist = [1.0]  # dist[k]: probability that a guesser gets exactly k of the items so far right
    for q in chances:
        dist = [a * (1 - q) + b * q for a, b in zip([*dist, 0.0], [0.0, *dist], strict=True)]
    return min(1.0, sum(dist[sum(map(bool, correct)) :]))


@dataclass(frozen=True)
class Spread:
    """One number measured once per seed: its mean, sample standard deviation and the standard error of the mean."""

    mean: float
    sd: float
    """Sample standard deviation over seeds (n - 1 in the denominator)."""
    sem: float
    """Standard error of the mean, `sd / sqrt(seeds)`."""

    def to_dict(self) -> dict[str, float]:
        """`{"mean", "sd", "sem"}`, each rounded to two decimals."""
        return {"mean": round(self.mean, 2), "sd": round(self.sd, 2), "sem": round(self.sem, 2)}


def spread(values: Sequence[float]) -> Spread:
    """Mean, sample standard deviation and standard error of the mean of `values` (at least two)."""
    if len(values) < 2:
        raise ValueError(f"a spread needs at least two values, got {len(values)}")
    sd = statistics.stdev(values)
    return Spread(statistics.fmean(values), sd, sd / math.sqrt(len(values)))


def labels_of(value: Any) -> list[str]:
    """The group labels of one field value: none for None, each distinct element for a list, else its str."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(dict.fromkeys(str(item) for item in value if item is not None))
    return [str(value)]


def group_tallies(labels: Sequence[Any], correct: Sequence[bool | float]) -> dict[str, Tally]:
    """Tally per label, given each record's field value (scalar, list for multi-label, or None)."""
    if len(labels) != len(correct):
        raise ValueError(f"labels ({len(labels)}) and correct ({len(correct)}) differ in length")
    counts: dict[str, list[int]] = {}
    for value, flag in zip(labels, correct, strict=True):
        for label in labels_of(value):
            entry = counts.setdefault(label, [0, 0])
            entry[0] += 1
            entry[1] += bool(flag)
    ordered = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))
    return {label: Tally(n=n, correct=hits) for label, (n, hits) in ordered}


def breakdown(
    records: Sequence[Mapping[str, Any]], fields: Sequence[str], *, correct_key: str = "correct"
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per field, per value: `{"n", "correct", "accuracy"}` over `records` (mappings holding the fields).

    A field no record has gives an empty dict, so a report can still show the column.
    """
    correct = [record.get(correct_key, False) for record in records]
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for name in fields:
        tallies = group_tallies([record.get(name) for record in records], correct)
        result[name] = {label: group.to_dict() for label, group in tallies.items()}
    return result


def answer_prior(rows: Sequence[tuple[str, str, str]]) -> dict[str, Tally]:
    """Per group, how many items the best constant answer of each question kind gets right.

    `rows` holds one `(group, kind, answer)` per item: `group` is the breakdown label (a synthetic task), `kind`
    the question kind within it, `answer` what a constant answer must be to score the item (its text, or for
    multiple choice its option letter). Per (group, kind) the most common answer is counted correct.
    """
    answers: dict[tuple[str, str], dict[str, int]] = {}
    for group, kind, answer in rows:
        counts = answers.setdefault((group, kind), {})
        counts[answer] = counts.get(answer, 0) + 1
    best: dict[str, list[int]] = {}
    for (group, _), counts in answers.items():
        entry = best.setdefault(group, [0, 0])
        entry[0] += max(counts.values())
        entry[1] += sum(counts.values())
    return {group: Tally(n=n, correct=hits) for group, (hits, n) in best.items()}
