"""Freeze the vision tower inside verl's FSDP training engine: the one patch we apply to verl, for 0.9.1 only.

verl 0.9.1 declares `actor.freeze_vision_tower` but no code reads it, and its SFT trainer has no such option.
This module wraps `FSDPEngine._build_module` (the model is built, before FSDP wrapping and before the optimizer
collects parameters) so that a trainable engine sets `requires_grad=False` on the vision tower and projector
(`visual.*`, which holds Qwen2.5-VL's patch merger and Qwen3-VL's merger and deepstack mergers) when
`REASONER_FREEZE_VISION=1`. Forward-only engines
(reference, old log-probs) are left alone. FSDP2 shards frozen and trainable parameters alike.

verl imports this module in every process it starts, because the launch environment sets
`VERL_USE_EXTERNAL_MODULES=reasoner.engines.verl.freeze` (see `overrides.launch_env`).
"""

from __future__ import annotations

import functools
import logging
import os

log = logging.getLogger(__name__)

PATCHED_VERL_VERSION = "0.9.1"
ENV_FLAG = "REASONER_FREEZE_VISION"
_VISION_PREFIXES = ("visual.", "model.visual.")


def vision_parameter_names(module) -> list[str]:
    """Names of the vision tower's (and projectors') parameters of a Qwen2.5-VL or Qwen3-VL model."""
    return [name for name, _ in module.named_parameters() if name.startswith(_VISION_PREFIXES)]


def freeze_vision_tower(module) -> int:
    """Set requires_grad=False on every vision parameter; returns how many tensors were frozen."""
    names = set(vision_parameter_names(module))
    if not names:
        raise ValueError(f"{type(module).__name__} has no vision tower parameters (visual.*) to freeze")
    for name, parameter in module.named_parameters():
        if name in names:
            parameter.requires_grad_(False)
    return len(names)


def freeze_requested() -> bool:
    """Whether this process was launched for a stage with `freeze_vision: true`."""
    return os.environ.get(ENV_FLAG, "0") == "1"


def install() -> bool:
    """Wrap verl's FSDPEngine._build_module once; returns False if it was already wrapped."""
    import verl
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

    if verl.__version__ != PATCHED_VERL_VERSION:
        raise RuntimeError(
            f"reasoner.engines.verl.freeze patches verl {PATCHED_VERL_VERSION}, found "
            f"{verl.__version__}; check that FSDPEngine._build_module still builds the bare model"
        )
    original = FSDPEngine._build_module
    if getattr(original, "_reasoner_freeze", False):
        return False

    @functools.wraps(original)
    def build_module(self):
        module = original(self)
        if freeze_requested() and not self.engine_config.forward_only:
            frozen = freeze_vision_tower(module)
            log.warning("froze %d vision tower parameter tensors (%s=1)", frozen, ENV_FLAG)
        return module

    build_module._reasoner_freeze = True
    FSDPEngine._build_module = build_module
    return True


install()
