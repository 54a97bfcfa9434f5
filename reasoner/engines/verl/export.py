"""verl checkpoints -> a loadable Hugging Face model folder, and the stage's final metrics.

Layouts (verl 0.9.1): GRPO writes `<ckpt>/global_step_N/actor/`, the Ray SFT trainer `<ckpt>/global_step_N/`;
both keep FSDP shards (`model_world_size_W_rank_R.pt` + `fsdp_config.json`) and a `huggingface/` folder with the
config and processor, plus the full weights when `save_contents` includes `hf_model`. The newest step is named by
`<ckpt>/latest_checkpointed_iteration.txt`, written only after a save completes.

Export copies `huggingface/` when it holds the weights, else merges the shards with verl's `FSDPModelMerger`
(what `python -m verl.model_merger merge --backend fsdp --local_dir .../actor --target_dir OUT` runs); a LoRA
stage's checkpoints hold no `hf_model` and its export is the start model with the checkpoint's adapters folded in
(`lora.export_lora`; verl's merger would round the weights to bf16). Either way the folder appears at `out_model` whole, by rename.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import shutil
from pathlib import Path

from reasoner.atomic import atomic_dir, write_json
from reasoner.engines.verl.lora import META_FILE, export_lora
from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)

TRACKER_FILE = "latest_checkpointed_iteration.txt"
FINGERPRINT_FILE = "stage_fingerprint.json"
"""Beside verl's checkpoints: the stage fingerprint they were written under (verl itself resumes from any)."""
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete `global_step_N` folder under `ckpt_dir`, or None before the first save."""
    from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

    tracker = ckpt_dir / TRACKER_FILE
    text = tracker.read_text(encoding="utf-8", errors="replace") if tracker.is_file() else "0"
    if not text.strip().isdigit():  # verl writes it in place, after the save it names: cut short by a kill
        steps = sorted((p for p in ckpt_dir.glob("global_step_*") if p.is_dir()), key=checkpoint_step)
        raise ReasonerError(
            f"{tracker}: damaged ({text[:40]!r}, not a step number): verl writes it last, after the save of the "
            f"checkpoint it names, so write in it the N of the newest global_step_N "
            f"({', '.join(p.name for p in steps) or 'none here'}), or delete {ckpt_dir} to train the stage from its "
            "start"
        )  # fmt: skip
    with contextlib.redirect_stdout(
        io.StringIO()
    ):  # verl prints "tracker file does not exist" on a fresh stage
        found = find_latest_ckpt_path(str(ckpt_dir))
    return Path(found) if found else None


def claim_checkpoints(ckpt_dir: Path, fingerprint: str, stage: str) -> None:
    """Make `ckpt_dir`'s checkpoints this config's: delete any written under another fingerprint, then record ours.

    verl's `resume_mode=auto` resumes from whatever `global_step_N` it finds, with that run's optimizer and data
    position: after a stage's config changed (lr, steps, data), that would silently continue the old run."""
    marker = ckpt_dir / FINGERPRINT_FILE
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") if marker.is_file() else None
    except (ValueError, AttributeError, OSError):
        recorded = "unreadable"
    steps = sorted(ckpt_dir.glob("global_step_*"))
    if steps and recorded != fingerprint:
        log.warning(
            "stage %s: discarding verl checkpoints %s: written for another config of the stage (fingerprint %s, "
            "now %s)", stage, [p.name for p in steps], recorded, fingerprint,
        )  # fmt: skip
        for path in steps:
            shutil.rmtree(path)
        (ckpt_dir / TRACKER_FILE).unlink(missing_ok=True)
    if recorded != fingerprint:
        write_json(marker, {"fingerprint": fingerprint})


def discard_partial_checkpoints(ckpt_dir: Path, stage: str) -> list[Path]:
    """Remove the `global_step_N` folders newer than verl's last complete save (its tracker file): what a kill
    while verl writes a checkpoint leaves. verl resumes from the tracker's step and would later save over such a
    folder; removed here, nothing (an export, a copy, a user choosing a checkpoint by its name) takes half a
    checkpoint for one, and the space is freed at once."""
    done = checkpoint_step(latest_checkpoint(ckpt_dir))
    partial = [
        path for path in sorted(ckpt_dir.glob("global_step_*"))
        if path.is_dir() and re.fullmatch(r"global_step_\d+", path.name) and checkpoint_step(path) > done
    ]  # fmt: skip
    for path in partial:
        log.warning(
            "stage %s: removing %s, a checkpoint whose write was interrupted (the last complete one is step %d)",
            stage, path, done,
        )  # fmt: skip
        shutil.rmtree(path)
    return partial


