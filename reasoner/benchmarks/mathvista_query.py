"""MathVista's official zero-shot query as a prompt template: `reasoner eval --prompt mathvista_query`.

The official form (lupantech/MathVista `evaluation/build_query.py`, zero-shot, no caption/OCR) is

    Hint: <hint for the answer form>
    Question: <question>[ (Unit: <unit>)]
    Choices:
    (A) <choice>
    ...

with the whole text stripped of surrounding whitespace. The layout lives in configs/prompts/mathvista_query.txt
and the hints in configs/prompts/mathvista_hints.txt; rendered here, they reproduce the published
`query.json` of every testmini problem character for character (tests/eval check all 1000). Published zero-shot
numbers of base models use this query; our runs train and evaluate with `reason` instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from reasoner.errors import ReasonerError
from reasoner.prompts import Template, format_choices, load_template

OFFICIAL_PROMPT = "mathvista_query"
"""The `--prompt` name that selects the official query (also its layout file's name)."""
HINTS_FILE = "mathvista_hints"


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


def answer_form(choices: Sequence[str] | None, answer_type: str | None, precision: int | float | None) -> str:
    """The hint key of a problem: `multi_choice` when it has choices, else its answer type (`float_<places>`)."""
    if choices:
        return "multi_choice"
    if answer_type == "float":
        return f"float_{int(precision)}" if precision is not None else "float"
    return str(answer_type)


@dataclass(frozen=True)
class OfficialQuery(Template):
    """The official query layout plus its hints; `sha256` covers both files (for fingerprints)."""

    hints: tuple[tuple[str, str], ...] = ()

    def render(
        self,
        question: str,
        *,
        choices: Sequence[str] | None = None,
        answer_type: str | None = None,
        precision: int | float | None = None,
        unit: str | None = None,
        caption: str | None = None,
        description: str | None = None,
    ) -> str:
        """The official query of one problem (hint, question with unit, lettered choices); it shows images, so
        `caption` and `description` are never filled."""
        fields = {
            "hint": self.hint(choices, answer_type, precision),
            "question": question,
            "unit": f" (Unit: {unit})" if unit else "",
            "choices": format_choices(choices),
        }
        # The official builder joins the non-empty parts and strips the result: an empty $choices line (free-form)
        # and trailing spaces of the last choice or question disappear the same way here; inner blank lines of a
        # question stay (unlike `Template.render`).
        return self.substitute(fields).strip()

    def hint(self, choices: Sequence[str] | None, answer_type: str | None, precision: int | float | None) -> str:
        """The official hint sentence for a problem's answer form."""
        hints = dict(self.hints)
        form = answer_form(choices, answer_type, precision)
        if form not in hints:
            # The official builder has no hint for these either (it fails); our own prompt covers them.
            raise ReasonerError(
                f"no official MathVista hint for answer form {form!r} (answer_type {answer_type!r}, precision "
                f"{precision!r}); known forms: {', '.join(hints)}; use the 'reason' prompt instead"
            )
        return hints[form]


def official_query() -> OfficialQuery:
    """The official query template (`configs/prompts/mathvista_query.txt` + `mathvista_hints.txt`)."""
    layout, hints = load_template(OFFICIAL_PROMPT), load_template(HINTS_FILE)
    digest = hashlib.sha256((layout.sha256 + hints.sha256).encode()).hexdigest()
    return OfficialQuery(
        name=layout.name, text=layout.text, sha256=digest, hints=tuple(load_hints(HINTS_FILE).items())
    )
