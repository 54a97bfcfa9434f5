"""What the local SFT and GRPO loops share: runtime, model setup, optimizer and schedule, checkpoints, export.

Both loops are "a deterministic function of the step index" driven by `loop.TrainingSession`, so a checkpoint
needs only the weights, the optimizer, the scheduler, the RNG states and the step to continue exactly.
Checkpoints and the exported model are written to a temporary sibling folder and renamed into place: a folder
with the final name is always complete. A checkpoint records the stage fingerprint it was written under, and a
damaged one stops the job with one line naming the file.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import pickle
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reasoner.atomic import atomic_dir, write_json
from reasoner.config import LoraConfig, RunConfig, StageConfig
from reasoner.errors import ReasonerError
from reasoner.models.loading import load_model, resolve_device
from reasoner.rundir import DamagedFile, read_json_object

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step_"
STATE_FILE = "state.pt"
INFO_FILE = "checkpoint.json"


@dataclass(frozen=True)
class Runtime:
    """Where and how the local engine computes: device, autocast dtype (bf16 on GPU, none on CPU), seed, the
    data-parallel processes a training job runs on (see `reasoner.forking`), and LoRA (see `lora`)."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    threads: int
    seed: int
    processes: int = 1
    lora: LoraConfig | None = None
    """The run's `model.lora`: with rank > 0 every stage trains LoRA adapters and exports them merged."""


def resolve_runtime(run: RunConfig) -> Runtime:
    """Pick the device (`auto` = cuda if available), set the CPU thread count, return the runtime."""
    torch.set_num_threads(max(1, run.threads))
    device = torch.device(resolve_device(run.device.value))
    if run.processes > 1 and device.type != "cpu":
        raise ReasonerError(
            f"processes: {run.processes} data-parallel processes run on the CPU only; this run's device is "
            f"{device.type} (set processes: 1, or device: cpu)"
        )
    return Runtime(
        device=device,
        autocast_dtype=torch.bfloat16 if device.type == "cuda" else None,
        threads=run.threads,
        seed=run.seed,
        processes=run.processes,
        lora=run.model.lora if run.model.lora.enabled else None,
    )


@contextlib.contextmanager
def autocast(runtime: Runtime) -> Iterator[None]:
    """bf16 autocast on GPU; plain fp32 on CPU (CPU bf16 is slow and loses the small models' precision)."""
    if runtime.autocast_dtype is None:
        yield
        return
    with torch.autocast(device_type=runtime.device.type, dtype=runtime.autocast_dtype):
        yield


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_trainable(
    path: Path, runtime: Runtime, *, freeze_vision: bool, seed: int = 0
) -> tuple[Any, Any]:
    """Load `(model, processor)` in fp32 (master weights) in train mode; optionally freeze vision + projector.
    With `runtime.lora`, only LoRA adapters on the language model train (`reasoner.engines.local.lora`), their
    initialisation drawn from `seed` (the stage's)."""
    model, processor = load_model(path, device=str(runtime.device), dtype=torch.float32)
    model.train()
    if runtime.lora is not None:
        from reasoner.engines.local.lora import attach

        attach(model, runtime.lora, seed)
        model.to(runtime.device)  # the adapters are created on the CPU
    elif freeze_vision:
        for parameter in vision_module(model).parameters():
            parameter.requires_grad_(False)
    return model, processor


def vision_module(model: Any) -> torch.nn.Module:
    """The vision tower with its projector: Qwen2.5-VL and Qwen3-VL keep their patch mergers (Qwen3-VL's deepstack
    mergers too) inside `visual`."""
    inner = getattr(model, "model", model)
    visual = getattr(inner, "visual", None)
    if visual is None:
        raise ReasonerError(f"{type(model).__name__} has no vision tower (`model.visual`); is it a VLM?")
    return visual


def planned_steps(stage: StageConfig, n_items: int, items_per_step: int) -> int:
    """`stage.steps`, or enough steps for `stage.epochs` passes over `n_items` at `items_per_step` per step."""
    if stage.steps > 0:
        return stage.steps
    if n_items <= 0:
        raise ReasonerError(
            f"stages.{stage.name}.data: no training data (0 items); check its dataset, limit and difficulty band"
        )
    return max(1, math.ceil(stage.epochs * n_items / items_per_step))


