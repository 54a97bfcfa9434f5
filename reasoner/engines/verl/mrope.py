"""Fix verl 0.9.1's 3-D (mrope) position_ids for batches whose sequences all have the same length: a patch
loaded on every verl run, GPU and CPU alike.

The bug (not CPU-specific): verl keeps Qwen-VL's position_ids of shape (batch, 4, seq) as a jagged nested tensor,
and two places build it with `torch.nested.as_nested_tensor`, which infers the ragged dimension from the shapes it
is given: verl's `workers/utils/padding.left_right_2_no_padding`, and the transfer queue that carries a batch to
the training workers (`transfer_queue`'s storage manager packs each sample's (4, seq) positions again). When the
sequences differ in length the ragged dimension is the last one, as verl expects; when every sequence of the batch
has the same length, torch has nothing to infer from and makes dimension 1 (the 4 rope sections) ragged. verl
then forces `_ragged_idx = 2` (`tensordict_utils.maybe_fix_3d_position_ids`, meant for tensors whose index was
lost in pickling) on a tensor laid out for dimension 1, and the next split of the batch fails:
`split_with_sizes expects split_sizes to sum exactly to <seq> (input tensor's size at dimension 1), but got
split_sizes=[4, 4, ...]` (or `Expected cond to be True` in `seqlen_balancing`). It needs equal prompt + response
lengths across a whole batch: rare with real data, common with fixed-size images and responses that all hit the
length limit, and routine on tiny test models.

`install()` wraps both functions: a nested tensor laid out ragged on the rope sections is rebuilt ragged on the
sequence dimension, with the same values (`on_sequence`); every other tensor is left exactly as verl made it.
verl's modules import the functions by name after `import verl` has loaded this module, so the wrappers are the
ones they call (`VERL_USE_EXTERNAL_MODULES`, see `overrides.launch_env`); modules that imported
`maybe_fix_3d_position_ids` before it was wrapped are rebound.
"""

from __future__ import annotations

import functools
import sys

import torch

PATCHED_VERL_VERSION = "0.9.1"
RAGGED_DIM = 2
"""Where verl expects the ragged (sequence) dimension of (batch, 4, seq) nested position_ids."""


def ragged_on_sections(positions: torch.Tensor) -> bool:
    """A (batch, 4, j) nested tensor laid out ragged on dimension 1: its values are the samples' (4, seq) blocks
    stacked on dimension 0, so their rows are the offsets' total (a tensor whose index was merely lost in
    pickling has its values laid out along the sequence, 4 rows)."""
    return (
        positions.is_nested
        and positions.dim() == 3
        and positions._ragged_idx == 1
        and positions.values().shape[0] == int(positions.offsets()[-1])
    )


def on_sequence(positions: torch.Tensor) -> torch.Tensor:
    """The same (batch, 4, seq) positions as a jagged nested tensor ragged on the sequence dimension."""
    parts = positions.unbind()
    lengths = torch.tensor([part.shape[1] for part in parts], dtype=torch.long)
    offsets = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
    return torch.nested.nested_tensor_from_jagged(torch.cat(parts, dim=1), offsets=offsets, jagged_dim=RAGGED_DIM)


def install() -> bool:
    """Wrap verl's two functions once (returns False if they were already wrapped)."""
    import verl
    from verl.utils import tensordict_utils

    if verl.__version__ != PATCHED_VERL_VERSION:
        raise RuntimeError(
            f"{__name__} patches verl {PATCHED_VERL_VERSION}, found {verl.__version__}; check whether "
            "workers/utils/padding.left_right_2_no_padding and the transfer queue still build 3-D position_ids "
            "with as_nested_tensor, and whether utils/tensordict_utils.maybe_fix_3d_position_ids still forces "
            "_ragged_idx = 2"
        )
    fix_positions = tensordict_utils.maybe_fix_3d_position_ids
    if getattr(fix_positions, "_reasoner_mrope", False):
        return False

    @functools.wraps(fix_positions)
    def maybe_fix_3d_position_ids(data):
        if "position_ids" in data.keys() and ragged_on_sections(data["position_ids"]):
            data["position_ids"] = on_sequence(data["position_ids"])
        fix_positions(data)

    maybe_fix_3d_position_ids._reasoner_mrope = True
    # verl's engine modules import it by name; those already imported (the CPU platform imports them first) hold
    # the original: rebind it there too.
    for name, module in list(sys.modules.items()):
        if name.startswith("verl") and getattr(module, "maybe_fix_3d_position_ids", None) is fix_positions:
            module.maybe_fix_3d_position_ids = maybe_fix_3d_position_ids
    from verl.workers.utils import padding

    to_no_padding = padding.left_right_2_no_padding

    @functools.wraps(to_no_padding)
    def left_right_2_no_padding(data):
        out = to_no_padding(data)
        if ragged_on_sections(out["position_ids"]):
            out["position_ids"] = on_sequence(out["position_ids"])
        return out

    left_right_2_no_padding._reasoner_mrope = True
    padding.left_right_2_no_padding = left_right_2_no_padding
    return True


install()
