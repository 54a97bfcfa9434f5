"""The configured datasets, loaded one way: `load_dataset(DatasetConfig)` for every caller (runs, `reasoner data
distill`), through the set's benchmark (`reasoner.registry`), and `Datasets` to load each of a run's sets once per
process."""

from __future__ import annotations

import logging

from reasoner import registry
from reasoner.config import DatasetConfig, RunConfig
from reasoner.data.records.problem import Problem
from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)


def load_dataset(ds: DatasetConfig, name: str) -> list[Problem]:
    """The problems of one dataset config (`name` is its key, for messages); its seed already filled in
    (`config.loading.fill_seeds`, which every config loader calls)."""
    benchmark = registry.benchmark(ds.source, f"datasets.{name}.source")
    if benchmark.generated and ds.seed is None:
        raise ReasonerError(f"datasets.{name}.seed: unset; load the config through reasoner.config (fill_seeds)")
    problems = benchmark.load(ds)
    if not problems:
        raise ReasonerError(f"datasets.{name}: {ds.path or ds.source} has no problems")
    log.info("dataset %s: %d problems (%s)", name, len(problems), ds.source)
    return problems


class Datasets:
    """Problems of a run's configured datasets, each loaded once per process."""

    def __init__(self, run: RunConfig):
        self.run = run
        self._cache: dict[str, list[Problem]] = {}

    def __getitem__(self, name: str) -> list[Problem]:
        if name not in self._cache:
            self._cache[name] = load_dataset(self.run.datasets[name], name)
        return self._cache[name]
