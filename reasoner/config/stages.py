"""The schema of a run's stages: `StageConfig` (kind, start model, optimizer, data, GRPO) and its sections
(sampling, self-distillation, distillation, pass-rate bands), with the enums they use. Each field has its default,
for a number its allowed range beside it (`ranged(default, RANGE)`, see `ranges`), and below it a docstring-style
comment. `schema` holds the run-level sections and `RunConfig`, which lists these stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from omegaconf import MISSING

from reasoner.config.dpo import STIC_DISPREFERRED, DPOConfig, DPOPairs, DPOReference, STICConfig
from reasoner.config.ranges import (
    ALL_IF_0,
    AT_LEAST_0,
    AT_LEAST_1,
    FRACTION,
    KEEP_ALL_IF_0,
    POSITIVE,
    PROBABILITY,
    TEMPERATURE,
    TOKENS,
    Range,
    ranged,
)

__all__ = [
    "CaptionMixConfig",
    "StageKind",
    "Extraction",
    "SFTTargets",
    "Selection",
    "Difficulty",
    "SamplingConfig",
    "SelfDistillConfig",
    "DistillConfig",
    "PassRateSampling",
    "PassRateConfig",
    "StageDataConfig",
    "LossAggMode",
    "PolicyLoss",
    "GRPOConfig",
    "DPOReference",
    "DPOPairs",
    "STICConfig",
    "STIC_DISPREFERRED",
    "DPOConfig",
    "DescribeConfig",
    "StageConfig",
]


class StageKind(str, Enum):
    sft = "sft"
    grpo = "grpo"
    dpo = "dpo"


class Extraction(str, Enum):
    """How a training reward reads the answer: `strict` (only one well-formed `<answer>..</answer>` ending the
    response: the recipe's reward, which untagged numbers or a tag listing every option cannot game) or `lenient`
    (the evaluation reading: free text too)."""

    strict = "strict"
    lenient = "lenient"


class SFTTargets(str, Enum):
    """Where SFT reasoning targets come from: the dataset's reference chains, or the previous policy's own
    verified samples (self-distillation)."""

    reference = "reference"
    self = "self"
    distill = "distill"
    """Caption -> reason -> verify -> filter with other models (`data.distill`): the recipe's iteration-1 data."""
    caption = "caption"
    """Each image's exact caption (synthetic worlds carry them) as the target: teaches a model to describe, with
    a describing prompt (e.g. `prompt: caption`)."""


class Selection(str, Enum):
    """Which verified chain to keep per problem."""

    shortest = "shortest"
    longest = "longest"
    first = "first"


class Difficulty(str, Enum):
    """Pass-rate band of a GRPO stage's problems (`all` = no filtering)."""

    all = "all"
    easy = "easy"
    medium = "medium"
    hard = "hard"


LossAggMode = Enum(
    "LossAggMode",
    [(mode, mode) for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")],
    type=str,
)
"""How a GRPO minibatch's per-token losses become one number, by verl's names (`core_algos.agg_loss`): `token-mean`
(every token of the minibatch weighs the same: longer responses weigh more), `seq-mean-token-mean` (each response's
token mean, then the mean over responses: every response weighs the same), `seq-mean-token-sum` (each response's
token sum, then the mean over responses), `seq-mean-token-sum-norm` (that sum over responses divided by a constant,
the response budget: Dr. GRPO). Built with the functional API because the names have hyphens: a config names a
member by its name, and here names and values are the same."""


class PolicyLoss(str, Enum):
    """The policy-gradient objective, by verl's names (`core_algos.get_policy_loss_fn`)."""

    vanilla = "vanilla"
    """PPO's clipped token-level importance ratio, with dual clip (c = 3) on negative advantages."""
    gspo = "gspo"
    """GSPO: one importance ratio per response (the geometric mean of its token ratios), clipped."""


@dataclass
class SamplingConfig:
    """How a model samples responses: the same settings in every section that samples (GRPO rollouts,
    self-distillation, distillation). There is no seed here: a stage samples with the run seed + its index."""

    n: int = ranged(1, AT_LEAST_1)
    """Responses per prompt (GRPO: the group size; distillation: chains per problem, k)."""
    temperature: float = ranged(1.0, TEMPERATURE)
    """Sampling temperature (0 = greedy)."""
    top_p: float = ranged(1.0, PROBABILITY)
    """Nucleus sampling threshold."""
    max_new_tokens: int = ranged(64, TOKENS)
    """Response budget per sample."""


@dataclass
class SelfDistillConfig:
    """SFT targets=self: an earlier stage's policy samples k chains per problem; verified chains go through the one
    selection pipeline (select, trim, contradiction and length filters: `reasoner.data.stage.selection`)."""

    policy: str = "previous"
    """The stage whose model samples the chains (previous = the stage before)."""
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(n=4, temperature=1.0, max_new_tokens=64))
    """How chains are sampled (n = chains per problem, k)."""
    select: Selection = Selection.shortest
    """Which verified chain to keep per problem."""
    extraction: Extraction = Extraction.strict
    """How sampled chains are verified (strict: a well-formed final answer tag)."""
    max_target_tokens: int = ranged(0, KEEP_ALL_IF_0)
    """Drop chains whose SFT target (after trimming) is longer than this many policy tokens (0 = keep all)."""


@dataclass
class DistillConfig:
    """SFT targets=distill: a VLM captions each image, a text reasoning model reasons from caption + question k
    times, answers are verified against the ground truth, one chain per problem is kept, trimmed at reflection
    markers and length-filtered; the SFT example pairs that chain with the ORIGINAL images."""

    captioner: str | None = None
    """Model folder of the captioning VLM, or `base` (the run's base model); null = use the captions already in
    the data (synthetic sets carry ground-truth captions)."""
    caption_prompt: str = "caption"
    """Captioning prompt template (configs/prompts/<name>.txt)."""
    caption_max_new_tokens: int = ranged(512, TOKENS)
    """Caption budget (captions are decoded greedily)."""
    reasoner: str = ""
    """The text-only reasoning model: a model folder, `base` (the run's base model) or an earlier stage's name
    (e.g. a teacher stage trained on captions, see the stage's `prompt`). Required."""
    reason_prompt: str = "reason_from_caption"
    """Prompt template of the reasoner; it must use `$caption` besides the usual `$question` fields."""
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(n=4, temperature=0.6, top_p=0.95, max_new_tokens=4096)
    )
    """How the reasoner samples chains (n = chains per problem, k)."""
    max_target_tokens: int = ranged(0, KEEP_ALL_IF_0)
    """Drop chains whose SFT target (after trimming) is longer than this many reasoner tokens (0 = keep all)."""
    select: Selection = Selection.shortest
    """Which verified chain to keep per problem."""
    shard_size: int = ranged(256, AT_LEAST_1)
    """Problems per shard; each finished shard is one file, so an interrupted run redoes only unfinished ones."""


