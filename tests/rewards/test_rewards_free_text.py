"""Free-text answers of base models (no tags), read the way MathVista's official pipeline reads them.

One test per reading rule, each on realistic prose written for this test.
"""

from __future__ import annotations

import pytest

from rewards import score
from rewards.choices import match_choice, official_nearest

YES_NO = ["Yes", "No"]
ANGLES = ["30°", "45°", "60°", "90°"]
TREND = ["The population will increase", "The population will decrease", "The population will stay the same"]
MONTHS = ["January and February", "June and July", "October and November"]
MC = {"answer_type": "text"}


@pytest.mark.parametrize(("response", "gold"), [
    ("Looking at the chart, Sea Green is not the tallest bar; Orange is.", "No"),
    ("The curve does not cross the x-axis anywhere in the interval.", "No"),
    ("From the picture, the cup isn't full.", "No"),
    ("Based on the plot, Dark Cyan reaches the highest value of all the lines.", "Yes"),
    ("The function shown is continuous on the whole interval.", "Yes"),
    ("No. The left bar is shorter than the right one.", "No"),
    ("B. No, the shapes differ in size.", "No"),
    ("Let me compare both heights.\nThe first is 12 and the second is 9.\nTherefore, the first is not smaller.", "No"),
])
def test_yes_no_questions_answered_in_a_sentence_read_their_polarity(response: str, gold: str) -> None:
    result = score(response, gold, choices=YES_NO, **MC)
    assert result.accuracy == 1.0, result


@pytest.mark.parametrize(("response", "gold"), [
    ("If the frogs disappeared, the population of insects would most likely increase since fewer are eaten.",
     "The population will increase"),
    ("Over the two warmest months, June and July, the average rises above 25 degrees.", "June and July"),
    ("The warmest period on the chart is clearly July.", "June and July"),
])
def test_option_text_inside_a_sentence(response: str, gold: str) -> None:
    choices = TREND if gold in TREND else MONTHS
    assert score(response, gold, choices=choices, **MC).accuracy == 1.0


@pytest.mark.parametrize(("response", "gold"), [
    ("C is the correct answer, since the inscribed angle is half of the central angle.", "60°"),
    ("(B) 45°\nThe two angles are complementary, so each measures 45 degrees.", "45°"),
    ("The correct option letter is D, which corresponds to the right angle at the vertex.", "90°"),
    ("Choices:\n(A) 30°\n(B) 45°\n(C) 60°\n(D) 90°\nThe angle opposite the short side is 30°.", "30°"),
    ("The angle is 45 degrees.\n\nChoices:\n(A) 30°\n(B) 45°\n(C) 60°\n(D) 90°", "45°"),
])
def test_letters_and_first_lines(response: str, gold: str) -> None:
    assert score(response, gold, choices=ANGLES, **MC).accuracy == 1.0


@pytest.mark.parametrize(("response", "gold"), [
    ("由图可知，∠ABC=60°，所以选项为C。", "60°"),
    ("两角互余，故∠2=45°，对应选项是B。", "45°"),
    ("答案为 A", "30°"),
])
def test_chinese_answer_phrasings(response: str, gold: str) -> None:
    assert score(response, gold, choices=ANGLES, **MC).accuracy == 1.0


@pytest.mark.parametrize(("response", "gold"), [
    ("There are 3 bars with values below 40.", "3"),
    ("There are two groups with at least one value smaller than 25.", "2"),
    ("There is only one category above 60 in every year.", "1"),
    ("The highest point of the orange line is **1578**, reached in 2019; the blue line peaks at 1200.", "1578"),
    ("The final value is 2. In 2008, 2011 and 2014 the line lies above its mean.", "2"),
])
def test_numbers_with_words_around_them(response: str, gold: str) -> None:
    assert score(response, gold, answer_type="integer").accuracy == 1.0


REFUSALS = [
    "I'm sorry, I can't see any image attached to the question.",
    "Without the figure, it is impossible to determine the measure of the angle.",
    "The question does not provide enough information to decide. The answer is (Cannot be determined).",
]


@pytest.mark.parametrize("response", REFUSALS)
def test_refusal_policy(response: str) -> None:
    strict = score(response, "45°", choices=ANGLES, refusals="strict", **MC)
    assert (strict.prediction, strict.reason, strict.mapping) == (None, "refusal", "refusal")
    official = score(response, "45°", choices=ANGLES, refusals="official", **MC)
    assert official.prediction in ANGLES and official.mapping == "refusal"


