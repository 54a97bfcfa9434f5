"""verl adapter: `compute_score` for verl's `reward.custom_reward_function`.

verl loads this file by path, as a module outside any package:

    reward.custom_reward_function.path=/abs/path/to/repo/rewards/verl.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.summary_penalty=-0.5   # the OpenVLThinker recipe
    +reward.custom_reward_function.reward_kwargs.extraction=strict      # reward only a well-formed <answer>

so it first puts the folder holding `rewards/` on sys.path, then imports the package. The parquet rows carry
the item's answer_type / choices / precision / unit / question in `extra_info` (written by reasoner.data.verl_format).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
if not __package__:  # loaded by file path: make `import rewards` find this very package
    if str(_PACKAGE_DIR.parent) not in sys.path:
        sys.path.insert(0, str(_PACKAGE_DIR.parent))
    _loaded = sys.modules.get("rewards")
    if _loaded is not None and Path(getattr(_loaded, "__file__", "") or "").resolve().parent != _PACKAGE_DIR:
        raise ImportError(f"another 'rewards' package ({_loaded.__file__}) is already imported; {__file__} "
                          f"needs its own ({_PACKAGE_DIR})")

from rewards.core import RewardScore, RewardWeights, score  # noqa: E402
from rewards.equivalence import DEFAULT_TIMEOUT_S  # noqa: E402
from rewards.guard import REWARD_ERROR, guarded  # noqa: E402


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
