"""Self-distillation: a policy answers each problem k times; verified-correct chains become the next SFT set.

    sample k -> verify with `rewards` (the same scorer as GRPO and evaluation) -> keep one correct chain per
    problem (shortest by default) -> trim reflection loops -> `<think>..</think> summary <answer>..</answer>`

`sample_and_verify` is also what difficulty estimation uses (pass rate = correct / k).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import rewards
from reasoner.data.records import Problem
from reasoner.engines.base import SFTExample
from reasoner.generation.base import Completion, GenerationRequest, Generator, SamplingSpec
from reasoner.prompts import Template, format_target, problem_messages
from reasoner.scoring import score_pairs

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


@dataclass
class Sample:
    """One sampled response and its verdict."""

    text: str
    score: rewards.RewardScore

    @property
    def correct(self) -> bool:
        return self.score.accuracy >= 1.0


def requests_for(problems: Sequence[Problem], template: Template) -> list[GenerationRequest]:
    """Generation requests (images + rendered prompt) for problems, in order."""
    return [
        GenerationRequest(messages=problem_messages(p, template), images=[im.load() for im in p.images], id=p.id)
        for p in problems
    ]


def verify(
    problems: Sequence[Problem],
    texts_per_problem: Sequence[Sequence[str]],
    workers: int = 1,
    extraction: str = "lenient",
) -> list[list[Sample]]:
    """Score every response against its problem's ground truth (`reasoner.scoring.score_pairs`, reading answers
    the `extraction` way: "strict" for a policy's own chains, "lenient" for free-text teachers)."""
    pairs = [(p, text) for p, texts in zip(problems, texts_per_problem, strict=True) for text in texts]
    scores = iter(score_pairs(pairs, workers=workers, extraction=extraction))
    return [[Sample(text, next(scores)) for text in texts] for texts in texts_per_problem]


def sample_and_verify(
    generator: Generator,
    problems: Sequence[Problem],
    template: Template,
    spec: SamplingSpec,
    extraction: str = "lenient",
) -> list[list[Sample]]:
    """k = spec.n samples per problem from `generator`, each verified (answers read the `extraction` way)."""
    completions: list[list[Completion]] = generator.generate(requests_for(problems, template), spec)
    return verify(problems, [[c.text for c in group] for group in completions], extraction=extraction)


def trim_reflections(reasoning: str) -> str:
    """Cut a chain at its first reflection marker; the text before it is the chain we keep."""
    match = _MARKER_RE.search(reasoning)
    return reasoning[: match.start()].rstrip() if match and match.start() > 0 else reasoning.strip()


def reasoning_of(response: str) -> str:
    """The text inside `<think>..</think>` (or before a lone `</think>`), else everything before the answer."""
    match = _THINK_RE.search(response)
    if match:
        return match.group(1).strip()
    if "</think>" in response:  # R1-style chat templates open <think> in the prompt: only the close is generated
        return response.split("</think>", 1)[0].strip()
    return response.split("<answer>", 1)[0].strip()


def select(samples: Sequence[Sample], rule: str = "shortest") -> Sample | None:
    """One verified-correct sample by `rule` (shortest | longest | first), or None if none is correct."""
    correct = [s for s in samples if s.correct]
    if not correct:
        return None
    if rule == "first":
        return correct[0]
    key = lambda s: len(reasoning_of(s.text))  # noqa: E731
    return min(correct, key=key) if rule == "shortest" else max(correct, key=key)


def distilled_target(problem: Problem, sample: Sample) -> str:
    """The SFT target made from a verified sample: its trimmed reasoning, then the problem's canonical answer
    (the option letter for multiple choice), so a chain that answered "1/2" or the option text still trains
    toward the one answer form the prompt asks for."""
    return format_target(trim_reflections(reasoning_of(sample.text)), problem.answer_label())


def build_examples(
    problems: Sequence[Problem], samples: Sequence[Sequence[Sample]], rule: str = "shortest"
) -> tuple[list[SFTExample], dict[str, float]]:
    """Select one chain per problem and report yield statistics (for the stage manifest)."""
    examples, trimmed = [], 0
    for problem, group in zip(problems, samples, strict=True):
        chosen = select(group, rule)
        if chosen is None:
            continue
        reasoning = reasoning_of(chosen.text)
        trimmed += trim_reflections(reasoning) != reasoning
        examples.append(SFTExample(problem=problem, target=distilled_target(problem, chosen)))
    n_samples = sum(len(g) for g in samples)
    stats = {
        "problems": len(problems),
        "samples": n_samples,
        "correct_samples": sum(s.correct for g in samples for s in g),
        "pass_rate": sum(s.correct for g in samples for s in g) / max(n_samples, 1),
        "kept": len(examples),
        "trimmed": trimmed,
    }
    log.info("self-distillation kept %d of %d problems (%d samples, pass rate %.3f, %d trimmed)",
             stats["kept"], stats["problems"], n_samples, stats["pass_rate"], trimmed)
    return examples, stats
