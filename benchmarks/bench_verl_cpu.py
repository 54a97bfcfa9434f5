"""Engine parity and speed on the CPU: the demo's SFT-1 and GRPO-1 on the `local` engine and on verl's real trainers,
the latter with verl's vLLM rollout (vLLM's CPU build) and with our transformers rollout (`hf`).

    python benchmarks/bench_verl_cpu.py [--sft-steps 80] [--grpo-steps 10] [--seed 0] [--out /tmp/bench-verl-cpu]

The runs are configs/demo-verl.yaml's first two stages (same tiny model, data, lr, batch, warmup, steps), with
`engine: local`, with `engine: verl` (`cluster.device: cpu`, `cluster.cpu_rollout: vllm`) and with verl and
`cluster.cpu_rollout: hf`, each as `reasoner run` in a subprocess, one after the other.
Printed: the SFT loss per step side by side, the GRPO reward (mean 0/1 accuracy of the sampled responses) per
step, the median seconds per GRPO step (steady state: steps after the first), each stage's wall time, and the
verl/local ratios. Both train in fp32 on the CPU. Differences by design are listed in the README (engine parity):
the engines draw their batches in different orders, and GRPO rewards are 0/1 on a few samples per step (noisy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


ENGINES = {"local": ("local", None), "verl": ("verl", "vllm"), "verl-hf": ("verl", "hf")}
"""Run label -> (engine, cluster.cpu_rollout)."""


def write_config(label: str, args: argparse.Namespace) -> Path:
    """configs/demo-verl.yaml cut to SFT-1 -> GRPO-1 with the benchmark's steps, for the run `label`."""
    engine, rollout = ENGINES[label]
    config = yaml.safe_load((REPO / "configs" / "demo-verl.yaml").read_text())
    config.update(name=f"bench-{label}", engine=engine, seed=args.seed, output_dir=str(args.out))
    if rollout:
        config["cluster"]["cpu_rollout"] = rollout
    config["datasets"]["heldout"]["n"] = 50
    config["stages"] = config["stages"][:2]
    config["stages"][0]["steps"] = args.sft_steps
    config["stages"][1]["steps"] = args.grpo_steps
    path = args.out / f"bench-{label}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run(engine: str, args: argparse.Namespace) -> float:
    """Run one schedule (a label of ENGINES); returns its wall time (a finished run is reused: delete --out)."""
    started = time.perf_counter()
    log = args.out / f"bench-{engine}.log"
    with open(log, "w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "reasoner.cli", "run", str(write_config(engine, args))],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    if done.returncode:
        sys.exit(f"{engine} run failed ({done.returncode}); see {log}")
    return time.perf_counter() - started


def rows(engine: str, args: argparse.Namespace, stage: str) -> list[dict]:
    """Per-step metrics of one stage, as {"step": n, metric: value, ...} for either engine."""
    logs = args.out / f"bench-{engine}" / "stages" / stage / "logs"
    if engine == "local":
        return [json.loads(line) for line in (logs / "metrics.jsonl").read_text().splitlines()]
    return [{"step": r["step"], **r["data"]} for r in map(json.loads, (logs / "verl_metrics.jsonl").read_text().splitlines())]


def stage_seconds(engine: str, args: argparse.Namespace, stage: str) -> float:
    manifest = args.out / f"bench-{engine}" / "stages" / stage / "manifest.json"
    return float(json.loads(manifest.read_text())["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-steps", type=int, default=80)  # the demo's SFT-1: enough to get non-zero rewards
    parser.add_argument("--grpo-steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-verl-cpu"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    wall = {label: run(label, args) for label in ENGINES}

    print(f"\nSFT-1, {args.sft_steps} steps: train/loss per step")
    local_sft, verl_sft = rows("local", args, "01_sft"), rows("verl", args, "01_sft")
    print(f"{'step':>5} {'local':>8} {'verl':>8}")
    for a, b in zip(local_sft, verl_sft, strict=False):
        print(f"{a['step']:>5} {a['train/loss']:>8.4f} {b['train/loss']:>8.4f}")
    gaps = [abs(a["train/loss"] - b["train/loss"]) for a, b in zip(local_sft, verl_sft, strict=False)]
    print(f"mean |local - verl| loss: {statistics.mean(gaps):.4f}; final: {local_sft[-1]['train/loss']:.4f} vs "
          f"{verl_sft[-1]['train/loss']:.4f}")

    print(f"\nGRPO-1, {args.grpo_steps} steps: mean reward (accuracy of the samples) per step, seconds per step")
    local_grpo, verl_grpo = rows("local", args, "02_grpo"), rows("verl", args, "02_grpo")
    print(f"{'step':>5} {'local':>8} {'verl':>8} {'local s':>8} {'verl s':>8}")
    for a, b in zip(local_grpo, verl_grpo, strict=False):
        print(f"{a['step']:>5} {a['reward/accuracy']:>8.3f} {b['critic/score/mean']:>8.3f} "
              f"{a['time/step_s']:>8.2f} {b['timing_s/step']:>8.2f}")
    local_step = statistics.median(r["time/step_s"] for r in local_grpo[1:])
    verl_step = statistics.median(r["timing_s/step"] for r in verl_grpo[1:])
    print(f"mean reward: local {statistics.mean(r['reward/accuracy'] for r in local_grpo):.3f}, "
          f"verl {statistics.mean(r['critic/score/mean'] for r in verl_grpo):.3f}")
    print(f"seconds per GRPO step (median after the first): local {local_step:.2f}, verl {verl_step:.2f} "
          f"-> verl/local {verl_step / local_step:.1f}x")
    hf_grpo = rows("verl-hf", args, "02_grpo")
    hf_step = statistics.median(r["timing_s/step"] for r in hf_grpo[1:])
    print(f"verl rollouts: vllm {verl_step:.2f} s per step, hf {hf_step:.2f} s -> hf/vllm {hf_step / verl_step:.2f}x; "
          f"rollout-vs-trainer probability gap (training/rollout_probs_diff_max, max over steps) vllm "
          f"{max(r['training/rollout_probs_diff_max'] for r in verl_grpo):.2e}, hf "
          f"{max(r['training/rollout_probs_diff_max'] for r in hf_grpo):.2e}")
    for stage in ("01_sft", "02_grpo"):
        a, b, c = (stage_seconds(label, args, stage) for label in ENGINES)
        print(f"stage {stage}: local {a:.1f} s, verl {b:.1f} s (verl/local {b / a:.1f}x), verl with hf rollout {c:.1f} s")
    print("whole run (with evaluation): " + ", ".join(f"{label} {wall[label]:.0f} s" for label in ENGINES))


if __name__ == "__main__":
    main()
