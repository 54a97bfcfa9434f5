"""Self-distillation: a policy answers each problem k times; verified-correct chains become the next SFT set.

    sample k -> the one selection pipeline (`reasoner.data.stage.selection`: verify with `rewards`, select, trim,
    contradiction and length filters) -> `<think>..</think> summary <answer>..</answer>`

`sample_and_verify` is also what difficulty estimation uses (pass rate = correct / k).
"""

from __future__ import annotations

from collections.abc import Sequence

from reasoner.data.records.problem import Problem
from reasoner.data.stage.selection import Sample, verify
from reasoner.generation.base import Completion, Generator, SamplingSpec, requests_for
from reasoner.prompts import Template


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
