"""The vision-freeze patch on verl's own FSDPEngine._build_module, building the tiny Qwen2.5-VL on CPU.

The engine object is made without verl's constructor (which sets up a CUDA device mesh) and given the attributes
`_build_module` reads; the model build itself is verl's. verl's monkey patch step imports trl's value-head model
whenever trl is installed, which trl 1.16 (our `bench` extra) no longer has: that step is told trl is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reasoner.engines.verl import freeze
from reasoner.models.tiny import ensure_tiny_model


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", size="demo", seed=0)


@pytest.fixture(scope="module")
def model_config(tiny_dir):
    from verl.workers.config import HFModelConfig

    return HFModelConfig(
        path=str(tiny_dir), override_config={"attn_implementation": "sdpa"}, use_remove_padding=False
    )


def build_with_verl(model_config, *, forward_only: bool, monkeypatch):
    import verl.models.transformers.monkey_patch as verl_monkey_patch
    from verl.workers.config import FSDPEngineConfig
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

    monkeypatch.setattr(verl_monkey_patch, "is_trl_available", lambda: False)
    engine = object.__new__(FSDPEngine)
    engine.model_config = model_config
    engine.engine_config = FSDPEngineConfig(
        strategy="fsdp2", forward_only=forward_only, use_torch_compile=False
    )
    engine.device_mesh, engine.use_remove_padding, engine.ulysses_sequence_parallel_size = None, False, 1
    return engine._build_module()


def trainable(module) -> tuple[set[str], set[str]]:
    vision = set(freeze.vision_parameter_names(module))
    grads = {name for name, p in module.named_parameters() if p.requires_grad}
    return vision & grads, grads - vision


def test_installed_once_on_verls_engine():
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

    assert FSDPEngine._build_module._reasoner_freeze is True
    assert (
        freeze.install() is False
    )  # importing again (every verl process imports it) does not stack wrappers


def test_training_engine_freezes_the_vision_tower_when_asked(model_config, monkeypatch):
    monkeypatch.setenv(freeze.ENV_FLAG, "1")
    vision_trainable, language_trainable = trainable(
        build_with_verl(model_config, forward_only=False, monkeypatch=monkeypatch)
    )
    assert vision_trainable == set() and len(language_trainable) > 10


@pytest.mark.parametrize(("flag", "forward_only"), [("0", False), ("1", True)])
def test_vision_stays_trainable_unless_asked_or_frozen_anyway(model_config, monkeypatch, flag, forward_only):
    monkeypatch.setenv(freeze.ENV_FLAG, flag)
    module = build_with_verl(model_config, forward_only=forward_only, monkeypatch=monkeypatch)
    vision_trainable, _ = trainable(module)
    assert vision_trainable == set(freeze.vision_parameter_names(module)) and len(vision_trainable) > 10


def test_a_model_without_vision_tower_is_an_error():
    import torch

    with pytest.raises(ValueError, match="no vision tower"):
        freeze.freeze_vision_tower(torch.nn.Linear(2, 2))
