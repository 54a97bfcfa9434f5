"""Supervised fine-tuning on (problem, target response) pairs: loss on the assistant tokens only.

Each example is the stage's prompt (`problem_messages(problem, template)`, images included) followed by the
target as the assistant turn, exactly as the chat template renders it (the target and the end-of-turn token
are learned; the prompt, the generation header and padding are not). Batches are drawn from seeded shuffles by
step index, so a resumed job sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from reasoner.data.stage.selection import SFTExample
from reasoner.engines.base import TrainJob
from reasoner.engines.local import policy
from reasoner.engines.local.common import Runtime, autocast, load_trainable, planned_steps, stream_indices
from reasoner.engines.local.loop import OnStep, TrainingSession
from reasoner.errors import ReasonerError
from reasoner.prompts import Template, problem_messages, shown_images

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass
class SFTBatch:
    """Prompts (left-padded, with images) and the target tokens to learn (right-padded)."""

    prompts: policy.EncodedPrompts
    targets: torch.Tensor
    """[B, C] token ids of the assistant turn (target text + end-of-turn token)."""
    mask: torch.Tensor
    """[B, C] 1 on target tokens, 0 on padding."""

    def labels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The same batch as one sequence per row with Hugging Face labels: (input_ids [B, P+C], labels [B, P+C]),
        labels -100 on the prompt and padding (what `model(..., labels=...)` expects)."""
        prompt_ids = self.prompts.inputs["input_ids"]  # [B, P]
        input_ids = torch.cat([prompt_ids, self.targets], dim=1)  # [B, P+C]
        ignored = torch.full_like(prompt_ids, IGNORE_INDEX)  # [B, P]
        labels = torch.cat(
            [ignored, self.targets.masked_fill(self.mask == 0, IGNORE_INDEX)], dim=1
        )  # [B, P+C]
        return input_ids, labels


def completion_text(processor: Any, messages: list[dict], target: str) -> str:
    """What the chat template renders for the assistant turn `target` after the generation prompt, up to and
    including the end-of-turn token (the text the model must produce)."""
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = processor.apply_chat_template(
        [*messages, {"role": "assistant", "content": target}], tokenize=False, add_generation_prompt=False
    )
    if not full.startswith(prompt) or target.strip() not in full[len(prompt) :]:
        raise ReasonerError(
            "the chat template does not render an assistant turn as <generation prompt> + target; "
            f"cannot locate the target in: {full[len(prompt) - 40 :]!r}"
        )
    rest = full[len(prompt) :]
    eos = processor.tokenizer.eos_token
    end = rest.rfind(eos)
    return rest[: end + len(eos)] if end >= 0 else rest


def encode_batch(
    model: Any, processor: Any, examples: Sequence[SFTExample], template: Template, device: torch.device
) -> SFTBatch:
    """Tokenize examples: prompts with images through the processor, targets as the chat template renders them."""
    messages = [problem_messages(example.problem, example.template(template)) for example in examples]
    images = [[im.load() for im in shown_images(e.problem, e.template(template))] for e in examples]
    prompts = policy.encode(model, processor, messages, images, device)
    tokenizer = processor.tokenizer
    rows = [
        tokenizer(completion_text(processor, m, example.target), add_special_tokens=False)["input_ids"]
        for m, example in zip(messages, examples, strict=True)
    ]
    width = max(len(row) for row in rows)
    targets = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)  # [B, C]
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # [B, C]
    for i, row in enumerate(rows):
        targets[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return SFTBatch(prompts, targets.to(device), mask.to(device))


def target_logprobs(model: Any, batch: SFTBatch) -> torch.Tensor:
    """log p(target token | prompt, earlier target tokens): [B, C]."""
    logits = policy.response_logits(model, batch.prompts, batch.targets, batch.mask, group=1)  # [B, C, V]
    return policy.token_logprobs(logits, batch.targets)  # [B, C]


def train_sft(
    job: TrainJob, examples: list[SFTExample], runtime: Runtime, on_step: OnStep | None = None
) -> dict[str, float]:
    """Fine-tune `job.init_model` on `examples`; checkpoint, export to `job.out_model`, return summary metrics."""
    if not examples:
        raise ReasonerError(f"stage {job.stage.name}: no SFT examples to train on")
    stage = job.stage
    per_step = stage.batch_size * stage.grad_accum
    total = planned_steps(stage, len(examples), per_step)
    model, processor = load_trainable(job.init_model, runtime, freeze_vision=stage.freeze_vision, seed=job.seed)
    session = TrainingSession(
        job,
        "sft",
        runtime,
        model,
        processor,
        total,
        postfix=("train/loss",),
        summary_keys=("train/loss",),
        additive=("count/", "train/loss"),
        on_step=on_step,
    )
    where = f" on {runtime.processes} processes" if runtime.processes > 1 else ""
    log.info("SFT %s: %d examples, %d steps of %d%s", stage.name, len(examples), total, per_step, where)

    def step(index: int) -> dict[str, float]:
        chosen = stream_indices(len(examples), (index - 1) * per_step, per_step, job.seed)
        micro = [session.group.share(chosen[i : i + stage.batch_size]) for i in range(0, per_step, stage.batch_size)]
        batches = [
            encode_batch(model, processor, [examples[j] for j in part], job.template, runtime.device)
            for part in micro
        ]
        # Over every rank's part of the step (the ranks' gradients are summed).
        tokens = int(session.group.sum(sum(int(batch.mask.sum()) for batch in batches)))
        total_loss = 0.0
        for batch in batches:
            with autocast(runtime):
                logp = target_logprobs(model, batch)  # [B, C]
            loss = -(logp * batch.mask).sum() / tokens  # token mean over the whole optimizer step
            loss.backward()
            total_loss += float(loss.detach())
        grad_norm = session.step_optimizer(total_loss)
        return {
            "train/loss": total_loss,
            "train/grad_norm": grad_norm,
            "train/target_tokens": float(tokens),
            "count/examples": float(sum(len(part) for part in micro)),
        }

    return session.run(step)
