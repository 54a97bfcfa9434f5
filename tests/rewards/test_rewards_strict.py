"""The strict (training) extraction mode against realistic reward hacks; the lenient (evaluation) mode unchanged."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rewards import extract_answer, score, score_batch

ANGLES = ["30°", "45°", "60°", "90°"]
THINK = "<think>The two marked angles are supplementary, so the unknown one is 180 - 135 = 45 degrees.</think>\n"
VERL_FILE = Path(__file__).resolve().parents[2] / "rewards" / "verl.py"

# (name, response, ground truth, options, lenient accuracy): the strict reading must give each of them 0; the
# lenient (evaluation) reading accepts most, which is what a policy would learn to exploit.
HACKS = [
    ("untagged number", "After counting the rows I get 3 rows of 4 chairs, in total 12", "12",
     {"answer_type": "integer"}, 1.0),
    ("untagged Arabic-Indic digits", "zq ١٢ lorem", "12", {"answer_type": "integer"}, 1.0),
    ("several answer tags", f"{THINK}<answer>11</answer>\n<answer>12</answer>", "12", {"answer_type": "integer"}, 1.0),
    ("tag then more text", f"{THINK}<answer>12</answer> or maybe 13", "12", {"answer_type": "integer"}, 1.0),
    ("unclosed tag", f"{THINK}<answer>12", "12", {"answer_type": "integer"}, 1.0),
    ("number list for a number", f"{THINK}<answer>10, 11, 12</answer>", "12", {"answer_type": "integer"}, 0.0),
    ("bracketed list for a number", f"{THINK}<answer>[10, 11, 12]</answer>", "12", {"answer_type": "integer"}, 0.0),
    ("alternatives", f"{THINK}<answer>11 or 12</answer>", "12", {"answer_type": "integer"}, 1.0),
    ("tag holding every option", f"{THINK}<answer>(A) 30° (B) 45° (C) 60° (D) 90°</answer>", "30°",
     {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("every letter", f"{THINK}<answer>A B C D</answer>", "30°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("a sentence naming the choice", f"{THINK}<answer>it is probably 45° but could be 60°</answer>", "45°",
     {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("generic number list", f"{THINK}<answer>3, 4, 5</answer>", "5", {}, 0.0),
    ("generic letters", f"{THINK}<answer>A, B or C</answer>", "A", {}, 1.0),
]

WELL_FORMED = [
    (f"{THINK}<answer>12</answer>", "12", {"answer_type": "integer"}),
    (f"{THINK}<answer>12 chairs</answer>\n", "12", {"answer_type": "integer"}),
    (f"{THINK}<answer>\\boxed{{12}}</answer>", "12", {"answer_type": "integer"}),
    (f"{THINK}<answer>x = 2.50</answer>", "2.5", {"answer_type": "float", "precision": 1}),
    (f"{THINK}<answer>(B) 45°</answer>", "45°", {"answer_type": "text", "choices": ANGLES}),
    (f"{THINK}<answer>B</answer>", "45°", {"answer_type": "text", "choices": ANGLES}),
    (f"{THINK}<answer>45°</answer>", "45°", {"answer_type": "text", "choices": ANGLES}),
    (f"{THINK}<answer>[2014, 2016]</answer>", "[2014, 2016]", {"answer_type": "list"}),
    (f"{THINK}<answer>2\\sqrt{{3}}</answer>", "2\\sqrt{3}", {}),
    (f"{THINK}<answer>B</answer>", "B", {}),
]


@pytest.mark.parametrize(("name", "response", "gold", "options", "lenient"), HACKS, ids=[h[0] for h in HACKS])
def test_strict_gives_nothing_to_a_hack(name, response, gold, options, lenient) -> None:
    assert score(response, gold, **options).accuracy == lenient  # the lenient reading is unchanged
    strict = score(response, gold, extraction="strict", **options)
    assert strict.accuracy == 0.0 and strict.prediction is None, strict


@pytest.mark.parametrize(("response", "gold", "options"), WELL_FORMED, ids=[w[0][-30:] for w in WELL_FORMED])
def test_strict_rewards_every_well_formed_correct_answer(response, gold, options) -> None:
    assert score(response, gold, extraction="strict", **options).accuracy == 1.0
    assert score(response, gold, **options).accuracy == 1.0


def test_strict_extraction_takes_only_the_one_final_tag() -> None:
    assert extract_answer(f"{THINK}<answer> 7 </answer>", mode="strict").text == "7"
    assert extract_answer("The answer is 7.", mode="strict").rule == "none"
    assert extract_answer("<answer>1</answer><answer>7</answer>", mode="strict").text is None
    assert extract_answer("<answer>1</answer><answer>7</answer>").text == "7"  # lenient: the last tag


def test_default_reading_is_lenient_and_modes_are_checked() -> None:
    assert score("The answer is 12.", "12", answer_type="integer").accuracy == 1.0
    with pytest.raises(ValueError, match="extraction"):
        score("12", "12", extraction="loose")
    with pytest.raises(ValueError, match="refusals"):
        score("12", "12", refusals="never")


def test_score_batch_passes_the_mode_to_every_item() -> None:
    items = [{"response": hack[1], "ground_truth": hack[2], **hack[3]} for hack in HACKS]
    assert [result.accuracy for result in score_batch(items)] == [hack[4] for hack in HACKS]
    assert all(result.accuracy == 0.0 for result in score_batch(items, extraction="strict"))


def test_verl_compute_score_accepts_the_extraction_kwarg() -> None:
    spec = importlib.util.spec_from_file_location("custom_module_rewards_strict", VERL_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    extra = {"answer_type": "integer", "choices": None, "precision": None, "unit": None}
    untagged = "so in total 12"
    assert module.compute_score("mathvista", untagged, "12", extra)["acc"] == 1.0
    strict = module.compute_score("mathvista", untagged, "12", extra, extraction="strict")
    assert strict["acc"] == 0.0 and strict["no_answer"] == 1.0
    tagged = module.compute_score("mathvista", f"{THINK}<answer>12</answer>", "12", extra, extraction="strict")
    assert tagged["acc"] == 1.0 and tagged["score"] == 1.0
