"""The vision-freeze patch on verl's own FSDPEngine._build_module, building the tiny Qwen2.5-VL (and Qwen3-VL) on CPU.

The engine object is made without verl's constructor (which sets up a CUDA device mesh) and given the attributes
`_build_module` reads; the model build itself is verl's. verl's monkey patch step imports trl's value-head model
whenever trl is installed, which trl 1.16 (our `bench` extra) no longer has: that step is told trl is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reasoner.engines.verl import freeze
from reasoner.models.tiny import ensure_tiny_model

pytestmark = pytest.mark.slow  # verl's FSDP engine on the tiny model

# verl's `_build_module` monkey-patches transformers' Qwen2.5-VL classes for the whole process (its forward then
# rejects `mm_token_type_ids`), so every build runs in a child process and reports what it found as JSON.
BUILD = r"""
import json, os, sys
import verl.models.transformers.monkey_patch as verl_monkey_patch
verl_monkey_patch.is_trl_available = lambda: False  # trl 1.16 (the bench extra) lacks what verl imports
from reasoner.engines.verl import freeze
from verl.workers.config import FSDPEngineConfig, HFModelConfig
from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

path, forward_only = sys.argv[1], sys.argv[2] == "1"
engine = object.__new__(FSDPEngine)
engine.model_config = HFModelConfig(path=path, override_config={"attn_implementation": "sdpa"}, use_remove_padding=False)
engine.engine_config = FSDPEngineConfig(strategy="fsdp2", forward_only=forward_only, use_torch_compile=False)
engine.device_mesh, engine.use_remove_padding, engine.ulysses_sequence_parallel_size = None, False, 1
module = engine._build_module()
vision = set(freeze.vision_parameter_names(module))
grads = {name for name, p in module.named_parameters() if p.requires_grad}
print(json.dumps({
    "vision": len(vision), "vision_trainable": len(vision & grads), "language_trainable": len(grads - vision),
    "deepstack": len([name for name in vision if "deepstack" in name]), "model_type": module.config.model_type,
    "installed": FSDPEngine._build_module._reasoner_freeze is True, "installed_again": freeze.install(),
}))
"""


def build_with_verl(tiny_model_dir: Path, *, forward_only: bool, flag: str) -> dict:
    env = {**os.environ, freeze.ENV_FLAG: flag}
    args = [sys.executable, "-c", BUILD, str(tiny_model_dir), "1" if forward_only else "0"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_training_engine_freezes_the_vision_tower_when_asked(tiny_model_dir):
    found = build_with_verl(tiny_model_dir, forward_only=False, flag="1")
    assert found["installed"] and found["installed_again"] is False  # installed once, never stacked
    assert found["vision"] > 10 and found["vision_trainable"] == 0 and found["language_trainable"] > 10


def test_qwen3_vl_vision_tower_freezes_with_its_deepstack_mergers(tmp_path_factory):
    folder = ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", family="qwen3-vl", size="demo", seed=0)
    found = build_with_verl(folder, forward_only=False, flag="1")
    assert found["model_type"] == "qwen3_vl" and found["deepstack"] > 0
    assert found["vision"] > 10 and found["vision_trainable"] == 0 and found["language_trainable"] > 10


@pytest.mark.parametrize(("flag", "forward_only"), [("0", False), ("1", True)])
def test_vision_stays_trainable_unless_asked_or_frozen_anyway(tiny_model_dir, flag, forward_only):
    found = build_with_verl(tiny_model_dir, forward_only=forward_only, flag=flag)
    assert found["vision_trainable"] == found["vision"] > 10


def test_a_model_without_vision_tower_is_an_error():
    import torch

    with pytest.raises(ValueError, match="no vision tower"):
        freeze.freeze_vision_tower(torch.nn.Linear(2, 2))
