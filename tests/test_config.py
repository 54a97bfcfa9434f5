"""Config loading: one merge path, errors that name the key and the allowed values."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from reasoner import config
from reasoner.config import loading as config_load
from reasoner.errors import ReasonerError

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "configs" / "demo.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


MINIMAL = """
name: t
model: {tiny_size: demo}
datasets:
  train: {source: synthetic, n: 10}
stages:
  - {kind: sft, data: {dataset: train}}
  - {kind: grpo, data: {dataset: train}, steps: 2}
"""


def test_demo_config_loads_with_named_stages():
    run = config.load(DEMO)
    assert [s.name for s in run.stages] == ["teacher", "sft1", "grpo1", "sft2", "grpo2"]
    assert run.stages[0].prompt == "reason_from_caption" and run.stages[1].data.distill.reasoner == "teacher"
    assert run.stages[2].kind == config.StageKind.grpo
    assert run.stages[3].data.targets == config.SFTTargets.self


def test_overrides_by_index_and_by_stage_name(tmp_path):
    run = config.load(write(tmp_path, MINIMAL), ["stages.grpo1.steps=7", "stages.0.lr=0.5", "seed=3"])
    assert run.stages[1].steps == 7
    assert run.stages[0].lr == 0.5
    assert run.seed == 3


def test_null_seeds_are_filled_from_the_run_seed_explicit_ones_kept(tmp_path):
    more = "  probe: {source: perception, n: 4}\n  fixed: {source: synthetic, n: 4, seed: 7}\n"
    more += "  real: {source: file, path: x.jsonl}\n"
    text = MINIMAL.replace("stages:", more + "stages:")
    run = config.load(write(tmp_path, text), ["seed=5"])
    assert run.model.tiny_seed == 5
    seeds = {name: ds.seed for name, ds in run.datasets.items()}
    assert seeds == {"train": config_load.derive_seed(5, "dataset", "train"), "probe": config_load.derive_seed(5, "dataset", "probe"),
                     "fixed": 7, "real": None}  # fmt: skip
    assert len(set(seeds.values())) == 4  # each name its own stream
    assert config.load(write(tmp_path, text), ["seed=5", "model.tiny_seed=0"]).model.tiny_seed == 0
    assert 0 <= config_load.derive_seed(2**40, "x") < 2**31


def test_distill_job_fills_null_seeds_from_its_seed():
    from reasoner.cli.distill_job import load_job

    job = load_job(REPO / "configs" / "distill-demo.yaml", ["seed=4"])
    assert job.model.tiny_seed == 4 and job.dataset.seed == 1  # the file's dataset seed is explicit


@pytest.mark.parametrize(
    "override, expected",
    [
        ("stages.0.lrr=1", "stages[0].lrr"),
        ("stages.0.kind=sftt", "sft, grpo"),
        ("stages.1.grpo.kl_coef=abc", "stages[1].grpo.kl_coef"),
        ("engine=slurm", "local, verl"),
        ("stages.grpo9.steps=1", "sft1, grpo1"),
        ("nokey", "key=value"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path, override, expected):
    with pytest.raises(ReasonerError) as err:
        config.load(write(tmp_path, MINIMAL), [override])
    assert expected in str(err.value)


def test_unknown_key_in_yaml_lists_allowed_keys(tmp_path):
    text = MINIMAL.replace("steps: 2", "stepz: 2")
    with pytest.raises(ReasonerError) as err:
        config.load(write(tmp_path, text))
    message = str(err.value)
    assert "stages[1].stepz" in message and "steps" in message and str(tmp_path) in message


@pytest.mark.parametrize(
    "edit, expected",
    [
        (("dataset: train}}", "dataset: trian}}"), "'trian' is not in datasets"),
        (("kind: grpo,", "kind: grpo, init: sft9,"), "init: 'sft9' is not allowed; allowed: previous, base, sft1"),
        (("{dataset: train}}", "{dataset: train, difficulty: hard}}"), "only for kind=grpo"),
        (("model: {tiny_size: demo}", "model: {tiny_size: demo, path: /x}"), "exactly one of model.path"),
        (("model: {tiny_size: demo}", "model: {path: /x, tiny_family: qwen3-vl}"), "model.tiny_family: only with"),
        (("n: 10", "n: 10, level: 7"), "allowed: 1 <= level <= 3"),
        (("kind: grpo,", "kind: grpoo,"), "stages[1].kind: 'grpoo' is not allowed; allowed: sft, grpo"),
    ],
)
def test_impossible_combinations(tmp_path, edit, expected):
    text = MINIMAL.replace(*edit, 1)
    assert text != MINIMAL
    with pytest.raises(ReasonerError) as err:
        config.load(write(tmp_path, text))
    assert expected in str(err.value)


def test_grpo_settings_on_sft_stage_rejected(tmp_path):
    with pytest.raises(ReasonerError, match=r"stages\[0\] \(sft1\)\.grpo"):
        config.load(write(tmp_path, MINIMAL), ["stages.0.grpo.kl_coef=0.5"])


def test_self_targets_need_an_earlier_stage(tmp_path):
    text = MINIMAL.replace("{kind: sft, data: {dataset: train}}", "{kind: sft, data: {dataset: train, targets: self}}")
    with pytest.raises(ReasonerError, match="needs an earlier stage"):
        config.load(write(tmp_path, text))


def test_typo_fails_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(ReasonerError):
        config.load(DEMO, ["stages.0.batch_sise=3"])
    assert time.perf_counter() - start < 2.0


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ReasonerError, match="not found"):
        config.load(tmp_path / "nope.yaml")
    with pytest.raises(ReasonerError, match="not valid YAML"):
        config.load(write(tmp_path, "name: [unclosed"))


# Each value below was accepted before (or crashed only after earlier stages trained, without naming the key).
BAD_NUMBERS = [
    ("stages.grpo1.grpo.sampling.temperature=-1", "stages[2] (grpo1).grpo.sampling.temperature", "temperature > 0"),
    ("stages.grpo1.grpo.sampling.top_p=0", "stages[2] (grpo1).grpo.sampling.top_p", "0 < top_p <= 1"),
    ("stages.grpo1.steps=-5", "stages[2] (grpo1).steps", "steps >= 0"),
    ("eval.batch_size=0", "eval.batch_size", "batch_size >= 1"),
    ("stages.sft1.checkpoint_every=-1", "stages[1] (sft1).checkpoint_every", "checkpoint_every >= 0"),
    ("stages.sft1.warmup_ratio=5", "stages[1] (sft1).warmup_ratio", "0 <= warmup_ratio <= 1"),
    ("stages.sft1.max_grad_norm=-1", "stages[1] (sft1).max_grad_norm", "max_grad_norm >= 0"),
    ("stages.grpo1.grpo.kl_coef=-1", "stages[2] (grpo1).grpo.kl_coef", "kl_coef >= 0"),
    ("stages.grpo1.grpo.clip_ratio=-1", "stages[2] (grpo1).grpo.clip_ratio", "0 < clip_ratio <= 1"),
    ("threads=0", "threads", "threads >= 1"),
    ("processes=0", "processes", "processes >= 1"),
    ("stages.grpo1.grpo.prompts_per_step=3", "stages[2] (grpo1).grpo.prompts_per_step", "a multiple of 2"),
    ("stages.sft1.batch_size=5", "stages[1] (sft1).batch_size", "a multiple of 2"),
    ("datasets.train.tasks=[nope]", "datasets.train.tasks", "count, digits, bars"),
    ("stages.grpo1.lr=nan", "stages[2] (grpo1).lr", "lr > 0"),
    ("stages.grpo1.lr=.inf", "stages[2] (grpo1).lr", "lr > 0"),
    ("stages.grpo1.grpo.prompts_per_step=0", "stages[2] (grpo1).grpo.prompts_per_step", ">= 1"),
    ("stages.grpo1.grpo.sampling.max_new_tokens=0", "stages[2] (grpo1).grpo.sampling.max_new_tokens", ">= 1"),
    ("stages.grpo1.grpo.updates_per_batch=0", "stages[2] (grpo1).grpo.updates_per_batch", ">= 1"),
    ("stages.sft2.data.selfdistill.sampling.n=0", "stages[3] (sft2).data.selfdistill.sampling.n", ">= 1"),
    ("stages.sft2.data.limit=-3", "stages[3] (sft2).data.limit", "limit >= 0"),
    ("datasets.train.n=-3", "datasets.train.n", "n >= 0"),
    ("cluster.gpu_memory_utilization=1.5", "cluster.gpu_memory_utilization", "0 < gpu_memory_utilization <= 1"),
    ("model.tiny_size=huge", "model.tiny_size", "demo"),
    ("model.tiny_family=qwen4", "model.tiny_family", "'qwen4' is not allowed; allowed: qwen2.5-vl, qwen3-vl"),
    ("stages.0.name=previous", "stages[0].name", "reserved"),
    ("stages.0.name=5", "stages[0].name", "a letter, then"),
    ("stages.0.name=a.b/../c", "stages[0].name", "a letter, then"),
    ("prompt=nope", "prompt", "available: ['caption'"),
    ("stages.teacher.prompt=nope", "stages.teacher.prompt", "'reason_from_caption'"),
]


@pytest.mark.parametrize("override, key, allowed", BAD_NUMBERS, ids=[b[0] for b in BAD_NUMBERS])
def test_bad_values_fail_at_plan_naming_key_and_range(override, key, allowed, capsys):
    from reasoner.cli import main

    start = time.perf_counter()
    status = main(["run", str(DEMO), "--plan", override])
    elapsed = time.perf_counter() - start
    message = capsys.readouterr().err
    assert status == 2
    assert f"{key}: " in message and allowed in message, message
    assert "Traceback" not in message and elapsed < 2.0


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("device", "gpu", "auto, cpu, cuda"),
        ("datasets.train.split", "test", "train, eval"),
        ("engine", "slurm", "local, verl"),
    ],
)
def test_a_value_outside_an_enum_names_key_and_values_in_yaml_and_as_override(tmp_path, key, value, allowed):
    expected = f"{key}: {value!r} is not allowed; allowed: {allowed}"
    with pytest.raises(ReasonerError, match=re.escape(expected)):
        config.load(write(tmp_path, MINIMAL), [f"{key}={value}"])
    section, _, last = key.rpartition(".")
    text = MINIMAL + f"{last}: {value}\n" if not section else MINIMAL.replace("n: 10}", f"n: 10, {last}: {value}}}")
    with pytest.raises(ReasonerError, match=re.escape(expected)):
        config.load(write(tmp_path, text))


def test_a_distill_job_names_its_backend_and_device_values(tmp_path):
    from reasoner.cli.distill_job import load_job

    path = write(tmp_path, "name: d\ndataset: {source: synthetic, n: 4}\ndistill: {reasoner: /m}\n")
    with pytest.raises(ReasonerError, match=re.escape("backend: 'tgi' is not allowed; allowed: hf, vllm")):
        load_job(path, ["backend=tgi"])
    with pytest.raises(ReasonerError, match=re.escape("device: 'tpu' is not allowed; allowed: auto, cpu, cuda")):
        load_job(path, ["device=tpu"])
    job = load_job(path, ["device=auto", "dataset.split=eval"])
    assert (job.device, job.dataset.split, job.backend) == (config.Device.auto, config.Split.eval, "hf")


def test_every_number_of_the_schemas_has_a_range():
    from reasoner.cli.distill_job import DistillJobConfig
    from reasoner.config.ranges import Range, numeric_fields, range_of

    fields = numeric_fields(config.RunConfig) + numeric_fields(DistillJobConfig)
    missing = [f"{cls.__name__}.{f.name}" for cls, f in fields if not isinstance(range_of(f), Range)]
    assert len(fields) > 50 and not missing, missing
    assert (config.PassRateSampling, "top_p") in [(cls, f.name) for cls, f in fields]  # subclasses redeclare theirs


def test_ranges_live_on_the_fields_and_survive_omegaconf():
    import dataclasses

    from omegaconf import OmegaConf

    from reasoner.config.ranges import PROBABILITY, range_of

    top_p = {f.name: f for f in dataclasses.fields(config.SamplingConfig)}["top_p"]
    assert range_of(top_p) == PROBABILITY and top_p.default == 1.0
    loaded = OmegaConf.to_object(OmegaConf.structured(config.RunConfig(name="x")))
    assert type(loaded) is config.RunConfig and loaded == config.RunConfig(name="x")
    assert config.GRPOConfig().sampling == config.SamplingConfig(n=4, max_new_tokens=48)


def test_cluster_shape_is_checked_at_load_on_the_verl_engine(tmp_path):
    path = write(tmp_path, MINIMAL)
    bad = ["cluster.gpus_per_node=6", "cluster.rollout_tensor_parallel=4", "cluster.min_image_pixels=300000"]
    config.load(path, bad)  # the local engine ignores the cluster section
    with pytest.raises(ReasonerError) as err:
        config.load(path, ["engine=verl", *bad])
    message = str(err.value)
    assert "cluster.rollout_tensor_parallel: 4 must divide the 6 GPUs (nodes x gpus_per_node)" in message
    assert "cluster.min_image_pixels: must not exceed cluster.max_image_pixels" in message
    with pytest.raises(ReasonerError, match=re.escape("cluster.rollout_tensor_parallel: must be 1 with cluster.device: cpu, got 2")):
        config.load(path, ["engine=verl", "cluster.device=cpu", "cluster.gpus_per_node=2"])
    with pytest.raises(ReasonerError, match=re.escape("cluster.gpus_per_node: 0 is not allowed; allowed: gpus_per_node >= 1")):
        config.load(path, ["engine=verl", "cluster.gpus_per_node=0"])


def test_bad_number_in_a_distill_job_config(tmp_path):
    from reasoner.cli.distill_job import load_job

    path = write(tmp_path, "name: d\ndataset: {source: synthetic, n: 4}\ndistill: {reasoner: base}\n")
    with pytest.raises(ReasonerError, match=r"distill\.sampling\.top_p: 0.0 is not allowed; allowed: 0 < top_p <= 1"):
        load_job(path, ["distill.sampling.top_p=0"])
    with pytest.raises(ReasonerError, match=r"limit: -3 is not allowed"):
        load_job(path, ["limit=-3"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.n=0", "dataset.n: must be > 0 for source=synthetic"),
        ("dataset.source=mathvision", "dataset.path: required for source=mathvision"),
        ("dataset.tasks=[nope]", "dataset.tasks: 'nope' not allowed; allowed: count, digits, bars"),
    ],
)
def test_a_distill_job_dataset_is_checked_as_a_run_dataset(tmp_path, override, message):
    from reasoner.cli.distill_job import load_job

    path = write(tmp_path, "name: d\ndataset: {source: synthetic, n: 4}\ndistill: {reasoner: base}\nmodel: {tiny_size: demo}\n")
    with pytest.raises(ReasonerError, match=re.escape(message)):
        load_job(path, [override])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("stages.grpo1.grpo.samples_per_prompt=8", "stages[2].grpo.sampling.n"),
        ("stages.grpo1.grpo.temperature=0.7", "stages[2].grpo.sampling.temperature"),
        ("stages.sft2.data.samples_per_problem=8", "stages[3].data.selfdistill.sampling.n"),
        ("stages.sft2.data.policy=grpo1", "stages[3].data.selfdistill.policy"),
        ("stages.grpo1.data.pass_rate.samples=8", "stages[2].data.pass_rate.sampling.n"),
    ],
)
def test_an_old_key_as_override_fails_with_its_new_spelling(old, new):
    with pytest.raises(ReasonerError, match=re.escape(f"renamed; write {new}") + "$"):
        config.load(DEMO, [old])


OLD_KEYS = """
name: old
model: {tiny_size: demo}
datasets:
  train: {source: synthetic, n: 10}
