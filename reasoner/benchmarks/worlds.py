"""The synthetic visual-math worlds (`reasoner.data.worlds`): rendered problems drawn from a seed, e.g. a run's
held-out set (`split: eval`); scored like a problems file, with the `prior` row (the best constant answer per
question kind).
"""

from __future__ import annotations

from reasoner.benchmarks.problems import Problems
from reasoner.config import DatasetConfig
from reasoner.data.records.problem import Problem
from reasoner.data.worlds import TASKS, generate_mixed


class Worlds(Problems):
    name = "synthetic"
    summary = "the rendered visual-math worlds (count, digits, bars, ...) drawn from a seed"
    needs_path = False
    generated = True
    tasks = tuple(TASKS)

    def load(self, ds: DatasetConfig) -> list[Problem]:
        return generate_mixed(ds.tasks or list(TASKS), ds.n, level=ds.level, seed=ds.seed, split=ds.split.value)

    def recognizes(self, path) -> bool:
        return False


SYNTHETIC = Worlds()
