"""Time exact MATH-Vision scoring of the 304 testmini problems (target: well under 1 s end to end).

    .venv/bin/python benchmarks/bench_mathvision_score.py [--data ../shared/data/mathvision] [--repeats 5]

Three prediction sets, each one response per problem: the gold answer bare, in our `<answer>` tag after a
reasoning paragraph, and boxed after a paragraph ending in "the answer is"; plus a set where every third answer
is wrong (a number for free-form problems, another letter for multiple choice). Each set is scored end to end the
way `reasoner score mathvision` does it (read predictions and testmini.jsonl, score, write scores.json +
items.jsonl). Prints the accuracy of each set (100% for the gold ones) and the median seconds of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from reasoner.benchmarks.mathvision import gold_sides, load_problems, score_predictions_file

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mathvision"
PARAGRAPH = (
    "We look at the figure and count the parts one by one; the sides are 3, 4 and 5, so the area is 6. "
)


def responses(problems, form: str) -> list[dict]:
    """One prediction row per problem in the given form."""
    rows = []
    for index, problem in enumerate(problems):
        gold, _ = gold_sides(problem)
        if form == "wrong" and index % 3 == 0:
            gold = "B" if gold == "A" else "A" if problem.choices else "12345"
        text = {
            "bare": gold,
            "tagged": f"<think>{PARAGRAPH * 8}</think>\nSo it is {gold}.\n<answer>{gold}</answer>",
            "boxed": f"{PARAGRAPH * 8}Therefore the answer is $\\boxed{{{gold}}}$.",
            "wrong": f"<think>{PARAGRAPH * 8}</think>\n<answer>{gold}</answer>",
        }[form]
        rows.append({"pid": problem.id, "response": text})
    return rows


def main() -> None:
    """Score each prediction set `--repeats` times and print accuracy and median time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    problems = load_problems(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        for form in ("bare", "tagged", "boxed", "wrong"):
            path = Path(tmp) / f"{form}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in responses(problems, form)))
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                scores = score_predictions_file(path, args.data, Path(tmp) / form)
                seconds.append(time.perf_counter() - start)
            print(
                f"{form:7s} {scores['correct']:3d}/{scores['n']} correct ({scores['accuracy']:.2f}%), "
                f"median {statistics.median(seconds) * 1000:.1f} ms end to end over {args.repeats} runs"
            )


if __name__ == "__main__":
    main()
