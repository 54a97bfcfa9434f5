"""What every generation backend takes and returns: requests, a sampling spec, completions.

Backends (`hf.HFGenerator`, `vllm.VLLMGenerator`, `pool.GeneratorPool`) all satisfy the `Generator` protocol:
`generate(requests, spec)` returns `spec.n` completions per request, in request order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol, runtime_checkable

from reasoner.errors import ReasonerError
from reasoner.prompts import Template, problem_messages, shown_images

FinishReason = Literal["stop", "length"]


class Backend(str, Enum):
    """What generates: `hf` (transformers, CPU or one GPU) or `vllm` (vLLM, GPUs)."""

    hf = "hf"
    vllm = "vllm"


LONG_PROMPT_POLICIES = ("error", "truncate")


@dataclass(frozen=True)
class SamplingSpec:
    """How to sample: `n` completions per request; `temperature` 0 means greedy decoding."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0  # same seed + same requests + same backend -> same samples

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ReasonerError(f"sampling n={self.n}; must be >= 1")
        if self.temperature < 0:
            raise ReasonerError(f"sampling temperature={self.temperature}; must be >= 0 (0 = greedy)")
        if not 0 < self.top_p <= 1:
            raise ReasonerError(f"sampling top_p={self.top_p}; must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ReasonerError(f"sampling max_new_tokens={self.max_new_tokens}; must be >= 1")

    @classmethod
    def of(cls, sampling: Any, seed: int) -> SamplingSpec:
        """The spec of a config's sampling settings (`config.SamplingConfig`: n, temperature, top_p,
        max_new_tokens) with `seed`."""
        return cls(sampling.n, sampling.temperature, sampling.top_p, sampling.max_new_tokens, seed)

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic argmax (temperature 0)."""
        return self.temperature == 0


@dataclass
class GenerationRequest:
    """One prompt: chat `messages` (transformers multimodal format) and the `images` its image parts consume.

    `images` holds PIL images, image file paths or encoded image bytes; `id` names the request in errors.
    """

    messages: list[dict[str, Any]]
    images: list[Any] = field(default_factory=list)
    id: str | None = None

    def label(self, index: int) -> str:
        """How errors name this request: its id, or its position in the batch."""
        return f"request {self.id!r}" if self.id is not None else f"request #{index}"


@dataclass(frozen=True)
class Completion:
    """One generated response: decoded `text` (special tokens removed), its `token_ids`, and why it stopped."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason


@runtime_checkable
class Generator(Protocol):
    """A generation backend."""

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        """Return `spec.n` completions for each request, in request order."""
        ...


def user_message(text: str, *, images: int = 1) -> list[dict[str, Any]]:
    """A one-turn conversation: `images` image parts followed by `text` (the layout of every stage's prompt)."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(images)]
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def check_long_prompt_policy(policy: str) -> str:
    """Validate `on_long_prompt`."""
    if policy not in LONG_PROMPT_POLICIES:
        raise ReasonerError(f"on_long_prompt={policy!r}; allowed: {list(LONG_PROMPT_POLICIES)}")
    return policy


def requests_for(problems: Sequence, template: Template) -> list[GenerationRequest]:
    """Generation requests (images + rendered prompt) for `Problem`s, in order."""
    return [
        GenerationRequest(
            messages=problem_messages(p, template), images=[im.load() for im in shown_images(p, template)], id=p.id
        )
        for p in problems
    ]
