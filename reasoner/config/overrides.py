"""Command-line overrides of a config: `key=value` items and fragment files (presets such as
configs/presets/dapo.yaml) read into (key, value) pairs in order, and their keys resolved against the merged
config: a stage's name for its index (`stages.grpo1.steps`) and the `stages.*.` wildcard for every stage (every GRPO
stage under `stages.*.grpo.`). `loading.load_structured` applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from reasoner.config.stages import StageKind
from reasoner.errors import ReasonerError

FRAGMENT_SUFFIXES = (".yaml", ".yml")
"""An override naming a file with one of these endings (and no `=`) is a fragment: a preset such as
configs/presets/dapo.yaml."""


def is_fragment(item: str) -> bool:
    """Whether an override names a fragment file rather than giving `key=value`."""
    return "=" not in item and item.endswith(FRAGMENT_SUFFIXES)


def override_items(overrides: Sequence[str]) -> list[tuple[str, Any]]:
    """(key, value) of every override in order: `key=value`, or each `key: value` of a fragment file (a YAML mapping
    of override keys, e.g. `stages.*.grpo.clip_ratio_high: 0.28`), applied where the file stands in the list."""
    items = []
    for item in overrides:
        items += _fragment(Path(item)) if is_fragment(item) else [_split_override(item)]
    return items


def _fragment(path: Path) -> list[tuple[str, Any]]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ReasonerError(f"fragment {path}: cannot read it: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ReasonerError(f"fragment {path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict) or not raw or not all(isinstance(key, str) for key in raw):
        raise ReasonerError(f"fragment {path}: must be a mapping of override keys to values, e.g. "
                            "`stages.*.grpo.clip_ratio_high: 0.28`")  # fmt: skip
    return list(raw.items())


def _split_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ReasonerError(f"override {item!r} is not of the form key=value (or a fragment file, .yaml)")
    key, value = item.split("=", 1)
    return key.strip(), yaml.safe_load(value) if value.strip() else ""


def resolve_stage_keys(cfg: Any, key: str) -> list[str]:
    """`stages.*.<key>` sets `<key>` in every stage, and `stages.*.grpo.<key>` in every GRPO stage (only they take
    GRPO settings); any other key is one key (`_resolve_stage_key`)."""
    parts = key.split(".")
    if len(parts) < 3 or parts[:2] != ["stages", "*"] or "stages" not in cfg:
        return [_resolve_stage_key(cfg, key)]
    grpo_only = parts[2] == "grpo"
    chosen = [i for i, stage in enumerate(cfg.stages)
              if not grpo_only or getattr(stage.get("kind"), "value", stage.get("kind")) == StageKind.grpo.value]  # fmt: skip
    if not chosen:
        raise ReasonerError(f"override {key!r}: the config has no {'GRPO ' if grpo_only else ''}stage to set it in")
    return [".".join(["stages", str(i), *parts[2:]]) for i in chosen]


def _resolve_stage_key(cfg: Any, key: str) -> str:
    """Let overrides name stages: `stages.grpo1.steps` -> `stages.1.steps`."""
    parts = key.split(".")
    if len(parts) < 2 or parts[0] != "stages" or parts[1].isdigit() or "stages" not in cfg:
        return key
    names = default_names([(s.get("kind"), s.get("name")) for s in cfg.stages])
    if parts[1] not in names:
        raise ReasonerError(f"override {key!r}: no stage named {parts[1]!r}; stages: {', '.join(names)}")
    return ".".join(["stages", str(names.index(parts[1])), *parts[2:]])


def default_names(kinds_and_names: list[tuple[Any, Any]]) -> list[str]:
    """Each stage's name: its own, or its kind numbered among the stages of that kind (sft1, grpo1, sft2, ...)."""
    counts: dict[str, int] = {}
    names = []
    for kind, name in kinds_and_names:
        kind = getattr(kind, "value", kind)
        counts[kind] = counts.get(kind, 0) + 1
        names.append(name or f"{kind}{counts[kind]}")
    return names
