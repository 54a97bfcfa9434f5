"""Planning: checkpoint chaining, fingerprints, and done-ness from real manifests on disk."""

from __future__ import annotations

from pathlib import Path

from reasoner import config
from reasoner.rundir import RunDir
from reasoner.schedule import Status, plan, statuses

DEMO = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def test_chaining_follows_init_and_policy():
    plans = plan(config.load(DEMO), prompt_sha256="p")
    assert [p.dir_name for p in plans] == ["00_base", "01_sft", "02_grpo", "03_sft", "04_grpo"]
    assert [p.init for p in plans] == [None, "base", "sft1", "grpo1", "sft2"]
    assert plans[3].policy == "grpo1"  # SFT-2 trains on chains sampled by GRPO-1
    restarted = plan(config.load(DEMO, ["stages.sft2.init=base"]), prompt_sha256="p")
    assert restarted[3].init == "base" and restarted[3].fingerprint != plans[3].fingerprint


def test_fingerprints_change_downstream_only():
    before = plan(config.load(DEMO), "p")
    after = plan(config.load(DEMO, ["stages.grpo1.lr=0.5"]), "p")
    changed = [a.fingerprint != b.fingerprint for a, b in zip(before, after, strict=True)]
    # grpo1 changed; sft2 samples from grpo1, grpo2 starts from sft2: all three differ, base and sft1 do not.
    assert changed == [False, False, True, True, True]
    assert plan(config.load(DEMO), "other-prompt")[1].fingerprint != before[1].fingerprint


def test_statuses_from_manifests(tmp_path):
    plans = plan(config.load(DEMO), "p")
    run_dir = RunDir(tmp_path)
    run_dir.stage(plans[0].dir_name).write_manifest({"fingerprint": plans[0].fingerprint})
    run_dir.stage(plans[1].dir_name).write_manifest({"fingerprint": "stale"})
    (run_dir.stage(plans[2].dir_name).ckpt).mkdir(parents=True)
    assert statuses(run_dir, plans) == [Status.done, Status.changed, Status.partial, Status.pending, Status.pending]
