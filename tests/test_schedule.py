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


# The stage fingerprints of shipped configs as the code before the GRPO loss-family keys computed them (commit
# 0adc097, prompt_sha256="p"): runs finished then must stay finished. If a config itself is edited, recompute these
# with that commit's schedule.plan, not with the current one.
FINGERPRINTS_BEFORE_LOSS_KEYS = {
    "demo.yaml": ["b99f8f28efb117ae", "6e98857dec9bd2df", "ef79d58194dd7184", "8ace50ebe6186823", "fab897ba917af0d4",
                  "31d567d425fd48fb"],
    "openvlthinker-7b.yaml": ["a798b895a307a854", "bcd6a992ce854425", "e3c7bac5bd38bb78", "81e2a7105c5ef853",
                              "184c28226fb61a3f", "3b935bfc556faa2a", "ac57c3545438949a"],
}  # fmt: skip


def test_the_grpo_loss_keys_at_their_defaults_keep_earlier_fingerprints():
    configs = DEMO.parent
    for name, expected in FINGERPRINTS_BEFORE_LOSS_KEYS.items():
        assert [p.fingerprint for p in plan(config.load(configs / name), "p")] == expected, name
    # Spelling out a default (a clip bound equal to clip_ratio is the same clip as null) changes nothing either.
    # (max_extra_batches: a cap without dynamic sampling changes nothing either)
    defaults = ["clip_ratio_low=0.2", "clip_ratio_high=0.2", "loss_agg_mode=token-mean", "policy_loss=vanilla",
                "norm_adv_by_std=true", "dynamic_sampling=false", "max_extra_batches=9"]  # fmt: skip
    spelled = config.load(DEMO, [f"stages.grpo1.grpo.{key}" for key in defaults])
    assert [p.fingerprint for p in plan(spelled, "p")] == FINGERPRINTS_BEFORE_LOSS_KEYS["demo.yaml"]


def test_each_grpo_loss_key_away_from_its_default_changes_the_stage_and_its_dependants():
    before = [p.fingerprint for p in plan(config.load(DEMO), "p")]
    changes = ["clip_ratio_low=0.1", "clip_ratio_high=0.28", "loss_agg_mode=seq-mean-token-mean",
               "loss_agg_mode=seq-mean-token-sum", "loss_agg_mode=seq-mean-token-sum-norm", "policy_loss=gspo",
               "norm_adv_by_std=false", "dynamic_sampling=true",
               "dynamic_sampling=true stages.grpo1.grpo.max_extra_batches=5"]  # fmt: skip
    seen = set()
    for change in changes:
        after = [p.fingerprint for p in plan(config.load(DEMO, f"stages.grpo1.grpo.{change}".split()), "p")]
        # grpo1 changed; sft2 samples from grpo1, grpo2 starts from sft2.
        assert [a != b for a, b in zip(before, after, strict=True)] == [False, False, False, True, True, True], change
        seen.add(after[3])
    assert len(seen) == len(changes)  # every setting is a fingerprint of its own
