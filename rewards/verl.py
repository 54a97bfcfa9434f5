"""verl adapter: `compute_score` for verl's `reward.custom_reward_function`.

verl loads this file by path, as a module outside any package:

    reward.custom_reward_function.path=/abs/path/to/repo/rewards/verl.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.summary_penalty=-0.5   # the OpenVLThinker recipe
    +reward.custom_reward_function.reward_kwargs.extraction=strict      # reward only a well-formed <answer>

so it loads its own package, the `rewards/` folder beside this file, by path: never whatever `rewards` the working
directory or sys.path would find first (a source checkout run beside a non-editable install, or a second checkout
sharing a venv). When another copy is already imported as `rewards` in the worker, this one is loaded under a
private name beside it (the package imports itself only relatively). The parquet rows carry the item's answer_type
/ choices / precision / unit / question in `extra_info` (written by reasoner.engines.verl.data_format).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

_PACKAGE_DIR = Path(__file__).resolve().parent


def _own_package() -> ModuleType:
    """The `rewards` package this file belongs to, loaded from `_PACKAGE_DIR` whatever sys.path holds."""
    if __package__:  # imported as rewards.verl: the package is the one that imported it
        return sys.modules[__package__]
    loaded = sys.modules.get("rewards")
    if loaded is None or Path(getattr(loaded, "__file__", "") or "").resolve().parent == _PACKAGE_DIR:
        name = "rewards"
    else:  # another copy holds the name: load this one beside it
        name = "_rewards_" + hashlib.sha256(str(_PACKAGE_DIR).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, _PACKAGE_DIR / "__init__.py", submodule_search_locations=[str(_PACKAGE_DIR)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    try:
        spec.loader.exec_module(package)
    except BaseException:
        del sys.modules[name]
        raise
    return package


_rewards = _own_package()
RewardScore, RewardWeights, score = _rewards.RewardScore, _rewards.RewardWeights, _rewards.score
DEFAULT_TIMEOUT_S, REWARD_ERROR, guarded = _rewards.DEFAULT_TIMEOUT_S, _rewards.REWARD_ERROR, _rewards.guarded


def _optional_text(value: object) -> str | None:
    """None for the ways parquet spells "no value" (None, NaN, empty), else the value as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text.strip() else None


def _choices(value: object) -> list[str] | None:
    """Choices as a list of strings: parquet gives a numpy array, JSON a list (or a JSON text), a missing
    value None or NaN. Raises ValueError for a text that is not a JSON list (it would silently lose them)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list):
            raise ValueError(f"extra_info['choices'] must be a list of choice texts, not the text {value!r}")
        value = parsed
    choices = [str(choice) for choice in value]
    return choices or None


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: object,
    extra_info: Mapping | None = None,
    *,
    accuracy_weight: float = 1.0,
    format_weight: float = 0.0,
    summary_penalty: float = 0.0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    extraction: str = "lenient",
    **_: object,
) -> dict[str, float | str]:
    """Score one rollout for verl.

    Returns {"score": overall, "acc", "format", "summary_missing", "timeout", "no_answer", "reward_error"
    (floats), "pred", "reason" (short strings)}. A rollout whose scoring raises (e.g. an unreadable extra_info) or
    gives a non-finite score scores 0 with "reward_error" 1 (`rewards.guard`): verl's reward loop would otherwise
    fail the whole step, or average a NaN into the advantages. verl averages the numbers into its metrics ("acc" is the name its validation
    treats as the core metric; "pred" feeds its majority-vote metrics) and skips the strings there.
    `data_source` is not needed (the item says its own answer type); other keyword arguments verl passes
    (reward_router_address, ...) are ignored. The weights default to plain accuracy. `extraction` is the
    answer reading of `rewards.score`: "strict" rewards only the content of one well-formed final `<answer>`
    tag (training), "lenient" also reads free text (evaluation)."""
    weights = RewardWeights(accuracy=accuracy_weight, format=format_weight, summary_penalty=summary_penalty)
    result = guarded(_score, solution_str, ground_truth, extra_info, weights, timeout_s, extraction)
    return {
        "score": result.overall,
        "acc": result.accuracy,
        "format": result.format,
        "summary_missing": float(result.summary_missing),
        "timeout": float(result.reason == "timeout"),
        "no_answer": float(result.prediction is None),
        "pred": (result.prediction or "")[:200],
        "reason": result.reason,
        "reward_error": float(result.reason == REWARD_ERROR),
    }


def _score(
    solution_str: str,
    ground_truth: object,
    extra_info: Mapping | None,
    weights: RewardWeights,
    timeout_s: float,
    extraction: str,
) -> RewardScore:
    """`rewards.score` of one rollout, its arguments read from verl's ground truth and parquet extra_info."""
    extra = dict(extra_info or {})
    precision = extra.get("precision")
    return score(
        solution_str,
        str(ground_truth),
        answer_type=_optional_text(extra.get("answer_type")),
        choices=_choices(extra.get("choices")),
        precision=None if _optional_text(precision) is None else float(precision),
        unit=_optional_text(extra.get("unit")),
        question=_optional_text(extra.get("question")),
        weights=weights,
        timeout_s=timeout_s,
        extraction=extraction,
    )
