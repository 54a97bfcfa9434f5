"""The training lifecycle both local loops share: resume, step, log, checkpoint, export, summarise.

A loop hands `TrainingSession.run` a step function `step -> metrics` that is a deterministic function of the step
index (its data and its sampling seed derive from it), so continuing from a checkpoint replays exactly what an
uninterrupted run would have done.

A loop hands each optimizer update to `TrainingSession.step_optimizer` with its loss; an update whose loss or
gradient norm is not finite is skipped (`NonFiniteGuard`, counted in `count/nonfinite_skips`), and
`max_nonfinite_skips` skipped updates in a row stop the stage (`NonFiniteStop`, one line). No checkpoint is written
inside such a run of skips, so a checkpoint always continues exactly, and a rerun resumes from the last one.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from reasoner import forking
from reasoner.atomic import remove_partial_writes, reporting_full_disk, write_jsonl
from reasoner.engines.base import TrainJob
from reasoner.engines.local.common import (
    Runtime,
    build_optimizer,
    build_scheduler,
    checkpoint_info,
    discard_checkpoints,
    export_model,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)
from reasoner.errors import ReasonerError
from reasoner.rundir import DamagedFile

log = logging.getLogger(__name__)

StepFn = Callable[[int], dict[str, float]]
OnStep = Callable[[int, dict[str, float]], None]
METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Per-step metrics to `metrics.jsonl` and (unless `tensorboard` is false) tensorboard; on resume, rows after the
    checkpoint are dropped."""

    def __init__(self, log_dir: Path, resume_step: int, tensorboard: bool = True) -> None:
        from torch.utils.tensorboard import SummaryWriter

        log_dir.mkdir(parents=True, exist_ok=True)
        self.path = log_dir / METRICS_FILE
        write_jsonl(self.path, [row for row in self.read(self.path) if row["step"] <= resume_step])
        purge = resume_step + 1 if resume_step else None
        self.writer = SummaryWriter(str(log_dir), purge_step=purge) if tensorboard else None

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        """The rows of a metrics.jsonl (empty when missing); a partial last line (a kill mid-append) is dropped."""
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        rows = []
        for number, line in enumerate(lines, start=1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if number < len(lines) and line.strip():
                    raise DamagedFile(path, f"damaged, line {number} is not a JSON row") from None
        return rows

    def write(self, step: int, metrics: dict[str, float]) -> None:
        # An append cut short by a full disk leaves a partial last line, which `read` drops.
        with reporting_full_disk(self.path), self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def clip_grads(params: list[torch.Tensor], max_grad_norm: float) -> float:
    """The gradients' total norm before clipping; clips them in place when max_grad_norm > 0."""
    # An infinite bound measures the norm without clipping.
    return float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else float("inf")))


class NonFiniteStop(ReasonerError):
    """`max_nonfinite_skips` optimizer updates in a row had a non-finite loss or gradient norm."""


class NonFiniteGuard:
    """Decides whether an optimizer update is taken: not when its loss or gradient norm is NaN or infinite (the
    weights stay as they were, as verl's FSDP engine does for a non-finite grad norm); `limit` skips in a row raise
    `NonFiniteStop`. Every data-parallel rank sees the same summed values, so all decide alike."""

    def __init__(self, stage: str, limit: int, resume_point: Callable[[], str]) -> None:
        self.stage, self.limit = stage, limit
        self.resume_point = resume_point
        """Where a rerun would resume the stage, for the message."""
        self.step = 0
        self.in_a_row = 0
        """Skipped updates since the last one taken."""
        self.skipped = 0
        """Skipped updates in the current step."""

    def begin(self, step: int) -> None:
        self.step, self.skipped = step, 0

    def allows(self, loss: float, grad_norm: float) -> bool:
        """True when the update may be taken; False (counted, logged) when it must be skipped."""
        quantity, value = ("loss", loss) if not math.isfinite(loss) else ("grad norm", grad_norm)
        if math.isfinite(value):
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.skipped += 1
        log.warning(
            "stage %s, step %d: the %s is %s; optimizer update skipped (%d in a row, at most %d)",
            self.stage, self.step, quantity, value, self.in_a_row, self.limit,
        )  # fmt: skip
        if self.in_a_row >= self.limit:
            raise NonFiniteStop(
                f"stage {self.stage}: step {self.step}: the {quantity} is not finite ({value}) in {self.in_a_row} "
                f"optimizer updates in a row (max_nonfinite_skips: {self.limit}); the stage stopped; a rerun "
                f"resumes it from {self.resume_point()}. "
                f"Lower stages.{self.stage}.lr or max_grad_norm (the stage restarts), or raise max_nonfinite_skips"
            )
        return False


