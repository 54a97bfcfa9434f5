"""The two patches verl 0.9.1 needs to train on the CPU, each one small named function, version-asserted.

Both are installed only by `reasoner.engines.verl.cpu` (CPU runs); GPU runs never load them.
`tests/engines/test_verl_cpu.py` fails loudly if a private name they rely on moves.
"""

from __future__ import annotations

import functools

import torch

PATCHED_VERL_VERSION = "0.9.1"
PATCHED_TORCH_VERSION = "2.13"


def check_versions() -> None:
    """Refuse to patch versions these patches were not written for."""
    import verl

    if verl.__version__ != PATCHED_VERL_VERSION or not torch.__version__.startswith(PATCHED_TORCH_VERSION):
        raise RuntimeError(
            f"reasoner.engines.verl.cpu patches verl {PATCHED_VERL_VERSION} + torch {PATCHED_TORCH_VERSION}.*, "
            f"found verl {verl.__version__} + torch {torch.__version__}; re-check the patches in {__name__}"
        )


def dedupe_process_group_backend() -> None:
    """Collapse verl's backend string "cpu:gloo,cpu:gloo" to "cpu:gloo" in `torch.distributed.init_process_group`.

    Why: verl builds its process-group backend as f"cpu:gloo,{device}:{collective}", which on the CPU platform
    names the cpu device twice, and torch rejects a duplicate device type. verl calls init_process_group from
    several places (Ray workers, torchrun SFT), so the one safe point is torch's entry itself.
    """
    original = torch.distributed.init_process_group
    if getattr(original, "_reasoner_dedupe", False):
        return

    @functools.wraps(original)
    def init_process_group(backend=None, *args, **kwargs):  # backend is torch's first parameter
        if isinstance(backend, str) and "," in backend:
            backend = ",".join(dict.fromkeys(part.strip() for part in backend.split(",")))
        return original(backend, *args, **kwargs)

    init_process_group._reasoner_dedupe = True
    torch.distributed.init_process_group = init_process_group


def unpin_cpu_offload() -> None:
    """Make verl's FSDP2 engine build `CPUOffloadPolicy(pin_memory=False)` (it hard-codes True).

    Why: the reference model (forward only) always gets a CPU offload policy with pinned memory, and pinning host
    memory needs a CUDA device. On the CPU, offloading is a no-op copy anyway; unpinned it works.
    """
    from torch.distributed.fsdp import CPUOffloadPolicy
    from verl.workers.engine.fsdp import transformer_impl

    if transformer_impl.CPUOffloadPolicy is not CPUOffloadPolicy:
        return  # already patched (or moved: the test of this patch catches that)

    class UnpinnedCPUOffloadPolicy(CPUOffloadPolicy):
        def __init__(self, pin_memory: bool = False):
            super().__init__(pin_memory=False)

    transformer_impl.CPUOffloadPolicy = UnpinnedCPUOffloadPolicy
