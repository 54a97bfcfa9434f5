"""The allowed range of numbers in the config schemas, and the check of every one at load time.

Each int or float field carries its range beside its default as dataclass field metadata,
`seed: int = ranged(0, SEED)`; this module has `Range`, the shared ranges (AT_LEAST_1, POSITIVE, ...) and
`check_ranges`, which walks a loaded config and names every value outside its field's range by its key path, e.g.

    stages[1] (grpo1).grpo.sampling.top_p: 0.0 is not allowed; allowed: 0 < top_p <= 1

A NaN or infinite number is never allowed. tests/test_config.py checks that every int and float field of the
schemas has a range (`numeric_fields`), so a new setting cannot skip validation. Imports nothing from the project.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

RANGE = "range"
"""The field-metadata key of a number's `Range`."""


@dataclass(frozen=True)
class Range:
    """`low <= value <= high` (either bound optional, either may be strict), with what special values mean."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    meaning: str = ""
    """Appended to the message, e.g. "0 = one pass over the data"."""

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, name: str) -> str:
        """The range as an inequality on `name`, e.g. `0 < top_p <= 1`."""
        low = f"{_number(self.low)} {'<' if self.low_open else '<='} " if self.low is not None else ""
        high = f" {'<' if self.high_open else '<='} {_number(self.high)}" if self.high is not None else ""
        if low and not high:  # read `lr > 0` rather than `0 < lr`
            text = f"{name} {'>' if self.low_open else '>='} {_number(self.low)}"
        else:
            text = f"{low}{name}{high}"
        return f"{text} ({self.meaning})" if self.meaning else text


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
POSITIVE = Range(0, low_open=True)
FRACTION = Range(0, 1)
PROBABILITY = Range(0, 1, low_open=True)
TOKENS = Range(1)
SEED = Range(0)
TEMPERATURE = Range(0, meaning="0 = greedy")
ALL_IF_0 = Range(0, meaning="0 = all")
KEEP_ALL_IF_0 = Range(0, meaning="0 = keep all")


def ranged(default: Any, allowed: Range) -> Any:
    """A dataclass field with `default` whose values must lie in `allowed` (`check_ranges` reads it)."""
    return dataclasses.field(default=default, metadata={RANGE: allowed})


def range_of(field: dataclasses.Field) -> Range | None:
    """The range a field declares (None: not a ranged field)."""
    return field.metadata.get(RANGE)


def check_ranges(config: Any, where: str = "") -> list[str]:
    """Every number of a config dataclass (nested sections, dicts and lists included) outside its field's range,
    each as `key.path: value is not allowed; allowed: <range>`."""
    errors = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{where}.{field.name}" if where else field.name
        if dataclasses.is_dataclass(value):
            errors += check_ranges(value, key)
        elif isinstance(value, dict):
            errors += [
                e
                for k, v in value.items()
                if dataclasses.is_dataclass(v)
                for e in check_ranges(v, f"{key}.{k}")
            ]
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    name = getattr(item, "name", "")
                    errors += check_ranges(item, f"{key}[{i}]" + (f" ({name})" if name else ""))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            allowed = range_of(field) or Range()
            if not allowed.allows(value):
                errors.append(f"{key}: {value!r} is not allowed; allowed: {allowed.describe(field.name)}")
    return errors


def numeric_fields(schema: type) -> list[tuple[type, dataclasses.Field]]:
    """(dataclass, field) of every int or float field reachable from `schema` (for the coverage test: each must
    declare its range)."""
    found, seen, todo = {}, set(), [schema]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, hint in typing.get_type_hints(cls).items():
            args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            for arg in [*args, *[a for x in args for a in typing.get_args(x)]]:
                if dataclasses.is_dataclass(arg):
                    todo.append(arg)
                elif arg in (int, float) and name in fields:
                    found[(cls.__qualname__, name)] = (cls, fields[name])
    return [found[key] for key in sorted(found)]
