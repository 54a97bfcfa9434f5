"""What STIC adds: configs/stic-demo.yaml's branches compared over seeds, with paired tests.

    .venv/bin/python experiments/stic_compare.py runs/stic-demo-s0 runs/stic-demo-s1 runs/stic-demo-s2 \
        [--out runs/stic-demo-compare.md]

(`make stic-demo` runs the three seeds and this.) Every run of the schedule trains, from one caption model, three
branches with the same SFT and GRPO settings: STIC (stic -> dif -> grpo), STIC's stage 1 alone (stic -> stic_sft
-> stic_grpo) and none (plain -> plain_grpo); and dif_mix, dif with the exact captions mixed in. For each pair of
comparable stages and each evaluation set (`heldout`: answer accuracy, the image alone; `heldout-dar`: the same
problems describe-and-respond, the model's own description in the prompt, as STIC evaluates "with DaR";
`descriptions`: mean fact F1 of the descriptions) it gives each seed's difference and their mean with its standard
error (paired by seed), and a paired test on the items, pooled over the seeds: heldout and heldout-dar, the exact
McNemar test of the items only one of the two stages gets right; descriptions, the exact sign test of the items
whose F1 differs. It also gives the STIC stage's held-out preference accuracy (before -> after) per seed. Reads
each run's stage folders (scores.json, items.jsonl, manifest.json), never its report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reasoner.benchmarks.metrics import mcnemar_p, spread  # noqa: E402

COMPARISONS = (
    ("grpo", "plain_grpo", "STIC (stage 1 + description-infused SFT) vs none, after GRPO"),
    ("stic_grpo", "plain_grpo", "STIC stage 1 only vs none, after GRPO"),
    ("dif", "plain", "STIC vs none, after SFT"),
    ("stic_sft", "plain", "STIC stage 1 only vs none, after SFT"),
    ("stic", "caption", "the STIC stage (DPO) vs its start"),
    ("dif_mix", "dif", "description-infused SFT with caption mixing vs without"),
    ("dif_mix", "plain", "STIC with caption mixing vs none, after SFT"),
)
"""(stage, its counterpart, what the difference means)."""
SETS = {"heldout": "correct", "heldout-dar": "correct", "descriptions": "f1"}
"""Evaluation set -> the per-item value its paired test reads."""


def stage_dirs(run: Path) -> dict[str, Path]:
    """Stage name -> its folder, from each finished stage's manifest."""
    dirs = {}
    for folder in sorted((run / "stages").iterdir()):
        manifest = folder / "manifest.json"
        if manifest.is_file():
            dirs[json.loads(manifest.read_text())["name"]] = folder
    return dirs


def items(stage: Path, dataset: str) -> dict[str, float]:
    rows = [json.loads(line) for line in (stage / "eval" / dataset / "items.jsonl").read_text().splitlines()]
    return {row["pid"]: float(row[SETS[dataset]]) for row in rows}


def accuracy(stage: Path, dataset: str) -> float:
    return float(json.loads((stage / "eval" / dataset / "scores.json").read_text())["accuracy"])


def compare(runs: list[Path]) -> str:
    stages = [stage_dirs(run) for run in runs]
    lines = [f"# STIC vs no STIC: configs/stic-demo.yaml over {len(runs)} seeds", "",
             "Runs: " + ", ".join(str(run) for run in runs), ""]  # fmt: skip
    lines += ["## The STIC stage: held-out preference accuracy (start -> end)", ""]
    for run, found in zip(runs, stages, strict=True):
        metrics = json.loads((found["stic"] / "manifest.json").read_text())["metrics"]
        lines.append(f"- {run.name}: {metrics['dpo_eval/start_accuracy']:.3f} -> {metrics['dpo_eval/accuracy']:.3f} "
                     f"({int(metrics['data/heldout_pairs'])} held-out pairs, {int(metrics['data/train_pairs'])} "
                     f"trained on, {int(metrics['data/dropped_identical'])} identical dropped)")  # fmt: skip
    for dataset in SETS:
        if not (stages[0]["caption"] / "eval" / dataset).is_dir():
            continue
        what = {"heldout": "answer accuracy, the image alone", "heldout-dar": "answer accuracy, describe and respond",
                "descriptions": "mean fact F1 of the descriptions"}[dataset]  # fmt: skip
        lines += ["", f"## {dataset} ({what}, percent)", "",
                  "| comparison | stage | vs | per seed | mean ± s.e. (paired by seed) | items +/- pooled | p |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for stage, other, meaning in COMPARISONS:
            if not all(stage in found and other in found for found in stages):
                continue
            if not all((found[stage] / "eval" / dataset).is_dir() for found in stages):
                continue
            diffs = [accuracy(found[stage], dataset) - accuracy(found[other], dataset) for found in stages]
            gained = lost = 0
            for found in stages:
                mine, theirs = items(found[stage], dataset), items(found[other], dataset)
                gained += sum(mine[pid] > theirs[pid] for pid in mine)
                lost += sum(mine[pid] < theirs[pid] for pid in mine)
            mean = spread(diffs) if len(diffs) > 1 else None
            summary = f"{mean.mean:+.1f} ± {mean.sem:.1f}" if mean else f"{diffs[0]:+.1f}"
            per_seed = " / ".join(f"{d:+.1f}" for d in diffs)
            lines.append(f"| {meaning} | {stage} | {other} | {per_seed} | {summary} | +{gained} / -{lost} | "
                         f"{mcnemar_p(gained, lost):.2g} |")  # fmt: skip
        means = {name: statistics.fmean(accuracy(found[name], dataset) for found in stages)
                 for name in stages[0] if (stages[0][name] / "eval" / dataset).is_dir()}  # fmt: skip
        lines += ["", "Mean over seeds per stage: " + ", ".join(f"{n} {m:.1f}" for n, m in means.items())]
    lines += ["", "Items +/-: pooled over seeds, the items where the stage is above / below its counterpart (heldout, "
              "heldout-dar: right vs wrong; descriptions: a higher vs lower F1); p: the exact two-sided sign "
              "(McNemar) test of that split."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of configs/stic-demo.yaml, one per seed")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args()
    text = compare(args.runs)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