def verl_checkpoints_to_keep(keep: int) -> int:
    """verl's `max_(actor_)ckpt_to_keep` for `cluster.keep_checkpoints` = `keep`: at least 2.

    Keeping one, verl 0.9.1's checkpoint managers delete the previous checkpoint at the end of the worker's save
    (`register_checkpoint`), before the trainer names the new one in its tracker file (`_save_checkpoint`,
    `CheckpointHandler.save_checkpoint`): a kill in between leaves the tracker naming a half-deleted checkpoint
    that every rerun fails to load (`tests/test_faults.py` hit it). Keeping 2 or more, verl makes room before a
    save (`ensure_checkpoint_capacity`) and never deletes the newest, the one the tracker names. The peak on disk
    stays two checkpoints; `prune_checkpoints` takes the folder back to `keep` around each launch."""
    return max(keep, 2)


def prune_checkpoints(ckpt_dir: Path, keep: int, stage: str) -> list[Path]:
    """Remove the `global_step_N` folders older than the newest `keep` up to verl's tracker step: verl's extra one
    when `keep` is 1 (`verl_checkpoints_to_keep`), and the folders its rotation empties but leaves (it deletes
    only the worker's part, not the trainer's `data.pt`). Run before a stage's trainer starts and after it ends."""
    done = checkpoint_step(latest_checkpoint(ckpt_dir))
    kept = sorted(
        (path for path in ckpt_dir.glob("global_step_*")
         if path.is_dir() and re.fullmatch(r"global_step_\d+", path.name) and checkpoint_step(path) <= done),
        key=checkpoint_step,
    )  # fmt: skip
    old = kept[: max(len(kept) - keep, 0)]
    for path in old:
        shutil.rmtree(path)
    if old:
        log.info("stage %s: removed older checkpoints %s (keeping %d)", stage, [p.name for p in old], keep)
    return old


def checkpoint_step(path: Path | None) -> int:
    """N of a `global_step_N` folder (0 for None)."""
    if path is None:
        return 0
    match = re.fullmatch(r"global_step_(\d+)", path.name)
    if not match:
        raise ReasonerError(f"{path}: not a verl checkpoint folder (expected global_step_N)")
    return int(match.group(1))


def has_hf_weights(folder: Path) -> bool:
    """True when a `huggingface/` folder holds model weights, not only config and processor."""
    return folder.is_dir() and any(any(folder.glob(pattern)) for pattern in WEIGHT_PATTERNS)


def export_model(
    ckpt_dir: Path, out_model: Path, *, role: str | None = "actor", init_model: Path | None = None
) -> Path:
    """Turn the newest checkpoint's `role` model (None: the step folder itself, SFT) into `out_model`; a LoRA
    checkpoint's adapters are folded into `init_model`, the stage's start model."""
    step = latest_checkpoint(ckpt_dir)
    if step is None:
        raise ReasonerError(
            f"{ckpt_dir}: no finished verl checkpoint ({TRACKER_FILE} missing); the stage's "
            "training did not save a checkpoint"
        )
    shards = step / role if role else step
    hf_dir = shards / "huggingface"
    with atomic_dir(out_model) as tmp:
        if has_hf_weights(hf_dir):
            log.info("exporting %s (full Hugging Face weights) to %s", hf_dir, out_model)
            shutil.copytree(hf_dir, tmp, dirs_exist_ok=True)
        elif (shards / META_FILE).is_file():
            if init_model is None:
                raise ReasonerError(f"{shards}: a LoRA checkpoint; its export needs the stage's start model")
            log.info("folding the LoRA adapters of %s into %s", shards, init_model)
            export_lora(shards, init_model, tmp)
        else:
            log.info("merging FSDP shards of %s into %s", shards, out_model)
            merge_fsdp_shards(shards, tmp)
        if not (tmp / "config.json").is_file() or not has_hf_weights(tmp):
            raise ReasonerError(f"{shards}: export produced no model weights/config.json in {out_model}")
    return out_model


def merge_fsdp_shards(shards: Path, target: Path) -> None:
    """verl's FSDP model merger: shards + huggingface/ config -> a Hugging Face model folder at `target`."""
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    if not (shards / "fsdp_config.json").is_file():
        raise ReasonerError(f"{shards}: fsdp_config.json missing; not an FSDP checkpoint")
    config = ModelMergerConfig(
        operation="merge",
        backend="fsdp",
        local_dir=str(shards),
        target_dir=str(target),
        hf_model_config_path=str(shards / "huggingface"),
    )
    merger = FSDPModelMerger(config)
    merger.merge_and_save()
    merger.cleanup()


def final_metrics(metrics_file: Path) -> dict[str, float]:
    """The last logged value of every numeric metric in verl's file logger output (`{"step", "data"}` lines)."""
    if not metrics_file.is_file():
        return {}
    latest: dict[str, float] = {}
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash: later lines still count
            continue
        for key, value in (record.get("data") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                latest[key] = float(value)
        if "step" in record:
            latest["verl/step"] = float(record["step"])
    return latest
