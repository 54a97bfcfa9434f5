"""verl's real trainers on the CPU: a device platform, an `hf` rollout, and two small patches.

Loaded only when a run asks for it (`cluster.device: cpu`): the launch environment then sets `VERL_PLATFORM=cpu`
and adds this module to `VERL_USE_EXTERNAL_MODULES`, so verl imports it in every process it starts (the driver,
the TaskRunner, each worker and rollout server). Importing it:

- registers `CPUPlatform` with verl's `PlatformRegistry` (chosen by `VERL_PLATFORM=cpu`, never auto-detected);
- registers verl's own FSDP engines for the `cpu` device in `EngineRegistry` (verl registers them for cuda/npu);
- registers the `hf` rollout (`RolloutReplicaRegistry` and the `("hf", "async")` rollout class), and verl's own
  `vllm` rollout with the CPU weight sync (`vllm_rollout.py`; imported only when a stage asks for it);
- applies the patches in `patches.py` (process-group backend string, unpinned CPU offload);
- installs the hooks every verl run gets (vision freeze, mrope positions), which must come after the platform.

It is for debugging a schedule on a laptop and for running verl in CI; it is not a fast trainer.
"""

from __future__ import annotations

from reasoner.engines.verl.cpu import patches
from reasoner.engines.verl.cpu.platform import PLATFORM_NAME, CPUPlatform
from reasoner.engines.verl.cpu.rollout import ROLLOUT_NAME, HFReplica, HFServerAdapter

__all__ = ["PLATFORM_NAME", "ROLLOUT_NAME", "CPUPlatform", "HFReplica", "HFServerAdapter", "install"]


def install() -> None:
    """Register the CPU platform's engines and the hf rollout with verl, and apply the CPU patches (idempotent)."""
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead
    from verl.workers.rollout import base as rollout_base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    patches.check_versions()
    engines = EngineRegistry._engines["language_model"]
    for backend in ("fsdp", "fsdp2"):
        if PLATFORM_NAME not in engines.get(backend, {}):
            EngineRegistry.register(model_type="language_model", backend=backend, device=PLATFORM_NAME)(
                FSDPEngineWithLMHead
            )
    RolloutReplicaRegistry.register(ROLLOUT_NAME, lambda: HFReplica)
    RolloutReplicaRegistry.register("vllm", _load_cpu_vllm_replica)
    rollout_base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = f"{HFServerAdapter.__module__}.HFServerAdapter"
    patches.dedupe_process_group_backend()
    patches.unpin_cpu_offload()
    import reasoner.engines.verl.freeze  # noqa: F401  (each installs itself; they import verl's engines)
    import reasoner.engines.verl.mrope  # noqa: F401


def _load_cpu_vllm_replica():
    from reasoner.engines.verl.cpu.vllm_rollout import CPUvLLMReplica

    return CPUvLLMReplica


install()
