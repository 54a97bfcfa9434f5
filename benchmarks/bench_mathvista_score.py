"""Time exact MathVista scoring of 1000 realistic free-text responses (target: under 2 s end to end).

    .venv/bin/python benchmarks/bench_mathvista_score.py [--data ../shared/data/mathvista] [--repeats 3]

Responses imitate model output: a reasoning paragraph (~1-2k characters, in `<think>` for half of them), then
the answer as an option letter, a choice text, `\\boxed{}`, a number with its unit or an `<answer>` tag; about a
third are wrong. "end to end" is what `reasoner score mathvista` does (read predictions, load testmini.json,
score, write scores.json + items.jsonl), through the same function the CLI calls.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from reasoner.benchmarks.mathvista import score_predictions_file, score_responses
from reasoner.data.records.problem import Problem
from reasoner.data.sets.sources import load_mathvista

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mathvista"
LETTERS = "ABCDEFGHIJ"


def reasoning(problem: Problem, rng: random.Random) -> str:
    """A paragraph of step-by-step prose with numbers in it, built from the question's own words."""
    words = problem.question.split() or ["value"]
    steps = []
    for step in range(rng.randint(4, 9)):
        phrase = " ".join(rng.choice(words) for _ in range(rng.randint(12, 30)))
        steps.append(
            f"Step {step + 1}: consider {phrase}; this gives {rng.randint(2, 90)} + {rng.random():.2f}."
        )
    return " ".join(steps)


def wrong_answer(problem: Problem, rng: random.Random) -> str:
    if problem.choices:
        return rng.choice(problem.choices)
    if problem.answer_type == "integer":
        return str(int(problem.answer) + rng.randint(1, 9))
    if problem.answer_type == "float":
        return str(round(float(problem.answer) + rng.randint(1, 9), problem.precision or 1))
    return "[1, 2, 3]"


def response_for(problem: Problem, rng: random.Random) -> str:
    """One realistic response; about a third of them give a wrong answer."""
    answer = problem.answer if rng.random() > 0.33 else wrong_answer(problem, rng)
    body = reasoning(problem, rng)
    if rng.random() < 0.5:
        body = f"<think>{body}</think>"
    if problem.choices:
        letter = LETTERS[problem.choices.index(answer)]
        endings = [
            f"The answer is ({letter}).",
            f"So the correct option is {letter}: {answer}.",
            f"Therefore the answer is {answer}.",
            f"The answer is {letter}.\n<answer>{letter}</answer>",
        ]
    else:
        unit = f" {problem.unit}" if problem.unit else ""
        endings = [
            f"The answer is {answer}{unit}.",
            f"Hence the final value is $\\boxed{{{answer}}}$.",
            f"So the result is {answer}.\n<answer>{answer}</answer>",
            f"Final answer: {answer}",
        ]
    return f"{body}\n{rng.choice(endings)}"


def time_call(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    problems = load_mathvista(args.data)
    rng = random.Random(0)
    responses = {p.id: response_for(p, rng) for p in problems}
    chars = statistics.mean(len(r) for r in responses.values())
    with tempfile.TemporaryDirectory() as tmp:
        predictions = Path(tmp) / "predictions.jsonl"
        predictions.write_text(
            "".join(json.dumps({"pid": k, "response": v}) + "\n" for k, v in responses.items())
        )
        scores, _ = score_responses(problems, responses)
        rows = [
            ("score_responses, workers=1", time_call(lambda: score_responses(problems, responses), args.repeats)),
            ("score_responses, workers=2",
             time_call(lambda: score_responses(problems, responses, workers=2), args.repeats)),
            ("end to end (CLI function), workers=1",
             time_call(lambda: score_predictions_file(predictions, args.data, Path(tmp) / "out"), args.repeats)),
        ]  # fmt: skip
    print(
        f"{len(problems)} MathVista testmini responses, mean {chars:.0f} chars; accuracy {scores['accuracy']}%"
    )
    print(f"{'what':<40} {'median s':>9} {'items/s':>9}")
    for name, seconds in rows:
        print(f"{name:<40} {seconds:>9.3f} {len(problems) / seconds:>9.0f}")


if __name__ == "__main__":
    main()
