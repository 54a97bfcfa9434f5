"""Every MathVista testmini gold answer, fed back in each common form, must score correct (1000/1000)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rewards import score
from rewards.choices import choice_letter


@pytest.fixture(scope="module")
def problems(mathvista_dir: Path) -> list[dict]:
    records = list(json.loads((mathvista_dir / "testmini.json").read_text(encoding="utf-8")).values())
    assert len(records) == 1000
    return records


def _options(problem: dict) -> dict:
    return {key: problem[key] for key in ("answer_type", "choices", "precision", "unit")}


def _letter(problem: dict) -> str:
    return choice_letter(problem["choices"].index(problem["answer"]))


FORMS = {
    "bare": lambda p: p["answer"],
    "think_answer": lambda p: f"<think>Reading the figure carefully.</think>\n<answer>{p['answer']}</answer>",
    "boxed": lambda p: f"\\boxed{{{p['answer']}}}",
}
LETTER_FORMS = {
    "letter": lambda p: _letter(p),
    "paren_letter": lambda p: f"({_letter(p)})",
    "answer_is_letter": lambda p: f"The answer is ({_letter(p)}).",
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_gold_answer_scores_correct_in_every_form(problems: list[dict], form: str) -> None:
    wrong = []
    for problem in problems:
        result = score(FORMS[form](problem), problem["answer"], **_options(problem))
        if result.accuracy != 1.0:
            wrong.append((problem["pid"], result.extracted, result.prediction, result.reason))
    assert not wrong, f"{len(wrong)} of 1000 gold answers scored wrong as {form}: {wrong[:5]}"


@pytest.mark.parametrize("form", sorted(LETTER_FORMS))
def test_gold_letter_scores_correct_for_every_multiple_choice_item(problems: list[dict], form: str) -> None:
    multiple_choice = [problem for problem in problems if problem["choices"]]
    assert len(multiple_choice) == 540
    wrong = []
    for problem in multiple_choice:
        result = score(LETTER_FORMS[form](problem), problem["answer"], **_options(problem))
        if result.accuracy != 1.0 or result.prediction != problem["answer"]:
            wrong.append((problem["pid"], result.extracted, result.prediction))
    assert not wrong, f"{len(wrong)} of 540 letters scored wrong as {form}: {wrong[:5]}"


def test_every_other_choice_scores_wrong(problems: list[dict]) -> None:
    """The mirror image: any choice but the gold one (given as its text or its letter) is wrong."""
    false_positives = []
    for problem in (p for p in problems if p["choices"]):
        for index, choice in enumerate(problem["choices"]):
            if choice == problem["answer"]:
                continue
            for response in (choice, f"The answer is ({choice_letter(index)})."):
                if score(response, problem["answer"], **_options(problem)).accuracy:
                    false_positives.append((problem["pid"], response))
    assert not false_positives, false_positives[:5]


def test_every_choice_text_in_an_answer_sentence_maps_to_itself(problems: list[dict]) -> None:
    """Choice texts hold ";", "." and letters ("neither; the samples have the same temperature")."""
    wrong = []
    for problem in (p for p in problems if p["choices"]):
        for choice in problem["choices"]:
            for response in (f"The answer is {choice}.", f"Answer: {choice}", f"<answer>{choice}</answer>"):
                result = score(response, choice, answer_type="text", choices=problem["choices"])
                if result.prediction != choice:
                    wrong.append((problem["pid"], response, result.prediction))
    assert not wrong, wrong[:5]


def test_pids_168_and_849_read_choice_text_before_letters(problems: list[dict]) -> None:
    """Their choices are literally "(a)".."(e)": "(b)" is that choice text; "(B)" is option B as the query lists."""
    by_pid = {problem["pid"]: problem for problem in problems}
    for pid in ("168", "849"):
        problem = by_pid[pid]
        assert problem["answer"] == "(b)"
        assert score("(b)", "(b)", **_options(problem)).accuracy == 1.0
        option_b = score("(B)", "(b)", **_options(problem))
        assert option_b.prediction == problem["choices"][1] and option_b.accuracy == 0.0


def test_scoring_all_gold_answers_takes_under_two_seconds(problems: list[dict]) -> None:
    started = time.perf_counter()
    results = [score(problem["answer"], problem["answer"], **_options(problem)) for problem in problems]
    elapsed = time.perf_counter() - started
    assert sum(result.accuracy for result in results) == 1000
    assert elapsed < 2.0, f"1000 gold items took {elapsed:.2f} s"
