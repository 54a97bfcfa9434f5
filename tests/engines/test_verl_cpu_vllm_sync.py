"""The CPU vLLM rollout's weight sync, without verl around it: a vLLM engine started on dummy weights, as verl
starts it, and given a model's weights through `reload_in_place` (what `CPUWorkerExtension` runs on each
bucketed transfer) serves what transformers computes from the same weights.

The model is the tiny tied-embedding Qwen2.5-VL with its language weights jittered (a random tiny model's greedy
output is one token whatever the prompt, which would make agreement vacuous). Without the output head re-packed,
the synced engine's log-probs were 7.3 nats off a vLLM that loaded the same weights from disk; without
`mm_device_do_normalize: false` its image normalisation keeps the dummy loader's random mean/std (~40 s).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reasoner.generation import GenerationRequest, SamplingSpec, user_message
from reasoner.generation.hf import HFGenerator
from reasoner.models.loading import load_model

pytestmark = pytest.mark.slow
QUESTIONS = ["What is the sum?", "Read the digits.", "How many numbers are there?", "Answer with one word."]


def _sync_from_folder(worker, folder: str) -> int:
    """Runs inside vLLM's worker (collective_rpc): the folder's safetensors through our reload."""
    from safetensors.torch import load_file

    from reasoner.engines.verl.cpu.vllm_rollout import reload_in_place

    weights = [item for path in sorted(Path(folder).glob("*.safetensors")) for item in load_file(path).items()]
    reload_in_place(worker.model_runner, weights)
    return len(weights)


def test_a_dummy_started_engine_synced_in_place_serves_the_new_weights(
    jittered_model_dir: Path, digit_images: list, vllm_installed, monkeypatch
):
    import sys

    import cloudpickle

    from reasoner.generation.vllm import VLLMGenerator

    # collective_rpc with a function: pickled (by value: the engine's processes cannot import this test module).
    monkeypatch.setenv("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # As verl starts its rollout: dummy weights, device-side image normalisation off (overrides.grpo_overrides).
    synced = VLLMGenerator(
        jittered_model_dir, seed=0, show_progress=False, load_format="dummy", mm_device_do_normalize=False
    )
    try:
        batch = [
            GenerationRequest(user_message(question), [image], id=f"{i}-{j}")
            for i, image in enumerate(digit_images)
            for j, question in enumerate(QUESTIONS)
        ]
        spec = SamplingSpec(n=1, temperature=0, max_new_tokens=12)
        before = [c[0].token_ids for c in synced.generate(batch, spec)]
        model = load_model(jittered_model_dir)[0]
        assert model.config.get_text_config().tie_word_embeddings  # the case the head re-pack is for
        tensors = len(model.state_dict()) - 1  # the tied head has no tensor of its own in the checkpoint
        assert synced.llm.collective_rpc(_sync_from_folder, args=(str(jittered_model_dir),)) == [tensors]
        # What verl's server does after every sync (`clear_kv_cache`): nothing computed with the old weights is reused.
        synced.llm.reset_prefix_cache()
        synced.llm.reset_mm_cache()
        synced.llm.llm_engine.reset_encoder_cache()
        after = [c[0].token_ids for c in synced.generate(batch, spec)]
    finally:
        synced.close()
    expected = [c[0].token_ids for c in HFGenerator.from_pretrained(jittered_model_dir).generate(batch, spec)]
    assert len(set(expected)) > 8, "the jittered model should answer prompts differently"
    assert sum(a == b for a, b in zip(before, expected, strict=True)) < len(batch) // 4  # dummy weights: other text
    assert all(a[0] == b[0] for a, b in zip(after, expected, strict=True))
    identical = sum(a == b for a, b in zip(after, expected, strict=True))
    assert identical >= 30, f"{identical} of {len(batch)} greedy responses identical after the sync"
