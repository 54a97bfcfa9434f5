"""What makes the local engine fast on a small CPU machine, each measured against its peer in the same process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_local_speed.py [--steps 16] [--rollouts 8]

On the tiny 'demo' Qwen2.5-VL after a short SFT warm-up (so responses end as the demo's do), with the demo's
shapes (8 prompts x 16 samples, 60 new tokens at most, temperature 0.5; one torch thread per process):

1. attention: GRPO rollouts with transformers' own `sdpa` vs `grouped_sdpa` (`reasoner.models.loading`), the same
   prompts and seeds; the sampled tokens are checked equal;
2. training: GRPO steps on 1 vs 2 data-parallel processes (`processes`, `reasoner.forking.ranks`); median step
   time over the steps after the first;
3. generation: greedy evaluation-style generation of 256 requests (batch 16) on 1 vs 2 processes
   (`reasoner.forking.fork_map`); the completions are checked equal.

Ratios > 1 mean the second is faster. Two processes need two free cores: on a busy machine they gain less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPTS, SAMPLES, MAX_NEW = 8, 16, 60  # the demo's GRPO step


def warm_model(work: Path) -> tuple[Path, list]:
    """The tiny demo model after 40 SFT steps on reference chains, and the problems it was trained on."""
    from reasoner.config import RunConfig, StageConfig, StageKind
    from reasoner.data.stage.selection import SFTExample
    from reasoner.data.worlds import TASKS, generate_mixed
    from reasoner.engines.base import TrainJob
    from reasoner.engines.local import LocalEngine
    from reasoner.models.tiny import ensure_tiny_model
    from reasoner.prompts import format_target, load_template

    base = ensure_tiny_model(work / "models", size="demo", seed=0)
    problems = generate_mixed(list(TASKS), 512, level=1, seed=11)
    examples = [SFTExample(p, format_target(p.reasoning, p.answer_label())) for p in problems]
    stage = StageConfig(kind=StageKind.sft, name="warm", steps=40, batch_size=16, lr=3e-3)
    root = work / "warm"
    job = TrainJob(stage, base, root / "ckpt", root / "model", root / "logs", load_template("reason"), seed=0)
    LocalEngine(RunConfig(name="bench")).train_sft(job, examples)
    return job.out_model, problems


def bench_attention(model_dir: Path, problems: list, rollouts: int) -> tuple[float, float]:
    import torch

    from reasoner.engines.local.grpo import encode_problems
    from reasoner.engines.local.rollout import StopRule, rollout
    from reasoner.models.loading import load_model
    from reasoner.prompts import load_template

    template = load_template("reason")
    times, tokens = {}, {}
    for name in ("sdpa", "grouped_sdpa"):
        model, processor = load_model(model_dir)
        if name == "sdpa":
            model.set_attn_implementation("sdpa")
        stop = StopRule.for_model(model, processor)
        batches = [
            encode_problems(model, processor, problems[k * PROMPTS : (k + 1) * PROMPTS], template, torch.device("cpu"))
            for k in range(rollouts + 1)
        ]
        out, spent = [], []
        for k, prompts in enumerate(batches):
            started = time.perf_counter()
            result = rollout(
                model, processor, prompts, group=SAMPLES, temperature=0.5, top_p=1.0, max_new_tokens=MAX_NEW,
                stop=stop, generator=torch.Generator().manual_seed(k),
            )  # fmt: skip
            spent.append(time.perf_counter() - started)
            out.append(result.tokens)
        times[name], tokens[name] = statistics.median(spent[1:]), out
    same = all(a.shape == b.shape and bool((a == b).all()) for a, b in zip(*tokens.values(), strict=True))
    assert same, "grouped_sdpa sampled other tokens than sdpa"
    return times["sdpa"], times["grouped_sdpa"]


def bench_training(model_dir: Path, problems: list, steps: int, work: Path) -> dict[int, float]:
    from reasoner.config import GRPOConfig, RunConfig, SamplingConfig, StageConfig, StageKind
    from reasoner.engines.base import TrainJob
    from reasoner.engines.local import LocalEngine
    from reasoner.prompts import load_template

    grpo = GRPOConfig(
        sampling=SamplingConfig(n=SAMPLES, temperature=0.5, top_p=1.0, max_new_tokens=MAX_NEW),
        prompts_per_step=PROMPTS,
        kl_coef=0.02,
    )
    stage = StageConfig(kind=StageKind.grpo, name="bench", steps=steps, lr=1e-4, grpo=grpo)
    medians = {}
    for processes in (1, 2):
        root = work / f"grpo{processes}"
        job = TrainJob(stage, model_dir, root / "ckpt", root / "model", root / "logs", load_template("reason"), seed=0)
        LocalEngine(RunConfig(name="bench", processes=processes)).train_grpo(job, problems)
        rows = [json.loads(line) for line in (root / "logs" / "metrics.jsonl").read_text().splitlines()]
        medians[processes] = statistics.median(row["time/step_s"] for row in rows[1:])
    return medians


def bench_generation(model_dir: Path, problems: list) -> dict[int, float]:
    from reasoner.generation import GenerationRequest, HFGenerator, SamplingSpec
    from reasoner.prompts import load_template, problem_messages

    template = load_template("reason")
    requests = [GenerationRequest(problem_messages(p, template), p.load_images(), id=p.id) for p in problems[:256]]
    spec = SamplingSpec(n=1, temperature=0.0, max_new_tokens=MAX_NEW)
    seconds, results = {}, {}
    HFGenerator.from_pretrained(model_dir, batch_size=16, show_progress=False).generate(requests[:16], spec)  # warm-up
    for processes in (1, 2):
        generator = HFGenerator.from_pretrained(model_dir, batch_size=16, show_progress=False, processes=processes)
        started = time.perf_counter()
        results[processes] = generator.generate(requests, spec)
        seconds[processes] = time.perf_counter() - started
    assert results[1] == results[2], "two processes generated other completions than one"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16, help="GRPO steps per process count")
    parser.add_argument("--rollouts", type=int, default=8, help="rollouts timed per attention implementation")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, problems = warm_model(work)
        sdpa, grouped = bench_attention(model_dir, problems, args.rollouts)
        print(f"attention: sdpa {sdpa:.3f} s, grouped_sdpa {grouped:.3f} s per rollout", flush=True)
        training = bench_training(model_dir, problems, args.steps, work)
        print(f"training: {training} s per step by processes", flush=True)
        generation = bench_generation(model_dir, problems)
    print(f"\n{'what':<44} {'peer':>9} {'ours':>9} {'ratio':>7}")
    print(f"{'rollout 8x16 (s): sdpa vs grouped_sdpa':<44} {sdpa:>9.3f} {grouped:>9.3f} {sdpa / grouped:>7.2f}")
    print(
        f"{'GRPO step 8x16 (s): 1 vs 2 processes':<44} {training[1]:>9.3f} {training[2]:>9.3f} "
        f"{training[1] / training[2]:>7.2f}"
    )
    print(
        f"{'greedy generation, 256 requests (s): 1 vs 2':<44} {generation[1]:>9.2f} {generation[2]:>9.2f} "
        f"{generation[1] / generation[2]:>7.2f}"
    )


if __name__ == "__main__":
    main()
