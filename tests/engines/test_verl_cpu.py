"""The pieces that run verl on the CPU, each checked against verl's and torch's real code (no Ray here).

The private names the patches rely on are asserted first, so a verl or torch upgrade that moves one fails here,
loudly, instead of inside a training job.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
import torch

import reasoner.engines.verl.cpu as verl_cpu
from reasoner.engines.verl import mrope
from reasoner.engines.verl.cpu import patches
from reasoner.engines.verl.cpu.rollout import HFRolloutServer


def test_private_names_the_patches_rely_on_are_still_there():
    from torch.distributed.fsdp import CPUOffloadPolicy
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp import transformer_impl
    from verl.workers.rollout import base as rollout_base
    from verl.workers.utils import padding

    patches.check_versions()
    assert issubclass(transformer_impl.CPUOffloadPolicy, CPUOffloadPolicy)  # patched: a subclass
    assert "pin_memory=True" in open(transformer_impl.__file__).read()  # the reason for the patch still holds
    assert ("vllm", "async") in rollout_base._ROLLOUT_REGISTRY
    assert "fsdp2" in EngineRegistry._engines["language_model"]
    assert getattr(padding.left_right_2_no_padding, "_reasoner_mrope", False)
    from verl.workers import engine_workers
    from verl.workers.engine import base

    for module in (engine_workers, base):  # bound by name before mrope was loaded: rebound
        assert getattr(module.maybe_fix_3d_position_ids, "_reasoner_mrope", False)
    assert getattr(torch.distributed.init_process_group, "_reasoner_dedupe", False)


def test_cpu_module_registers_platform_engine_and_rollout():
    from verl.plugin.platform import PlatformRegistry
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.rollout.base import get_rollout_class
    from verl.workers.rollout.replica import get_rollout_replica_class

    platform = PlatformRegistry.get("cpu")()
    assert platform.device_name == "cpu" and platform.communication_backend_name() == "gloo"
    assert not platform.is_platform_available(use_smi_check=True)  # never auto-detected on a GPU node
    assert torch.ones(2).to(platform.current_device()).device.type == "cpu"
    module = platform.device_module
    free, total = module.mem_get_info()
    assert 0 < free <= total and module.get_device_name() == "CPU"
    state = module.get_rng_state()
    first = torch.rand(3)
    module.set_rng_state(state)
    assert torch.equal(first, torch.rand(3))
    assert EngineRegistry._engines["language_model"]["fsdp2"]["cpu"].__name__ == "FSDPEngineWithLMHead"
    assert get_rollout_replica_class("hf") is verl_cpu.HFReplica
    assert get_rollout_class("hf", "async") is verl_cpu.HFServerAdapter
    verl_cpu.install()  # idempotent: a second import path (Ray worker + hook) must not stack patches


def test_cpu_vllm_rollout_is_verls_own_with_the_reload_sync(vllm_installed):
    """On CPU runs the `vllm` replica is verl's, with one change: the worker extension its server names. The names
    that change relies on are asserted here, so a verl or vLLM upgrade that moves one fails loudly."""
    from verl.workers.rollout.replica import get_rollout_replica_class
    from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension
    from verl.workers.rollout.vllm_rollout.vllm_async_server import vLLMHttpServer, vLLMReplica
    from vllm.v1.worker.cpu_model_runner import CPUModelRunner

    from reasoner.engines.verl.cpu import vllm_rollout

    vllm_rollout.check_versions()
    replica = get_rollout_replica_class("vllm")
    assert replica is vllm_rollout.CPUvLLMReplica and issubclass(replica, vLLMReplica)
    assert issubclass(vllm_rollout.CPUWorkerExtension, vLLMColocateWorkerExtension)
    assert "_get_worker_extension_cls" in vars(vLLMHttpServer)  # the hook we override
    name = vllm_rollout.CPUvLLMHttpServer._get_worker_extension_cls(None)
    assert name == "reasoner.engines.verl.cpu.vllm_rollout.CPUWorkerExtension"
    assert callable(CPUModelRunner.reload_weights)  # vLLM's in-place reload, inherited from its GPU runner
    assert "update_weights_from_ipc" in vars(vLLMColocateWorkerExtension)  # what verl's trainer calls


@pytest.mark.parametrize("positional", [False, True], ids=["keyword", "positional"])
def test_duplicate_backend_string_is_accepted_once_deduplicated(tmp_path, positional):
    """The patched entry takes the backend by keyword (verl) or as torch's first argument (everyone else)."""
    import torch.distributed as dist

    backend = "cpu:gloo,cpu:gloo"
    where = {"init_method": f"file://{tmp_path}/pg", "rank": 0, "world_size": 1}
    if positional:
        dist.init_process_group(backend, **where)
    else:
        dist.init_process_group(backend=backend, **where)
    try:
        tensor = torch.ones(2)
        dist.all_reduce(tensor)
        assert tensor.tolist() == [1.0, 1.0]
    finally:
        dist.destroy_process_group()


