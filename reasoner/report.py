"""The report across stages: report.md, report.json and accuracy.png, built only from files on disk.

`reasoner report RUN_DIR` regenerates it at any time from the stage manifests and evaluation scores; it takes no
lock, so it may run while a run works in the folder. A damaged manifest or scores file is listed under "Damaged
files" (and its stage shown unfinished, its evaluation left out) instead of stopping the report. Every accuracy
comes with its binomial standard error (`eval.metrics.standard_error`), in the tables and as error bars in the plot.
Runs of several seeds are combined by `reasoner.report_seeds` from the same `collect`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasoner.atomic import atomic_path, write_json, write_text
from reasoner.benchmarks.metrics import mcnemar_p, standard_error
from reasoner.data.stage import contamination
from reasoner.errors import ReasonerError
from reasoner.rundir import DamagedFile, RunDir, StageDir, read_json_object

log = logging.getLogger(__name__)

STDERR_NOTE = (
    "Accuracy in percent; s.e. is its binomial standard error sqrt(p (1 - p) / n): the noise of evaluating on n "
    "items, not the seed-to-seed noise of training (`reasoner report RUN_DIR RUN_DIR ... --out DIR` combines runs "
    "of several seeds). Rows `chance` (perception: guessing among the options) and `prior` (synthetic worlds: the "
    "best constant answer per question kind, ignoring the image) are what a model scores without seeing. Δ prev is "
    "also read item by item: `+gained / -lost` counts the items only this stage or only the stage before gets "
    "right, and p is the exact McNemar test of that split (how often a split at least this uneven arises when "
    "neither model is better): a paired test on the same items, more sensitive than comparing the two accuracies. "
    "In a perception set's family columns, * marks a row above chance at p < 0.01 (`p_above_chance`: the exact "
    "one-sided test against guessing)."
)
MEAN_SCORE_NOTE = (
    "A `descriptions` set's accuracy is its mean fact F1 against the images' captions, its s.e. that of the mean, "
    "and items +/- count exact descriptions (docs/scoring.md)."
)
"""Added to the note when a set scores a mean (its scores.json writes its own `stderr`)."""
BRANCH_NOTE = (
    "Where the schedule branches, a stage marked `(from X)` is compared (Δ prev, items +/-) with X, the stage it "
    "starts from, not with the row above it."
)
"""Added to the note when some stage's Δ prev compares with a stage other than the row above it."""
ABOVE_CHANCE_P = 0.01
BASELINES = ("chance", "prior")


def open_run(path: str | Path) -> RunDir:
    """The run folder at `path`; a folder without stages/ is refused, naming it."""
    root = Path(path)
    if not (root / "stages").is_dir():
        raise ReasonerError(f"{root}: not a run folder (no stages/ inside)")
    return RunDir(root)


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
                "init": manifest.get("init"),
                "finished": bool(manifest),
                "train": manifest.get("metrics", {}),
                "seconds": manifest.get("seconds"),
                "eval": _read_evals(stage_dir, damaged),
            }
        )
    datasets = sorted({name for stage in stages for name in stage["eval"]})
    for dataset in datasets:
        rows = [stage for stage in stages if dataset in stage["eval"]]
        for index, stage in enumerate(rows):
            before = compared_with(stage, rows[:index])
            if before is not None:
                stage["eval"][dataset]["vs"] = before["name"]
                _pair(before["eval"][dataset], stage["eval"][dataset])
    for stage in stages:
        for scores in stage["eval"].values():
            scores.pop("items", None)
    warnings = contamination.warning_lines(_read_contamination(run_dir, damaged))
    return {"run": run_dir.root.name, "datasets": datasets, "stages": stages, "damaged": damaged, "warnings": warnings}


def _read_contamination(run_dir: RunDir, damaged: list[str]) -> dict[str, Any]:
    """The contamination guard's record of the last run (empty when absent; listed when damaged)."""
    try:
        return read_json_object(run_dir.root / contamination.RECORD_FILE) or {}
    except DamagedFile as err:
        damaged.append(str(err))
        return {}


