"""`reasoner run` on a disk that fills up for real (a small tmpfs): exit status 2 with one line naming the file and
the space left, the finished stage kept whole, no partial checkpoint or model left to be mistaken for a finished
one, and the same command, once space is freed, resumes the stopped stage from its last complete checkpoint."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from reasoner import pipeline
from reasoner.cli import main
from reasoner.engines.local.engine import LocalEngine

CONFIG = """
name: full
model: {{tiny_size: demo}}
datasets:
  train: {{source: synthetic, n: 8, seed: 3}}
  heldout: {{source: synthetic, n: 4, seed: 5}}
eval: {{datasets: [heldout], evaluate_base: false, max_new_tokens: 4}}
stages:
  - {{kind: sft, data: {{dataset: train}}, steps: 1, batch_size: 2}}
  - {{kind: sft, data: {{dataset: train}}, steps: 2, batch_size: 2, checkpoint_every: {checkpoint_every}}}
"""
MIB = 1 << 20


def fill(folder: Path, leave_bytes: int) -> Path:
    """A filler file that leaves `leave_bytes` free on `folder`'s filesystem (written: tmpfs counts pages)."""
    filler = folder / "filler"
    size = shutil.disk_usage(folder).free - leave_bytes
    with filler.open("wb") as handle:
        for start in range(0, size, MIB):
            handle.write(bytes(min(MIB, size - start)))
    return filler


# The tiny model's checkpoint (weights + AdamW state) is 6.7 MiB, its exported model 3.0 MiB.
CASES = {
    # After step 1's checkpoint, 1 MiB is left: step 2's metrics row fits, its checkpoint does not.
    "checkpoint": dict(checkpoint_every=1, fill_at_step=1, leave_bytes=1 * MIB, file="ckpt/step_000002", kept=["step_000001"]),
    # After the last step, 8 MiB are left: the final checkpoint fits, the exported model then does not.
    "model": dict(checkpoint_every=0, fill_at_step=2, leave_bytes=8 * MIB, file="model", kept=["step_000002"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_full_disk_stops_with_one_line_keeps_finished_work_and_the_rerun_resumes(
    case, small_filesystem, monkeypatch, tmp_path, capsys, caplog
):
    spec = CASES[case]
    fs = small_filesystem(40)
    config = tmp_path / "full.yaml"
    config.write_text(CONFIG.format(checkpoint_every=spec["checkpoint_every"]))
    stages = fs / "full" / "stages"
    fillers: list[Path] = []

    def fill_in_stage_2(step: int, metrics: dict) -> None:
        """The engine's own per-step hook: fills the disk once, inside the second stage."""
        if (stages / "02_sft").is_dir() and step == spec["fill_at_step"] and not fillers:
            fillers.append(fill(fs, spec["leave_bytes"]))

    monkeypatch.setattr(pipeline, "make_engine", lambda run: LocalEngine(run, on_step=fill_in_stage_2))
    args = ["run", str(config), f"output_dir={fs}"]

    assert main(args) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in errors[0]
    assert errors[0].startswith(f"error: no space left on device writing {stages / '02_sft' / spec['file']} (")
    assert " free on " in errors[0] and str(fs) in errors[0] and "rerun the same command to resume" in errors[0]
    finished = {p: p.read_bytes() for p in (stages / "01_sft").rglob("*") if p.is_file()}
    assert stages / "01_sft" / "manifest.json" in finished  # the finished stage, evaluated, is kept
    assert stages / "01_sft" / "eval" / "heldout" / "scores.json" in finished
    assert not (stages / "02_sft" / "manifest.json").exists() and not (stages / "02_sft" / "model").exists()
    assert sorted(p.name for p in (stages / "02_sft" / "ckpt").iterdir()) == spec["kept"]  # complete ones only
    assert [p.name for p in (stages / "02_sft").iterdir() if p.name.startswith(".")] == []  # no temporaries

    fillers[0].unlink()  # space freed: the same command resumes the stage and finishes the run
    with caplog.at_level(logging.INFO):
        assert main(args) == 0
    resumed = f"resuming sft2 from {stages / '02_sft' / 'ckpt' / spec['kept'][0]}"
    assert any(r.getMessage().startswith(resumed) for r in caplog.records)
    assert {p: p.read_bytes() for p in finished} == finished  # the finished stage untouched
    metrics = json.loads((stages / "02_sft" / "manifest.json").read_text())["metrics"]
    assert metrics["steps"] == 2
    rows = (stages / "02_sft" / "logs" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(row)["step"] for row in rows] == [1, 2]
    assert (stages / "02_sft" / "eval" / "heldout" / "scores.json").is_file()
