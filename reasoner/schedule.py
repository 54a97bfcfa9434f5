"""Planning, pure: RunConfig -> [StagePlan] with checkpoint chaining, fingerprints and done-ness.

A stage's fingerprint hashes everything that determines its model: its own settings, its dataset (with its seed),
the prompt template, the run seed and engine, and the fingerprints of the stages it starts from and samples from
(the base's: the model section, with the tiny model's seed, without `model.lora`: LoRA counts in each training
stage's fingerprint when on). A finished stage whose fingerprint no longer matches
the config is reported as `changed`, never silently reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from reasoner.config import (
    ClusterConfig,
    Difficulty,
    DPOConfig,
    GRPOConfig,
    RunConfig,
    SFTTargets,
    StageConfig,
    StageDataConfig,
    StageKind,
    fingerprint,
    to_dict,
)
from reasoner.errors import ReasonerError
from reasoner.prompts import load_template
from reasoner.rundir import DamagedFile, RunDir


class Status(str, Enum):
    done = "done"
    """manifest written with the same fingerprint"""
    changed = "changed"
    """finished, but with another config: needs --redo-from"""
    partial = "partial"
    """started, not finished: resumes from its last checkpoint or its start"""
    pending = "pending"
    damaged = "damaged"
    """its manifest cannot be read, or the model it names is gone: needs --redo-from"""


@dataclass(frozen=True)
class StagePlan:
    """One stage as planned: where it lives, which model it starts from, and its fingerprint."""

    index: int
    name: str
    kind: str
    """base | sft | grpo | dpo"""
    init: str | None
    """Name of the stage whose model this one starts from (None for the base)."""
    policy: str | None
    """Name of the stage whose model samples this stage's data: self-distilled SFT chains, or GRPO pass rates."""
    fingerprint: str
    config: StageConfig | None
    seed: int
    """Seed of everything random in the stage (data order, rollouts, sampled data, pass rates): the run seed plus
    the stage index, so `seed=N` changes every stage and stages of one run draw different streams."""

    @property
    def dir_name(self) -> str:
        return f"{self.index:02d}_{self.kind}"


UNFINGERPRINTED = ("max_nonfinite_skips",)
"""Stage keys outside the fingerprint: the non-finite guard's limit only decides whether a stage stops, so raising
it resumes a stopped stage, and runs made before the key existed keep their fingerprints."""


def plan(run: RunConfig, prompt_sha256: str) -> list[StagePlan]:
    """The base (stage 00) and every configured stage, in order, with resolved start models."""
    base = StagePlan(0, "base", "base", None, None, fingerprint(base_settings(run)), None, run.seed)
    plans = [base]
    by_name = {"base": base}
    for i, stage in enumerate(run.stages, start=1):
        init = _resolve(stage.init, plans)
        policy = None
        if stage.kind == StageKind.sft and stage.data.targets == SFTTargets.self:
            policy = _resolve(stage.data.selfdistill.policy, plans)
        elif stage.kind == StageKind.sft and stage.data.targets == SFTTargets.distill:
            # A reasoner trained in this run (a teacher stage): its fingerprint is an input of the chains.
            policy = stage.data.distill.reasoner if stage.data.distill.reasoner in by_name else None
        elif stage.kind == StageKind.grpo and stage.data.difficulty != Difficulty.all:
            # Pass rates come from another model: its fingerprint is an input of this stage's data.
            rater = stage.data.pass_rate.model
            policy = init if rater == "init" else rater
        # Chains (self-distilled, distilled) and pass rates are sampled, per generation call.
        sampled = (
            stage.data.targets != SFTTargets.reference
            if stage.kind == StageKind.sft
            else stage.data.difficulty != Difficulty.all
        )
        sampled = sampled or bool(generated_inputs(stage, init, by_name))
        inputs = {
            "stage": stage_settings(stage),
            "dataset": to_dict(run.datasets[stage.data.dataset]),
            "prompt": load_template(stage.prompt).sha256 if stage.prompt else prompt_sha256,
            "seed": run.seed,
            "engine": run.engine.value,
            # Prompt/image limits change what a verl stage trains on; the local engine does not read them.
            "cluster": cluster_settings(run.cluster) if run.engine.value == "verl" else None,
            "init": by_name[init].fingerprint,
            "policy": by_name[policy].fingerprint if policy else None,
            **generated_inputs(stage, init, by_name),
            **({"caption_mix_prompt": load_template(stage.data.caption_mix.prompt).sha256}
               if stage.data.caption_mix.ratio > 0 else {}),  # fmt: skip
            **(run.eval.batch_inputs() if sampled else {}),
            # Data-parallel processes sample other rollouts and round the summed gradients differently.
            **({"processes": run.processes} if run.processes > 1 and run.engine.value == "local" else {}),
            # LoRA trains other weights than full fine-tuning: counted only when on (earlier runs keep theirs).
            **({"lora": to_dict(run.model.lora)} if run.model.lora.enabled else {}),
        }
        current = StagePlan(i, stage.name, stage.kind.value, init, policy, fingerprint(inputs), stage, run.seed + i)
        plans.append(current)
        by_name[stage.name] = current
    return plans


