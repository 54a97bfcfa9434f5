"""A stage's training data: one builder per source, each returning items and statistics, cached per stage.

    SFT targets   reference  the dataset's own chains
                  distill    caption -> reason k times -> the selection pipeline (`reasoner.data.stage.distill`)
                  self       an earlier stage's policy samples k chains -> the selection pipeline
    GRPO problems all        every problem
                  a band     easy | medium | hard by the pass rate of a policy (`reasoner.data.stage.difficulty`)
                  caption    each image's exact caption (a describing model)
    DPO pairs     file       the preference set's pairs, selected and split (`reasoner.data.stage.preference`)
                  stic       the start model's own descriptions: good prompt vs bad prompt or corrupted image
                             (`reasoner.data.stage.stic`), then selected and split the same way
    SFT prompts   describe   a model's descriptions of the images fill `$description` (STIC's stage 2)

`build_stage_data` picks the builder from the stage config and caches its output in the stage's data/ folder
(`reasoner.data.stage.cache`, keyed by the stage fingerprint), so a resumed stage trains on the very same items and a
changed one never does. The driver hands in what only it knows (finished models, the engine's generators) as
plain callables: the data layer imports no engine and no driver.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reasoner.config import Difficulty, SFTTargets, StageKind
from reasoner.data.records.problem import Problem
from reasoner.data.stage.cache import Built, cached_build
from reasoner.data.stage.selection import SFTExample, select_examples, sft_examples
from reasoner.errors import ReasonerError
from reasoner.generation.base import Generator, SamplingSpec
from reasoner.prompts import DESCRIPTION_KEY, Template
from reasoner.schedule import StagePlan

TARGETS_FILE = "targets.json"
"""An SFT stage's targets in data/: `[problem id, target]` per example."""
PROBLEMS_FILE = "problems.json"
"""A GRPO stage's problems in data/: their ids."""
PAIRS_FILE = "pairs.json"
"""A DPO stage's pairs in data/: `[problem id, held out]` per pair."""


@dataclass
class StageContext:
    """What a builder needs from the run, given by the driver."""

    plan: StagePlan
    plans: Sequence[StagePlan]
    """Every planned stage (a policy's fingerprint identifies it in cached pass rates)."""
    template: Template
    data_dir: Path
    seed: int
    model_path: Callable[[str], Path]
    """The model folder of a finished stage, by name (`base` included)."""
    generator: Callable[[Path], Generator]
    """A generator serving a model folder (the engine's)."""

    def fingerprint_of(self, name: str) -> str:
        return next(p.fingerprint for p in self.plans if p.name == name)


def build_stage_data(ctx: StageContext, problems: list[Problem]) -> tuple[list[Any], dict[str, Any]]:
    """The stage's SFT examples, GRPO problems or DPO pairs and their statistics (cached in data/, see the module
    doc)."""
    owner = f"stage {ctx.plan.name}"
    problems = prepared_problems(ctx, problems, owner)
    by_id = {p.id: p for p in problems}
    data = ctx.plan.config.data
    if ctx.plan.config.kind == StageKind.sft:
        build = SFT_BUILDERS[data.targets]
        examples, stats = cached_build(
            ctx.data_dir / TARGETS_FILE,
            ctx.plan.fingerprint,
            lambda: build(ctx, problems),
            encode=lambda e: [e.problem.id, e.target],
            decode=lambda item: SFTExample(by_id[item[0]], item[1]),
            owner=owner,
        )
        if data.caption_mix.ratio > 0:
            mixed = caption_mix(ctx, problems, len(examples))
            examples, stats = [*examples, *mixed], {**stats, "caption_examples": len(mixed)}
        return examples, stats
    if ctx.plan.config.kind == StageKind.dpo:
        from reasoner.data.stage.preference import PreferencePair, select_pairs

        return cached_build(
            ctx.data_dir / PAIRS_FILE,
            ctx.plan.fingerprint,
            lambda: select_pairs(problems, ctx.plan.config.dpo.heldout, ctx.seed, stage=ctx.plan.name),
            encode=lambda pair: [pair.problem.id, pair.heldout],
            decode=lambda item: PreferencePair.of(by_id[item[0]], bool(item[1])),
            owner=owner,
        )
    build = all_problems if data.difficulty == Difficulty.all else difficulty_band
    return cached_build(
        ctx.data_dir / PROBLEMS_FILE,
        ctx.plan.fingerprint,
        lambda: build(ctx, problems),
        encode=lambda p: p.id,
        decode=lambda pid: by_id[pid],
        owner=owner,
    )


