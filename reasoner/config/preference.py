"""The checks of DPO stages, preference sets and description-infused SFT (kept out of `loading`, which calls
them): a `kind: dpo` stage trains on a `preference` dataset (`dpo.pairs: file`) or builds STIC pairs from a problem
set's images (`dpo.pairs: stic`), and nothing else trains on a preference set; a preference set is never an
evaluation set (its rows are pairs of responses, not problems with an answer to score); the `dpo` section belongs
to dpo stages, `data.describe` and `data.caption_mix` to sft stages. Whether a stage's prompt uses `$description`
is checked where templates are read (`reasoner.schedule.check_prompts`).
"""

from __future__ import annotations

from reasoner.config.schema import RunConfig
from reasoner.config.stages import (
    STIC_DISPREFERRED,
    CaptionMixConfig,
    DescribeConfig,
    DPOConfig,
    DPOPairs,
    GRPOConfig,
    SFTTargets,
    StageConfig,
    StageDataConfig,
    StageKind,
    STICConfig,
)

PREFERENCE_SOURCE = "preference"
"""The dataset source of preference pairs (`reasoner.benchmarks.preference`)."""


def check_preference_sets(run: RunConfig) -> list[str]:
    """A preference set named in `eval.datasets` is an error (there is no answer to score)."""
    return [
        f"eval.datasets: {name!r} is a preference set (source={PREFERENCE_SOURCE}): its pairs train a kind=dpo "
        "stage and hold out their own pairs (dpo.heldout); evaluate on problem sets"
        for name in run.eval.datasets
        if name in run.datasets and run.datasets[name].source == PREFERENCE_SOURCE
    ]


def check_describe(stage: StageConfig, earlier: list[str]) -> list[str]:
    """`data.describe` belongs to sft stages; its policy is an earlier stage, `init` or `base`."""
    describe = stage.data.describe
    if stage.kind != StageKind.sft:
        return [] if describe == DescribeConfig() else ["data.describe: only for kind=sft stages"]
    if describe.policy and describe.policy not in ("init", "base", *earlier):
        return [f"data.describe.policy: {describe.policy!r} is not allowed; allowed: init, base"
                + "".join(f", {name}" for name in earlier)]  # fmt: skip
    return []


def check_caption_mix(stage: StageConfig) -> list[str]:
    """`data.caption_mix` belongs to sft stages whose targets are not captions already."""
    mix = stage.data.caption_mix
    if stage.kind != StageKind.sft:
        return [] if mix == CaptionMixConfig() else ["data.caption_mix: only for kind=sft stages"]
    if mix.ratio > 0 and stage.data.targets == SFTTargets.caption:
        return ["data.caption_mix: the stage's targets are captions already (data.targets: caption); remove it"]
    return []


def check_stic(stage: StageConfig) -> list[str]:
    """`dpo.stic` is given only with `dpo.pairs: stic`, and names known ways of making a dispreferred response."""
    stic = stage.dpo.stic
    if stage.dpo.pairs != DPOPairs.stic:
        return [] if stic == STICConfig() else ["dpo.stic: given, but dpo.pairs is not stic"]
    ways = stic.dispreferred
    if not ways or len(set(ways)) < len(ways) or not set(ways) <= set(STIC_DISPREFERRED):
        return [f"dpo.stic.dispreferred: {list(ways)} is not allowed; allowed: a non-empty list without repeats of "
                + ", ".join(STIC_DISPREFERRED)]  # fmt: skip
    return []


def check_kind(run: RunConfig, stage: StageConfig, earlier: list[str]) -> list[str]:
    """What a stage's kind asks of its dataset and sections, for dpo stages and against preference sets."""
    ds = run.datasets.get(stage.data.dataset)
    preference = ds is not None and ds.source == PREFERENCE_SOURCE
    if stage.kind != StageKind.dpo:
        return _check_not_dpo(stage, preference) + check_describe(stage, earlier) + check_caption_mix(stage)
    errors = check_stic(stage)
    stic = stage.dpo.pairs == DPOPairs.stic
    if ds is not None and not preference and not stic:
        errors.append(f"data.dataset: {stage.data.dataset!r} is source={ds.source}; a kind=dpo stage with "
                      f"dpo.pairs: file trains on a dataset with source={PREFERENCE_SOURCE} and a path (or set "
                      "dpo.pairs: stic to build pairs from this set's images)")  # fmt: skip
    if preference and stic:
        errors.append(f"data.dataset: {stage.data.dataset!r} is a preference set; dpo.pairs: stic builds pairs from "
                      "a problem set's images (or set dpo.pairs: file to train on this set's pairs)")  # fmt: skip
    if stage.grpo != GRPOConfig():
        errors.append("grpo: settings given for a dpo stage; move them to a kind=grpo stage")
    if stage.prompt:
        errors.append(f"prompt: {stage.prompt!r} given, but a dpo stage sends each pair's own prompt as written "
                      "(no template); remove it")  # fmt: skip
    defaults = StageDataConfig(dataset=stage.data.dataset, limit=stage.data.limit, allow_overlap=stage.data.allow_overlap)
    if stage.data != defaults:
        errors.append("data: a dpo stage takes only data.dataset, data.limit and data.allow_overlap (targets, "
                      "difficulty and their sections are for sft and grpo stages)")  # fmt: skip
    return errors


def _check_not_dpo(stage: StageConfig, preference: bool) -> list[str]:
    """A stage of another kind takes no `dpo` settings and no preference set."""
    errors = [] if stage.dpo == DPOConfig() else [f"dpo: settings given for a {stage.kind.value} stage; move "
                                                  "them to a kind=dpo stage"]  # fmt: skip
    if preference:
        errors.append(f"data.dataset: {stage.data.dataset!r} is a preference set (source={PREFERENCE_SOURCE}); "
                      "only kind=dpo stages train on preference pairs")  # fmt: skip
    return errors
