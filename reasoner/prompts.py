"""Prompt templates: text files under configs/prompts/, rendered with `string.Template` fields and hashed.

One template serves SFT targets, GRPO rollouts and evaluation, so training and evaluation see the same prompt.
Fields a template may use: `$question`, `$choices` (lettered options, empty for free-form questions), `$hint`
(what form the answer should take), `$unit`, `$caption` and `$description`. A template that uses `$caption` shows a
problem as its caption instead of its images: the prompt of a text-only reasoner (distillation's, and the text
teacher that a schedule may train for it). A template that uses `$description` shows the images AND a model's own
description of them (description-infused fine-tuning: the stage-data layer puts the description in the problem's
metadata, `DESCRIPTION_KEY`).
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from reasoner.errors import ReasonerError

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "configs" / "prompts"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DESCRIPTION_KEY = "description"
"""The problem metadata key holding a model's description of its images (`$description`)."""


@dataclass(frozen=True)
class Template:
    """A prompt template file and the sha256 of its text (recorded in stage manifests)."""

    name: str
    text: str
    sha256: str

    @property
    def shows_caption(self) -> bool:
        """Whether the template shows a problem's caption (text only) instead of its images."""
        return "$caption" in self.text or "${caption}" in self.text

    @property
    def shows_description(self) -> bool:
        """Whether the template shows a model's description of the images (besides the images)."""
        return "$description" in self.text or "${description}" in self.text

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
        """Fill the template for one problem; unknown `$fields` in the file raise a ReasonerError naming them."""
        fields = {
            "question": question.strip(),
            "choices": format_choices(choices),
            "hint": answer_hint(answer_type, choices, precision, unit),
            "unit": unit or "",
        }
        if caption is not None:
            fields["caption"] = caption.strip()
        if description is not None:
            fields["description"] = description.strip()
        # A free-form question leaves an empty $choices line: drop blank lines so prompts stay compact.
        text = self.substitute(fields)
        return "\n".join(line for line in text.splitlines() if line.strip()).strip()

    def prompt(self, problem, caption: str | None = None) -> str:
        """The prompt text of one `Problem`: `render` with its question fields (what training and evaluation send).
        A template that shows captions gets `caption`, by default the problem's own (a problem without one is
        named in the error)."""
        if self.shows_caption and caption is None:
            caption = problem.caption
            if not caption:
                raise ReasonerError(
                    f"problem {problem.id}: prompt template {self.name!r} shows the caption, but the problem has none"
                )
        description = None
        if self.shows_description:
            description = (problem.metadata or {}).get(DESCRIPTION_KEY)
            if description is None:
                raise ReasonerError(
                    f"problem {problem.id}: prompt template {self.name!r} shows a model's description of the image, "
                    "but none was made for it (data.describe.policy names the describing stage)"
                )
        return self.render(
            problem.question,
            choices=problem.choices,
            answer_type=problem.answer_type,
            precision=problem.precision,
            unit=problem.unit,
            caption=caption if self.shows_caption else None,
            description=description,
        )

    def substitute(self, fields: dict[str, str]) -> str:
        """The template with `$name` fields filled; a field the file uses but `fields` lacks is named."""
        try:
            return string.Template(self.text).substitute(fields)
        except KeyError as err:
            raise ReasonerError(
                f"prompt template {self.name!r} uses unknown field ${err.args[0]}; allowed: "
                + ", ".join("$" + k for k in fields)
            ) from None


@lru_cache(maxsize=32)
def load_template(name_or_path: str, key: str = "") -> Template:
    """Load `configs/prompts/<name>.txt`, or a template file given by path; a missing one is a ReasonerError that
    names the config `key` it came from, when given, and the templates there are."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPTS_DIR / f"{name_or_path}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))
        where = f"{key}: " if key else ""
        raise ReasonerError(f"{where}prompt template {name_or_path!r} not found at {path}; available: {available}")
    text = path.read_text(encoding="utf-8")
    return Template(name=path.stem, text=text, sha256=hashlib.sha256(text.encode()).hexdigest())


PAIR_PROMPT = Template(name="pair-prompt", text="$question", sha256=hashlib.sha256(b"$question").hexdigest())
"""A DPO stage's prompt: each preference pair's own `prompt`, as written (ends stripped, blank lines dropped, as
every template renders). Defined here, not as a file in configs/prompts/, which the tiny tokenizer is trained on."""


def format_choices(choices: Sequence[str] | None) -> str:
    """Options as MathVista prints them: 'Choices:' then '(A) text' per line; empty for free-form."""
    if not choices:
        return ""
    lines = [f"({LETTERS[i]}) {choice}" for i, choice in enumerate(choices)]
    return "Choices:\n" + "\n".join(lines)


def answer_hint(
    answer_type: str | None,
    choices: Sequence[str] | None = None,
    precision: int | float | None = None,
    unit: str | None = None,
) -> str:
    """One sentence telling the model what form the final answer takes."""
    if choices:
        return "Answer with the option's letter."
    unit_note = f" (in {unit})" if unit else ""
    if answer_type == "integer":
        return f"Answer with an integer{unit_note}."
    if answer_type == "float":
        places = int(precision) if precision is not None else 1
        return f"Answer with a number with {places} decimal place{'s' if places != 1 else ''}{unit_note}."
    if answer_type == "list":
        return "Answer with a Python list, e.g. [1, 2, 3]."
    return f"Answer with the final value{unit_note}." if unit else ""


def format_target(reasoning: str, answer: str, *, summary: str | None = None) -> str:
    """The response format every stage trains toward: `<think>..</think>`, a summary line, `<answer>..</answer>`.

    The summary between `</think>` and `<answer>` is what the recipe's format penalty checks for.
    """
    summary = summary or f"The answer is {answer}."
    return f"<think>{reasoning.strip()}</think>\n{summary.strip()}\n<answer>{answer.strip()}</answer>"


def shown_images(problem, template: Template) -> list:
    """The problem's images the prompt shows: none when the template shows the caption instead."""
    return [] if template.shows_caption else list(problem.images)


def problem_messages(problem, template: Template) -> list[dict]:
    """Chat messages (transformers multimodal format) for one `Problem`: its images, then the rendered prompt."""
    content = [{"type": "image"} for _ in shown_images(problem, template)]
    return [{"role": "user", "content": [*content, {"type": "text", "text": template.prompt(problem)}]}]
