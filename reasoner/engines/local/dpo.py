"""Direct preference optimisation on (prompt + image, chosen, rejected) pairs, TRL's sigmoid DPO plus an NLL term.

Per pair, with logp the summed log-probs of a response's tokens (the assistant turn as the chat template renders
it, end-of-turn token included) under the policy and ref the same under the reference (the stage's start model):

    loss = -logsigmoid(beta * ((logp_c - ref_c) - (logp_r - ref_r))) + nll_alpha * NLL(chosen)

NLL(chosen) = -logp_c / (chosen tokens), the chosen response's mean per-token negative log-likelihood
(`reasoner.engines.preference.dpo_terms`, which the verl engine's loss calls too). This is TRL's
`DPOTrainer.dpo_loss` for `loss_type="sigmoid"` (label_smoothing 0) with `rpo_alpha` adding `nll_loss`; TRL's `nll_loss` is the token mean over all chosen responses of a batch, ours is per pair (the same for one pair or
chosen responses of equal length). The step's loss is the mean over its pairs. Rewards: beta * (logp - ref);
accuracy: the chosen reward above the rejected one (a tie counts 1/2: at the start, policy = reference, every pair
ties, so the start reads 0.5 where TRL's strict `>` reads 0).

The reference log-probs are computed once, before the first step, from the model as loaded (the stage's `init`;
LoRA adapters start at zero), and kept in `ckpt/reference_logps.json` under the stage fingerprint, so a resumed
stage reads them rather than recomputing. Training and held-out pairs are batched apart, held-out ones in the order
the held-out evaluation uses, so the start evaluation reproduces the reference exactly (margins 0).

Each step draws `batch_size * grad_accum` training pairs from seeded shuffles by step index (a resumed job sees the
same batches); the prompt and its image are run once per pair and its KV cache shared by the two responses
(`policy.response_logits` with a group of 2).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from reasoner.data.stage.preference import PreferencePair
from reasoner.engines.base import TrainJob
from reasoner.engines.local import policy
from reasoner.engines.local.common import Runtime, autocast, load_trainable, planned_steps, stream_indices
from reasoner.engines.local.loop import METRICS_FILE, MetricsLog, OnStep, TrainingSession
from reasoner.engines.local.sft import completion_text
from reasoner.engines.preference import cached_reference_logps, dpo_terms
from reasoner.errors import ReasonerError
from reasoner.prompts import Template, problem_messages, shown_images

log = logging.getLogger(__name__)


@dataclass
class PairBatch:
    """B prompts (left-padded, with images) and their 2B responses: row 2i the chosen, row 2i+1 the rejected."""

    prompts: policy.EncodedPrompts
    responses: torch.Tensor
    """[2B, C] token ids of the assistant turns (response + end-of-turn token), right-padded."""
    mask: torch.Tensor
    """[2B, C] 1 on response tokens, 0 on padding."""


def encode_pairs(
    model: Any, processor: Any, pairs: Sequence[PreferencePair], template: Template, device: torch.device
) -> PairBatch:
    """Tokenize pairs: each prompt once, with its images, through the processor; both responses as the chat
    template renders an assistant turn."""
    messages = [problem_messages(pair.problem, template) for pair in pairs]
    images = [[im.load() for im in shown_images(pair.problem, template)] for pair in pairs]
    prompts = policy.encode(model, processor, messages, images, device)
    tokenizer = processor.tokenizer
    rows = [
        tokenizer(completion_text(processor, m, response), add_special_tokens=False)["input_ids"]
        for m, pair in zip(messages, pairs, strict=True)
        for response in (pair.chosen, pair.rejected)
    ]
    width = max(len(row) for row in rows)
    responses = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)  # [2B, C]
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # [2B, C]
    for i, row in enumerate(rows):
        responses[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return PairBatch(prompts, responses.to(device), mask.to(device))


def sequence_logps(model: Any, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed response log-probs [B, 2], response tokens [B, 2]); column 0 the chosen, 1 the rejected."""
    logits = policy.response_logits(model, batch.prompts, batch.responses, batch.mask, group=2)  # [2B, C, V]
    logp = policy.token_logprobs(logits, batch.responses) * batch.mask  # [2B, C]
    return logp.sum(-1).view(-1, 2), batch.mask.sum(-1).view(-1, 2).float()


@torch.no_grad()
def score_logps(
    model: Any, processor: Any, pairs: Sequence[PreferencePair], template: Template, runtime: Runtime, batch_size: int
) -> list[tuple[float, float]]:
    """(logp chosen, logp rejected) of every pair, in eval mode, in batches of `batch_size` in the given order."""
    was_training = model.training
    model.eval()
    found: list[tuple[float, float]] = []
    try:
        for start in range(0, len(pairs), batch_size):
            batch = encode_pairs(model, processor, pairs[start : start + batch_size], template, runtime.device)
            with autocast(runtime):
                logp, _ = sequence_logps(model, batch)
            found += [(float(c), float(r)) for c, r in logp.float().cpu().tolist()]
    finally:
        model.train(was_training)
    return found


