"""LoRA on the verl engine, up to what runs without a GPU cluster: the translation to verl 0.9.1's keys passes
verl's own validation and its model config; peft, configured as verl's FSDP engine configures it from those keys,
adapts exactly the layers the local engine adapts; a LoRA checkpoint exports as a plain merged fp32 model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import HFModelConfig

from reasoner.config import (
    DatasetConfig,
    Engine,
    LoraConfig,
    ModelConfig,
    RunConfig,
    StageConfig,
    StageDataConfig,
    StageKind,
)  # fmt: skip
from reasoner.config.loading import name_stages, validate
from reasoner.engines.local.lora import attach, merge_adapters, target_names
from reasoner.engines.verl.compose import GRPO_CONFIG, SFT_CONFIG
from reasoner.engines.verl.engine import compose_stage, validate_plan
from reasoner.engines.verl.export import export_model
from reasoner.engines.verl.lora import VISION_TOWER
from reasoner.engines.verl.overrides import StagePaths, grpo_overrides, sft_overrides
from reasoner.errors import ReasonerError
from reasoner.models.loading import load_model
from reasoner.models.tiny import FAMILIES, ensure_tiny_model
from reasoner.prompts import load_template
from reasoner.schedule import plan


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", size="demo", seed=0)


def make_run(tiny: Path, **lora) -> RunConfig:
    run = RunConfig(
        name="lora", engine=Engine.verl, model=ModelConfig(path=str(tiny), lora=LoraConfig(**lora)),
        datasets={"pool": DatasetConfig(source="file", path="/data/pool.parquet")},
        stages=[StageConfig(kind=StageKind.grpo, name="grpo1", data=StageDataConfig(dataset="pool"), steps=2),
                StageConfig(kind=StageKind.sft, name="sft2", data=StageDataConfig(dataset="pool"), steps=2)],
    )  # fmt: skip
    name_stages(run)
    validate(run)
    return run


def paths(tiny: Path) -> StagePaths:
    return StagePaths(tiny, (Path("/runs/l/train.parquet"),), Path("/runs/l/ckpt"), Path("/runs/l/logs"))


def peft_targets_as_verl_builds_them(model_config: HFModelConfig, model) -> set[str]:
    """The layers peft adapts when configured as verl's FSDP engine does (`_build_lora_module`)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model

    config = PeftLoraConfig(
        task_type=TaskType.CAUSAL_LM, r=model_config.lora_rank, lora_alpha=model_config.lora_alpha,
        target_modules=model_config.target_modules, exclude_modules=model_config.exclude_modules, bias="none",
    )  # fmt: skip
    peft_model = get_peft_model(model, config)
    return {
        name.removeprefix("base_model.model.").removesuffix(".lora_A.default")
        for name, _ in peft_model.named_modules()
        if name.endswith(".lora_A.default")
    }


@pytest.mark.parametrize("targets", [["all-linear"], ["q_proj", "v_proj", "gate_proj"]])
def test_grpo_lora_translation_passes_verls_validation_and_adapts_what_the_local_engine_does(tiny, targets):
    off, on = make_run(tiny), make_run(tiny, rank=8, alpha=16, target_modules=targets)
    before = grpo_overrides(off, off.stages[0], paths(tiny), n_problems=100)
    after = grpo_overrides(on, on.stages[0], paths(tiny), n_problems=100)
    model = "actor_rollout_ref.model"
    expected_targets = "all-linear" if targets == ["all-linear"] else "[" + ",".join(targets) + "]"
    assert set(after) - set(before) == {
        f"{model}.lora_rank=8",
        f"{model}.lora_alpha=16",
        f"{model}.target_modules={expected_targets}",
        f"{model}.exclude_modules='{VISION_TOWER}'",
        f"{model}.lora.merge=true",  # vLLM gets merged weights: no LoRA in the rollout (verl#3922)
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra]",  # no peft-named hf_model
    }
    cfg = compose_stage(GRPO_CONFIG, after, where="lora")  # verl's validate_config and dataclasses
    model_config = omega_conf_to_dataclass(cfg.actor_rollout_ref.model, HFModelConfig)
    assert (model_config.lora_rank, model_config.lora_alpha) == (8, 16)
    assert model_config.exclude_modules == VISION_TOWER and model_config.lora["merge"] is True
    lora = on.model.lora
    for family in FAMILIES:
        path = ensure_tiny_model(tiny.parent, family=family, size="demo", seed=0)
        reference, _ = load_model(path)
        assert peft_targets_as_verl_builds_them(model_config, load_model(path)[0]) == set(target_names(reference, lora))


