"""Decode a request's images and enforce the prompt-length limit, the same way for every backend.

A prompt over `max_prompt_tokens` (image tokens included) is rejected with an error naming the request, or
shortened in the middle of its longest text part (`on_long_prompt="truncate"`); truncations are counted and
logged. Image tokens are never cut: they must match the image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reasoner.errors import ReasonerError
from reasoner.generation.base import GenerationRequest, check_long_prompt_policy
from reasoner.models.inputs import encode_prompts, prepare_images, prompt_token_counts, shorten_longest_text

log = logging.getLogger(__name__)


@dataclass
class PreparedRequest:
    """A request ready to encode: its (possibly shortened) messages, decoded RGB images and error label."""

    messages: list[dict[str, Any]]
    images: list[Any]
    label: str


class PromptLimiter:
    """Prepares requests for one processor under one prompt-length policy; `truncated` counts shortened prompts."""

    def __init__(self, processor: Any, max_prompt_tokens: int | None = None, on_long_prompt: str = "error"):
        if max_prompt_tokens is not None and max_prompt_tokens < 1:
            raise ReasonerError(f"max_prompt_tokens={max_prompt_tokens}; must be >= 1 or None (no limit)")
        self.processor = processor
        self.max_prompt_tokens = max_prompt_tokens
        self.on_long_prompt = check_long_prompt_policy(on_long_prompt)
        self.truncated = 0

    def prepare(self, requests: Sequence[GenerationRequest], *, offset: int = 0) -> list[PreparedRequest]:
        """Decode images (a missing or corrupt one names its request) and check the count against the messages."""
        prepared = []
        for i, request in enumerate(requests):
            label = request.label(offset + i)
            if not request.messages:
                raise ReasonerError(f"{label}: messages are empty")
            prepared.append(
                PreparedRequest(
                    request.messages, prepare_images(request.messages, request.images, label), label
                )
            )
        return prepared

    def fit(self, batch: list[PreparedRequest]) -> list[PreparedRequest]:
        """Apply the limit to a batch: return it unchanged, with long prompts shortened, or raise."""
        if self.max_prompt_tokens is None or not batch:
            return batch
        encoded = encode_prompts(self.processor, [b.messages for b in batch], [b.images for b in batch])
        fitted = []
        for item, n_tokens in zip(batch, prompt_token_counts(encoded), strict=True):
            if n_tokens <= self.max_prompt_tokens:
                fitted.append(item)
                continue
            limit = f"{n_tokens} prompt tokens (images included) > max_prompt_tokens={self.max_prompt_tokens}"
            if self.on_long_prompt == "error":
                raise ReasonerError(
                    f"{item.label}: {limit}; raise the limit or set on_long_prompt='truncate'"
                )
            fitted.append(self._truncate(item, n_tokens - self.max_prompt_tokens, limit))
        return fitted

    def _truncate(self, item: PreparedRequest, excess: int, limit: str) -> PreparedRequest:
        # Decoding and re-encoding can merge tokens differently at the cut: shorten until the prompt really fits.
        for attempt in range(4):
            messages = shorten_longest_text(self.processor, item.messages, excess + 2 * attempt)
            if messages is None:
                break
            encoded = encode_prompts(self.processor, [messages], [item.images])
            if prompt_token_counts(encoded)[0] <= self.max_prompt_tokens:
                self.truncated += 1
                log.warning("%s: %s; shortened its longest text part", item.label, limit)
                return PreparedRequest(messages, item.images, item.label)
        raise ReasonerError(f"{item.label}: {limit}, and its text is too short to cut enough tokens")
