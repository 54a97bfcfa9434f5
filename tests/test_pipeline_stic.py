"""STIC in a schedule: caption SFT (`targets: caption`) -> STIC pairs from the caption model's own descriptions
(`dpo.pairs: stic`) -> description-infused SFT (`data.describe`, `$description`), on the tiny model; the named
corruptions; the config checks; fingerprints."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reasoner.config import load
from reasoner.data.records.files import write_problems
from reasoner.data.stage.stic import CORRUPTIONS, color_jitter, described_problems, low_resolution
from reasoner.data.worlds import generate
from reasoner.errors import ReasonerError
from reasoner.pipeline import execute, load_run
from reasoner.prompts import DESCRIPTION_KEY, load_template
from reasoner.schedule import plan, stage_settings

CONFIG = """
name: stic
engine: local
seed: 0
model: {tiny_size: demo}
datasets:
  train: {source: synthetic, n: 48, level: 1, tasks: [bars, digits]}
  heldout: {source: synthetic, n: 6, level: 1, seed: 2, split: eval, tasks: [bars]}
eval: {datasets: [heldout], max_new_tokens: 8, describe_and_respond: {datasets: [heldout], max_new_tokens: 16}}
stages:
  - {name: caption, kind: sft, init: base, prompt: caption, data: {dataset: train, targets: caption}, lr: 3.0e-3,
     batch_size: 8, steps: 12}
  - name: stic
    kind: dpo
    data: {dataset: train, limit: 24}
    dpo: {pairs: stic, beta: 0.1, nll_alpha: 1.0, heldout: 0.25, stic: {max_new_tokens: 24}}
    lr: 1.0e-4
    batch_size: 4
    steps: 3
  - name: dif
    kind: sft
    prompt: reason_with_description
    data: {dataset: train, limit: 12, describe: {policy: stic, max_new_tokens: 24}}
    lr: 1.0e-3
    batch_size: 4
    steps: 2
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "stic.yaml"
    path.write_text(CONFIG)
    return path


def test_stic_schedule_runs_caches_its_texts_and_resumes(config, tmp_path):
    run = load_run(config, [f"output_dir={tmp_path}"])
    report = execute(run)
    stages = report.parent / "stages"
    # STIC pairs: one per image, the dispreferred way drawn per image, texts cached under the stage fingerprint.
    stic = json.loads((stages / "02_dpo" / "data" / "stic_pairs.json").read_text())
    manifest = json.loads((stages / "02_dpo" / "manifest.json").read_text())
    assert stic["fingerprint"] == manifest["fingerprint"]
    ways = [item[3] for item in stic["items"]]
    assert len(ways) == stic["stats"]["stic_images"] == 24 and set(ways) <= set(CORRUPTIONS) | {"bad_prompt"}
    assert sum(stic["stats"][f"stic_{way}"] for way in set(ways)) == 24
    metrics = manifest["metrics"]
    assert metrics["data/pairs"] == 24
    assert metrics["data/train_pairs"] + metrics["data/heldout_pairs"] + metrics["data/dropped_identical"] + \
        metrics["data/dropped_empty"] == 24  # fmt: skip
    assert metrics["dpo_eval/start_accuracy"] == 0.5 and "dpo_eval/accuracy" in metrics
    # Each pair trains on the good prompt (the caption template) as written.
    pairs = json.loads((stages / "02_dpo" / "data" / "pairs.json").read_text())["items"]
    assert {pid for pid, _ in pairs} <= {item[0] for item in stic["items"]}
    # Description-infused SFT: the stic model's descriptions, cached; the prompt shows them with the image.
    described = json.loads((stages / "03_sft" / "data" / "descriptions.json").read_text())
    assert len(described["items"]) == 12 and all(isinstance(text, str) for _, text in described["items"])
    dif = json.loads((stages / "03_sft" / "manifest.json").read_text())
    assert dif["prompt"]["name"] == "reason_with_description"
    assert dif["metrics"]["data/prompt_tokens_min"] > 0
    # The dif stage is evaluated with the run's prompt (no description), like every stage, and every stage also
    # describe-and-respond: its own descriptions (kept beside the scores) in the answering prompt.
    assert json.loads((stages / "03_sft" / "eval" / "heldout" / "scores.json").read_text())["n"] == 6
    for stage in ("00_base", "01_sft", "02_dpo", "03_sft"):
        dar = stages / stage / "eval" / "heldout-dar"
        assert json.loads((dar / "scores.json").read_text())["n"] == 6
        assert len(json.loads((dar / "descriptions.json").read_text())) == 6
    fingerprints = {json.loads((stages / "03_sft" / "eval" / name / "scores.json").read_text())["fingerprint"]
                    for name in ("heldout", "heldout-dar")}  # fmt: skip
    assert len(fingerprints) == 2
    assert "heldout-dar" in json.loads((report.parent / "report.json").read_text())["datasets"]
    # Resume: a stage redone from its data reuses the cached texts (no model describes again).
    for stage in ("02_dpo", "03_sft"):
        (stages / stage / "manifest.json").unlink()
    texts = (stages / "02_dpo" / "data" / "stic_pairs.json").read_text()
    execute(load_run(config, [f"output_dir={tmp_path}"]))
    assert (stages / "02_dpo" / "data" / "stic_pairs.json").read_text() == texts
    assert json.loads((stages / "03_sft" / "data" / "descriptions.json").read_text()) == described


