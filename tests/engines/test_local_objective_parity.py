"""The local GRPO objective equals verl's own functions for every loss setting, so the two engines cannot drift.

For every (policy_loss, loss_agg_mode, clip range) combination: our loss, computed micro-batch by micro-batch (each
micro-batch trimmed to its own longest response, as verl pads its micro-batches) and summed, equals verl 0.9.1's
`core_algos` policy loss + `kl_coef` x `agg_loss(kl_penalty)` called once on the whole minibatch with the matching
`ActorConfig` (as `verl.workers.utils.losses.ppo_loss` assembles it), loss and gradient, relative 1e-6 (float64:
the check is of the arithmetic, not of float32 rounding). And each setting changes the loss: none is ignored.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from verl.trainer.ppo import core_algos
from verl.workers.config import ActorConfig, PolicyLossConfig

from reasoner.config import GRPOConfig, LossAggMode, PolicyLoss, SamplingConfig
from reasoner.engines.local.objective import LossSettings, grpo_advantages, grpo_loss

GROUP, PROMPTS, WIDTH, BUDGET = 3, 5, 9, 12
"""5 prompts x 3 responses, up to 9 tokens each here; a response budget of 12 (longer than any response: verl's
default divisor for seq-mean-token-sum-norm, the padded width, would differ from it)."""
MICRO = [[0], [1, 2], [3, 4]]  # prompt rows of each micro-batch (uneven, as grad_accum splits)
KL_COEF = 0.05
CLIPS = {"symmetric": (0.2, None, None), "dapo": (0.2, 0.2, 0.28), "gspo-paper": (0.2, 3e-4, 4e-4)}
MODES = [mode.value for mode in LossAggMode]


def make_minibatch() -> dict[str, torch.Tensor]:
    """Seeded tensors [N, C]: varied lengths (1 .. WIDTH), rewards with mixed and equal groups, and log-prob
    changes from tiny (inside a 3e-4 clip) to large (outside 0.28)."""
    generator = torch.Generator().manual_seed(0)
    n = GROUP * PROMPTS
    lengths = torch.randint(1, WIDTH + 1, (n,), generator=generator)
    lengths[0], lengths[-1] = 1, WIDTH
    mask = (torch.arange(WIDTH)[None, :] < lengths[:, None]).long()
    rewards = torch.tensor([1.0, 0, 0, 1, 1, 1, 0, 1, 0, 1, 1, 0, 0, 0, 1])  # the second group: no signal
    old = -torch.rand(n, WIDTH, generator=generator, dtype=torch.float64) * 3
    scale = torch.tensor([0.5, 1e-4, 0.15] * PROMPTS, dtype=torch.float64)  # per response
    logp = old + torch.randn(n, WIDTH, generator=generator, dtype=torch.float64) * scale[:, None]
    ref = old + torch.randn(n, WIDTH, generator=generator, dtype=torch.float64) * 0.1
    return {"mask": mask, "rewards": rewards, "old": old, "logp": logp, "ref": ref}


@pytest.fixture(scope="module")
def minibatch() -> dict[str, torch.Tensor]:
    return make_minibatch()


def advantages_of(batch, norm_by_std: bool = True) -> torch.Tensor:
    return grpo_advantages(batch["rewards"], batch["mask"], GROUP, norm_by_std=norm_by_std).double()


def stage_grpo(loss: str, mode: str, clip: str, **changes) -> GRPOConfig:
    clip_ratio, low, high = CLIPS[clip]
    grpo = GRPOConfig(
        sampling=SamplingConfig(n=GROUP, max_new_tokens=BUDGET),
        clip_ratio=clip_ratio,
        clip_ratio_low=low,
        clip_ratio_high=high,
        loss_agg_mode=LossAggMode(mode),
        policy_loss=PolicyLoss(loss),
    )
    return dataclasses.replace(grpo, **changes)


def ours(batch, grpo: GRPOConfig, advantages: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The local engine's loss: micro-batch by micro-batch, normalised by the minibatch's counts, summed; and the
    gradient with respect to the current log-probs."""
    logp = batch["logp"].clone().requires_grad_(True)
    mask = batch["mask"]
    tokens, sequences = int(mask.sum()), mask.shape[0]
    total = torch.zeros((), dtype=torch.float64)
    for prompts in MICRO:
        rows = [p * GROUP + g for p in prompts for g in range(GROUP)]
        width = int(mask[rows].sum(dim=1).max())  # each micro-batch padded to its own longest response
        cut = (rows, slice(0, width))
        parts = grpo_loss(
            logp[cut], batch["old"][cut], advantages[cut], mask[cut], LossSettings.of(grpo),
            ref_logp=batch["ref"][cut], kl_coef=KL_COEF, batch_num_tokens=tokens, batch_num_sequences=sequences,
        )  # fmt: skip
        total = total + parts.loss
    (gradient,) = torch.autograd.grad(total, logp)
    return total.detach(), gradient


