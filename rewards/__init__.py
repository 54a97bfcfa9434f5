"""Pure answer scoring for `reasoner`: extraction, MathVista normalisation, math-verify equivalence, format.

The same `score` grades MathVista, filters SFT data and computes GRPO rewards (through `rewards.verl`).
Imports nothing from `reasoner`, torch or ray; math-verify runs only in worker processes (rewards.equivalence).

    >>> from rewards import score
    >>> score("<think>...</think>\\n<answer>(B)</answer>", "8/11", choices=["3/11", "8/11"]).accuracy
    1.0
"""

from .batch import score_batch
from .core import RECIPE_WEIGHTS, RewardScore, RewardWeights, score
from .equivalence import DEFAULT_TIMEOUT_S, EquivalencePool, Verdict, default_pool, equivalence_stats
from .extract import Extraction, extract_answer
from .formatting import FormatCheck, check_format
from .guard import REWARD_ERROR, failed_score, guarded

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "RECIPE_WEIGHTS",
    "REWARD_ERROR",
    "EquivalencePool",
    "Extraction",
    "FormatCheck",
    "RewardScore",
    "RewardWeights",
    "Verdict",
    "check_format",
    "default_pool",
    "equivalence_stats",
    "extract_answer",
    "failed_score",
    "guarded",
    "score",
    "score_batch",
]
