"""The allowed range of every number in the config schemas, checked at load time (`reasoner run --plan` included).

One table, keyed by dataclass name and field name. `check_ranges` walks a loaded config and names every value
outside its range by its key path, e.g.

    stages[1] (grpo1).grpo.sampling.top_p: 0.0 is not allowed; allowed: 0 < top_p <= 1

A NaN or infinite number is never allowed. tests/test_config.py checks that every int and float field of the
schemas has an entry here, so a new setting cannot skip validation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """`low <= value <= high` (either bound optional, either may be strict), with what special values mean."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    meaning: str = ""
    """Appended to the message, e.g. "0 = one pass over the data"."""

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, name: str) -> str:
        """The range as an inequality on `name`, e.g. `0 < top_p <= 1`."""
        low = f"{_number(self.low)} {'<' if self.low_open else '<='} " if self.low is not None else ""
        high = f" {'<' if self.high_open else '<='} {_number(self.high)}" if self.high is not None else ""
        if low and not high:  # read `lr > 0` rather than `0 < lr`
            text = f"{name} {'>' if self.low_open else '>='} {_number(self.low)}"
        else:
            text = f"{low}{name}{high}"
        return f"{text} ({self.meaning})" if self.meaning else text


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
POSITIVE = Range(0, low_open=True)
FRACTION = Range(0, 1)
PROBABILITY = Range(0, 1, low_open=True)
TOKENS = Range(1)
SEED = Range(0)
TEMPERATURE = Range(0, meaning="0 = greedy")
SAMPLING = {"n": AT_LEAST_1, "temperature": TEMPERATURE, "top_p": PROBABILITY, "max_new_tokens": TOKENS}

RANGES: dict[str, dict[str, Range]] = {
    "RunConfig": {"seed": SEED, "threads": AT_LEAST_1, "processes": AT_LEAST_1},
    "ModelConfig": {"tiny_seed": SEED},
    "DatasetConfig": {
        "level": Range(1, 3),
        "n": Range(0, meaning="0 = all; synthetic sets need n >= 1"),
        "seed": SEED,
    },
    "EvalConfig": {"max_new_tokens": TOKENS, "batch_size": AT_LEAST_1},
    "SamplingConfig": SAMPLING,
    "PassRateSampling": SAMPLING,  # the same keys; a null one follows the stage's grpo.sampling
    "SelfDistillConfig": {"max_target_tokens": Range(0, meaning="0 = keep all")},
    "DistillConfig": {
        "caption_max_new_tokens": TOKENS,
        "max_target_tokens": Range(0, meaning="0 = keep all"),
        "shard_size": AT_LEAST_1,
    },
    "PassRateConfig": {
        "hard_below": FRACTION,
        "easy_from": FRACTION,
    },
    "StageDataConfig": {"limit": Range(0, meaning="0 = all")},
    "GRPOConfig": {
        "prompts_per_step": AT_LEAST_1,
        "updates_per_batch": AT_LEAST_1,
        "clip_ratio": Range(0, 1, low_open=True),
        "kl_coef": Range(0, meaning="0 = no reference model"),
        "format_weight": AT_LEAST_0,
        "summary_penalty": Range(high=0, meaning="a penalty: the recipe uses -0.5"),
    },
    "StageConfig": {
        "steps": Range(0, meaning="0 = `epochs` passes over the data"),
        "epochs": POSITIVE,
        "batch_size": AT_LEAST_1,
        "grad_accum": AT_LEAST_1,
        "lr": POSITIVE,
        "weight_decay": AT_LEAST_0,
        "warmup_ratio": FRACTION,
        "max_grad_norm": Range(0, meaning="0 = no clipping"),
        "checkpoint_every": Range(0, meaning="0 = only at the end"),
        "max_nonfinite_skips": AT_LEAST_1,
    },
    "ClusterConfig": {
        "nodes": AT_LEAST_1,
        "gpus_per_node": AT_LEAST_1,
        "rollout_tensor_parallel": AT_LEAST_1,
        "gpu_memory_utilization": PROBABILITY,
        "cpu_kv_cache_gib": POSITIVE,
        "micro_batch_size_per_gpu": AT_LEAST_1,
        "log_prob_micro_batch_size_per_gpu": AT_LEAST_1,
        "max_tokens_per_gpu": TOKENS,
        "max_prompt_tokens": TOKENS,
        "max_sft_tokens": TOKENS,
        "max_image_pixels": AT_LEAST_1,
        "min_image_pixels": AT_LEAST_1,
        "keep_checkpoints": AT_LEAST_1,
    },
    "DistillJobConfig": {
        "seed": SEED,
        "limit": Range(0, meaning="0 = all"),
        "batch_size": AT_LEAST_1,
        "threads": AT_LEAST_1,
    },
}


def check_ranges(config: Any, where: str = "") -> list[str]:
    """Every number of a config dataclass (nested sections, dicts and lists included) outside its range, each
    as `key.path: value is not allowed; allowed: <range>`."""
    errors = []
    table = RANGES.get(type(config).__name__, {})
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{where}.{field.name}" if where else field.name
        if dataclasses.is_dataclass(value):
            errors += check_ranges(value, key)
        elif isinstance(value, dict):
            errors += [
                e
                for k, v in value.items()
                if dataclasses.is_dataclass(v)
                for e in check_ranges(v, f"{key}.{k}")
            ]
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    name = getattr(item, "name", "")
                    errors += check_ranges(item, f"{key}[{i}]" + (f" ({name})" if name else ""))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            allowed = table.get(field.name, Range())
            if not allowed.allows(value):
                errors.append(f"{key}: {value!r} is not allowed; allowed: {allowed.describe(field.name)}")
    return errors


def numeric_fields(schema: type) -> list[tuple[str, str]]:
    """(dataclass name, field name) of every int or float field reachable from `schema` (for the coverage test)."""
    import typing

    found, seen, todo = [], set(), [schema]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for name, hint in typing.get_type_hints(cls).items():
            args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            for arg in [*args, *[a for x in args for a in typing.get_args(x)]]:
                if dataclasses.is_dataclass(arg):
                    todo.append(arg)
                elif arg in (int, float):
                    found.append((cls.__name__, name))
    return sorted(set(found))
