"""math-verify behind killable workers: traps, equivalences, the power-tower timeout, threads and asyncio."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rewards import default_pool, equivalence_stats, score

POWER_TOWER = "\\boxed{9^{9^{9^{9^{9^{9}}}}}}"


@pytest.fixture(scope="module")
def warm_pool():
    """Workers started before timing anything: start-up (about a second here) is not part of the timeout."""
    pool = default_pool()
    pool.warm_up(2)
    return pool


@pytest.mark.parametrize(("response", "gold"), [
    ("[1, 2]", "[7, 2]"),
    ("\\boxed{[1, 2]}", "[7, 2]"),
    ("\\boxed{tokyo}", "kyoto"),
    ("\\boxed{tokyo}", "\\boxed{kyoto}"),
    ("yes", "no"),
    ("The answer is yes.", "no"),
    ("(B)", "(C)"),
    ("B", "(C)"),
    ("The answer is (B).", "C"),
])
def test_math_verify_traps_score_false_in_both_directions(response: str, gold: str) -> None:
    before = equivalence_stats()["requests"]
    assert score(response, gold).accuracy == 0.0
    assert score(gold, response).accuracy == 0.0
    assert equivalence_stats()["requests"] == before, "text, letters and lists must be settled in-process"


@pytest.mark.parametrize(("response", "gold", "options", "expected"), [
    ("7.071", "7.07", {"answer_type": "float", "precision": 2}, 1.0),  # MathVista rounds to the precision
    ("7.071", "7.07", {"answer_type": "float", "precision": 3}, 0.0),
    ("7.071", "7.07", {}, 0.0),  # no precision given: a different number
    ("\\boxed{7.07}", "7.07", {}, 1.0),
    ("1,000", "1000", {}, 1.0),
    ("145^\\circ", "145", {}, 1.0),
    ("\\frac{1}{2}", "0.5", {}, 1.0),
    ("(B)", "B", {}, 1.0),
])
def test_in_process_numeric_and_letter_rules(response: str, gold: str, options: dict, expected: float) -> None:
    assert score(response, gold, **options).accuracy == expected


@pytest.mark.parametrize(("response", "gold", "options", "expected"), [
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", {}, 1.0),
    ("The answer is 2\\sqrt{3}", "\\sqrt{12}", {}, 1.0),
    ("x(x+2)", "x^2+2x", {}, 1.0),
    ("\\sqrt{2}", "\\sqrt{3}", {}, 0.0),
    ("\\boxed{2\\sqrt{3}}", "3.46", {"answer_type": "float", "precision": 2}, 1.0),
    ("\\boxed{2\\pi}", "6.28", {"answer_type": "float", "precision": 2}, 1.0),
    ("\\boxed{2\\pi}", "6.29", {"answer_type": "float", "precision": 2}, 0.0),
])
def test_math_verify_equivalence(warm_pool, response: str, gold: str, options: dict, expected: float) -> None:
    result = score(response, gold, **options)
    assert (result.accuracy, result.mapping) == (expected, "math-verify"), result


def test_repeated_questions_are_answered_from_the_cache(warm_pool) -> None:
    response, gold = "\\boxed{\\sqrt{7}}", "\\sqrt{8}"
    before = equivalence_stats()["requests"]
    first, second = score(response, gold), score(response, gold)
    assert first == second and first.reason == "mismatch" and first.mapping == "math-verify"
    assert equivalence_stats()["requests"] - before <= 1


@pytest.mark.parametrize("options", [{}, {"answer_type": "integer"}])
def test_power_tower_times_out_and_the_pool_recovers(warm_pool, options: dict) -> None:
    timeouts = equivalence_stats()["timeouts"]
    started = time.monotonic()
    result = score(POWER_TOWER, "5", timeout_s=2.0, **options)
    elapsed = time.monotonic() - started
    assert (result.accuracy, result.reason) == (0.0, "timeout"), result
    assert elapsed < 3.0, f"took {elapsed:.1f} s for a 2 s timeout"
    assert equivalence_stats()["timeouts"] == timeouts + 1
    assert score("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}").accuracy == 1.0


def _mixed_items() -> list[dict]:
    """200 scorings: multiple choice, numbers, lists, wrong answers and 20 that need math-verify."""
    base = [
        {"response": "The answer is (B).", "ground_truth": "45°", "choices": ["30°", "45°", "60°"]},
        {"response": "<think>a</think><answer>C</answer>", "ground_truth": "45°", "choices": ["30°", "45°", "60°"]},
        {"response": "I think it's about 5 cm", "ground_truth": "5", "answer_type": "integer"},
        {"response": "The answer is 7.071", "ground_truth": "7.07", "answer_type": "float", "precision": 2},
        {"response": "[2014,2016]", "ground_truth": "[2014, 2016]", "answer_type": "list"},
        {"response": "\\boxed{tokyo}", "ground_truth": "kyoto"},
        {"response": "I cannot determine this.", "ground_truth": "Yes", "choices": ["Yes", "No"]},
        {"response": "\\frac{1}{2}", "ground_truth": "0.5"},
        {"response": "\\boxed{\\frac{\\sqrt{2}}{2}}", "ground_truth": "\\frac{1}{\\sqrt{2}}"},
        {"response": "\\boxed{2\\sqrt{3}}", "ground_truth": "3.46", "answer_type": "float", "precision": 2},
    ]
    return [dict(item) for _ in range(20) for item in base]


def _score(item: dict) -> dict:
    return score(**item).as_dict()


def test_threads_give_the_same_scores_as_the_main_thread(warm_pool) -> None:
    items = _mixed_items()
    expected = [_score(item) for item in items]
    assert sum(result["accuracy"] for result in expected) == 20 * 7
    with ThreadPoolExecutor(max_workers=8) as executor:
        threaded = list(executor.map(_score, items))
    assert threaded == expected


def test_asyncio_run_in_executor_gives_the_same_scores(warm_pool) -> None:
    items = _mixed_items()[:50]
    expected = [_score(item) for item in items]

    async def score_all() -> list[dict]:
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*(loop.run_in_executor(None, _score, item) for item in items))

    assert asyncio.run(score_all()) == expected


def test_warm_up_after_use_does_not_wait_for_a_second_greeting() -> None:
    pool = default_pool()
    pool.warm_up(1)
    assert score("\\boxed{\\sqrt{12}}", "2\\sqrt{3}").accuracy == 1.0  # a worker answers, goes back idle
    start = time.monotonic()
    pool.warm_up(1)  # the same, already greeted worker
    assert time.monotonic() - start < 5
