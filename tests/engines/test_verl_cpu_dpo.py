"""A `kind: dpo` stage on the verl engine, on the CPU: verl's Ray SFT trainer with our pair dataset and DPO loss
(reasoner/engines/verl/dpo.py), killed after its first checkpoint and resumed from it; the reference and held-out
log-probs are scored in the driver. `reasoner run` runs in a process of its own (an in-process verl run leaks its
CPU platform choice and Ray connection into later tests)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.engines.test_verl_cpu_train import REPO, _run_until

pytestmark = pytest.mark.slow

SCHEDULE = """
name: dpo-verl
engine: verl
model: {tiny_size: demo}
datasets:
  pairs: {source: preference, path: PAIRS}
  heldout: {source: synthetic, n: 2, seed: 4, split: eval}
eval: {datasets: [heldout], max_new_tokens: 4}
cluster: {device: cpu, gpus_per_node: 1, rollout_tensor_parallel: 1, micro_batch_size_per_gpu: 2,
          dynamic_batch: false, gradient_checkpointing: false, max_prompt_tokens: 512, max_sft_tokens: 512}
stages:
  - kind: dpo
    data: {dataset: pairs}
    steps: 30
    batch_size: 2
    lr: 0.001
    checkpoint_every: 10
    dpo: {beta: 0.5, nll_alpha: 0.1, heldout: 0.25}
"""


def test_verl_dpo_stage_killed_after_a_checkpoint_then_resumed(write_preference_file, tmp_path):
    pairs = write_preference_file(tmp_path / "pairs", tasks=("bars",), n=16, seed=1)
    config = tmp_path / "dpo-verl.yaml"
    config.write_text(SCHEDULE.replace("PAIRS", str(pairs)))
    command = [sys.executable, "-m", "reasoner.cli", "run", str(config), f"output_dir={tmp_path}"]
    stage = tmp_path / "dpo-verl" / "stages" / "01_dpo"
    tracker = stage / "ckpt" / "latest_checkpointed_iteration.txt"
    _run_until(command, tracker, tmp_path / "first.log")
    refs = json.loads((stage / "ckpt" / "reference_logps.json").read_text())
    assert not (stage / "manifest.json").exists()

    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "reference log-probs read from" in out, out[-4000:]
    # Killed after a checkpoint (verl's steps on the tiny model take a fraction of a second: the kill comes a few
    # steps later), resumed from it rather than from scratch.
    resumed = re.search(r"verl sft_trainer_engine from step (\d+) of 30", out)
    assert resumed and int(resumed.group(1)) >= 10, out[-4000:]
    assert json.loads((stage / "ckpt" / "reference_logps.json").read_text()) == refs  # not recomputed
    metrics = json.loads((stage / "manifest.json").read_text())["metrics"]
    assert metrics["dpo_eval/start_accuracy"] == 0.5 and metrics["dpo_eval/start_margin"] == 0.0
    assert "dpo_eval/accuracy" in metrics and "dpo_eval/margin" in metrics
    assert all(f"dpo/{key}" in metrics for key in ("loss", "accuracy", "margin", "logp_chosen", "logp_rejected", "nll"))
    assert metrics["verl/step"] == 30.0
    assert (stage / "model" / "config.json").is_file()
    rows = [json.loads(line) for line in (stage / "logs" / "verl_metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(row["data"]["dpo/loss"], float) for row in rows)
