"""The demo schedule end to end on the tiny model, shortened: stages, resume, kill-and-rerun, report."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasoner.cli import main
from reasoner.errors import ReasonerError
from reasoner.pipeline import execute, load_run

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "configs" / "demo.yaml"

@pytest.fixture(scope="module")
def smoke(demo_smoke):
    """The shortened demo's overrides, writing under `tmp`."""
    return lambda tmp, *extra: [*demo_smoke, f"output_dir={tmp}", *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, smoke) -> Path:
    tmp = tmp_path_factory.mktemp("runs")
    run = load_run(DEMO, smoke(tmp))
    report = execute(run)
    return report.parent


def manifests(run_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(run_dir.glob("stages/*/manifest.json"))}


def test_smoke_run_finishes_every_stage_with_report(finished):
    found = manifests(finished)
    assert list(found) == ["00_base", "01_sft", "02_sft", "03_grpo", "04_sft", "05_grpo"]
    assert [m["name"] for m in found.values()] == ["base", "teacher", "sft1", "grpo1", "sft2", "grpo2"]
    assert found["02_sft"]["init"] == "base" and found["04_sft"]["init"] == "base"  # SFTs restart from the base
    assert found["02_sft"]["metrics"]["data/samples"] == 12 * 8  # the teacher's chains, k=8 per caption
    assert found["04_sft"]["metrics"]["data/samples"] == 12 * 8  # grpo1's own chains
    assert not (finished / "stages" / "01_sft" / "eval").exists()  # the text-only teacher sees no image set
    for name in ("02_sft", "03_grpo", "04_sft", "05_grpo"):
        assert (finished / "stages" / name / "model" / "config.json").is_file()
        scores = json.loads((finished / "stages" / name / "eval" / "heldout" / "scores.json").read_text())
        assert scores["n"] == 12 and 0 <= scores["accuracy"] <= 100
        assert set(scores["breakdown"]["task"]) <= {"count", "digits", "bars"}
    report = json.loads((finished / "report.json").read_text())
    assert [s["name"] for s in report["stages"]] == ["base", "teacher", "sft1", "grpo1", "sft2", "grpo2"]
    assert all(s["finished"] for s in report["stages"])
    assert "| grpo2 | 12 |" in (finished / "report.md").read_text()
    assert (finished / "accuracy.png").stat().st_size > 1000


@pytest.mark.slow  # a second smoke run
def test_smoke_run_on_the_qwen3_vl_family_by_one_override(smoke, tmp_path):
    """The same shortened demo with a tiny Qwen3-VL base: every stage trains, exports and evaluates that family."""
    report = execute(load_run(DEMO, smoke(tmp_path, "model.tiny_family=qwen3-vl"))).parent
    found = manifests(report)
    assert [m["name"] for m in found.values()] == ["base", "teacher", "sft1", "grpo1", "sft2", "grpo2"]
    for name in found:
        config = json.loads((report / "stages" / name / "model" / "config.json").read_text())
        assert config["model_type"] == "qwen3_vl", name
    assert all(s["finished"] for s in json.loads((report / "report.json").read_text())["stages"])


def test_rerun_does_no_work(finished, smoke):
    before = {p: p.stat().st_mtime_ns for p in finished.glob("stages/*/**/*") if p.is_file()}
    start = time.perf_counter()
    execute(load_run(DEMO, smoke(finished.parent)))
    assert time.perf_counter() - start < 20
    after = {p: p.stat().st_mtime_ns for p in finished.glob("stages/*/**/*") if p.is_file()}
    assert after == before


def test_run_files_are_group_readable_and_paths_relative(finished):
    """Every file and folder gets the mode a plain create gives (umask), not tempfile's private 0600/0700."""
    group_may_read = not os.umask(os.umask(0o022)) & 0o040
    entries = [finished, *finished.rglob("*")]
    if group_may_read:
        assert [p for p in entries if not p.stat().st_mode & 0o040] == []
    models = [m["model"] for m in manifests(finished).values()]
    assert models == [f"stages/{name}/model" for name in ("00_base", "01_sft", "02_sft", "03_grpo", "04_sft", "05_grpo")]


def copy_run(finished: Path, tmp_path: Path) -> Path:
    """A copy of the finished run under another output_dir (the original stays where it is)."""
    return Path(shutil.copytree(finished, tmp_path / "demo", symlinks=True))


def test_copied_run_resumes_and_evaluates_its_own_models(finished, smoke, tmp_path, caplog):
    copy = copy_run(finished, tmp_path)
    shutil.rmtree(copy / "stages" / "05_grpo")  # to train again, from the copy's sft2
    (copy / "stages" / "03_grpo" / "eval" / "heldout" / "scores.json").write_text('{"n": 1')  # damaged: redone
    with caplog.at_level(logging.INFO):
        execute(load_run(DEMO, smoke(tmp_path)))
    loaded = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loaded ")]
    assert loaded and not [line for line in loaded if str(finished) in line]
    assert any(line.endswith(str(copy / "stages" / "04_sft" / "model")) for line in loaded)
    assert any(line.endswith(str(copy / "stages" / "03_grpo" / "model")) for line in loaded)
    assert manifests(copy)["05_grpo"]["model"] == "stages/05_grpo/model"


