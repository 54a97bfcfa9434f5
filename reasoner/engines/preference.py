"""The DPO objective both engines train with: per-pair terms from summed response log-probs (pure torch).

TRL's sigmoid DPO (`DPOTrainer.dpo_loss`, `loss_type="sigmoid"`, label_smoothing 0) plus `nll_alpha` times the
chosen response's mean per-token NLL (TRL's `rpo_alpha`, per pair). Rewards are beta * (logp - ref); accuracy counts
a tie as 1/2 (at the start, policy = reference, every pair ties). The local engine calls it per micro-batch
(`engines/local/dpo.py`), the verl engine from the loss function it hands verl (`engines/verl/dpo.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reasoner.atomic import write_json
from reasoner.engines.base import TrainJob
from reasoner.rundir import DamagedFile, read_json

log = logging.getLogger(__name__)

REFERENCE_FILE = "reference_logps.json"
"""In the stage's ckpt/: `{"fingerprint", "logps": {pair id: [ref_chosen, ref_rejected]}}`."""


@dataclass
class DPOTerms:
    """Per-pair values of the loss: [B] each."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    nll: torch.Tensor

    @property
    def margins(self) -> torch.Tensor:
        return self.chosen_rewards - self.rejected_rewards

    @property
    def accuracies(self) -> torch.Tensor:
        """1 where the chosen reward is above the rejected one, 1/2 on a tie, else 0."""
        margins = self.margins
        return (margins > 0).float() + 0.5 * (margins == 0).float()


def dpo_terms(
    logp_chosen: torch.Tensor,
    logp_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    chosen_tokens: torch.Tensor,
    *,
    beta: float,
    nll_alpha: float,
) -> DPOTerms:
    """The loss of each pair from summed response log-probs [B] (see the module doc); rewards are detached."""
    logits = (logp_chosen - logp_rejected) - (ref_chosen - ref_rejected)  # [B]
    nll = -logp_chosen / chosen_tokens  # [B]
    losses = -F.logsigmoid(beta * logits) + nll_alpha * nll  # [B]
    chosen_rewards = beta * (logp_chosen - ref_chosen).detach()  # [B]
    rejected_rewards = beta * (logp_rejected - ref_rejected).detach()  # [B]
    return DPOTerms(losses, chosen_rewards, rejected_rewards, nll.detach())


def cached_reference_logps(
    job: TrainJob, ids: Sequence[str], compute: Callable[[], dict[str, tuple[float, float]]]
) -> dict[str, tuple[float, float]]:
    """Every pair's reference log-probs (the stage's start model): read from `ckpt/REFERENCE_FILE` when written
    under this stage's fingerprint for exactly these pair `ids`, else `compute()`d and written there first (a
    resumed stage reads them rather than recomputing)."""
    path = job.ckpt_dir / REFERENCE_FILE
    try:
        cached = read_json(path)
    except DamagedFile as err:
        log.warning("%s; computing the reference log-probs again", err)
        cached = None
    if isinstance(cached, dict) and cached.get("fingerprint") == job.fingerprint:
        logps = cached.get("logps", {})
        if isinstance(logps, dict) and sorted(logps) == sorted(ids):
            log.info("stage %s: reference log-probs read from %s", job.stage.name, path)
            return {pid: (float(c), float(r)) for pid, (c, r) in logps.items()}
    logps = compute()
    write_json(path, {"fingerprint": job.fingerprint, "logps": {pid: list(v) for pid, v in logps.items()}})
    log.info("stage %s: reference log-probs of %d pairs written to %s", job.stage.name, len(logps), path)
    return logps
