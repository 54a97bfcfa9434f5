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
  model). verl's FSDP merger would round every weight to bf16 and write the adapter apart (`lora_adapter/`), so
  the export does not use it: the stage's model is its start model (LoRA never changes those weights) with the
  checkpoint's adapters folded in, in fp32 (`export_lora`): a plain model folder, as the local engine exports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from reasoner.config import LORA_ALL_LINEAR, LoraConfig, RunConfig
from reasoner.errors import ReasonerError

META_FILE = "lora_train_meta.json"
"""Written by verl beside the FSDP shards of a LoRA checkpoint: r, lora_alpha, task_type."""
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


def adapter_tensors(shards: Path) -> dict[str, torch.Tensor]:
    """The LoRA A/B weights of an FSDP checkpoint (`model_world_size_W_rank_R.pt`, peft's names), whole and in the
    precision they were trained in (verl's own merger would round them to bf16)."""
    from torch.distributed.tensor import DTensor

    files = sorted(shards.glob("model_world_size_*_rank_*.pt"), key=lambda f: int(f.stem.rsplit("_", 1)[1]))
    pieces: dict[str, list[Any]] = {}
    for file in files:
        state = torch.load(file, map_location="cpu", weights_only=False)
        for key, value in state.items():
            if ".lora_A." in key or ".lora_B." in key:
                pieces.setdefault(key, []).append(value)
    tensors = {}
    for key, parts in pieces.items():
        if not isinstance(parts[0], DTensor):
            tensors[key] = parts[0]
            continue
        (placement,) = parts[0].placements  # FSDP2 on one data-parallel mesh dimension
        local = [part._local_tensor for part in parts]
        tensors[key] = torch.cat(local, dim=placement.dim) if placement.is_shard() else local[0]
    if not tensors:
        raise ReasonerError(f"{shards}: a LoRA checkpoint (lora_train_meta.json) without LoRA weights in its shards")
    return tensors


def export_lora(shards: Path, init_model: Path, target: Path) -> None:
    """A LoRA stage's model: its start model (LoRA never changes those weights) with the checkpoint's adapters
    folded in, W + (lora_alpha / r) B A in fp32, saved with the start model's processor to `target`."""
    from reasoner.models.loading import load_model

    meta = json.loads((shards / META_FILE).read_text(encoding="utf-8"))
    scale = float(meta["lora_alpha"]) / float(meta["r"])
    tensors = adapter_tensors(shards)
    model, processor = load_model(init_model, dtype=torch.float32)
    with torch.no_grad():
        for key, a in tensors.items():
            if ".lora_A." not in key:
                continue
            name = key.split(".lora_A.")[0].removeprefix("base_model.model.")
            b = tensors[key.replace(".lora_A.", ".lora_B.")]
            try:
                layer = model.get_submodule(name)
            except AttributeError:
                raise ReasonerError(f"{shards}: adapted layer {name} is not a layer of {init_model}") from None
            layer.weight += scale * (b.float() @ a.float())
    model.save_pretrained(target)
    processor.save_pretrained(target)
