"""Yes/no questions whose answer only states a comparison, read against the question (rewards.polar)."""

from __future__ import annotations

import pytest

from rewards import score
from rewards.polar import comparison_verdict

YES_NO = ["Yes", "No"]


@pytest.mark.parametrize(("question", "answer", "verdict"), [
    ("Are there more red buses than green trucks?", "There are more green trucks than red buses.", False),
    ("Are there more red buses than green trucks?", "Looking at the scene, there are more red buses than green "
     "trucks.", True),
    ("Are there fewer cyan bikes than yellow planes?", "There are more yellow planes than cyan bikes.", True),
    ("Is the number of small cubes less than the number of large spheres?",
     "The number of small cubes is greater than the number of large spheres.", False),
    ("Is Dark Orange greater than Sky Blue?", "From the chart, Dark Orange is greater than Sky Blue.", True),
    # Both sides share a context ("behind the van"): only the words that tell them apart count.
    ("Are there more large cars behind the van than small bikes?",
     "There are more small bikes behind the van than large cars.", False),
    ("Is the number of yellow jets greater than the number of brown buses?",
     "There are the same number of yellow jets as brown buses.", False),
])
def test_a_stated_comparison_is_read_against_the_question(question: str, answer: str, verdict: bool) -> None:
    assert comparison_verdict(question, answer) is verdict
    result = score(answer, "Yes" if verdict else "No", choices=YES_NO, answer_type="text", question=question)
    assert (result.accuracy, result.mapping) == (1.0, "comparison")


@pytest.mark.parametrize(("question", "answer"), [
    ("Is the curve above the axis?", "The curve stays above the axis."),  # the question compares nothing
    ("Are there more red buses than green trucks?", "I can see two red buses in the picture."),  # nor the answer
    ("Is Dark Orange greater than Sky Blue?", "Dark Orange is not greater than Sky Blue."),  # a negation decides
    ("Are there more red buses than green trucks?", "There are more blue cars than white vans."),  # other things
])
def test_no_verdict_without_two_comparisons_of_the_same_things(question: str, answer: str) -> None:
    assert comparison_verdict(question, answer) is None


def test_without_a_comparison_the_polarity_still_reads() -> None:
    result = score("Dark Orange is not greater than Sky Blue.", "No", choices=YES_NO, answer_type="text",
                   question="Is Dark Orange greater than Sky Blue?")
    assert (result.prediction, result.mapping) == ("No", "polarity")