def test_captions_as_targets_need_captions(tmp_path):
    problems = [replace(p, caption=None) for p in generate("bars", 4, level=1, seed=0, split="train")]
    data = write_problems(problems, tmp_path / "plain.jsonl")
    config = tmp_path / "cap.yaml"
    config.write_text(
        "name: cap\nengine: local\nmodel: {tiny_size: demo}\n"
        f"datasets: {{plain: {{source: file, path: {data}}}}}\n"
        "stages:\n  - {kind: sft, prompt: caption, data: {dataset: plain, targets: caption}, steps: 1, batch_size: 2}\n"
    )
    with pytest.raises(ReasonerError, match="stages.sft1.data.targets: caption, but none of the 4 problems of "
                                            "dataset 'plain' has a caption"):  # fmt: skip
        execute(load_run(config, [f"output_dir={tmp_path}"]))


def test_descriptions_are_made_once_per_image_and_empty_without_one(jittered_model_dir):
    from reasoner.generation import HFGenerator

    bars = generate("bars", 2, level=1, seed=0, split="train")
    twin = replace(bars[0], id="twin", question="Which bar is the shortest?")  # the same picture, another question
    text_only = replace(bars[1], id="text-only", images=[])
    generator = HFGenerator.from_pretrained(jittered_model_dir, show_progress=False)
    described = described_problems(generator, [*bars, twin, text_only], load_template("caption"), max_new_tokens=8)
    texts = {p.id: p.metadata[DESCRIPTION_KEY] for p in described}
    assert texts[bars[0].id] and texts["twin"] == texts[bars[0].id] and texts["text-only"] == ""
    assert [p.id for p in described] == [bars[0].id, bars[1].id, "twin", "text-only"]