def stream_indices(n_items: int, start: int, count: int, seed: int) -> list[int]:
    """Items at positions `start .. start+count-1` of an endless stream of seeded shuffles (new order per pass).

    A pure function of its arguments, so a resumed job draws exactly the batches an uninterrupted one would.
    """
    if n_items <= 0:
        raise ReasonerError("no items to draw training batches from")
    return [_permutation(n_items, seed, pos // n_items)[pos % n_items] for pos in range(start, start + count)]


@functools.lru_cache(maxsize=4)
def _permutation(n_items: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(n_items))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return tuple(order)


def build_optimizer(model: Any, stage: StageConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on biases and norm weights (1-D tensors)."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ReasonerError(f"stage {stage.name}: the model has no trainable parameters")
    groups = [
        {"params": [p for _, p in trainable if p.ndim >= 2], "weight_decay": stage.weight_decay},
        {"params": [p for _, p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=stage.lr, betas=(0.9, 0.999), eps=1e-8)


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """Linear warmup over `warmup_ratio` of the steps, then cosine decay to zero."""
    warmup = int(round(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    ckpt_dir: Path, step: int, model: Any, optimizer: Any, scheduler: Any, info: dict
) -> Path:
    """Write `ckpt_dir/step_NNNNNN` atomically, then delete older checkpoints."""
    final = ckpt_dir / f"{CHECKPOINT_PREFIX}{step:06d}"
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
        "step": step,
    }
    with atomic_dir(final) as staging:
        torch.save(state, staging / STATE_FILE)
        write_json(staging / INFO_FILE, {**info, "step": step}, sort_keys=True)
    for older in ckpt_dir.glob(f"{CHECKPOINT_PREFIX}*"):
        if older != final and older.is_dir():
            shutil.rmtree(older)
    log.info("checkpoint at step %d written to %s", step, final)
    return final


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete checkpoint folder in `ckpt_dir`, or None."""
    if not ckpt_dir.is_dir():
        return None
    found = [
        p
        for p in ckpt_dir.glob(f"{CHECKPOINT_PREFIX}*")
        if (p / STATE_FILE).is_file() and (p / INFO_FILE).is_file()
    ]
    return max(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]), default=None)


def checkpoint_info(path: Path, stage: str) -> dict:
    """The `checkpoint.json` of a checkpoint folder (kind, stage, fingerprint, total_steps, step)."""
    try:
        return read_json_object(path / INFO_FILE, ("kind", "step"))
    except DamagedFile as err:
        raise ReasonerError(_damaged(err.path, err.problem, stage)) from None


def discard_checkpoints(ckpt_dir: Path) -> None:
    """Delete every checkpoint of a stage (they were written under another config)."""
    for found in ckpt_dir.glob(f"{CHECKPOINT_PREFIX}*"):
        shutil.rmtree(found)


def _damaged(path: Path, problem: str, stage: str) -> str:
    return (
        f"{path}: {problem}; rerun with --redo-from {stage} to redo that stage from its start "
        f"(or delete {path.parent} to resume from an earlier checkpoint, if any)"
    )


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, kind: str, stage: str = "") -> int:
    """Restore a checkpoint written by `save_checkpoint`; returns its step. A damaged one raises ReasonerError."""
    info = checkpoint_info(path, stage)
    if info["kind"] != kind:
        raise ReasonerError(
            f"checkpoint {path} is from a {info['kind']!r} job, not {kind!r}; delete it to restart"
        )
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        # The LR factor comes from this job's total steps (a rebuilt lambda); only the position is restored.
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        return int(state["step"])
    except (pickle.UnpicklingError, EOFError, OSError, RuntimeError, KeyError, TypeError, ValueError) as err:
        problem = f"damaged, cannot be restored ({type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]})"
        raise ReasonerError(_damaged(path / STATE_FILE, problem, stage)) from None


def export_model(model: Any, processor: Any, out_dir: Path) -> Path:
    """Save the model and processor as a Hugging Face folder at `out_dir`, whole, by rename. LoRA adapters are
    merged into their layers first (in place: the job is over), so the folder is a plain full model."""
    from reasoner.engines.local.lora import has_adapters, merge_adapters

    if has_adapters(model):
        merge_adapters(model)
    with atomic_dir(out_dir) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    log.info("model exported to %s", out_dir)
    return out_dir
