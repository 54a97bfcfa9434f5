"""GRPO with verifiable rewards: rollout -> score -> group advantages -> clipped policy updates.

One step:
1. take `prompts_per_step` problems (seeded shuffles, cycling) and encode their prompts and images once;
2. sample `sampling.n` responses per prompt with the live policy (`rollout`): temperature / top_p,
   stopping at an end token or `</answer>`;
3. score them with `reasoner.data.records.scoring.score_pairs` (the one scorer: accuracy + format_weight * format +
   summary_penalty); a response whose scoring raises or is not finite scores 0 and is counted
   (`count/reward_errors`, `rewards.guard`);
4. advantages, policy loss and KL come from verl's `core_algos` (see `objective`: the policy loss, clip range and
   aggregation mode are the stage's `grpo` settings);
5. `updates_per_batch` optimizer updates over minibatches of whole groups; old log-probs are computed once,
   before the updates (with a single update they equal the current ones, detached, so no extra pass).

With `dynamic_sampling` (DAPO), groups whose rewards are all equal are dropped after step 3 and more generation
batches of `prompts_per_step` prompts (each from a seeded stream of its own, so a step stays a function of its
index) refill the step, at most `max_extra_batches` of them; a step still short is topped up with dropped groups
(see `dynamic`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch

import rewards
from reasoner.config import GRPOConfig
from reasoner.data.records.problem import Problem
from reasoner.data.records.scoring import score_pairs
from reasoner.engines.base import TrainJob
from reasoner.engines.local import policy
from reasoner.engines.local.common import Runtime, autocast, load_trainable, planned_steps, stream_indices
from reasoner.engines.local.dynamic import Generated, choose, gather_groups, groups_missing, problem_stream
from reasoner.engines.local.loop import OnStep, TrainingSession
from reasoner.engines.local.lora import adapters_disabled, sampling_mode
from reasoner.engines.local.objective import LossParts, LossSettings, grpo_advantages, grpo_loss
from reasoner.engines.local.rollout import Rollout, StopRule, rollout, rows_of
from reasoner.errors import ReasonerError
from reasoner.models.loading import load_model
from reasoner.prompts import Template, problem_messages, shown_images

log = logging.getLogger(__name__)

SUMMARY_KEYS = ("reward/mean", "reward/accuracy", "reward/format", "response/length", "actor/kl")
ADDITIVE_KEYS = ("count/", "dynamic/groups_", "actor/loss", "actor/pg_loss", "actor/kl")
"""Summed over data-parallel ranks: counts, and loss parts normalised by the whole minibatch's tokens."""
POSTFIX_KEYS = ("reward/accuracy", "reward/mean", "actor/kl", "response/length")


@dataclass
class Batch:
    """One rollout batch, ready for updates: row i*G+g of every [N, C] tensor is sample g of prompt i."""

    prompts: policy.EncodedPrompts
    tokens: torch.Tensor  # [N, C]
    mask: torch.Tensor  # [N, C]
    advantages: torch.Tensor  # [N, C]
    old_logp: torch.Tensor | None  # [N, C]; None: on-policy (a single update)
    ref_logp: torch.Tensor | None  # [N, C]; None: no KL term


