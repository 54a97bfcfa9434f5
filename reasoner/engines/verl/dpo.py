"""DPO on verl's Ray SFT trainer: the pair dataset (`data.custom_cls`) and the loss (`set_loss_fn`) verl runs.

verl 0.9.1's SFT trainer draws dataset items with a shuffling sampler, collates them with `SFTTensorCollator`
(every tensor field of an item becomes a jagged field of the batch's TensorDict, extra ones included) and hands each
micro-batch's TensorDict and the model's per-token `log_probs` to a pluggable loss function. So:

- `PairDataset` is indexed by pair: the sampler shuffles pairs, and PyTorch's `__getitems__` hook returns each
  drawn pair as two consecutive rows, chosen then rejected, each with its reference log-prob as one more field
  (`ref_logp`). A step's batch is `data.train_batch_size` pairs, 2x that in rows.
- Pairs stay whole through the split: the batch goes to the data-parallel ranks in equal contiguous shares (pairs
  per step divisible by the ranks) and into fixed-size micro-batches of an even number of rows
  (`data.micro_batch_size_per_gpu` = 2 x pairs; verl's `force_group_size`, which would keep pairs whole under
  dynamic batching too, is read from the batch's metadata, which the SFT trainer fixes, so dynamic batching is
  off for DPO), and verl's `balance_batch` reordering is off.
- `dpo_loss` sums each row's response log-probs (verl's loss mask, shifted as `sft_loss` shifts it) and calls the
  shared `reasoner.engines.preference.dpo_terms`.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

from reasoner.engines.preference import dpo_terms

REF_FIELD = "ref_logp"
"""The per-row field (and parquet column) of the reference's summed response log-prob."""
METRIC_KEYS = ("loss", "accuracy", "margin", "logp_chosen", "logp_rejected", "nll")
"""The `dpo/*` metrics of a step (the local engine's names): each the mean over the step's pairs."""
VERL_VERSION = "0.9.1"


class PairDataset(MultiTurnSFTDataset):
    """verl's multi-turn SFT rows of a pair parquet (rows 2i chosen, 2i+1 rejected), drawn by pair."""

    def __init__(self, parquet_files, tokenizer, config, processor=None, max_samples: int = -1):
        super().__init__(parquet_files, tokenizer, config, processor=processor, max_samples=-1)
        if len(self.messages) % 2:
            raise ValueError(f"{parquet_files}: a pair parquet holds an even number of rows (chosen, rejected)")
        column = self.dataframe[REF_FIELD] if REF_FIELD in self.dataframe.columns else None
        missing = [True] * len(self.messages) if column is None else column.isna().tolist()
        values = [0.0] * len(self.messages) if column is None else column.tolist()
        # NaN before the reference is computed (the driver's scoring reads no reference).
        self.refs = [float("nan") if gone else float(v) for gone, v in zip(missing, values, strict=True)]

    def __len__(self) -> int:
        return len(self.messages) // 2

    def row(self, index: int) -> dict[str, Any]:
        """Row `index` as verl's SFT dataset tokenizes it, plus its reference log-prob."""
        item = super().__getitem__(index)
        item[REF_FIELD] = torch.tensor([self.refs[index]], dtype=torch.float32)  # [1]
        return item

    def __getitem__(self, pair: int) -> list[dict[str, Any]]:
        return [self.row(2 * pair), self.row(2 * pair + 1)]

    def __getitems__(self, pairs: list[int]) -> list[dict[str, Any]]:
        """A batch of pairs as 2x rows for the collator (PyTorch's batched-fetch hook)."""
        return [row for pair in pairs for row in self[pair]]


def row_sums(log_probs: torch.Tensor, loss_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-probs [R], counted tokens [R]) of each row's loss-masked tokens, from jagged [R, j] tensors.

    verl's `log_probs[t]` scores token t+1, so the mask is shifted left by one, as `sft_loss` shifts it (across a
    row's end this takes the next row's first mask value, a user-turn token: 0)."""
    values = log_probs.values()  # [T]
    mask = torch.roll(loss_mask.values(), shifts=-1, dims=0).to(values.dtype)  # [T]
    lengths = log_probs.offsets().diff()  # [R]
    rows = torch.repeat_interleave(torch.arange(len(lengths), device=values.device), lengths)  # [T]
    zeros = torch.zeros(len(lengths), dtype=values.dtype, device=values.device)  # [R]
    return zeros.index_add(0, rows, values * mask), zeros.index_add(0, rows, mask)


def dpo_loss(config, model_output, data, dp_group=None, *, beta: float, nll_alpha: float):
    """verl loss function (`TrainingWorker.set_loss_fn`) over one micro-batch of whole pairs.

    The loss is this micro-batch's share of the step's mean over its pairs, times the data-parallel size (verl
    averages gradients over the ranks, as `sft_loss` assumes); each metric is this micro-batch's share of the step
    mean, so the parts verl returns (per micro-batch and rank) add up to it (`sum_metric_parts`)."""
    logp, tokens = row_sums(model_output["log_probs"], data["loss_mask"])  # [R] each
    ref = data[REF_FIELD].values().to(logp.dtype)  # [R]
    logp, tokens, ref = logp.view(-1, 2), tokens.view(-1, 2), ref.view(-1, 2)  # [P, 2]: chosen, rejected
    terms = dpo_terms(logp[:, 0], logp[:, 1], ref[:, 0], ref[:, 1], tokens[:, 0], beta=beta, nll_alpha=nll_alpha)
    step_pairs = _value(data["global_batch_size"])
    loss = terms.losses.sum() / step_pairs * _value(data["dp_size"])
    values = (terms.losses.detach(), terms.accuracies, terms.margins, logp[:, 0].detach(), logp[:, 1].detach(),
              terms.nll)  # fmt: skip
    metrics = {f"dpo/{key}": float(v.sum()) / step_pairs for key, v in zip(METRIC_KEYS, values, strict=True)}
    return loss, metrics


def _value(item: Any) -> Any:
    return getattr(item, "data", item)  # NonTensorData or the plain value


def loss_function(beta: float, nll_alpha: float):
    """The picklable loss verl's workers receive."""
    return functools.partial(dpo_loss, config=None, beta=beta, nll_alpha=nll_alpha)


def _summed(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return sum(_summed(v) for v in value)
    return value


def sum_metric_parts(training_client: Any) -> None:
    """Make the worker group's `train_batch` return each `dpo/*` metric summed over its parts.

    Why: verl 0.9.1's SFT trainer logs the metrics its workers return as they are, and a loss function's metrics
    come back as one value per micro-batch (a list, per rank when data-parallel); the PPO trainer reduces them, the
    SFT trainer does not (its own loss returns none). Our parts add up to the step's value, so the driver sums them
    before verl logs them (trackers take numbers). Only this worker-group instance is wrapped."""
    import verl
    from verl.utils import tensordict_utils as tu

    assert verl.__version__ == VERL_VERSION, f"sum_metric_parts is written for verl=={VERL_VERSION}"
    train_batch = training_client.train_batch

    def summed_train_batch(data):
        output = train_batch(data).get()
        metrics = tu.get(output, "metrics")
        for key in [k for k in metrics if k.startswith("dpo/")]:
            metrics[key] = float(_summed(metrics[key]))
        return _Ready(output)

    training_client.train_batch = summed_train_batch


class _Ready:
    """A finished result in the shape of verl's non-blocking call result (`.get()`)."""

    def __init__(self, value: Any):
        self.value = value

    def get(self) -> Any:
        return self.value