def test_official_refusal_mapping_follows_the_official_normalisation() -> None:
    # A letter in parentheses is read first (out of range: the choice nearest to the letter), then edit distance.
    assert official_nearest("(C) Cannot be determined", YES_NO) == "No"
    assert official_nearest("Cannot be determined", YES_NO) == "Yes"  # a tie: the first choice
    refusal = match_choice("Therefore, the correct option is (C) Cannot be determined", YES_NO, refusals="official")
    assert (refusal.prediction, refusal.mapping) == ("No", "refusal")


def test_numeric_refusals_have_no_prediction_under_either_policy() -> None:
    for policy in ("official", "strict"):
        result = score("I cannot determine the length from this image.", "5", answer_type="integer", refusals=policy)
        assert (result.prediction, result.reason) == (None, "refusal")


def test_existing_traps_still_hold() -> None:
    letters = ["(c)", "(a)", "(e)", "(d)", "(b)"]
    assert score("(b)", "(b)", choices=letters, **MC).accuracy == 1.0
    assert score("(B)", "(b)", choices=letters, **MC).prediction == "(a)"
    assert score("The answer is [1, 2]", "[1, 2]", answer_type="list").accuracy == 1.0
    assert score("The answer is [1, 3]", "[1, 2]", answer_type="list").accuracy == 0.0
    assert score("The length is 7.071", "7.07", answer_type="float", precision=2).accuracy == 1.0
    assert score("The length is 7.08", "7.07", answer_type="float", precision=2).accuracy == 0.0


@pytest.mark.parametrize(("response", "gold"), [
    # A hypothesis is no answer: "If ..., the answer is (A) Yes. Otherwise, the answer is (B) No." then a refusal.
    ("We would need to count the red cubes and the blue spheres.\n\nIf there are more red cubes, the answer is "
     "(A) Yes. Otherwise, the answer is (B) No.\n\nWithout seeing the scene, it is not possible to determine "
     "the correct answer.", None),
    ("The left bar is shorter, so the answer is (B) No. If the chart were mirrored, the answer would be (A) Yes.",
     "No"),
])
def test_answers_stated_as_hypotheses_are_not_read(response: str, gold: str | None) -> None:
    result = score(response, gold or "Yes", choices=YES_NO, refusals="strict", **MC)
    assert result.prediction == gold
    if gold is None:
        assert result.reason == "refusal"


@pytest.mark.parametrize("response", [
    "Both angles subtend the same arc, so they are equal.\nTherefore, option C is the correct answer.",
    "The inscribed angle is half of 120°, so (C) is correct.",
    "由圆周角定理可知∠BAC=60°，因此选项C是正确答案。",
    "The answer could be (A) if the lines were parallel, but they are not; choice C is the right answer here.",
])
def test_a_letter_said_to_be_correct_inside_the_text(response: str) -> None:
    result = score(response, "60°", choices=ANGLES, **MC)
    assert (result.extracted, result.prediction) == ("C", "60°")


def test_zero_width_characters_are_dropped() -> None:
    assert score("\u200b", "45°", choices=ANGLES, **MC).reason == "no-answer"
    assert score("\u200bThe correct option is (B) 45°.", "45°", choices=ANGLES, **MC).accuracy == 1.0
    assert score("The total is 1\u200b2.", "12", answer_type="integer").accuracy == 1.0


@pytest.mark.parametrize(("response", "gold"), [
    # Answer first, then the explanation with more numbers in it.
    ("The tallest bar belongs to 2018.\n\nThe values for the other years are 12, 15 and 9, all lower.", "2018"),
    ("The value that completes the pattern is 6.\n\n2, 4, __, 8, 10", "6"),
    # An aside after the answer.
    ("Sales peaked in 2012, with 340 units sold that year.", "2012"),
    ("The gap between the two lines is 15 points, while the lower line stays near 40.", "15"),
    # One paragraph reasoning up to its answer, and a "Therefore" sentence before a postscript.
    ("The left stack has 4 cubes and the right one 5. Together they make 9.", "9"),
    ("Each box costs $3, so 4 boxes cost $12.\nTherefore, she pays $12.\n\nA quick check in code printed 15.", "12"),
])
def test_numbers_in_the_answering_sentence(response: str, gold: str) -> None:
    result = score(response, gold, answer_type="integer")
    assert (result.accuracy, result.rule) == (1.0, "answer_sentence"), result
