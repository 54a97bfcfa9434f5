"""Text-only LLM folders (the distillation reasoner, e.g. an R1 distill) load and generate through the same API."""

from __future__ import annotations

import json

import pytest

from reasoner.config import DistillConfig, SamplingConfig
from reasoner.data.stage.distill import distill
from reasoner.data.worlds import generate
from reasoner.errors import ReasonerError
from reasoner.generation.base import GenerationRequest, SamplingSpec, user_message
from reasoner.generation.hf import HFGenerator


@pytest.fixture(scope="module")
def text_model_dir(tiny_model_dir, tmp_path_factory):
    """A tiny random Qwen2 causal LM sharing the tiny VLM's tokenizer: a text-only model folder."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("text-llm")
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_text_only_model_generates_n_samples_per_text_request(text_model_dir):
    generator = HFGenerator.from_pretrained(text_model_dir, show_progress=False)
    requests = [GenerationRequest(user_message(f"What is {i} + 1?", images=0), id=str(i)) for i in range(3)]
    groups = generator.generate(requests, SamplingSpec(n=2, temperature=1.0, max_new_tokens=6, seed=1))
    assert [len(g) for g in groups] == [2, 2, 2]
    assert all(1 <= len(c.token_ids) <= 6 for g in groups for c in g)


def test_text_only_model_rejects_images(text_model_dir, digit_images):
    generator = HFGenerator.from_pretrained(text_model_dir, show_progress=False)
    request = GenerationRequest(user_message("What is shown?", images=1), images=[digit_images[0]], id="img")
    with pytest.raises(ReasonerError, match="text-only"):
        generator.generate([request], SamplingSpec(max_new_tokens=4))


def test_distillation_with_a_text_only_reasoner(text_model_dir, tmp_path):
    problems = generate("count", 4, level=1, seed=7)  # synthetic problems carry captions: no captioner needed
    cfg = DistillConfig(
        reasoner=str(text_model_dir), sampling=SamplingConfig(n=2, max_new_tokens=8), shard_size=4
    )
    result = distill(problems, tmp_path, cfg, reasoner=lambda: HFGenerator.from_pretrained(text_model_dir))
    stats = json.loads(result.stats_path.read_text())
    assert stats["total"]["problems"] == 4 and stats["total"]["samples"] == 8
