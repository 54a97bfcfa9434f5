"""The local engine's DPO loop on the real tiny Qwen2.5-VL (CPU, one thread): the loss against TRL's published
formula, learning held-out preferences of the synthetic world, resume after a kill, LoRA."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from reasoner.config import DPOConfig, LoraConfig, ModelConfig, RunConfig, StageConfig, StageKind
from reasoner.data.records.preference import read_preference_file
from reasoner.data.stage.preference import select_pairs
from reasoner.engines.base import TrainJob
from reasoner.engines.local import LocalEngine
from reasoner.engines.local.dpo import dpo_terms, encode_pairs
from reasoner.engines.preference import REFERENCE_FILE
from reasoner.models.loading import load_model
from reasoner.prompts import PAIR_PROMPT


def trl_sigmoid_dpo(policy_c, policy_r, ref_c, ref_r, beta):
    """TRL's `DPOTrainer.dpo_loss`, loss_type="sigmoid", label_smoothing=0 (trl/trainer/dpo_trainer.py):
    logits = (chosen_logps - rejected_logps) - (ref_chosen_logps - ref_rejected_logps)
    losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    chosen_rewards = beta * (chosen_logps - ref_chosen_logps); rejected_rewards likewise."""
    logits = (policy_c - policy_r) - (ref_c - ref_r)
    label_smoothing = 0.0
    losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    return losses, beta * (policy_c - ref_c), beta * (policy_r - ref_r)


def test_dpo_loss_equals_trl_sigmoid_formula_plus_rpo_nll():
    """Hand-built summed log-probs; TRL adds `rpo_alpha * nll_loss` (`get_batch_loss_metrics`), its nll_loss the
    chosen tokens' mean negative log-likelihood: for one pair, -logp_chosen / chosen tokens."""
    torch.manual_seed(0)
    policy_c, policy_r = -torch.rand(6, dtype=torch.float64) * 40, -torch.rand(6, dtype=torch.float64) * 40
    ref_c, ref_r = -torch.rand(6, dtype=torch.float64) * 40, -torch.rand(6, dtype=torch.float64) * 40
    tokens = torch.tensor([3.0, 7.0, 12.0, 1.0, 25.0, 9.0], dtype=torch.float64)
    for beta, alpha in ((0.1, 0.0), (0.5, 1.0), (2.0, 0.3)):
        expected, chosen_rewards, rejected_rewards = trl_sigmoid_dpo(policy_c, policy_r, ref_c, ref_r, beta)
        for i in range(6):  # TRL's nll_loss of a batch of one pair
            expected[i] = expected[i] + alpha * (-policy_c[i] / tokens[i])
        got = dpo_terms(policy_c, policy_r, ref_c, ref_r, tokens, beta=beta, nll_alpha=alpha)
        torch.testing.assert_close(got.losses, expected, rtol=1e-6, atol=0)
        torch.testing.assert_close(got.chosen_rewards, chosen_rewards, rtol=1e-6, atol=0)
        torch.testing.assert_close(got.rejected_rewards, rejected_rewards, rtol=1e-6, atol=0)
    # At the start (policy = reference) every pair's loss is log 2 and its accuracy a tie: 1/2.
    start = dpo_terms(ref_c, ref_r, ref_c, ref_r, tokens, beta=0.1, nll_alpha=0.0)
    torch.testing.assert_close(start.losses, torch.full_like(ref_c, math.log(2)))
    assert start.accuracies.tolist() == [0.5] * 6


@pytest.fixture(scope="module")
def pair_file(write_preference_file, tmp_path_factory) -> Path:
    return write_preference_file(tmp_path_factory.mktemp("pairs"), seed=0)


def make_job(root: Path, init: Path, seed: int = 0, **stage) -> TrainJob:
    stage = StageConfig(kind=StageKind.dpo, name="dpo1", **{"batch_size": 8, "lr": 1e-3, "steps": 30,
                                                             "dpo": DPOConfig(heldout=0.25), **stage})  # fmt: skip
    return TrainJob(stage, init, root / "ckpt", root / "model", root / "logs", PAIR_PROMPT, seed=seed,
                    fingerprint="fp")  # fmt: skip