def prepared_problems(ctx: StageContext, problems: list[Problem], owner: str) -> list[Problem]:
    """What a stage's items are built from: STIC pairs made from the problems' images (`dpo.pairs: stic`), the
    problems with a model's descriptions (`data.describe`), else the problems as they are. Generated texts are
    cached in data/ under the stage fingerprint (`reasoner.data.stage.stic`)."""
    from reasoner.data.stage import stic
    from reasoner.prompts import load_template

    stage = ctx.plan.config
    by_id = {p.id: p for p in problems}
    if stage.kind == StageKind.dpo and stage.dpo.pairs.value == "stic":
        cfg = stage.dpo.stic
        good, bad = load_template(cfg.good_prompt), load_template(cfg.bad_prompt)
        pairs, _ = cached_build(
            ctx.data_dir / stic.PAIRS_FILE,
            ctx.plan.fingerprint,
            lambda: stic.stic_pairs(
                ctx.generator(ctx.model_path(ctx.plan.init)), problems, good, bad, cfg.dispreferred,
                seed=ctx.seed, max_new_tokens=cfg.max_new_tokens,
            ),  # fmt: skip
            encode=lambda p: [p.id, p.metadata["chosen"], p.metadata["rejected"], p.metadata["dispreferred"]],
            decode=lambda item: stic.as_pair(by_id[item[0]], good, *item[1:]),
            owner=owner,
        )
        return pairs
    describe = stage.data.describe
    if stage.kind != StageKind.sft or not describe.policy:
        return problems
    describer = ctx.plan.init if describe.policy == "init" else describe.policy
    template = load_template(describe.prompt)
    described, _ = cached_build(
        ctx.data_dir / stic.DESCRIPTIONS_FILE,
        ctx.plan.fingerprint,
        lambda: (stic.described_problems(ctx.generator(ctx.model_path(describer)), problems, template,
                                         max_new_tokens=describe.max_new_tokens), {}),  # fmt: skip
        encode=lambda p: [p.id, p.metadata[DESCRIPTION_KEY]],
        decode=lambda item: replace(by_id[item[0]], metadata={**by_id[item[0]].metadata, DESCRIPTION_KEY: item[1]}),
        owner=owner,
    )
    return described


def reference_targets(ctx: StageContext, problems: list[Problem]) -> Built:
    """The dataset's own reasoning chains as targets."""
    examples = sft_examples(problems)
    if not examples:
        raise ReasonerError(
            f"stages.{ctx.plan.name}.data.targets: reference, but none of the {len(problems)} problems of dataset "
            f"{ctx.plan.config.data.dataset!r} has reference reasoning; use targets: self or distill, or a "
            "dataset with chains"
        )
    return examples, {"problems": len(problems), "kept": len(examples)}


def self_targets(ctx: StageContext, problems: list[Problem]) -> Built:
    """An earlier stage's own verified chains (self-distillation), through the one selection pipeline."""
    from reasoner.data.stage.selection import token_counter
    from reasoner.data.stage.selfdistill import sample_and_verify

    cfg = ctx.plan.config.data.selfdistill
    policy = ctx.model_path(ctx.plan.policy)
    samples = sample_and_verify(
        ctx.generator(policy), problems, ctx.template, SamplingSpec.of(cfg.sampling, ctx.seed), cfg.extraction.value
    )
    examples, stats = select_examples(
        problems,
        samples,
        cfg.select.value,
        max_target_tokens=cfg.max_target_tokens,
        count_tokens=token_counter(policy) if cfg.max_target_tokens else None,
    )
    if not examples:
        raise ReasonerError(
            f"stage {ctx.plan.name}: the policy {ctx.plan.policy} solved none of {len(problems)} problems"
        )
    return examples, stats


