"""How far SFT on the perception world moves a tiny model: per family accuracy beside chance, and how often the
model describes the scene right (the first sentence of the reference trace appears in its response).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/perception_sft.py [--steps 600] [--level 1]
        [--families relation attribution ...] [--train-scenes 1200] [--size demo]
        [--ask world|short|lookup|mixed] [--train-vision] [--blind]

--ask: `world` trains on the reference traces (scene sentence, then the option); `short` on "That is option X."
alone; `lookup` asks every item as "Which option says: <the true caption>?" (the answer in the question: the
letter lookup alone, no perception needed); `mixed` trains on the world items and their lookup copies (evaluation
stays on the world items). --blind trains with every image replaced by a blank one (the control that must stay at
chance). --train-vision trains the vision tower and projector too.

The gap between the two columns is the point: a model can describe the scene right and still pick the option at
chance, because choosing a letter means finding, among the options in the prompt, the one that matches its own
description and copying the letter before it (a copying skill pretrained VLMs bring; a randomly initialised
~1M-parameter model does not learn it in a CPU-sized budget). docs/results/2026-12-02-perception.md has the measured numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from reasoner.benchmarks.perception import format_rows
from reasoner.config import RunConfig, StageConfig, StageKind
from reasoner.data.worlds.compose import generate_compose
from reasoner.data.worlds.perception import FAMILIES, blinded
from reasoner.engines.base import SFTExample, TrainJob
from reasoner.engines.local import LocalEngine
from reasoner.eval.runner import generate_responses, score
from reasoner.models.tiny import SIZES, ensure_tiny_model
from reasoner.prompts import format_target, load_template


def described(problem, response: str) -> bool:
    """The scene sentence of the reference trace (before ", so" / " So" / " That is") is in the response."""
    first = problem.reasoning
    for cut in (" That is", " So ", ", so "):
        first = first.split(cut)[0]
    return first.rstrip(".").lower() in response.lower()


def asked(problems, ask: str):
    """The items as `--ask` poses them (see the module docstring)."""
    if ask == "short":
        return [dataclasses.replace(p, reasoning=f"That is option {p.answer_label()}.") for p in problems]
    lookup = [
        dataclasses.replace(p, question=f"Which option says: {p.answer}?",
                            reasoning=f"It says {p.answer}. That is option {p.answer_label()}.")
        for p in problems
    ]  # fmt: skip
    return {"world": problems, "lookup": lookup, "mixed": problems + lookup}[ask]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--families", nargs="*", default=[f for f in FAMILIES if f != "counting"])
    parser.add_argument("--train-scenes", type=int, default=1200)
    parser.add_argument("--eval-scenes", type=int, default=120)
    parser.add_argument("--size", default="demo", choices=sorted(SIZES))
    parser.add_argument("--ask", default="world", choices=("world", "short", "lookup", "mixed"))
    parser.add_argument("--train-vision", action="store_true")
    parser.add_argument("--blind", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)

    template = load_template("reason")
    engine = LocalEngine(RunConfig(name="bench"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tiny = ensure_tiny_model(root / "models", size=args.size, seed=0)
        train = generate_compose(args.families, args.train_scenes, level=args.level, seed=1, split="train")
        scenes = len({p.images[0].data for p in train})
        train = asked(blinded(train) if args.blind else train, args.ask)
        stage = StageConfig(kind=StageKind.sft, name="sft", batch_size=16, lr=args.lr, steps=args.steps,
                            freeze_vision=not args.train_vision)  # fmt: skip
        job = TrainJob(stage, tiny, root / "ckpt", root / "model", root / "logs", template, seed=0)
        start = time.perf_counter()
        engine.train_sft(job, [SFTExample(p, format_target(p.reasoning, p.answer_label())) for p in train])
        seconds = time.perf_counter() - start
        held_out = generate_compose(args.families, args.eval_scenes, level=args.level, seed=2, split="eval")
        held_out = asked(held_out, "lookup" if args.ask == "lookup" else "world")
        responses = generate_responses(engine.generator(job.out_model), held_out, template, 64)
    scores, _ = score(held_out, responses, "perception")
    print(f"SFT {args.steps} steps of 16 on {len(train)} items ({scenes} distinct scenes), level {args.level}, "
          f"size {args.size}, ask {args.ask}{', blind' if args.blind else ''}"
          f"{', vision trained' if args.train_vision else ''}: {seconds:.0f} s")  # fmt: skip
    print(format_rows(scores))
    right, total = Counter(), Counter()
    for problem in held_out:
        family = problem.metadata["family"]
        total[family] += 1
        right[family] += described(problem, responses[problem.id])
    print("scene described right: " + ", ".join(f"{f} {right[f]}/{total[f]}" for f in total))
    for problem in held_out[:4]:
        print(f"  {responses[problem.id][:110]!r}  (gold {problem.answer_label()})")


if __name__ == "__main__":
    main()