def test_corruptions_are_seeded_and_keep_the_layout():
    image = generate("count", 1, level=2, seed=0, split="train")[0].images[0].load()
    jittered = color_jitter(image, random.Random(1))
    assert jittered.size == image.size and jittered.tobytes() != image.tobytes()
    assert color_jitter(image, random.Random(1)).tobytes() == jittered.tobytes()
    # Hue turns: white (no saturation) stays white, so shapes keep their places; their colours change.
    white = (np.asarray(image) == 255).all(-1)
    assert white.any() and (np.asarray(jittered)[white] == 255).all()
    small = low_resolution(image, random.Random(1))
    assert small.size == image.size and small.tobytes() != image.tobytes()
    assert low_resolution(image, random.Random(1)).tobytes() == small.tobytes()
    assert isinstance(small, Image.Image) and set(CORRUPTIONS) == {"color_jitter", "low_resolution"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("stages.stic.dpo.stic.dispreferred=[blur]", "stages[1] (stic).dpo.stic.dispreferred: ['blur'] is not allowed; "
         "allowed: a non-empty list without repeats of bad_prompt, color_jitter, low_resolution"),
        ("stages.stic.dpo.stic.dispreferred=[]", "dpo.stic.dispreferred: [] is not allowed"),
        ("stages.stic.dpo.pairs=file", "a kind=dpo stage with dpo.pairs: file trains on a dataset with source=preference"),
        ("stages.caption.dpo.stic.max_new_tokens=8", "dpo: settings given for a sft stage"),
        ("stages.dif.data.describe.policy=nowhere", "stages[2] (dif).data.describe.policy: 'nowhere' is not allowed; "
         "allowed: init, base, caption, stic"),
        ("stages.stic.data.describe.policy=caption", "stages[1] (stic).data: a dpo stage takes only data.dataset"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key(config, override, message):
    with pytest.raises(ReasonerError) as err:
        load(config, [override])
    assert message in str(err.value)


@pytest.mark.parametrize(
    "override, message",
    [
        ("stages.dif.data.describe.policy=", "stages.dif.prompt: template 'reason_with_description' uses $description; "
         "set stages.dif.data.describe.policy"),
        ("stages.caption.data.describe.policy=base", "stages.caption.data.describe.policy: 'base' given, but the "
         "stage's prompt 'caption' does not use $description"),
        ("prompt=reason_with_description", "prompt: template 'reason_with_description' uses $description"),
        ("stages.stic.dpo.stic.bad_prompt=nothing_here", "stages.stic.dpo.stic.bad_prompt: prompt template "
         "'nothing_here' not found"),
        ("stages.dif.data.describe.prompt=nothing_here", "stages.dif.data.describe.prompt: prompt template"),
        ("eval.describe_and_respond.datasets=[train]", "eval.describe_and_respond.datasets: 'train' is not allowed; "
         "allowed: sets of eval.datasets (heldout)"),
        ("eval.describe_and_respond.prompt=reason", "eval.describe_and_respond.prompt: template 'reason' does not "
         "use $description"),
    ],
)  # fmt: skip
def test_description_prompts_are_checked_before_any_work(config, tmp_path, override, message):
    with pytest.raises(ReasonerError) as err:
        load_run(config, [f"output_dir={tmp_path}", override])
    assert message in str(err.value)
    assert not (tmp_path / "stic").exists()


def test_fingerprints_cover_what_makes_the_texts(config):
    sha = load_template("reason").sha256
    base = [p.fingerprint for p in plan(load(config), sha)]
    for override, changed in [
        ("stages.stic.dpo.stic.dispreferred=[bad_prompt]", 2),
        ("stages.stic.dpo.stic.good_prompt=reason", 2),
        ("stages.stic.dpo.stic.max_new_tokens=12", 2),
        ("stages.dif.data.describe.policy=caption", 3),
        ("stages.dif.data.describe.max_new_tokens=12", 3),
        ("stages.caption.steps=13", 3),  # the describer's fingerprint is an input of the descriptions
    ]:
        now = [p.fingerprint for p in plan(load(config, [override]), sha)]
        assert now[changed] != base[changed], override
    # The new keys count only away from their defaults: a stage without descriptions or STIC pairs fingerprints the
    # settings it had before they existed (the golden tests pin the demo's fingerprints).
    caption, stic, dif = load(config).stages
    assert "describe" not in stage_settings(caption)["data"] and "describe" in stage_settings(dif)["data"]
    assert {"pairs", "stic"} <= set(stage_settings(stic)["dpo"]) and "dpo" not in stage_settings(caption)
    assert "describe" not in stage_settings(stic)["data"]