def score_rollout(
    problems: list[Problem], result: Rollout, group: int, cfg: GRPOConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Rewards [B*G] from the project's one scorer, and their components' means for logging. A response whose
    reward fails (raises, NaN) scores 0 and is counted in `count/reward_errors`."""
    weights = rewards.RewardWeights(
        accuracy=1.0, format=cfg.format_weight, summary_penalty=cfg.summary_penalty
    )
    pairs = [(problem, result.texts[i * group + g]) for i, problem in enumerate(problems) for g in range(group)]
    scores = score_pairs(pairs, weights=weights, extraction=cfg.extraction.value, guard=True)
    overall = torch.tensor([s.overall for s in scores], dtype=torch.float32)  # [B*G]
    by_group = overall.view(-1, group)  # [B, G]
    n = len(scores)
    return overall, {
        "reward/mean": float(overall.mean()),
        "reward/accuracy": sum(s.accuracy for s in scores) / n,
        "reward/format": sum(s.format for s in scores) / n,
        "reward/summary_missing": sum(s.summary_missing for s in scores) / n,
        # Groups whose samples disagree: only these carry a learning signal (equal rewards -> zero advantage).
        "reward/mixed_groups": float(
            (by_group.max(dim=1).values > by_group.min(dim=1).values).float().mean()
        ),
        "response/length": float(result.mask.sum(dim=1).float().mean()),
        "response/unfinished": 1.0 - sum(result.finished) / n,
        "count/reward_errors": float(sum(s.reason == rewards.REWARD_ERROR for s in scores)),
    }


def sequence_logprobs(
    model: Any,
    prompts: policy.EncodedPrompts,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    group: int,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probs [N, C], entropies [N, C]) of responses under softmax(logits / temperature)."""
    logits = policy.response_logits(model, prompts, tokens, mask, group)  # [N, C, V]
    return policy.token_logprobs(logits, tokens, temperature), policy.token_entropy(logits, temperature)


def minibatches(n_prompts: int, updates: int, grad_accum: int) -> list[list[list[int]]]:
    """Prompt indices of each update's minibatch, split into `grad_accum` micro-batches. Minibatches are
    contiguous runs of whole groups; with more updates than prompts they cycle (several epochs)."""
    parts = min(updates, n_prompts)
    bounds = [round(k * n_prompts / parts) for k in range(parts + 1)]
    chunks = [list(range(bounds[k], bounds[k + 1])) for k in range(parts)]
    plans = []
    for u in range(updates):
        chunk = chunks[u % parts]
        micro = min(grad_accum, len(chunk))
        cuts = [round(k * len(chunk) / micro) for k in range(micro + 1)]
        plans.append([chunk[cuts[k] : cuts[k + 1]] for k in range(micro)])
    return plans


def rollout_seed(seed: int, step: int, rank: int = 0, extra: int = 0) -> int:
    """The seed of one step's rollouts on one data-parallel rank (rank 0's is the single-process seed), in its
    generation batch `extra` (dynamic sampling's refills; 0: the step's own)."""
    base = seed * 1_000_003 + step
    base = base if rank == 0 else base * 1_000_033 + rank
    return base if extra == 0 else (base * 1_000_037 + extra) % 2**63


class GRPOStep:
    """The step function of a GRPO job: a deterministic function of the step index (problems and seed)."""

    def __init__(
        self,
        job: TrainJob,
        problems: list[Problem],
        runtime: Runtime,
        session: TrainingSession,
        reference: Any | None,
    ) -> None:
        self.job, self.problems, self.runtime, self.session = job, problems, runtime, session
        self.model, self.processor = session.model, session.processor
        self.cfg: GRPOConfig = job.stage.grpo
        self.reference = reference
        self.stop = StopRule.for_model(self.model, self.processor)

    def __call__(self, index: int) -> dict[str, float]:
        cfg, group = self.cfg, self.cfg.sampling.n
        share = cfg.prompts_per_step // self.session.group.world  # this rank's groups per step
        generated = [self._generate(index, 0)]
        for extra in range(1, 1 + (cfg.max_extra_batches if cfg.dynamic_sampling else 0)):
            if self.session.group.sum(groups_missing(generated, share, group)) == 0:  # every rank decides alike
                break
            generated.append(self._generate(index, extra))
        chosen, metrics = choose(generated, share, group, cfg.dynamic_sampling)
        prompts, result, rewards = self._combine(generated, chosen)
        sampled = time.perf_counter()
        batch = self._batch(prompts, result, rewards.to(self.runtime.device))
        reference_done = time.perf_counter()
        metrics.update(self._update(batch))
        metrics.update(
            {
                "time/generate_s": sum(g.generate_s for g in generated),
                "time/score_s": sum(g.score_s for g in generated),
                "time/logprob_s": reference_done - sampled,
                "time/update_s": time.perf_counter() - reference_done,
                "count/prompts": float(len(chosen)),
                "count/samples": float(sum(len(g.result.texts) for g in generated)),
            }
        )
        return metrics

    def _generate(self, index: int, extra: int) -> Generated:
        """Generation batch `extra` of step `index` (0: the step's own prompts; later ones refill dynamic sampling
        from streams of their own): this rank's share of `prompts_per_step` problems, sampled and scored."""
        cfg, dp = self.cfg, self.session.group
        stream = problem_stream(self.job.seed, extra)
        started = time.perf_counter()
        picked = stream_indices(len(self.problems), (index - 1) * cfg.prompts_per_step, cfg.prompts_per_step, stream)
        chosen = [self.problems[i] for i in dp.share(picked)]
        prompts = encode_problems(self.model, self.processor, chosen, self.job.template, self.runtime.device)
        generator = torch.Generator(device=self.runtime.device).manual_seed(
            rollout_seed(self.job.seed, index, dp.rank, extra)
        )
        with autocast(self.runtime), sampling_mode(self.model):
            result = rollout(
                self.model,
                self.processor,
                prompts,
                group=cfg.sampling.n,
                temperature=cfg.sampling.temperature,
                top_p=cfg.sampling.top_p,
                max_new_tokens=cfg.sampling.max_new_tokens,
                stop=self.stop,
                generator=generator,
            )
        generated = time.perf_counter()
        rewards, metrics = score_rollout(chosen, result, cfg.sampling.n, cfg)
        return Generated(chosen, prompts, result, rewards, metrics, generated - started, time.perf_counter() - generated)

    def _combine(
        self, generated: list[Generated], chosen: list[tuple[int, int]]
    ) -> tuple[policy.EncodedPrompts, Rollout, torch.Tensor]:
        """Prompts, responses and rewards of the chosen groups, in the order they were drawn."""
        first = generated[0]
        if chosen == [(0, i) for i in range(first.prompts.size)]:  # the first generation batch as it is
            return first.prompts, first.result, first.rewards
        problems, result, rewards = gather_groups(generated, chosen, self.cfg.sampling.n, self.stop.pad_id)
        prompts = encode_problems(self.model, self.processor, problems, self.job.template, self.runtime.device)
        return prompts, result, rewards

    def _batch(self, prompts: policy.EncodedPrompts, result: Rollout, rewards: torch.Tensor) -> Batch:
        with autocast(self.runtime):
            return make_batch(self.model, self.reference, prompts, result, rewards, self.cfg)

    def _update(self, batch: Batch) -> dict[str, float]:
        """`updates_per_batch` optimizer updates; returns the means of the loss parts over micro-batches."""
        group = self.cfg.sampling.n
        plans = minibatches(batch.prompts.size, self.cfg.updates_per_batch, self.job.stage.grad_accum)
        n_micro = sum(len(plan) for plan in plans)
        totals: dict[str, float] = {}
        grad_norms = []
        for plan in plans:
            # Means are over the minibatch's tokens / responses on every rank (the ranks' gradients are summed).
            rows = rows_of([p for micro in plan for p in micro], group)
            minibatch = (
                int(self.session.group.sum(int(batch.mask[rows].sum()))),
                int(self.session.group.sum(len(rows))),
            )
            update_loss = 0.0
            for micro in plan:
                with autocast(self.runtime):
                    parts, entropy = micro_batch_loss(self.model, batch, micro, self.cfg, *minibatch)
                parts.loss.backward()
                update_loss += float(parts.loss.detach())
                values = {
                    "actor/loss": float(parts.loss.detach()),
                    "actor/pg_loss": parts.pg_loss,
                    "actor/kl": parts.kl,
                    "actor/pg_clipfrac": parts.pg_clipfrac,
                    "actor/ppo_kl": parts.ppo_kl,
                    "actor/entropy": entropy,
                }
                for key, value in values.items():
                    totals[key] = totals.get(key, 0.0) + value / n_micro
            grad_norms.append(self.session.step_optimizer(update_loss))
        return {**totals, "actor/grad_norm": sum(grad_norms) / len(grad_norms)}


def logprob_temperature(cfg: GRPOConfig) -> float:
    """Log-probs are taken under the distribution the rollout sampled from (verl and TRL do the same)."""
    return cfg.sampling.temperature if cfg.sampling.temperature > 0 else 1.0


def make_batch(
    model: Any,
    reference: Any | None,
    prompts: policy.EncodedPrompts,
    result: Rollout,
    rewards: torch.Tensor,
    cfg: GRPOConfig,
) -> Batch:
    """Advantages, and the log-probs that stay fixed during the updates (reference; old when off-policy)."""
    group, temperature = cfg.sampling.n, logprob_temperature(cfg)
    advantages = grpo_advantages(rewards, result.mask, group, norm_by_std=cfg.norm_adv_by_std)  # [N, C]
    fixed: dict[str, torch.Tensor | None] = {"ref": None, "old": None}
    with torch.no_grad(), sampling_mode(model):
        if reference is not None:
            # Under LoRA the reference is the policy itself with its adapters skipped: the start model exactly.
            with adapters_disabled(model) if reference is model else contextlib.nullcontext():
                fixed["ref"] = sequence_logprobs(
                    reference, prompts, result.tokens, result.mask, group, temperature
                )[0]
        if cfg.updates_per_batch > 1:
            fixed["old"] = sequence_logprobs(model, prompts, result.tokens, result.mask, group, temperature)[
                0
            ]
    return Batch(prompts, result.tokens, result.mask, advantages, fixed["old"], fixed["ref"])


def micro_batch_loss(
    model: Any,
    batch: Batch,
    prompt_rows: list[int],
    cfg: GRPOConfig,
    minibatch_tokens: int,
    minibatch_sequences: int | None = None,
) -> tuple[LossParts, float]:
    """The GRPO loss of the groups of `prompt_rows` (to back-propagate) and their mean token entropy; the
    minibatch's token and response counts normalise it (None responses: these rows are the whole minibatch)."""
    group = cfg.sampling.n
    rows = rows_of(prompt_rows, group)
    prompts = batch.prompts if len(prompt_rows) == batch.prompts.size else batch.prompts.select(prompt_rows)
    tokens, mask = batch.tokens[rows], batch.mask[rows]  # [n, C]
    logp, entropy = sequence_logprobs(model, prompts, tokens, mask, group, logprob_temperature(cfg))  # [n, C]
    parts = grpo_loss(
        logp,
        logp.detach() if batch.old_logp is None else batch.old_logp[rows],
        batch.advantages[rows],
        mask,
        LossSettings.of(cfg),
        ref_logp=None if batch.ref_logp is None else batch.ref_logp[rows],
        kl_coef=cfg.kl_coef,
        batch_num_tokens=minibatch_tokens,
        batch_num_sequences=len(rows) if minibatch_sequences is None else minibatch_sequences,
    )
    return parts, float((entropy * mask).sum() / mask.sum().clamp(min=1))


def encode_problems(
    model: Any, processor: Any, problems: list[Problem], template: Template, device: torch.device
) -> policy.EncodedPrompts:
    """The stage's prompt for each problem, with its images, encoded once for rollout and updates."""
    messages = [problem_messages(problem, template) for problem in problems]
    return policy.encode(model, processor, messages, [[im.load() for im in shown_images(p, template)] for p in problems], device)


def load_reference(path: Any, runtime: Runtime) -> Any:
    """The frozen reference policy for the KL term (the stage's starting model)."""
    reference, _ = load_model(path, device=str(runtime.device))
    reference.requires_grad_(False)
    return reference


def train_grpo(
    job: TrainJob, problems: list[Problem], runtime: Runtime, on_step: OnStep | None = None
) -> dict[str, float]:
    """GRPO from `job.init_model` on `problems`; checkpoint, export to `job.out_model`, return summary metrics."""
    if not problems:
        raise ReasonerError(f"stage {job.stage.name}: no problems to train GRPO on")
    cfg = job.stage.grpo
    total = planned_steps(job.stage, len(problems), cfg.prompts_per_step)
    model, processor = load_trainable(job.init_model, runtime, freeze_vision=job.stage.freeze_vision, seed=job.seed)
    reference = None
    if cfg.kl_coef > 0:  # under LoRA: the policy with its adapters off (no second copy of the model)
        reference = model if runtime.lora is not None else load_reference(job.init_model, runtime)
    session = TrainingSession(
        job,
        "grpo",
        runtime,
        model,
        processor,
        total,
        postfix=POSTFIX_KEYS,
        summary_keys=SUMMARY_KEYS,
        additive=ADDITIVE_KEYS,
        on_step=on_step,
    )
    log.info(
        "GRPO %s: %d problems, %d steps of %d prompts x %d samples%s",
        job.stage.name,
        len(problems),
        total,
        cfg.prompts_per_step,
        cfg.sampling.n,
        f" on {runtime.processes} processes" if runtime.processes > 1 else "",
    )
    return session.run(GRPOStep(job, problems, runtime, session, reference))