def compared_with(stage: dict[str, Any], earlier: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The earlier row (of one set's table, in schedule order) a stage's Δ prev compares with: the row before it;
    where the schedule branches (the stage starts from an earlier stage other than that row and the base), the
    stage it starts from, or nothing when that one has no row. A stage restarting from the base (the recipe's
    later SFT iterations) continues the row before it."""
    if not earlier:
        return None
    start = stage.get("init")
    if start in (None, "base", earlier[-1]["name"]):
        return earlier[-1]
    return next((row for row in earlier if row["name"] == start), None)


def _pair(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Add `paired` (gained, lost, p) to `after` against `before`, item by item, where both have their items
    (the items both scored)."""
    if before.get("items") is None or after.get("items") is None:
        return
    shared = before["items"].keys() & after["items"].keys()
    gained = sum(after["items"][pid] and not before["items"][pid] for pid in shared)
    lost = sum(before["items"][pid] and not after["items"][pid] for pid in shared)
    after["paired"] = {"gained": gained, "lost": lost, "p": mcnemar_p(gained, lost)}


def _item_results(path: Path) -> dict[str, bool] | None:
    """pid -> correct from an evaluation's items.jsonl; None when it is missing or unreadable (no paired test)."""
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return {str(row["pid"]): bool(row["correct"]) for row in rows}
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
            above = [k for k, v in groups.items() if v.get("p_above_chance", 1.0) < ABOVE_CHANCE_P]
            n, accuracy = int(scores["n"]), float(scores["accuracy"])
            evals[scores_path.parent.name] = {
                # A set whose accuracy is a mean score (descriptions: mean F1) writes its own standard error.
                "n": n, "accuracy": accuracy, "stderr": float(scores.get("stderr", standard_error(accuracy, n))),
                **({"mean_score": True} if "stderr" in scores else {}),  # its accuracy is a mean score
                "task": tasks,
                "items": _item_results(scores_path.parent / "items.jsonl"), "above_chance": above,
            }
            for baseline in BASELINES:  # what guessing (perception) or a constant answer (synthetic) scores
                if baseline in scores:
                    evals[scores_path.parent.name][baseline] = {
                        "overall": float(scores[f"{baseline}_overall"]),
                        **{k: float(v) for k, v in scores[baseline].items()},
                    }
        except DamagedFile as err:
            damaged.append(str(err))
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            damaged.append(f"{scores_path}: damaged, unexpected content ({type(err).__name__}: {err})")
    return evals


def render_markdown(data: dict[str, Any]) -> str:
    """A table of stages x metrics per evaluation set, with deltas to the stage before and to the base."""
    lines = [f"# Run `{data['run']}`", ""] + [f"> {w}\n" for w in data.get("warnings", [])]
    mean_score = any(e.get("mean_score") for s in data["stages"] for e in s["eval"].values())
    note = STDERR_NOTE + (" " + MEAN_SCORE_NOTE if mean_score else "") + (" " + BRANCH_NOTE if has_branches(data) else "")
    lines += ([note, ""] if data["datasets"] else []) + _summary(data)
    for dataset in data["datasets"]:
        rows = [s for s in data["stages"] if dataset in s["eval"]]
        tasks = _columns(rows, dataset)
        header = "| stage | n | accuracy | s.e. | Δ prev | items +/- | p | Δ base |"
        lines += [f"## {dataset}", "", header + "".join(f" {task} |" for task in tasks), "|" + "---|" * (8 + len(tasks))]
        for baseline in BASELINES:
            found = next((s["eval"][dataset][baseline] for s in rows if baseline in s["eval"][dataset]), None)
            if found:
                cells = [baseline, "", f"{found['overall']:.1f}", "", "", "", "", ""]
                lines.append("| " + " | ".join(cells + [_pct(found.get(t)) for t in tasks]) + " |")
        base = None
        accuracy = {stage["name"]: stage["eval"][dataset]["accuracy"] for stage in rows}
        for stage, mark in zip(rows, branch_marks(data, dataset), strict=True):
            scores = stage["eval"][dataset]
            acc = scores["accuracy"]
            base = acc if base is None else base
            cells = [stage["name"] + mark, str(scores["n"]), f"{acc:.1f}", f"{scores['stderr']:.1f}"]
            paired = scores.get("paired")
            flips = ["", ""] if paired is None else [f"+{paired['gained']} / -{paired['lost']}", _p(paired["p"])]
            cells += [_delta(acc, accuracy.get(scores.get("vs"))), *flips, _delta(acc, base)]
            cells += [_pct(scores["task"].get(t)) + ("*" if t in scores["above_chance"] else "") for t in tasks]
            lines.append("| " + " | ".join(cells) + " |")
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


def branch_marks(data: dict[str, Any], dataset: str) -> list[str]:
    """Per row of `dataset`'s table, ` (from X)` when its Δ prev compares with a stage X (`vs`, from
    `compared_with`) other than the row above it, else ``."""
    rows = [s for s in data["stages"] if dataset in s["eval"]]
    above = [None] + [row["name"] for row in rows]
    return [
        f" (from {row['eval'][dataset]['vs']})" if row["eval"][dataset].get("vs") not in (None, before) else ""
        for row, before in zip(rows, above, strict=False)
    ]


def has_branches(data: dict[str, Any]) -> bool:
    """Whether some table has a stage compared with one other than the row above it (`branch_marks`)."""
    return any(any(branch_marks(data, dataset)) for dataset in data["datasets"])


def _columns(rows: list[dict[str, Any]], dataset: str) -> list[str]:
    """Breakdown columns: perception families in their fixed order (then hard_positive, pair), else sorted."""
    from reasoner.benchmarks.perception import ROWS

    found = {t for s in rows for t in s["eval"][dataset]["task"]}
    return [r for r in ROWS if r in found] + sorted(found - set(ROWS))


def _summary(data: dict[str, Any]) -> list[str]:
    """One table, stage x evaluation set (accuracy ± s.e.), when a run evaluates on more than one set."""
    if len(data["datasets"]) < 2:
        return []
    lines = ["| stage | " + " | ".join(data["datasets"]) + " |", "|" + "---|" * (1 + len(data["datasets"]))]
    for stage in data["stages"]:
        if stage["eval"]:
            cells = [_pct(stage["eval"][d]["accuracy"], stage["eval"][d]["stderr"]) if d in stage["eval"] else "-"
                     for d in data["datasets"]]  # fmt: skip
            lines.append(f"| {stage['name']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _pct(value: float | None, error: float | None = None) -> str:
    """A percentage to one decimal (`-` when absent), with `± error` when given."""
    if value is None:
        return "-"
    return f"{value:.1f}" if error is None else f"{value:.1f} ± {error:.1f}"


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.2g}"


def _delta(value: float, reference: float | None) -> str:
    return "" if reference is None else f"{value - reference:+.1f}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass
class Curve:
    """One line of an accuracy plot: a value and an error bar per stage, optionally each seed's values as dots."""

    label: str
    stages: list[str]
    values: list[float]
    errors: list[float]
    chance: float | None = None
    seeds: list[list[float]] = field(default_factory=list)
    """Per stage, the value of each seed (combined reports), drawn as dots behind the mean."""


def curves(data: dict[str, Any]) -> list[Curve]:
    """One curve per evaluation set of a run: accuracy ± its binomial standard error per stage."""
    found = []
    for dataset in data["datasets"]:
        rows = [s for s in data["stages"] if dataset in s["eval"]]
        chance = next((s["eval"][dataset]["chance"]["overall"] for s in rows if "chance" in s["eval"][dataset]), None)
        found.append(
            Curve(
                dataset,
                [s["name"] for s in rows],
                [s["eval"][dataset]["accuracy"] for s in rows],
                [s["eval"][dataset]["stderr"] for s in rows],
                chance,
            )
        )
    return found


def plot(lines: list[Curve], title: str, path: Path, *, error_label: str = "± s.e.") -> None:
    """Accuracy per stage with error bars, one line per curve, as a PNG at `path` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for curve in lines:
        bars = ax.errorbar(curve.stages, curve.values, yerr=curve.errors, marker="o", capsize=3,
                           label=f"{curve.label} ({error_label})")  # fmt: skip
        color = bars.lines[0].get_color()
        for i, (stage, seeds) in enumerate(zip(curve.stages, curve.seeds, strict=False)):
            ax.plot([stage] * len(seeds), seeds, linestyle="none", marker=".", color=color, alpha=0.4,
                    label=f"{curve.label} (each seed)" if i == 0 else None)  # fmt: skip
        if curve.chance is not None:
            ax.axhline(curve.chance, linestyle=":", color=color, label=f"{curve.label} chance")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def write_report(run_dir: RunDir) -> Path:
    """Write report.md, report.json and accuracy.png into the run folder; returns the markdown path."""
    data = collect(run_dir)
    write_json(run_dir.report_json, data)
    write_text(run_dir.report_md, render_markdown(data))
    if data["datasets"]:
        plot(curves(data), f"run {data['run']}", run_dir.root / "accuracy.png")
    log.info("report written to %s", run_dir.report_md)
    return run_dir.report_md
