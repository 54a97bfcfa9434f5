"""Pass rates from real generation on the tiny model (cached beside the data), bands and curriculum subsets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

import rewards
from reasoner import config as config_mod
from reasoner.config import GRPOConfig, PassRateConfig, PassRateSampling, SamplingConfig
from reasoner.data.records.problem import Problem
from reasoner.data.stage.difficulty import (
    difficulty_subset,
    estimate_pass_rates,
    sampling_spec,
    split_by_band,
)
from reasoner.data.worlds import generate_mixed
from reasoner.errors import ReasonerError
from reasoner.generation import Completion, GenerationRequest, HFGenerator, SamplingSpec
from reasoner.generation.base import requests_for
from reasoner.prompts import load_template

SPEC = SamplingSpec(n=4, temperature=1.0, max_new_tokens=16, seed=11)


class RecordingGenerator:
    """The tiny model, recording which requests it was asked to answer."""

    def __init__(self, inner: HFGenerator) -> None:
        self.inner = inner
        self.requests: list[str | None] = []

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        self.requests += [r.id for r in requests]
        return self.inner.generate(requests, spec)


def _no_generator():
    raise AssertionError("cached pass rates must not build a generator")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> HFGenerator:
    return HFGenerator.from_pretrained(tiny_model_dir, batch_size=24, show_progress=False)


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return generate_mixed(["count", "digits", "bars"], 8, level=1, seed=4)


def test_pass_rates_of_the_tiny_model_are_its_verified_share_and_are_cached(
    tiny: HFGenerator, problems: list[Problem], tmp_path: Path
) -> None:
    template = load_template("reason")
    path = tmp_path / "pass_rates.json"
    recording = RecordingGenerator(tiny)
    rates = estimate_pass_rates(
        problems[:6], path, generator=recording, template=template, spec=SPEC, model="tiny"
    )
    assert recording.requests == [p.id for p in problems[:6]]
    # The same seeded sampling again, scored by `rewards` directly: the rates are correct / n.
    completions = tiny.generate(requests_for(problems[:6], template), SPEC)
    for problem, group in zip(problems[:6], completions, strict=True):
        correct = sum(
            rewards.score(
                c.text, problem.answer, answer_type=problem.answer_type, choices=problem.choices
            ).accuracy
            for c in group
        )
        assert rates[problem.id] == correct / 4
    record = json.loads(path.read_text())
    assert record["settings"]["model"] == "tiny" and record["settings"]["samples"] == 4
    assert record["pass_rate"] == rates

    # Matching settings: reused; new problems: only those are sampled.
    cached = estimate_pass_rates(
        problems[:6], path, generator=_no_generator, template=template, spec=SPEC, model="tiny"
    )
    assert cached == rates
    more = RecordingGenerator(tiny)
    both = estimate_pass_rates(problems, path, generator=more, template=template, spec=SPEC, model="tiny")
    assert more.requests == [p.id for p in problems[6:]] and {k: both[k] for k in rates} == rates
    # Another model or other settings: estimated again.
    other = RecordingGenerator(tiny)
    estimate_pass_rates(
        problems[:2], path, generator=other, template=template, spec=replace(SPEC, n=2), model="tiny"
    )
    assert other.requests == [p.id for p in problems[:2]]
    assert json.loads(path.read_text())["settings"]["samples"] == 2


def test_bands_split_given_pass_rates() -> None:
    problems = [Problem(id=name, question="q", answer="1", answer_type="integer") for name in "abcdef"]
    rates = {"a": 0.0, "b": 0.25, "c": 0.5, "d": 0.74, "e": 0.75, "f": 1.0}
    split = split_by_band(problems, rates, PassRateConfig(hard_below=0.25, easy_from=0.75))
    assert {band: [p.id for p in group] for band, group in split.items()} == {
        "easy": ["e", "f"],
        "medium": ["b", "c", "d"],
        "hard": ["a"],
    }
    narrow = PassRateConfig(hard_below=0.5, easy_from=1.0)
    assert [p.id for p in split_by_band(problems, rates, narrow)["hard"]] == ["a", "b"]
    assert [p.id for p in split_by_band(problems, rates, narrow)["easy"]] == ["f"]
    with pytest.raises(ReasonerError, match="problem f: no pass rate"):
        split_by_band(problems, {k: v for k, v in rates.items() if k != "f"}, PassRateConfig())


def test_difficulty_subset_reuses_rates_and_names_an_empty_band(
    tmp_path: Path, problems: list[Problem]
) -> None:
    template = load_template("reason")
    path = tmp_path / "pass_rates.json"
    settings = {
        "model": "m",
        "prompt": template.name,
        "prompt_sha256": template.sha256,
        "samples": 4,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_new_tokens": 16,
        "seed": 11,
    }
    correct = {p.id: i % 5 for i, p in enumerate(problems)}  # rates 0, .25, .5, .75, 1, 0, .25, .5
    path.write_text(json.dumps({"settings": settings, "correct": correct}))
    kw = {"generator": _no_generator, "template": template, "spec": SPEC, "model": "m", "edges": PassRateConfig()}
    medium, stats = difficulty_subset(problems, "medium", path, **kw)
    assert [p.id for p in medium] == [problems[i].id for i in (1, 2, 6, 7)]
    assert stats["difficulty/hard"] == 2 and stats["difficulty/easy"] == 2 and stats["difficulty/kept"] == 4
    with pytest.raises(ReasonerError, match="difficulty 'easy': no problem"):
        difficulty_subset(problems[:1], "easy", path, **kw)


def test_sampling_spec_follows_the_stage_rollout_unless_overridden() -> None:
    grpo = GRPOConfig(sampling=SamplingConfig(temperature=0.9, top_p=0.95, max_new_tokens=48))
    spec = sampling_spec(PassRateConfig(sampling=PassRateSampling(n=6)), grpo, seed=3)
    assert (spec.n, spec.temperature, spec.top_p, spec.max_new_tokens, spec.seed) == (6, 0.9, 0.95, 48, 3)
    spec = sampling_spec(PassRateConfig(sampling=PassRateSampling(temperature=0.5, max_new_tokens=32)), grpo, seed=0)
    assert (spec.n, spec.temperature, spec.top_p, spec.max_new_tokens) == (8, 0.5, 0.95, 32)


def _run_config(tmp_path: Path, stages: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        f"name: t\nmodel: {{tiny_size: demo}}\ndatasets: {{train: {{source: synthetic, n: 4}}}}\nstages:\n{stages}",
        encoding="utf-8",
    )
    return path


def test_run_config_pass_rate_section_is_validated(tmp_path: Path) -> None:
    sft = "  - {kind: sft, name: s1, data: {dataset: train}}\n"
    ok = (
        sft
        + "  - {kind: grpo, data: {dataset: train, difficulty: medium, pass_rate: {model: s1, sampling: {n: 4}}}}\n"
    )
    run = config_mod.load(_run_config(tmp_path, ok))
    assert run.stages[1].data.pass_rate == PassRateConfig(model="s1", sampling=PassRateSampling(n=4))
    bad = [
        (
            "  - {kind: grpo, data: {dataset: train, difficulty: hard, pass_rate: {model: later}}}\n",
            "data.pass_rate.model: 'later' is not allowed; allowed: init, base",
        ),
        (
            "  - {kind: grpo, data: {dataset: train, difficulty: hard, pass_rate: {hard_below: 0.9}}}\n",
            "need 0 <= hard_below < easy_from <= 1",
        ),
        (
            "  - {kind: grpo, data: {dataset: train, pass_rate: {sampling: {n: 4}}}}\n",
            "data.pass_rate: only for kind=grpo",
        ),
        (
            "  - {kind: sft, data: {dataset: train, pass_rate: {sampling: {n: 4}}}}\n",
            "data.pass_rate: only for kind=grpo",
        ),
    ]
    for stages, message in bad:
        with pytest.raises(ReasonerError, match=message.replace(".", r"\.")):
            config_mod.load(_run_config(tmp_path, stages))
