"""Free-text answers read as MathVista's official pipeline reads them: one test per reading rule, each on
realistic prose written for this test (not copied from the development responses)."""

from __future__ import annotations

import random

import pytest

from rewards import score, score_batch
from rewards.choices import edit_distance, match_choice, official_nearest, refusal_statement

MC = {"answer_type": "text"}
YES_NO = ["Yes", "No"]
SEASONS = ["Winter", "Spring and summer", "Autumn"]
LENGTHS = ["4", "6", "8", "10"]
ANGLES = ["35°", "45°", "55°", "65°"]


def _table_distance(a: str, b: str) -> int:
    """The textbook Levenshtein table, to check the bit-parallel one against."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def test_edit_distance_equals_the_levenshtein_table() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        a = "".join(rng.choice("ab°√{}1 ") for _ in range(rng.randint(0, 40)))
        b = "".join(rng.choice("ab°√x2 ") for _ in range(rng.randint(0, 12)))
        assert edit_distance(a, b) == _table_distance(a, b) == edit_distance(b, a)
    long = "The perimeter cannot be found without the side lengths. " * 40
    assert edit_distance(long, "Cannot be determined") == _table_distance(long, "Cannot be determined")


def test_a_whole_response_that_refuses_lands_where_its_refusing_sentence_is_nearest() -> None:
    response = ("To compare the two regions we would need their areas.\n\nThe figure is not included, so it is not "
                "possible to determine which region is larger.")
    choices = ["R1", "R2", "Both are equal", "It is not possible to determine from the data"]
    assert refusal_statement(response) == ("The figure is not included, so it is not possible to determine which "
                                           "region is larger")
    result = score(response, "R1", choices=choices, refusals="official", **MC)
    assert result.prediction == official_nearest(refusal_statement(response), choices)
    assert result.prediction == "It is not possible to determine from the data"
    # A choice that itself refuses is what a refusal answers, under either policy (not a refusal left unread).
    for policy in ("official", "strict"):
        result = score(response, "R1", choices=choices, refusals=policy, **MC)
        assert (result.prediction, result.mapping) == ("It is not possible to determine from the data", "mention")


def test_a_refusing_conclusion_that_names_the_choices_is_a_refusal() -> None:
    response = "We would have to see the curve.\nWithout the graph we cannot tell whether it is odd or even."
    result = score(response, "odd", choices=["odd", "even"], refusals="strict", **MC)
    assert (result.prediction, result.reason) == (None, "refusal")


@pytest.mark.parametrize(("response", "gold"), [
    ("(D) Autumn", "Spring and summer"),  # the official extractor keeps "D", nearest of three choices to "D"
    ("D) The leaves fall in autumn.", "Spring and summer"),
])
def test_a_letter_beyond_the_choices_lands_on_the_choice_nearest_to_it(response: str, gold: str) -> None:
    result = score(response, gold, choices=SEASONS, **MC)
    assert (result.prediction, result.mapping) == (official_nearest("D", SEASONS), "nearest")


@pytest.mark.parametrize(("response", "gold"), [
    ("A - No, the two shapes are not the same size.", "No"),
    ("(C) Yes, the red bar is the tallest one.", "Yes"),
    ("B. Yes. The line rises over the whole interval.", "Yes"),
])
def test_a_yes_or_no_word_beats_the_letter_in_front_of_it(response: str, gold: str) -> None:
    result = score(response, gold, choices=YES_NO, **MC)
    assert (result.prediction, result.mapping) == (gold, "yes-no")


def test_a_yes_no_phrase_read_only_by_polarity_gives_way_to_the_opening_word() -> None:
    response = "B. No, the lime bar is not the tallest. The tallest color option is C (Navy)."
    result = score(response, "No", choices=YES_NO, **MC)
    assert (result.prediction, result.rule) == ("No", "full_text")


def test_a_sentence_grading_a_letter_is_not_the_answer() -> None:
    response = "C is incorrect. The small circle is not shaded, it is left white."
    assert score(response, "No", choices=YES_NO, **MC).prediction == "No"


@pytest.mark.parametrize(("response", "gold"), [
    ("Yes, the mapping z = 1 - r reverses the histogram as required.", "True"),
    ("No. A linear filter cannot remove this kind of noise.", "False"),
])
def test_true_false_questions_answered_yes_or_no(response: str, gold: str) -> None:
    assert score(response, gold, choices=["True", "False"], **MC).prediction == gold


def test_a_box_that_names_no_choice_gives_way_to_the_stated_letter() -> None:
    response = ("The correct answer is (B).\n\nThe inscribed angle is half of the central one, and the angle at the "
                "centre is split in two: $\\boxed{22.5^\\circ}$ each, so the inscribed angle is twice that.")
    result = score(response, "45°", choices=["25°", "45°", "50°", "90°"], **MC)
    assert (result.extracted, result.prediction) == ("(B)", "45°")
    boxed_choice = "The answer is (A).\n\nSo the angle is $\\boxed{50^\\circ}$."
    assert score(boxed_choice, "50°", choices=["25°", "45°", "50°", "90°"], **MC).prediction == "50°"


@pytest.mark.parametrize(("response", "choices", "gold"), [
    # The first sentence that names one choice answers; the rest explains.
    ("If the snakes disappeared, the mice would have the most food left. Owls and hawks would then hunt more, "
     "and so would the foxes.", ["mice", "owls", "hawks", "foxes"], "mice"),
    # A leading condition restates the question; a trailing reason is no answer either.
    ("If the hawks decrease, the snakes would increase. With fewer predators the snakes multiply, and the frogs "
     "they eat will decrease.", ["increase", "decrease", "stay the same"], "increase"),
    ("The animal that loses its food first is the Rabbit, as it eats only the clover that Deer and Goats avoid.",
     ["Rabbit", "Deer", "Goat"], "Rabbit"),
    # A stem of the choice is enough: "flipped" names "flip".
    ("The shape was flipped across the dashed line.", ["slide", "flip", "turn"], "flip"),
    # "√{3}" in the choices is written "√3" in the answer.
    ("So the length of the chord AB is 4√3.", ["4", "4√{2}", "4√{3}", "8"], "4√{3}"),
])
def test_the_choice_named_in_the_answering_clause(response: str, choices: list[str], gold: str) -> None:
    assert score(response, gold, choices=choices, **MC).prediction == gold


def test_a_concluding_number_that_is_no_choice_lands_on_the_nearest_by_edit_distance() -> None:
    response = "Adding the four sides: 3 + 4 + 5 + 6 = 18.\n\nSo, the missing length is 12."
    result = score(response, "10", choices=LENGTHS, **MC)
    assert (result.prediction, result.mapping) == (official_nearest("12", LENGTHS), "nearest")
    assert result.prediction == "10"


def test_a_parenthesised_letter_on_the_first_line_answers() -> None:
    response = ("The missing tile in the pattern is (C).\n\nEach row adds one dot, and the third row already has "
                "the A and B tiles.\n\nTherefore, the pattern is completed by the third tile.")
    assert score(response, "C", choices=["A", "B", "C", "D"], **MC).prediction == "C"


def test_the_option_letter_to_choose() -> None:
    response = "The correct option letter to choose is C. Its neighbour, 65°, would be too wide."
    assert score(response, "55°", choices=ANGLES, **MC).prediction == "55°"


def test_a_numeric_answer_ending_in_a_refusal_has_no_number() -> None:
    response = ("Suppose there are 12 cubes in total and 4 are removed.\n\nHowever, the image is not provided, so "
                "we cannot determine the exact number of cubes left.")
    for policy in ("official", "strict"):
        result = score(response, "8", answer_type="integer", refusals=policy)
        assert (result.prediction, result.reason, result.rule) == (None, "refusal", "refusal")


@pytest.mark.parametrize(("response", "gold", "accuracy"), [
    ("The average of the three bars is 2.5.", "2", 0.0),  # a fraction is no integer answer, never truncated
    ("The difference between the two lines is 3.00 units.", "3", 1.0),
    ("x = 7/2", "3", 0.0),
])
def test_integer_answers_must_be_whole(response: str, gold: str, accuracy: float) -> None:
    assert score(response, gold, answer_type="integer").accuracy == accuracy


@pytest.mark.parametrize(("question", "response", "gold"), [
    ("When does the function value first reach 2?", "The function first reaches 2 at x = 3.", "3"),
    ("How many customers bought a bicycle in 2019?", "There were 45 customers who bought a bicycle in 2019.", "45"),
])
def test_numbers_restated_from_the_question_are_not_the_answer(question: str, response: str, gold: str) -> None:
    result = score(response, gold, answer_type="integer", question=question)
    assert result.accuracy == 1.0, result


def test_the_question_reaches_the_scorer_through_score_batch() -> None:
    item = {"response": "There are more green trucks than red buses.", "ground_truth": "No", "choices": YES_NO,
            "answer_type": "text", "question": "Are there more red buses than green trucks?"}
    result = score_batch([item])[0]
    assert (result.prediction, result.mapping) == ("No", "comparison")
    assert match_choice(item["response"], YES_NO, full_text=True).mapping == "polarity"  # without the question
