"""Reading a config: the one merge path (schema defaults -> YAML -> overrides, read and resolved by `overrides`)
and every check of a loaded config, each failing with the key path and what is allowed: numbers against the ranges
their fields declare (`ranges`), and here the rules no single field can say (references between sections,
kind-specific settings, the cluster's shape). `load` runs both for a run config; `reasoner data distill` for its
job config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from reasoner import registry
from reasoner.config.overrides import default_names, override_items, resolve_stage_keys
from reasoner.config.preference import check_kind, check_preference_sets
from reasoner.config.ranges import check_ranges
from reasoner.config.schema import (
    LORA_ALL_LINEAR,
    TINY_FAMILIES,
    TINY_SIZES,
    DatasetConfig,
    ModelConfig,
    RunConfig,
)
from reasoner.config.stages import (
    Difficulty,
    DistillConfig,
    GRPOConfig,
    PassRateConfig,
    SelfDistillConfig,
    SFTTargets,
    StageConfig,
    StageKind,
)
from reasoner.errors import ReasonerError

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
    "PassRateConfig": {
        "samples": "sampling.n",
        "temperature": "sampling.temperature",
        "max_new_tokens": "sampling.max_new_tokens",
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
        for key, value in override_items(overrides):
            for resolved in resolve_stage_keys(cfg, key):
                OmegaConf.update(cfg, resolved, value, merge=True)
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


def _describe(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None) or ""
    message = str(err).splitlines()[0].strip()
    enum_value = re.fullmatch(r"Invalid value '(.*)', expected one of \[(.*)\]", message)
    if enum_value:  # an enum value given as an override: worded as the YAML check words it
        message = f"{enum_value[1]!r} is not allowed; allowed: {enum_value[2]}"
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


def name_stages(run: RunConfig) -> None:
    """Give unnamed stages their default names (sft1, grpo1, sft2, ...)."""
    names = default_names([(s.kind, s.name) for s in run.stages])
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
        if ds.seed is None and ds.source in registry.names() and registry.benchmark(ds.source).generated:
            ds.seed = derive_seed(seed, "dataset", name)


def validate(run: RunConfig, source: str = "config") -> None:
    """Check what the schema cannot: numbers in range, references between sections, kind-specific settings, the
    cluster's shape."""
    errors = check_ranges(run) + _check_model(run) + _check_datasets(run) + _check_stages(run) + _check_cluster(run)
    errors += check_preference_sets(run)
    for name in run.eval.datasets:
        if name not in run.datasets:
            errors.append(f"eval.datasets: {name!r} is not in datasets; defined: {', '.join(run.datasets) or 'none'}")
    if errors:
        raise ReasonerError(f"{source}: " + "\n  ".join(errors))


def _check_model(run: RunConfig) -> list[str]:
    if bool(run.model.path) == bool(run.model.tiny_size):
        return ["model: set exactly one of model.path (a model folder) or model.tiny_size (e.g. demo)"]
    return check_tiny_model(run.model) + _check_lora(run)


def _check_lora(run: RunConfig) -> list[str]:
    """`model.lora.target_modules` names layers (their last name) or is `[all-linear]`; LoRA keeps the vision tower
    frozen, so no stage may ask to train it."""
    lora, errors = run.model.lora, []
    targets = lora.target_modules
    if not targets or (LORA_ALL_LINEAR in targets and len(targets) > 1) or not all(map(MODULE.fullmatch, targets)):
        errors.append(
            f"model.lora.target_modules: {targets} is not allowed; allowed: [{LORA_ALL_LINEAR}] or a list of linear "
            "layer names of the language model (e.g. [q_proj, v_proj])"
        )
    if lora.enabled:
        errors += [
            f"stages[{i}] ({stage.name}).freeze_vision: false trains the vision tower, which LoRA keeps frozen "
            "(model.lora.rank > 0); allowed: true, or model.lora.rank: 0"
            for i, stage in enumerate(run.stages)
            if not stage.freeze_vision
        ]
    return errors


def check_tiny_model(model: ModelConfig) -> list[str]:
    """Problems with the tiny-model keys of a model section (also used by `reasoner data distill` configs)."""
    if model.tiny_size and model.tiny_size not in TINY_SIZES:
        return [f"model.tiny_size: {model.tiny_size!r} is not allowed; allowed: {', '.join(TINY_SIZES)}"]
    if model.tiny_family not in TINY_FAMILIES:
        return [f"model.tiny_family: {model.tiny_family!r} is not allowed; allowed: {', '.join(TINY_FAMILIES)}"]
    if model.path and model.tiny_family != TINY_FAMILIES[0]:
        return ["model.tiny_family: only with model.tiny_size (a model.path folder's family is in its config.json)"]
    return []


