"""The local engine's non-finite guard and failed rewards, made for real on a tiny Qwen2.5-VL (CPU, one thread).

A non-finite loss comes from an absurd learning rate (1e30: the first update blows the weights up, every later
loss is NaN) or from a NaN written into a weight of the model folder a stage starts from. A failing reward comes
from a record the scorer rejects (its ground truth is none of its choices) or from weights that make it NaN.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import rewards
from reasoner.config import Extraction, GRPOConfig, RunConfig, SamplingConfig, StageConfig, StageKind
from reasoner.data.records.problem import Problem
from reasoner.data.worlds import TASKS, generate_mixed
from reasoner.engines.base import TrainJob
from reasoner.engines.local import LocalEngine
from reasoner.engines.local.grpo import score_rollout
from reasoner.engines.local.loop import NonFiniteGuard, NonFiniteStop
from reasoner.engines.local.rollout import Rollout
from reasoner.models.loading import load_model
from reasoner.prompts import load_template

TEMPLATE = load_template("reason")
ABSURD_LR = 1e30


@pytest.fixture(scope="module")
def nan_dir(tiny_dir, tmp_path_factory) -> Path:
    """The tiny model with one NaN in its final norm: every logit, and so every loss, is NaN."""
    model, processor = load_model(tiny_dir)
    with torch.no_grad():
        model.model.language_model.norm.weight[0] = float("nan")
    folder = tmp_path_factory.mktemp("nan") / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def sft_job(root: Path, init: Path, **stage) -> TrainJob:
    settings = {"batch_size": 4, "lr": ABSURD_LR, "warmup_ratio": 0.0, "steps": 6, "checkpoint_every": 1, **stage}
    return TrainJob(
        StageConfig(kind=StageKind.sft, name="sft1", **settings), init, root / "ckpt", root / "model", root / "logs",
        TEMPLATE, seed=0, fingerprint="fp",
    )  # fmt: skip


def rows(job: TrainJob) -> list[dict]:
    return [json.loads(line) for line in (job.log_dir / "metrics.jsonl").read_text().splitlines()]


def test_nonfinite_updates_are_skipped_and_counted(tiny_dir, examples, tmp_path):
    job = sft_job(tmp_path, tiny_dir, max_nonfinite_skips=10)
    summary = LocalEngine(RunConfig(name="t")).train_sft(job, examples)
    logged = rows(job)
    assert math.isfinite(logged[0]["train/loss"]) and all(math.isnan(r["train/loss"]) for r in logged[1:])
    assert [r["count/nonfinite_skips"] for r in logged] == [0.0] + [1.0] * 5
    assert summary["nonfinite_skips"] == 5
    # The skipped updates left the weights of the last good one: finite (a NaN update would have made them NaN).
    model, _ = load_model(job.out_model)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_consecutive_skips_stop_the_stage_and_a_rerun_resumes(tiny_dir, examples, tmp_path):
    job = sft_job(tmp_path, tiny_dir)  # max_nonfinite_skips: 3 (the default)
    with pytest.raises(NonFiniteStop) as err:
        LocalEngine(RunConfig(name="t")).train_sft(job, examples)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("stage sft1: step 4: the loss is not finite (nan) in 3 optimizer updates in a row")
    assert "resumes it from its checkpoint step_000001" in message
    # No checkpoint inside the run of skips; nothing exported.
    assert [p.name for p in job.ckpt_dir.iterdir()] == ["step_000001"] and not job.out_model.exists()
    assert [r["count/nonfinite_skips"] for r in rows(job)] == [0.0, 1.0, 1.0]  # step 4 stopped before its row

    # The limit is not in the stage's fingerprint: raising it resumes from step 1 (its row kept) and finishes.
    rerun = sft_job(tmp_path, tiny_dir, max_nonfinite_skips=10)
    summary = LocalEngine(RunConfig(name="t")).train_sft(rerun, examples)
    assert [r["step"] for r in rows(rerun)] == [1, 2, 3, 4, 5, 6] and summary["nonfinite_skips"] == 5


def test_two_processes_stop_with_the_same_one_line(tiny_dir, examples, tmp_path):
    job = sft_job(tmp_path, tiny_dir, steps=4, max_nonfinite_skips=2)
    with pytest.raises(NonFiniteStop, match=r"^stage sft1: step 3: the loss is not finite"):
        LocalEngine(RunConfig(name="t", processes=2)).train_sft(job, examples)


def test_grpo_on_a_nan_weight_skips_every_update_then_stops(nan_dir, tmp_path):
    problems = generate_mixed(list(TASKS), 8, level=1, seed=7)
    grpo = GRPOConfig(sampling=SamplingConfig(n=2, max_new_tokens=4), prompts_per_step=2, kl_coef=0.0)
    stage = StageConfig(kind=StageKind.grpo, name="grpo1", steps=3, max_nonfinite_skips=2, grpo=grpo)
    job = TrainJob(stage, nan_dir, tmp_path / "ckpt", tmp_path / "model", tmp_path / "logs", TEMPLATE, seed=0)
    with pytest.raises(NonFiniteStop, match=r"^stage grpo1: step 2: the loss is not finite .* from its start"):
        LocalEngine(RunConfig(name="t")).train_grpo(job, problems)
    assert [r["count/nonfinite_skips"] for r in rows(job)] == [1.0]  # step 2 stopped before its row


def test_guard_names_a_nonfinite_grad_norm():
    guard = NonFiniteGuard("sft2", 2, lambda: "its start")
    guard.begin(7)
    assert guard.allows(0.5, 1.0)
    assert not guard.allows(0.5, float("inf")) and guard.skipped == 1
    with pytest.raises(NonFiniteStop, match=r"^stage sft2: step 7: the grad norm is not finite \(inf\) in 2 "):
        guard.allows(0.5, float("inf"))


def rollout_of(texts: list[str]) -> Rollout:
    mask = torch.ones(len(texts), 3, dtype=torch.long)
    return Rollout(tokens=torch.zeros_like(mask), mask=mask, texts=texts, finished=[True] * len(texts))


def test_a_failing_reward_scores_zero_and_is_counted():
    good = Problem(id="good", question="How many?", images=[], answer="3", answer_type="integer")
    # A record the scorer rejects: its ground truth is none of its choices (scoring it raises ValueError).
    bad = Problem(id="bad", question="Which?", images=[], answer="7", choices=["1", "2"], answer_type="text")
    cfg = GRPOConfig(sampling=SamplingConfig(n=2), extraction=Extraction.lenient)
    result = rollout_of(["<answer>3</answer>", "<answer>4</answer>", "<answer>1</answer>", "(A)"])
    overall, metrics = score_rollout([good, bad], result, 2, cfg)
    assert overall.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert metrics["count/reward_errors"] == 2 and metrics["reward/mean"] == 0.25

    # A reward that comes out NaN (here: a NaN weight in the sum) scores 0 too, never averaged in.
    nan_cfg = GRPOConfig(
        sampling=SamplingConfig(n=2), extraction=Extraction.lenient, format_weight=float("nan")
    )
    overall, metrics = score_rollout([good, good], result, 2, nan_cfg)
    assert overall.tolist() == [0.0] * 4 and metrics["count/reward_errors"] == 4
    assert metrics["reward/mean"] == 0.0


def test_guarded_scores_a_raising_or_nan_reward_zero():
    assert rewards.guarded(lambda: 1 / 0) == rewards.failed_score()
    nan = rewards.score("<answer>3</answer>", "3", weights=rewards.RewardWeights(format=float("nan")))
    assert math.isnan(nan.overall)
    assert rewards.guarded(lambda: nan).reason == rewards.REWARD_ERROR
    assert rewards.guarded(rewards.score, "<answer>3</answer>", "3").overall == 1.0
