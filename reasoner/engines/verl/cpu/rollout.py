"""An `hf` rollout backend for verl: GRPO rollouts generated with transformers `generate`, for CPU runs.

verl 0.9.1 generates GRPO rollouts through a server per rollout replica (vLLM, SGLang or TRT-LLM, all GPU-only).
This module supplies the same three pieces for transformers, registered through verl's own extension points:

- `HFRolloutServer`, the Ray actor verl's agent loop calls: `generate(prompt_ids, sampling_params, request_id,
  image_data, ...) -> TokenOutput` (token ids in, token ids out, as vLLM's server). Requests that arrive together
  are generated as one left-padded batch. Control calls (wake_up, sleep, kv-cache, abort) are no-ops: there is
  no device memory to release.
- `HFReplica`, the `RolloutReplica` whose `launch_servers` starts one server per replica
  (`RolloutReplicaRegistry.register("hf", ...)`).
- `HFServerAdapter`, the `BaseRollout` each training rank holds (verl's `("hf", "async")` rollout class): it
  receives the trainer's weights after every update. Every rank drains the weight generator (it runs FSDP
  collectives); the replica's first rank loads the full tensors into its server ("naive" sync).

A random tiny VLM samples vision placeholder tokens (`<|image_pad|>` ...), which break the rope index of the next
forward pass (vLLM would crash the same way); the server never samples them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

log = logging.getLogger(__name__)

ROLLOUT_NAME = "hf"
VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
BATCH_WAIT_S = 0.02
"""How long the server waits for concurrent requests to join a batch."""


def server_name(replica_rank: int) -> str:
    """The Ray actor name of a replica's server (the adapter finds its server by it)."""
    return f"reasoner_hf_server_{replica_rank}"


