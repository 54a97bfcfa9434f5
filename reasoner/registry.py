"""The benchmarks by name: every `datasets.<name>.source` a config may give, and every `reasoner score NAME`.

A benchmark (`reasoner.benchmarks.base.Benchmark`) says how to load a set, prompt it, score responses to it and
lay out its report columns. The built-in ones are named here by `module:attribute` and imported when first asked
for (as the engines are in `engines.registry`), so this module imports nothing of the project but its errors and
every layer may ask it; one more is added with `register(benchmark)`, which is all a new benchmark needs:

    from reasoner import registry
    registry.register(MyBenchmark())   # then `source: mine` in a config, `reasoner score mine`, the report ...
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from reasoner.errors import ReasonerError

if TYPE_CHECKING:
    from reasoner.benchmarks.base import Benchmark

BUILTIN = {
    "synthetic": "reasoner.benchmarks.worlds:SYNTHETIC",
    "perception": "reasoner.benchmarks.perception:PERCEPTION",
    "descriptions": "reasoner.benchmarks.descriptions:DESCRIPTIONS",
    "file": "reasoner.benchmarks.problems:PROBLEMS",
    "mathvision": "reasoner.benchmarks.mathvision:MATHVISION",
    "mathvista": "reasoner.benchmarks.mathvista:MATHVISTA",
    "preference": "reasoner.benchmarks.preference:PREFERENCE",
}
"""Built-in benchmark name -> the `module:attribute` holding its `Benchmark`."""

_added: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> Benchmark:
    """Add a benchmark under `benchmark.name` (a name already taken by another benchmark is an error)."""
    name = benchmark.name
    if name in BUILTIN or (name in _added and _added[name] is not benchmark):
        raise ReasonerError(f"benchmark {name!r} is already registered; pick another name")
    _added[name] = benchmark
    return benchmark


def unregister(name: str) -> None:
    """Remove a benchmark added with `register` (built-in ones stay)."""
    _added.pop(name, None)


def names() -> list[str]:
    """Every benchmark name: the built-in ones, then those registered."""
    return [*BUILTIN, *_added]


def benchmark(name: str, where: str = "source") -> Benchmark:
    """The benchmark registered as `name`; an unknown name fails naming `where` and the allowed names."""
    if name in _added:
        return _added[name]
    if name not in BUILTIN:
        raise ReasonerError(f"{where}: {name!r} is not allowed; allowed: {', '.join(names())}")
    module, _, attribute = BUILTIN[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def recognize(path: str | Path) -> Benchmark:
    """The benchmark whose files `path` holds (`reasoner eval --data PATH`): the first that recognizes it, the
    registered ones before the built-in ones (a problems file, a MATH-Vision folder, then a MathVista folder)."""
    for name in [*_added, *BUILTIN]:
        found = benchmark(name)
        if found.recognizes(Path(path)):
            return found
    raise ReasonerError(f"{path}: not a problems file or a folder of a known benchmark ({', '.join(names())})")
