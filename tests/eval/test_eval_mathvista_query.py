"""MathVista's official query: reproduced exactly for all 1000 testmini problems, and usable by `reasoner eval`."""

from __future__ import annotations

import dataclasses
import json

import pytest

from reasoner.benchmarks.mathvista_query import answer_form, load_hints, official_query
from reasoner.cli import main
from reasoner.data.records.files import write_problems
from reasoner.data.sets.sources import load_mathvista
from reasoner.data.worlds import generate_mixed
from reasoner.errors import ReasonerError
from reasoner.prompts import load_template, problem_messages


def query_of(problem, template) -> str:
    """The prompt text a generation request carries for `problem` (what `reasoner eval` sends)."""
    (message,) = problem_messages(problem, template)
    return message["content"][-1]["text"]


@pytest.fixture(scope="module")
def problems(mathvista_dir):
    return load_mathvista(mathvista_dir)


def test_official_query_matches_published_query_for_every_pid(problems, mathvista_dir) -> None:
    published = json.loads((mathvista_dir / "testmini_query.json").read_text(encoding="utf-8"))
    assert len(problems) == len(published) == 1000
    template = official_query()
    mismatched = [p.id for p in problems if query_of(p, template) != published[p.id]]
    assert mismatched == []


def test_official_query_quirks(problems) -> None:
    by_id = {p.id: p for p in problems}
    template = official_query()
    # The unit goes into the question line; the choices of 168 are literally "(c)", "(a)", ...
    assert "Question: what is the total volume of the measuring cup? (Unit: g)" in query_of(by_id["2"], template)
    assert query_of(by_id["168"], template).endswith("Choices:\n(A) (c)\n(B) (a)\n(C) (e)\n(D) (d)\n(E) (b)")
    # Trailing whitespace of the last choice / question is stripped, as the official builder strips the query.
    assert by_id["237"].choices[-1].endswith(" ") and query_of(by_id["237"], template).endswith("stay the same")
    assert "\r\n\r\n" in query_of(by_id["1"], template)  # inner blank lines of a question are kept


def test_answer_forms_cover_testmini(problems) -> None:
    forms = {answer_form(p.choices, p.answer_type, p.precision) for p in problems}
    assert forms == {"multi_choice", "integer", "float_1", "float_2", "list"} == set(load_hints())


def test_official_query_is_its_own_template(problems) -> None:
    problem = next(p for p in problems if p.is_multiple_choice)
    official, reason = query_of(problem, official_query()), query_of(problem, load_template("reason"))
    assert official.startswith("Hint: ") and "<think>" not in official
    assert "<think>" in reason and "(A) " in reason and "Hint:" not in reason
    # The fingerprint covers the layout and the hints, so neither can change under a cached evaluation.
    assert official_query().sha256 not in (load_template("mathvista_query").sha256, load_template("reason").sha256)


def test_official_query_has_no_hint_for_forms_mathvista_lacks(problems) -> None:
    problem = next(p for p in problems if p.answer_type == "float")
    odd = dataclasses.replace(problem, precision=3)
    with pytest.raises(ReasonerError, match="float_3.*use the 'reason' prompt"):
        query_of(odd, official_query())
    assert "3 decimal places" in query_of(odd, load_template("reason"))


def test_eval_command_with_the_official_query(tiny_model_dir, tmp_path) -> None:
    data = write_problems(generate_mixed(["count", "bars"], 2, level=1, seed=5, split="eval"), tmp_path / "p.jsonl")
    fingerprints = []
    for prompt in ("mathvista_query", "reason"):
        out = tmp_path / prompt
        args = ["--data", str(data), "--out", str(out), "--max-new-tokens", "4", "--prompt", prompt]
        assert main(["eval", "--model", str(tiny_model_dir), *args]) == 0
        scores = json.loads((out / "scores.json").read_text())
        assert scores["n"] == 2
        fingerprints.append(scores["fingerprint"])
    assert fingerprints[0] != fingerprints[1]