class TrainingSession:
    """One stage's training state and lifecycle (setup -> resume -> steps -> checkpoint -> export)."""

    def __init__(
        self,
        job: TrainJob,
        kind: str,
        runtime: Runtime,
        model: Any,
        processor: Any,
        total_steps: int,
        *,
        postfix: Iterable[str] = (),
        summary_keys: Iterable[str] = (),
        additive: Iterable[str] = ("count/",),
        on_step: OnStep | None = None,
    ) -> None:
        self.job, self.kind, self.runtime = job, kind, runtime
        self.model, self.processor = model, processor
        self.total_steps = total_steps
        self.postfix = tuple(postfix)
        self.summary_keys = tuple(summary_keys)
        self.additive = tuple(additive)
        """Metric key prefixes summed over data-parallel ranks (counts, losses normalised by the whole step)."""
        self.on_step = on_step
        self.group = forking.Group()
        """This process's data-parallel rank while `run` runs (see `reasoner.forking`)."""
        self.optimizer = build_optimizer(model, job.stage)
        self.scheduler = build_scheduler(self.optimizer, total_steps, job.stage.warmup_ratio)
        self.guard = NonFiniteGuard(job.stage.name, job.stage.max_nonfinite_skips, self._resume_point)

    def step_optimizer(self, loss: float) -> float:
        """Sum the gradients over the ranks, clip, step (unless the update's `loss`, this rank's part of it, or the
        gradient norm is not finite) and zero them; returns the norm. A loop may call this several times per step."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.group.sum_grads(params)
        norm = clip_grads(params, self.job.stage.max_grad_norm)
        if self.guard.allows(self.group.sum(loss), norm):
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def _resume_point(self) -> str:
        found = latest_checkpoint(self.job.ckpt_dir)
        return f"its checkpoint {found.name}" if found is not None else "its start (no checkpoint yet)"

    def run(self, step_fn: StepFn) -> dict[str, float]:
        """Run the remaining steps, checkpoint and export; returns summary metrics over the whole job.

        With `runtime.processes` > 1 the steps run in that many data-parallel ranks (forked here, after resuming);
        only this process (rank 0) logs, checkpoints and exports."""
        seed_everything(self.job.seed)
        start = self._resume()
        with forking.ranks(self.runtime.processes) as self.group:
            if self.group.main:
                self._steps(start, step_fn)
            else:
                for step in range(start + 1, self.total_steps + 1):
                    self.guard.begin(step)
                    try:
                        self.group.combine(step_fn(step), self.additive)
                    except NonFiniteStop:
                        break  # rank 0 stops at the same update and reports it; this rank just leaves
                    self._advance_schedule()
        self.group = forking.Group()
        if start < self.total_steps or latest_checkpoint(self.job.ckpt_dir) is None:
            self._checkpoint(self.total_steps)
        export_model(self.model, self.processor, self.job.out_model)
        return self._summary(MetricsLog.read(self.job.log_dir / METRICS_FILE))

    def _steps(self, start: int, step_fn: StepFn) -> None:
        metrics_log = MetricsLog(self.job.log_dir, start, self.job.tensorboard)
        where = f" ({self.group.world} processes)" if self.group.world > 1 else ""
        bar = tqdm(
            total=self.total_steps, initial=start, desc=f"{self.kind} {self.job.stage.name}{where}", unit="step"
        )
        try:
            for step in range(start + 1, self.total_steps + 1):
                self._one_step(step, step_fn, metrics_log, bar)
        finally:
            bar.close()
            metrics_log.close()

    def _one_step(self, step: int, step_fn: StepFn, metrics_log: MetricsLog, bar: Any) -> None:
        started = time.perf_counter()
        lr = self.scheduler.get_last_lr()[0]
        self.guard.begin(step)
        metrics = self.group.combine(step_fn(step), self.additive)
        self._advance_schedule()
        metrics = {
            **metrics,
            "count/nonfinite_skips": float(self.guard.skipped),  # the same on every rank: not summed
            "train/lr": lr,
            "time/step_s": time.perf_counter() - started,
        }
        metrics_log.write(step, metrics)
        bar.set_postfix({key.split("/")[-1]: f"{metrics[key]:.3g}" for key in self.postfix if key in metrics})
        bar.update()
        every = self.job.stage.checkpoint_every
        if every > 0 and step % every == 0 and step < self.total_steps:
            if self.guard.in_a_row:
                # Inside a run of skips: resuming there would restart the count; the rerun replays from before it.
                log.warning(
                    "stage %s: no checkpoint at step %d (its last update was skipped)", self.job.stage.name, step
                )
            else:
                self._checkpoint(step)
        if self.on_step is not None:
            self.on_step(step, metrics)

    def _advance_schedule(self) -> None:
        with warnings.catch_warnings():
            # After a skipped first update torch warns that the schedule moved before the optimizer did; the LR is
            # a function of the step index here, so nothing is lost.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            self.scheduler.step()

    def _resume(self) -> int:
        """The step to continue after: a checkpoint's, if one was written by this very stage config, else 0."""
        name = self.job.stage.name
        remove_partial_writes(self.job.ckpt_dir)  # a checkpoint killed mid-write: never resumed from, space freed
        found = latest_checkpoint(self.job.ckpt_dir)
        if found is None:
            return 0
        info = checkpoint_info(found, name)
        if (info.get("fingerprint"), info.get("total_steps")) != (self.job.fingerprint, self.total_steps):
            log.warning(
                "stage %s: discarding checkpoint %s: it was written for another config of the stage (fingerprint "
                "%s, %s steps; now %s, %d steps); starting the stage from its start",
                name, found, info.get("fingerprint"), info.get("total_steps"), self.job.fingerprint, self.total_steps,
            )  # fmt: skip
            discard_checkpoints(self.job.ckpt_dir)
            return 0
        step = load_checkpoint(found, self.model, self.optimizer, self.scheduler, self.kind, name)
        log.info("resuming %s from %s (step %d of %d)", name, found, step, self.total_steps)
        return step

    def _checkpoint(self, step: int) -> None:
        info = {
            "kind": self.kind,
            "stage": self.job.stage.name,
            "fingerprint": self.job.fingerprint,
            "total_steps": self.total_steps,
        }
        save_checkpoint(self.job.ckpt_dir, step, self.model, self.optimizer, self.scheduler, info)

    def _summary(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        """Steps, seconds and `count/*` totals over the whole job (resumed parts included); each summary key as
        its mean over the first and the last tenth of the steps (`<key>/first`, `<key>`)."""
        summary: dict[str, float] = {"steps": float(self.total_steps)}
        if not rows:
            return summary
        summary["seconds"] = float(sum(row.get("time/step_s", 0.0) for row in rows))
        for key in rows[-1]:
            if key.startswith("count/"):
                summary[key.split("/", 1)[1]] = float(sum(row.get(key, 0.0) for row in rows))
        tenth = max(1, len(rows) // 10)
        for key in self.summary_keys:
            summary[f"{key}/first"] = _mean(row.get(key) for row in rows[:tenth])
            summary[key] = _mean(row.get(key) for row in rows[-tenth:])
        return summary


def _mean(values: Iterable[float | None]) -> float:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else float("nan")
