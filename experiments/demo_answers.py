"""What a demo run's model actually answers, per question kind: accuracy beside the answer prior (the best constant
answer of that kind on the same items) and how many items get the model's most common answer.

    .venv/bin/python experiments/demo_answers.py runs/demo-s0 [runs/demo-s1 ...]

Reads each stage's held-out responses (`stages/*/eval/heldout/responses.jsonl`) and regenerates the held-out
problems from the run's config.yaml (the synthetic world is deterministic), so it needs nothing but the run
folders. A kind whose most common answer covers every item (e.g. 82/82) is answered without looking at the image;
its accuracy is then the share of items that answer happens to fit, at or below the prior. docs/results/2026-12-07-demo.md "Honest reading"
quotes its output for the demo's seeds.

    .venv/bin/python experiments/demo_answers.py runs/demo-s3 --by-answer count/total

lists, for one question kind, each stage's right / n per gold answer and the answers it gave (e.g. which counts
the model tells apart and which it gives one answer to).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from reasoner.benchmarks.metrics import answer_prior
from reasoner.benchmarks.problems import constant_answer
from reasoner.benchmarks.scoring import read_predictions
from reasoner.config import RunConfig
from reasoner.config.loading import load_structured
from reasoner.data.sets.datasets import load_dataset
from reasoner.eval.runner import score


def stages_of(run: Path, dataset: str):
    """`(stage name, problems by id, scored items)` for each evaluated stage of a run, in stage order."""
    config = load_structured(RunConfig, run / "config.yaml")
    problems = load_dataset(config.datasets[dataset], dataset)
    by_id = {p.id: p for p in problems}
    for responses_path in sorted(run.glob(f"stages/*/eval/{dataset}/responses.jsonl")):
        stage = json.loads((responses_path.parents[2] / "manifest.json").read_text())["name"]
        yield stage, by_id, score(problems, read_predictions(responses_path), dataset)[1]


def kind_of(problem) -> str:
    return f"{problem.metadata['task']}/{problem.metadata['kind']}"


def kinds_of(run: Path, dataset: str) -> list[str]:
    """One line per evaluated stage: per question kind, correct / n, prior, and the top answer's share."""
    lines = []
    for stage, by_id, items in stages_of(run, dataset):
        correct, answers = Counter(), defaultdict(Counter)
        for item in items:
            kind = kind_of(by_id[item["pid"]])
            correct[kind] += bool(item["correct"])
            answers[kind][str(item["extraction"])] += 1  # as written: an option letter stays a letter
        priors = prior_per_kind(list(by_id.values()))
        cells = []
        for kind in sorted(answers):
            n = sum(answers[kind].values())
            top = answers[kind].most_common(1)[0][1]
            cells.append(f"{kind} {correct[kind]}/{n} (prior {priors[kind]}, top answer {top}/{n})")
        lines.append(f"{run.name} {stage}: " + "; ".join(cells))
    return lines


def by_answer(run: Path, dataset: str, kind: str) -> list[str]:
    """One line per evaluated stage: for items of `kind`, right / n per gold answer, then the answers given."""
    lines = []
    for stage, by_id, items in stages_of(run, dataset):
        right, total, given = Counter(), Counter(), Counter()
        for item in items:
            problem = by_id[item["pid"]]
            if kind_of(problem) == kind:
                total[problem.answer] += 1
                right[problem.answer] += bool(item["correct"])
                given[str(item["extraction"])] += 1
        gold = " ".join(f"{a}:{right[a]}/{total[a]}" for a in sorted(total))
        answered = " ".join(f"{a}:{n}" for a, n in sorted(given.items()))
        lines.append(f"{run.name} {stage} {kind}: right per answer {gold}; answers given {answered}")
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
    parser.add_argument("--by-answer", metavar="KIND", help="one question kind (e.g. count/total) per gold answer")
    args = parser.parse_args()
    for run in args.runs:
        lines = by_answer(run, args.dataset, args.by_answer) if args.by_answer else kinds_of(run, args.dataset)
        print("\n".join(lines))


if __name__ == "__main__":
    main()
