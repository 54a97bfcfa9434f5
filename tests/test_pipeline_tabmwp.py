"""configs/tabmwp-tiny.yaml, shortened: TabMWP imported from ../shared -> SFT on its solutions -> GRPO ->
self-distilled SFT, evaluated on MATH-Vision testmini and held-out TabMWP, on the tiny model and real images."""

from __future__ import annotations

import json
from pathlib import Path

from reasoner import cli
from reasoner.pipeline import execute, load_run

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "tabmwp-tiny.yaml"


def import_tabmwp(split_file: Path, out: Path, mathvista_dir: Path, mathvision_dir: Path) -> None:
    argv = ["data", "import", str(split_file), str(out), "--format", "tabmwp", "--dedupe",
            "--exclude-mathvista", str(mathvista_dir), "--exclude-mathvision", str(mathvision_dir)]  # fmt: skip
    assert cli.main(argv) == 0


def test_tabmwp_tiny_schedule_runs_every_stage_on_real_data(tabmwp_dir, mathvista_dir, mathvision_dir, tmp_path):
    train, heldout = tmp_path / "tabmwp-train.jsonl", tmp_path / "tabmwp-heldout.jsonl"
    import_tabmwp(tabmwp_dir / "problems_dev1k.json", train, mathvista_dir, mathvision_dir)
    import_tabmwp(tabmwp_dir / "problems_test1k.json", heldout, mathvista_dir, mathvision_dir)
    overrides = [
        f"output_dir={tmp_path / 'runs'}", f"datasets.train.path={train}", f"datasets.heldout.path={heldout}",
        f"datasets.mathvision.path={mathvision_dir}", f"datasets.mathvista.path={mathvista_dir}",
        "datasets.train.n=48", "datasets.heldout.n=6",
        "datasets.mathvision.n=6", "eval.max_new_tokens=8", "eval.evaluate_base=false",
        "stages.sft1.steps=2", "stages.sft1.batch_size=4",
        "stages.grpo1.steps=1", "stages.grpo1.grpo.prompts_per_step=4", "stages.grpo1.grpo.sampling.n=2",
        "stages.grpo1.grpo.sampling.max_new_tokens=8",
        "stages.sft2.steps=1", "stages.sft2.batch_size=2", "stages.sft2.data.limit=12",
        "stages.sft2.data.selfdistill.sampling.max_new_tokens=8",
        "stages.sft2.data.selfdistill.extraction=lenient",  # a 2-step model closes no answer tag in 8 tokens
    ]  # fmt: skip
    run_dir = execute(load_run(CONFIG, overrides)).parent
    manifests = {p.parent.name: json.loads(p.read_text()) for p in sorted(run_dir.glob("stages/*/manifest.json"))}
    assert list(manifests) == ["00_base", "01_sft", "02_grpo", "03_sft"]
    guard = json.loads((run_dir / "contamination.json").read_text())  # checked at run time, nothing found
    assert guard["compared"] == ["mathvision", "heldout", "mathvista"] and guard["findings"] == []
    for name in ("01_sft", "02_grpo", "03_sft"):
        metrics = manifests[name]["metrics"]
        assert 0 < metrics["data/image_tokens_min"] <= metrics["data/image_tokens_max"] <= 64  # real, resized
        assert metrics["data/prompt_tokens_max"] <= metrics["data/prompt_token_limit"]
    assert manifests["03_sft"]["metrics"]["data/samples"] == 12 * 4
    for name in ("01_sft", "02_grpo", "03_sft"):
        vision = json.loads((run_dir / "stages" / name / "eval" / "mathvision" / "scores.json").read_text())
        assert vision["benchmark"] == "mathvision_testmini" and vision["n"] == 6
        assert set(vision["breakdown"]) == {"level", "subject", "question_type"}
        tabmwp = json.loads((run_dir / "stages" / name / "eval" / "heldout" / "scores.json").read_text())
        assert tabmwp["n"] == 6 and 0 <= tabmwp["accuracy"] <= 100
