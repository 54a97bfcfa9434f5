"""Multiple choice: refusals and answers that list options are recognised before every reading rule (issue 31).

Written as fresh free text (not taken from any model's responses): refusals in several phrasings, for questions
with two to five choices, and answers listing options, with and without letters beyond the choices.
"""

from __future__ import annotations

import pytest

from rewards import score
from rewards.extract import clean_answer

YES_NO = ["Yes", "No"]
LOWER_YES_NO = ["yes", "no"]
RELATION = ["larger than", "equal to", "smaller than"]
COUNTS = ["2", "4", "6", "8"]
COLOURS = ["red", "green", "blue", "yellow", "purple"]
LENGTHS = ["2cm", "3cm", "4cm", "5cm"]
MC = {"answer_type": "text"}


def levenshtein(a: str, b: str) -> int:
    """Plain Levenshtein distance, the textbook table (what the official `get_most_similar` uses)."""
    row = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, char_b in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (char_a != char_b))
    return row[-1]


def most_similar(text: str, choices: list[str]) -> str:
    """MathVista's `get_most_similar`: the choice nearest to the whole text, the first one on a tie."""
    distances = [levenshtein(text, choice) for choice in choices]
    return choices[distances.index(min(distances))]


# (response, choices, question): one-sentence refusals, so what the official extractor copies is the sentence.
REFUSALS = [
    ("The text does not provide enough information to answer the question.", YES_NO,
     "Is the blue bar taller than the red one?"),
    ("I cannot determine whether there are fewer trucks than cars in this scene.", YES_NO,
     "Are there fewer trucks than cars?"),
    ("No data about the bars is given, so I cannot determine the answer.", YES_NO, "Is the first bar the tallest?"),
    ("I cannot determine whether the answer is yes or no.", LOWER_YES_NO, "Is the curve symmetric?"),
    ("The image is unclear, so the two lines cannot be compared.", LOWER_YES_NO, "Is Dark Cyan the high median?"),
    ("The question is too vague: there is no way to tell, so it is impossible to provide a correct answer.",
     YES_NO, "Is the shape a square?"),
    ("The question is too vague, and it is impossible to provide a correct answer.", YES_NO,
     "Are there more cubes than spheres?"),
    ("I cannot determine which one is larger from this graph.", RELATION, "Is the value at x=3 larger than at x=6?"),
    ("I don't have enough information to know if it is larger or smaller.", RELATION,
     "Is f(2) larger than, equal to or smaller than f(5)?"),
    ("Not enough information is shown in the figure to decide between them.", RELATION,
     "How does the slope at x=1 compare with the slope at x=4?"),
    ("The figure is too blurry to count the dots.", COUNTS, "How many dots are in the box?"),
    ("The photo is unclear, so which bar is tallest is hard to say.", COLOURS, "Which colour has the tallest bar?"),
    ("Sorry, but the picture is blurry and I am not able to tell the colours apart.", COLOURS,
     "Which colour is the largest slice?"),
]


@pytest.mark.parametrize(("response", "choices", "question"), REFUSALS)
def test_a_refusal_has_no_prediction_under_the_strict_policy(response: str, choices: list[str],
                                                             question: str) -> None:
    for gold in choices:  # whatever the answer, a refusal never scores
        result = score(response, gold, choices=choices, refusals="strict", question=question, **MC)
        assert (result.prediction, result.reason, result.mapping) == (None, "refusal", "refusal")


@pytest.mark.parametrize(("response", "choices", "question"), REFUSALS)
def test_a_refusal_lands_on_the_choice_nearest_to_it_under_the_official_policy(
    response: str, choices: list[str], question: str
) -> None:
    result = score(response, choices[0], choices=choices, refusals="official", question=question, **MC)
    assert result.mapping == "refusal"
    assert result.prediction == most_similar(clean_answer(response), choices)


def test_a_long_refusal_of_a_yes_no_question_is_usually_yes() -> None:
    # One character longer than "No", so one edit closer to a long sentence: not the "No" its negation would read.
    response = "The text does not provide enough information to answer the question."
    result = score(response, "Yes", choices=YES_NO, question="Is the line straight?", **MC, refusals="official")
    assert (result.prediction, result.accuracy, result.mapping) == ("Yes", 1.0, "refusal")


@pytest.mark.parametrize(("response", "expected", "mapping"), [
    ("No, the image is unclear but the two bars are clearly not the same height.", "No", "yes-no"),
    ("Yes. Even though the picture is blurry, the curve plainly rises.", "Yes", "yes-no"),
    ("There are no trucks in the image, so there are not more trucks than cars.", "No", "polarity"),
])
def test_an_answer_that_mentions_doubt_is_still_read(response: str, expected: str, mapping: str) -> None:
    result = score(response, expected, choices=YES_NO, refusals="strict", question="Is it so?", **MC)
    assert (result.prediction, result.mapping) == (expected, mapping)


def test_a_refusal_among_the_choices_is_what_a_refusing_answer_names() -> None:
    choices = ["3", "5", "7", "It cannot be determined from the given information"]
    response = "With only the diagram given, the length of PQ cannot be determined."
    for policy in ("official", "strict"):
        result = score(response, choices[3], choices=choices, refusals=policy, **MC)
        assert (result.prediction, result.accuracy) == (choices[3], 1.0)


@pytest.mark.parametrize(("response", "choices", "expected"), [
    # letters beyond the choices: the first bracketed letter, mapped to the choice nearest to it ("C" is two
    # edits from "No", three from "Yes"), never the word written after it
    ("(C) Yes (D) No", YES_NO, "No"),
    ("(C) Yes\n(D) No", YES_NO, "No"),
    ("(D) yes (E) no", LOWER_YES_NO, "no"),
    ("Answer: (C) Yes (D) No", YES_NO, "No"),
    ("(E) 3cm (F) 4cm", LENGTHS, "2cm"),  # "E" is three edits from every choice: the first
    ("(E) 3cm", LENGTHS, "2cm"),
    ("The answer is (E) 3cm.", LENGTHS, "2cm"),
    # letters among the choices: the first one's choice
    ("(A) Yes (B) No", YES_NO, "Yes"),
    ("(B) No (C) Maybe", YES_NO, "No"),
    ("(B) 3cm (C) 4cm", LENGTHS, "3cm"),
    ("(A) red (B) green (C) blue (D) yellow (E) purple", COLOURS, "red"),
])
def test_an_answer_listing_options_reads_its_first_bracketed_letter(response: str, choices: list[str],
                                                                   expected: str) -> None:
    for policy in ("official", "strict"):
        result = score(response, expected, choices=choices, refusals=policy, **MC)
        assert (result.prediction, result.accuracy) == (expected, 1.0), result


def test_a_letter_with_a_comment_is_no_option_list() -> None:
    # "(A) No, because (C) ..." lists nothing: the stated "No" answers, as before.
    result = score("(A) No, because (C) is the only point on the line.", "No", choices=YES_NO, **MC)
    assert (result.prediction, result.mapping) == ("No", "yes-no")


@pytest.mark.parametrize("response", [
    "B\nThe image is unclear, though.",
    "(B) 45°\nI cannot determine it exactly from this blurry figure.",
    "B. 45°\nNot enough information is given to be certain.",
    "45°\nThe figure is too blurry to be sure.",
])
def test_an_answer_stated_first_then_doubted_is_no_refusal(response: str) -> None:
    angles = ["30°", "45°", "60°", "90°"]
    result = score(response, "45°", choices=angles, refusals="strict", **MC)
    assert (result.prediction, result.accuracy) == ("45°", 1.0)