def generated_inputs(stage: StageConfig, init: str, by_name: dict[str, StagePlan]) -> dict:
    """What generated descriptions depend on beyond the stage's settings: the describing model's fingerprint and
    the prompt templates' texts (STIC pairs: the start model, already an input, and its two prompts). Empty for
    a stage that generates no descriptions, so other stages keep their fingerprints."""
    if stage.kind == StageKind.dpo and stage.dpo.pairs.value == "stic":
        return {"stic_prompts": [load_template(stage.dpo.stic.good_prompt).sha256,
                                 load_template(stage.dpo.stic.bad_prompt).sha256]}  # fmt: skip
    describer = stage.data.describe.policy
    if stage.kind != StageKind.sft or not describer:
        return {}
    return {
        "describer": by_name[init if describer == "init" else describer].fingerprint,
        "describe_prompt": load_template(stage.data.describe.prompt).sha256,
    }


def base_settings(run: RunConfig) -> dict:
    """The model section as the base's fingerprint sees it: without `lora`, which changes how stages train, not
    the base model (so the base, and a run without LoRA, keep their fingerprints)."""
    return {key: value for key, value in to_dict(run.model).items() if key != "lora"}


CLUSTER_ADDED_KEYS = ("cpu_rollout", "remove_padding")
"""Cluster keys that joined the fingerprint later: counted only when not at their default, so verl runs made before
them keep their fingerprints (`cpu_kv_cache_gib`, a memory size, never changes what a stage trains)."""


def cluster_settings(cluster: ClusterConfig) -> dict:
    """The cluster section as fingerprinted on the verl engine (its prompt/image limits change what a stage trains)."""
    defaults = to_dict(ClusterConfig())
    return {
        key: value
        for key, value in to_dict(cluster).items()
        if key != "cpu_kv_cache_gib" and (key not in CLUSTER_ADDED_KEYS or value != defaults[key])
    }


GRPO_ADDED_KEYS = (
    "clip_ratio_low",
    "clip_ratio_high",
    "loss_agg_mode",
    "policy_loss",
    "norm_adv_by_std",
    "dynamic_sampling",
    "max_extra_batches",
)
"""GRPO keys that joined the fingerprint later (the loss family): counted only when they change what trains (not
at their default; a clip bound equal to `clip_ratio` counts as null), so stages finished before them keep their
fingerprints."""


def grpo_settings(grpo: GRPOConfig) -> dict:
    """A stage's GRPO section as fingerprinted: `GRPO_ADDED_KEYS` only away from their default."""
    settings, defaults = to_dict(grpo), to_dict(GRPOConfig())
    for bound in ("clip_ratio_low", "clip_ratio_high"):
        if settings[bound] == settings["clip_ratio"]:  # spelled out, the same clip as null
            settings[bound] = None
    if not grpo.dynamic_sampling:  # the cap means nothing without dynamic sampling
        settings["max_extra_batches"] = defaults["max_extra_batches"]
    return {key: value for key, value in settings.items() if key not in GRPO_ADDED_KEYS or value != defaults[key]}


def stage_settings(stage: StageConfig) -> dict:
    """A stage's own settings as fingerprinted: all but `UNFINGERPRINTED` (they cannot change a finished model)."""
    settings = {key: value for key, value in to_dict(stage).items() if key not in UNFINGERPRINTED}
    settings["grpo"] = grpo_settings(stage.grpo)
    if stage.kind != StageKind.dpo:  # the dpo section joined later: other kinds keep their fingerprints
        del settings["dpo"]
    else:
        settings["dpo"] = _unless_default(settings["dpo"], to_dict(DPOConfig()), DPO_ADDED_KEYS)
    # The contamination guard's permission decides whether a stage may start, not what it trains on.
    data = {key: value for key, value in settings["data"].items() if key != "allow_overlap"}
    settings["data"] = _unless_default(data, to_dict(StageDataConfig(dataset=stage.data.dataset)), DATA_ADDED_KEYS)
    return settings


