"""The format reward: `<think>...</think>` then `<answer>...</answer>`, each exactly once and non-empty.

The OpenVLThinker recipe also penalises a response with no summary between `</think>` and `<answer>` (its GRPO
reward adds -0.5 then); `FormatCheck.summary_missing` reports that case so `RewardWeights` can price it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMAT_RE = re.compile(
    r"\s*<think>(?P<think>.*?)</think>(?P<between>.*?)<answer>(?P<answer>.*?)</answer>\s*", re.DOTALL
)
TAGS = ("<think>", "</think>", "<answer>", "</answer>")


@dataclass(frozen=True)
class FormatCheck:
    """`ok`: the response is exactly think-then-answer with non-empty contents. `summary_missing`: both parts are
    there but only whitespace stands between `</think>` and `<answer>`."""

    ok: bool
    summary_missing: bool

    @property
    def score(self) -> float:
        """1.0 for a well-formed response, else 0.0."""
        return 1.0 if self.ok else 0.0


def check_format(response: str) -> FormatCheck:
    """Check the think/answer layout of `response` (see the module docstring)."""
    text = response or ""
    # Count first: the regex backtracks quadratically over many repeated tags, and needs each tag once anyway.
    once_each = all(text.count(tag) == 1 for tag in TAGS)
    match = FORMAT_RE.fullmatch(text) if once_each else None
    if not match:
        return FormatCheck(ok=False, summary_missing=_summary_missing(text))
    ok = bool(match.group("think").strip()) and bool(match.group("answer").strip())
    return FormatCheck(ok=ok, summary_missing=not match.group("between").strip())


def _summary_missing(text: str) -> bool:
    """For malformed responses: still True when a `</think>` is followed, after only whitespace, by `<answer>`."""
    end = text.rfind("</think>")
    start = text.find("<answer>", end)
    return end >= 0 and start >= 0 and not text[end + len("</think>") : start].strip()
