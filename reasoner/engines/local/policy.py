"""Forward passes of a Qwen-VL policy (Qwen2.5-VL or Qwen3-VL) over prompts that share their prefix across a
group of responses.

GRPO samples G responses per prompt, so the prompt (and its image) is the same for G rows. Instead of running
the vision tower and the prompt tokens G times, `prefill` runs them once per prompt and repeats the KV cache G
times (autograd flows through the repeat); the responses then attend to that cache. With prompts of ~60 tokens
and responses of ~16 this does ~3x less work than a plain forward over `[B*G, P+C]` and gives the same
log-probabilities (tested against the plain forward). SFT uses the same path with G = 1.

Positions: both families use 3-D (t, h, w) rotary positions (the prompt's come from the model's own
`get_rope_index`); text after the prompt continues from the prompt's last position in all three dimensions. The
positions of response tokens are computed here and passed explicitly, so the model's own position cache
(`rope_deltas`) is never consulted. Qwen3-VL's deepstack features enter at the image tokens, which are all in the
prompt, so the prefill carries them and the cached responses need none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from verl.utils.torch_functional import entropy_from_logits, logprobs_from_logits

from reasoner.models.inputs import encode_prompts

__all__ = ["EncodedPrompts", "encode", "prefill", "response_logits", "token_logprobs", "token_entropy"]

_TEXT_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")


@dataclass
class EncodedPrompts:
    """A left-padded batch of prompts with their images, and the rotary positions of their tokens."""

    inputs: dict[str, torch.Tensor]
    """input_ids / attention_mask / mm_token_type_ids [B, P]; pixel_values [patches, D]; image_grid_thw [I, 3]."""
    images_per_prompt: list[int]
    positions: torch.Tensor
    """[3, B, P] rotary positions (t, h, w) of the prompt tokens."""

    @property
    def size(self) -> int:
        return int(self.inputs["input_ids"].shape[0])

    @property
    def attention_mask(self) -> torch.Tensor:
        return self.inputs["attention_mask"]

    @property
    def next_position(self) -> torch.Tensor:
        """[B] position of the first response token (prompts are left-padded: the last column is real)."""
        return self.positions[0, :, -1] + 1

    def select(self, rows: Sequence[int]) -> EncodedPrompts:
        """The prompts at `rows` (e.g. one minibatch) with their images' patches."""
        rows = list(rows)
        first_image = [sum(self.images_per_prompt[:r]) for r in range(self.size)]
        image_rows = [
            i for r in rows for i in range(first_image[r], first_image[r] + self.images_per_prompt[r])
        ]
        inputs = {key: self.inputs[key][rows] for key in _TEXT_KEYS}
        if image_rows:
            grid = self.inputs["image_grid_thw"]  # [I, 3]
            patches = grid.prod(-1).tolist()
            first_patch = [sum(patches[:i]) for i in range(len(patches))]
            patch_rows = [p for i in image_rows for p in range(first_patch[i], first_patch[i] + patches[i])]
            inputs["pixel_values"] = self.inputs["pixel_values"][patch_rows]
            inputs["image_grid_thw"] = grid[image_rows]
        return EncodedPrompts(inputs, [self.images_per_prompt[r] for r in rows], self.positions[:, rows])


def encode(
    model: Any,
    processor: Any,
    messages_batch: Sequence[list[dict]],
    images_batch: Sequence[list[Any]],
    device: torch.device,
) -> EncodedPrompts:
    """Tokenize prompts with their (decoded) images, left-padded, and compute their rotary positions."""
    batch = encode_prompts(processor, messages_batch, images_batch, padding_side="left")
    inputs = {key: value.to(device) for key, value in batch.items()}
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"],
        mm_token_type_ids=inputs["mm_token_type_ids"],
        image_grid_thw=inputs.get("image_grid_thw"),
        attention_mask=inputs["attention_mask"],
    )  # [3, B, P]; padding positions are 0 and masked out
    return EncodedPrompts(inputs, [len(images) for images in images_batch], positions)


def prefill(model: Any, prompts: EncodedPrompts, group: int) -> tuple[Any, torch.Tensor]:
    """Run the prompts once, repeat the KV cache `group` times; returns (cache, next-token logits [B*G, V])."""
    out = model(**prompts.inputs, position_ids=prompts.positions, use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    if group > 1:
        cache.batch_repeat_interleave(group)
    return cache, out.logits[:, -1].repeat_interleave(group, dim=0)  # [B*G, V]


def continue_from(
    model: Any,
    cache: Any,
    prompts: EncodedPrompts,
    group: int,
    tokens: torch.Tensor,
    tokens_mask: torch.Tensor,
    offset: int = 0,
) -> torch.Tensor:
    """Feed `tokens` [B*G, T] after the cached prompt (+ `offset` cached response tokens); logits [B*G, T, V]."""
    prompt_mask = prompts.attention_mask.repeat_interleave(group, dim=0)  # [B*G, P]
    attention_mask = torch.cat([prompt_mask, tokens_mask], dim=1)  # [B*G, P+offset+T]
    start = prompts.next_position.repeat_interleave(group, dim=0) + offset  # [B*G]
    steps = torch.arange(tokens.shape[1], device=tokens.device)  # [T]
    positions = (start[:, None] + steps[None, :]).unsqueeze(0).expand(3, -1, -1)  # [3, B*G, T]
    out = model(
        input_ids=tokens,
        attention_mask=attention_mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
    )
    return out.logits  # [B*G, T, V]


def response_logits(
    model: Any, prompts: EncodedPrompts, responses: torch.Tensor, response_mask: torch.Tensor, group: int
) -> torch.Tensor:
    """Logits that predict each response token: [B*G, C, V] for responses [B*G, C] (row i*G+g: prompt i)."""
    cache, first = prefill(model, prompts, group)  # first: [B*G, V]
    if responses.shape[1] == 1:
        return first[:, None]
    # Token j is predicted from tokens < j: the last response token is never fed.
    rest = continue_from(
        model, cache, prompts, group, responses[:, :-1], response_mask[:, :-1]
    )  # [B*G, C-1, V]
    return torch.cat([first[:, None], rest], dim=1)  # [B*G, C, V]


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(token) under softmax(logits / temperature): [N, C] (the distribution the rollout sampled from)."""
    if temperature not in (0.0, 1.0):
        logits = logits / temperature
    return logprobs_from_logits(logits.float(), tokens)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of each next-token distribution: [N, C] (no gradient)."""
    with torch.no_grad():
        if temperature not in (0.0, 1.0):
            logits = logits / temperature
        return entropy_from_logits(logits.float())
