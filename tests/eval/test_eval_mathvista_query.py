"""MathVista query builders: the official query reproduced exactly for all 1000 testmini problems."""

from __future__ import annotations

import dataclasses
import json

import pytest

from reasoner.data.sources import load_mathvista
from reasoner.errors import ReasonerError
from reasoner.eval.mathvista_query import (
    answer_form,
    build_query,
    load_hints,
    mathvista_query,
    query_sha256,
    reason_query,
)


@pytest.fixture(scope="module")
def problems(mathvista_dir):
    return load_mathvista(mathvista_dir)


def test_official_query_matches_published_query_for_every_pid(problems, mathvista_dir) -> None:
    published = json.loads((mathvista_dir / "testmini_query.json").read_text(encoding="utf-8"))
    assert len(problems) == len(published) == 1000
    mismatched = [p.id for p in problems if mathvista_query(p) != published[p.id]]
    assert mismatched == []


def test_official_query_quirks(problems) -> None:
    by_id = {p.id: p for p in problems}
    # The unit goes into the question line; the choices of 168 are literally "(c)", "(a)", ...
    assert "Question: what is the total volume of the measuring cup? (Unit: g)" in mathvista_query(by_id["2"])
    assert mathvista_query(by_id["168"]).endswith("Choices:\n(A) (c)\n(B) (a)\n(C) (e)\n(D) (d)\n(E) (b)")
    # Trailing whitespace of the last choice / question is stripped, as the official builder strips the query.
    assert by_id["237"].choices[-1].endswith(" ") and mathvista_query(by_id["237"]).endswith("stay the same")
    assert "\r\n\r\n" in mathvista_query(by_id["1"])  # inner blank lines of a question are kept


def test_answer_forms_cover_testmini(problems) -> None:
    forms = {answer_form(p) for p in problems}
    assert forms == {"multi_choice", "integer", "float_1", "float_2", "list"} == set(load_hints())


def test_build_query_styles(problems) -> None:
    problem = next(p for p in problems if p.is_multiple_choice)
    assert build_query(problem) == mathvista_query(problem) == build_query(problem, "official")
    reason = build_query(problem, "reason")
    assert reason == reason_query(problem)
    assert "<think>" in reason and "(A) " in reason and "Hint:" not in reason
    with pytest.raises(ReasonerError, match="allowed: official, reason"):
        build_query(problem, "gpt")  # type: ignore[arg-type]
    assert query_sha256("official") != query_sha256("reason")


def test_official_query_has_no_hint_for_forms_mathvista_lacks(problems) -> None:
    problem = next(p for p in problems if p.answer_type == "float")
    odd = dataclasses.replace(problem, precision=3)
    with pytest.raises(ReasonerError, match="float_3"):
        mathvista_query(odd)
    assert "3 decimal places" in build_query(odd, "reason")
