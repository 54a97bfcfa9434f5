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
from reasoner.config import EvalConfig, RunConfig, fingerprint, to_dict
from reasoner.data.records.problem import Problem
from reasoner.generation.base import Generator, SamplingSpec, requests_for
from reasoner.prompts import Template

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
) -> dict[str, Any]:
    """`reasoner eval`: one model folder on one data set, outside any run.

    `benchmark` names the set's benchmark (default: the one that recognizes `data`: a problems file, a MATH-Vision
    or a MathVista folder); `prompt` names a template under configs/prompts/, or the benchmark's official query
    (`mathvista_query`); a benchmark with a template of its own (`Benchmark.prompt`: descriptions) uses that."""
    found = registry.benchmark(benchmark, "--benchmark") if benchmark else registry.recognize(data)
    problems = found.load_path(data)
    problems = problems[:limit] if limit else problems
    template = found.template(found.prompt or prompt)  # a set with its own template (descriptions) always uses it
    eval_config = EvalConfig(max_new_tokens=max_new_tokens)
    name = Path(data).stem if found.name == "file" else found.name
    fp = fingerprint({"data": str(data), "prompt": template.sha256, "max_new_tokens": max_new_tokens})
    return evaluate(generator, problems, template, eval_config, name, out, fingerprint=fp, benchmark=found)
