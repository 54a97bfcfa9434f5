"""Run configuration: typed dataclasses (the schema), one merge path, validation with clear messages.

    defaults (these dataclasses) -> YAML file -> `key=value` overrides -> `RunConfig`

Every field has a docstring-style comment. A bad key, a wrong type, a value outside its allowed set, or an
impossible combination fails in `load` with the key path (e.g. `stages[1].grpo.kl_coef`) and what is allowed,
before any work starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from reasoner.config_ranges import check_ranges
from reasoner.errors import ReasonerError


class Engine(str, Enum):
    """Where stages run: `local` (one process, CPU or one GPU) or `verl` (a Ray cluster of GPU nodes)."""

    local = "local"
    verl = "verl"


class ClusterDevice(str, Enum):
    """What the `verl` engine trains on: `gpu` (vLLM rollouts, NCCL) or `cpu` (verl's same trainers on the CPU, with
    a transformers rollout and gloo: for debugging a schedule on a laptop and for CI; see engines/verl/cpu)."""

    gpu = "gpu"
    cpu = "cpu"


class Extraction(str, Enum):
    """How a training reward reads the answer: `strict` (only one well-formed `<answer>..</answer>` ending the
    response: the recipe's reward, which untagged numbers or a tag listing every option cannot game) or `lenient`
    (the evaluation reading: free text too)."""

    strict = "strict"
    lenient = "lenient"


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
    """Instead of `path`: build a tiny random Qwen2.5-VL offline with this size name (demo, tests)."""
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
    split: str = "train"
    """synthetic: train | eval. Each problem belongs to one split by its content hash, so a `train` set and an
    `eval` set never share a problem whatever their seeds."""


@dataclass
class EvalConfig:
    datasets: list[str] = field(default_factory=list)
    """Names from `datasets` to evaluate after the base model and after every stage."""
    max_new_tokens: int = 64
    """Response budget at evaluation (greedy decoding)."""
    batch_size: int = 16
    """Prompts per generation batch."""
    evaluate_base: bool = True
    """Also evaluate the base model (stage 00), the row every delta in the report is measured from."""


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
    """Model folder of the text-only reasoning model, or `base` (the run's base model). Required."""
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
class PassRateConfig:
    """GRPO data.difficulty other than `all`: how pass rates are estimated and where the bands split.

    hard: pass rate < hard_below; medium: hard_below <= rate < easy_from; easy: rate >= easy_from."""

    model: str = "init"
    """Whose pass rate: init (the stage's start model) | base | <an earlier stage name>."""
    samples: int = 8
    """Samples per problem (the pass rate is correct / samples)."""
    temperature: float | None = None
    """Sampling temperature (null = the stage's grpo.temperature)."""
    max_new_tokens: int = 0
    """Response budget per sample (0 = the stage's grpo.max_new_tokens)."""
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
    device: str = "auto"
    """auto | cpu | cuda (local engine)."""
    threads: int = 1
    """torch CPU threads (on small shared machines one thread is fastest)."""
    prompt: str = "reason"
    """Prompt template (configs/prompts/<prompt>.txt) used for SFT, GRPO and evaluation."""
    model: ModelConfig = field(default_factory=ModelConfig)
    datasets: dict[str, DatasetConfig] = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)
    stages: list[StageConfig] = field(default_factory=list)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """verl engine only: cluster shape, memory knobs and limits."""


RENAMED: dict[str, dict[str, str]] = {
    "GRPOConfig": {
        "samples_per_prompt": "sampling.n",
        "temperature": "sampling.temperature",
        "top_p": "sampling.top_p",
        "max_new_tokens": "sampling.max_new_tokens",
    },
    "StageDataConfig": {
        "policy": "selfdistill.policy",
        "samples_per_problem": "selfdistill.sampling.n",
        "temperature": "selfdistill.sampling.temperature",
        "max_new_tokens": "selfdistill.sampling.max_new_tokens",
        "select": "selfdistill.select",
        "extraction": "selfdistill.extraction",
    },
    "DistillConfig": {
        "samples_per_problem": "sampling.n",
        "temperature": "sampling.temperature",
        "top_p": "sampling.top_p",
        "max_new_tokens": "sampling.max_new_tokens",
    },
}
"""Keys of earlier config files, by section: old key -> its new spelling inside the same section."""


def _renamed(cls: Any, key: str, parent: str) -> str | None:
    """The message for an old key of section `cls` at `parent`, or None when `key` was never renamed."""
    new = RENAMED.get(getattr(cls, "__name__", ""), {}).get(str(key))
    if new is None:
        return None
    where = f"{parent}.{key}" if parent else str(key)
    return f"{where}: renamed; write {parent + '.' if parent else ''}{new}"


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Load a run config from YAML plus `key=value` overrides (`stages.grpo1.steps=3` may name a stage)."""
    run = load_structured(RunConfig, path, overrides)
    name_stages(run)
    fill_seeds(run.seed, run.model, run.datasets)
    validate(run, source=str(path))
    return run


def load_structured(schema: type, path: str | Path, overrides: Sequence[str] = ()) -> Any:
    """The one merge path: `schema` defaults -> YAML file -> overrides -> a `schema` instance.

    Unknown keys, wrong types and values outside an enum fail with the file, the key path and what is allowed."""
    path = Path(path)
    if not path.is_file():
        raise ReasonerError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ReasonerError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ReasonerError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}")
    unknown = _unknown_keys(raw, schema, "")
    if unknown:
        raise ReasonerError(f"{path}: " + "\n  ".join(unknown))
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), raw)
        for item in overrides:
            key, value = _split_override(item)
            OmegaConf.update(cfg, _resolve_stage_key(cfg, key), value, merge=True)
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        raise ReasonerError(f"{path}: {_describe(err)}") from None


def _unknown_keys(raw: Any, cls: type, path: str) -> list[str]:
    """Keys of a YAML mapping that the dataclass schema does not have, with their full paths."""
    if not isinstance(raw, dict):
        return []
    hints = typing.get_type_hints(cls)
    errors = []
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in hints:
            errors.append(_renamed(cls, key, path) or f"{where}: unknown key; allowed keys: {', '.join(hints)}")
            continue
        hint, args = typing.get_origin(hints[key]), typing.get_args(hints[key])
        if isinstance(hints[key], type) and issubclass(hints[key], Enum) and isinstance(value, str):
            allowed = [member.value for member in hints[key]]
            if value not in allowed:
                errors.append(f"{where}: {value!r} is not allowed; allowed: {', '.join(allowed)}")
        elif dataclasses.is_dataclass(hints[key]):
            errors += _unknown_keys(value, hints[key], where)
        elif hint is dict and isinstance(value, dict) and dataclasses.is_dataclass(args[1]):
            errors += [e for k, v in value.items() for e in _unknown_keys(v, args[1], f"{where}.{k}")]
        elif hint is list and isinstance(value, list) and dataclasses.is_dataclass(args[0]):
            errors += [e for i, v in enumerate(value) for e in _unknown_keys(v, args[0], f"{where}[{i}]")]
    return errors


def _split_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ReasonerError(f"override {item!r} is not of the form key=value")
    key, value = item.split("=", 1)
    return key.strip(), yaml.safe_load(value) if value.strip() else ""


def _resolve_stage_key(cfg: Any, key: str) -> str:
    """Let overrides name stages: `stages.grpo1.steps` -> `stages.1.steps`."""
    parts = key.split(".")
    if len(parts) < 2 or parts[0] != "stages" or parts[1].isdigit() or "stages" not in cfg:
        return key
    names = _default_names([(s.get("kind"), s.get("name")) for s in cfg.stages])
    if parts[1] not in names:
        raise ReasonerError(f"override {key!r}: no stage named {parts[1]!r}; stages: {', '.join(names)}")
    return ".".join(["stages", str(names.index(parts[1])), *parts[2:]])


def _describe(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None) or ""
    message = str(err).splitlines()[0].strip()
    if type(err).__name__ in ("ConfigKeyError", "ConfigAttributeError") and "not in" in message:
        parent = getattr(err, "object_type", None)
        parent_key, _, last = key.rpartition(".")
        renamed = _renamed(parent, last, parent_key)
        if renamed:
            return renamed
        allowed = [f.name for f in dataclasses.fields(parent)] if dataclasses.is_dataclass(parent) else []
        if allowed:
            message += f"; allowed keys: {', '.join(allowed)}"
    return f"{key}: {message}" if key else message


def _default_names(kinds_and_names: list[tuple[Any, Any]]) -> list[str]:
    counts: dict[str, int] = {}
    names = []
    for kind, name in kinds_and_names:
        kind = getattr(kind, "value", kind)
        counts[kind] = counts.get(kind, 0) + 1
        names.append(name or f"{kind}{counts[kind]}")
    return names


def name_stages(run: RunConfig) -> None:
    """Give unnamed stages their default names (sft1, grpo1, sft2, ...)."""
    names = _default_names([(s.kind, s.name) for s in run.stages])
    for stage, name in zip(run.stages, names, strict=True):
        stage.name = name


def derive_seed(seed: int, *purpose: str) -> int:
    """A seed in [0, 2**31) for one `purpose` (e.g. `"dataset", "train"`) of a run with `seed`: a stable hash, the
    same on every machine and Python (unlike `hash()`), so different purposes draw unrelated random streams."""
    digest = hashlib.sha256(json.dumps([seed, *purpose]).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def fill_seeds(seed: int, model: ModelConfig, datasets: dict[str, DatasetConfig]) -> None:
    """Give every seed left null its value derived from the run `seed`, at load time, so the run folder's
    config.yaml, the `--plan` table and every fingerprint show the seeds actually used.

    The tiny model gets `seed` itself; a generated dataset gets `derive_seed(seed, "dataset", <its name>)`."""
    if model.tiny_seed is None:
        model.tiny_seed = seed
    for name, ds in datasets.items():
        if ds.seed is None and ds.source in GENERATED:
            ds.seed = derive_seed(seed, "dataset", name)


def validate(run: RunConfig, source: str = "config") -> None:
    """Check what the schema cannot: numbers in range, references between sections, kind-specific settings."""
    errors = check_ranges(run) + _check_model(run) + _check_datasets(run) + _check_stages(run)
    for name in run.eval.datasets:
        if name not in run.datasets:
            errors.append(f"eval.datasets: {name!r} is not in datasets; defined: {', '.join(run.datasets) or 'none'}")
    if errors:
        raise ReasonerError(f"{source}: " + "\n  ".join(errors))


def _check_model(run: RunConfig) -> list[str]:
    from reasoner.models.tiny import SIZES

    if bool(run.model.path) == bool(run.model.tiny_size):
        return ["model: set exactly one of model.path (a model folder) or model.tiny_size (e.g. demo)"]
    if run.model.tiny_size and run.model.tiny_size not in SIZES:
        return [f"model.tiny_size: {run.model.tiny_size!r} is not allowed; allowed: {', '.join(SIZES)}"]
    if run.device not in ("auto", "cpu", "cuda"):
        return [f"device: {run.device!r} is not allowed; allowed: auto, cpu, cuda"]
    return []


def _check_datasets(run: RunConfig) -> list[str]:
    from reasoner.data.perception import FAMILIES
    from reasoner.data.synthetic import TASKS

    errors = []
    for name, ds in run.datasets.items():
        errors += _check_name(f"datasets.{name}", name)
        if ds.source in (DataSource.file, DataSource.mathvista, DataSource.mathvision) and not ds.path:
            errors.append(f"datasets.{name}.path: required for source={ds.source.value}")
        if ds.source in GENERATED and ds.n == 0:
            errors.append(f"datasets.{name}.n: must be > 0 for source={ds.source.value}")
        if ds.split not in ("train", "eval"):
            errors.append(f"datasets.{name}.split: {ds.split!r} is not allowed; allowed: train, eval")
        allowed = FAMILIES if ds.source == DataSource.perception else TASKS
        unknown = [task for task in ds.tasks if task not in allowed]
        if unknown:
            errors.append(f"datasets.{name}.tasks: {', '.join(map(repr, unknown))} not allowed; allowed: {', '.join(allowed)}")
    return errors


NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
RESERVED_NAMES = ("base", "previous", "init")
"""Words that stage references (`init`, `data.selfdistill.policy`, `data.pass_rate.model`) give a meaning of their
own."""


def _check_name(where: str, name: str) -> list[str]:
    """Stage and dataset names become folder names and override keys: a letter, then letters, digits, _ or -."""
    if not NAME.fullmatch(name):
        return [f"{where}: name {name!r} is not allowed; allowed: a letter, then letters, digits, _ or -"]
    return []


def _check_stages(run: RunConfig) -> list[str]:
    if not run.stages:
        return ["stages: at least one stage is required"]
    errors, seen = [], []
    for i, stage in enumerate(run.stages):
        errors += [f"stages[{i}] ({stage.name}).{msg}" for msg in _check_stage(run, stage, seen)]
        errors += _check_name(f"stages[{i}].name", stage.name)
        if stage.name in seen or stage.name in RESERVED_NAMES:
            errors.append(
                f"stages[{i}].name: {stage.name!r} is used twice or reserved (reserved: {', '.join(RESERVED_NAMES)})"
            )
        seen.append(stage.name)
    return errors


def _check_stage(run: RunConfig, stage: StageConfig, earlier: list[str]) -> list[str]:
    errors = []
    if stage.data.dataset not in run.datasets:
        errors.append(f"data.dataset: {stage.data.dataset!r} is not in datasets; defined: {', '.join(run.datasets)}")
    elif run.datasets[stage.data.dataset].source == DataSource.mathvision:
        errors.append(f"data.dataset: {stage.data.dataset!r} is MATH-Vision, an evaluation set; never train on it")
    if stage.init not in ("previous", "base", *earlier):
        errors.append(f"init: {stage.init!r} is not allowed; allowed: previous, base, {', '.join(earlier)}")
    if stage.kind == StageKind.sft:
        if stage.grpo != GRPOConfig():
            errors.append("grpo: settings given for an sft stage; move them to a kind=grpo stage")
        if stage.data.difficulty != Difficulty.all:
            errors.append("data.difficulty: only for kind=grpo stages")
        policy = stage.data.selfdistill.policy
        if stage.data.targets == SFTTargets.self and policy not in ("previous", *earlier):
            errors.append(f"data.selfdistill.policy: {policy!r} is not allowed; allowed: previous, {', '.join(earlier)}")
        if stage.data.targets == SFTTargets.self and not earlier and policy == "previous":
            errors.append("data.targets: self needs an earlier stage whose model samples the chains")
    else:
        if stage.data.targets != SFTTargets.reference:
            errors.append("data.targets: only for kind=sft stages")
        errors += _check_rollouts(stage.grpo)
    return errors + _check_sections(stage) + _check_pass_rate(stage, earlier)


def _check_rollouts(grpo: GRPOConfig) -> list[str]:
    """What GRPO needs of its sampling beyond the ranges every sampling section has."""
    errors = []
    if grpo.sampling.n < 2:
        errors.append(f"grpo.sampling.n: {grpo.sampling.n} is not allowed; allowed: n >= 2 (advantages are relative "
                      "within a group)")  # fmt: skip
    if grpo.sampling.temperature <= 0:
        errors.append(f"grpo.sampling.temperature: {grpo.sampling.temperature} is not allowed; allowed: "
                      "temperature > 0 (rollouts are sampled)")  # fmt: skip
    return errors


def _check_sections(stage: StageConfig) -> list[str]:
    """A targets section is given only for its own kind of targets."""
    data = stage.data
    errors = []
    if data.targets != SFTTargets.self and data.selfdistill != SelfDistillConfig():
        errors.append("data.selfdistill: given, but data.targets is not self")
    if data.targets != SFTTargets.distill:
        return errors + ([] if data.distill == DistillConfig() else ["data.distill: given, but data.targets is not distill"])
    return errors + check_distill(data.distill)


def check_distill(cfg: DistillConfig, where: str = "data.distill") -> list[str]:
    """Problems with a distill section (also used by `reasoner data distill` configs), each naming its key; its
    numbers are checked with every other number (`config_ranges`)."""
    return [] if cfg.reasoner else [f"{where}.reasoner: required (a model folder, or base)"]


def _check_pass_rate(stage: StageConfig, earlier: list[str]) -> list[str]:
    cfg = stage.data.pass_rate
    if stage.kind != StageKind.grpo or stage.data.difficulty == Difficulty.all:
        if cfg != PassRateConfig():
            return ["data.pass_rate: only for kind=grpo stages with data.difficulty easy, medium or hard"]
        return []
    errors = []
    if cfg.model not in ("init", "base", *earlier):
        allowed = ", ".join(["init", "base", *earlier])
        errors.append(f"data.pass_rate.model: {cfg.model!r} is not allowed; allowed: {allowed}")
    if not 0 <= cfg.hard_below < cfg.easy_from <= 1:
        errors.append(
            f"data.pass_rate: need 0 <= hard_below < easy_from <= 1, got {cfg.hard_below} and {cfg.easy_from}"
        )
    return errors


def to_dict(obj: Any) -> Any:
    """A JSON-ready dict of a config dataclass (enums as their values)."""
    return json.loads(json.dumps(dataclasses.asdict(obj), default=lambda o: o.value))


def fingerprint(obj: Any) -> str:
    """A short stable hash of JSON-ready data (configs, hashes of inputs)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
