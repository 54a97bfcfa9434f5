"""The verl engine's DPO loss (reasoner/engines/verl/dpo.py) against the local engine's (`dpo_terms` as
engines/local/dpo.py drives it), on a hand-built batch collated and split by verl's own code (no Ray): the same
step loss, gradients and `dpo/*` metrics."""

from __future__ import annotations

import pytest
import torch

from reasoner.engines.local.dpo import dpo_terms

tu = pytest.importorskip("verl.utils.tensordict_utils")
from verl.utils.dataset.dataset_utils import SFTTensorCollator  # noqa: E402

from reasoner.engines.verl.dpo import METRIC_KEYS, dpo_loss  # noqa: E402

PAIRS, BETA, ALPHA = 4, 0.3, 0.2


def hand_built_rows(seed: int = 0):
    """2 x PAIRS rows (chosen, rejected per pair): a prompt of 3-5 tokens (mask 0), a response of 2-7 (mask 1),
    per-token log-probs, and a reference summed log-prob per row."""
    gen = torch.Generator().manual_seed(seed)
    rows, log_probs = [], []
    for _ in range(2 * PAIRS):
        prompt, response = int(torch.randint(3, 6, (1,), generator=gen)), int(torch.randint(2, 8, (1,), generator=gen))
        mask = torch.tensor([0] * prompt + [1] * response)  # [L]
        rows.append({"input_ids": torch.arange(len(mask)), "loss_mask": mask,
                     "ref_logp": -torch.rand(1, generator=gen, dtype=torch.float64).float() * 10})  # fmt: skip
        log_probs.append(-torch.rand(len(mask), generator=gen) * 3)  # [L]: log_probs[t] scores token t+1
    return rows, log_probs


def local_step(rows, log_probs):
    """What engines/local/dpo.py computes for the step: the loss (mean over pairs) and the summed metrics."""
    logp = torch.stack([(lp[:-1] * row["loss_mask"][1:]).sum() for lp, row in zip(log_probs, rows, strict=True)]).view(-1, 2)
    tokens = torch.stack([row["loss_mask"][1:].sum() for row in rows]).float().view(-1, 2)
    ref = torch.cat([row["ref_logp"] for row in rows]).view(-1, 2)
    terms = dpo_terms(logp[:, 0], logp[:, 1], ref[:, 0], ref[:, 1], tokens[:, 0], beta=BETA, nll_alpha=ALPHA)
    values = [v.detach() for v in (terms.losses, terms.accuracies, terms.margins, logp[:, 0], logp[:, 1], terms.nll)]
    return terms.losses.sum() / PAIRS, {f"dpo/{k}": float(v.sum()) / PAIRS for k, v in zip(METRIC_KEYS, values, strict=True)}


@pytest.mark.parametrize("micro_pairs", [1, 2, 4])
def test_verl_dpo_loss_equals_the_local_engines_on_a_step(micro_pairs):
    rows, log_probs = hand_built_rows()
    leaves = [lp.clone().requires_grad_(True) for lp in log_probs]
    expected_loss, expected_metrics = local_step(rows, leaves)
    expected_loss.backward()
    expected_grads = [leaf.grad.clone() for leaf in leaves]

    batch = tu.get_tensordict(SFTTensorCollator("no_padding")(rows), {"global_batch_size": PAIRS, "dp_size": 1})
    leaves = [lp.clone().requires_grad_(True) for lp in log_probs]
    total, metrics = 0.0, {}
    for i, micro in enumerate(tu.chunk_tensordict(batch, PAIRS // micro_pairs)):  # verl's fixed-size split
        rows_here = leaves[2 * micro_pairs * i : 2 * micro_pairs * (i + 1)]
        output = {"log_probs": torch.nested.as_nested_tensor(rows_here, layout=torch.jagged)}
        loss, parts = dpo_loss(None, output, micro, beta=BETA, nll_alpha=ALPHA)
        loss.backward()
        total += float(loss)
        for key, value in parts.items():
            metrics[key] = metrics.get(key, 0.0) + value
    assert total == pytest.approx(float(expected_loss), rel=1e-6)
    assert metrics == pytest.approx(expected_metrics, rel=1e-6, abs=1e-7)
    for leaf, grad in zip(leaves, expected_grads, strict=True):
        torch.testing.assert_close(leaf.grad, grad)
