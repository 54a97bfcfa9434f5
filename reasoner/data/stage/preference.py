"""A DPO stage's pairs: the rows of its preference set (`reasoner.data.records.preference`), selected and split.

Selection: a pair whose chosen or rejected response is empty (after stripping), or whose two responses are the
same, teaches nothing and is dropped (counted: `dropped_empty`, `dropped_identical`). Split: `dpo.heldout` of the
kept pairs (rounded; at least one when the share is above 0 and two pairs are kept) are held out of training, drawn
by the stage seed; the loop scores them at the start and the end (`dpo_eval/*`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from reasoner.data.records.problem import Problem
from reasoner.errors import ReasonerError


@dataclass(frozen=True)
class PreferencePair:
    """One pair: the prompt and image (`problem`), the chosen and the rejected response."""

    problem: Problem
    chosen: str
    rejected: str
    heldout: bool = False
    """Held out of training: scored only (`dpo_eval/*`)."""

    @classmethod
    def of(cls, problem: Problem, heldout: bool = False) -> PreferencePair:
        meta = problem.metadata
        return cls(problem, str(meta["chosen"]), str(meta["rejected"]), heldout)


def select_pairs(problems: list[Problem], heldout: float, seed: int, *, stage: str) -> tuple[list[PreferencePair], dict]:
    """The kept pairs (training ones first, then the held-out ones, each in file order) and their statistics."""
    empty = identical = 0
    kept: list[Problem] = []
    for problem in problems:
        chosen, rejected = str(problem.metadata["chosen"]), str(problem.metadata["rejected"])
        if not chosen.strip() or not rejected.strip():
            empty += 1
        elif chosen.strip() == rejected.strip():
            identical += 1
        else:
            kept.append(problem)
    n_held = min(len(kept) - 1, max(1, round(heldout * len(kept)))) if heldout > 0 and len(kept) >= 2 else 0
    order = sorted(kept, key=lambda p: hashlib.sha256(f"{seed}:{p.id}".encode()).hexdigest())
    held = {p.id for p in order[:n_held]}
    pairs = [PreferencePair.of(p) for p in kept if p.id not in held]
    pairs += [PreferencePair.of(p, heldout=True) for p in kept if p.id in held]
    if not any(not pair.heldout for pair in pairs):
        raise ReasonerError(
            f"stage {stage}: no preference pair to train on ({len(problems)} rows: {empty} with an empty response, "
            f"{identical} with identical responses)"
        )
    stats = {"pairs": len(problems), "dropped_empty": empty, "dropped_identical": identical,
             "train_pairs": len(pairs) - n_held, "heldout_pairs": n_held}  # fmt: skip
    return pairs, stats
