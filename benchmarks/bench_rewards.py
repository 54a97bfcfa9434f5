"""Throughput and correctness of `rewards.score_batch` against verl's math-verify reward, on the same responses.

Run:  .venv/bin/python benchmarks/bench_rewards.py [--n 10000] [--data ../shared/data/mathvista]

Builds N responses from the real MathVista testmini problems in the forms models write them (letters in their
usual forms, option text, numbers with units, LaTeX fractions, \\boxed{}, <think>/<answer>, wrong answers,
refusals, a few LaTeX expressions that need math-verify), each labelled right or wrong by construction, then
scores them with score_batch (1 and 2 worker processes) and with
`verl.utils.reward_score.math_verify.compute_score` (verl 0.9.1), and times the 1000 gold answers.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

from rewards import default_pool, equivalence_stats, score, score_batch
from rewards.choices import choice_letter

REPO = Path(__file__).resolve().parent.parent
POWER_TOWER = "\\boxed{9^{9^{9^{9^{9^{9}}}}}}"
THINK = "<think>Looking at the figure, I compare the values step by step.</think>\n"


def _latex_pair(rng: random.Random) -> tuple[str, str, bool]:
    """A generic (answer_type None) pair only math-verify can judge, varied so its cache rarely helps."""
    k = rng.randint(2, 400)
    return rng.choice([
        (f"\\boxed{{\\frac{{\\sqrt{{{k}}}}}{{{k}}}}}", f"\\frac{{1}}{{\\sqrt{{{k}}}}}", True),
        (f"The answer is 2\\sqrt{{{k}}}", f"\\sqrt{{{4 * k}}}", True),
        (f"\\boxed{{\\sqrt{{{k}}}}}", f"\\sqrt{{{k + 1}}}", False),
        (f"\\boxed{{x^2+{k}x}}", f"x(x+{k})", True),
    ])


def _multiple_choice(problem: dict, rng: random.Random) -> tuple[str, bool]:
    choices, answer = problem["choices"], problem["answer"]
    letter = choice_letter(choices.index(answer))
    wrong_index = rng.choice([i for i, choice in enumerate(choices) if choice != answer])
    forms = [
        (letter, True), (f"({letter})", True), (f"The answer is ({letter}).", True),
        (f"{THINK}<answer>{letter}</answer>", True), (answer, True), (f"\\boxed{{{letter}}}", True),
        (f"The correct answer is ({letter}) {answer}.", True),
        (f"{THINK}<answer>{choice_letter(wrong_index)}</answer>", False),
        (f"The answer is {choices[wrong_index]}.", False),
        ("I'm sorry, I cannot determine the answer from this image.", False),
    ]
    return rng.choice(forms)


def _latex_fraction(value: float, precision: int) -> str | None:
    fraction = Fraction(value).limit_denominator(12)
    if fraction.denominator == 1 or round(fraction.numerator / fraction.denominator, precision) != value:
        return None
    return f"\\frac{{{fraction.numerator}}}{{{fraction.denominator}}}"


def _free_form(problem: dict, rng: random.Random) -> tuple[str, bool]:
    answer = problem["answer"]
    forms = [
        (answer, True), (f"The answer is {answer}.", True), (f"{THINK}<answer>{answer}</answer>", True),
        (f"\\boxed{{{answer}}}", True), ("I cannot tell from the image.", False),
    ]
    if problem["answer_type"] == "integer":
        unit = problem["unit"] or "cm"
        forms += [(f"I think it's about {answer} {unit}", True), (f"The answer is {int(answer) + 1}.", False)]
    if problem["answer_type"] == "float":
        latex = _latex_fraction(float(answer), int(problem["precision"]))
        forms += [(f"\\boxed{{{latex}}}", True)] if latex else []
        forms += [(f"{THINK}<answer>{float(answer) + 1:.{int(problem['precision'])}f}</answer>", False)]
    return rng.choice(forms)


def build_items(problems: list[dict], n: int, seed: int = 0) -> tuple[list[dict], list[bool]]:
    """N scorer items and whether each response is right by construction."""
    rng = random.Random(seed)
    items, labels = [], []
    for index in range(n):
        if index % 20 == 0:  # 5% generic LaTeX that needs math-verify
            response, gold, right = _latex_pair(rng)
            items.append({"response": response, "ground_truth": gold})
            labels.append(right)
            continue
        problem = rng.choice(problems)
        response, right = (_multiple_choice if problem["choices"] else _free_form)(problem, rng)
        items.append({"response": response, "ground_truth": problem["answer"],
                      **{key: problem[key] for key in ("answer_type", "choices", "precision", "unit")}})
        labels.append(right)
    return items, labels


def _row(name: str, seconds: float, scores: list[float], labels: list[bool]) -> str:
    right_scored_zero = sum(1 for value, right in zip(scores, labels, strict=True) if right and value != 1.0)
    wrong_scored_one = sum(1 for value, right in zip(scores, labels, strict=True) if not right and value == 1.0)
    return (f"| {name:<44} | {len(scores) / seconds:>12,.0f} | {right_scored_zero:>6} of {sum(labels):<6} "
            f"| {wrong_scored_one:>6} of {len(labels) - sum(labels):<6} |")


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def time_unbounded_power_tower(limit_s: float) -> str:
    """How long math-verify itself (timeouts off, as it must run outside the main thread) takes on the tower."""
    code = (
        "from math_verify import parse, verify\n"
        "verify(parse('$5$', parsing_timeout=None), parse(r'\\boxed{9^{9^{9^{9^{9^{9}}}}}}', parsing_timeout=None),"
        " timeout_seconds=None)\n"
    )
    started = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-c", code], timeout=limit_s, capture_output=True, check=False)
    except subprocess.TimeoutExpired:
        return f"still running after {limit_s:.0f} s (killed)"
    return f"finished in {time.perf_counter() - started:.1f} s"


def main() -> None:
    """Print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mathvista")
    parser.add_argument("--tower-s", type=float, default=15.0, help="how long to let unbounded math-verify run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    problems = list(json.loads((args.data / "testmini.json").read_text(encoding="utf-8")).values())
    items, labels = build_items(problems, args.n)

    score_batch(items[:200])  # start this process's math-verify workers outside the timings
    rows = []
    for workers in (1, 2):
        default_pool().clear_cache()
        results, seconds = _timed(score_batch, items, workers=workers)
        rows.append(_row(f"rewards.score_batch(workers={workers})", seconds, [r.accuracy for r in results], labels))
    stats = equivalence_stats()
    for name, wanted in (("in-process items", True), ("math-verify items", False)):
        part = [(item, label) for item, label in zip(items, labels, strict=True) if ("answer_type" in item) is wanted]
        default_pool().clear_cache()
        results, seconds = _timed(score_batch, [item for item, _ in part])
        rows.append(_row(f"  of which {len(part)} {name}", seconds, [r.accuracy for r in results],
                         [label for _, label in part]))

    from verl.utils.reward_score.math_verify import compute_score

    compute_score("1", "1")  # start verl's process pool outside the timing
    verl_scores, seconds = _timed(lambda: [compute_score(i["response"], i["ground_truth"]) for i in items])
    rows.append(_row("verl.utils.reward_score.math_verify", seconds, verl_scores, labels))

    golds = [(p["answer"], p["answer"], {k: p[k] for k in ("answer_type", "choices", "precision", "unit")})
             for p in problems]
    gold_results, gold_seconds = _timed(lambda: [score(r, g, **o) for r, g, o in golds])

    print(f"{args.n} responses ({sum(labels)} right, {args.n - sum(labels)} wrong by construction)\n")
    print(f"| {'scorer':<44} | {'responses/s':>12} | {'right scored 0':<16} | {'wrong scored 1':<16} |")
    print(f"|{'-' * 46}|{'-' * 14}|{'-' * 18}|{'-' * 18}|")
    print("\n".join(rows))
    print(f"\nmath-verify worker requests in this process (warm-up + workers=1 run): {stats}")
    print(f"MathVista testmini gold answers: {sum(r.accuracy for r in gold_results):.0f}/1000 right "
          f"in {gold_seconds:.2f} s")
    tower = score(POWER_TOWER, "5", timeout_s=5.0)
    print(f"power tower through rewards.score (timeout 5 s): reason={tower.reason}; "
          f"math-verify unbounded: {time_unbounded_power_tower(args.tower_s)}")


if __name__ == "__main__":
    main()