stages:
  - {kind: sft, data: {dataset: train}}
  - {kind: grpo, data: {dataset: train}, grpo: {samples_per_prompt: 4, prompts_per_step: 16}}
  - {kind: sft, data: {dataset: train, targets: self, samples_per_problem: 4, max_new_tokens: 48}}
"""


def test_an_old_key_in_yaml_fails_with_its_new_spelling(tmp_path):
    with pytest.raises(ReasonerError) as err:
        config.load(write(tmp_path, OLD_KEYS))
    message = str(err.value)
    assert "stages[1].grpo.samples_per_prompt: renamed; write stages[1].grpo.sampling.n" in message
    assert "stages[2].data.samples_per_problem: renamed; write stages[2].data.selfdistill.sampling.n" in message
    assert "stages[2].data.max_new_tokens: renamed; write stages[2].data.selfdistill.sampling.max_new_tokens" in message


def test_a_targets_section_belongs_to_its_own_targets():
    with pytest.raises(ReasonerError, match=r"data.selfdistill: given, but data.targets is not self"):
        config.load(DEMO, ["stages.sft1.data.selfdistill.sampling.n=2"])
    with pytest.raises(ReasonerError, match=r"grpo.sampling.n: 1 is not allowed; allowed: n >= 2"):
        config.load(DEMO, ["stages.grpo1.grpo.sampling.n=1"])


def test_the_grpo_loss_family_keys_load_from_yaml_and_overrides(tmp_path):
    text = MINIMAL.replace(
        "steps: 2}",
        "steps: 2, grpo: {loss_agg_mode: seq-mean-token-sum-norm, policy_loss: gspo, clip_ratio_low: 0.0003, "
        "clip_ratio_high: 0.0004, norm_adv_by_std: false}}",
    )
    grpo = config.load(write(tmp_path, text)).stages[1].grpo
    assert (grpo.loss_agg_mode, grpo.policy_loss) == (config.LossAggMode("seq-mean-token-sum-norm"), config.PolicyLoss.gspo)
    assert (grpo.clip_ratio_low, grpo.clip_ratio_high, grpo.norm_adv_by_std) == (0.0003, 0.0004, False)
    assert config.to_dict(grpo)["loss_agg_mode"] == "seq-mean-token-sum-norm"  # as config.yaml records it
    default = config.load(write(tmp_path, MINIMAL)).stages[1].grpo
    assert (default.loss_agg_mode.value, default.policy_loss.value, default.clip_ratio_low) == ("token-mean", "vanilla", None)
    over = config.load(write(tmp_path, MINIMAL), ["stages.grpo1.grpo.loss_agg_mode=seq-mean-token-mean"])
    assert over.stages[1].grpo.loss_agg_mode.value == "seq-mean-token-mean"
    modes = "token-mean, seq-mean-token-mean, seq-mean-token-sum, seq-mean-token-sum-norm"
    for bad in (["stages.grpo1.grpo.loss_agg_mode=token-sum"], []):
        path = write(tmp_path, MINIMAL.replace("steps: 2}", "steps: 2, grpo: {loss_agg_mode: token-sum}}") if not bad
                     else MINIMAL)  # fmt: skip
        with pytest.raises(ReasonerError, match=re.escape(f"loss_agg_mode: 'token-sum' is not allowed; allowed: {modes}")):
            config.load(path, bad)
    with pytest.raises(ReasonerError, match=re.escape("grpo.clip_ratio_high: 0.0 is not allowed; allowed: clip_ratio_high > 0")):
        config.load(write(tmp_path, MINIMAL), ["stages.grpo1.grpo.clip_ratio_high=0.0"])


def test_a_stage_wildcard_sets_every_stage_and_grpo_keys_in_every_grpo_stage():
    run = config.load(DEMO, ["stages.*.grpo.clip_ratio_high=0.28", "stages.*.max_nonfinite_skips=7"])
    grpo = [s for s in run.stages if s.kind == config.StageKind.grpo]
    assert [s.grpo.clip_ratio_high for s in grpo] == [0.28, 0.28] and len(grpo) < len(run.stages)
    assert all(s.grpo == config.GRPOConfig() for s in run.stages if s not in grpo)  # SFT stages take no GRPO keys
    assert {s.max_nonfinite_skips for s in run.stages} == {7}
    # Applied in order: a later override of one stage wins over an earlier wildcard, and the other way round.
    run = config.load(DEMO, ["stages.*.grpo.kl_coef=0", "stages.grpo2.grpo.kl_coef=0.5"])
    assert [s.grpo.kl_coef for s in run.stages if s.kind.value == "grpo"] == [0.0, 0.5]
    sft_only = REPO / "configs" / "digits-sft.yaml"
    with pytest.raises(ReasonerError, match=re.escape("'stages.*.grpo.kl_coef': the config has no GRPO stage")):
        config.load(sft_only, ["stages.*.grpo.kl_coef=0"])


def test_a_fragment_file_among_the_overrides_applies_its_keys_in_place(tmp_path):
    fragment = tmp_path / "loss.yaml"
    fragment.write_text("# a preset\nstages.*.grpo.loss_agg_mode: seq-mean-token-mean\nstages.*.grpo.kl_coef: 0.0\n")
    run = config.load(DEMO, [str(fragment), "stages.grpo2.grpo.kl_coef=0.3"])
    grpo = [s.grpo for s in run.stages if s.kind.value == "grpo"]
    assert [g.loss_agg_mode.value for g in grpo] == ["seq-mean-token-mean"] * 2
    assert [g.kl_coef for g in grpo] == [0.0, 0.3]
    later = config.load(DEMO, ["stages.grpo2.grpo.kl_coef=0.3", str(fragment)])
    assert [s.grpo.kl_coef for s in later.stages if s.kind.value == "grpo"] == [0.0, 0.0]
    for text, message in [("[1, 2]\n", "must be a mapping of override keys"),
                          ("stages.*.grpo.kl_coef: [\n", "not valid YAML")]:  # fmt: skip
        fragment.write_text(text)
        with pytest.raises(ReasonerError, match=re.escape(f"fragment {fragment}: {message}")):
            config.load(DEMO, [str(fragment)])
    with pytest.raises(ReasonerError, match=re.escape(f"fragment {tmp_path / 'none.yaml'}: cannot read it")):
        config.load(DEMO, [str(tmp_path / "none.yaml")])
    fragment.write_text("stages.*.grpo.loss_agg_mode: token-summ\n")
    with pytest.raises(ReasonerError, match="loss_agg_mode: 'token-summ' is not allowed"):
        config.load(DEMO, [str(fragment)])