def test_sft_lora_translation_passes_verls_validation(tiny):
    on = make_run(tiny, rank=4, alpha=8)
    overrides = sft_overrides(on, on.stages[1], paths(tiny), n_examples=64)
    assert {"model.lora_rank=4", "model.lora_alpha=8", "model.target_modules=all-linear",
            "checkpoint.save_contents=[model,optimizer,extra]"} <= set(overrides)  # fmt: skip
    assert not any(line.startswith("model.lora.merge") for line in overrides)  # no rollout in SFT
    cfg = compose_stage(SFT_CONFIG, overrides, where="lora")
    model_config = omega_conf_to_dataclass(cfg.model, HFModelConfig)
    assert (model_config.lora_rank, model_config.target_modules) == (4, "all-linear")


def test_lora_off_changes_nothing_verl_receives(tiny):
    run = make_run(tiny)
    spelled = make_run(tiny, rank=0, alpha=64, target_modules=["q_proj"])
    for stage, fn in ((run.stages[0], grpo_overrides), (run.stages[1], sft_overrides)):
        assert fn(run, stage, paths(tiny)) == fn(spelled, stage, paths(tiny))
        assert not any("lora" in line.split("=")[0] for line in fn(run, stage, paths(tiny)))


def test_lora_dropout_is_refused_on_the_verl_engine_in_one_line(tiny):
    run = make_run(tiny, rank=4, dropout=0.05)
    with pytest.raises(ReasonerError, match=r"model.lora.dropout: 0.05 is not allowed on the verl engine.*allowed: 0"):
        validate_plan(run, plan(run, load_template("reason").sha256))


def test_export_folds_a_lora_checkpoints_adapters_into_the_start_model(tiny, tmp_path):
    """A LoRA checkpoint as verl's FSDP2 engine writes it (peft-named DTensor shards, `lora_train_meta.json`, no
    hf_model) exports as the start model with the adapters folded in, in fp32: what peft's own merge gives."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    adapted, _ = load_model(tiny, dtype=torch.float32)
    attach(adapted, LoraConfig(rank=4, alpha=8), seed=3)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if ".lora_B." in name:
                parameter.normal_(0, 0.05)
    step = tmp_path / "ckpt" / "global_step_2"
    (step / "huggingface").mkdir(parents=True)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("fsdp",))
        shard = {
            "base_model.model." + name: distribute_tensor(p.detach().clone(), mesh, [Shard(0)])
            for name, p in adapted.named_parameters()
        }
        torch.save(shard, step / "model_world_size_1_rank_0.pt")
    finally:
        dist.destroy_process_group()
    (step / "lora_train_meta.json").write_text(json.dumps({"r": 4, "lora_alpha": 8, "task_type": "CAUSAL_LM"}))
    (step / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}))
    (tmp_path / "ckpt" / "latest_checkpointed_iteration.txt").write_text("2")
    with pytest.raises(ReasonerError, match="needs the stage's start model"):
        export_model(tmp_path / "ckpt", tmp_path / "nope", role=None)
    export_model(tmp_path / "ckpt", tmp_path / "model", role=None, init_model=tiny)
    assert not (tmp_path / "model" / "adapter_config.json").exists()
    expected = dict(merge_adapters(adapted).named_parameters())
    got = dict(load_model(tmp_path / "model", dtype=torch.float32)[0].named_parameters())
    start = dict(load_model(tiny)[0].named_parameters())
    assert list(got) == list(expected)
    for name, value in got.items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-6)
    changed = [name for name in got if not torch.equal(got[name], start[name])]
    assert len(changed) == len(target_names(load_model(tiny)[0], LoraConfig(rank=4)))


def test_lora_stage_fingerprints_differ_from_full_fine_tuning(tiny):
    sha = load_template("reason").sha256
    off, on = plan(make_run(tiny), sha), plan(make_run(tiny, rank=4), sha)
    assert off[0].fingerprint == on[0].fingerprint
    assert all(a.fingerprint != b.fingerprint for a, b in zip(off[1:], on[1:], strict=True))
    assert dataclasses.asdict(on[1].config) == dataclasses.asdict(off[1].config)  # LoRA is the run's model setting
