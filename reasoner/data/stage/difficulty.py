"""Difficulty from pass rates: how often a policy solves each problem, and curriculum bands cut from it.

The recipe trains GRPO first on a "medium" set, then on a "hard" one; difficulty is decided offline from the
policy's own success. Here: n samples per problem (`sample_and_verify`, the same scorer as GRPO and evaluation),
pass rate = correct / n, then fixed bands (`data.pass_rate.hard_below` / `easy_from`):

    hard: rate < hard_below        medium: hard_below <= rate < easy_from        easy: rate >= easy_from

Pass rates are written beside the data (JSON: the model and settings that produced them, then id -> correct
count) after every chunk, and reused when the model and settings match: a rerun samples only the problems
the file lacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from reasoner.atomic import write_json
from reasoner.config import GRPOConfig, PassRateConfig
from reasoner.data.records.problem import Problem
from reasoner.data.stage.selfdistill import sample_and_verify
from reasoner.errors import ReasonerError
from reasoner.generation.base import Generator, SamplingSpec
from reasoner.prompts import Template
from reasoner.rundir import read_json

log = logging.getLogger(__name__)

BANDS = ("easy", "medium", "hard")


def band_of(rate: float, edges: PassRateConfig) -> str:
    """`easy`, `medium` or `hard` for one pass rate (the edges are validated with the config)."""
    if rate < edges.hard_below:
        return "hard"
    return "easy" if rate >= edges.easy_from else "medium"


def sampling_spec(pass_rate: PassRateConfig, grpo: GRPOConfig, seed: int) -> SamplingSpec:
    """How a GRPO stage's pass rates are sampled: its rollout settings unless `pass_rate.sampling` overrides them."""
    return SamplingSpec.of(pass_rate.sampling.resolved(grpo.sampling), seed)


def _settings(model: str, template: Template, spec: SamplingSpec) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": template.name,
        "prompt_sha256": template.sha256,
        "samples": spec.n,
        "temperature": spec.temperature,
        "top_p": spec.top_p,
        "max_new_tokens": spec.max_new_tokens,
        "seed": spec.seed,
    }


def estimate_pass_rates(
    problems: Sequence[Problem],
    path: str | Path,
    *,
    generator: Generator | Callable[[], Generator],
    template: Template,
    spec: SamplingSpec,
    model: str,
    chunk_size: int = 256,
) -> dict[str, float]:
    """Pass rate (correct / spec.n) of each problem under `generator`, cached in `path`.

    `model` names the policy (e.g. its folder) in the file; rates are reused only when it and the sampling
    settings match, so they are never mixed across models. `generator` may be a factory, called only when
    some problem still needs sampling. Chunk i samples with seed spec.seed + i.
    """
    path = Path(path)
    settings = _settings(model, template, spec)
    stored = read_json(path)
    correct: dict[str, int] = {}
    if stored is not None and stored.get("settings") == settings:
        correct = dict(stored["correct"])
    elif stored is not None:
        log.info("%s: pass rates of another model or settings; estimating again", path)
    todo = [p for p in problems if p.id not in correct]
    log.info(
        "pass rates: %d of %d problems cached in %s, %d to sample (n=%d)",
        len(problems) - len(todo),
        len(problems),
        path,
        len(todo),
        spec.n,
    )
    chunks = [todo[start : start + chunk_size] for start in range(0, len(todo), chunk_size)]
    if chunks and not isinstance(generator, Generator):
        generator = generator()
    for index, chunk in enumerate(tqdm(chunks, desc="pass rates", unit="chunk", disable=len(chunks) < 2)):
        samples = sample_and_verify(generator, chunk, template, replace(spec, seed=spec.seed + index))
        correct.update({p.id: sum(s.correct for s in group) for p, group in zip(chunk, samples, strict=True)})
        write_json(path, _record(settings, correct, spec.n))
    return {p.id: correct[p.id] / spec.n for p in problems}


def _record(settings: dict[str, Any], correct: dict[str, int], n: int) -> dict[str, Any]:
    return {
        "settings": settings,
        "correct": correct,
        "pass_rate": {pid: count / n for pid, count in correct.items()},
    }


def split_by_band(
    problems: Sequence[Problem], rates: Mapping[str, float], edges: PassRateConfig
) -> dict[str, list[Problem]]:
    """Problems grouped into `easy` / `medium` / `hard` (order kept); a problem without a rate is an error."""
    split: dict[str, list[Problem]] = {band: [] for band in BANDS}
    for problem in problems:
        if problem.id not in rates:
            raise ReasonerError(
                f"problem {problem.id}: no pass rate; estimate pass rates for every problem first"
            )
        split[band_of(rates[problem.id], edges)].append(problem)
    return split


def difficulty_subset(
    problems: Sequence[Problem],
    band: str,
    path: str | Path,
    *,
    generator: Generator | Callable[[], Generator],
    template: Template,
    spec: SamplingSpec,
    model: str,
    edges: PassRateConfig,
) -> tuple[list[Problem], dict[str, float]]:
    """Estimate (or reuse) pass rates, then keep one band (`edges`: where bands split); also statistics for the
    stage manifest."""
    rates = estimate_pass_rates(
        problems, path, generator=generator, template=template, spec=spec, model=model
    )
    split = split_by_band(problems, rates, edges)
    chosen = list(problems) if band == "all" else split[band]
    if not chosen:
        raise ReasonerError(
            f"difficulty {band!r}: no problem has a pass rate in that band "
            f"(easy {len(split['easy'])}, medium {len(split['medium'])}, hard {len(split['hard'])}); "
            "widen data.pass_rate.hard_below / easy_from or choose another band"
        )
    stats = {
        "difficulty/mean_pass_rate": sum(rates.values()) / max(len(rates), 1),
        **{f"difficulty/{name}": float(len(group)) for name, group in split.items()},
        "difficulty/kept": float(len(chosen)),
    }
    log.info(
        "difficulty %s: kept %d of %d problems (easy %d, medium %d, hard %d; mean pass rate %.3f)",
        band,
        len(chosen),
        len(problems),
        len(split["easy"]),
        len(split["medium"]),
        len(split["hard"]),
        stats["difficulty/mean_pass_rate"],
    )
    return chosen, stats
