"""One report over runs of several seeds: `reasoner report RUN_DIR RUN_DIR ... --out DIR`.

    make demo-seeds      # = reasoner run configs/demo.yaml seed=S name=demo-sS for S in 0 1 2, then
                         #   reasoner report runs/demo-s0 runs/demo-s1 runs/demo-s2 --out runs/demo-seeds

Each run is read by the single-run report's `collect` (from its stage folders, never from a report file that may be
stale). For every stage and evaluation set the combined report.md / report.json / accuracy.png give each seed's
accuracy, the mean ± sample standard deviation over seeds, the standard error of that mean (sd / sqrt(seeds)) and
the change of the mean from the stage before with its standard error (from each seed's own change, paired by seed).

The runs must match: the same stages in the same order, every stage finished and evaluated on the same sets of the
same size and configuration, and different seeds; otherwise one error names the run and the stage.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from reasoner.atomic import write_json, write_text
from reasoner.benchmarks.metrics import spread
from reasoner.errors import ReasonerError
from reasoner.report import BASELINES, BRANCH_NOTE, Curve, branch_marks, collect, has_branches, open_run, plot

log = logging.getLogger(__name__)


def read_run(path: str | Path) -> dict[str, Any]:
    """One run as the combined report needs it: `collect`'s data plus the run's seed and datasets (config.yaml)."""
    run_dir = open_run(path)
    data = collect(run_dir)
    if data["damaged"]:
        raise ReasonerError(f"{path}: damaged files ({'; '.join(data['damaged'])}); see `reasoner report {path}`")
    config_path = run_dir.root / "config.yaml"
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ReasonerError(f"{config_path}: unreadable ({type(err).__name__}); a run folder gets it from "
                            "`reasoner run`") from None  # fmt: skip
    if not isinstance(config, dict) or not isinstance(config.get("seed"), int):
        raise ReasonerError(f"{config_path}: no run seed in it")
    return {**data, "path": str(path), "seed": config["seed"], "dataset_configs": config.get("datasets") or {}}


def check_matching(runs: list[dict[str, Any]]) -> None:
    """Raise, naming the run and the stage, unless every run has the first one's stages, evaluations and eval sets
    and no two runs share a seed."""
    first = runs[0]
    seeds: dict[int, str] = {}
    for run in runs:
        if run["seed"] in seeds:
            raise ReasonerError(f"{run['path']} and {seeds[run['seed']]} both have seed {run['seed']}: combining "
                                "one seed twice measures no spread; run another seed (seed=N name=...)")  # fmt: skip
        seeds[run["seed"]] = run["path"]
        _check_stages(run, first)
        for dataset in first["datasets"]:
            mine, theirs = run["dataset_configs"].get(dataset), first["dataset_configs"].get(dataset)
            if mine != theirs:
                raise ReasonerError(
                    f"{run['path']}: evaluation set {dataset} is configured otherwise than in {first['path']} "
                    f"({mine} vs {theirs}); seeds are compared on one set: give datasets.{dataset} a fixed seed"
                )


def _check_stages(run: dict[str, Any], first: dict[str, Any]) -> None:
    names = [stage["name"] for stage in run["stages"]]
    for index, theirs in enumerate(first["stages"]):
        if index >= len(names):
            raise ReasonerError(f"{run['path']}: stage {index} should be {theirs['name']!r} as in {first['path']}, "
                                f"but the run ends before it (its stages: {', '.join(names)})")  # fmt: skip
        mine = run["stages"][index]
        if not mine["finished"]:
            raise ReasonerError(f"{run['path']}: stage {theirs['name']} ({mine['dir']}) is not finished; finish "
                                "the run first")  # fmt: skip
        if mine["name"] != theirs["name"]:
            raise ReasonerError(f"{run['path']}: stage {index} should be {theirs['name']!r} as in {first['path']}, "
                                f"but is {mine['name']!r} (its stages: {', '.join(names)})")  # fmt: skip
        _check_evals(run, mine, first, theirs)
    if len(names) > len(first["stages"]):
        raise ReasonerError(f"{run['path']}: stage {names[len(first['stages'])]!r} is not in {first['path']}")


def _check_evals(run: dict[str, Any], mine: dict[str, Any], first: dict[str, Any], theirs: dict[str, Any]) -> None:
    """A stage is evaluated on the same sets, of the same sizes, in both runs."""
    if set(mine["eval"]) != set(theirs["eval"]):
        raise ReasonerError(
            f"{run['path']}: stage {mine['name']} is evaluated on {', '.join(sorted(mine['eval'])) or 'nothing'}, "
            f"in {first['path']} on {', '.join(sorted(theirs['eval'])) or 'nothing'}"
        )
    for dataset, scores in mine["eval"].items():
        if scores["n"] != theirs["eval"][dataset]["n"]:
            raise ReasonerError(f"{run['path']}: stage {mine['name']} is evaluated on {scores['n']} items of "
                                f"{dataset}, in {first['path']} on {theirs['eval'][dataset]['n']}")  # fmt: skip


def combine(paths: list[str | Path]) -> dict[str, Any]:
    """The combined report's data (report.json) of runs of several seeds; raises when they do not match."""
    if len(paths) < 2:
        raise ReasonerError("combining seeds needs at least two run folders")
    runs = [read_run(path) for path in paths]
    check_matching(runs)
    stages = []
    for index, stage in enumerate(runs[0]["stages"]):
        evals = {}
        for dataset, scores in stage["eval"].items():
            accuracy = [run["stages"][index]["eval"][dataset]["accuracy"] for run in runs]
            evals[dataset] = {"n": scores["n"], "accuracy": accuracy, **spread(accuracy).to_dict()}
            # The change from the stage `report.compared_with` names (the last one evaluated on this set, or where
            # the schedule branches the one this stage starts from), paired by seed.
            vs = scores.get("vs")
            previous = next((s["eval"][dataset] for s in stages if s["name"] == vs), None)
            if previous:
                change = spread([a - b for a, b in zip(accuracy, previous["accuracy"], strict=True)])
                evals[dataset]["delta_prev"] = {"mean": round(change.mean, 2), "sem": round(change.sem, 2)}
                evals[dataset]["vs"] = vs
        stages.append({"name": stage["name"], "kind": stage["kind"], "eval": evals})
    return {
        "runs": [{"path": run["path"], "run": run["run"], "seed": run["seed"]} for run in runs],
        "datasets": runs[0]["datasets"],
        "stages": stages,
        "baselines": baselines(runs[0]),
    }