class HFRolloutServer:
    """Token-in, token-out generation with transformers, serving one rollout replica."""

    def __init__(self, config, model_config, replica_rank: int):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        self.config, self.replica_rank = config, replica_rank
        path = model_config.path  # a local folder on CPU runs (DictConfig or HFModelConfig alike)
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
        tokenizer = self.processor.tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.image_token_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
        self.suppressed = [tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS if t in tokenizer.get_vocab()]
        self.max_model_len = config.prompt_length + config.response_length
        self.global_steps: int | None = None
        self._pending: list[tuple[dict, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: list | None = None,
        video_data: list | None = None,
        **kwargs,
    ) -> TokenOutput:
        """Sample one response to `prompt_ids` (images in `image_data`, in prompt order)."""
        if video_data:
            raise ValueError("the hf rollout serves images only; this request carries video")
        request = {"prompt_ids": list(prompt_ids), "params": sampling_params, "images": image_data or []}
        future = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(BATCH_WAIT_S)
        while self._pending:
            batch, self._pending = self._pending, []
            groups: dict[tuple, list] = {}
            for request, future in batch:
                groups.setdefault(_sampling_key(request["params"]), []).append((request, future))
            for group in groups.values():
                try:
                    outputs = await asyncio.to_thread(self._generate_batch, [r for r, _ in group])
                except Exception as err:  # noqa: BLE001 - handed to every waiting caller, not swallowed
                    for _, future in group:
                        future.set_exception(err)
                    continue
                for (_, future), output in zip(group, outputs, strict=True):
                    future.set_result(output)

    @torch.no_grad()
    def _generate_batch(self, requests: list[dict]) -> list[TokenOutput]:
        from transformers import GenerationConfig

        params = requests[0]["params"]
        longest = max(len(r["prompt_ids"]) for r in requests)
        room = self.max_model_len - longest
        if room < 1:
            raise ValueError(f"prompt of {longest} tokens leaves no room within {self.max_model_len}")
        # As vLLM's server: the request's budget, else the configured response length, within the context.
        budget = params.get("max_tokens") or params.get("max_new_tokens") or self.config.response_length
        max_new = min(int(budget), room)
        inputs = self._encode(requests, longest)
        temperature = float(params.get("temperature", 1.0))
        sampling = {"do_sample": temperature > 0}
        if temperature > 0:
            top_k = int(params.get("top_k", -1))
            sampling.update(temperature=temperature, top_p=float(params.get("top_p", 1.0)), top_k=max(top_k, 0))
        config = GenerationConfig(
            max_new_tokens=max_new,
            eos_token_id=self.model.generation_config.eos_token_id,
            pad_token_id=self.pad_id,
            suppress_tokens=self.suppressed,
            repetition_penalty=float(params.get("repetition_penalty", 1.0)),
            return_dict_in_generate=True,
            output_logits=bool(params.get("logprobs")),
            **sampling,
        )
        output = self.model.generate(**inputs, generation_config=config)
        new_tokens = output.sequences[:, longest:]
        logprobs = None
        if params.get("logprobs"):
            logits = torch.stack(output.logits, dim=1).float() / (temperature if temperature > 0 else 1.0)
            logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
        return [self._token_output(new_tokens[i], logprobs, i) for i in range(len(requests))]

    def _encode(self, requests: list[dict], longest: int) -> dict[str, torch.Tensor]:
        """Left-padded ids, mask, mm token types, and the processor's pixel values for every image in order."""
        ids = torch.full((len(requests), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, request in enumerate(requests):
            n = len(request["prompt_ids"])
            ids[i, longest - n :] = torch.tensor(request["prompt_ids"])
            mask[i, longest - n :] = 1
        inputs = {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": (ids == self.image_token_id).long()}
        images = [image for request in requests for image in request["images"]]
        if images:
            pixels = self.processor.image_processor(images=images, return_tensors="pt")
            inputs.update(pixel_values=pixels["pixel_values"], image_grid_thw=pixels["image_grid_thw"])
        return inputs

    def _token_output(self, row: torch.Tensor, logprobs: torch.Tensor | None, i: int) -> TokenOutput:
        tokens = row.tolist()
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        end = next((k + 1 for k, token in enumerate(tokens) if token in eos), None)
        stop = "completed" if end is not None else None
        tokens = tokens[: end or len(tokens)]
        while tokens and end is None and tokens[-1] == self.pad_id:
            tokens.pop()
        lp = logprobs[i, : len(tokens)].tolist() if logprobs is not None else None
        return TokenOutput(
            token_ids=tokens, log_probs=lp, stop_reason=stop, extra_fields={"global_steps": self.global_steps}
        )

    def load_weights(self, named_tensors: list[tuple[str, torch.Tensor]], global_steps: int | None) -> int:
        """Copy the trainer's full tensors into the served model; every served tensor must be among them."""
        state = dict(named_tensors)
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        tied = {"lm_head.weight"} if self.model.config.get_text_config().tie_word_embeddings else set()
        if unexpected or set(missing) - tied:
            raise ValueError(
                f"hf rollout: trainer weights do not match the served model (missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]})"
            )
        self.global_steps = global_steps
        return len(state)

    def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    # verl's control calls: nothing to wake, free or abort on the CPU.
    async def wake_up(self, tags: list[str] | None = None) -> None: ...
    async def sleep(self) -> None: ...
    async def clear_kv_cache(self) -> None: ...
    async def release_kv_cache(self) -> None: ...
    async def resume_kv_cache(self) -> None: ...
    async def resume_generation(self) -> None: ...
    async def start_profile(self, **kwargs) -> None: ...
    async def stop_profile(self) -> None: ...
    async def wait_for_requests_to_drain(self) -> None: ...

    async def abort_all_requests(self, **kwargs) -> dict[str, Any]:
        return {"aborted_count": 0, "request_ids": []}


def _sampling_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in params.items()))


class HFReplica(RolloutReplica):
    """One transformers server per rollout replica (one process; the CPU has no tensor parallelism)."""

    async def launch_servers(self) -> None:
        if self.world_size != 1:
            raise ValueError(f"the hf rollout serves one rank per replica; rollout world size is {self.world_size}")
        server = (
            ray.remote(HFRolloutServer)
            .options(name=server_name(self.replica_rank), num_cpus=0, max_concurrency=self.max_concurrency)
            .remote(self.config, self.model_config, self.replica_rank)
        )
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"hf-replica-{self.replica_rank}"


class HFServerAdapter(BaseRollout):
    """A training rank's handle on its replica's server: receives the updated weights after each step."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ["RANK"])
        self.replica_rank = rank if replica_rank == -1 else replica_rank  # one rank per replica
        self._server = None

    async def resume(self, tags: list[str]) -> None: ...

    async def release(self) -> None: ...

    async def update_weights(self, weights, global_steps: int | None = None, wire_format: str = "named_tensors", **kw):
        if wire_format != "named_tensors":
            raise ValueError(f"the hf rollout takes wire_format='named_tensors', got {wire_format!r}")
        tensors = [(name, tensor.detach().to("cpu", copy=True)) for name, tensor in weights]
        if self._server is None:
            self._server = ray.get_actor(server_name(self.replica_rank))
        loaded = await self._server.load_weights.remote(tensors, global_steps)
        log.debug("hf rollout replica %d: loaded %d tensors", self.replica_rank, loaded)
