"""configs/tabmwp-tiny.yaml, shortened: TabMWP imported from ../shared -> SFT on its solutions -> GRPO ->
self-distilled SFT, evaluated on MATH-Vision testmini and held-out TabMWP, on the tiny model and real images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasoner import cli
from reasoner.pipeline import execute, load_run

pytestmark = pytest.mark.slow  # the TabMWP schedule on real data

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "tabmwp-tiny.yaml"


def import_tabmwp(split_file: Path, out: Path, mathvista_dir: Path, mathvision_dir: Path, *extra: str) -> None:
    argv = ["data", "import", str(split_file), str(out), "--format", "tabmwp", "--dedupe",
            "--exclude-mathvista", str(mathvista_dir), "--exclude-mathvision", str(mathvision_dir), *extra]  # fmt: skip
    assert cli.main(argv) == 0


def test_tabmwp_tiny_runs_to_its_report_as_shipped(tabmwp_dir, mathvista_dir, mathvision_dir, tmp_path):
    """The config's own import commands (held-out split first, the training split without what overlaps it), then
    the schedule as shipped: only where files are is overridden. Every stage finishes (SFT-2 needs GRPO-1's policy
    to solve some problems), the contamination guard finds nothing, every stage trains on real resized images."""
    train, heldout = tmp_path / "tabmwp-train.jsonl", tmp_path / "tabmwp-heldout.jsonl"
    import_tabmwp(tabmwp_dir / "problems_test1k.json", heldout, mathvista_dir, mathvision_dir, "--limit", "200")
    import_tabmwp(tabmwp_dir / "problems_dev1k.json", train, mathvista_dir, mathvision_dir, "--exclude-problems",
                  str(heldout))  # fmt: skip
    overrides = [
        f"output_dir={tmp_path / 'runs'}", f"datasets.train.path={train}", f"datasets.heldout.path={heldout}",
        f"datasets.mathvision.path={mathvision_dir}", f"datasets.mathvista.path={mathvista_dir}",
    ]
    run_dir = execute(load_run(CONFIG, overrides)).parent
    manifests = {p.parent.name: json.loads(p.read_text()) for p in sorted(run_dir.glob("stages/*/manifest.json"))}
    assert list(manifests) == ["00_base", "01_sft", "02_grpo", "03_sft"]
    guard = json.loads((run_dir / "contamination.json").read_text())  # checked at run time, nothing found
    assert guard["compared"] == ["mathvision", "heldout", "mathvista"] and guard["findings"] == []
    for name in ("01_sft", "02_grpo", "03_sft"):
        metrics = manifests[name]["metrics"]
        assert 0 < metrics["data/image_tokens_min"] <= metrics["data/image_tokens_max"] <= 64  # real, resized
        assert metrics["data/prompt_tokens_max"] <= metrics["data/prompt_token_limit"]
    assert manifests["03_sft"]["metrics"]["data/samples"] == 200 * 4 and manifests["03_sft"]["metrics"]["data/kept"] > 0
    for name in ("01_sft", "02_grpo", "03_sft"):
        vision = json.loads((run_dir / "stages" / name / "eval" / "mathvision" / "scores.json").read_text())
        assert vision["benchmark"] == "mathvision_testmini" and vision["n"] == 304
        assert set(vision["breakdown"]) == {"level", "subject", "question_type"}
        tabmwp = json.loads((run_dir / "stages" / name / "eval" / "heldout" / "scores.json").read_text())
        assert tabmwp["n"] == 199 and 0 <= tabmwp["accuracy"] <= 100
    assert (run_dir / "report.md").is_file()