@dataclass
class PassRateSampling(SamplingConfig):
    """`data.pass_rate.sampling`: the keys of every sampling section; a null one is the stage's `grpo.sampling`
    value, so by default pass rates measure the rollouts the stage trains on."""

    n: int = ranged(8, AT_LEAST_1)
    """Samples per problem (the pass rate is correct / n)."""
    temperature: float | None = ranged(None, TEMPERATURE)
    """Sampling temperature (null = the stage's grpo.sampling.temperature)."""
    top_p: float | None = ranged(None, PROBABILITY)
    """Nucleus sampling threshold (null = the stage's grpo.sampling.top_p)."""
    max_new_tokens: int | None = ranged(None, TOKENS)
    """Response budget per sample (null = the stage's grpo.sampling.max_new_tokens)."""

    def resolved(self, rollout: SamplingConfig) -> SamplingConfig:
        """These settings with each null one taken from `rollout` (the stage's grpo.sampling)."""
        given = {f: getattr(self, f) for f in ("temperature", "top_p", "max_new_tokens")}
        return SamplingConfig(self.n, **{f: getattr(rollout, f) if v is None else v for f, v in given.items()})


@dataclass
class PassRateConfig:
    """GRPO data.difficulty other than `all`: how pass rates are estimated and where the bands split.

    hard: pass rate < hard_below; medium: hard_below <= rate < easy_from; easy: rate >= easy_from."""

    model: str = "init"
    """Whose pass rate: init (the stage's start model) | base | <an earlier stage name>."""
    sampling: PassRateSampling = field(default_factory=PassRateSampling)
    """How pass rates are sampled (n = samples per problem); unset keys follow the stage's grpo.sampling."""
    hard_below: float = ranged(0.25, FRACTION)
    """Pass rates below this are `hard`."""
    easy_from: float = ranged(0.75, FRACTION)
    """Pass rates at or above this are `easy`; those in between are `medium`."""


