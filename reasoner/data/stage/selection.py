"""The one selection pipeline of sampled chains, shared by distillation and self-distillation:

    verify every chain with `rewards` (the scorer GRPO and evaluation use)
      -> select one correct chain per problem (shortest by default)
      -> trim it at its first reflection marker ("Wait, let me re-check...")
      -> drop it when the trimmed chain is empty or itself states a wrong answer (trimming cut off the fix)
      -> drop it when its SFT target is longer than `max_target_tokens`
      -> the SFT target `<think>chain</think> summary <answer>label</answer>` (the problem's canonical answer)

`choose_chain` runs the steps for one problem; `select_examples` for a whole set, with yield statistics.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rewards
from reasoner.data.records.problem import Problem
from reasoner.data.records.scoring import score_pairs
from reasoner.errors import ReasonerError
from reasoner.prompts import Template, format_target, load_template

log = logging.getLogger(__name__)

# A sentence that starts with one of these begins a reflection loop ("Wait, let me re-check...").
REFLECTION_MARKERS = (
    "Wait",
    "But wait",
    "Hmm",
    "Hold on",
    "Alternatively",
    "Let me double-check",
    "Let me double check",
    "Let me re-check",
    "Let me recheck",
    "Let me verify",
    "On second thought",
    "Actually,",
)
_MARKER_RE = re.compile(r"(?:^|(?<=[.!?\n]))\s*(?:" + "|".join(re.escape(m) for m in REFLECTION_MARKERS) + r")\b")
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
# Rules of `rewards.extract` that mean "the text states an answer" (not a guess from its last number).
_STATED_ANSWER_RULES = ("answer_tag", "boxed", "answer_is", "answer_label", "option_letter")

OUTCOMES = ("no_correct", "no_reasoning", "contradicted", "too_long", "kept")
"""What became of a problem: no correct chain; the selected chain had no reasoning or, trimmed, stated a wrong
answer (both fail the trimming step); its target was too long; kept."""


@dataclass
class SFTExample:
    """A problem and the full assistant response to learn (`<think>..</think> summary <answer>..</answer>`)."""

    problem: Problem
    target: str
    prompt: str = ""
    """A template name shown instead of the stage's (`data.caption_mix`'s describing examples); empty = the stage's."""

    def template(self, stage_template: Template) -> Template:
        """The prompt template this example is shown with."""
        return load_template(self.prompt) if self.prompt else stage_template


@dataclass
class Sample:
    """One sampled response and its verdict."""

    text: str
    score: rewards.RewardScore

    @property
    def correct(self) -> bool:
        return self.score.accuracy >= 1.0


def verify(
    problems: Sequence[Problem],
    texts_per_problem: Sequence[Sequence[str]],
    workers: int = 1,
    extraction: str = "lenient",
) -> list[list[Sample]]:
    """Score every response against its problem's ground truth (`reasoner.data.records.scoring.score_pairs`, reading answers
    the `extraction` way: "strict" for a policy's own chains, "lenient" for free-text teachers)."""
    pairs = [(p, text) for p, texts in zip(problems, texts_per_problem, strict=True) for text in texts]
    scores = iter(score_pairs(pairs, workers=workers, extraction=extraction))
    return [[Sample(text, next(scores)) for text in texts] for texts in texts_per_problem]


def reasoning_of(response: str) -> str:
    """The text inside `<think>..</think>` (or before a lone `</think>`), else everything before the answer."""
    match = _THINK_RE.search(response)
    if match:
        return match.group(1).strip()
    if "</think>" in response:  # R1-style chat templates open <think> in the prompt: only the close is generated
        return response.split("</think>", 1)[0].strip()
    return response.split("<answer>", 1)[0].strip()


def trim_reflections(reasoning: str) -> str:
    """Cut a chain at its first reflection marker; the text before it is the chain we keep."""
    match = _MARKER_RE.search(reasoning)
    return reasoning[: match.start()].rstrip() if match and match.start() > 0 else reasoning.strip()


def select(samples: Sequence[Sample], rule: str = "shortest") -> Sample | None:
    """One verified-correct sample by `rule` (shortest | longest | first), or None if none is correct."""
    correct = [s for s in samples if s.correct]
    if not correct:
        return None
    if rule == "first":
        return correct[0]
    key = lambda s: len(reasoning_of(s.text))  # noqa: E731
    return min(correct, key=key) if rule == "shortest" else max(correct, key=key)


