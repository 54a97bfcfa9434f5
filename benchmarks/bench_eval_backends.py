"""One stage's evaluation with the transformers backend and with vLLM: the same accuracy, item by item, and the time.

    .venv/bin/python benchmarks/bench_eval_backends.py runs/demo-s0 [--stage 05_grpo] [--dataset heldout]

Rebuilds the run's evaluation set from its saved config (`RUN/config.yaml`), generates greedily with the stage's
model through `HFGenerator` (the run's `processes` sharing its batches, as the pipeline does) and through
`VLLMGenerator` (vLLM's CPU build here; its start-up timed apart), scores both with the pipeline's own scorer and
prints each accuracy, how many items' verdicts and responses are identical, and the seconds. The stage's own
`eval/<dataset>/scores.json` (what the pipeline wrote) is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def evaluate_with(generator, problems, template, max_new_tokens: int, name: str) -> tuple[dict, dict, float]:
    """(scores, pid -> response, seconds) of one generator on `problems`."""
    from reasoner.eval.runner import generate_responses, score

    started = time.perf_counter()
    responses = generate_responses(generator, problems, template, max_new_tokens)
    seconds = time.perf_counter() - started
    scores, items = score(problems, responses, name)
    return {**scores, "items": {item["pid"]: item["correct"] for item in items}}, responses, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--stage", help="stage folder name (default: the last one)")
    parser.add_argument("--dataset", default="heldout")
    args = parser.parse_args()

    import torch

    from reasoner.config import load
    from reasoner.data.sets.datasets import load_dataset
    from reasoner.generation.hf import HFGenerator
    from reasoner.generation.vllm import VLLMGenerator
    from reasoner.prompts import load_template

    torch.set_num_threads(1)
    run = load(args.run_dir / "config.yaml")
    stages = sorted(p for p in (args.run_dir / "stages").iterdir() if (p / "model").is_dir())
    stage = args.run_dir / "stages" / args.stage if args.stage else stages[-1]
    model = stage / "model"
    problems = load_dataset(run.datasets[args.dataset], args.dataset)
    template = load_template(run.prompt)
    budget = run.eval.max_new_tokens

    hf = HFGenerator.from_pretrained(model, batch_size=run.eval.batch_size, processes=run.processes, show_progress=False)
    hf_scores, hf_responses, hf_seconds = evaluate_with(hf, problems, template, budget, args.dataset)
    started = time.perf_counter()
    vllm = VLLMGenerator(model, seed=run.seed, show_progress=False)
    startup = time.perf_counter() - started
    vllm_scores, vllm_responses, vllm_seconds = evaluate_with(vllm, problems, template, budget, args.dataset)
    vllm.close()

    same_verdict = sum(hf_scores["items"][pid] == vllm_scores["items"][pid] for pid in hf_scores["items"])
    same_text = sum(hf_responses[pid] == vllm_responses[pid] for pid in hf_responses)
    saved = stage / "eval" / args.dataset / "scores.json"
    pipeline = json.loads(saved.read_text())["accuracy"] if saved.is_file() else None
    print(f"\n{stage.name} of {args.run_dir}: {len(problems)} {args.dataset} items, greedy, {budget} new tokens")
    print(f"accuracy: transformers {hf_scores['accuracy']:.1f}%, vLLM {vllm_scores['accuracy']:.1f}% "
          f"(the pipeline's scores.json: {pipeline}%)")
    print(f"identical verdicts {same_verdict}/{len(problems)}, identical responses {same_text}/{len(problems)}")
    print(f"seconds: transformers {hf_seconds:.1f} ({run.processes} process(es)), vLLM {vllm_seconds:.1f} "
          f"(+ {startup:.0f} s start-up)")


if __name__ == "__main__":
    main()
