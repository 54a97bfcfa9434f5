"""What a demo run's model actually answers, per question kind: accuracy beside the answer prior (the best constant
answer of that kind on the same items) and how many items get the model's most common answer.

    .venv/bin/python benchmarks/demo_answers.py runs/demo-s0 [runs/demo-s1 ...]

Reads each stage's held-out responses (`stages/*/eval/heldout/responses.jsonl`) and regenerates the held-out
problems from the run's config.yaml (the synthetic world is deterministic), so it needs nothing but the run
folders. A kind whose most common answer covers every item (e.g. 82/82) is answered without looking at the image;
its accuracy is then the share of items that answer happens to fit, at or below the prior. README "Honest reading"
quotes its output for the demo's seeds.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from reasoner.config import RunConfig
from reasoner.config_load import load_structured
from reasoner.data.datasets import load_dataset
from reasoner.eval.mathvista import read_predictions
from reasoner.eval.metrics import answer_prior
from reasoner.eval.runner import constant_answer, score


def kinds_of(run: Path, dataset: str) -> list[str]:
    """One line per evaluated stage: per question kind, correct / n, prior, and the top answer's share."""
    config = load_structured(RunConfig, run / "config.yaml")
    problems = load_dataset(config.datasets[dataset], dataset)
    by_id = {p.id: p for p in problems}
    lines = []
    for responses_path in sorted(run.glob(f"stages/*/eval/{dataset}/responses.jsonl")):
        stage = json.loads((responses_path.parents[2] / "manifest.json").read_text())["name"]
        _, items = score(problems, read_predictions(responses_path), dataset)
        correct, answers = Counter(), defaultdict(Counter)
        for item in items:
            problem = by_id[item["pid"]]
            kind = f"{problem.metadata['task']}/{problem.metadata['kind']}"
            correct[kind] += bool(item["correct"])
            answers[kind][str(item["extraction"])] += 1  # as written: an option letter stays a letter
        priors = prior_per_kind(problems)
        cells = []
        for kind in sorted(answers):
            n = sum(answers[kind].values())
            top = answers[kind].most_common(1)[0][1]
            cells.append(f"{kind} {correct[kind]}/{n} (prior {priors[kind]}, top answer {top}/{n})")
        lines.append(f"{run.name} {stage}: " + "; ".join(cells))
    return lines


def prior_per_kind(problems) -> dict[str, int]:
    """Items the best constant answer of each kind gets right (an option letter for multiple choice)."""
    kinds = [f"{p.metadata['task']}/{p.metadata['kind']}" for p in problems]
    tallies = answer_prior([(kind, kind, constant_answer(p)) for kind, p in zip(kinds, problems, strict=True)])
    return {kind: tally.correct for kind, tally in tallies.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--dataset", default="heldout")
    args = parser.parse_args()
    for run in args.runs:
        print("\n".join(kinds_of(run, args.dataset)))


if __name__ == "__main__":
    main()
