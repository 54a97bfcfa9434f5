"""rewards.mathvision: MATH-Vision's official extraction and equality rules, case by case (expected values worked
out from mathllm/MATH-V evaluation/evaluate.py and utils.py)."""

from __future__ import annotations

import pytest

from rewards.mathvision import find_math_answer, is_equal, judge, number_value, official_answer


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("So the right picture is B.", "b"),  # ends with " B."
        ("Comparing the two, it must be (C).", "c"),  # ends with " (C)."
        ("(D)\nBecause the cube turns twice.", "d"),  # starts with "(D)\n"
        ("Thus the length is 12.5.", "12.5"),  # the text after the last "is " is a number
        ("The final answer is 7\nI checked it twice.", "7"),  # flag, first line
        ("the answer is 5. Then we stop. ", "5"),  # flag, cut at the first ". "
        ("First \\boxed{5}, after checking \\boxed{6}", "6"),  # two boxes: the last
        ("Hence $\\boxed{\\dfrac{1}{2}}$", "\\frac{1}{2}"),
        ("Angle: \\boxed{30^\\circ}", "30"),
        ("We get x = 1/4", "\\frac{1}{4}"),  # after "=", a/b -> \frac
        ("0.5", "\\frac{1}{2}"),  # the official quirk
        ("\\boxed{2\\sqrt3}", "2\\sqrt{3}"),
        ("The answer is (a).", "a"),
        ("", ""),
    ],
)
def test_official_extraction(response, answer):
    assert official_answer(response) == answer


def test_find_math_answer_cuts_an_unopened_brace_and_keeps_the_last_equation_side():
    assert find_math_answer("\\boxed{12} cm}") == "12"
    assert find_math_answer("AB = 3 \\approx 3.0") == "3.0"


@pytest.mark.parametrize(
    ("gold", "answer", "equal"),
    [
        ("B", "b", True),
        ("B", "c", False),
        ("0.5", "\\frac{1}{2}", True),
        ("4.8", "4.804", True),  # numbers compare rounded to 2 decimals
        ("4.8", "4.81", False),
        ("(3,-4)", "(3,-4)", True),
        ("(3,-4)", "(3,-5)", False),
        ("6", "", False),
        ("linear", "linear ", True),
    ],
)
def test_official_equality(gold, answer, equal):
    assert is_equal(gold, answer) is equal


def test_expressions_are_evaluated_like_latex2sympy_would():
    assert number_value("2\\sqrt{3}") == pytest.approx(3.4641, abs=1e-4)
    assert is_equal("3.46", "2\\sqrt{3}")
    assert number_value("b") is None and number_value("$6 \\mathrm{~m}$") is None


def test_judge_compares_with_the_letter_and_with_the_option_text():
    assert judge("The answer is linear.", "A", "linear").matched == "option"
    assert judge("The answer is (A).", "A", "linear").matched == "letter"
    verdict = judge("Count the dots: the answer is 7", "6")
    assert (verdict.correct, verdict.extracted, verdict.rule) == (False, "7", "official")


def test_our_answer_tag_is_read_where_the_official_script_reads_nothing():
    response = "<think>The ant walks right twice.</think>\nThe ant meets the bee.\n<answer>B</answer>"
    assert official_answer(response) != "b"  # the official rules alone miss a tagged answer
    verdict = judge(response, "B", "the bee")
    assert (verdict.correct, verdict.rule, verdict.extracted) == (True, "answer_tag", "b")