def test_finished_stage_without_its_model_stops_naming_redo_from(finished, smoke, tmp_path, capsys):
    copy = copy_run(finished, tmp_path)
    shutil.rmtree(copy / "stages" / "03_grpo" / "model")
    assert main(["run", str(DEMO), *smoke(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "Traceback" not in error
    assert str(copy / "stages" / "03_grpo" / "model") in error and "--redo-from grpo1" in error


def test_truncated_manifest_one_line_plan_marks_it_report_skips_it(finished, smoke, tmp_path, capsys):
    copy = copy_run(finished, tmp_path)
    manifest = copy / "stages" / "02_sft" / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    scores = copy / "stages" / "04_sft" / "eval" / "heldout" / "scores.json"
    scores.write_text("{")
    assert main(["run", str(DEMO), *smoke(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and str(manifest) in error and "--redo-from sft1" in error
    assert main(["run", str(DEMO), *smoke(tmp_path), "--plan"]) == 0
    plan = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert plan == {"00_base": "done", "01_sft": "done", "02_sft": "damaged", "03_grpo": "done", "04_sft": "done", "05_grpo": "done"}
    assert main(["report", str(copy)]) == 0
    report = (copy / "report.md").read_text()
    assert "## Damaged files" in report and str(manifest) in report and str(scores) in report
    assert "| 02_sft | no |" in report and "| sft2 | 12 |" not in report and "| grpo2 | 12 |" in report


def test_changed_config_after_an_interruption_discards_stale_checkpoint_and_targets(
    finished, smoke, tmp_path, caplog
):
    """sft2 was interrupted after its last checkpoint (no model, no manifest); its lr is then changed."""
    copy = copy_run(finished, tmp_path)
    sft2 = copy / "stages" / "04_sft"
    for gone in (sft2 / "manifest.json", sft2 / "model", sft2 / "eval", copy / "stages" / "05_grpo"):
        shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
    assert list((sft2 / "ckpt").glob("step_*"))
    targets = json.loads((sft2 / "data" / "targets.json").read_text())
    targets["items"] = [[pid, "STALE"] for pid, _ in targets["items"]]
    (sft2 / "data" / "targets.json").write_text(json.dumps(targets))

    run = load_run(DEMO, smoke(tmp_path, "stages.sft2.lr=1e-3"))
    with caplog.at_level(logging.WARNING):
        execute(run)
    warnings = [r.getMessage() for r in caplog.records if "discarding" in r.getMessage()]
    assert any("checkpoint" in w and "04_sft/ckpt/step_000002" in w for w in warnings), warnings
    assert any("targets.json" in w and "another config" in w for w in warnings), warnings
    rebuilt = json.loads((sft2 / "data" / "targets.json").read_text())
    assert rebuilt["fingerprint"] == run.plans[4].fingerprint
    assert "STALE" not in {target for _, target in rebuilt["items"]}
    rows = [json.loads(line) for line in (sft2 / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["train/lr"] == pytest.approx(1e-3)
    assert manifests(copy)["04_sft"]["fingerprint"] == run.plans[4].fingerprint


def test_changed_config_of_finished_stage_is_reported(finished, smoke):
    run = load_run(DEMO, smoke(finished.parent, "stages.grpo2.lr=0.5"))
    with pytest.raises(ReasonerError, match="grpo2.*--redo-from grpo2"):
        execute(run)


@pytest.mark.slow  # a killed and resumed run
def test_kill_inside_grpo_then_rerun_completes(tmp_path, smoke):
    args = smoke(tmp_path, "stages.grpo1.steps=6", "stages.grpo1.checkpoint_every=1")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reasoner.cli", "run", str(DEMO), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    grpo = tmp_path / "demo" / "stages" / "03_grpo"
    deadline = time.time() + 240
    while time.time() < deadline and not any((grpo / "ckpt").glob("*")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any((grpo / "ckpt").glob("*")), "the run never reached a GRPO checkpoint"
    assert not (grpo / "manifest.json").exists()
    assert (tmp_path / "demo" / "stages" / "02_sft" / "manifest.json").exists()

    report = execute(load_run(DEMO, args))
    found = manifests(report.parent)
    assert list(found) == ["00_base", "01_sft", "02_sft", "03_grpo", "04_sft", "05_grpo"]
    assert found["03_grpo"]["metrics"]["steps"] == 6


CURRICULUM = """
name: curriculum
model: {tiny_size: demo}
datasets:
  train: {source: synthetic, tasks: [bars], n: 8, seed: 3}  # an untrained reasoner is right by chance on bars
  heldout: {source: synthetic, n: 4, seed: 4, split: eval}
eval: {datasets: [heldout], max_new_tokens: 8}
stages:
  - kind: sft
    data:
      dataset: train
      targets: distill
      distill: {reasoner: base, sampling: {n: 12, max_new_tokens: 12}, shard_size: 4}
    steps: 1
    batch_size: 2
  - kind: grpo
    data: {dataset: train, difficulty: hard, pass_rate: {sampling: {n: 2, max_new_tokens: 8}}}
    steps: 1
    grpo: {prompts_per_step: 2, sampling: {max_new_tokens: 8}}
"""


def test_distilled_sft_then_grpo_on_a_difficulty_band(tmp_path):
    """Iteration-1 distillation (the synthetic captions stand in for a captioner) and a pass-rate band, wired."""
    config = tmp_path / "curriculum.yaml"
    config.write_text(CURRICULUM)
    report = execute(load_run(config, [f"output_dir={tmp_path}"]))
    found = manifests(report.parent)
    assert list(found) == ["00_base", "01_sft", "02_grpo"]
    stages = report.parent / "stages"
    stats = json.loads((stages / "01_sft" / "data" / "distill" / "stats.json").read_text())
    assert stats["total"]["problems"] == 8 and stats["total"]["samples"] == 96
    rates = json.loads((stages / "02_grpo" / "data" / "pass_rates.json").read_text())
    assert rates  # estimated by the stage's start model (sft1), cached next to the data
    assert found["02_grpo"]["init"] == "sft1"
