"""Dynamic sampling (DAPO) for the local GRPO step: a step's generation batches (`Generated`), the seeded problem
stream of each refill batch, which groups carry a signal (rewards that differ), the choice of the groups a step
trains on (those with signal in draw order, topped up with dropped ones), their responses gathered into one
rollout, and the `dynamic/` metrics. `grpo.GRPOStep` draws the batches and trains on the chosen groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reasoner.config.loading import derive_seed
from reasoner.data.records.problem import Problem
from reasoner.engines.local import policy
from reasoner.engines.local.rollout import Rollout, rows_of


@dataclass
class Generated:
    """One generation batch of a step: its problems, their encoded prompts, the sampled responses, their rewards
    [B*G] and rollout metrics, and the seconds spent generating and scoring."""

    problems: list[Problem]
    prompts: policy.EncodedPrompts
    result: Rollout
    rewards: torch.Tensor
    metrics: dict[str, float]
    generate_s: float
    score_s: float


def problem_stream(seed: int, extra: int) -> int:
    """The seed of the problem stream of generation batch `extra`: the job's own for the step's batch (0), one of
    its own for each refill, so a step stays a function of its index."""
    return seed if extra == 0 else derive_seed(seed, "dynamic-sampling", str(extra))


def has_signal(rewards: torch.Tensor, group: int) -> list[bool]:
    """Per group of `group` rewards: do they differ? (Equal rewards give zero advantages: no policy gradient.)"""
    by_group = rewards.view(-1, group)  # [B, G]
    return (by_group.max(dim=1).values > by_group.min(dim=1).values).tolist()


def groups_missing(generated: list[Generated], share: int, group: int) -> int:
    """How many groups with signal this rank's `share` of a step still lacks after the batches `generated`."""
    return max(0, share - sum(sum(has_signal(g.rewards, group)) for g in generated))


def select_groups(signal: list[list[bool]], share: int) -> tuple[list[tuple[int, int]], int]:
    """Dynamic sampling's choice among groups flagged by `has_signal`, per generation batch: (batch, prompt row) of
    the first `share` groups with signal in the order drawn; when fewer have signal, the first dropped ones top
    the step up to `share`. Returns the chosen groups in draw order and how many were topped up."""
    drawn = [(b, i) for b, flags in enumerate(signal) for i in range(len(flags))]
    kept = [g for g in drawn if signal[g[0]][g[1]]][:share]
    short = share - len(kept)
    topped = [g for g in drawn if not signal[g[0]][g[1]]][:short]
    return sorted(kept + topped), short


def choose(
    generated: list[Generated], share: int, group: int, dynamic: bool
) -> tuple[list[tuple[int, int]], dict[str, float]]:
    """The (generation batch, prompt row) of each group the step trains on, and the rollout metrics: means over
    every sampled response (counts summed), with dynamic sampling's own."""
    metrics = {
        key: sum(g.metrics[key] for g in generated) / (1 if key.startswith("count/") else len(generated))
        for key in generated[0].metrics
    }  # every generation batch has `share` prompts: equal weights
    if not dynamic:
        return [(0, i) for i in range(share)], metrics
    signal = [has_signal(g.rewards, group) for g in generated]
    chosen, short = select_groups(signal, share)
    metrics.update(
        {
            "dynamic/groups_dropped": float(sum(not flag for flags in signal for flag in flags)),
            "dynamic/groups_short": float(short),
            "dynamic/generation_batches": float(len(generated)),
        }
    )
    return chosen, metrics


def gather_groups(
    generated: list[Generated], chosen: list[tuple[int, int]], group: int, pad_id: int
) -> tuple[list[Problem], Rollout, torch.Tensor]:
    """Problems, responses (one rollout) and rewards of the chosen groups, in the order given."""
    problems = [generated[b].problems[i] for b, i in chosen]
    parts = [take_rows(generated[b].result, rows_of([i], group)) for b, i in chosen]
    rewards = torch.cat([generated[b].rewards[rows_of([i], group)] for b, i in chosen])
    return problems, merge_rollouts(parts, pad_id), rewards


def take_rows(result: Rollout, rows: list[int]) -> Rollout:
    return Rollout(result.tokens[rows], result.mask[rows], [result.texts[r] for r in rows],
                   [result.finished[r] for r in rows])  # fmt: skip


def merge_rollouts(parts: list[Rollout], pad_id: int) -> Rollout:
    """Rollouts one after the other, right-padded to the longest."""
    width = max(part.tokens.shape[1] for part in parts)

    def pad(tensor: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(tensor, (0, width - tensor.shape[1]), value=value)

    return Rollout(
        torch.cat([pad(part.tokens, pad_id) for part in parts]),
        torch.cat([pad(part.mask, 0) for part in parts]),
        [text for part in parts for text in part.texts],
        [flag for part in parts for flag in part.finished],
    )
