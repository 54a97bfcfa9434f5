"""The `local` engine: SFT and GRPO in one process on CPU or one GPU (plain torch loops, verl's GRPO math)."""

from reasoner.engines.local.engine import LocalEngine

__all__ = ["LocalEngine"]
