"""`reasoner run` on a stage that goes non-finite for real (an absurd learning rate): exit status 2 with one line,
the finished stage before it kept, and a rerun that resumes the stopped stage from its last good checkpoint."""

from __future__ import annotations

import json

from reasoner.cli import main

CONFIG = """
name: nonfinite
model: {tiny_size: demo}
datasets:
  train: {source: synthetic, n: 8, seed: 3}
eval: {datasets: [], evaluate_base: false}
stages:
  - {kind: sft, data: {dataset: train}, steps: 1, batch_size: 2}
  # The first update blows the weights up (lr 1e30); every later loss is NaN.
  - {kind: sft, data: {dataset: train}, steps: 5, batch_size: 2, lr: 1.0e+30, warmup_ratio: 0, checkpoint_every: 1}
"""


def test_nonfinite_stage_stops_with_one_line_keeps_the_finished_one_and_resumes(tmp_path, capsys):
    config = tmp_path / "nonfinite.yaml"
    config.write_text(CONFIG)
    args = ["run", str(config), f"output_dir={tmp_path}"]
    stages = tmp_path / "nonfinite" / "stages"

    assert main(args) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: stage sft2: step 4: the loss is not finite (nan) in 3 optimizer updates in a row")
    assert "resumes it from its checkpoint step_000001" in line
    assert (stages / "01_sft" / "manifest.json").is_file()  # the finished stage is kept
    assert not (stages / "02_sft" / "manifest.json").exists()
    assert [p.name for p in (stages / "02_sft" / "ckpt").iterdir()] == ["step_000001"]
    metrics_file = stages / "02_sft" / "logs" / "metrics.jsonl"
    first_row = metrics_file.read_text().splitlines()[0]

    # The limit is not in the fingerprint: a rerun with a higher one resumes from step 1 and finishes.
    assert main([*args, "stages.sft2.max_nonfinite_skips=5"]) == 0
    metrics = json.loads((stages / "02_sft" / "manifest.json").read_text())["metrics"]
    assert metrics["nonfinite_skips"] == 4 and metrics["steps"] == 5
    lines = metrics_file.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5]
    assert lines[0] == first_row  # step 1 was not redone (its row carries the first run's timing)
