"""LoRA on the verl engine (`model.lora.rank > 0`): the translation to verl 0.9.1's keys, and the export's merge.

verl's FSDP engine wraps the model with peft itself (`lora_rank`, `lora_alpha`, `target_modules`,
`exclude_modules` of the model section, the same in `ppo_trainer` and `sft_trainer_engine`). Ours:

- `target_modules` as given (`all-linear` or leaf names), and `exclude_modules` the vision tower (a regex on
  module names): Qwen2.5-VL's vision blocks have gate/up/down projections too, and vLLM serves LoRA on the
  language model only (verl#3922). The local engine adapts exactly the same layers.
- GRPO: `model.lora.merge: true`, so each weight sync hands vLLM the merged weights (`merged_lora_context`) and
  the rollout needs no LoRA support of its own (the VLM case of verl#3922 never arises); verl's reference
  log-probs then come from the actor with its adapter disabled (`ref_in_actor`), as on the local engine.
- verl has no LoRA dropout key: `model.lora.dropout` must be 0 on this engine (`check`).
- Checkpoints leave out `hf_model`: under peft verl would write it with peft's parameter names (not a loadable
  model). The export merges the FSDP shards with verl's merger, which writes the base weights and the adapter
  apart (`lora_adapter/`, peft's format), and `merge_adapter_folder` folds the adapter in: a plain model folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from reasoner.config import LORA_ALL_LINEAR, LoraConfig, RunConfig
from reasoner.errors import ReasonerError

ADAPTER_DIR = "lora_adapter"
"""What verl's FSDP merger writes beside the base weights when the shards hold a LoRA adapter."""
VISION_TOWER = "(.*[.])?visual([.].*)?"
"""peft `exclude_modules` (a full-match regex on module names): Qwen-VL's vision tower and its mergers."""


def lora_overrides(model: str, lora: LoraConfig, *, merge_for_rollout: bool) -> list[tuple[str, Any]]:
    """verl keys of the model section `model` for LoRA (none when off: the lists stay as they were)."""
    if not lora.enabled:
        return []
    targets: Any = LORA_ALL_LINEAR if lora.target_modules == [LORA_ALL_LINEAR] else list(lora.target_modules)
    items: list[tuple[str, Any]] = [
        (f"{model}.lora_rank", lora.rank),
        (f"{model}.lora_alpha", lora.alpha),
        (f"{model}.target_modules", targets),
        (f"{model}.exclude_modules", VISION_TOWER),
    ]
    if merge_for_rollout:
        items.append((f"{model}.lora.merge", True))
    return items


def checkpoint_contents(contents: tuple[str, ...], lora: LoraConfig) -> list[str]:
    """What checkpoints hold: without `hf_model` under LoRA (verl would save it under peft's names)."""
    return [item for item in contents if not (lora.enabled and item == "hf_model")]


def check(run: RunConfig) -> list[str]:
    """LoRA settings verl 0.9.1 cannot honour."""
    if run.model.lora.enabled and run.model.lora.dropout != 0:
        return [
            f"model.lora.dropout: {run.model.lora.dropout} is not allowed on the verl engine (verl 0.9.1 has no LoRA "
            "dropout key); allowed: 0"
        ]
    return []


def merge_adapter_folder(folder: Path) -> bool:
    """Fold `folder/lora_adapter` (verl's merger output) into the model in `folder`, in place, and remove it:
    W += (lora_alpha / r) B A for every adapted layer. False when there is no adapter."""
    adapter = folder / ADAPTER_DIR
    if not adapter.is_dir():
        return False
    from safetensors.torch import load_file

    from reasoner.models.loading import load_model

    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    scale = float(config["lora_alpha"]) / float(config["r"])
    tensors = load_file(adapter / "adapter_model.safetensors")
    model, _ = load_model(folder, dtype=torch.float32)
    merged = 0
    with torch.no_grad():
        for key, a in tensors.items():
            if ".lora_A." not in key:
                continue
            name = key.split(".lora_A.")[0].removeprefix("base_model.model.")
            b = tensors[key.replace(".lora_A.", ".lora_B.")]
            try:
                layer = model.get_submodule(name)
            except AttributeError:
                raise ReasonerError(f"{adapter}: adapter layer {name} is not a layer of the model in {folder}") from None
            layer.weight += scale * (b.float() @ a.float())
            merged += 1
    if not merged:
        raise ReasonerError(f"{adapter}: no LoRA A/B weights in adapter_model.safetensors")
    for stale in [*folder.glob("*.safetensors"), *folder.glob("*.safetensors.index.json")]:
        stale.unlink()  # the base weights, rewritten merged below (their sharding may differ)
    model.save_pretrained(folder)
    shutil.rmtree(adapter)
    return True
