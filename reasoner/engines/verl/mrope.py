"""Fix verl 0.9.1's 3-D (mrope) position_ids for batches whose sequences all have the same length: a patch
loaded on every verl run, GPU and CPU alike.

The bug (not CPU-specific): `verl.workers.utils.padding.left_right_2_no_padding` turns Qwen-VL's padded
position_ids of shape (batch, 4, seq) into a jagged nested tensor with `torch.nested.as_nested_tensor`, which
infers the ragged dimension from the shapes it is given. When the sequences differ in length the ragged dimension
is the last one, as verl expects; when every sequence of the batch has the same length, torch has nothing to
infer from and makes dimension 1 (the 4 rope sections) ragged. verl then forces `_ragged_idx = 2`
(`tensordict_utils.maybe_fix_3d_position_ids`) and the next split of the batch fails deep in
`seqlen_balancing` with `RuntimeError: Expected cond to be True, but got False` (split_with_sizes). It needs
equal prompt + response lengths across a whole batch: rare with real data, common with fixed-size images and
responses that all hit the length limit, and routine on tiny test models.

`install()` wraps the function so that in that case the positions are rebuilt with the ragged dimension stated
explicitly (`nested_tensor_from_jagged(..., jagged_dim=2)`); other batches are left exactly as verl made them.
verl's trainer imports the function by name after `import verl` has loaded this module, so the wrapper is the
one it calls (`VERL_USE_EXTERNAL_MODULES`, see `overrides.launch_env`).
"""

from __future__ import annotations

import functools

import torch

PATCHED_VERL_VERSION = "0.9.1"
RAGGED_DIM = 2
"""Where verl expects the ragged (sequence) dimension of (batch, 4, seq) nested position_ids."""


def rebuild_positions(positions: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, 4, seq) padded positions -> a jagged nested tensor ragged on the sequence dimension."""
    keep = attention_mask.bool()
    values = torch.cat([positions[i][:, keep[i]] for i in range(positions.shape[0])], dim=1)  # [4, total]
    offsets = torch.cat([keep.new_zeros(1, dtype=torch.long), keep.sum(dim=1).cumsum(0)])
    return torch.nested.nested_tensor_from_jagged(values, offsets=offsets, jagged_dim=RAGGED_DIM)


def install() -> bool:
    """Wrap `left_right_2_no_padding` once (returns False if it was already wrapped)."""
    import verl
    from verl.workers.utils import padding

    if verl.__version__ != PATCHED_VERL_VERSION:
        raise RuntimeError(
            f"{__name__} patches verl {PATCHED_VERL_VERSION}, found {verl.__version__}; check whether "
            "workers/utils/padding.left_right_2_no_padding still builds 3-D position_ids with as_nested_tensor"
        )
    original = padding.left_right_2_no_padding
    if getattr(original, "_reasoner_mrope", False):
        return False

    @functools.wraps(original)
    def left_right_2_no_padding(data):
        positions, mask = data["position_ids"], data["attention_mask"]
        out = original(data)
        nested = out["position_ids"]
        if positions.dim() == 3 and nested.is_nested and nested._ragged_idx != RAGGED_DIM:
            out["position_ids"] = rebuild_positions(positions, mask)
        return out

    left_right_2_no_padding._reasoner_mrope = True
    padding.left_right_2_no_padding = left_right_2_no_padding
    return True


install()
