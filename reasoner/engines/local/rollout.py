"""GRPO rollouts with the live policy: G samples per prompt from one shared prefill (see `policy.prefill`).

A plain incremental decoding loop over the transformers model (KV cache, temperature, nucleus sampling),
stopping a row at an end token or once it has written a stop sequence such as `</answer>`. It exists beside
`generation.hf.HFGenerator` (used for evaluation) because `model.generate` would run the vision tower and the
prompt once per sample; greedy decoding here gives the same tokens as `model.generate` (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from reasoner.engines.local.policy import EncodedPrompts, continue_from, prefill

STOP_TEXTS = ("</answer>",)


@dataclass
class Rollout:
    """Sampled responses, right-padded: row i*G+g is sample g of prompt i."""

    tokens: torch.Tensor
    """[B*G, C] token ids (pad after the end)."""
    mask: torch.Tensor
    """[B*G, C] 1 for generated tokens (the end token included), 0 for padding."""
    texts: list[str]
    finished: list[bool]
    """True when the row stopped at an end token or a stop sequence (False: it ran out of tokens)."""


def rows_of(prompt_rows: list[int], group: int) -> list[int]:
    """Response rows i*G .. i*G+G-1 of each prompt i."""
    return [i * group + g for i in prompt_rows for g in range(group)]


@dataclass(frozen=True)
class StopRule:
    """When a row is done: an end-of-sequence token, or the tail of a stop sequence's token ids."""

    end_ids: frozenset[int]
    sequences: tuple[tuple[int, ...], ...]
    pad_id: int

    @classmethod
    def for_model(cls, model: Any, processor: Any, stop_texts: Sequence[str] = STOP_TEXTS) -> StopRule:
        tokenizer = processor.tokenizer
        eos = model.generation_config.eos_token_id
        end_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        end_ids.add(tokenizer.convert_tokens_to_ids(tokenizer.eos_token))
        sequences = tuple(
            tuple(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in stop_texts
        )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(end_ids)
        return cls(frozenset(end_ids), tuple(s for s in sequences if s), int(pad))

    def done(self, history: torch.Tensor) -> torch.Tensor:
        """[N] bool: the newest token of `history` [N, T] ends the row."""
        last = history[:, -1]  # [N]
        hit = torch.isin(last, torch.tensor(sorted(self.end_ids), device=last.device))
        for seq in self.sequences:
            if history.shape[1] >= len(seq):
                tail = torch.tensor(seq, device=last.device)
                hit |= (history[:, -len(seq) :] == tail).all(dim=1)
        return hit


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """One token per row from logits [N, V]: argmax at temperature 0, else nucleus sampling."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [N, V]
    order = None
    if top_p < 1.0:
        probs, order = probs.sort(dim=-1, descending=True)  # [N, V]
        # Drop a token when the tokens ranked above it already cover top_p (the first always stays).
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs > top_p, 0.0)
    # Inverse-CDF draw: one uniform number per row (torch.multinomial draws far more on CPU and is ~10x slower).
    cdf = probs.cumsum(dim=-1)  # [N, V]
    target = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device) * cdf[:, -1:]  # [N, 1]
    chosen = torch.searchsorted(cdf, target, right=True).clamp(max=probs.shape[-1] - 1)  # [N, 1]
    return (chosen if order is None else order.gather(-1, chosen)).squeeze(-1)  # [N]


@torch.no_grad()
def rollout(
    model: Any,
    processor: Any,
    prompts: EncodedPrompts,
    *,
    group: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    stop: StopRule,
    generator: torch.Generator | None = None,
) -> Rollout:
    """Sample `group` responses per prompt of at most `max_new_tokens` tokens each."""
    cache, logits = prefill(model, prompts, group)  # logits: [N, V], N = B*G
    n_rows = logits.shape[0]
    device = logits.device
    done = torch.zeros(n_rows, dtype=torch.bool, device=device)  # [N]
    tokens = torch.empty(n_rows, 0, dtype=torch.long, device=device)  # [N, t]
    mask = torch.empty(n_rows, 0, dtype=torch.long, device=device)  # [N, t]
    for step in range(max_new_tokens):
        if step > 0:
            logits = continue_from(model, cache, prompts, group, tokens[:, -1:], mask, offset=step - 1)[:, -1]
        chosen = sample_next(logits, temperature, top_p, generator)  # [N]
        mask = torch.cat([mask, (~done).long()[:, None]], dim=1)  # [N, t+1]
        tokens = torch.cat([tokens, torch.where(done, stop.pad_id, chosen)[:, None]], dim=1)  # [N, t+1]
        done |= stop.done(tokens)
        if bool(done.all()):
            break
    return _finish(processor, tokens, mask, done)


def _finish(processor: Any, tokens: torch.Tensor, mask: torch.Tensor, done: torch.Tensor) -> Rollout:
    rows = [row[: int(n)] for row, n in zip(tokens.tolist(), mask.sum(dim=1).tolist(), strict=True)]
    texts = processor.tokenizer.batch_decode(rows, skip_special_tokens=True)
    return Rollout(tokens=tokens, mask=mask, texts=texts, finished=[bool(d) for d in done.tolist()])
