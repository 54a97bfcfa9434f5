"""Run configuration, one package: the schema (`schema`: `RunConfig` and the run-level sections; `stages`:
`StageConfig` and its sections), each number's allowed range beside its default (`ranges`, read by one check),
and the one way a config is read (`loading.load`: defaults -> YAML -> `key=value` overrides -> checks).

A bad key, a wrong type, a value outside its allowed set or range, or an impossible combination fails in `load`
with the key path (e.g. `stages[1].grpo.kl_coef`) and what is allowed, before any work starts. Callers import
from here.
"""

from reasoner.config.loading import load
from reasoner.config.schema import *  # noqa: F403  (the schema's classes and helpers are this package's API)
from reasoner.config.schema import __all__ as _schema_all
from reasoner.config.stages import *  # noqa: F403
from reasoner.config.stages import __all__ as _stages_all

__all__ = ["load", *_schema_all, *_stages_all]
