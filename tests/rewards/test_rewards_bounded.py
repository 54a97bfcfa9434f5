"""A reward is bounded for any input: pathological and 1 MB responses score within the reward's time bound."""

from __future__ import annotations

import time

import pytest

from rewards import DEFAULT_TIMEOUT_S, score
from rewards.core import MAX_RESPONSE_CHARS

ANGLES = ["30°", "45°", "60°", "90°"]
OPTIONS = {
    "choice": {"answer_type": "text", "choices": ANGLES},
    "integer": {"answer_type": "integer"},
    "generic": {},
}
GOLD = {"choice": "45°", "integer": "12", "generic": "12"}

PATHOLOGICAL = {
    "200k open answer tags": "<answer>" * 200_000,
    "200k open tags after a think": "<think>x</think>" + "<answer>" * 200_000,
    "100k closing tags": "</answer>" * 100_000,
    "120k unclosed boxes": "\\boxed{" * 120_000,
    "80k answer phrases": "the answer is " * 80_000,
    "180k option lines": "A: 1\nB: 2\n" * 90_000,
    "1 MB of prose": ("The chart shows a steady rise in the values across the years " * 17_000),
    "1 MB of digits": "7 " * 500_000,
    "1 MB one long word": "a" * 1_000_000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
@pytest.mark.parametrize("extraction", ["lenient", "strict"])
def test_pathological_response_scores_within_the_time_bound(name: str, extraction: str) -> None:
    response = PATHOLOGICAL[name]
    assert len(response) >= 800_000
    for kind, options in OPTIONS.items():
        started = time.perf_counter()
        result = score(response, GOLD[kind], extraction=extraction, **options)
        elapsed = time.perf_counter() - started
        assert elapsed < DEFAULT_TIMEOUT_S, f"{name} ({kind}, {extraction}) took {elapsed:.1f} s"
        if extraction == "strict":  # none of them holds one well-formed answer tag
            assert result.accuracy == 0.0 and result.rule == "none"


def test_a_real_answer_after_200k_open_tags_is_still_read() -> None:
    response = "<answer>" * 200_000 + "<answer>12</answer>"
    assert score(response, "12", answer_type="integer").accuracy == 1.0
    assert score(response, "12", answer_type="integer", extraction="strict").accuracy == 0.0  # not one tag


def test_responses_over_the_cap_are_not_read() -> None:
    response = "x" * MAX_RESPONSE_CHARS + "<answer>12</answer>"
    result = score(response, "12", answer_type="integer")
    assert (result.accuracy, result.reason, result.prediction) == (0.0, "too-long", None)


def test_a_response_that_is_not_text_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="response must be a string"):
        score(2, "2")
    assert score(None, "2").reason == "no-answer"


def test_null_bytes_are_stripped() -> None:
    assert score("<answer>1\x002</answer>", "12", answer_type="integer").accuracy == 1.0
    assert score("<think>a</think>\n<ans\x00wer>(B)</answer>", "45°", choices=ANGLES).accuracy == 1.0
    assert score("\x00The answer is 12.\x00", "12", answer_type="integer", extraction="lenient").accuracy == 1.0
