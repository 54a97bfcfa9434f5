"""Scoring preference pairs in the driver for a verl DPO stage: the reference log-probs before training and the
held-out pairs at the start and the end.

Each row is tokenized by verl's own SFT dataset (`dpo.PairDataset`, with the stage's composed `data` config and
verl's tokenizer and processor loaders), so the sums cover exactly the tokens verl's loss sums (its loss mask), and
scored with transformers in fp32, one row at a time. The reference log-probs are kept in the stage's ckpt/
(`engines.preference.REFERENCE_FILE`) under the stage fingerprint (a resumed stage reads them). The start model is
the reference, so the start's held-out scores are the reference's (margins 0, accuracy 1/2); the end's are the
exported model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reasoner.engines.base import TrainJob
from reasoner.engines.preference import cached_reference_logps, dpo_terms


def row_logp(model: Any, row: dict[str, Any]) -> float:
    """The summed log-prob of one tokenized row's loss-masked tokens (token t+1 scored from position t)."""
    ids = row["input_ids"]  # [L]
    images = {k: v.to(model.device) for k, v in row.get("multi_modal_inputs", {}).items()}  # pixel_values, grid
    logits = model(input_ids=ids[None].to(model.device), **images).logits  # [1, L, V]
    logp = torch.log_softmax(logits[0, :-1].float(), dim=-1)  # [L-1, V]
    picked = logp.gather(-1, ids[1:, None].to(logp.device))[:, 0]  # [L-1]
    return float((picked * row["loss_mask"][1:].to(picked.device)).sum())


@torch.no_grad()
def score_pairs(model_path: Path, parquet: Path, data_config: Any) -> list[tuple[float, float]]:
    """(logp chosen, logp rejected) of every pair of a pair parquet under the model at `model_path`."""
    from verl.utils import hf_processor, hf_tokenizer

    from reasoner.engines.verl.dpo import PairDataset
    from reasoner.models.loading import load_model

    tokenizer, processor = hf_tokenizer(str(model_path)), hf_processor(str(model_path))
    dataset = PairDataset([str(parquet)], tokenizer, data_config, processor=processor)
    model, _ = load_model(model_path, device="cuda" if torch.cuda.is_available() else "cpu", dtype="float32")
    scores = [row_logp(model, dataset.row(i)) for i in range(2 * len(dataset))]
    return list(zip(scores[0::2], scores[1::2], strict=True))


def reference_logps(
    job: TrainJob, parquets: Sequence[tuple[Sequence[str], Path]], data_config: Any
) -> dict[str, tuple[float, float]]:
    """Every pair's reference log-probs (the stage's start model), cached in `ckpt/REFERENCE_FILE` (each (pair ids,
    parquet) scored in turn)."""

    def compute() -> dict[str, tuple[float, float]]:
        logps: dict[str, tuple[float, float]] = {}
        for group, parquet in parquets:
            logps.update(zip(group, score_pairs(job.init_model, parquet, data_config), strict=True))
        return logps

    return cached_reference_logps(job, [pid for group, _ in parquets for pid in group], compute)


def heldout_metrics(
    scored: Sequence[tuple[float, float]], refs: Sequence[tuple[float, float]], beta: float, prefix: str
) -> dict[str, float]:
    """`{prefix}accuracy` and `{prefix}margin` of held-out pairs, as the local engine's held-out evaluation."""
    logp = torch.tensor(scored, dtype=torch.float32)  # [H, 2]
    ref = torch.tensor(refs, dtype=torch.float32)  # [H, 2]
    terms = dpo_terms(logp[:, 0], logp[:, 1], ref[:, 0], ref[:, 1], torch.ones(len(ref)), beta=beta, nll_alpha=0.0)
    return {f"{prefix}accuracy": float(terms.accuracies.mean()), f"{prefix}margin": float(terms.margins.mean())}
