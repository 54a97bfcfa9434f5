"""Planning: checkpoint chaining, fingerprints, and done-ness from real manifests on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reasoner import config
from reasoner.rundir import RunDir
from reasoner.schedule import Status, check, plan, statuses

DEMO = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def test_chaining_follows_init_and_policy():
    plans = plan(config.load(DEMO), prompt_sha256="p")
    assert [p.dir_name for p in plans] == ["00_base", "01_sft", "02_sft", "03_grpo", "04_sft", "05_grpo"]
    assert [p.init for p in plans] == [None, "base", "base", "sft1", "base", "sft2"]
    assert plans[2].policy == "teacher"  # SFT-1 trains on chains the teacher stage reasoned from captions
    assert plans[4].policy == "grpo1"  # SFT-2 trains on chains sampled by GRPO-1
    continued = plan(config.load(DEMO, ["stages.sft2.init=previous"]), prompt_sha256="p")
    assert continued[4].init == "grpo1" and continued[4].fingerprint != plans[4].fingerprint


def test_the_teacher_stage_has_its_own_prompt_in_its_fingerprint():
    plans = plan(config.load(DEMO), prompt_sha256="p")
    other = plan(config.load(DEMO, ["stages.teacher.prompt=reason"]), prompt_sha256="p")
    changed = [a.fingerprint != b.fingerprint for a, b in zip(plans, other, strict=True)]
    assert changed == [False, True, True, True, True, True]  # every stage downstream of the teacher's chains
    # The run's prompt does not reach the teacher, which has its own.
    assert plan(config.load(DEMO), prompt_sha256="q")[1].fingerprint == plans[1].fingerprint


def test_fingerprints_change_downstream_only():
    before = plan(config.load(DEMO), "p")
    after = plan(config.load(DEMO, ["stages.grpo1.lr=0.5"]), "p")
    changed = [a.fingerprint != b.fingerprint for a, b in zip(before, after, strict=True)]
    # grpo1 changed; sft2 samples from grpo1, grpo2 starts from sft2: all three differ, the rest do not.
    assert changed == [False, False, False, True, True, True]
    assert plan(config.load(DEMO), "other-prompt")[2].fingerprint != before[2].fingerprint


def test_generation_batch_reaches_the_sampling_stages_and_evaluations_only():
    from reasoner.eval.runner import eval_fingerprint

    before, after = config.load(DEMO), config.load(DEMO, ["eval.batch_size=64"])
    changed = [a.fingerprint != b.fingerprint for a, b in zip(plan(before, "p"), plan(after, "p"), strict=True)]
    # sft1 (distilled chains) and sft2 (self-distilled) are sampled per generation call; downstream follows.
    assert changed == [False, False, True, True, True, True]
    assert eval_fingerprint(before, "heldout", "m", "p") != eval_fingerprint(after, "heldout", "m", "p")
    # At the default the key adds nothing: runs planned before it took effect keep their fingerprints.
    assert before.eval.batch_inputs() == {} and after.eval.batch_inputs() == {"batch_size": 64}


def test_later_cluster_keys_count_only_away_from_their_default():
    demo_verl = Path(__file__).resolve().parents[1] / "configs" / "demo-verl.yaml"

    def fingerprints(*overrides: str) -> list[str]:
        return [p.fingerprint for p in plan(config.load(demo_verl, list(overrides)), "p")]

    default = fingerprints()
    assert fingerprints("cluster.cpu_kv_cache_gib=4") == default  # a memory size: the same stages
    for changed in ("cluster.cpu_rollout=hf", "cluster.remove_padding=false", "eval.backend=vllm"):
        assert fingerprints(changed)[1:] != default[1:], changed
    # Spelling out a default changes nothing: verl runs made before these keys keep their fingerprints.
    assert fingerprints("cluster.cpu_rollout=vllm", "cluster.remove_padding=true") == default


def finish(run_dir: RunDir, stage, fingerprint: str) -> None:
    """A finished stage as the pipeline leaves it: a model folder and a manifest naming it (relative)."""
    stage_dir = run_dir.stage(stage.dir_name)
    stage_dir.model.mkdir(parents=True)
    (stage_dir.model / "config.json").write_text("{}")
    stage_dir.write_manifest({"fingerprint": fingerprint, "model": run_dir.store(stage_dir.model)})


def test_statuses_from_manifests(tmp_path):
    plans = plan(config.load(DEMO), "p")
    run_dir = RunDir(tmp_path)
    finish(run_dir, plans[0], plans[0].fingerprint)
    finish(run_dir, plans[1], "stale")
    (run_dir.stage(plans[2].dir_name).ckpt).mkdir(parents=True)
    assert statuses(run_dir, plans) == [Status.done, Status.changed, Status.partial, *[Status.pending] * 3]
    assert json.loads(run_dir.stage("00_base").manifest.read_text())["model"] == "stages/00_base/model"


def test_truncated_manifest_or_missing_model_is_damaged(tmp_path):
    plans = plan(config.load(DEMO), "p")
    run_dir = RunDir(tmp_path)
    for stage in plans[:3]:
        finish(run_dir, stage, stage.fingerprint)
    manifest = run_dir.stage("01_sft").manifest
    manifest.write_text(manifest.read_text()[:20])
    shutil.rmtree(run_dir.stage("02_sft").model)
    assert statuses(run_dir, plans)[:3] == [Status.done, Status.damaged, Status.damaged]
    state, problem = check(run_dir, plans[1])
    assert str(manifest) in problem and "not valid JSON" in problem and "\n" not in problem
    assert "02_sft/model" in check(run_dir, plans[2])[1] and "sft1" in check(run_dir, plans[2])[1]


def test_manifest_from_before_relative_paths_resolves_in_a_moved_run(tmp_path):
    """Old manifests stored absolute model paths; in a moved or copied run they mean the stage's own model."""
    plans = plan(config.load(DEMO), "p")
    run_dir = RunDir(tmp_path / "moved")
    finish(run_dir, plans[1], plans[1].fingerprint)
    stage_dir = run_dir.stage("01_sft")
    stage_dir.write_manifest({"fingerprint": plans[1].fingerprint, "model": "/elsewhere/runs/demo/stages/01_sft/model"})
    assert run_dir.model_of(stage_dir, stage_dir.read_manifest()) == stage_dir.model
    assert check(run_dir, plans[1])[0] == Status.done
    external = {"fingerprint": "x", "model": "/models/Qwen2.5-VL-7B"}  # a base model outside the run stays as is
    assert run_dir.model_of(run_dir.stage("00_base"), external) == Path("/models/Qwen2.5-VL-7B")
