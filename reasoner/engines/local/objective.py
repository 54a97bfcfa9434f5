"""The GRPO objective, computed by verl's own `core_algos` functions (verl 0.9.1) so both engines agree.

- advantages: `compute_grpo_outcome_advantage` (reward minus the group mean, over the group std unless
  `norm_adv_by_std` is off, as Dr. GRPO);
- policy loss: `get_policy_loss_fn(policy_loss)`: `vanilla` (PPO's clipped token ratio, dual clip on negative
  advantages) or `gspo` (one clipped ratio per response), with the clip range `clip_ratio_low` / `clip_ratio_high`
  (null: `clip_ratio`), aggregated by `agg_loss` with the stage's `loss_agg_mode`;
- KL: `kl_penalty(..., "low_var_kl")` to the frozen reference, aggregated the same way, added with `kl_coef`
  exactly as verl's actor adds its `kl_loss` (`verl.workers.utils.losses.ppo_loss`).

Micro-batches add up to the minibatch's loss, as in verl: every micro-batch's aggregate is normalised by the whole
minibatch (verl's `global_batch_info`): its token count (`token-mean`) or its response count (`seq-mean-*`, verl's
`global_batch_size`), both summed over data-parallel ranks. `seq-mean-token-sum-norm` divides by a constant,
`loss_scale_factor`: verl's default is the padded length of each micro-batch, which moves with padding and
micro-batching; both engines use the response budget `sampling.max_new_tokens` instead (Dr. GRPO's constant: the
generation budget), and the verl translation sets `actor.loss_scale_factor` to it.

verl's gspo loss asserts that its config is a `verl.workers.config.ActorConfig`: `policy_loss_config` builds one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from verl.trainer.ppo import core_algos
from verl.workers.config import ActorConfig, PolicyLossConfig

from reasoner.config import GRPOConfig

KL_TYPE = "low_var_kl"
DUAL_CLIP_C = 3.0  # verl's default clip_ratio_c
SUM_NORM = "seq-mean-token-sum-norm"


@dataclass(frozen=True)
class LossSettings:
    """What shapes the loss, in verl's terms (strings are verl's names)."""

    clip_ratio: float = 0.2
    clip_ratio_low: float | None = None
    """None: clip_ratio."""
    clip_ratio_high: float | None = None
    """None: clip_ratio."""
    loss_agg_mode: str = "token-mean"
    policy_loss: str = "vanilla"
    loss_scale_factor: int | None = None
    """seq-mean-token-sum-norm's divisor (None: verl's default, the padded length of the tensors it is given)."""

    @classmethod
    def of(cls, grpo: GRPOConfig) -> LossSettings:
        """A stage's settings; seq-mean-token-sum-norm divides by the response budget (see the module doc)."""
        mode = grpo.loss_agg_mode.value
        return cls(
            clip_ratio=grpo.clip_ratio,
            clip_ratio_low=grpo.clip_ratio_low,
            clip_ratio_high=grpo.clip_ratio_high,
            loss_agg_mode=mode,
            policy_loss=grpo.policy_loss.value,
            loss_scale_factor=grpo.sampling.max_new_tokens if mode == SUM_NORM else None,
        )


@dataclass
class LossParts:
    """The loss to back-propagate and its parts (floats, for logging)."""

    loss: torch.Tensor
    pg_loss: float
    kl: float
    pg_clipfrac: float
    ppo_kl: float


def outcome_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Place each response's scalar reward [N] on its last generated token: [N, C] (verl's token_level_rewards)."""
    last = (mask.sum(dim=1) - 1).clamp(min=0)  # [N]
    token_rewards = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)  # [N, C]
    token_rewards[torch.arange(mask.shape[0], device=mask.device), last] = rewards.float()
    return token_rewards * mask


def grpo_advantages(
    rewards: torch.Tensor, mask: torch.Tensor, group: int, norm_by_std: bool = True
) -> torch.Tensor:
    """Group-normalised advantages [N, C] for rewards [N] where rows i*G .. i*G+G-1 share prompt i (divided by the
    group's std unless `norm_by_std` is off)."""
    index = np.repeat(np.arange(rewards.shape[0] // group), group)  # [N] prompt id of each row
    advantages, _ = core_algos.compute_grpo_outcome_advantage(
        token_level_rewards=outcome_rewards(rewards, mask),
        response_mask=mask.float(),
        index=index,
        norm_adv_by_std_in_grpo=norm_by_std,
    )
    return advantages  # [N, C]


def policy_loss_config(
    settings: LossSettings, batch_num_tokens: int | None = None, batch_num_sequences: int | None = None
) -> ActorConfig:
    """verl's actor config as its policy losses and `agg_loss` read it: clip ranges, dual-clip bound, aggregation,
    and the whole minibatch's token and response counts (`global_batch_info`, as verl's `ppo_loss` fills it; None:
    the tensors given are the whole minibatch)."""
    clip = settings.clip_ratio
    return ActorConfig(
        strategy="fsdp",  # required fields of the dataclass, read by no loss
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=1,
        clip_ratio=clip,
        clip_ratio_low=clip if settings.clip_ratio_low is None else settings.clip_ratio_low,
        clip_ratio_high=clip if settings.clip_ratio_high is None else settings.clip_ratio_high,
        clip_ratio_c=DUAL_CLIP_C,
        loss_agg_mode=settings.loss_agg_mode,
        loss_scale_factor=settings.loss_scale_factor,
        policy_loss=PolicyLossConfig(loss_mode=settings.policy_loss),
        global_batch_info={
            "dp_size": 1,  # the local engine sums the ranks' gradients: counts are global, no dp_size factor
            "batch_num_tokens": None if batch_num_tokens is None else int(batch_num_tokens),
            "global_batch_size": None if batch_num_sequences is None else int(batch_num_sequences),
            "loss_scale_factor": settings.loss_scale_factor,
        },
    )


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    settings: LossSettings,
    *,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    batch_num_tokens: int | None = None,
    batch_num_sequences: int | None = None,
) -> LossParts:
    """Policy loss (+ kl_coef * low_var_kl to the reference) over [N, C] tensors, aggregated by `settings`.

    `batch_num_tokens` / `batch_num_sequences` are the token and response counts of the whole minibatch when it is
    split into micro-batches, so the micro-batch losses add up to the minibatch's loss (verl's `global_batch_info`).
    """
    config = policy_loss_config(settings, batch_num_tokens, batch_num_sequences)
    mask = mask.float()  # [N, C]
    pg_loss, pg_metrics = core_algos.get_policy_loss_fn(settings.policy_loss)(
        old_log_prob=old_logp,
        log_prob=logp,
        advantages=advantages,
        response_mask=mask,
        loss_agg_mode=settings.loss_agg_mode,
        config=config,
    )
    loss, kl_value = pg_loss, 0.0
    if ref_logp is not None and kl_coef > 0:
        kld = core_algos.kl_penalty(logprob=logp, ref_logprob=ref_logp, kl_penalty=KL_TYPE)  # [N, C]
        kl_loss = core_algos.agg_loss(
            loss_mat=kld, loss_mask=mask, loss_agg_mode=settings.loss_agg_mode, **config.global_batch_info
        )
        loss = pg_loss + kl_coef * kl_loss
        kl_value = float(kl_loss.detach())
    return LossParts(
        loss=loss,
        pg_loss=float(pg_loss.detach()),
        kl=kl_value,
        pg_clipfrac=float(pg_metrics["actor/pg_clipfrac"]),
        ppo_kl=float(pg_metrics["actor/ppo_kl"]),
    )
