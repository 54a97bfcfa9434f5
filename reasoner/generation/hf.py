"""The transformers generation backend: batched, left-padded `model.generate` on CPU or one GPU.

A trainer hands its live policy to `HFGenerator(model, processor)` (no reload); everything else uses
`HFGenerator.from_pretrained(path)`. Prompts longer than `max_prompt_tokens` are rejected (naming the request)
or shortened in the middle of their longest text part, as `on_long_prompt` says.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from reasoner.errors import ReasonerError
from reasoner.forking import fork_map
from reasoner.generation.base import Completion, GenerationRequest, SamplingSpec
from reasoner.generation.limits import PreparedRequest, PromptLimiter
from reasoner.models.inputs import encode_prompts
from reasoner.models.loading import load_model

log = logging.getLogger(__name__)


@dataclass
class GenerationStats:
    """Running totals of one generator, for logs and benchmarks."""

    prompts: int = 0
    truncated_prompts: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0


class HFGenerator:
    """Generate with a transformers Qwen-VL model (Qwen2.5-VL, Qwen3-VL).

    `batch_size` caps the sequences (prompts x n) per `model.generate` call. Sampling is seeded per batch from
    `spec.seed` and the batch's first request index, inside a forked RNG so the caller's RNG state is untouched.
    With `processes` > 1 (CPU) the batches are shared by that many forked processes (`reasoner.forking.fork_map`):
    the same batches with the same seeds, so the same completions as one process.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        batch_size: int = 16,
        max_prompt_tokens: int | None = None,
        on_long_prompt: str = "error",
        show_progress: bool = True,
        processes: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ReasonerError(f"batch_size={batch_size}; must be >= 1")
        self.processes = processes
        self.model = model
        self.processor = processor
        self.batch_size = batch_size
        self.limiter = PromptLimiter(processor, max_prompt_tokens, on_long_prompt)
        self.show_progress = show_progress
        self.stats = GenerationStats()
        eos = model.generation_config.eos_token_id
        self.eos_token_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        self.eos_token_ids.add(processor.tokenizer.convert_tokens_to_ids(processor.tokenizer.eos_token))
        self.pad_token_id = processor.tokenizer.pad_token_id

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str = "cpu", dtype: str | None = None, **kwargs: Any
    ) -> HFGenerator:
        """Load the model folder at `path` (see `reasoner.models.load_model`) and wrap it."""
        model, processor = load_model(path, device=device, dtype=dtype)
        return cls(model, processor, **kwargs)

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        """Return `spec.n` completions per request, in request order."""
        prepared = self.limiter.prepare(requests)
        per_batch = max(1, self.batch_size // spec.n)
        starts = list(range(0, len(prepared), per_batch))
        started = time.perf_counter()
        parent = os.getpid()
        bar = tqdm(
            total=len(starts), desc="generate", unit="batch", disable=not self.show_progress or len(starts) < 2
        )

        def batch(i: int) -> tuple[list[list[Completion]], int]:
            """One batch's completions, and the prompts it truncated if a forked worker ran it (this process's
            limiter counts its own)."""
            truncated = self.limiter.truncated
            done = self._generate_batch(prepared[starts[i] : starts[i] + per_batch], spec, seed=spec.seed + starts[i])
            if os.getpid() != parent:
                return done, self.limiter.truncated - truncated
            bar.update(min(self.processes, len(starts) - bar.n))  # forked workers' batches counted with ours
            return done, 0

        with bar:
            batches = fork_map(batch, len(starts), self.processes)
        results = [item for done, _ in batches for item in done]
        self.limiter.truncated += sum(truncated for _, truncated in batches)
        self.stats.generated_tokens += sum(len(c.token_ids) for item in results for c in item)
        self.stats.prompts += len(prepared)
        self.stats.truncated_prompts = self.limiter.truncated
        self.stats.seconds += time.perf_counter() - started
        return results

    def _generate_batch(
        self, batch: list[PreparedRequest], spec: SamplingSpec, *, seed: int
    ) -> list[list[Completion]]:
        import torch

        batch = self.limiter.fit(batch)
        # Repeat each prompt n times (rather than num_return_sequences) so greedy n>1 works too.
        rows = [item for item in batch for _ in range(spec.n)]
        inputs = encode_prompts(self.processor, [r.messages for r in rows], [r.images for r in rows])
        inputs = inputs.to(self.model.device)
        prompt_len = inputs["input_ids"].shape[1]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=self._rng_devices()), torch.no_grad():
                torch.manual_seed(seed)
                output = self.model.generate(**inputs, generation_config=self._generation_config(spec))
        finally:
            self.model.train(was_training)
        completions = [self._completion(row) for row in output[:, prompt_len:].tolist()]
        return [completions[i * spec.n : (i + 1) * spec.n] for i in range(len(batch))]

    def _generation_config(self, spec: SamplingSpec) -> Any:
        from transformers import GenerationConfig

        # A complete config, so a checkpoint's own sampling defaults (e.g. top_k, repetition_penalty) never leak in.
        sampling = {} if spec.greedy else {"temperature": spec.temperature, "top_p": spec.top_p, "top_k": 0}
        return GenerationConfig(
            max_new_tokens=spec.max_new_tokens,
            do_sample=not spec.greedy,
            eos_token_id=sorted(self.eos_token_ids),
            pad_token_id=self.pad_token_id,
            repetition_penalty=1.0,
            use_cache=True,
            **sampling,
        )

    def _completion(self, token_ids: list[int]) -> Completion:
        """Cut a generated row after its first end token (kept: it is part of what the policy produced)."""
        for i, token in enumerate(token_ids):
            if token in self.eos_token_ids:
                kept = token_ids[: i + 1]
                finish = "stop"
                break
        else:
            kept, finish = token_ids, "length"
        text = self.processor.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(text=text, token_ids=tuple(kept), finish_reason=finish)

    def _rng_devices(self) -> list[Any]:
        device = self.model.device
        return [device] if device.type == "cuda" else []
