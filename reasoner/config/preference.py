"""The checks of DPO stages and preference sets (kept out of `loading`, which calls them): a `kind: dpo` stage
trains on a `preference` dataset and nothing else does; a preference set is never an evaluation set (its rows are
pairs of responses, not problems with an answer to score); the `dpo` section belongs to dpo stages.
"""

from __future__ import annotations

from reasoner.config.schema import RunConfig
from reasoner.config.stages import DPOConfig, GRPOConfig, StageConfig, StageDataConfig, StageKind

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


def check_kind(run: RunConfig, stage: StageConfig) -> list[str]:
    """What a stage's kind asks of its dataset and sections, for dpo stages and against preference sets."""
    ds = run.datasets.get(stage.data.dataset)
    preference = ds is not None and ds.source == PREFERENCE_SOURCE
    if stage.kind != StageKind.dpo:
        errors = [] if stage.dpo == DPOConfig() else [f"dpo: settings given for a {stage.kind.value} stage; move "
                                                      "them to a kind=dpo stage"]  # fmt: skip
        if preference:
            errors.append(f"data.dataset: {stage.data.dataset!r} is a preference set (source={PREFERENCE_SOURCE}); "
                          "only kind=dpo stages train on preference pairs")  # fmt: skip
        return errors
    errors = []
    if ds is not None and not preference:
        errors.append(f"data.dataset: {stage.data.dataset!r} is source={ds.source}; a kind=dpo stage trains on "
                      f"preference pairs: a dataset with source={PREFERENCE_SOURCE} and a path")  # fmt: skip
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
