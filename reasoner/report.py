"""The report across stages: report.md, report.json and accuracy.png, built only from files on disk.

`reasoner report RUN_DIR` regenerates it at any time from the stage manifests and evaluation scores; it takes no
lock, so it may run while a run works in the folder. A damaged manifest or scores file is listed under "Damaged
files" (and its stage shown unfinished, its evaluation left out) instead of stopping the report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from reasoner.atomic import atomic_path, write_json, write_text
from reasoner.rundir import DamagedFile, RunDir, StageDir, read_json_object

log = logging.getLogger(__name__)


def collect(run_dir: RunDir) -> dict[str, Any]:
    """Everything the report shows, read from the stage folders (unfinished stages included, marked so)."""
    stages, damaged = [], []
    for stage_dir in run_dir.stage_dirs():
        try:
            manifest = stage_dir.read_manifest() or {}
        except DamagedFile as err:
            manifest = {}
            damaged.append(str(err))
        stages.append(
            {
                "dir": stage_dir.root.name,
                "name": manifest.get("name", stage_dir.root.name),
                "kind": manifest.get("kind", stage_dir.root.name.split("_", 1)[-1]),
                "finished": bool(manifest),
                "train": manifest.get("metrics", {}),
                "seconds": manifest.get("seconds"),
                "eval": _read_evals(stage_dir, damaged),
            }
        )
    datasets = sorted({name for stage in stages for name in stage["eval"]})
    return {"run": run_dir.root.name, "datasets": datasets, "stages": stages, "damaged": damaged}


def _read_evals(stage_dir: StageDir, damaged: list[str]) -> dict[str, dict]:
    """The finished evaluations of a stage; a damaged scores file is added to `damaged` and left out."""
    evals = {}
    eval_root = stage_dir.root / "eval"
    for scores_path in sorted(eval_root.glob("*/scores.json")) if eval_root.is_dir() else []:
        try:
            scores = read_json_object(scores_path, ("n", "accuracy"))
            # Perception sets break down by family (with chance levels); the others by task.
            groups = scores.get("breakdown", {})
            groups = groups.get("family") or groups.get("task", {})
            tasks = {k: float(v["accuracy"]) for k, v in groups.items()}
            evals[scores_path.parent.name] = {"n": int(scores["n"]), "accuracy": float(scores["accuracy"]), "task": tasks}
            if "chance" in scores:
                evals[scores_path.parent.name]["chance"] = {
                    "overall": float(scores["chance_overall"]), **{k: float(v) for k, v in scores["chance"].items()}
                }
        except DamagedFile as err:
            damaged.append(str(err))
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            damaged.append(f"{scores_path}: damaged, unexpected content ({type(err).__name__}: {err})")
    return evals


def render_markdown(data: dict[str, Any]) -> str:
    """A table of stages x metrics per evaluation set, with deltas to the stage before and to the base."""
    lines = [f"# Run `{data['run']}`", ""] + _summary(data)
    for dataset in data["datasets"]:
        rows = [s for s in data["stages"] if dataset in s["eval"]]
        tasks = _columns(rows, dataset)
        lines += [f"## {dataset}", "", "| stage | n | accuracy | Δ prev | Δ base | " + " | ".join(tasks) + " |"]
        lines.append("|" + "---|" * (5 + len(tasks)))
        chance = next((s["eval"][dataset]["chance"] for s in rows if "chance" in s["eval"][dataset]), None)
        if chance:  # perception sets: what guessing scores, beside every column
            cells = ["chance", "", f"{chance['overall']:.1f}", "", ""] + [_pct(chance.get(t)) for t in tasks]
            lines.append("| " + " | ".join(cells) + " |")
        base = prev = None
        for stage in rows:
            scores = stage["eval"][dataset]
            acc = scores["accuracy"]
            base = acc if base is None else base
            cells = [f"{stage['name']}", str(scores["n"]), f"{acc:.1f}", _delta(acc, prev), _delta(acc, base)]
            cells += [_pct(scores["task"].get(t)) for t in tasks]
            lines.append("| " + " | ".join(cells) + " |")
            prev = acc
        lines.append("")
    lines += ["## Training", "", "| stage | finished | seconds | metrics |", "|---|---|---|---|"]
    for stage in data["stages"]:
        metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(stage["train"].items()))
        seconds = f"{stage['seconds']:.0f}" if stage["seconds"] is not None else "-"
        lines.append(f"| {stage['name']} | {'yes' if stage['finished'] else 'no'} | {seconds} | {metrics} |")
    if data.get("damaged"):
        lines += ["", "## Damaged files", "", "Left out above; `reasoner run ... --redo-from STAGE` redoes a stage.", ""]
        lines += [f"- {problem}" for problem in data["damaged"]]
    return "\n".join(lines) + "\n"


def _columns(rows: list[dict[str, Any]], dataset: str) -> list[str]:
    """Breakdown columns: perception families in their fixed order (then hard_positive, pair), else sorted."""
    from reasoner.eval.perception import ROWS

    found = {t for s in rows for t in s["eval"][dataset]["task"]}
    return [r for r in ROWS if r in found] + sorted(found - set(ROWS))


def _summary(data: dict[str, Any]) -> list[str]:
    """One table, stage x evaluation set (accuracy), when a run evaluates on more than one set."""
    if len(data["datasets"]) < 2:
        return []
    lines = ["| stage | " + " | ".join(data["datasets"]) + " |", "|" + "---|" * (1 + len(data["datasets"]))]
    for stage in data["stages"]:
        if stage["eval"]:
            cells = [_pct(stage["eval"].get(d, {}).get("accuracy")) for d in data["datasets"]]
            lines.append(f"| {stage['name']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _delta(value: float, reference: float | None) -> str:
    return "" if reference is None else f"{value - reference:+.1f}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot(data: dict[str, Any], path: Path) -> None:
    """Accuracy per stage for each evaluation set, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for dataset in data["datasets"]:
        rows = [s for s in data["stages"] if dataset in s["eval"]]
        ax.plot([s["name"] for s in rows], [s["eval"][dataset]["accuracy"] for s in rows], marker="o", label=dataset)
        chance = next((s["eval"][dataset]["chance"]["overall"] for s in rows if "chance" in s["eval"][dataset]), None)
        if chance is not None:
            ax.axhline(chance, linestyle=":", color=ax.lines[-1].get_color(), label=f"{dataset} chance")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"run {data['run']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def write_report(run_dir: RunDir) -> Path:
    """Write report.md, report.json and accuracy.png into the run folder; returns the markdown path."""
    data = collect(run_dir)
    write_json(run_dir.report_json, data)
    write_text(run_dir.report_md, render_markdown(data))
    if data["datasets"]:
        with atomic_path(run_dir.root / "accuracy.png") as tmp:
            plot(data, tmp)
    log.info("report written to %s", run_dir.report_md)
    return run_dir.report_md