@dataclass
class DescribeConfig:
    """SFT stages whose prompt uses `$description` (description-infused fine-tuning, STIC's stage 2): a model
    describes each image first (greedy), and its description fills `$description` in the stage's prompts."""

    policy: str = ""
    """The stage whose model describes the images (an earlier stage's name, `init` or `base`); empty = the stage's
    prompt does not use `$description`."""
    prompt: str = "caption"
    """The describing prompt template (configs/prompts/<name>.txt), shown with the image."""
    max_new_tokens: int = ranged(64, TOKENS)
    """Description budget."""


@dataclass
class CaptionMixConfig:
    """SFT only: besides the stage's targets, also learn the exact captions of its problems' images (synthetic
    worlds carry them) with a describing prompt, so a model that describes keeps describing while it learns to
    reason (STIC's describe-and-respond needs the describer)."""

    ratio: float = ranged(0.0, AT_LEAST_0)
    """Caption examples per target example (0 = none; at most one per distinct image, drawn by the stage seed)."""
    prompt: str = "caption"
    """The describing prompt template of the caption examples (configs/prompts/<name>.txt), shown with the image."""


@dataclass
class StageDataConfig:
    dataset: str = MISSING
    """Name from `datasets` this stage trains on."""
    targets: SFTTargets = SFTTargets.reference
    """SFT only: reference | self | distill; `self` and `distill` are configured in their own section below."""
    selfdistill: SelfDistillConfig = field(default_factory=SelfDistillConfig)
    """SFT targets=self: the sampling policy, sampling and selection."""
    difficulty: Difficulty = Difficulty.all
    """GRPO only: pass-rate band of problems to train on."""
    pass_rate: PassRateConfig = field(default_factory=PassRateConfig)
    """GRPO with difficulty != all: pass-rate estimation and band edges."""
    distill: DistillConfig = field(default_factory=DistillConfig)
    """SFT targets=distill: captioner, reasoner and filters."""
    describe: DescribeConfig = field(default_factory=DescribeConfig)
    """SFT only: who describes each image for a prompt that uses `$description`, with which prompt."""
    caption_mix: CaptionMixConfig = field(default_factory=CaptionMixConfig)
    """SFT only: also learn the images' exact captions (multi-task: describing beside reasoning)."""
    limit: int = ranged(0, ALL_IF_0)
    """Use at most this many problems (0 = all)."""
    allow_overlap: bool = False
    """Train even when this stage's problems overlap an evaluation set or a benchmark the run names, or its
    dataset is an evaluation-only source (MathVista, MATH-Vision, an imported perception test): the contamination
    guard (`reasoner.data.stage.contamination`) then lets the run go on and the report carries a warning line. Not part
    of the stage fingerprint."""


@dataclass
class GRPOConfig:
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(n=4, max_new_tokens=48))
    """Rollouts: n completions per prompt (the group size), temperature, top_p, response budget."""
    prompts_per_step: int = ranged(8, AT_LEAST_1)
    """Prompts per rollout batch."""
    updates_per_batch: int = ranged(1, AT_LEAST_1)
    """Minibatch updates per rollout batch (PPO epochs x minibatches)."""
    clip_ratio: float = ranged(0.2, Range(0, 1, low_open=True))
    """PPO clip range (low and high, unless clip_ratio_low / clip_ratio_high set them apart)."""
    clip_ratio_low: float | None = ranged(None, Range(0, 1, low_open=True, meaning="null = clip_ratio"))
    """Lower clip range: the importance ratio is clipped below at 1 - clip_ratio_low (null = clip_ratio)."""
    clip_ratio_high: float | None = ranged(None, Range(0, low_open=True, meaning="null = clip_ratio"))
    """Upper clip range: the ratio is clipped above at 1 + clip_ratio_high (null = clip_ratio; DAPO's clip-higher:
    0.28 with clip_ratio_low 0.2)."""
    loss_agg_mode: LossAggMode = LossAggMode("token-mean")
    """How per-token losses (policy and KL) become a minibatch's loss (verl's `agg_loss`): token-mean (every token
    weighs the same) | seq-mean-token-mean (every response weighs the same) | seq-mean-token-sum (each response's
    token sum, averaged over responses) | seq-mean-token-sum-norm (Dr. GRPO: that, divided by the response budget
    `sampling.max_new_tokens`, a constant)."""
    policy_loss: PolicyLoss = PolicyLoss.vanilla
    """vanilla (PPO's clipped token ratio) | gspo (one clipped ratio per response: GSPO, with clip ranges of the
    order of 3e-4 / 4e-4 and seq-mean-token-mean, as its paper)."""
    norm_adv_by_std: bool = True
    """Divide each group's reward differences by the group's standard deviation (GRPO); false keeps them as
    reward minus the group mean (Dr. GRPO)."""
    dynamic_sampling: bool = False
    """DAPO's dynamic sampling: drop each group whose rewards are all equal (no learning signal) and sample more
    prompts until the step has `prompts_per_step` groups with signal. Local engine: each extra generation batch
    draws `prompts_per_step` prompts more, at most `max_extra_batches` of them; a step still short trains on the
    groups it has, topped up with dropped ones (step metrics `dynamic/groups_dropped`, `dynamic/groups_short`,
    `dynamic/generation_batches`). verl engine: `algorithm.filter_groups` on the reward; verl 0.9.1's trainer
    refills prompt by prompt until the batch is full and has no cap."""
    max_extra_batches: int = ranged(2, AT_LEAST_0)
    """With dynamic_sampling: extra generation batches a step may draw to replace dropped groups (0 = none: only
    drop, then top up)."""
    kl_coef: float = ranged(0.01, Range(0, meaning="0 = no reference model"))
    """Weight of the low_var_kl penalty to the frozen reference model (0 disables the reference)."""
    format_weight: float = ranged(0.0, AT_LEAST_0)
    """Weight of the format reward in the total reward (the recipe uses accuracy only)."""
    summary_penalty: float = ranged(0.0, Range(high=0, meaning="a penalty: the recipe uses -0.5"))
    """Penalty when no summary stands between </think> and <answer> (the recipe: -0.5)."""
    extraction: Extraction = Extraction.strict
    """How the reward reads the answer (strict: only a well-formed final <answer> tag, as the recipe)."""


