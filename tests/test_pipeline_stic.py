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
        ("stages.caption.data.caption_mix.ratio=0.5", "stages[0] (caption).data.caption_mix: the stage's targets are "
         "captions already (data.targets: caption)"),
        ("stages.dif.data.caption_mix.ratio=-1", "stages[2] (dif).data.caption_mix.ratio: -1.0 is not allowed; "
         "allowed: ratio >= 0"),
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
        ("stages.dif.data.caption_mix={ratio: 0.5, prompt: reason_from_caption}", "stages.dif.data.caption_mix.prompt: "
         "template 'reason_from_caption' uses $caption; caption examples show the image alone"),
        ("stages.dif.data.caption_mix={ratio: 0.5, prompt: nothing_here}", "stages.dif.data.caption_mix.prompt: "
         "prompt template 'nothing_here' not found"),
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
        ("stages.dif.data.caption_mix.ratio=0.5", 3),
    ]:
        now = [p.fingerprint for p in plan(load(config, [override]), sha)]
        assert now[changed] != base[changed], override
    # The new keys count only away from their defaults: a stage without descriptions or STIC pairs fingerprints the
    # settings it had before they existed (the golden tests pin the demo's fingerprints).
    caption, stic, dif = load(config).stages
    assert "describe" not in stage_settings(caption)["data"] and "describe" in stage_settings(dif)["data"]
    assert {"pairs", "stic"} <= set(stage_settings(stic)["dpo"]) and "dpo" not in stage_settings(caption)
    assert "describe" not in stage_settings(stic)["data"]
    assert all("caption_mix" not in stage_settings(stage)["data"] for stage in (caption, stic, dif))
    mixed = plan(load(config, ["stages.dif.data.caption_mix.ratio=0.5"]), sha)[3].fingerprint
    assert plan(load(config, ["stages.dif.data.caption_mix={ratio: 0.5, prompt: describe_imaginative}"]), sha)[3]\
        .fingerprint != mixed  # the describing prompt's text counts  # fmt: skip


def test_caption_mix_adds_captions_shown_with_their_own_prompt(config, tmp_path, jittered_model_dir):
    """`data.caption_mix`: the stage also learns its images' exact captions, each example shown with the describing
    prompt (the local engine's batches as trained: the prompt tokens), one per distinct image, drawn by the seed."""
    import torch

    from reasoner.data.stage.selection import SFTExample
    from reasoner.engines.local.sft import encode_batch
    from reasoner.models.loading import load_model

    overrides = [f"output_dir={tmp_path}", "stages.dif.data.caption_mix.ratio=0.5", "stages.dif.steps=1"]
    run = load_run(config, overrides)
    execute(run)
    metrics = json.loads((run.dir.stage("03_sft").root / "manifest.json").read_text())["metrics"]
    assert metrics["data/caption_examples"] == 6 and metrics["data/kept"] == 12  # 0.5 x 12 reference chains
    # The same draw on a rerun; another seed, another draw (from the 12 problems' distinct images).
    from reasoner.data.stage.builders import StageContext, caption_mix

    problems = generate("bars", 6, level=1, seed=0, split="train") + generate("digits", 6, level=1, seed=0, split="train")
    def unused(*_):
        raise AssertionError("caption mixing loads no model")

    ctx = StageContext(run.plans[3], run.plans, load_template("reason"), tmp_path, 7, unused, unused)
    first = caption_mix(ctx, problems, 8)
    assert [e.problem.id for e in first] == [e.problem.id for e in caption_mix(ctx, problems, 8)]
    assert len(first) == 4 and len({e.problem.id for e in first}) == 4
    assert all(e.target == e.problem.caption.strip() and e.prompt == "caption" for e in first)
    assert len(caption_mix(ctx, problems, 100)) == 12  # at most one per distinct image
    # Trained with their own prompt: the caption example's prompt tokens are the caption template's.
    model, processor = load_model(jittered_model_dir)
    reasoning = SFTExample(problems[0], "<answer>1</answer>")
    batch = encode_batch(model, processor, [reasoning, first[0]], load_template("reason"), torch.device("cpu"))
    texts = processor.tokenizer.batch_decode(batch.prompts.inputs["input_ids"])
    caption_text = load_template("caption").text.split(".")[0]
    assert caption_text in texts[1] and caption_text not in texts[0]
