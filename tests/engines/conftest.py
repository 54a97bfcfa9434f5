"""Fixtures of the local engine tests: the tiny model and a dozen SFT examples (SFT, LoRA, non-finite tests); for
the GRPO loop tests (test_local_grpo.py, test_local_dynamic_sampling.py) a briefly SFT-warmed tiny model, a GRPO
job on it, its metrics rows, and the interrupted-and-resumed check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from reasoner.config import Extraction, GRPOConfig, RunConfig, SamplingConfig, StageConfig, StageKind
from reasoner.data.stage.selection import SFTExample
from reasoner.data.worlds import TASKS, generate_mixed
from reasoner.engines.base import TrainJob
from reasoner.engines.local import LocalEngine
from reasoner.models.loading import load_model
from reasoner.prompts import format_target, load_template

TEMPLATE = load_template("reason")


@pytest.fixture(scope="session")
def tiny_dir(tiny_model_dir: Path) -> Path:
    return tiny_model_dir


@pytest.fixture(scope="module")
def examples() -> list[SFTExample]:
    problems = generate_mixed(list(TASKS), 12, level=1, seed=5)
    return [SFTExample(p, format_target(p.reasoning, p.answer_label())) for p in problems]


@pytest.fixture(scope="session")
def warm_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model after 60 SFT steps: it writes the answer format and is right sometimes, so sampled groups
    carry a reward signal (the untrained model's rewards are constant within each group). 30 steps left none in
    the first two GRPO steps once torch 2.13 moved the floating point; 60 give 25-50% mixed groups."""
    from reasoner.data.stage.selection import SFTExample
    from reasoner.prompts import format_target

    problems = generate_mixed(list(TASKS), 64, level=1, seed=7)
    examples = [
        SFTExample(p, format_target(p.reasoning, p.answer_label())) for p in problems
    ]
    root = tmp_path_factory.mktemp("warm")
    stage = StageConfig(kind=StageKind.sft, name="warm", steps=60, batch_size=8, lr=3e-3)
    job = TrainJob(stage, tiny_model_dir, root / "ckpt", root / "model", root / "logs", TEMPLATE, seed=0)
    LocalEngine(RunConfig(name="t")).train_sft(job, examples)
    return job.out_model


def _make_job(root: Path, init: Path, steps: int, grpo_keys: dict | None = None, **stage) -> TrainJob:
    # The lenient reading: a briefly warmed model rarely closes its answer tag within 12 tokens, and these tests
    # are about the loop (signal, resume), not about the reward's format rules (tests/rewards/test_rewards_strict.py).
    grpo = GRPOConfig(
        sampling=SamplingConfig(n=4, max_new_tokens=12), prompts_per_step=4, kl_coef=0.05, extraction=Extraction.lenient,
        **(grpo_keys or {}),
    )  # fmt: skip
    stage = StageConfig(kind=StageKind.grpo, name="grpo1", steps=steps, lr=1e-3, grpo=grpo, **stage)
    return TrainJob(stage, init, root / "ckpt", root / "model", root / "logs", TEMPLATE, seed=0)


def _metric_rows(job: TrainJob) -> list[dict]:
    return [json.loads(line) for line in (job.log_dir / "metrics.jsonl").read_text().splitlines()]


def _assert_crash_and_resume_match(
    run: RunConfig, straight, problems, warm_dir, tmp_path, grpo_keys: dict | None = None
) -> None:
    """A run of `straight`'s 3 steps interrupted after step 2 (its checkpoint), then resumed, logs the same rewards
    and ends with the same weights as `straight` did uninterrupted."""

    def crash_after_step_2(step: int, metrics: dict) -> None:
        if step == 2:
            raise KeyboardInterrupt("simulated crash")

    resumed = _make_job(tmp_path / "resumed", warm_dir, steps=3, grpo_keys=grpo_keys, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        LocalEngine(run, on_step=crash_after_step_2).train_grpo(resumed, problems)
    LocalEngine(run).train_grpo(resumed, problems)
    assert [row["reward/mean"] for row in _metric_rows(resumed)] == [
        row["reward/mean"] for row in _metric_rows(straight)
    ]
    expected, _ = load_model(straight.out_model)
    got, _ = load_model(resumed.out_model)
    for a, b in zip(expected.parameters(), got.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)


@pytest.fixture(scope="session")
def make_job():
    """`make_job(root, init, steps, grpo_keys=None, **stage)` -> a GRPO TrainJob (4 prompts x 4 samples of up to 12
    tokens, KL 0.05, lenient extraction) under `root`."""
    return _make_job


@pytest.fixture(scope="session")
def metric_rows():
    """`metric_rows(job)` -> the rows of the job's metrics.jsonl."""
    return _metric_rows


@pytest.fixture(scope="session")
def assert_crash_and_resume_match():
    """`assert_crash_and_resume_match(run, straight, problems, warm_dir, tmp_path, grpo_keys=None)`."""
    return _assert_crash_and_resume_match
