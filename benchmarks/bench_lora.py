"""LoRA vs full fine-tuning on the local engine: step time and peak memory, each against its full fine-tuning peer.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_lora.py [--size wide] [--rank 8] [--repeats 2]

On a tiny random Qwen2.5-VL, one torch thread per process, the vision tower frozen as by default. `--size wide`
(the default): a shape of this benchmark's own (`WIDE`: hidden 1024, 8 layers, MLP 2816; 93M parameters), large
enough that the training state LoRA saves (gradients and Adam moments of the language model; GRPO's reference copy)
is not lost among the fixed costs of a process; `small` (4.7M) and `demo` (0.75M) are the models of
`reasoner.models.tiny.SIZES`, where those fixed costs dominate.

1. SFT: `--sft-steps` steps of 8 examples (rendered synthetic problems, reference chains);
2. GRPO: `--grpo-steps` steps of 4 prompts x 4 samples, 24 new tokens, KL 0.01 (full fine-tuning: a second,
   frozen copy of the model as the reference; LoRA: the policy with its adapters off).

Each (method, kind) runs in a fresh subprocess, so peak memories do not mix: the child imports what training
imports (peft and tensorboard in both), resets the kernel's peak-RSS mark (`/proc/self/clear_refs`), then runs
the job; it reports the median step time over the steps after the first (`time/step_s`), the peak RSS above its
RSS before the job (the model load, images, activations, gradients, optimizer state and, in GRPO, the reference
copy that LoRA does without), the process's whole peak RSS, and the trained parameters (counted afterwards). `--repeats` alternates the order (full, lora / lora, full) and keeps each one's median.
Ratios are LoRA / full: < 1 means LoRA takes less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")


WIDE = {  # 93M parameters, nearly all in the language model: where its training state (grads, Adam) outweighs the overheads
    "text_hidden": 1024, "text_layers": 8, "text_heads": 8, "text_kv_heads": 2, "text_intermediate": 2816,
    "vision_depth": 4, "vision_hidden": 128, "vision_heads": 4, "vision_intermediate": 256, "vocab_size": 2048,
    "deepstack_blocks": (1, 2), "max_visual_tokens": 256,
}  # fmt: skip


def build_model(work: Path, size: str) -> Path:
    """The tiny model of `size`: `demo` or `small` (`reasoner.models.tiny.SIZES`), or `wide`, this benchmark's own
    shape (registered here, for this process only)."""
    from reasoner.models import tiny

    if size == "wide":
        tiny.SIZES.setdefault("wide", tiny.TinySize(**WIDE))
    return tiny.ensure_tiny_model(work / "models", size=size, seed=0)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(args: argparse.Namespace) -> dict:
    """One training job in this process; returns its measurements."""
    import torch

    torch.set_num_threads(1)
    from safetensors.torch import load_file

    from reasoner.config import (
        Device,
        GRPOConfig,
        LoraConfig,
        ModelConfig,
        RunConfig,
        SamplingConfig,
        StageConfig,
        StageKind,
    )
    from reasoner.data.stage.selection import SFTExample
    from reasoner.data.worlds import TASKS, generate_mixed
    from reasoner.engines.base import TrainJob
    from reasoner.engines.local import LocalEngine
    from reasoner.prompts import format_target, load_template

    lora = LoraConfig(rank=args.rank, alpha=2 * args.rank) if args.method == "lora" else LoraConfig()
    run = RunConfig(name="bench", device=Device.cpu, model=ModelConfig(lora=lora))
    problems = generate_mixed(list(TASKS), 256, level=1, seed=11)
    root = Path(args.work) / f"{args.kind}-{args.method}-{os.getpid()}"
    if args.kind == "sft":
        data = [SFTExample(p, format_target(p.reasoning, p.answer_label())) for p in problems]
        stage = StageConfig(kind=StageKind.sft, name="s", steps=args.sft_steps, batch_size=8, lr=1e-4)
    else:
        data = problems
        grpo = GRPOConfig(sampling=SamplingConfig(n=4, max_new_tokens=24), prompts_per_step=4, kl_coef=0.01)
        stage = StageConfig(kind=StageKind.grpo, name="g", steps=args.grpo_steps, lr=1e-5, grpo=grpo)
    job = TrainJob(stage, Path(args.model), root / "ckpt", root / "model", root / "logs", load_template("reason"), 0)
    engine = LocalEngine(run)
    import peft  # noqa: F401  (imported in both, so that neither peak counts a library's import)
    import torch.utils.tensorboard  # noqa: F401

    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
    before = _rss_kib("VmRSS")
    (engine.train_sft if args.kind == "sft" else engine.train_grpo)(job, data)
    peak = _rss_kib("VmHWM")
    rows = [json.loads(line) for line in (job.log_dir / "metrics.jsonl").read_text().splitlines()]
    # Counted after the measurement: the optimizer's state holds one exp_avg per trained tensor.
    state = torch.load(next(job.ckpt_dir.glob("step_*")) / "state.pt", weights_only=False)
    trainable = sum(s["exp_avg"].numel() for s in state["optimizer"]["state"].values())
    total = sum(t.numel() for t in load_file(job.out_model / "model.safetensors").values())
    return {
        "step_s": statistics.median(row["time/step_s"] for row in rows[1:]),
        "peak_growth_mib": (peak - before) / 1024,
        "peak_rss_mib": peak / 1024,
        "trainable": trainable,
        "parameters": total,
    }


def measure(args: argparse.Namespace, model: Path, work: Path, kind: str, method: str) -> dict:
    command = [
        sys.executable, __file__, "--child", method, "--kind", kind, "--model", str(model), "--work", str(work),
        "--rank", str(args.rank), "--sft-steps", str(args.sft_steps), "--grpo-steps", str(args.grpo_steps),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} {method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="wide", choices=("demo", "small", "wide"), help="the tiny model's size")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--sft-steps", type=int, default=6)
    parser.add_argument("--grpo-steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=("full", "lora"), help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=("sft", "grpo"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.method = args.child
        print(json.dumps(child(args)), flush=True)
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_model(work, args.size)
        results: dict[tuple[str, str], list[dict]] = {}
        for kind in ("sft", "grpo"):
            for repeat in range(args.repeats):
                for method in ("full", "lora") if repeat % 2 == 0 else ("lora", "full"):
                    found = measure(args, model, work, kind, method)
                    results.setdefault((kind, method), []).append(found)
                    print(f"{kind} {method}: {json.dumps(found)}", flush=True)

    def median(kind: str, method: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(kind, method)])

    full_params = results[("sft", "full")][0]
    print(
        f"\ntiny '{args.size}' Qwen2.5-VL, {full_params['parameters']:,} parameters; trainable: full "
        f"{full_params['trainable']:,}, LoRA rank {args.rank} {results[('sft', 'lora')][0]['trainable']:,}"
    )
    print(f"{'what':<34} {'full':>9} {'lora':>9} {'lora/full':>10}")
    for kind in ("sft", "grpo"):
        for key, label in (("step_s", "step (s)"), ("peak_growth_mib", "peak RSS growth (MiB)"),
                           ("peak_rss_mib", "peak RSS (MiB)")):  # fmt: skip
            full, lora = median(kind, "full", key), median(kind, "lora", key)
            print(f"{kind + ' ' + label:<34} {full:>9.3f} {lora:>9.3f} {lora / full:>10.2f}")


if __name__ == "__main__":
    main()