def distilled_targets(ctx: StageContext, problems: list[Problem]) -> Built:
    """Iteration-1 data: caption -> reason k times -> the selection pipeline (sharded, resumable in data/)."""
    from reasoner.data.stage.distill import distill
    from reasoner.data.stage.selection import token_counter

    cfg = ctx.plan.config.data.distill

    def folder(name: str) -> Path:
        """`base`, a stage of this run (e.g. a teacher), or a model folder."""
        return ctx.model_path(name) if name == "base" or name == ctx.plan.policy else Path(name)

    result = distill(
        problems,
        ctx.data_dir / "distill",
        cfg,
        reasoner=lambda: ctx.generator(folder(cfg.reasoner)),
        captioner=(lambda: ctx.generator(folder(cfg.captioner))) if cfg.captioner else None,
        count_tokens=token_counter(folder(cfg.reasoner)) if cfg.max_target_tokens else None,
        seed=ctx.seed,
    )
    examples = sft_examples(result.problems)
    if not examples:
        raise ReasonerError(f"stage {ctx.plan.name}: distillation kept no chain of {len(problems)} problems")
    return examples, result.stats["total"]


def caption_targets(ctx: StageContext, problems: list[Problem]) -> Built:
    """Each image's exact caption as the target (a describing model; synthetic worlds carry exact captions)."""
    examples = [SFTExample(p, p.caption.strip()) for p in problems if p.caption and p.caption.strip()]
    if not examples:
        raise ReasonerError(
            f"stages.{ctx.plan.name}.data.targets: caption, but none of the {len(problems)} problems of dataset "
            f"{ctx.plan.config.data.dataset!r} has a caption (synthetic worlds carry them)"
        )
    return examples, {"problems": len(problems), "kept": len(examples)}


def caption_mix(ctx: StageContext, problems: list[Problem], n_targets: int) -> list[SFTExample]:
    """`data.caption_mix`: `ratio` x `n_targets` examples (at most one per distinct image, drawn by the stage seed)
    whose target is the image's exact caption, shown with the describing prompt instead of the stage's."""
    cfg = ctx.plan.config.data.caption_mix
    by_image: dict[tuple[str, ...], Problem] = {}
    for problem in problems:
        if problem.images and problem.caption and problem.caption.strip():
            by_image.setdefault(tuple(image.sha256() for image in problem.images), problem)
    if not by_image:
        raise ReasonerError(
            f"stages.{ctx.plan.name}.data.caption_mix: none of the {len(problems)} problems of dataset "
            f"{ctx.plan.config.data.dataset!r} has an image with a caption (synthetic worlds carry them)"
        )
    pool = sorted(by_image.values(), key=lambda p: p.id)
    chosen = random.Random(f"{ctx.seed}-caption-mix").sample(pool, min(round(cfg.ratio * n_targets), len(pool)))
    return [SFTExample(p, p.caption.strip(), prompt=cfg.prompt) for p in chosen]


SFT_BUILDERS: dict[SFTTargets, Callable[[StageContext, list[Problem]], Built]] = {
    SFTTargets.reference: reference_targets,
    SFTTargets.caption: caption_targets,
    SFTTargets.distill: distilled_targets,
    SFTTargets.self: self_targets,
}


def all_problems(ctx: StageContext, problems: list[Problem]) -> Built:
    """Every problem (GRPO without a difficulty band)."""
    return list(problems), {}


def difficulty_band(ctx: StageContext, problems: list[Problem]) -> Built:
    """The stage's difficulty band of `problems` (pass rates estimated once, cached in data/)."""
    from reasoner.data.stage.difficulty import difficulty_subset, sampling_spec

    stage = ctx.plan.config
    pass_rate = stage.data.pass_rate
    rater = ctx.plan.init if pass_rate.model == "init" else pass_rate.model
    policy = ctx.model_path(rater)
    return difficulty_subset(
        problems,
        stage.data.difficulty.value,
        ctx.data_dir / "pass_rates.json",
        generator=lambda: ctx.generator(policy),
        template=ctx.template,
        spec=sampling_spec(pass_rate, stage.grpo, seed=ctx.seed),
        # The rater's identity, not its folder: a moved run keeps its cached rates.
        model=f"{rater}:{ctx.fingerprint_of(rater)}",
        edges=pass_rate,
    )