def baselines(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per evaluation set, its `chance` / `prior` overall (one set for every seed: `check_matching`)."""
    found: dict[str, dict[str, float]] = {}
    for stage in run["stages"]:
        for dataset, scores in stage["eval"].items():
            for baseline in BASELINES:
                if baseline in scores:
                    found.setdefault(dataset, {})[baseline] = scores[baseline]["overall"]
    return found


def render_markdown(data: dict[str, Any]) -> str:
    """Per evaluation set: stage x (each seed, mean ± sd, s.e. of the mean, Δ of the mean from the stage before)."""
    runs = data["runs"]
    lines = [f"# {len(runs)} seeds: " + ", ".join(f"`{r['run']}` (seed {r['seed']})" for r in runs), ""]
    lines += [
        f"Accuracy in percent on each run's evaluation; mean ± sd over the {len(runs)} seeds (sample standard "
        f"deviation); s.e. = sd / sqrt({len(runs)}), the standard error of the mean; Δ prev = the mean's change "
        "from the stage before ± its standard error over the seeds' own changes. A change smaller than about two "
        "of its standard errors may be noise." + (" " + BRANCH_NOTE if has_branches(data) else ""),
        "",
    ]
    for dataset in data["datasets"]:
        rows = [s for s in data["stages"] if dataset in s["eval"]]
        n = rows[0]["eval"][dataset]["n"] if rows else 0
        seeds = [f"seed {r['seed']}" for r in runs]
        lines += [f"## {dataset} (n = {n})", "", "| stage | " + " | ".join(seeds) + " | mean ± sd | s.e. | Δ prev |"]
        lines.append("|" + "---|" * (len(runs) + 4))
        for baseline, value in data.get("baselines", {}).get(dataset, {}).items():
            lines.append(f"| {baseline} (no image) | " + " | ".join([""] * len(runs)) + f" | {value:.1f} |  |  |")
        for stage, mark in zip(rows, branch_marks(data, dataset), strict=True):
            scores = stage["eval"][dataset]
            delta = scores.get("delta_prev")
            cells = [f"{a:.1f}" for a in scores["accuracy"]]
            cells += [f"{scores['mean']:.1f} ± {scores['sd']:.1f}", f"{scores['sem']:.1f}"]
            cells.append(f"{delta['mean']:+.1f} ± {delta['sem']:.1f}" if delta else "")
            lines.append(f"| {stage['name']}{mark} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Runs", "", "| seed | run folder |", "|---|---|"]
    lines += [f"| {r['seed']} | {r['path']} |" for r in runs]
    return "\n".join(lines) + "\n"


def curves(data: dict[str, Any]) -> list[Curve]:
    """One curve per evaluation set: the mean over seeds ± its standard error, each seed's accuracy as dots."""
    found = []
    for dataset in data["datasets"]:
        rows = [s["eval"][dataset] for s in data["stages"] if dataset in s["eval"]]
        names = [s["name"] for s in data["stages"] if dataset in s["eval"]]
        found.append(Curve(dataset, names, [r["mean"] for r in rows], [r["sem"] for r in rows],
                           seeds=[r["accuracy"] for r in rows]))  # fmt: skip
    return found


def write_combined_report(paths: list[str | Path], out: str | Path) -> Path:
    """Write report.md, report.json and accuracy.png of runs of several seeds into `out`; returns the markdown."""
    out = Path(out)
    if any(out.resolve() == Path(p).resolve() for p in paths):
        raise ReasonerError(f"--out {out}: one of the runs; the combined report needs a folder of its own")
    data = combine(paths)
    write_json(out / "report.json", data)
    write_text(out / "report.md", render_markdown(data))
    if data["datasets"]:
        seeds = ", ".join(str(r["seed"]) for r in data["runs"])
        plot(curves(data), f"mean of seeds {seeds}", out / "accuracy.png", error_label="mean ± s.e.")
    log.info("combined report of %d runs written to %s", len(paths), out / "report.md")
    return out / "report.md"