def test_equal_length_mrope_batch_splits_after_the_fix():
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils import padding

    def batch(lengths):
        size, width = len(lengths), max(lengths)
        mask = torch.zeros(size, width, dtype=torch.long)
        for i, n in enumerate(lengths):
            mask[i, width - n :] = 1
        positions = torch.arange(width).expand(size, 4, width).clone()
        return TensorDict(
            {"input_ids": torch.arange(size * width).view(size, width), "attention_mask": mask,
             "response_mask": torch.ones(size, 2), "position_ids": positions},
            batch_size=[size],
        )  # fmt: skip

    unpatched = padding.left_right_2_no_padding.__wrapped__(batch([5, 5]))
    tu.maybe_fix_3d_position_ids.__wrapped__(unpatched)
    with pytest.raises(RuntimeError):  # verl's own bug, reproduced: the split fails
        tu.index_select_tensor_dict(unpatched, [1])
    for lengths in ([5, 5], [5, 3]):
        fixed = padding.left_right_2_no_padding(batch(lengths))
        tu.maybe_fix_3d_position_ids(fixed)
        row = tu.index_select_tensor_dict(fixed, [1])["position_ids"]
        assert row.values().shape == (4, lengths[1])
        assert row.values()[0].tolist() == list(range(max(lengths) - lengths[1], max(lengths)))
    assert mrope.install() is False  # installed once


def test_equal_length_mrope_batch_from_the_transfer_queue_splits_after_the_fix():
    """The transfer queue carrying a batch to the training workers packs each sample's (4, seq) positions again;
    with equal lengths verl then failed in `train_mini_batch` (the shortened verl demo on a bar-chart-only set:
    `split_with_sizes expects split_sizes to sum exactly to 117 (input tensor's size at dimension 1), but got
    split_sizes=[4, 4, 4, 4, 4, 4, 4, 4]`)."""
    from tensordict import TensorDict
    from transfer_queue.storage.managers.simple_storage_manager import AsyncSimpleStorageManager
    from verl.utils import tensordict_utils as tu

    def batch(lengths):
        samples = [torch.arange(4 * n).view(4, n) + 1000 * i for i, n in enumerate(lengths)]
        packed = AsyncSimpleStorageManager._pack_field_values(samples)  # the queue's own packing
        return samples, TensorDict({"position_ids": packed}, batch_size=[len(lengths)])

    samples, unpatched = batch([117] * 8)
    tu.maybe_fix_3d_position_ids.__wrapped__(unpatched)
    with pytest.raises(RuntimeError, match=r"sum exactly to 117 .*\[4, 4, 4, 4, 4, 4, 4, 4\]"):
        tu.index_select_tensor_dict(unpatched, [0, 1])  # verl's failure, reproduced
    for lengths in ([117] * 8, [5, 3, 7]):
        samples, data = batch(lengths)
        tu.maybe_fix_3d_position_ids(data)
        picked = tu.index_select_tensor_dict(data, [2, 0])["position_ids"].unbind()
        assert [p.tolist() for p in picked] == [samples[2].tolist(), samples[0].tolist()]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    config = SimpleNamespace(prompt_length=256, response_length=8)
    return HFRolloutServer(config, SimpleNamespace(path=str(tiny_model_dir)), replica_rank=0)


def _prompt(server, image) -> list[int]:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
    text = server.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return server.processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()


