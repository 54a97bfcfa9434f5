"""The engines by name: the only place that knows the concrete engines, imported lazily so that nothing above
the engines (and no engine) imports another one, and a run loads only the engine it uses."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from reasoner.config import RunConfig

if TYPE_CHECKING:
    from reasoner.engines.base import Engine
    from reasoner.schedule import StagePlan

ENGINES = {
    "local": "reasoner.engines.local:LocalEngine",
    "verl": "reasoner.engines.verl:VerlEngine",
}
"""`RunConfig.engine` value -> the `module:class` that implements the `Engine` protocol."""


def engine_class(name: str) -> type[Engine]:
    """The engine class registered under `name` (a `config.Engine` value)."""
    module, _, attr = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def make_engine(run: RunConfig) -> Engine:
    """The engine named by `run.engine`."""
    return engine_class(run.engine.value)(run)


def validate_plans(run: RunConfig, plans: list[StagePlan]) -> None:
    """Let the run's engine check every planned stage before any work (raises ReasonerError)."""
    engine_class(run.engine.value).validate(run, plans)
