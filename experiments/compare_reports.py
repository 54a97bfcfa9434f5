"""Are two runs' reports identical up to wall-clock time? (e.g. the demo before and after a refactor, one seed)

    python experiments/compare_reports.py runs/before-s0 runs/demo-s0

Compares report.json with every `seconds` value (and the training metrics that measure time) and the run name
left out, and report.md with its timing column and `seconds=` metrics blanked; prints each difference and exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

TIMING_KEYS = {"seconds", "run"}  # the run's name differs by design
TIMING_METRIC = re.compile(r"(^|/)(time|seconds|elapsed|throughput|.*_per_s(ec)?|.*_s)$")


def without_timing(value: Any) -> Any:
    """`value` with wall-clock entries removed (`seconds`, metrics named like time/..._s)."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS and not TIMING_METRIC.search(k)}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = [f"{path}.{k}: only in one" for k in a.keys() ^ b.keys()]
        for key in a.keys() & b.keys():
            found += differences(a[key], b[key], f"{path}.{key}")
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def markdown_lines(path: Path) -> list[str]:
    """report.md's lines from the second on (the first names the run), with the stage table's seconds column and
    each `seconds=` metric blanked."""
    lines = path.read_text().splitlines()[1:]
    lines = [re.sub(r"^(\| \w+ \| (?:yes|no) \| )[\d.]+( \|)", r"\1-\2", line) for line in lines]
    return [re.sub(r"\bseconds=[\d.e+-]+", "seconds=-", line) for line in lines]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    found = differences(*(without_timing(json.loads((d / "report.json").read_text())) for d in (args.before, args.after)))
    before, after = markdown_lines(args.before / "report.md"), markdown_lines(args.after / "report.md")
    found += [f"report.md line {i + 1}: {x!r} != {y!r}" for i, (x, y) in enumerate(zip(before, after, strict=False)) if x != y]
    if len(before) != len(after):
        found.append(f"report.md: {len(before)} lines != {len(after)} lines")
    for line in found:
        print(line)
    print(f"{len(found)} difference(s) between {args.before} and {args.after} (wall-clock time left out)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
