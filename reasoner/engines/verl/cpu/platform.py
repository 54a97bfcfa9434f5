"""verl's device platform for CPU: `VERL_PLATFORM=cpu` makes verl's trainers place tensors and process groups on
the CPU (gloo) instead of CUDA (NCCL).

verl 0.9.1 reaches the device through `verl.plugin.platform.get_platform()` and, for calls shaped like `torch.cuda`
(`empty_cache`, `mem_get_info`, RNG state, memory statistics), through `platform.device_module`. `torch.cpu` has
only part of that surface, so `CPUDeviceModule` serves the rest: memory calls answer from the process's view of
host memory, RNG state is torch's CPU generator, cache and IPC calls do nothing (there is no device cache).
Ray still schedules verl's workers on a "GPU" resource: a CPU cluster declares fake GPUs (one per training rank)
so verl's placement groups are unchanged (`launch.ray_init_kwargs`).
"""

from __future__ import annotations

import contextlib
import os
from types import ModuleType

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

PLATFORM_NAME = "cpu"


class CPUDeviceModule:
    """The `torch.cuda`-shaped calls verl makes, answered for the CPU (everything else from `torch.cpu`)."""

    def __getattr__(self, name: str):
        return getattr(torch.cpu, name)

    @staticmethod
    def get_device_name(device=None) -> str:
        return "CPU"

    @staticmethod
    def empty_cache() -> None:
        """No device cache to free."""

    @staticmethod
    def ipc_collect() -> None:
        """No IPC handles to collect."""

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device=None) -> None:
        """Host memory has no per-process cap to set."""

    @staticmethod
    def mem_get_info(device=None) -> tuple[int, int]:
        """(free, total) bytes of host memory, as `torch.cuda.mem_get_info` reports a GPU's."""
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        free = os.sysconf("SC_AVPHYS_PAGES") * page_size
        return free, pages * page_size

    @staticmethod
    def memory_allocated(device=None) -> int:
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    @staticmethod
    def get_rng_state(device=None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device=None) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed


@PlatformRegistry.register(platform=PLATFORM_NAME)
class CPUPlatform(PlatformBase):
    """verl's platform interface on the CPU: gloo collectives, no device cache, no profiler, no IPC."""

    _device_module = CPUDeviceModule()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return self._device_module  # type: ignore[return-value]

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Only chosen explicitly (VERL_PLATFORM=cpu): auto-detection must keep picking GPUs on GPU nodes.
        return False

    def current_device(self) -> str:
        # verl moves tensors with `.to(get_device_id())`: an int would mean cuda:N, "cpu" is what torch.cpu answers.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        """One CPU device: nothing to select."""

    def synchronize(self, device_index: int | None = None) -> None:
        """CPU work is synchronous."""

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        """The CPU allocator has no expandable segments."""

    def empty_cache(self) -> None:
        """No device cache to free."""

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray sets it for actors holding (fake) GPUs; nothing on the CPU reads it.
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        """No device profiler."""

    def profiler_stop(self) -> None:
        """No device profiler."""

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self):
        return None
