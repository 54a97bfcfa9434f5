"""A LoRA schedule (SFT -> GRPO -> SFT) end to end on the tiny model and the local engine: every stage exports a
plain merged model that transformers loads without peft, the manifests record the adapter, the vision tower
never changes, and LoRA enters the training stages' fingerprints only when on (the base's never)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reasoner.config import load
from reasoner.errors import ReasonerError
from reasoner.pipeline import execute, load_run
from reasoner.prompts import load_template
from reasoner.schedule import plan

LORA_SCHEDULE = """
name: lora
model: {tiny_size: demo, lora: {rank: 4, alpha: 8, target_modules: [all-linear]}}
datasets:
  train: {source: synthetic, tasks: [bars], n: 8, seed: 3}
  heldout: {source: synthetic, n: 4, seed: 4, split: eval}
eval: {datasets: [heldout], max_new_tokens: 8}
stages:
  - {kind: sft, data: {dataset: train}, steps: 2, batch_size: 4, lr: 0.01}
  - {kind: grpo, data: {dataset: train}, steps: 2, lr: 0.01, grpo: {prompts_per_step: 2, sampling: {max_new_tokens: 8}}}
  - {kind: sft, data: {dataset: train}, steps: 2, batch_size: 4, lr: 0.01}
"""

LOAD_WITHOUT_PEFT = """
import sys
from pathlib import Path
from transformers import AutoModelForImageTextToText, AutoProcessor
for folder in sys.argv[1:]:
    assert not (Path(folder) / "adapter_config.json").exists(), folder
    model = AutoModelForImageTextToText.from_pretrained(folder)
    AutoProcessor.from_pretrained(folder)
    assert not any("lora" in name for name, _ in model.named_parameters()), folder
assert "peft" not in sys.modules, "loading an exported model imported peft"
print("loaded", len(sys.argv) - 1)
"""


@pytest.fixture(scope="module")
def lora_run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("lora")
    (tmp / "lora.yaml").write_text(LORA_SCHEDULE)
    return execute(load_run(tmp / "lora.yaml", [f"output_dir={tmp}"])).parent


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_lora_schedule_exports_plain_models_that_load_without_peft(lora_run_dir):
    models = [lora_run_dir / "stages" / name / "model" for name in ("01_sft", "02_grpo", "03_sft")]
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_PEFT, *map(str, models)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded 3" in done.stdout
    report = json.loads((lora_run_dir / "report.json").read_text())
    assert report  # every stage evaluated from its exported model


def test_manifests_record_the_adapter_and_only_adapted_weights_change(lora_run_dir):
    stages = lora_run_dir / "stages"
    manifests = {p.parent.name: json.loads(p.read_text()) for p in sorted(stages.glob("*/manifest.json"))}
    assert list(manifests) == ["00_base", "01_sft", "02_grpo", "03_sft"]
    adapter = {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["all-linear"]}
    assert all(manifests[name]["lora"] == adapter for name in ("01_sft", "02_grpo", "03_sft"))
    assert "lora" not in manifests["00_base"]
    base, sft1, sft2 = (weights(stages / name / "model") for name in ("00_base", "01_sft", "03_sft"))
    assert set(sft1) == set(base)
    changed = {name for name in base if not torch.equal(base[name], sft2[name])}
    # The file keeps transformers' saved names (model.layers.N... for the language model, visual... for the tower).
    assert changed and all(".layers." in name and name.endswith("_proj.weight") for name in changed)
    assert any("visual" in name for name in base) and not any("visual" in name for name in changed)


def test_lora_enters_training_fingerprints_only_when_on(tmp_path):
    (tmp_path / "lora.yaml").write_text(LORA_SCHEDULE)
    sha = load_template("reason").sha256
    on = plan(load(tmp_path / "lora.yaml"), sha)
    off = plan(load(tmp_path / "lora.yaml", ["model.lora.rank=0"]), sha)
    off_other = plan(load(tmp_path / "lora.yaml", ["model.lora.rank=0", "model.lora.alpha=32"]), sha)
    other_rank = plan(load(tmp_path / "lora.yaml", ["model.lora.rank=8"]), sha)
    assert on[0].fingerprint == off[0].fingerprint == other_rank[0].fingerprint  # the base model is the same
    assert [p.fingerprint for p in off] == [p.fingerprint for p in off_other]  # off: its settings count for nothing
    for a, b, c in zip(on[1:], off[1:], other_rank[1:], strict=True):
        assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3


def test_lora_settings_are_checked_with_one_line_each(tmp_path):
    (tmp_path / "lora.yaml").write_text(LORA_SCHEDULE)
    with pytest.raises(ReasonerError) as err:
        load(tmp_path / "lora.yaml", ["model.lora.target_modules=[all-linear,q_proj]", "stages.sft1.freeze_vision=false"])
    assert "model.lora.target_modules: ['all-linear', 'q_proj'] is not allowed; allowed: [all-linear]" in str(err.value)
    assert "stages[0] (sft1).freeze_vision: false trains the vision tower, which LoRA keeps frozen" in str(err.value)
    with pytest.raises(ReasonerError, match=r"model.lora.rank: -1 is not allowed; allowed: rank >= 0"):
        load(tmp_path / "lora.yaml", ["model.lora.rank=-1"])
    with pytest.raises(ReasonerError, match=r"model.lora.dropout: 1.0 is not allowed; allowed: 0 <= dropout < 1"):
        load(tmp_path / "lora.yaml", ["model.lora.dropout=1.0"])
