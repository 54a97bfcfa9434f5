"""The configured datasets, loaded one way: `load_dataset(DatasetConfig)` for every caller (runs, `reasoner data
distill`), and `Datasets` to load each of a run's sets once per process."""

from __future__ import annotations

import logging

from reasoner.config import GENERATED, DatasetConfig, DataSource, RunConfig
from reasoner.data.records import Problem
from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)


def load_dataset(ds: DatasetConfig, name: str) -> list[Problem]:
    """The problems of one dataset config (`name` is its key, for messages); its seed already filled in
    (`config_load.fill_seeds`, which every config loader calls)."""
    if ds.source in GENERATED and ds.seed is None:
        raise ReasonerError(f"datasets.{name}.seed: unset; load the config through reasoner.config (fill_seeds)")
    if ds.source == DataSource.synthetic:
        from reasoner.data.synthetic import TASKS, generate_mixed

        problems = generate_mixed(ds.tasks or list(TASKS), ds.n, level=ds.level, seed=ds.seed, split=ds.split.value)
    elif ds.source == DataSource.file:
        from reasoner.data.problem_files import read_problems

        problems = read_problems(ds.path)
    elif ds.source == DataSource.perception:
        from reasoner.data.synthetic.compose import generate_compose

        problems = generate_compose(ds.tasks, ds.n, level=ds.level, seed=ds.seed, split=ds.split.value)
    elif ds.source == DataSource.mathvision:
        from reasoner.data.importers import load_mathvision

        problems = load_mathvision(ds.path)
    else:
        from reasoner.data.sources import load_mathvista

        problems = load_mathvista(ds.path)
    problems = problems[: ds.n] if ds.n and ds.source not in GENERATED else problems  # generated: n already
    if not problems:
        raise ReasonerError(f"datasets.{name}: {ds.path or ds.source.value} has no problems")
    log.info("dataset %s: %d problems (%s)", name, len(problems), ds.source.value)
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
