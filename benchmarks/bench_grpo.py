"""GRPO step time of the local engine vs TRL's GRPOTrainer, same tiny model, batch, tokens and KL setting.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_grpo.py [--steps 8] [--max-new-tokens 16] [--kl-coef 0.01]

Both train the tiny "demo" Qwen2.5-VL (seed 0) on one CPU thread with 8 prompts x 4 samples per step, on the
same synthetic level-1 problems and prompt template, scored by `rewards.score`. The untrained model never
writes an end token, so every sample runs the full `--max-new-tokens` in both. The first step is warm-up and
is left out; the table shows medians over the rest. TRL is a benchmark-only dependency (the `bench` extra):
`pip install 'trl==1.16.*'`.
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

PROMPTS, SAMPLES, LR = 8, 4, 1e-4


def make_problems(steps: int):
    from reasoner.data.worlds import TASKS, generate_mixed

    return generate_mixed(list(TASKS), PROMPTS * steps, level=1, seed=1)


def run_local(model_dir: Path, problems, args, work: Path) -> dict[str, float]:
    """Steps of `LocalEngine.train_grpo`; per-step times from its metrics.jsonl."""
    from reasoner.config import GRPOConfig, RunConfig, SamplingConfig, StageConfig, StageKind
    from reasoner.engines.base import TrainJob
    from reasoner.engines.local import LocalEngine
    from reasoner.prompts import load_template

    grpo = GRPOConfig(
        sampling=SamplingConfig(n=SAMPLES, temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens),
        prompts_per_step=PROMPTS,
        kl_coef=args.kl_coef,
    )
    stage = StageConfig(
        kind=StageKind.grpo, name="bench", steps=args.steps, lr=LR, warmup_ratio=0.0, grpo=grpo
    )
    job = TrainJob(
        stage, model_dir, work / "ckpt", work / "model", work / "logs", load_template("reason"), seed=0
    )
    LocalEngine(RunConfig(name="bench", threads=1)).train_grpo(job, problems)
    rows = [json.loads(line) for line in (work / "logs" / "metrics.jsonl").read_text().splitlines()][1:]
    keys = {
        "step": "time/step_s",
        "generate": "time/generate_s",
        "score": "time/score_s",
        "logprob": "time/logprob_s",
        "update": "time/update_s",
    }
    return {name: statistics.median(row[key] for row in rows) for name, key in keys.items()}


def run_trl(model_dir: Path, problems, args, work: Path) -> dict[str, float]:
    """Steps of TRL's GRPOTrainer; per-step wall time from a callback."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import rewards
    from reasoner.models.loading import load_model
    from reasoner.prompts import load_template, problem_messages

    template = load_template("reason")
    rows = [
        {
            "prompt": problem_messages(p, template),
            "image": p.load_images()[0],
            "answer": p.answer,
            "answer_type": p.answer_type,
            "choices": p.choices or [],
        }
        for p in problems
    ]

    def reward(completions, answer, answer_type, choices, **_):
        return [
            rewards.score(c[0]["content"], a, answer_type=t, choices=ch or None).overall
            for c, a, t, ch in zip(completions, answer, answer_type, choices, strict=True)
        ]

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            self.times.append(time.perf_counter() - self.started)

    config = GRPOConfig(
        output_dir=str(work / "trl"),
        per_device_train_batch_size=PROMPTS * SAMPLES,
        num_generations=SAMPLES,
        steps_per_generation=1,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        beta=args.kl_coef,
        learning_rate=LR,
        lr_scheduler_type="constant",
        max_steps=args.steps,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
        shuffle_dataset=False,
    )
    model, processor = load_model(model_dir)
    timer = Timer()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
        callbacks=[timer],
    )
    trainer.train()
    return {"step": statistics.median(timer.times[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--kl-coef", type=float, default=0.01)
    args = parser.parse_args()

    import torch
    import trl

    from reasoner.models.tiny import build_tiny_model

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench_grpo_") as tmp:
        work = Path(tmp)
        model_dir = build_tiny_model(work / "tiny", size="demo", seed=0)
        problems = make_problems(args.steps)
        local = run_local(model_dir, problems, args, work / "local")
        peer = run_trl(model_dir, problems, args, work / "trl")

    print(
        f"\nGRPO step, tiny Qwen2.5-VL, CPU 1 thread, {PROMPTS} prompts x {SAMPLES} samples, "
        f"{args.max_new_tokens} new tokens, kl_coef {args.kl_coef}, median of steps 2..{args.steps}"
    )
    print("| engine | step s | generate s | score s | ref/old logprob s | update s |")
    print("|---|---|---|---|---|---|")
    print(
        f"| local | {local['step']:.3f} | {local['generate']:.3f} | {local['score']:.3f} | "
        f"{local['logprob']:.3f} | {local['update']:.3f} |"
    )
    print(f"| TRL {trl.__version__} GRPOTrainer | {peer['step']:.3f} | | | | |")
    print(f"\nlocal is {peer['step'] / local['step']:.2f}x faster than TRL per step")


if __name__ == "__main__":
    main()
