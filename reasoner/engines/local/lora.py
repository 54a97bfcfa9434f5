"""LoRA on the local engine (`model.lora.rank > 0`): peft adapters on the language model's linear layers.

    attach(model, lora)             adapters injected in place (peft's `inject_adapter_in_model`); every other
                                    weight frozen: the vision tower, embeddings, norms and output head included
    adapters_disabled(model)        the start model's forward (GRPO's KL reference, without a second copy)
    sampling_mode(model)            eval mode (no adapter dropout) for passes that are not trained through
    merge_adapters(model)           W += (alpha / r) B A in place and the plain `nn.Linear` put back: the model
                                    saves as a full Hugging Face folder without any peft file

The loops keep the Hugging Face model object itself (with peft's layers inside it), so the forward paths, the
checkpoints (the whole state dict, adapters included) and the data-parallel gradient sums are those of full
fine-tuning; only which parameters require gradients differs.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import Any

import torch

from reasoner.config import LORA_ALL_LINEAR, LoraConfig
from reasoner.errors import ReasonerError

__all__ = ["target_names", "attach", "has_adapters", "adapters_disabled", "sampling_mode", "merge_adapters"]


def language_model(model: Any) -> torch.nn.Module:
    """The decoder stack of a Qwen-VL model (`model.model.language_model`): the only part LoRA adapts."""
    inner = getattr(model, "model", model)
    found = getattr(inner, "language_model", None)
    if found is None:
        raise ReasonerError(f"{type(model).__name__} has no `model.language_model`; LoRA needs a Qwen-VL model")
    return found


def target_names(model: Any, lora: LoraConfig) -> list[str]:
    """Full names of the linear layers to adapt: those of the language model whose last name `target_modules`
    lists (all of them for `all-linear`). A name that matches no layer stops the stage with the allowed names."""
    prefix = next(name for name, module in model.named_modules() if module is language_model(model))
    linear = {
        f"{prefix}.{name}": name.rsplit(".", 1)[-1]
        for name, module in language_model(model).named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    wanted = set(lora.target_modules)
    unknown = sorted(wanted - set(linear.values()) - {LORA_ALL_LINEAR})
    if unknown:
        raise ReasonerError(
            f"model.lora.target_modules: {', '.join(unknown)} names no linear layer of the language model; "
            f"allowed: {LORA_ALL_LINEAR}, {', '.join(sorted(set(linear.values())))}"
        )
    return sorted(full for full, last in linear.items() if LORA_ALL_LINEAR in wanted or last in wanted)


def attach(model: Any, lora: LoraConfig, seed: int = 0) -> Any:
    """Inject LoRA adapters (rank, alpha, dropout) into `model` in place; only they require gradients. Their
    initial A matrices are drawn from `seed` (B starts at zero, so the model computes as before)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import inject_adapter_in_model

    targets = target_names(model, lora)
    model.requires_grad_(False)
    # An exact-name regex: peft would match a bare list entry as a suffix too.
    pattern = "|".join(re.escape(name) for name in targets)
    config = PeftLoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=f"^(?:{pattern})$", bias="none"
    )
    with torch.random.fork_rng(devices=[]):  # the caller's random streams stay as they were
        torch.manual_seed(seed)
        inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(".lora_" in name)
    return model


def _tuner_layers(model: Any) -> list[tuple[str, Any]]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(name, module) for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]


def has_adapters(model: Any) -> bool:
    """Whether peft layers are inside `model` (never true for a model loaded from an exported folder)."""
    if "peft" not in sys.modules:  # no adapter can exist without peft imported
        return False
    return bool(_tuner_layers(model))


@contextlib.contextmanager
def adapters_disabled(model: Any) -> Iterator[Any]:
    """`model` computing as its base weights alone (the adapters skipped, not zeroed: exactly the start model,
    whose weights LoRA never changes)."""
    layers = [module for _, module in _tuner_layers(model)]
    for module in layers:
        module.enable_adapters(False)
    try:
        yield model
    finally:
        for module in layers:
            module.enable_adapters(True)  # marks the adapters trainable again (disabling froze them)


@contextlib.contextmanager
def sampling_mode(model: Any) -> Iterator[Any]:
    """`model` in eval mode for a pass that is not trained through (rollouts, old and reference log-probs): no
    dropout, so LoRA's `dropout` acts only where gradients flow. The models have no other dropout at work."""
    training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(training)


def merge_adapters(model: Any) -> Any:
    """Fold every adapter into its layer's weight and put the plain layer back, in place; returns `model`."""
    for name, module in _tuner_layers(model):
        module.merge()
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, module.get_base_layer())
    # peft records what it injected on the model; the exported config must not carry it.
    for attribute in ("peft_config", "_hf_peft_config_loaded"):
        if attribute in vars(model):
            delattr(model, attribute)
    return model
