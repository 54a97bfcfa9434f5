"""A LoRA schedule (SFT -> GRPO -> SFT) through verl's real trainers on the CPU: verl's FSDP engine wraps the tiny
model with peft from our keys, GRPO's vLLM rollout (vLLM's CPU build) is served the merged weights at every step,
and each stage exports a plain merged model (the start model + the checkpoint's adapters, fp32) that transformers
loads without peft. About 3.5 minutes on a 2-core machine (verl's start-up per stage dominates)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

SCHEDULE = """
name: lora-verl
engine: verl
model: {tiny_size: demo, lora: {rank: 4, alpha: 8}}
datasets:
  train: {source: synthetic, tasks: [bars], n: 48, seed: 3}
  heldout: {source: synthetic, n: 4, seed: 4, split: eval}
eval: {datasets: [heldout], max_new_tokens: 8}
cluster: {device: cpu, gpus_per_node: 1, rollout_tensor_parallel: 1, micro_batch_size_per_gpu: 4,
          log_prob_micro_batch_size_per_gpu: 4, dynamic_batch: false, gradient_checkpointing: false,
          ref_param_offload: false, max_prompt_tokens: 512, max_sft_tokens: 512}
stages:
  - {kind: sft, data: {dataset: train}, steps: 2, batch_size: 4, lr: 0.01}
  - {kind: grpo, data: {dataset: train}, steps: 1, lr: 0.01, grpo: {prompts_per_step: 4, sampling: {n: 4, max_new_tokens: 8}}}
  - {kind: sft, data: {dataset: train}, steps: 2, batch_size: 4, lr: 0.01}
"""

LOAD_WITHOUT_PEFT = """
import sys
from transformers import AutoModelForImageTextToText
for folder in sys.argv[1:]:
    AutoModelForImageTextToText.from_pretrained(folder)
assert "peft" not in sys.modules
"""


def test_verl_lora_schedule_on_the_cpu(vllm_installed, rollout_check, tmp_path):
    config = tmp_path / "lora-verl.yaml"
    config.write_text(SCHEDULE)
    # In a process of its own, as users run it: a verl run joins Ray and selects verl's CPU platform in its process
    # (`launch.join_ray`), which would leak into the tests after this one.
    command = [sys.executable, "-m", "reasoner.cli", "run", str(config), f"output_dir={tmp_path}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    stages = tmp_path / "lora-verl" / "stages"
    manifests = {p.parent.name: json.loads(p.read_text()) for p in sorted(stages.glob("*/manifest.json"))}
    assert list(manifests) == ["00_base", "01_sft", "02_grpo", "03_sft"]
    assert all(manifests[name]["lora"]["rank"] == 4 for name in ("01_sft", "02_grpo", "03_sft"))
    config_yaml = (stages / "02_grpo" / "logs" / "verl_config.yaml").read_text()
    assert "lora_rank: 4" in config_yaml
    rollout_check(stages / "02_grpo" / "logs")  # vLLM served the merged weights: the trainer's probabilities
    models = [stages / name / "model" for name in ("01_sft", "02_grpo", "03_sft")]
    assert not any((model / "adapter_config.json").exists() or (model / "lora_adapter").exists() for model in models)
    done = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_PEFT, *map(str, models)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    base, sft1 = (load_file(stages / name / "model" / "model.safetensors") for name in ("00_base", "01_sft"))
    changed = [name for name in base if not torch.equal(base[name], sft1[name])]
    # Only the adapted projections moved, in fp32: the vision tower and embeddings are bit for bit the base's.
    assert changed and all(".layers." in name and name.endswith("_proj.weight") for name in changed)