@dataclass
class StageConfig:
    kind: StageKind = MISSING
    """sft | grpo | dpo."""
    name: str = ""
    """Unique stage name; default: kind + iteration (sft1, grpo1, sft2, ...)."""
    init: str = "previous"
    """Starting model: previous (the stage before, or the base for the first) | base | <stage name>."""
    prompt: str = ""
    """Prompt template of this stage (default: the run's `prompt`). A template that uses `$caption` shows each
    problem as its caption, without the image: such a stage trains a text-only reasoner (a distillation teacher,
    see data.distill.reasoner) and is not evaluated on the image sets."""
    data: StageDataConfig = field(default_factory=StageDataConfig)
    """What the stage trains on: the dataset and how its targets or problems are chosen."""
    steps: int = ranged(0, Range(0, meaning="0 = `epochs` passes over the data"))
    """Optimizer steps; 0 = one pass (`epochs`) over the data."""
    epochs: float = ranged(1.0, POSITIVE)
    """Passes over the data when steps = 0."""
    batch_size: int = ranged(8, AT_LEAST_1)
    """SFT: examples per optimizer step (before accumulation); DPO: preference pairs per step."""
    grad_accum: int = ranged(1, AT_LEAST_1)
    """Gradient accumulation micro-steps."""
    lr: float = ranged(1e-5, POSITIVE)
    """Peak learning rate (AdamW)."""
    weight_decay: float = ranged(0.0, AT_LEAST_0)
    """AdamW weight decay."""
    warmup_ratio: float = ranged(0.1, FRACTION)
    """Linear warmup share of steps, then cosine decay."""
    max_grad_norm: float = ranged(1.0, Range(0, meaning="0 = no clipping"))
    """Gradients are clipped to this global norm before each update."""
    freeze_vision: bool = True
    """Freeze the vision tower and projector."""
    checkpoint_every: int = ranged(0, Range(0, meaning="0 = only at the end"))
    """Save a resumable checkpoint every N steps (0 = only at the end)."""
    max_nonfinite_skips: int = ranged(3, AT_LEAST_1)
    """Local engine: an optimizer update whose loss or gradient norm is NaN or infinite is skipped (counted in the
    step metrics as `count/nonfinite_skips`); this many skipped updates in a row stop the stage with one line, and
    a rerun resumes it from its last checkpoint. Not part of the stage fingerprint (raising it resumes). The verl
    engine skips an update with a non-finite grad norm on its own and has no such limit: it does not read this."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    """GRPO only."""
    dpo: DPOConfig = field(default_factory=DPOConfig)
    """DPO only (kind=dpo): beta, the NLL weight, the reference, held-out pairs. Outside the fingerprint of the
    other kinds."""
