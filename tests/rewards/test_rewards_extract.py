"""Answer extraction rules: which span each kind of response yields, and which rule says so."""

from __future__ import annotations

import pytest

from rewards import extract_answer
from rewards.extract import clean_answer, is_refusal, last_boxed

CASES = [
    ("<think>long reasoning</think>\n<answer>(B) 8/11</answer>", "text", "(B) 8/11", "answer_tag"),
    ("<answer>1</answer> then <answer>2</answer>", "text", "2", "answer_tag"),
    ("<think>x</think><answer>The answer is \\boxed{5}</answer>", "text", "5", "answer_tag"),
    ("<think>x</think><answer>7 apples", "number", "7 apples", "answer_tag"),  # never closed
    ("<think>x</think><answer>  </answer>", "text", None, "answer_tag"),
    ("so $\\boxed{\\frac{1}{2}}$ and \\boxed{\\frac{\\sqrt{3}}{2}}", "text", "\\frac{\\sqrt{3}}{2}", "boxed"),
    ("\\boxed{{a}{b}}", "text", "{a}{b}", "boxed"),
    ("The answer is 5. Then more text.", "number", "5", "answer_is"),
    ("The answer is 2.5.", "number", "2.5", "answer_is"),
    ("The correct answer is (C) 45°.", "text", "(C) 45°", "answer_is"),
    ("The final answer is:\n\n(B)", "text", "(B)", "answer_is"),
    ("The answer is therefore 12, because 3 x 4 = 12", "number", "12", "answer_is"),
    ("the answer is 4 and the answer is 6", "number", "6", "answer_is"),
    ("答案是 B", "text", "B", "answer_is"),
    ("故选：D", "text", "D", "answer_is"),
    ("La respuesta es 12.", "number", "12", "answer_is"),
    ("La réponse est C.", "text", "C", "answer_is"),
    ("Die Antwort ist 7.", "number", "7", "answer_is"),
    ("Reasoning...\nAnswer: 42", "number", "42", "answer_label"),
    ("**Final Answer:** 3.5", "number", "3.5", "answer_label"),
    ("Q: How many?\nA: 3", "number", "3", "answer_label"),
    ("答案：12", "number", "12", "answer_label"),
    ("Antwort: B", "text", "B", "answer_label"),
    ("Respuesta: 9", "number", "9", "answer_label"),
    ("The answer is not obvious at first.\nAfter measuring: Answer: 5", "number", "5", "answer_label"),
    ("Answer: let us see.\nSo the answer is 6.", "number", "6", "answer_is"),
    ("Comparing the bars.\nB", "text", "B", "option_letter"),
    ("Comparing the bars.\n(C).", "text", "(C).", "option_letter"),
    ("Comparing the bars.\noption D", "text", "option D", "option_letter"),
    ("The peak is [2014, 2016] as the chart shows.", "list", "[2014, 2016]", "bracket_list"),
    ("First 3, then 4, so 7 in total.", "number", "7", "answer_sentence"),
    ("I think it's about 5 cm", "number", "5", "answer_sentence"),
    ("There are 3 bars below 40.\n\nThey are the years 2014, 2015 and 2016.", "number", "3", "answer_sentence"),
    ("The first bar is 12 and the second is 30. The difference is 18.", "number", "18", "answer_sentence"),
    ("The peak is **70**, reached in **2009**.\nEarlier years range from 20 to 60.", "number", "70",
     "answer_sentence"),
    ("Each row holds 4 cubes.\nThere are 3 rows.\nSo the total is 12 cubes, with 4 cubes per row.", "number", "12",
     "answer_sentence"),
    ("Let me count the bars from left to right.\nThe total comes to 7.", "number", "7", "last_number"),
    ("Let me count the bars from left to right.\nThe tallest one is **1578**, the next 1200.", "number", "1578", "bold"),
    ("2\\sqrt{3}", "number", "2\\sqrt{3}", "full_text"),
    ("Yes, it is.", "text", "Yes, it is.", "full_text"),
    ("", "text", None, "none"),
]


@pytest.mark.parametrize(("response", "fallback", "text", "rule"), CASES, ids=[c[0][:30] for c in CASES])
def test_extraction_rule(response: str, fallback: str, text: str | None, rule: str) -> None:
    extraction = extract_answer(response, fallback)
    assert (extraction.text, extraction.rule) == (text, rule)


def test_a_label_is_not_the_first_of_a_list_of_options() -> None:
    response = "Options:\nA: 30°\nB: 45°\nSo it is the second."
    assert extract_answer(response).rule == "full_text"


def test_last_boxed_handles_nesting_and_unclosed_braces() -> None:
    assert last_boxed("\\boxed{9^{9^{9}}}") == "9^{9^{9}}"
    assert last_boxed("\\boxed{1} and \\boxed{2") == "1"
    assert last_boxed("no box") is None


@pytest.mark.parametrize(("raw", "clean"), [
    ("**B**", "B"), ("$\\text{(B)}$", "(B)"), ("  45° .", "45°"), ("\\textbf{\\text{yes}}", "yes"),
    ("（B）", "(B)"), ("'kyoto'", "kyoto"),
])
def test_clean_answer(raw: str, clean: str) -> None:
    assert clean_answer(raw) == clean


@pytest.mark.parametrize(("text", "refusal"), [
    ("I cannot determine the answer from the image.", True),
    ("It can't be determined.", True),
    ("Sorry, I am unable to answer that.", True),
    ("There is not enough information to decide.", True),
    ("无法确定", True),
    ("The answer is 5.", False),
    ("We cannot see the top, but the visible part shows 4 cubes, so 5.", False),
])
def test_refusal_detection(text: str, refusal: bool) -> None:
    assert is_refusal(text) is refusal
