"""`seed=N` changes everything random in a run (the tiny model's weights, the synthetic training set, data order,
sampling) and the same seed repeats a run exactly; runs of several seeds combine into one report.

The runs are configs/demo.yaml shortened by conftest's smoke overrides (~7 s each on one CPU thread).
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest
import yaml

from reasoner.cli import main
from reasoner.config.loading import derive_seed
from reasoner.data.sets.datasets import Datasets
from reasoner.pipeline import execute, load_run

pytestmark = pytest.mark.slow  # runs the demo schedule (shortened) several times

DEMO = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"
STAGES = ("00_base", "01_sft", "02_sft", "03_grpo", "04_sft", "05_grpo")
EVALUATED = tuple(stage for stage in STAGES if stage != "01_sft")  # the text-only teacher sees no image set


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_smoke) -> dict[str, Path]:
    """Four shortened demo runs: seed 0, seed 0 again (another folder), seed 1, and seed 1 with the tiny model
    and the training set of seed 0 pinned (so only the stages' own randomness differs from seed 0)."""
    tmp = tmp_path_factory.mktemp("seeds")
    variants = {
        "s0": ["seed=0", "name=demo-s0", f"output_dir={tmp}"],
        "s0_again": ["seed=0", "name=demo-s0", f"output_dir={tmp / 'again'}"],
        "s1": ["seed=1", "name=demo-s1", f"output_dir={tmp}"],
        "s1_pinned": [
            "seed=1", "name=demo-s1-pinned", f"output_dir={tmp}",
            "model.tiny_seed=0", f"datasets.train.seed={derive_seed(0, 'dataset', 'train')}",
        ],
    }  # fmt: skip
    return {key: execute(load_run(DEMO, [*demo_smoke, *extra])).parent for key, extra in variants.items()}


def weights(run: Path, stage: str) -> bytes:
    return (run / "stages" / stage / "model" / "model.safetensors").read_bytes()


def responses(run: Path, stage: str) -> str:
    return (run / "stages" / stage / "eval" / "heldout" / "responses.jsonl").read_text()


def rollouts(run: Path, stage: str) -> list[dict]:
    """A GRPO stage's per-step rollout metrics (rewards, response lengths, KL), without wall-clock times."""
    rows = [json.loads(line) for line in (run / "stages" / stage / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def sampled_chains(run: Path) -> str:
    """SFT-2's data: GRPO-1's sampled chains that verified (targets=self)."""
    return (run / "stages" / "04_sft" / "data" / "targets.json").read_text()


def test_null_seeds_derive_from_the_run_seed_and_change_every_fingerprint():
    zero, one = (load_run(DEMO, [f"seed={seed}"]) for seed in (0, 1))
    assert (zero.config.model.tiny_seed, one.config.model.tiny_seed) == (0, 1)
    # A stable hash of (run seed, "dataset", name): the same number on every machine and Python.
    assert zero.config.datasets["train"].seed == derive_seed(0, "dataset", "train") == 1967859563
    assert one.config.datasets["train"].seed == derive_seed(1, "dataset", "train") != 1967859563
    assert zero.config.datasets["heldout"].seed == one.config.datasets["heldout"].seed == 2  # explicit: kept
    assert [p.name for p in zero.plans] == [p.name for p in one.plans]
    assert all(a.fingerprint != b.fingerprint for a, b in zip(zero.plans, one.plans, strict=True))
    assert [p.seed for p in zero.plans] == [0, 1, 2, 3, 4, 5] and [p.seed for p in one.plans] == [1, 2, 3, 4, 5, 6]
    train = [[p.id for p in Datasets(run.config)["train"][:50]] for run in (zero, one)]
    assert train[0] != train[1]


def test_same_seed_repeats_the_run_exactly(runs):
    first, again = runs["s0"], runs["s0_again"]
    for stage in STAGES:
        assert weights(first, stage) == weights(again, stage), stage
    for stage in EVALUATED:
        assert responses(first, stage) == responses(again, stage), stage
    assert sampled_chains(first) == sampled_chains(again)
    assert rollouts(first, "03_grpo") == rollouts(again, "03_grpo")
    assert rollouts(first, "05_grpo") == rollouts(again, "05_grpo")


def test_another_seed_changes_weights_data_data_order_and_samples(runs):
    zero, one, pinned = runs["s0"], runs["s1"], runs["s1_pinned"]
    assert weights(zero, "00_base") != weights(one, "00_base")  # the tiny model's initialisation
    assert weights(zero, "00_base") == weights(pinned, "00_base")
    configs = [yaml.safe_load((run / "config.yaml").read_text()) for run in (zero, one, pinned)]
    assert configs[0]["datasets"]["train"]["seed"] != configs[1]["datasets"]["train"]["seed"]  # the training set
    assert configs[0]["datasets"]["train"] == configs[2]["datasets"]["train"]
    assert configs[0]["datasets"]["heldout"] == configs[1]["datasets"]["heldout"]  # one held-out set for all seeds
    # The teacher (reference targets) from the same weights and data: its only randomness is the order of batches.
    assert weights(zero, "01_sft") != weights(pinned, "01_sft")
    assert sampled_chains(zero) != sampled_chains(one)  # self-distillation's samples
    assert rollouts(zero, "03_grpo") != rollouts(one, "03_grpo")  # GRPO's rollouts


def test_report_combines_seeds_with_mean_sd_and_standard_error(runs, tmp_path, capsys):
    zero, one = runs["s0"], runs["s1"]
    out = tmp_path / "demo-seeds"
    assert main(["report", str(zero), str(one), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert [(r["run"], r["seed"]) for r in report["runs"]] == [("demo-s0", 0), ("demo-s1", 1)]
    assert [s["name"] for s in report["stages"]] == ["base", "teacher", "sft1", "grpo1", "sft2", "grpo2"]
    assert report["stages"][1]["eval"] == {}  # the teacher has no evaluation; sft1's change is from the base
    previous = None
    for stage, folder in zip([s for s in report["stages"] if s["eval"]], EVALUATED, strict=True):
        scores = [json.loads((run / "stages" / folder / "eval" / "heldout" / "scores.json").read_text())
                  for run in (zero, one)]  # fmt: skip
        found = stage["eval"]["heldout"]
        assert found["accuracy"] == [s["accuracy"] for s in scores] and found["n"] == 12
        assert found["mean"] == round(statistics.fmean(found["accuracy"]), 2)
        assert found["sd"] == round(statistics.stdev(found["accuracy"]), 2)
        assert found["sem"] == round(statistics.stdev(found["accuracy"]) / 2**0.5, 2)
        if previous:
            changes = [a - b for a, b in zip(found["accuracy"], previous["accuracy"], strict=True)]
            assert found["delta_prev"]["mean"] == round(statistics.fmean(changes), 2)
        previous = found
    text = (out / "report.md").read_text()
    assert text == printed.rstrip("\n") + "\n"
    assert "| stage | seed 0 | seed 1 | mean ± sd | s.e. | Δ prev |" in text and "## heldout (n = 12)" in text
    assert (out / "accuracy.png").stat().st_size > 1000


def damaged_copy(run: Path, where: Path, damage) -> Path:
    """A copy of `run`'s reports and scores (no models) with `damage(copy)` applied."""
    copy = Path(shutil.copytree(run, where, ignore=shutil.ignore_patterns("model", "ckpt")))
    damage(copy)
    return copy


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "Traceback" not in error, error
    return error


def test_combining_runs_that_do_not_match_names_the_run_and_the_stage(runs, tmp_path, capsys):
    zero, one = runs["s0"], runs["s1"]

    def config_with_other_heldout(copy: Path) -> None:
        config = yaml.safe_load((copy / "config.yaml").read_text())
        config["datasets"]["heldout"]["seed"] = 3
        (copy / "config.yaml").write_text(yaml.safe_dump(config))

    cases = {
        "shorter": (lambda c: shutil.rmtree(c / "stages" / "05_grpo"), ["stage 5 should be 'grpo2'", "ends before"]),
        "unfinished": (lambda c: (c / "stages" / "03_grpo" / "manifest.json").unlink(), ["stage grpo1", "not finished"]),
        "no_eval": (lambda c: shutil.rmtree(c / "stages" / "04_sft" / "eval"), ["stage sft2", "heldout"]),
        "other_heldout": (config_with_other_heldout, ["evaluation set heldout", "fixed seed"]),
    }
    for name, (damage, expected) in cases.items():
        copy = damaged_copy(one, tmp_path / name, damage)
        assert main(["report", str(zero), str(copy), "--out", str(tmp_path / "out")]) == 2, name
        error = one_line_error(capsys)
        assert str(copy) in error and all(part in error for part in expected), error
    assert main(["report", str(zero), str(runs["s0_again"]), "--out", str(tmp_path / "out")]) == 2
    assert "both have seed 0" in one_line_error(capsys)
    assert main(["report", str(zero), "--out", str(tmp_path / "out")]) == 2
    assert "two or more RUN_DIRs" in one_line_error(capsys)
    assert main(["report", str(zero), str(one)]) == 2
    assert "give --out DIR" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_another_seed_in_a_finished_run_folder_says_so(runs, demo_smoke, capsys):
    folder = runs["s0"]
    argv = ["run", str(DEMO), *demo_smoke, f"output_dir={folder.parent}", "name=demo-s0", "seed=1"]
    assert main(argv) == 2
    error = one_line_error(capsys)
    assert "(seed 0 there, seed 1 now)" in error and "--redo-from base" in error and "name=<new name>" in error
