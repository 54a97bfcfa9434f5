"""The contamination guard: before any work, each training stage's problems are compared with what the run
evaluates on and with the benchmarks its config names. An overlap stops the run with one line (the stage, the
set, the count, two examples) unless the stage sets `data.allow_overlap: true`; the report then says so.

What a stage's problems (its dataset after `data.limit`) are compared with:
  - every set in `eval.datasets`, whatever its source;
  - every MathVista or MATH-Vision folder defined under `datasets`, evaluated or not (define one there to guard
    against a benchmark the run does not evaluate on: a MathVista folder without images still has its questions).
How: `dedupe.BenchmarkIndex.match`, the same test the importers' `--exclude-*` options use (images byte-identical
or perceptually the same, distinctive questions). Perceptual matching is used against the MathVista and
MATH-Vision folders (varied real figures, where it is measured: docs/contamination.md); against other evaluation
sets images count when byte-identical: renders of one template (TabMWP's tables, a chart world) look alike to a
64-bit pHash whatever their text (TabMWP train vs test: most tables within the threshold). Two sets drawn from
generated worlds (synthetic, perception) are compared as whole problems: a world's few images recur with other
questions by design, and its train / eval splits partition the problems.

Evaluation-only sources are refused as training data: MathVista and MATH-Vision at config load
(`config_load`), and here a file imported from an evaluation-only format (its import record says which).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from reasoner import registry
from reasoner.config import DatasetConfig, RunConfig, StageConfig
from reasoner.data.records.problem import Problem
from reasoner.data.stage.dedupe import BenchmarkIndex, Dropped, find_overlap, record_path
from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)

RECORD_FILE = "contamination.json"
"""What the guard compared and found, in the run folder (the report reads it)."""
EVALUATION_FORMATS = (
    "mathvista", "mathvision", "aro-relation", "aro-attribution", "coco-order", "flickr-order", "whatsup",
    "whatsup-pairs",
)  # fmt: skip
"""`reasoner data import --format` values whose output is an evaluation set (benchmarks, perception tests)."""
EXAMPLES = 2


@dataclass
class Finding:
    """One training stage against one evaluation set: how many of its problems overlap, with examples."""

    stage: str
    dataset: str
    problems: int
    benchmark: str
    benchmark_source: str
    overlapping: int
    examples: list[dict[str, str]]
    allowed: bool

    def line(self) -> str:
        """The one line that names the stage, the set, the count and two examples."""
        how = [e["reason"].removeprefix(f"{self.benchmark}_").replace("_", " ") for e in self.examples]
        shown = ", ".join(f"{e['id']} ~ {e['match']} ({why})" for e, why in zip(self.examples, how, strict=True))
        return (
            f"stage {self.stage}: {self.overlapping} of {self.problems} training problems (dataset {self.dataset!r})"
            f" overlap the evaluation set {self.benchmark!r} ({self.benchmark_source}), e.g. {shown}"
        )


def benchmark_names(run: RunConfig) -> list[str]:
    """The sets every training stage is compared with: the evaluation sets, then the benchmark folders."""
    named = [name for name, ds in run.datasets.items() if registry.benchmark(ds.source).evaluation_only]
    return list(dict.fromkeys([*run.eval.datasets, *named]))


def check_run(run: RunConfig, load: Callable[[str], list[Problem]]) -> dict[str, Any]:
    """Compare every training stage with every set of `benchmark_names`; raise on an overlap that is not allowed.

    Returns the JSON-ready record (`RECORD_FILE`): what was compared, every finding and the seconds it took."""
    start = time.perf_counter()
    refuse_evaluation_imports(run)
    indexes: dict[tuple[str, bool], BenchmarkIndex] = {}
    findings: list[Finding] = []
    for stage in run.stages:
        problems = _limited(load(stage.data.dataset), stage.data.limit)
        for name in benchmark_names(run):
            whole = _generated(run.datasets[stage.data.dataset]) and _generated(run.datasets[name])
            if (name, whole) not in indexes:
                indexes[name, whole] = _index(run.datasets[name], name, load(name), whole)
            found = find_overlap(problems, indexes[name, whole])
            if found:
                findings.append(_finding(stage, problems, run.datasets[name], name, found))
    seconds = time.perf_counter() - start
    log.info("contamination guard: %d stages x %d sets in %.2f s, %d overlaps", len(run.stages),
             len(benchmark_names(run)), seconds, len(findings))  # fmt: skip
    refused = [f for f in findings if not f.allowed]
    if refused:
        raise ReasonerError(
            f"{refused[0].line()}; never train on an evaluation set: remove them (`reasoner data import "
            f"--exclude-*`) or set stages.{refused[0].stage}.data.allow_overlap=true to train anyway (reported)"
        )
    return {"compared": benchmark_names(run), "seconds": round(seconds, 3), "findings": [asdict(f) for f in findings]}


def _index(ds: DatasetConfig, name: str, problems: list[Problem], whole_problems: bool) -> BenchmarkIndex:
    """An evaluation set's index: perceptual image hashes for the benchmark folders only (see the module doc)."""
    perceptual = registry.benchmark(ds.source).evaluation_only
    return BenchmarkIndex.build(name, problems, whole_problems=whole_problems, perceptual=perceptual)


def _generated(ds: DatasetConfig) -> bool:
    return registry.benchmark(ds.source).generated


def _finding(stage: StageConfig, problems: list[Problem], ds: DatasetConfig, name: str, found: list[Dropped]) -> Finding:
    source = ds.source + (f" {ds.path}" if ds.path else "")
    examples = [asdict(d) for d in found[:EXAMPLES]]
    return Finding(stage.name, stage.data.dataset, len(problems), name, source, len(found), examples,
                   stage.data.allow_overlap)  # fmt: skip


def _limited(problems: list[Problem], limit: int) -> list[Problem]:
    return problems[:limit] if limit > 0 else problems


def refuse_evaluation_imports(run: RunConfig) -> None:
    """A training stage's `file` set imported from an evaluation-only format (its `<file>.sources.json` says
    which) is refused, unless the stage allows overlap."""
    from reasoner.data.sets.sources import read_json

    for stage in run.stages:
        ds = run.datasets[stage.data.dataset]
        record = record_path(ds.path) if ds.source == "file" and ds.path else None
        if stage.data.allow_overlap or record is None or not record.is_file():
            continue
        formats = {s.get("format") for s in read_json(record).get("sources", [])} & set(EVALUATION_FORMATS)
        if formats:
            raise ReasonerError(
                f"stages.{stage.name}.data.dataset: {stage.data.dataset!r} ({ds.path}) was imported from "
                f"{', '.join(sorted(formats))}, an evaluation-only set; never train on it (data.allow_overlap: true "
                "trains anyway, and the report says so)"
            )


def warning_lines(record: dict[str, Any]) -> list[str]:
    """The report's visible lines: one per allowed overlap."""
    return [
        f"**Warning: trained on evaluation data.** {Finding(**f).line()}; allowed by "
        f"stages.{f['stage']}.data.allow_overlap, so scores on {f['benchmark']!r} are not a fair measure."
        for f in record.get("findings", [])
        if f.get("allowed")
    ]
