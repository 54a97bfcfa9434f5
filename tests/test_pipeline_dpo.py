"""A `kind: dpo` stage in a schedule: config checks, the preference file's errors, the plan, the contamination guard,
the verl engine's refusal, and a run end to end on the tiny model (data -> train -> manifest -> eval -> report)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reasoner.cli import main
from reasoner.config import load
from reasoner.data.records.preference import read_preference_file
from reasoner.data.sets.datasets import Datasets
from reasoner.data.stage import contamination
from reasoner.engines.verl.engine import validate_plan
from reasoner.errors import ReasonerError
from reasoner.pipeline import execute, load_run
from reasoner.schedule import plan

CONFIG = """
name: dpo
engine: local
seed: 0
model: {tiny_size: demo}
datasets:
  pairs: {source: preference, path: PAIRS}
  heldout: {source: synthetic, n: 6, level: 1, seed: 2, split: eval, tasks: [bars]}
eval: {datasets: [heldout], max_new_tokens: 8}
stages:
  - kind: dpo
    data: {dataset: pairs}
    steps: 6
    batch_size: 4
    lr: 1.0e-3
    dpo: {beta: 0.2, nll_alpha: 0.1, heldout: 0.25}
"""


def write_config(tmp_path: Path, pairs: Path, text: str = CONFIG) -> Path:
    config = tmp_path / "dpo.yaml"
    config.write_text(text.replace("PAIRS", str(pairs)))
    return config


@pytest.fixture(scope="module")
def pairs(write_preference_file, tmp_path_factory) -> Path:
    return write_preference_file(tmp_path_factory.mktemp("pairs"), n=32)


def test_dpo_stage_runs_end_to_end_with_manifest_eval_and_report(pairs, tmp_path, capsys):
    config = write_config(tmp_path, pairs)
    assert main(["run", str(config), f"output_dir={tmp_path}", "--plan"]) == 0
    shown = capsys.readouterr().out
    assert "dpo1: from base, data pairs (preference pairs, beta=0.2, nll_alpha=0.1, heldout=0.25)" in shown
    report = execute(load_run(config, [f"output_dir={tmp_path}"]))
    stage = report.parent / "stages" / "01_dpo"
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["kind"] == "dpo" and manifest["prompt"]["name"] == "pair-prompt"
    metrics = manifest["metrics"]
    assert metrics["data/pairs"] == len(read_preference_file(pairs)) and metrics["data/heldout_pairs"] >= 1
    assert metrics["dpo_eval/start_accuracy"] == 0.5 and "dpo_eval/accuracy" in metrics and metrics["steps"] == 6
    assert (stage / "ckpt" / "reference_logps.json").is_file() and (stage / "data" / "pairs.json").is_file()
    assert json.loads((stage / "eval" / "heldout" / "scores.json").read_text())["n"] == 6
    assert [s["name"] for s in json.loads((report.parent / "report.json").read_text())["stages"]] == ["base", "dpo1"]
    # A rerun does no work; the stage's fingerprint covers its dpo settings.
    execute(load_run(config, [f"output_dir={tmp_path}"]))
    with pytest.raises(ReasonerError, match="finished with a different config"):
        execute(load_run(config, [f"output_dir={tmp_path}", "stages.dpo1.dpo.beta=0.3"]))


def test_fingerprint_covers_dpo_settings_and_other_kinds_ignore_the_section(pairs, tmp_path):
    config = write_config(tmp_path, pairs)
    base = plan(load(config), "sha")[1].fingerprint
    for override in ("stages.dpo1.dpo.beta=0.3", "stages.dpo1.dpo.nll_alpha=0", "stages.dpo1.dpo.heldout=0.5",
                     "seed=1", "model.tiny_seed=5"):  # fmt: skip
        assert plan(load(config, [override]), "sha")[1].fingerprint != base, override
    assert plan(load(config, ["stages.dpo1.max_nonfinite_skips=9"]), "sha")[1].fingerprint == base


@pytest.mark.parametrize(
    "override, message",
    [
        ("stages.dpo1.dpo.beta=0", "stages[0] (dpo1).dpo.beta: 0.0 is not allowed; allowed: beta > 0"),
        ("stages.dpo1.dpo.heldout=1", "stages[0] (dpo1).dpo.heldout: 1.0 is not allowed; allowed: 0 <= heldout < 1"),
        ("stages.dpo1.dpo.nll_alpha=-1", "stages[0] (dpo1).dpo.nll_alpha: -1.0 is not allowed; allowed: nll_alpha >= 0"),
        ("eval.datasets=[pairs]", "eval.datasets: 'pairs' is a preference set"),
        ("stages.dpo1.data.dataset=heldout", "a kind=dpo stage with dpo.pairs: file trains on a dataset with source=preference"),
        ("stages.dpo1.kind=sft", "only kind=dpo stages train on preference pairs"),
        ("stages.dpo1.data.difficulty=hard", "a dpo stage takes only data.dataset"),
        ("stages.dpo1.prompt=caption", "a dpo stage sends each pair's own prompt as written"),
    ],
)
def test_config_errors_name_the_key(pairs, tmp_path, override, message):
    with pytest.raises(ReasonerError) as err:
        load(write_config(tmp_path, pairs), [override])
    assert message in str(err.value)


@pytest.mark.parametrize(
    "line, field",
    [
        ('{"id": "a", "image": "x.png", "prompt": "p", "chosen": "c"}', "field 'rejected' is missing"),
        ('{"id": "a", "image": "x.png", "prompt": "p", "chosen": 3, "rejected": "r"}', "field 'chosen' must be a string"),
        ('{"id": "a", "image": "x.png", "prompt": "p", "chosen": "c", "rejected": "r", "extra": 1}', "unknown field"),
        ('{"id": "a", "image": "missing.png", "prompt": "p", "chosen": "c", "rejected": "r"}', "field 'image'"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_preference_row_fails_in_one_line_naming_file_line_and_field(pairs, tmp_path, line, field):
    bad = tmp_path / "bad.jsonl"
    good = pairs.read_text().splitlines()[0].replace('"images/', f'"{pairs.parent}/images/')
    bad.write_text(good + "\n" + line + "\n")
    with pytest.raises(ReasonerError) as err:
        read_preference_file(bad)
    assert str(err.value).startswith(f"{bad}: line 2: ") and field in str(err.value)
    assert "\n" not in str(err.value)


def test_empty_and_identical_pairs_are_dropped_and_counted(tmp_path, pairs):
    from reasoner.data.stage.preference import select_pairs

    rows = read_preference_file(pairs)[:6]
    rows[0].metadata["rejected"] = rows[0].metadata["chosen"]
    rows[1].metadata["chosen"] = "  "
    kept, stats = select_pairs(rows, 0.25, 0, stage="dpo1")
    assert stats == {"pairs": 6, "dropped_empty": 1, "dropped_identical": 1, "train_pairs": 3, "heldout_pairs": 1}
    assert [p.heldout for p in kept] == [False, False, False, True]


def test_contamination_guard_sees_a_preference_sets_images(write_preference_file, tmp_path):
    """Pairs drawn on the very images of the evaluation set stop the run before any work."""
    pairs = write_preference_file(tmp_path / "leak", tasks=("bars",), n=6, seed=2, split="eval")
    run = load(write_config(tmp_path, pairs))
    with pytest.raises(ReasonerError, match=r"stage dpo1: \d+ of \d+ training problems \(dataset 'pairs'\) overlap"):
        contamination.check_run(run, Datasets(run).__getitem__)


VERL_CPU = ["engine=verl", "cluster.device=cpu", "cluster.gpus_per_node=1", "cluster.rollout_tensor_parallel=1"]


def test_verl_engine_plans_a_dpo_stage_on_its_sft_trainer(pairs, tmp_path):
    """--plan composes and validates verl's SFT config with the pair dataset; what it cannot carry is refused."""
    run = load(write_config(tmp_path, pairs), VERL_CPU)
    [checked] = validate_plan(run, plan(run, "sha"))
    cfg = checked.config
    assert (checked.kind, checked.config_name) == ("dpo", "sft_trainer_engine")
    assert (cfg.data.custom_cls.path, cfg.data.custom_cls.name) == ("pkg://reasoner.engines.verl.dpo", "PairDataset")
    assert (cfg.data.use_dynamic_bsz, cfg.trainer.balance_batch) == (False, False)
    refusals = {
        "stages.dpo1.dpo.eval_every=2": "verl engine: stages.dpo1.dpo.eval_every: 2 is not carried by the verl engine",
        "cluster.micro_batch_size_per_gpu=3": "micro_batch_size_per_gpu (3) must be even for DPO",
    }
    for override, message in refusals.items():
        run = load(write_config(tmp_path, pairs), [*VERL_CPU, override])
        with pytest.raises(ReasonerError, match=re.escape(message)):
            validate_plan(run, plan(run, "sha"))
