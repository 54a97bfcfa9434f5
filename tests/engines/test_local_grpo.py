"""The local engine's GRPO loop: verl's math on hand-made tensors, the shared-prefix forward, the sampler, the
reward-to-gradient path and checkpoint resume, on real tiny models (the forward, sampler and gradient tests on
both families: Qwen2.5-VL and Qwen3-VL) with rendered synthetic problems (the loop's fixtures are in conftest.py;
dynamic sampling's tests in test_local_dynamic_sampling.py)."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from verl.trainer.ppo import core_algos

from reasoner.config import (
    GRPOConfig,
    LossAggMode,
    PolicyLoss,
    RunConfig,
    SamplingConfig,
)
from reasoner.data.worlds import TASKS, generate_mixed
from reasoner.engines.local import LocalEngine, policy
from reasoner.engines.local.grpo import (
    Batch,
    encode_problems,
    make_batch,
    micro_batch_loss,
    minibatches,
    sequence_logprobs,
)
from reasoner.engines.local.objective import LossSettings, grpo_advantages, grpo_loss, policy_loss_config
from reasoner.engines.local.rollout import StopRule, rollout, sample_next
from reasoner.models.inputs import encode_prompts
from reasoner.models.loading import load_model
from reasoner.models.tiny import FAMILIES, ensure_tiny_model
from reasoner.prompts import load_template, problem_messages

TEMPLATE = load_template("reason")


@pytest.fixture(scope="module")
def problems():
    return generate_mixed(list(TASKS), 8, level=1, seed=7)


@pytest.fixture(scope="module", params=list(FAMILIES))
def varied_model(request, tmp_path_factory):
    """A tiny model of each family with its language weights jittered, so greedy outputs differ between prompts
    and steps."""
    folder = ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", family=request.param, size="demo", seed=0)
    model, processor = load_model(folder)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.model.language_model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model, processor


def hand_rewards() -> tuple[torch.Tensor, torch.Tensor]:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # two groups of three
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]])
    return rewards, mask


def test_advantages_equal_verl_and_the_grpo_formula():
    rewards, mask = hand_rewards()
    ours = grpo_advantages(rewards, mask, group=3)
    token_rewards = torch.zeros(6, 4)
    token_rewards[torch.arange(6), mask.sum(1) - 1] = rewards
    verl, _ = core_algos.compute_grpo_outcome_advantage(
        token_rewards, mask.float(), np.array([0, 0, 0, 1, 1, 1])
    )
    torch.testing.assert_close(ours, verl)
    first = rewards[:3]
    expected = (first - first.mean()) / (first.std() + 1e-6)
    torch.testing.assert_close(ours[:3], expected[:, None] * mask[:3], rtol=1e-6, atol=1e-6)
    assert (ours[3:] == 0).all()  # all rewards equal in the group: no signal


def test_loss_equals_verl_and_the_clipped_objective():
    rewards, mask = hand_rewards()
    advantages = grpo_advantages(rewards, mask, group=3)
    generator = torch.Generator().manual_seed(1)
    old = -torch.rand(6, 4, generator=generator) * 3
    logp = old + torch.randn(6, 4, generator=generator) * 0.3
    ref = old + torch.randn(6, 4, generator=generator) * 0.1
    parts = grpo_loss(logp, old, advantages, mask, LossSettings(clip_ratio=0.2), ref_logp=ref, kl_coef=0.05)

    pg, _ = core_algos.get_policy_loss_fn("vanilla")(
        old, logp, advantages, mask.float(), "token-mean", policy_loss_config(LossSettings(clip_ratio=0.2))
    )
    kl = core_algos.agg_loss(core_algos.kl_penalty(logp, ref, "low_var_kl"), mask.float(), "token-mean")
    torch.testing.assert_close(parts.loss, pg + 0.05 * kl)

    ratio = torch.exp(logp - old)
    clipped = torch.maximum(-advantages * ratio, -advantages * ratio.clamp(0.8, 1.2))
    clipped = torch.where(advantages < 0, torch.minimum(clipped, -advantages * 3.0), clipped)
    low_var_kl = torch.exp(ref - logp) - (ref - logp) - 1
    m = mask.float()
    expected = (clipped * m).sum() / m.sum() + 0.05 * (low_var_kl * m).sum() / m.sum()
    torch.testing.assert_close(parts.loss, expected, rtol=1e-5, atol=1e-6)


def test_micro_batches_add_up_to_the_minibatch_token_mean():
    rewards, mask = hand_rewards()
    advantages = grpo_advantages(rewards, mask, group=3)
    logp = -torch.rand(6, 4, generator=torch.Generator().manual_seed(2))
    whole = grpo_loss(logp, logp + 0.1, advantages, mask, LossSettings(clip_ratio=0.2)).loss
    tokens = int(mask.sum())
    halves = [
        grpo_loss(
            logp[r], logp[r] + 0.1, advantages[r], mask[r], LossSettings(clip_ratio=0.2), batch_num_tokens=tokens
        ).loss
        for r in (slice(0, 3), slice(3, 6))
    ]
    torch.testing.assert_close(halves[0] + halves[1], whole)
    assert minibatches(8, 2, 2) == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    assert minibatches(2, 3, 1) == [[[0]], [[1]], [[0]]]


def test_shared_prefix_logprobs_equal_a_plain_forward(varied_model, problems):
    model, processor = varied_model
    chosen, group = problems[:3], 2
    prompts = encode_problems(model, processor, chosen, TEMPLATE, torch.device("cpu"))
    tokens = torch.randint(0, 1000, (3 * group, 5), generator=torch.Generator().manual_seed(3))  # [N, C]
    mask = torch.ones_like(tokens)
    mask[1, 3:] = 0
    with torch.no_grad():
        ours = policy.token_logprobs(policy.response_logits(model, prompts, tokens, mask, group), tokens)
        repeated = [i for i in range(3) for _ in range(group)]
        batch = encode_prompts(
            processor,
            [problem_messages(chosen[i], TEMPLATE) for i in repeated],
            [chosen[i].load_images() for i in repeated],
        )
        full = model(
            input_ids=torch.cat([batch["input_ids"], tokens], 1),
            attention_mask=torch.cat([batch["attention_mask"], mask], 1),
            mm_token_type_ids=torch.cat([batch["mm_token_type_ids"], torch.zeros_like(tokens)], 1),
            pixel_values=batch["pixel_values"],
            image_grid_thw=batch["image_grid_thw"],
        ).logits
        plain = policy.token_logprobs(full[:, -tokens.shape[1] - 1 : -1], tokens)
    torch.testing.assert_close(ours * mask, plain * mask, rtol=1e-4, atol=1e-4)


def test_greedy_rollout_equals_model_generate(varied_model, problems):
    model, processor = varied_model
    chosen = problems[:4]
    prompts = encode_problems(model, processor, chosen, TEMPLATE, torch.device("cpu"))
    stop = StopRule.for_model(model, processor)
    result = rollout(
        model, processor, prompts, group=1, temperature=0.0, top_p=1.0, max_new_tokens=10, stop=stop
    )
    batch = encode_prompts(
        processor, [problem_messages(p, TEMPLATE) for p in chosen], [p.load_images() for p in chosen]
    )
    with torch.no_grad():
        generated = model.generate(**batch, max_new_tokens=10, do_sample=False)[
            :, batch["input_ids"].shape[1] :
        ]
    for row in range(4):
        n = int(result.mask[row].sum())
        assert result.tokens[row, :n].tolist() == generated[row, :n].tolist()
    assert len({tuple(row) for row in result.tokens.tolist()}) > 1


def test_sampler_follows_the_distribution_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(20000, 1)
    generator = torch.Generator().manual_seed(0)
    counts = torch.bincount(sample_next(logits, 1.0, 1.0, generator), minlength=4).float() / 20000
    torch.testing.assert_close(counts, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.015, rtol=0)
    nucleus = torch.bincount(sample_next(logits, 1.0, 0.7, generator), minlength=4).float() / 20000
    assert nucleus[2] == 0 and nucleus[3] == 0 and abs(nucleus[0] - 0.5 / 0.8) < 0.015
    assert (sample_next(logits[:3], 0.0, 1.0, None) == 0).all()


def policy_gradient(model, batch: Batch, cfg: GRPOConfig) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    parts, _ = micro_batch_loss(model, batch, list(range(batch.prompts.size)), cfg, int(batch.mask.sum()))
    parts.loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    return grads


def sample_groups(model, processor, prompts, *, seed: int):
    """Four sampled responses of up to 6 tokens per prompt, seeded."""
    return rollout(
        model,
        processor,
        prompts,
        group=4,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=6,
        stop=StopRule.for_model(model, processor),
        generator=torch.Generator().manual_seed(seed),
    )


def test_rewards_reach_the_gradient(varied_model, problems):
    model, processor = varied_model
    cfg = GRPOConfig(sampling=SamplingConfig(n=4, max_new_tokens=6), prompts_per_step=3, kl_coef=0.0)
    prompts = encode_problems(model, processor, problems[:3], TEMPLATE, torch.device("cpu"))
    result = sample_groups(model, processor, prompts, seed=0)
    rewards = torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1])
    equal = make_batch(model, None, prompts, result, torch.ones(12), cfg)
    assert (equal.advantages == 0).all()
    parts, _ = micro_batch_loss(model, equal, [0, 1, 2], cfg, int(equal.mask.sum()))
    assert parts.pg_loss == 0.0
    assert policy_gradient(model, equal, cfg).abs().max() == 0
    forward = policy_gradient(model, make_batch(model, None, prompts, result, rewards, cfg), cfg)
    flipped = policy_gradient(model, make_batch(model, None, prompts, result, 1 - rewards, cfg), cfg)
    assert forward.abs().max() > 0
    torch.testing.assert_close(flipped, -forward, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    ("mode", "loss"), [("seq-mean-token-mean", "gspo"), ("seq-mean-token-sum-norm", "vanilla"), ("token-mean", "gspo")]
)
def test_micro_batches_add_up_in_every_aggregation(varied_model, problems, mode, loss):
    """The loop's micro-batches carry the minibatch's token and response counts: summed, they are the whole
    minibatch's loss in every aggregation mode (tests/engines/test_local_objective_parity.py: verl's, too)."""
    model, processor = varied_model
    cfg = GRPOConfig(sampling=SamplingConfig(n=4, max_new_tokens=6), prompts_per_step=3, kl_coef=0.0,
                     loss_agg_mode=LossAggMode(mode), policy_loss=PolicyLoss(loss))  # fmt: skip
    prompts = encode_problems(model, processor, problems[:3], TEMPLATE, torch.device("cpu"))
    result = sample_groups(model, processor, prompts, seed=0)
    batch = make_batch(model, None, prompts, result, torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1]), cfg)
    with torch.no_grad():  # off-policy old log-probs, so that ratios differ from 1 (on-policy, seq means are 0)
        current = sequence_logprobs(model, prompts, result.tokens, result.mask, 4, 1.0)[0]
        noise = torch.randn(current.shape, generator=torch.Generator().manual_seed(0)) * 0.2
        batch = dataclasses.replace(batch, old_logp=current + noise)
        whole = micro_batch_loss(model, batch, [0, 1, 2], cfg, int(batch.mask.sum()))[0].loss
        tokens, sequences = int(batch.mask.sum()), batch.mask.shape[0]
        parts = [micro_batch_loss(model, batch, m, cfg, tokens, sequences)[0].loss for m in ([0], [1, 2])]
    assert whole.abs() > 0
    torch.testing.assert_close(parts[0] + parts[1], whole, rtol=1e-5, atol=1e-7)


def test_a_small_step_favours_rewarded_samples(varied_model, problems):
    model, processor = copy.deepcopy(varied_model[0]), varied_model[1]
    cfg = GRPOConfig(sampling=SamplingConfig(n=4, max_new_tokens=6), prompts_per_step=3, kl_coef=0.0)
    prompts = encode_problems(model, processor, problems[:3], TEMPLATE, torch.device("cpu"))
    result = sample_groups(model, processor, prompts, seed=1)
    batch = make_batch(
        model, None, prompts, result, torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1]), cfg
    )

    def sequence_logp() -> torch.Tensor:
        with torch.no_grad():
            logits = policy.response_logits(model, prompts, result.tokens, result.mask, 4)
            return (policy.token_logprobs(logits, result.tokens) * result.mask).sum(dim=1)  # [N]

    before = sequence_logp()
    parts, _ = micro_batch_loss(model, batch, [0, 1, 2], cfg, int(batch.mask.sum()))
    parts.loss.backward()
    grads = [p for p in model.parameters() if p.grad is not None]
    norm = torch.cat([p.grad.flatten() for p in grads]).norm()
    with torch.no_grad():
        for parameter in grads:  # a small plain gradient step (fixed length: the jittered model's are large)
            parameter.sub_(1e-3 * parameter.grad / norm)
    change = sequence_logp() - before
    advantage = batch.advantages[:, 0]
    assert change[advantage > 0].mean() > 0 > change[advantage < 0].mean()


def test_steps_change_the_policy_and_log(warm_dir, tmp_path, make_job, metric_rows):
    problems = generate_mixed(list(TASKS), 64, level=1, seed=7)
    job = make_job(tmp_path, warm_dir, steps=2)
    summary = LocalEngine(RunConfig(name="t")).train_grpo(job, problems)
    assert summary["steps"] == 2 and summary["samples"] == 32 and math.isfinite(summary["reward/mean"])
    rows = metric_rows(job)
    assert any(row["reward/mixed_groups"] > 0 for row in rows), "no reward signal in this setup; see warm_dir"
    assert all(math.isfinite(row["actor/loss"]) for row in rows)
    for key in (
        "reward/accuracy",
        "reward/format",
        "actor/kl",
        "actor/entropy",
        "actor/pg_clipfrac",
        "response/length",
        "time/generate_s",
        "time/score_s",
        "time/update_s",
    ):
        assert key in rows[-1]
    before, _ = load_model(warm_dir)
    after, _ = load_model(job.out_model)
    assert any(not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True))


@pytest.mark.parametrize(
    "loss_keys",
    [
        {"policy_loss": PolicyLoss.gspo, "loss_agg_mode": LossAggMode("seq-mean-token-mean"), "clip_ratio_low": 3e-4,
         "clip_ratio_high": 4e-4},
        {"loss_agg_mode": LossAggMode("seq-mean-token-sum-norm"), "norm_adv_by_std": False, "clip_ratio_high": 0.28},
    ],
    ids=["gspo", "dr-grpo"],
)  # fmt: skip
def test_the_loss_family_trains_through_the_loop(warm_dir, tmp_path, make_job, metric_rows, loss_keys):
    """Off-policy minibatches (2 updates per batch) split into micro-batches (grad_accum 2) with each loss."""
    problems = generate_mixed(list(TASKS), 64, level=1, seed=7)
    job = make_job(tmp_path, warm_dir, steps=2, grpo_keys={"updates_per_batch": 2, **loss_keys}, grad_accum=2)
    LocalEngine(RunConfig(name="t")).train_grpo(job, problems)
    rows = metric_rows(job)
    assert any(row["reward/mixed_groups"] > 0 for row in rows), "no reward signal in this setup; see warm_dir"
    assert all(math.isfinite(row["actor/loss"]) and math.isfinite(row["actor/grad_norm"]) for row in rows)
    assert any(abs(row["actor/ppo_kl"]) > 1e-4 for row in rows)  # the second minibatch is off-policy


def test_resume_after_interruption_matches_straight_run(warm_dir, tmp_path, make_job, assert_crash_and_resume_match):
    problems = generate_mixed(list(TASKS), 64, level=1, seed=7)
    straight = make_job(tmp_path / "straight", warm_dir, steps=3, checkpoint_every=2)
    LocalEngine(RunConfig(name="t")).train_grpo(straight, problems)

    assert_crash_and_resume_match(RunConfig(name="t"), straight, problems, warm_dir, tmp_path)


def test_two_processes_split_each_step_and_resume(
    warm_dir, tmp_path, make_job, metric_rows, assert_crash_and_resume_match
):
    """`processes: 2`: each rank samples its half of a step's prompts (its own rollout seed), one metrics row per
    step for the whole step, and an interrupted run resumes exactly (the ranks are forked from the checkpoint)."""
    problems = generate_mixed(list(TASKS), 64, level=1, seed=7)
    run = RunConfig(name="t", processes=2)
    straight = make_job(tmp_path / "straight", warm_dir, steps=3, checkpoint_every=2)
    summary = LocalEngine(run).train_grpo(straight, problems)
    assert summary["samples"] == 3 * 4 * 4 and summary["prompts"] == 12
    single = make_job(tmp_path / "single", warm_dir, steps=3)
    LocalEngine(RunConfig(name="t")).train_grpo(single, problems)
    # Rank 0 samples with the single process's seed, rank 1 with its own: other rollouts, other rewards.
    assert [r["count/samples"] for r in metric_rows(straight)] == [16.0] * 3
    assert [r["reward/mean"] for r in metric_rows(straight)] != [r["reward/mean"] for r in metric_rows(single)]

    assert_crash_and_resume_match(run, straight, problems, warm_dir, tmp_path)


