"""Evaluate a model on a problem set: greedy generation, then the set's benchmark scores it (as `reasoner score`).

Writes `<out>/responses.jsonl`, `<out>/items.jsonl`, then `<out>/scores.json` last (its presence, with a matching
fingerprint, marks the evaluation finished). Each set is scored by its benchmark (`reasoner.registry`): MathVista
and MATH-Vision by their own rules with their official breakdowns, other sets by the one scorer broken down by
their metadata (see `reasoner.benchmarks`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasoner import registry
from reasoner.atomic import write_json, write_jsonl
from reasoner.benchmarks.base import Benchmark
from reasoner.config import DAR_SUFFIX, EvalConfig, RunConfig, fingerprint, to_dict
from reasoner.data.records.problem import Problem
from reasoner.data.stage.stic import described_problems
from reasoner.errors import ReasonerError
from reasoner.generation.base import Generator, SamplingSpec, requests_for
from reasoner.prompts import DESCRIPTION_KEY, Template, load_template

log = logging.getLogger(__name__)

def eval_fingerprint(run: RunConfig, dataset: str, model_fingerprint: str, prompt_sha256: str) -> str:
    """What determines an evaluation's result: the model, the data, the prompt and the decoding budget."""
    return fingerprint(
        {
            "model": model_fingerprint,
            "dataset": to_dict(run.datasets[dataset]),
            "prompt": prompt_sha256,
            "max_new_tokens": run.eval.max_new_tokens,
            **run.eval.batch_inputs(),
        }
    )


def generate_responses(
    generator: Generator, problems: Sequence[Problem], template: Template, max_new_tokens: int
) -> dict[str, str]:
    """Greedy responses, pid -> text."""
    spec = SamplingSpec(n=1, temperature=0.0, max_new_tokens=max_new_tokens)
    completions = generator.generate(requests_for(problems, template), spec)
    return {p.id: group[0].text for p, group in zip(problems, completions, strict=True)}


def score(
    problems: Sequence[Problem], responses: dict[str, str], name: str, benchmark: Benchmark | None = None
) -> tuple[dict[str, Any], list[dict]]:
    """`(scores, items)` in the `reasoner score` format, by the benchmark's own rules and breakdown fields (default:
    a problems file's, which scores perception items per family and gives synthetic sets their prior)."""
    benchmark = benchmark or registry.benchmark("file")
    scores, items = benchmark.score(problems, responses, name=name)
    return {**scores, "dataset": name}, items


def evaluate(
    generator: Generator,
    problems: Sequence[Problem],
    template: Template,
    eval_config: EvalConfig,
    name: str,
    out: Path,
    *,
    fingerprint: str,
    benchmark: Benchmark,
) -> dict[str, Any]:
    """Generate, score and write one evaluation; returns the scores document."""
    log.info("evaluating %d problems of %s", len(problems), name)
    responses = generate_responses(generator, problems, template, eval_config.max_new_tokens)
    write_jsonl(out / "responses.jsonl", [{"pid": pid, "response": text} for pid, text in responses.items()])
    scores, items = score(problems, responses, name, benchmark)
    write_jsonl(out / "items.jsonl", items)
    scores["fingerprint"] = fingerprint
    write_json(out / "scores.json", scores)
    return scores


def evaluate_model(
    generator: Generator,
    data: str | Path,
    out: Path,
    *,
    prompt: str = "reason",
    max_new_tokens: int = 512,
    limit: int = 0,
    benchmark: str | None = None,
    describe_prompt: str | None = None,
    describe_max_new_tokens: int = 96,
) -> dict[str, Any]:
    """`reasoner eval`: one model folder on one data set, outside any run.

    `benchmark` names the set's benchmark (default: the one that recognizes `data`: a problems file, a MATH-Vision
    or a MathVista folder); `prompt` names a template under configs/prompts/, or the benchmark's official query
    (`mathvista_query`); a benchmark with a template of its own (`Benchmark.prompt`: descriptions) uses that.
    With `describe_prompt`, describe-and-respond (as `eval.describe_and_respond` in a schedule): the model first
    describes each image with that template, then answers with `prompt`, which must use `$description`."""
    found = registry.benchmark(benchmark, "--benchmark") if benchmark else registry.recognize(data)
    template = found.template(found.prompt or prompt)  # a set with its own template (descriptions) always uses it
    if template.shows_description and describe_prompt is None:
        raise ReasonerError(f"--prompt {template.name!r} shows a model's description of the image ($description): "
                            "give --describe-prompt (e.g. caption) to have the model describe each image first")  # fmt: skip
    if describe_prompt is not None and not template.shows_description:
        raise ReasonerError(f"--describe-prompt: the answering template {template.name!r} does not use $description; "
                            "describe-and-respond answers with one that does (--prompt reason_with_description)")  # fmt: skip
    problems = found.load_path(data)
    problems = problems[:limit] if limit else problems
    eval_config = EvalConfig(max_new_tokens=max_new_tokens)
    name = Path(data).stem if found.name == "file" else found.name
    inputs = {"data": str(data), "prompt": template.sha256, "max_new_tokens": max_new_tokens}
    if describe_prompt is not None:
        describing = load_template(describe_prompt)
        problems = describe(generator, problems, describing, describe_max_new_tokens, out)
        name += DAR_SUFFIX
        inputs |= {"describe": describing.sha256, "describe_max_new_tokens": describe_max_new_tokens}
    return evaluate(generator, problems, template, eval_config, name, out, fingerprint=fingerprint(inputs),
                    benchmark=found)  # fmt: skip


def describe(
    generator: Generator, problems: Sequence[Problem], template: Template, max_new_tokens: int, out: Path
) -> list[Problem]:
    """Describe-and-respond's first half: `problems` with the model's own greedy description of each image in their
    metadata (`$description`), also written to `<out>/descriptions.json` (pid -> description)."""
    described = described_problems(generator, problems, template, max_new_tokens=max_new_tokens)
    write_json(out / "descriptions.json", {p.id: p.metadata[DESCRIPTION_KEY] for p in described})
    return described
