"""The GRPO objective, computed by verl's own `core_algos` functions (verl 0.9.1) so both engines agree.

- advantages: `compute_grpo_outcome_advantage` (reward minus the group mean, over the group std);
- policy loss: `get_policy_loss_fn("vanilla")` (PPO clipped ratio with dual clip), token-mean;
- KL: `kl_penalty(..., "low_var_kl")` to the frozen reference, aggregated by `agg_loss` (token-mean), added with
  `kl_coef` exactly as verl's actor adds its `kl_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import OmegaConf
from verl.trainer.ppo import core_algos

KL_TYPE = "low_var_kl"
LOSS_AGG_MODE = "token-mean"
DUAL_CLIP_C = 3.0  # verl's default clip_ratio_c


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


def grpo_advantages(rewards: torch.Tensor, mask: torch.Tensor, group: int) -> torch.Tensor:
    """Group-normalised advantages [N, C] for rewards [N] where rows i*G .. i*G+G-1 share prompt i."""
    index = np.repeat(np.arange(rewards.shape[0] // group), group)  # [N] prompt id of each row
    advantages, _ = core_algos.compute_grpo_outcome_advantage(
        token_level_rewards=outcome_rewards(rewards, mask), response_mask=mask.float(), index=index
    )
    return advantages  # [N, C]


def policy_loss_config(clip_ratio: float, batch_num_tokens: int | None = None):
    """The actor config verl's vanilla policy loss reads (clip ranges, dual-clip bound, global batch info)."""
    batch_info = {} if batch_num_tokens is None else {"dp_size": 1, "batch_num_tokens": int(batch_num_tokens)}
    return OmegaConf.create(
        {
            "clip_ratio": clip_ratio,
            "clip_ratio_low": clip_ratio,
            "clip_ratio_high": clip_ratio,
            "clip_ratio_c": DUAL_CLIP_C,
            "global_batch_info": batch_info,
        }
    )


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_ratio: float,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    batch_num_tokens: int | None = None,
) -> LossParts:
    """Clipped policy loss (+ kl_coef * low_var_kl to the reference) over [N, C] tensors, token-mean.

    `batch_num_tokens` is the token count of the whole minibatch when it is split into micro-batches, so the
    micro-batch losses add up to the minibatch's token mean (verl's `global_batch_info`).
    """
    config = policy_loss_config(clip_ratio, batch_num_tokens)
    mask = mask.float()  # [N, C]
    pg_loss, pg_metrics = core_algos.get_policy_loss_fn("vanilla")(
        old_log_prob=old_logp,
        log_prob=logp,
        advantages=advantages,
        response_mask=mask,
        loss_agg_mode=LOSS_AGG_MODE,
        config=config,
    )
    loss, kl_value = pg_loss, 0.0
    if ref_logp is not None and kl_coef > 0:
        kld = core_algos.kl_penalty(logprob=logp, ref_logprob=ref_logp, kl_penalty=KL_TYPE)  # [N, C]
        kl_loss = core_algos.agg_loss(
            loss_mat=kld, loss_mask=mask, loss_agg_mode=LOSS_AGG_MODE, **config.global_batch_info
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