def test_hf_rollout_server_batches_concurrent_image_requests(server, digit_images):
    params = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True, "max_tokens": 8}
    prompts = [_prompt(server, image) for image in digit_images[:3]]

    async def ask():
        return await asyncio.gather(*[
            server.generate(prompt, params, f"r{i}", image_data=[image])
            for i, (prompt, image) in enumerate(zip(prompts, digit_images[:3], strict=True))
        ])  # fmt: skip

    outputs = asyncio.run(ask())
    vision = set(server.suppressed)
    for output in outputs:
        assert 1 <= len(output.token_ids) <= 8 and len(output.log_probs) == len(output.token_ids)
        assert not vision & set(output.token_ids)  # never samples a placeholder that breaks the next forward
        assert all(lp <= 0 for lp in output.log_probs)


def test_hf_rollout_server_logprobs_match_a_forward_pass(server, digit_images):
    prompt = _prompt(server, digit_images[0])
    output = asyncio.run(
        server.generate(prompt, {"temperature": 1.0, "logprobs": True, "max_tokens": 6}, "r", [digit_images[0]])
    )
    ids = torch.tensor([prompt + output.token_ids])
    pixels = server.processor.image_processor(images=[digit_images[0]], return_tensors="pt")
    with torch.no_grad():
        logits = server.model(
            input_ids=ids, pixel_values=pixels["pixel_values"], image_grid_thw=pixels["image_grid_thw"],
            mm_token_type_ids=(ids == server.image_token_id).long(),
        ).logits[0, len(prompt) - 1 : -1]  # fmt: skip
    expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(output.token_ids)[:, None]).squeeze(-1)
    assert torch.allclose(expected, torch.tensor(output.log_probs), atol=1e-4)


def test_hf_rollout_server_takes_the_trainers_weights_and_rejects_strangers(server):
    before = {name: tensor.clone() for name, tensor in server.model.state_dict().items()}
    update = [(name, torch.zeros_like(tensor)) for name, tensor in before.items()]
    assert server.load_weights(update, global_steps=3) == len(update)
    assert all(t.abs().sum() == 0 for t in server.model.state_dict().values()) and server.global_steps == 3
    server.load_weights(list(before.items()), global_steps=4)  # restore for the other tests
    with pytest.raises(ValueError, match="do not match the served model"):
        server.load_weights([("not.a.weight", torch.zeros(1))], global_steps=5)


def test_a_failed_verl_job_is_reported_by_its_innermost_cause():
    import ray.exceptions

    from reasoner.engines.verl.launch import failure_cause

    # The shape Ray hands back when a reward function raises inside verl's reward loop, two actors deep.
    reward_error = ValueError("rewards.score: answer_type 'matrix' is not one of ('text', 'integer')")
    in_task_runner = ray.exceptions.RayTaskError("TaskRunnerV1.run", "Traceback ...", reward_error)
    in_driver = ray.exceptions.RayTaskError("_SFTRunner.run", "Traceback ...", in_task_runner.as_instanceof_cause())
    assert failure_cause(in_driver) == "ValueError: rewards.score: answer_type 'matrix' is not one of ('text', 'integer')"
    assert failure_cause(RuntimeError("Total available GPUs 0\nis less than 1")) == "RuntimeError: is less than 1"


def test_a_failed_verl_trainer_keeps_the_workers_traceback_in_the_stage_logs(tmp_path):
    import ray.exceptions

    from reasoner.engines.verl.engine import ERROR_FILE, trainer_failure
    from reasoner.engines.verl.overrides import StagePaths

    remote = "Traceback (most recent call last):\n  File \"verl/workers/actor.py\", line 12, in update\nRuntimeError: boom"
    err = ray.exceptions.RayTaskError("TaskRunnerV1.run", remote, RuntimeError("boom"))
    paths = StagePaths(tmp_path / "init", (tmp_path / "train.parquet",), tmp_path / "ckpt", tmp_path / "logs")
    failure = trainer_failure(err, "grpo1", "ppo_trainer", paths)
    trace = tmp_path / "logs" / ERROR_FILE
    assert str(failure).startswith("stage grpo1: verl's ppo_trainer trainer failed: RuntimeError: boom (traceback in ")
    assert str(trace) in str(failure) and str(tmp_path / "ckpt") in str(failure)
    assert 'File "verl/workers/actor.py", line 12, in update' in trace.read_text()  # the worker's frames, kept