def test_pairs_encode_prompt_once_and_both_responses(tiny_model_dir, pair_file):
    pairs, _ = select_pairs(read_preference_file(pair_file)[:3], 0.0, 0, stage="dpo1")
    model, processor = load_model(tiny_model_dir)
    batch = encode_pairs(model, processor, pairs, PAIR_PROMPT, torch.device("cpu"))
    assert batch.prompts.size == 3 and batch.responses.shape[0] == 6
    eos = processor.tokenizer.eos_token
    for i, pair in enumerate(pairs):
        for row, text in ((2 * i, pair.chosen), (2 * i + 1, pair.rejected)):
            learned = batch.responses[row][batch.mask[row].bool()].tolist()
            assert processor.tokenizer.decode(learned) == text + eos


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dpo_learns_heldout_preferences(tiny_model_dir, write_preference_file, tmp_path, seed):
    """30 steps of 8 pairs (~3 s): held-out preference accuracy from 0.5 (policy = reference: ties) to >= 0.8
    (measured 1.0 on seeds 0, 1, 2)."""
    path = write_preference_file(tmp_path / "pairs", seed=seed)
    pairs, stats = select_pairs(read_preference_file(path), 0.25, seed, stage="dpo1")
    assert stats["heldout_pairs"] >= 20
    job = make_job(tmp_path, tiny_model_dir, seed=seed)
    summary = LocalEngine(RunConfig(name="t")).train_dpo(job, pairs)
    assert summary["dpo_eval/start_accuracy"] == 0.5 and summary["dpo_eval/start_margin"] == 0.0
    assert summary["dpo_eval/accuracy"] >= 0.8, summary
    assert summary["dpo_eval/margin"] > 0 and summary["dpo/loss"] < summary["dpo/loss/first"]
    rows = [json.loads(line) for line in (job.log_dir / "metrics.jsonl").read_text().splitlines()]
    for key in ("dpo/loss", "dpo/accuracy", "dpo/margin", "dpo/logp_chosen", "dpo/logp_rejected", "dpo/nll"):
        assert all(math.isfinite(row[key]) for row in rows), key
    assert "dpo_eval/accuracy" in rows[-1] and "dpo_eval/accuracy" not in rows[1]
    assert (job.out_model / "config.json").is_file()


def test_resume_after_kill_matches_straight_run(tiny_model_dir, pair_file, tmp_path, caplog):
    pairs, _ = select_pairs(read_preference_file(pair_file), 0.25, 0, stage="dpo1")
    keys = {"steps": 4, "batch_size": 4, "grad_accum": 2, "checkpoint_every": 2, "dpo": DPOConfig(heldout=0.25, nll_alpha=0.5)}
    straight = make_job(tmp_path / "straight", tiny_model_dir, **keys)
    LocalEngine(RunConfig(name="t")).train_dpo(straight, pairs)

    def crash_after_step_2(step: int, metrics: dict) -> None:
        if step == 2:
            raise KeyboardInterrupt("simulated crash")

    resumed = make_job(tmp_path / "resumed", tiny_model_dir, **keys)
    with pytest.raises(KeyboardInterrupt):
        LocalEngine(RunConfig(name="t"), on_step=crash_after_step_2).train_dpo(resumed, pairs)
    assert not resumed.out_model.exists() and (resumed.ckpt_dir / "step_000002").is_dir()
    assert (resumed.ckpt_dir / REFERENCE_FILE).is_file()
    with caplog.at_level(logging.INFO, logger="reasoner.engines.preference"):
        LocalEngine(RunConfig(name="t")).train_dpo(resumed, pairs)
    assert "reference log-probs read from" in caplog.text  # kept, not recomputed
    expected, _ = load_model(straight.out_model)
    got, _ = load_model(resumed.out_model)
    for a, b in zip(expected.parameters(), got.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)

    def rows(job):
        return [json.loads(line) for line in (job.log_dir / "metrics.jsonl").read_text().splitlines()]

    assert [r["dpo/loss"] for r in rows(resumed)] == [r["dpo/loss"] for r in rows(straight)]
    assert rows(resumed)[-1]["dpo_eval/accuracy"] == rows(straight)[-1]["dpo_eval/accuracy"]


def test_lora_dpo_trains_adapters_and_exports_a_merged_model(tiny_model_dir, pair_file, tmp_path):
    pairs, _ = select_pairs(read_preference_file(pair_file)[:12], 0.25, 0, stage="dpo1")
    run = RunConfig(name="t", model=ModelConfig(tiny_size="demo", lora=LoraConfig(rank=4)))
    job = make_job(tmp_path, tiny_model_dir, steps=2, batch_size=4)
    summary = LocalEngine(run).train_dpo(job, pairs)
    assert math.isfinite(summary["dpo/loss"])
    model, _ = load_model(job.out_model)
    assert not any("lora" in name for name, _ in model.named_parameters())
    before, _ = load_model(tiny_model_dir)
    changed = [n for (n, a), (_, b) in zip(before.named_parameters(), model.named_parameters(), strict=True)
               if not torch.equal(a, b)]  # fmt: skip
    assert changed and all("visual" not in n and "embed" not in n for n in changed)
