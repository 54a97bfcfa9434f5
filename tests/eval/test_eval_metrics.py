"""Accuracy breakdowns: percentages, multi-label fields, missing labels, ordering."""

from __future__ import annotations

import math
import statistics

import pytest

from reasoner.benchmarks.metrics import (
    Tally,
    above_chance_p,
    breakdown,
    group_tallies,
    labels_of,
    mcnemar_p,
    percent,
    spread,
    standard_error,
)


def test_percent_rounds_to_two_decimals_and_handles_empty() -> None:
    assert percent(2, 3) == 66.67
    assert percent(1, 8) == 12.5
    assert percent(0, 0) == 0.0
    assert Tally(n=3, correct=1).to_dict() == {"n": 3, "correct": 1, "accuracy": 33.33}


def test_labels_of_scalars_lists_and_none() -> None:
    assert labels_of("FQA") == ["FQA"]
    assert labels_of(3) == ["3"]
    assert labels_of(None) == []
    assert labels_of(["a", "b", "a", None]) == ["a", "b"]  # a repeated label counts once per record


def test_multi_label_field_counts_each_label() -> None:
    records = [
        {"skills": ["arithmetic", "algebra"], "correct": True},
        {"skills": ["arithmetic"], "correct": False},
        {"skills": ["logic"], "correct": True},
    ]
    result = breakdown(records, ["skills"])["skills"]
    assert result == {
        "arithmetic": {"n": 2, "correct": 1, "accuracy": 50.0},
        "algebra": {"n": 1, "correct": 1, "accuracy": 100.0},
        "logic": {"n": 1, "correct": 1, "accuracy": 100.0},
    }
    assert sum(group["n"] for group in result.values()) == 4  # more than the 3 records


def test_groups_ordered_by_size_then_name_and_missing_labels_skipped() -> None:
    labels = ["b", "a", "b", None, "c", "a"]
    correct = [True, False, True, True, False, True]
    groups = group_tallies(labels, correct)
    assert list(groups) == ["a", "b", "c"]
    assert groups["b"] == Tally(n=2, correct=2)
    assert sum(group.n for group in groups.values()) == 5  # the None record is in no group


def test_breakdown_counts_float_rewards_and_keeps_an_absent_field() -> None:
    records = [
        {"task": "count", "level": 1, "correct": True},
        {"task": "count", "level": 2, "correct": False},
        {"task": "digits", "level": 1, "correct": 1.0},  # a float reward counts as correct
        {"task": "digits", "level": 2, "correct": 0.0},
    ]
    result = breakdown(records, ["task", "level", "grade"])
    assert result["task"]["digits"] == {"n": 2, "correct": 1, "accuracy": 50.0}
    assert result["level"]["1"] == {"n": 2, "correct": 2, "accuracy": 100.0}
    assert result["grade"] == {}


def test_group_tallies_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        group_tallies(["a"], [True, False])


def test_standard_error_is_binomial_in_percentage_points() -> None:
    # 200 items at 50%: sqrt(0.25 / 200) = 3.54 points, the noise the README's 200-item table carries.
    assert standard_error(50.0, 200) == 3.54
    assert standard_error(33.5, 200) == round(100 * math.sqrt(0.335 * 0.665 / 200), 2) == 3.34
    assert standard_error(50.0, 800) == 1.77  # four times the items halve it
    assert standard_error(0.0, 200) == standard_error(100.0, 200) == standard_error(40.0, 0) == 0.0


def test_mcnemar_p_is_the_exact_two_sided_binomial_test_of_the_flips() -> None:
    # 3 of 10 differing items one way: 2 * (C(10,0) + C(10,1) + C(10,2) + C(10,3)) / 2^10 = 2 * 176 / 1024
    assert mcnemar_p(7, 3) == mcnemar_p(3, 7) == 0.34375
    assert mcnemar_p(10, 0) == 2 / 1024  # every differing item one way
    assert mcnemar_p(5, 5) == mcnemar_p(0, 0) == 1.0  # balanced flips, or no item differs
    assert mcnemar_p(42, 24) < 0.05 < mcnemar_p(76, 66)  # the 48-step GRPO-1 on seeds 0 and 1 (README)


def test_above_chance_p_is_the_exact_tail_of_guessing() -> None:
    # 8 of 10 two-option items: (C(10,8) + C(10,9) + C(10,10)) / 2^10 = 56 / 1024
    assert math.isclose(above_chance_p([True] * 8 + [False] * 2, [0.5] * 10), 56 / 1024)
    assert above_chance_p([False] * 5, [0.25] * 5) == 1.0 and above_chance_p([], []) == 1.0
    # mixed chances (Poisson binomial): both of a 1/2 and a 1/4 item right: 1/8; at least one: 1 - 1/2 * 3/4
    assert math.isclose(above_chance_p([True, True], [0.5, 0.25]), 0.125)
    assert math.isclose(above_chance_p([True, False], [0.5, 0.25]), 0.625)
    with pytest.raises(ValueError, match="3 answers but 2 chance levels"):
        above_chance_p([True] * 3, [0.5] * 2)


def test_spread_over_seeds_mean_sd_and_standard_error_of_the_mean() -> None:
    values = [33.5, 42.0, 36.0]
    found = spread(values)
    assert found.mean == statistics.fmean(values)
    assert found.sd == statistics.stdev(values)  # sample sd (n - 1), not the population's
    assert found.sem == statistics.stdev(values) / math.sqrt(3)
    assert found.to_dict() == {"mean": 37.17, "sd": 4.37, "sem": 2.52}
    assert spread([10.0, 10.0]).to_dict() == {"mean": 10.0, "sd": 0.0, "sem": 0.0}
    with pytest.raises(ValueError, match="at least two"):
        spread([1.0])
