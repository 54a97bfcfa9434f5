"""Evaluate a model on a problem set: greedy generation, then the same scorer as `reasoner score`.

Writes `<out>/responses.jsonl`, `<out>/items.jsonl`, then `<out>/scores.json` last (its presence, with a matching
fingerprint, marks the evaluation finished). A benchmark (`mathvista`, `mathvision`) is scored by its own rules with
its official breakdowns; other sets by the one scorer, broken down by their metadata (`task`, `level`,
`question_type`, `answer_type`); a set whose problems name their question `kind` (the synthetic worlds) also
gets its `prior`: the best constant answer per kind, what a model scores that ignores the image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasoner.atomic import write_json, write_jsonl
from reasoner.config import EvalConfig, RunConfig, fingerprint, to_dict
from reasoner.data.records import Problem
from reasoner.errors import ReasonerError
from reasoner.eval.mathvista import score_responses
from reasoner.eval.metrics import answer_prior, percent
from reasoner.generation.base import Generator, SamplingSpec
from reasoner.prompts import LETTERS, Template, requests_for

log = logging.getLogger(__name__)

GENERIC_FIELDS = ("task", "level", "question_type", "answer_type")


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


BENCHMARKS = ("mathvista", "mathvision", "perception")
"""Data sets scored by their own rules (`reasoner score <benchmark>`); any other set uses the generic scoring,
except a set of perception items (every problem names its `family`: the compositional world, an imported ARO or
What'sUp file), which is scored per family beside chance (`reasoner.eval.perception`) whatever its source."""


def score(
    problems: Sequence[Problem], responses: dict[str, str], name: str, *, benchmark: str | None = None
) -> tuple[dict[str, Any], list[dict]]:
    """`(scores, items)` in the `reasoner score` format; a benchmark gets its own rules and breakdown fields."""
    from reasoner.data.perception import is_perception

    if benchmark is None and is_perception(problems):
        benchmark = "perception"
    if benchmark == "perception":
        from reasoner.eval import perception

        scores, items = perception.score_responses(problems, responses, benchmark=name)
    elif benchmark == "mathvista":
        scores, items = score_responses(problems, responses)
    elif benchmark == "mathvision":
        from reasoner.eval import mathvision

        scores, items = mathvision.score_responses(problems, responses)
    elif benchmark is not None:
        raise ReasonerError(f"benchmark {benchmark!r} has no scorer; allowed: {', '.join(BENCHMARKS)} or none")
    else:
        scores, items = score_responses(problems, responses, benchmark=name, fields=GENERIC_FIELDS)
        scores.update(prior_of(problems))
    return {**scores, "dataset": name}, items


def prior_of(problems: Sequence[Problem]) -> dict[str, Any]:
    """`{"prior_overall", "prior"}` (`metrics.answer_prior` per task, in percent) for a set whose every problem
    names its question `kind` (the synthetic worlds); empty for any other set."""
    if not all("kind" in p.metadata for p in problems):
        return {}
    rows = [(str(p.metadata.get("task", "")), str(p.metadata["kind"]), constant_answer(p)) for p in problems]
    tallies = answer_prior(rows)
    overall = percent(sum(t.correct for t in tallies.values()), len(problems))
    return {"prior_overall": overall, "prior": {task: t.accuracy for task, t in tallies.items()}}


def constant_answer(problem: Problem) -> str:
    """What an answer given to every question must be to score `problem`: its option letter, or its answer."""
    if problem.choices and problem.answer in problem.choices:
        return LETTERS[problem.choices.index(problem.answer)]
    return problem.answer


def evaluate(
    generator: Generator,
    problems: Sequence[Problem],
    template: Template,
    eval_config: EvalConfig,
    name: str,
    out: Path,
    *,
    fingerprint: str,
    benchmark: str | None = None,
) -> dict[str, Any]:
    """Generate, score and write one evaluation; returns the scores document."""
    log.info("evaluating %d problems of %s", len(problems), name)
    responses = generate_responses(generator, problems, template, eval_config.max_new_tokens)
    write_jsonl(out / "responses.jsonl", [{"pid": pid, "response": text} for pid, text in responses.items()])
    scores, items = score(problems, responses, name, benchmark=benchmark)
    write_jsonl(out / "items.jsonl", items)
    scores["fingerprint"] = fingerprint
    write_json(out / "scores.json", scores)
    return scores


def load_eval_problems(data: str | Path, limit: int = 0) -> tuple[list[Problem], str | None]:
    """Problems to evaluate on: a MathVista folder (testmini.json or the parquet export), a MATH-Vision folder
    (testmini.jsonl + images/) or a problems file.

    Returns the problems and their benchmark name (None for a problems file), which picks the scoring rules."""
    from reasoner.data.importers import load_mathvision
    from reasoner.data.problem_files import read_problems
    from reasoner.data.sources import load_mathvista

    path = Path(data)
    if not path.is_dir():
        benchmark, problems = None, read_problems(path)
    elif (path / "testmini.jsonl").is_file():
        benchmark, problems = "mathvision", load_mathvision(path)
    else:
        benchmark, problems = "mathvista", load_mathvista(path)
    return (problems[:limit] if limit else problems), benchmark


def evaluate_model(
    generator: Generator,
    data: str | Path,
    out: Path,
    *,
    prompt: str = "reason",
    max_new_tokens: int = 512,
    limit: int = 0,
) -> dict[str, Any]:
    """`reasoner eval`: one model folder on one data set, outside any run.

    `prompt` names a template under configs/prompts/, or is `mathvista_query`: MathVista's official query."""
    from reasoner.eval.mathvista_query import OFFICIAL_PROMPT, official_query
    from reasoner.prompts import load_template

    problems, benchmark = load_eval_problems(data, limit)
    template = official_query() if prompt == OFFICIAL_PROMPT else load_template(prompt)
    eval_config = EvalConfig(max_new_tokens=max_new_tokens)
    name = benchmark or Path(data).stem
    fp = fingerprint({"data": str(data), "prompt": template.sha256, "max_new_tokens": max_new_tokens})
    return evaluate(generator, problems, template, eval_config, name, out, fingerprint=fp, benchmark=benchmark)
