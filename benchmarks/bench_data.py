"""Data benchmarks: synthetic generation speed per world and level, and JSONL vs parquet IO of the same set.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_data.py [N]

Prints problems per second for `generate(task, N, level)` (render + PNG encode + split hashing), the image size
and visual tokens per level, and the write/read time of N mixed problems as JSONL and as parquet (ratio
parquet / JSONL, measured in the same process).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet  # noqa: F401  (imported up front: its first import pulls in pandas, ~0.7 s)

from reasoner.data.records.files import read_problems, write_problems
from reasoner.data.worlds import LEVELS, TASKS, generate, generate_mixed


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def bench_generation(n: int) -> None:
    print(f"{'task':8} {'level':>5} {'pixels':>9} {'tokens':>6} {'problems/s':>11}")
    for task in TASKS:
        for level in LEVELS:
            problems, seconds = _timed(generate, task, n, level, seed=0)
            width, height = problems[0].images[0].load().size
            tokens = (width // 28) * (height // 28)
            print(f"{task:8} {level:>5} {f'{width}x{height}':>9} {tokens:>6} {n / seconds:>11.0f}")


def bench_io(n: int) -> None:
    problems = generate_mixed(list(TASKS), n, level=2, seed=0)
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".jsonl", ".parquet"):
            path = Path(tmp) / f"set{suffix}"
            _, write_s = _timed(write_problems, problems, path)
            loaded, read_s = _timed(read_problems, path)
            assert loaded == problems
            times[suffix] = (write_s, read_s, path.stat().st_size)
    print(f"\n{'format':8} {'write s':>8} {'read s':>8} {'MB':>6}   ({n} problems, level 2 mix)")
    for suffix, (write_s, read_s, size) in times.items():
        print(f"{suffix:8} {write_s:>8.3f} {read_s:>8.3f} {size / 1e6:>6.2f}")
    (jw, jr, _), (pw, pr, _) = times[".jsonl"], times[".parquet"]
    print(f"parquet / jsonl: write {pw / jw:.2f}x, read {pr / jr:.2f}x")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    bench_generation(count)
    bench_io(count)