def verls(batch, grpo: GRPOConfig, advantages: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's loss on the whole minibatch, assembled as its actor's `ppo_loss` does, from an `ActorConfig` that
    carries what our verl translation sets (clip ranges, aggregation, policy loss, loss_scale_factor = budget)."""
    mode = grpo.loss_agg_mode.value
    config = ActorConfig(
        strategy="fsdp", rollout_n=GROUP, ppo_micro_batch_size_per_gpu=1,
        clip_ratio=grpo.clip_ratio,
        clip_ratio_low=grpo.clip_ratio if grpo.clip_ratio_low is None else grpo.clip_ratio_low,
        clip_ratio_high=grpo.clip_ratio if grpo.clip_ratio_high is None else grpo.clip_ratio_high,
        loss_agg_mode=mode,
        loss_scale_factor=BUDGET if mode == "seq-mean-token-sum-norm" else None,
        policy_loss=PolicyLossConfig(loss_mode=grpo.policy_loss.value),
    )  # fmt: skip
    config.global_batch_info.update(
        dp_size=1, batch_num_tokens=None, global_batch_size=None, loss_scale_factor=config.loss_scale_factor
    )
    logp = batch["logp"].clone().requires_grad_(True)
    mask = batch["mask"].bool()
    pg_loss, _ = core_algos.get_policy_loss_fn(config.policy_loss.loss_mode)(
        old_log_prob=batch["old"], log_prob=logp, advantages=advantages, response_mask=mask,
        loss_agg_mode=mode, config=config,
    )  # fmt: skip
    kld = core_algos.kl_penalty(logprob=logp, ref_logprob=batch["ref"], kl_penalty=config.kl_loss_type)
    kl_loss = core_algos.agg_loss(loss_mat=kld, loss_mask=mask, loss_agg_mode=mode, **config.global_batch_info)
    total = pg_loss + kl_loss * KL_COEF
    (gradient,) = torch.autograd.grad(total, logp)
    return total.detach(), gradient


@pytest.mark.parametrize(
    ("policy_loss", "mode", "clip"),
    list(itertools.product([p.value for p in PolicyLoss], MODES, CLIPS)),
    ids=lambda v: str(v),
)
def test_micro_batched_loss_equals_verls_on_the_whole_minibatch(minibatch, policy_loss, mode, clip):
    grpo = stage_grpo(policy_loss, mode, clip)
    advantages = advantages_of(minibatch)
    loss, gradient = ours(minibatch, grpo, advantages)
    expected_loss, expected_gradient = verls(minibatch, grpo, advantages)
    assert loss.item() != 0
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-6, atol=1e-12)
    assert gradient.abs().max() > 0


def test_dr_grpo_advantages_are_verls_without_the_std():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    mask = torch.ones(6, 2, dtype=torch.long)
    plain = grpo_advantages(rewards, mask, 3, norm_by_std=False)
    torch.testing.assert_close(plain[:, 0], torch.tensor([2 / 3, -1 / 3, -1 / 3, 0, 0, 0]))
    assert not torch.allclose(grpo_advantages(rewards, mask, 3), plain)


def test_sum_norm_divides_by_the_response_budget_in_both_engines():
    grpo = stage_grpo("vanilla", "seq-mean-token-sum-norm", "symmetric")
    assert LossSettings.of(grpo).loss_scale_factor == BUDGET
    assert LossSettings.of(stage_grpo("vanilla", "token-mean", "symmetric")).loss_scale_factor is None


CHANGES = {
    "clip_ratio": {"clip_ratio": 0.1},
    "clip_ratio_low": {"clip_ratio_low": 0.05},
    "clip_ratio_high": {"clip_ratio_high": 0.28},
    "policy_loss": {"policy_loss": PolicyLoss.gspo},
    **{f"loss_agg_mode={m}": {"loss_agg_mode": LossAggMode(m)} for m in MODES[1:]},
}


@pytest.mark.parametrize("change", list(CHANGES), ids=str)
def test_each_loss_setting_changes_the_loss(minibatch, change):
    advantages = advantages_of(minibatch)
    base = ours(minibatch, stage_grpo("vanilla", "token-mean", "symmetric"), advantages)[0]
    changed = ours(minibatch, stage_grpo("vanilla", "token-mean", "symmetric", **CHANGES[change]), advantages)[0]
    assert abs(changed - base) > 1e-6 * abs(base), change


def test_the_advantage_normalisation_and_the_budget_change_the_loss(minibatch):
    grpo = stage_grpo("vanilla", "token-mean", "symmetric")
    base = ours(minibatch, grpo, advantages_of(minibatch))[0]
    assert abs(ours(minibatch, grpo, advantages_of(minibatch, norm_by_std=False))[0] - base) > 1e-6
    # The budget divides seq-mean-token-sum-norm only.
    norm = stage_grpo("vanilla", "seq-mean-token-sum-norm", "symmetric")
    longer = dataclasses.replace(norm, sampling=SamplingConfig(n=GROUP, max_new_tokens=2 * BUDGET))
    advantages = advantages_of(minibatch)
    torch.testing.assert_close(ours(minibatch, longer, advantages)[0] * 2, ours(minibatch, norm, advantages)[0])
    same = dataclasses.replace(grpo, sampling=SamplingConfig(n=GROUP, max_new_tokens=2 * BUDGET))
    assert ours(minibatch, same, advantages)[0] == base


def test_the_minibatch_reaches_every_branch_of_the_losses(minibatch):
    advantages, mask = advantages_of(minibatch), minibatch["mask"].bool()
    log_ratio = minibatch["logp"] - minibatch["old"]
    ratio = torch.exp(log_ratio)
    assert ((ratio > 3) & (advantages < 0) & mask).any()  # vanilla's dual clip
    assert ((ratio < 0.8) & (advantages < 0) & mask).any() and ((ratio > 1.2) & (advantages > 0) & mask).any()
    sequence = torch.exp((log_ratio * mask).sum(1) / mask.sum(1))  # GSPO's ratio, one per response
    signal = advantages[:, 0] != 0
    assert ((sequence - 1).abs() < 3e-4)[signal].any() and ((sequence - 1).abs() > 4e-4)[signal].any()
    assert len(set(mask.sum(1).tolist())) > 4  # varied lengths
