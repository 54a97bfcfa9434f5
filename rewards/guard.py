"""A reward that fails scores 0: one bad item never stops a training step nor turns its mean reward into NaN.

`guarded(scorer, ...)` runs a scorer of one response; when it raises, or returns a score whose overall is not
finite (NaN, inf), the response gets `failed_score()`: overall 0, reason `reward-error`. Callers count these
(`count/reward_errors` in the local engine's GRPO step metrics, `reward_error` in verl's reward extras), so a
broken reward shows up in the metrics instead of in the average.

    >>> guarded(lambda: 1 / 0).reason
    'reward-error'
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from .core import RewardScore

REWARD_ERROR = "reward-error"
"""The reason of a response whose reward failed."""

log = logging.getLogger(__name__)


def failed_score() -> RewardScore:
    """The score of a response whose reward failed: 0 everywhere, reason `reward-error`."""
    return RewardScore(
        overall=0.0,
        accuracy=0.0,
        format=0.0,
        extracted=None,
        prediction=None,
        rule="none",
        reason=REWARD_ERROR,
        mapping=REWARD_ERROR,
        summary_missing=False,
    )


def guarded(scorer: Callable[..., RewardScore], *args: Any, **kwargs: Any) -> RewardScore:
    """`scorer(*args, **kwargs)`, or `failed_score()` (logged) when it raises or its overall is not finite."""
    try:
        result = scorer(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - any failure of one item scores it 0; logged here, counted by callers
        log.warning("reward failed, scored 0: %s: %.200s", type(err).__name__, err)
        return failed_score()
    if not math.isfinite(result.overall):
        log.warning("reward is not finite (%s), scored 0", result.overall)
        return failed_score()
    return result