def _check_cluster(run: RunConfig) -> list[str]:
    """The cluster's shape, beyond each number's range (verl engine only: the local engine ignores the section)."""
    cluster, errors = run.cluster, []
    if run.engine.value != "verl":
        return errors
    gpus, parallel = cluster.nodes * cluster.gpus_per_node, cluster.rollout_tensor_parallel
    if parallel >= 1 and gpus % parallel:  # parallel < 1 is reported by the range check
        errors.append(f"cluster.rollout_tensor_parallel: {parallel} must divide the {gpus} GPUs (nodes x gpus_per_node)")
    if cluster.device.value == "cpu" and parallel != 1:
        errors.append(f"cluster.rollout_tensor_parallel: must be 1 with cluster.device: cpu, got {parallel}")
    if cluster.min_image_pixels > cluster.max_image_pixels:
        errors.append("cluster.min_image_pixels: must not exceed cluster.max_image_pixels")
    return errors


def _check_datasets(run: RunConfig) -> list[str]:
    errors = []
    for name, ds in run.datasets.items():
        errors += _check_name(f"datasets.{name}", name) + check_dataset(ds, f"datasets.{name}")
    return errors


def check_dataset(ds: DatasetConfig, where: str) -> list[str]:
    """Problems with one dataset section (a run's `datasets.<name>`, a distill job's `dataset`), each naming its key
    under `where`; what a source allows comes from its benchmark (`reasoner.registry`); its numbers are checked
    with every other number (`ranges`)."""
    try:
        benchmark = registry.benchmark(ds.source, f"{where}.source")
    except ReasonerError as err:
        return [str(err)]
    errors = []
    if benchmark.needs_path and not ds.path:
        errors.append(f"{where}.path: required for source={ds.source}")
    if benchmark.generated and ds.n == 0:
        errors.append(f"{where}.n: must be > 0 for source={ds.source}")
    unknown = [task for task in ds.tasks if task not in benchmark.tasks]
    if unknown:
        allowed = ", ".join(benchmark.tasks) or f"none (source={ds.source} takes no tasks)"
        errors.append(f"{where}.tasks: {', '.join(map(repr, unknown))} not allowed; allowed: {allowed}")
    return errors

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
"""A module's last name (`q_proj`), or `all-linear`."""
RESERVED_NAMES = ("base", "previous", "init")
"""Words that stage references (`init`, `data.selfdistill.policy`, `data.pass_rate.model`) give a meaning of their
own."""


def _evaluation_only(source: str) -> bool:
    """A published benchmark no training stage may name (without `data.allow_overlap`)."""
    return source in registry.names() and registry.benchmark(source).evaluation_only


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
    elif _evaluation_only(run.datasets[stage.data.dataset].source) and not stage.data.allow_overlap:
        source = run.datasets[stage.data.dataset].source
        errors.append(f"data.dataset: {stage.data.dataset!r} is {source}, an evaluation-only set; never train on it "
                      "(data.allow_overlap: true trains anyway, and the report says so)")  # fmt: skip
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
    elif stage.kind == StageKind.grpo:
        if stage.data.targets != SFTTargets.reference:
            errors.append("data.targets: only for kind=sft stages")
        errors += _check_rollouts(stage.grpo)
    errors += check_kind(run, stage, earlier)
    return errors + _check_sections(stage) + _check_pass_rate(stage, earlier) + _check_split(run, stage)


def _check_split(run: RunConfig, stage: StageConfig) -> list[str]:
    """The local engine's data-parallel processes each take an equal part of a step's prompts / examples."""
    if run.processes <= 1 or run.engine.value != "local":
        return []  # processes < 1 is reported by the range check
    key, per_step = ("batch_size", stage.batch_size) if stage.kind != StageKind.grpo else (
        "grpo.prompts_per_step", stage.grpo.prompts_per_step)  # fmt: skip
    if per_step % run.processes:
        return [f"{key}: {per_step} is not allowed with processes: {run.processes}; allowed: a multiple of "
                f"{run.processes} (each process takes an equal part of a step)"]  # fmt: skip
    return []


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
    numbers are checked with every other number (`ranges`)."""
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


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Load a run config from YAML plus `key=value` overrides (`stages.grpo1.steps=3` may name a stage)."""
    run = load_structured(RunConfig, path, overrides)
    name_stages(run)
    fill_seeds(run.seed, run.model, run.datasets)
    validate(run, source=str(path))
    return run
