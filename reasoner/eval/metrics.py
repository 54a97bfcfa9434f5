"""Accuracy and its breakdown by metadata fields: pure functions over plain records.

Used for MathVista (task, skills, grade, ...), for the synthetic evaluation sets (task, level, ...) and by the
report. Conventions, the same as the official MathVista `calculate_score.py`:
- accuracy is a percentage rounded to two decimals; a group of size 0 never appears;
- a field whose value is a list or tuple is multi-label: the record counts toward each of its (distinct) values,
  so the group sizes of such a field may sum to more than the number of records;
- a record whose field is missing or None is left out of that field's groups (it still counts overall).
Groups are ordered by size (largest first), then by name, so tables line up across runs and stages.
"""

from __future__ import annotations

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