def states_other_answer(reasoning: str, problem: Problem) -> bool:
    """True when a (trimmed) chain itself states a final answer that does not verify: trimming cut off the fix."""
    [[verdict]] = verify([problem], [[reasoning]])
    return verdict.score.rule in _STATED_ANSWER_RULES and not verdict.correct


@dataclass(frozen=True)
class ChainChoice:
    """What the filters made of one problem's samples: the outcome and, past selection, the chosen chain."""

    outcome: str
    sample: int | None = None
    """Index of the selected sample (None when no sample was correct)."""
    reasoning: str | None = None
    """The trimmed chain (the SFT reasoning) once it survived trimming."""
    trimmed: bool = False
    """True when trimming cut something off."""
    target_tokens: int | None = None
    """Tokens of the SFT target, when a counter was given."""


def choose_chain(
    problem: Problem,
    samples: Sequence[Sample],
    *,
    rule: str = "shortest",
    max_target_tokens: int = 0,
    count_tokens: Callable[[str], int] | None = None,
) -> ChainChoice:
    """Select one verified chain by `rule`, trim its reflections, drop it when the kept part is empty or states
    a wrong answer, then apply the length filter (in that order)."""
    chosen = select(samples, rule)
    if chosen is None:
        return ChainChoice("no_correct")
    index = next(i for i, sample in enumerate(samples) if sample is chosen)
    reasoning = reasoning_of(chosen.text)
    cut = trim_reflections(reasoning)
    if not cut:
        return ChainChoice("no_reasoning", index)
    if states_other_answer(cut, problem):
        return ChainChoice("contradicted", index)
    if max_target_tokens and count_tokens is None:
        raise ReasonerError("max_target_tokens is set but no token counter was given (see token_counter)")
    tokens = count_tokens(format_target(cut, problem.answer_label())) if count_tokens else None
    outcome = "too_long" if max_target_tokens and tokens > max_target_tokens else "kept"
    return ChainChoice(outcome, index, cut, cut != reasoning, tokens)


def token_counter(model_path: str | Path) -> Callable[[str], int]:
    """Count tokens with the tokenizer of a model folder (for `max_target_tokens`)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def sft_examples(problems: Sequence[Problem]) -> list[SFTExample]:
    """SFT examples from problems with reasoning (reference or distilled chains): `<think>reasoning</think>
    summary <answer>label</answer>` per problem; problems without reasoning are left out."""
    return [SFTExample(p, format_target(p.reasoning, p.answer_label())) for p in problems if p.reasoning]


def select_examples(
    problems: Sequence[Problem],
    samples: Sequence[Sequence[Sample]],
    rule: str = "shortest",
    *,
    max_target_tokens: int = 0,
    count_tokens: Callable[[str], int] | None = None,
) -> tuple[list[SFTExample], dict[str, Any]]:
    """`choose_chain` for every problem: the kept chains as SFT examples, and yield statistics (the manifest's)."""
    examples, outcomes, trimmed = [], dict.fromkeys(OUTCOMES, 0), 0
    for problem, group in zip(problems, samples, strict=True):
        choice = choose_chain(
            problem, group, rule=rule, max_target_tokens=max_target_tokens, count_tokens=count_tokens
        )
        outcomes[choice.outcome] += 1
        if choice.outcome == "kept":
            trimmed += choice.trimmed
            examples.append(SFTExample(problem, format_target(choice.reasoning, problem.answer_label())))
    n_samples = sum(len(g) for g in samples)
    correct = sum(s.correct for g in samples for s in g)
    stats = {
        "problems": len(problems),
        "samples": n_samples,
        "correct_samples": correct,
        "pass_rate": correct / max(n_samples, 1),
        "kept": len(examples),
        "trimmed": trimmed,
        **{f"dropped_{outcome}": outcomes[outcome] for outcome in OUTCOMES if outcome != "kept"},
    }
    log.info(
        "selection kept %d of %d problems (%d samples, pass rate %.3f, %d trimmed; dropped: %s)",
        len(examples), len(problems), n_samples, stats["pass_rate"], trimmed,
        ", ".join(f"{o} {outcomes[o]}" for o in OUTCOMES if o != "kept"),
    )  # fmt: skip
    return examples, stats