DPO_ADDED_KEYS = ("pairs", "stic")
"""dpo keys that joined the fingerprint later (STIC pairs): counted only away from their default."""
DATA_ADDED_KEYS = ("describe", "caption_mix")
"""Stage data keys that joined the fingerprint later (description-infused SFT, caption mixing): counted only away
from their default, so stages finished before them keep their fingerprints."""


def _unless_default(settings: dict, defaults: dict, added: tuple[str, ...]) -> dict:
    """`settings` without the `added` keys that are at their default."""
    return {key: value for key, value in settings.items() if key not in added or value != defaults[key]}


def _resolve(reference: str, earlier: list[StagePlan]) -> str:
    """`previous` means the last planned stage (the base for the first stage)."""
    return earlier[-1].name if reference == "previous" else reference


def check(run_dir: RunDir, stage: StagePlan) -> tuple[Status, str]:
    """A stage's status and, when damaged, what is wrong (one line naming the file)."""
    stage_dir = run_dir.stage(stage.dir_name)
    try:
        manifest = stage_dir.read_manifest()
    except DamagedFile as err:
        return Status.damaged, str(err)
    if manifest is None:
        return (Status.partial if stage_dir.root.exists() else Status.pending), ""
    if manifest["fingerprint"] != stage.fingerprint:
        return Status.changed, ""
    model = run_dir.model_of(stage_dir, manifest)
    if not (model / "config.json").is_file():
        return Status.damaged, f"{model}: the model folder of finished stage {stage.name} is missing or incomplete"
    return Status.done, ""


def statuses(run_dir: RunDir, plans: list[StagePlan]) -> list[Status]:
    """Status of every planned stage (fingerprints chain, so a changed upstream stage changes its dependants)."""
    return [check(run_dir, stage)[0] for stage in plans]


def check_prompts(run: RunConfig) -> None:
    """Every template the config names exists (the error names its key), and `$description` goes with
    `data.describe.policy`: a stage whose prompt shows a description names who describes, and only it."""
    if load_template(run.prompt, "prompt").shows_description:
        raise ReasonerError(f"prompt: template {run.prompt!r} uses $description, which only an sft stage with "
                            "data.describe fills; evaluation prompts show the image alone (eval.describe_and_respond "
                            "adds evaluations with descriptions)")  # fmt: skip
    dar, key = run.eval.describe_and_respond, "eval.describe_and_respond"
    for name in dar.datasets:
        if name not in run.eval.datasets:
            raise ReasonerError(f"{key}.datasets: {name!r} is not allowed; allowed: sets of eval.datasets "
                                f"({', '.join(run.eval.datasets) or 'none'})")  # fmt: skip
    if dar.datasets and not load_template(dar.prompt, f"{key}.prompt").shows_description:
        raise ReasonerError(f"{key}.prompt: template {dar.prompt!r} does not use $description")
    if dar.datasets:
        load_template(dar.describe_prompt, f"{key}.describe_prompt")
    for stage in run.stages:
        key = f"stages.{stage.name}"
        template = load_template(stage.prompt, f"{key}.prompt") if stage.prompt else None
        shows = template is not None and template.shows_description
        describer = stage.data.describe.policy
        if shows and not describer:
            raise ReasonerError(f"{key}.prompt: template {stage.prompt!r} uses $description; set "
                                f"{key}.data.describe.policy (the stage whose model describes the images)")  # fmt: skip
        if describer and not shows:
            raise ReasonerError(f"{key}.data.describe.policy: {describer!r} given, but the stage's prompt "
                                f"{stage.prompt or run.prompt!r} does not use $description")  # fmt: skip
        if describer:
            load_template(stage.data.describe.prompt, f"{key}.data.describe.prompt")
        mix = stage.data.caption_mix
        if mix.ratio > 0:
            shown = load_template(mix.prompt, f"{key}.data.caption_mix.prompt")
            if shown.shows_caption or shown.shows_description:
                field = "$caption" if shown.shows_caption else "$description"
                raise ReasonerError(f"{key}.data.caption_mix.prompt: template {mix.prompt!r} uses {field}; caption "
                                    "examples show the image alone, with a describing prompt (e.g. caption)")  # fmt: skip
        if stage.kind == StageKind.dpo and stage.dpo.pairs.value == "stic":
            load_template(stage.dpo.stic.good_prompt, f"{key}.dpo.stic.good_prompt")
            load_template(stage.dpo.stic.bad_prompt, f"{key}.dpo.stic.bad_prompt")