def reference_logps(
    job: TrainJob, model: Any, processor: Any, groups: Sequence[Sequence[PreferencePair]], runtime: Runtime
) -> dict[str, tuple[float, float]]:
    """The reference log-probs of every pair, cached in `ckpt/REFERENCE_FILE` (each group batched apart)."""

    def compute() -> dict[str, tuple[float, float]]:
        logps: dict[str, tuple[float, float]] = {}
        for group in groups:
            scored = score_logps(model, processor, group, job.template, runtime, job.stage.batch_size)
            logps.update({pair.problem.id: values for pair, values in zip(group, scored, strict=True)})
        return logps

    return cached_reference_logps(job, [pair.problem.id for group in groups for pair in group], compute)


def _as_tensor(values: Sequence[float], device: torch.device) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.float32, device=device)


def train_dpo(
    job: TrainJob, pairs: list[PreferencePair], runtime: Runtime, on_step: OnStep | None = None
) -> dict[str, float]:
    """DPO from `job.init_model` on the training `pairs`, scoring the held-out ones; checkpoint, export to
    `job.out_model`, return summary metrics (the `dpo_eval/*` ones at the start and the end)."""
    stage, dpo = job.stage, job.stage.dpo
    train = [pair for pair in pairs if not pair.heldout]
    heldout = [pair for pair in pairs if pair.heldout]
    if not train:
        raise ReasonerError(f"stage {stage.name}: no preference pairs to train on")
    per_step = stage.batch_size * stage.grad_accum
    total = planned_steps(stage, len(train), per_step)
    model, processor = load_trainable(job.init_model, runtime, freeze_vision=stage.freeze_vision, seed=job.seed)
    job.ckpt_dir.mkdir(parents=True, exist_ok=True)
    refs = reference_logps(job, model, processor, [train, heldout], runtime)
    session = TrainingSession(
        job, "dpo", runtime, model, processor, total,
        postfix=("dpo/loss", "dpo/accuracy"),
        summary_keys=("dpo/loss", "dpo/accuracy", "dpo/margin"),
        additive=("count/", "dpo/"),
        on_step=on_step,
    )  # fmt: skip
    log.info("DPO %s: %d pairs (%d held out), %d steps of %d", stage.name, len(train), len(heldout), total, per_step)

    def evaluate(prefix: str) -> dict[str, float]:
        """The held-out pairs under the current model (every rank scores all of them: averaged, the same)."""
        scored = score_logps(model, processor, heldout, job.template, runtime, stage.batch_size)
        logp = torch.tensor(scored, dtype=torch.float32)  # [H, 2]
        ref = torch.tensor([refs[pair.problem.id] for pair in heldout], dtype=torch.float32)  # [H, 2]
        terms = dpo_terms(logp[:, 0], logp[:, 1], ref[:, 0], ref[:, 1], torch.ones(len(heldout)), beta=dpo.beta,
                          nll_alpha=0.0)  # fmt: skip
        return {f"{prefix}accuracy": float(terms.accuracies.mean()), f"{prefix}margin": float(terms.margins.mean())}

    def step(index: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if heldout and index == 1:
            metrics.update(evaluate("dpo_eval/start_"))
        drawn = stream_indices(len(train), (index - 1) * per_step, per_step, job.seed)
        micro = [session.group.share(drawn[i : i + stage.batch_size]) for i in range(0, per_step, stage.batch_size)]
        sums = dict.fromkeys(("loss", "accuracy", "margin", "logp_chosen", "logp_rejected", "nll"), 0.0)
        for part in micro:
            batch_pairs = [train[j] for j in part]
            batch = encode_pairs(model, processor, batch_pairs, job.template, runtime.device)
            with autocast(runtime):
                logp, tokens = sequence_logps(model, batch)  # [b, 2] each
            ref = _as_tensor([v for pair in batch_pairs for v in refs[pair.problem.id]], runtime.device).view(-1, 2)
            terms = dpo_terms(logp[:, 0], logp[:, 1], ref[:, 0], ref[:, 1], tokens[:, 0], beta=dpo.beta,
                              nll_alpha=dpo.nll_alpha)  # fmt: skip
            loss = terms.losses.sum() / per_step  # the mean over the whole optimizer step's pairs
            loss.backward()
            for key, values in (("loss", terms.losses.detach()), ("accuracy", terms.accuracies),
                                ("margin", terms.margins), ("logp_chosen", logp[:, 0].detach()),
                                ("logp_rejected", logp[:, 1].detach()), ("nll", terms.nll)):  # fmt: skip
                sums[key] += float(values.sum()) / per_step
        grad_norm = session.step_optimizer(sums["loss"])
        metrics.update({f"dpo/{key}": value for key, value in sums.items()})
        metrics.update({"train/grad_norm": grad_norm, "count/pairs": float(sum(len(part) for part in micro))})
        if heldout and (index == total or (dpo.eval_every and index % dpo.eval_every == 0)):
            metrics.update(evaluate("dpo_eval/"))
        return metrics

    summary = session.run(step)
    rows = MetricsLog.read(job.log_dir / METRICS_FILE)
    first, last = (rows[0], rows[-1]) if rows else ({}, {})
    summary.update({k: first[k] for k in ("dpo_eval/start_accuracy", "dpo_eval/start_margin") if k in first})
    summary.update({k: last[k] for k in ("dpo_eval/accuracy", "dpo_eval/margin") if k in last})
    return summary
