"""The vLLM request translation (pure, no vllm needed) and the clear error when vllm is absent."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from reasoner.errors import ReasonerError
from reasoner.generation import GenerationRequest, SamplingSpec, user_message
from reasoner.generation.limits import PromptLimiter
from reasoner.generation.vllm import (
    CPU_KV_CACHE_BYTES,
    VLLMGenerator,
    build_vllm_batch,
    cpu_engine_defaults,
    from_vllm_outputs,
    to_sampling_kwargs,
)
from reasoner.models.inputs import render_prompts
from reasoner.models.loading import load_processor


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    return load_processor(tiny_model_dir)


def _prepared(processor, images: list, texts: list[str]):
    requests = [
        GenerationRequest(user_message(t, images=len(im)), im, id=t)
        for t, im in zip(texts, images, strict=True)
    ]
    return PromptLimiter(processor).prepare(requests)


def test_prompts_carry_rendered_chat_text_and_all_images(processor, digit_images: list) -> None:
    prepared = _prepared(processor, [digit_images[:1], digit_images[1:3]], ["one image", "two images"])
    batch = build_vllm_batch(
        prepared, SamplingSpec(n=4, temperature=0.7, top_p=0.9), lambda m: render_prompts(processor, [m])[0]
    )
    assert batch.copies == 1 and len(batch.prompts) == 2
    first, second = batch.prompts
    assert first["prompt"].endswith(
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>one image<|im_end|>\n<|im_start|>assistant\n"
    )
    assert second["prompt"].count("<|image_pad|>") == 2  # vLLM expands each pad itself
    assert first["multi_modal_data"]["image"] == [prepared[0].images[0]]
    assert (
        len(second["multi_modal_data"]["image"]) == 2 and second["multi_modal_data"]["image"][1].mode == "RGB"
    )


def test_text_only_prompt_has_no_multimodal_data(processor) -> None:
    prepared = _prepared(processor, [[]], ["no image"])
    batch = build_vllm_batch(prepared, SamplingSpec(), lambda m: render_prompts(processor, [m])[0])
    assert "multi_modal_data" not in batch.prompts[0]


def test_sampling_kwargs_follow_the_spec_with_per_request_seeds() -> None:
    spec = SamplingSpec(n=8, temperature=1.0, top_p=0.95, max_new_tokens=512, seed=3)
    assert to_sampling_kwargs(spec, request_index=2, stop_token_ids=[7, 5, 7]) == {
        "n": 8,
        "temperature": 1.0,
        "top_p": 0.95,
        "max_tokens": 512,
        "seed": 5,
        "skip_special_tokens": True,
        "stop_token_ids": [5, 7],
    }
    greedy = to_sampling_kwargs(SamplingSpec(top_p=0.5), request_index=0)
    assert greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0 and "stop_token_ids" not in greedy


def test_greedy_n_repeats_prompts_and_outputs_regroup(processor, digit_images: list) -> None:
    prepared = _prepared(processor, [digit_images[:1], digit_images[1:2]], ["a", "b"])
    batch = build_vllm_batch(prepared, SamplingSpec(n=3), lambda m: render_prompts(processor, [m])[0])
    assert batch.copies == 3 and len(batch.prompts) == 6 and all(s["n"] == 1 for s in batch.sampling)
    assert batch.prompts[0] == batch.prompts[2] != batch.prompts[3]
    outputs = [
        SimpleNamespace(outputs=[SimpleNamespace(text=f"t{i}", token_ids=[i, 2], finish_reason="stop")])
        for i in range(6)
    ]
    grouped = from_vllm_outputs(outputs, n=3, copies=3)
    assert [[c.text for c in group] for group in grouped] == [["t0", "t1", "t2"], ["t3", "t4", "t5"]]
    assert grouped[1][0].token_ids == (3, 2)


def test_sampled_outputs_map_finish_reasons_and_check_counts() -> None:
    choice = lambda text, reason: SimpleNamespace(text=text, token_ids=(1,), finish_reason=reason)  # noqa: E731
    outputs = [SimpleNamespace(outputs=[choice("x", "length"), choice("y", "stop")])]
    [[first, second]] = from_vllm_outputs(outputs, n=2, copies=1)
    assert (first.finish_reason, second.finish_reason) == ("length", "stop")
    with pytest.raises(ReasonerError, match="3 requests x n=2|1 requests x n=3"):
        from_vllm_outputs(outputs, n=3, copies=1)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_missing_vllm_raises_install_hint(tiny_model_dir: Path) -> None:
    with pytest.raises(ReasonerError, match=r"requirements/gpu\.lock"):
        VLLMGenerator(tiny_model_dir)


def test_cpu_defaults_turn_chunked_prefill_off_and_keep_what_the_caller_gave() -> None:
    defaults = cpu_engine_defaults({}, model_max_len=32768)
    assert defaults["enable_chunked_prefill"] is False  # per-request seeds + chunked prefill kill the CPU engine
    assert defaults["max_num_batched_tokens"] >= defaults["max_model_len"] == 4096  # one batch holds a prompt
    assert defaults["kv_cache_memory_bytes"] == CPU_KV_CACHE_BYTES and defaults["enforce_eager"] is True
    given = cpu_engine_defaults({"max_model_len": 1024, "kv_cache_memory_bytes": 1 << 28}, model_max_len=4096)
    assert given["max_model_len"] == 1024 and given["kv_cache_memory_bytes"] == 1 << 28
    assert cpu_engine_defaults({}, model_max_len=512)["max_model_len"] == 512
    assert cpu_engine_defaults({}, 512, "float32")["dtype"] == "float32"  # not vLLM's auto downcast to bfloat16
