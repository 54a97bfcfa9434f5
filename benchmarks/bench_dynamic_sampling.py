"""Dynamic sampling (DAPO's group filter) on the demo's GRPO-1: its generation cost and its effect on accuracy.

    .venv/bin/python benchmarks/bench_dynamic_sampling.py [--seeds 0 1 2] [--max-extra-batches 4] [--out runs/bench-ds]

For each seed, configs/demo.yaml runs up to SFT-1 once (base, teacher, SFT-1: shared), then GRPO-1 twice from that
same SFT-1 model, in copies of that run folder: as configured (`off`), and with `stages.grpo1.grpo.dynamic_sampling
=true` (`on`: a step drops groups whose 16 samples all got the same reward and refills from up to
`max_extra_batches` extra generation batches). Both GRPO-1 models are evaluated on the demo's held-out set (500
problems) and perception set, and compared item by item: per seed the exact McNemar test of the items only one of
the two gets right (the report's paired test), and over the seeds the mean change with its standard error (paired
by seed). Cost: GRPO-1's training seconds (sum of step times; both variants run in this process, one after the
other, on the same machine), generation batches per step, groups dropped per step. Folders that are finished
already are reused, so a second call only prints.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
PREFIX = ("base", "teacher", "sft1")
SETS = ("heldout", "perception")


def _run(name: str, seed: int, out: Path, stop_after: str, extra: list[str]) -> Path:
    """configs/demo.yaml for `seed` in out/<name>, its schedule cut after `stop_after`; returns the run folder."""
    from reasoner.pipeline import execute, load_run

    run = load_run(DEMO, [f"seed={seed}", f"name={name}", f"output_dir={out}", *extra])
    names = [p.name for p in run.plans]
    run.plans = run.plans[: names.index(stop_after) + 1]
    execute(run)
    return run.dir.root


def _grpo1(root: Path) -> Path:
    return next(root.glob("stages/03_grpo"))


def _correct(root: Path, dataset: str) -> dict[str, bool]:
    path = _grpo1(root) / "eval" / dataset / "items.jsonl"
    return {row["pid"]: bool(row["correct"]) for row in map(json.loads, path.read_text().splitlines())}


def _cost(root: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (_grpo1(root) / "logs" / "metrics.jsonl").read_text().splitlines()]
    return {
        "seconds": sum(r.get("time/step_s", 0.0) for r in rows),
        "generation_batches": statistics.mean(r.get("dynamic/generation_batches", 1.0) for r in rows),
        "groups_dropped": statistics.mean(r.get("dynamic/groups_dropped", 0.0) for r in rows),
        "groups_short": sum(r.get("dynamic/groups_short", 0.0) for r in rows),
        "accuracy_train": statistics.mean(r["reward/accuracy"] for r in rows),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-extra-batches", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-ds")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from reasoner.benchmarks.metrics import mcnemar_p

    on = ["stages.grpo1.grpo.dynamic_sampling=true", f"stages.grpo1.grpo.max_extra_batches={args.max_extra_batches}"]
    rows, changes = [], {d: [] for d in SETS}
    for seed in args.seeds:
        prefix = _run(f"prefix-s{seed}", seed, args.out, PREFIX[-1], [])
        roots = {}
        for variant, extra in (("off", []), ("on", on)):
            root = args.out / f"{variant}-s{seed}"
            if not root.exists():  # the shared prefix, copied: GRPO-1 starts from the same SFT-1 model
                shutil.copytree(prefix, root, ignore=shutil.ignore_patterns("run.lock", "report.*", "accuracy.png"))
            roots[variant] = _run(f"{variant}-s{seed}", seed, args.out, "grpo1", extra)
        cost = {v: _cost(r) for v, r in roots.items()}
        line = {"seed": seed, **{f"{v}/{k}": round(x, 3) for v, c in cost.items() for k, x in c.items()}}
        for dataset in SETS:
            off, dyn = _correct(roots["off"], dataset), _correct(roots["on"], dataset)
            gained = sum(dyn[p] and not off[p] for p in off)
            lost = sum(off[p] and not dyn[p] for p in off)
            acc = {v: 100.0 * sum(c.values()) / len(c) for v, c in (("off", off), ("on", dyn))}
            changes[dataset].append(acc["on"] - acc["off"])
            line.update(
                {
                    f"{dataset}/off": round(acc["off"], 1),
                    f"{dataset}/on": round(acc["on"], 1),
                    f"{dataset}/gained_lost": f"+{gained} / -{lost}",
                    f"{dataset}/mcnemar_p": round(mcnemar_p(gained, lost), 4),
                }
            )
        rows.append(line)
        print(json.dumps(line), flush=True)
    print("\nseed | GRPO-1 s off | on | ratio | gen. batches/step on | groups dropped/step on | "
          + " | ".join(f"{d} off | on | +/- | p" for d in SETS))
    for r in rows:
        ratio = r["on/seconds"] / r["off/seconds"]
        print(f"{r['seed']} | {r['off/seconds']:.0f} | {r['on/seconds']:.0f} | {ratio:.2f} | "
              f"{r['on/generation_batches']:.2f} | {r['on/groups_dropped']:.2f} | "
              + " | ".join(f"{r[f'{d}/off']} | {r[f'{d}/on']} | {r[f'{d}/gained_lost']} | {r[f'{d}/mcnemar_p']}"
                           for d in SETS))  # fmt: skip
    for dataset, deltas in changes.items():
        mean = statistics.mean(deltas)
        se = statistics.stdev(deltas) / len(deltas) ** 0.5 if len(deltas) > 1 else float("nan")
        print(f"{dataset}: mean change on - off {mean:+.1f} points, s.e. {se:.1f} (paired by seed, {len(deltas)} seeds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
