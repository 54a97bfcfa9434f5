"""Prompts for MathVista problems: the official query text, or our own `<think>/<answer>` prompt.

The official form (lupantech/MathVista `evaluation/build_query.py`, zero-shot, no caption/OCR) is

    Hint: <hint for the answer form>
    Question: <question>[ (Unit: <unit>)]
    Choices:
    (A) <choice>
    ...

with the whole text stripped of surrounding whitespace. The layout lives in configs/prompts/mathvista_query.txt
and the hints in configs/prompts/mathvista_hints.txt; rendered here, they reproduce the published
`query.json` of every testmini problem character for character (tests/eval check all 1000).
"""

from __future__ import annotations

import hashlib
from typing import Literal

from reasoner.data.records import Problem
from reasoner.errors import ReasonerError
from reasoner.prompts import format_choices, load_template

QueryStyle = Literal["official", "reason"]
QUERY_STYLES: tuple[str, ...] = ("official", "reason")
QUERY_TEMPLATE = "mathvista_query"
HINTS_FILE = "mathvista_hints"
REASON_TEMPLATE = "reason"


def load_hints(name_or_path: str = HINTS_FILE) -> dict[str, str]:
    """The official hints by answer form (`multi_choice`, `integer`, `float_1`, `float_2`, `list`).

    The file holds `<form>: <text>` lines; blank lines and `#` comments are skipped.
    """
    template = load_template(name_or_path)
    hints: dict[str, str] = {}
    for number, line in enumerate(template.text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        form, sep, text = line.partition(":")
        if not sep or not text.strip():
            raise ReasonerError(f"hints file {template.name!r}: line {number} is not '<form>: <hint text>'")
        hints[form.strip()] = text.strip()
    return hints


def answer_form(problem: Problem) -> str:
    """The hint key of a problem: `multi_choice` when it has choices, else its answer type (`float_<places>`)."""
    if problem.is_multiple_choice:
        return "multi_choice"
    if problem.answer_type == "float":
        return f"float_{problem.precision}" if problem.precision is not None else "float"
    return problem.answer_type


def official_hint(problem: Problem) -> str:
    """The official MathVista hint sentence for this problem's answer form."""
    hints = load_hints()
    form = answer_form(problem)
    if form not in hints:
        # The official builder has no hint for these either (it fails); our own prompt covers them.
        raise ReasonerError(
            f"problem {problem.id}: no official MathVista hint for answer form {form!r} "
            f"(answer_type {problem.answer_type!r}, precision {problem.precision!r}); "
            f"known forms: {', '.join(hints)}; use the 'reason' query style instead"
        )
    return hints[form]


def mathvista_query(problem: Problem) -> str:
    """The official zero-shot MathVista query of a problem (hint, question with unit, lettered choices)."""
    template = load_template(QUERY_TEMPLATE)
    fields = {
        "hint": official_hint(problem),
        "question": problem.question,
        "unit": f" (Unit: {problem.unit})" if problem.unit else "",
        "choices": format_choices(problem.choices),
    }
    text = template.substitute(fields)
    # The official builder joins the non-empty parts and strips the result: an empty $choices line (free-form)
    # and trailing spaces of the last choice or question disappear the same way here.
    return text.strip()


def reason_query(problem: Problem) -> str:
    """Our `<think>/<answer>` prompt (configs/prompts/reason.txt), the one SFT and GRPO train with."""
    return load_template(REASON_TEMPLATE).render(
        problem.question,
        choices=problem.choices,
        answer_type=problem.answer_type,
        precision=problem.precision,
        unit=problem.unit,
    )


def build_query(problem: Problem, style: QueryStyle = "official") -> str:
    """The prompt text for one problem: `official` (MathVista's own query) or `reason` (our template)."""
    if style == "official":
        return mathvista_query(problem)
    if style == "reason":
        return reason_query(problem)
    raise ReasonerError(f"unknown MathVista query style {style!r}; allowed: {', '.join(QUERY_STYLES)}")


def query_sha256(style: QueryStyle = "official") -> str:
    """A hash of the template files a style renders from (for stage manifests)."""
    if style == "official":
        names = [QUERY_TEMPLATE, HINTS_FILE]
    elif style == "reason":
        names = [REASON_TEMPLATE]
    else:
        raise ReasonerError(f"unknown MathVista query style {style!r}; allowed: {', '.join(QUERY_STYLES)}")
    digest = hashlib.sha256()
    for name in names:
        digest.update(load_template(name).sha256.encode())
    return digest.hexdigest()
