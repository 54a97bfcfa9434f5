"""Format reward (<think> then <answer>, once each, non-empty), the summary penalty and the weights."""

from __future__ import annotations

import pytest

from rewards import RECIPE_WEIGHTS, RewardWeights, check_format, score


@pytest.mark.parametrize(("response", "ok", "summary_missing"), [
    ("<think>count the cubes</think>\n<answer>7</answer>", True, True),
    ("<think>count the cubes</think> There are 7 cubes.\n<answer>7</answer>", True, False),
    ("  <think>a</think>So 7.<answer>7</answer>\n", True, False),
    ("<answer>7</answer>", False, False),
    ("<think>a</think>", False, False),
    ("<think></think>\n<answer>7</answer>", False, True),
    ("<think>a</think>\n<answer> </answer>", False, True),
    ("<answer>7</answer><think>a</think>", False, False),
    ("<think>a</think><think>b</think><answer>7</answer>", False, True),
    ("<think>a</think><answer>7</answer><answer>8</answer>", False, True),
    ("Preamble <think>a</think><answer>7</answer>", False, True),
    ("<think>a</think><answer>7</answer> trailing words", False, True),
    ("The answer is 7.", False, False),
])
def test_check_format(response: str, ok: bool, summary_missing: bool) -> None:
    check = check_format(response)
    assert (check.ok, check.summary_missing, check.score) == (ok, summary_missing, 1.0 if ok else 0.0)


def test_default_weights_make_overall_the_accuracy() -> None:
    right = score("<think>a</think>\n<answer>7</answer>", "7", answer_type="integer")
    wrong = score("7", "8", answer_type="integer")
    assert (right.overall, right.accuracy, right.format, right.summary_missing) == (1.0, 1.0, 1.0, True)
    assert (wrong.overall, wrong.format) == (0.0, 0.0)


@pytest.mark.parametrize(("response", "gold", "overall"), [
    ("<think>a</think>\n<answer>7</answer>", "7", 0.5),                # right, no summary: 1 - 0.5
    ("<think>a</think> So it is 7.\n<answer>7</answer>", "7", 1.0),    # right, with summary
    ("<think>a</think>\n<answer>8</answer>", "7", -0.5),               # wrong, no summary
    ("The answer is 7", "7", 1.0),                                     # no tags at all: nothing to penalise
])
def test_recipe_weights_penalise_a_missing_summary(response: str, gold: str, overall: float) -> None:
    assert score(response, gold, answer_type="integer", weights=RECIPE_WEIGHTS).overall == overall


def test_format_weight_adds_to_overall() -> None:
    weights = RewardWeights(accuracy=1.0, format=0.5, summary_penalty=0.0)
    assert score("<think>a</think>So 8.<answer>8</answer>", "7", weights=weights).overall == 0.5
    assert score("<think>a</think>So 7.<answer>7</answer>", "7", weights=weights).overall == 1.5
