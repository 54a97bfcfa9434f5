"""Faults made to happen for real, by engine: `reasoner run` in a subprocess, killed or broken at a chosen moment,
then run again with the same command.

One small schedule (a tiny random Qwen2.5-VL; base -> one GRPO stage of 4 steps over 2 epochs: 4 problems, 2
prompts a step, a checkpoint every step) is run on each engine it applies to:

| fault                                      | local | verl (CPU: FSDP on gloo, vLLM rollout) |
|--------------------------------------------|-------|----------------------------------------|
| SIGKILL right after the last step of an epoch | yes | yes                                    |
| SIGKILL while the trainer writes a checkpoint | yes | yes                                    |
| a Ray worker (verl's FSDP actor) SIGKILLed mid-step | - (no Ray workers) | yes                |

Each rerun must train exactly the remaining steps (never zero, never one already trained) and finish the stage.
verl's GRPO steps must keep their served log-probs within 1e-2 of the trainer's in every attempt, so a resumed
rollout serves the resumed weights, not the ones vLLM started with. The local engine's other kill points and its
bit-for-bit resume are in tests/engines/test_local_*.py and tests/test_pipeline.py; the table in docs/faults.md
lists them all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # each kills and resumes real runs (verl's: minutes)

REPO = Path(__file__).resolve().parents[1]
STAGE = "01_grpo"
TOTAL_STEPS = 4  # 2 epochs of 2 steps
ENGINES = ["local", "verl"]


def schedule(engine: str, out: Path) -> Path:
    config = {
        "name": "faults",
        "engine": engine,
        "seed": 0,
        "output_dir": str(out),
        # The local engine's steps and checkpoints take milliseconds on the demo size: the small one (~10M
        # parameters, a ~120 MB checkpoint with the optimizer) gives a kill time to land inside a step or a save.
        "model": {"tiny_size": "small" if engine == "local" else "demo"},
        "datasets": {
            "train": {"source": "synthetic", "n": 8, "level": 1, "tasks": ["bars"]},
            "heldout": {"source": "synthetic", "n": 4, "level": 1, "seed": 2, "split": "eval"},
        },
        "eval": {"datasets": ["heldout"], "max_new_tokens": 8},
        "stages": [
            {
                "kind": "grpo",
                "data": {"dataset": "train", "limit": 4},
                "epochs": 2,
                "checkpoint_every": 1,
                "lr": 1.0e-4,
                "grpo": {"prompts_per_step": 2, "sampling": {"n": 4, "max_new_tokens": 12}},
            }
        ],
    }
    if engine == "verl":
        config["cluster"] = {
            "device": "cpu",
            "gpus_per_node": 1,
            "rollout_tensor_parallel": 1,
            "micro_batch_size_per_gpu": 1,
            "log_prob_micro_batch_size_per_gpu": 4,
            "dynamic_batch": False,
            "gradient_checkpointing": False,
            "ref_param_offload": False,
            "max_prompt_tokens": 512,
        }
    path = out / f"faults-{engine}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Run:
    """One run folder of the schedule on one engine, started as `reasoner run` in its own session."""

    def __init__(self, engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        if engine == "verl":
            request.getfixturevalue("vllm_installed")  # skips visibly without vLLM (fails under CI=true)
        self.rollout_check = request.getfixturevalue("rollout_check")
        self.engine, self.tmp = engine, tmp_path
        self.config = schedule(engine, tmp_path)
        self.stage = tmp_path / "faults" / "stages" / STAGE
        self.attempts = 0

    def start(self) -> tuple[subprocess.Popen, Path]:
        self.attempts += 1
        log = self.tmp / f"attempt{self.attempts}.log"
        command = [sys.executable, "-m", "reasoner.cli", "run", str(self.config)]
        with open(log, "w") as out:
            proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return proc, log

    def until(self, proc: subprocess.Popen, log: Path, ready, timeout_s: float = 600, poll_s: float = 0.01):
        """Poll `ready()` until it returns something true; fail if the run ends or the time runs out first."""
        deadline = time.monotonic() + timeout_s
        while not (found := ready()):
            if proc.poll() is not None:
                pytest.fail(f"run ended ({proc.returncode}) before the fault point:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                kill_group(proc)
                pytest.fail(f"the fault point did not come within {timeout_s} s:\n{log.read_text()[-4000:]}")
            time.sleep(poll_s)
        return found

    def finish(self) -> str:
        """Run the same command again to the end; its log."""
        proc, log = self.start()
        try:
            code = proc.wait(timeout=900)
        finally:
            kill_group(proc)
        assert code == 0, log.read_text()[-4000:]
        return log.read_text()

    # What the engines leave on disk: complete checkpoints and the steps each attempt trained.

    def complete_step(self) -> int:
        """The step of the newest complete checkpoint (0 before the first)."""
        ckpt = self.stage / "ckpt"
        if self.engine == "verl":  # verl names it in its tracker file once a save has finished
            tracker = ckpt / "latest_checkpointed_iteration.txt"
            return int(tracker.read_text() or 0) if tracker.is_file() else 0
        steps = [int(p.name.removeprefix("step_")) for p in ckpt.glob("step_*") if p.is_dir()]
        return max(steps, default=0)

    def checkpoint_being_written(self, step: int) -> Path | None:
        """The folder of checkpoint `step` while its save has begun and not finished, else None."""
        ckpt = self.stage / "ckpt"
        if self.engine == "verl":
            folder = ckpt / f"global_step_{step}"
            return folder if folder.is_dir() and self.complete_step() < step else None
        # The local engine writes `.step_N.<random>.tmp` and renames it to `step_N` when complete.
        partial = [p for p in ckpt.glob(f".step_{step:06d}.*.tmp") if p.is_dir()]
        return partial[0] if partial and self.complete_step() < step else None

    def trained_steps(self) -> list[int]:
        """The steps the stage's metrics record. Local engine: its `metrics.jsonl`, which a resume truncates to
        the checkpoint's step, so each step once. verl: the last attempt's file only (each attempt writes its
        own; verl logs a step after its checkpoint, so a kill in between leaves a checkpointed step unlogged)."""
        logs = self.stage / "logs"
        name = "verl_metrics.jsonl" if self.engine == "verl" else "metrics.jsonl"
        return [int(json.loads(line)["step"]) for line in (logs / name).open()]

    def assert_finished(self, resumed: int) -> None:
        """The stage finished, its rerun (resumed from checkpoint `resumed`) trained exactly the steps after it."""
        manifest = json.loads((self.stage / "manifest.json").read_text())
        assert (self.stage / "model" / "config.json").is_file()
        first = resumed + 1 if self.engine == "verl" else 1
        assert self.trained_steps() == list(range(first, TOTAL_STEPS + 1)), self.trained_steps()
        if self.engine == "verl":
            assert manifest["metrics"]["verl/step"] == TOTAL_STEPS
            self.rollout_check(self.stage / "logs")


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL every process of the run's session, as a lost node would: Ray's workers (each in its own process
    group, so `killpg` alone leaves them writing on for a moment) included."""
    import psutil

    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == proc.pid:
                process.kill()
        except (OSError, psutil.Error):
            pass  # gone already
    proc.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_killed_at_an_epoch_boundary_the_rerun_trains_the_remaining_epoch(engine, tmp_path, request):
    """verl#7401: a resume from the last step of an epoch trained nothing and exited 0; EasyR1#57: a resume
    re-trained data already seen. Killed right after epoch 1's last step (checkpoint 2 of 4), the rerun must train
    steps 3 and 4, once each."""
    run = Run(engine, tmp_path, request)
    proc, log = run.start()
    try:
        run.until(proc, log, lambda: run.complete_step() >= 2, poll_s=0.05)
    finally:
        kill_group(proc)
    assert run.complete_step() == 2, "killed later than the epoch boundary (the next step finished first)"
    assert not (run.stage / "manifest.json").exists()

    out = run.finish()
    assert resumed_from(engine, out) == 2, out[-4000:]
    run.assert_finished(resumed=2)  # steps 3 and 4: not zero steps (verl#7401), not steps 1-2 again (EasyR1#57)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_killed_while_a_checkpoint_is_written_the_rerun_resumes_from_the_last_complete_one(engine, tmp_path, request):
    """A half-written checkpoint of the last step must never be taken as the latest (nor exported as the model):
    the rerun resumes from the one before and trains the last step again."""
    run = Run(engine, tmp_path, request)
    proc, log = run.start()
    try:
        partial = run.until(proc, log, lambda: run.checkpoint_being_written(TOTAL_STEPS))
    finally:
        kill_group(proc)  # at once: the save of the last step's checkpoint has begun
    assert partial.exists(), "the partial checkpoint folder should be left behind by the kill"
    assert run.complete_step() == TOTAL_STEPS - 1, (
        f"the kill landed after the save of checkpoint {TOTAL_STEPS} completed (it was polled every 10 ms)"
    )
    assert not (run.stage / "manifest.json").exists()

    out = run.finish()
    assert str(partial) in out and "write was interrupted" in out, out[-4000:]  # removed, said so
    assert resumed_from(engine, out) == TOTAL_STEPS - 1, out[-4000:]
    run.assert_finished(resumed=TOTAL_STEPS - 1)
    assert not list((run.stage / "ckpt").glob(".*.tmp*"))


@pytest.mark.slow
def test_a_killed_ray_worker_fails_the_stage_in_one_line_and_the_rerun_resumes(tmp_path, request):
    """verl's FSDP actor (a Ray worker of the run) SIGKILLed inside step 2: the run stops with one line naming the
    stage and the cause (exit 2; the traceback in the stage's logs), and the same command resumes from step 1."""
    import psutil

    run = Run("verl", tmp_path, request)
    proc, log = run.start()
    try:
        run.until(proc, log, lambda: run.complete_step() >= 1, poll_s=0.05)
        workers = [
            p for p in psutil.Process(proc.pid).children(recursive=True)
            if "WorkerDict" in " ".join(p.cmdline())
        ]  # fmt: skip
        assert workers, "no verl actor worker found under the run"
        for worker in workers:
            worker.kill()
        code = proc.wait(timeout=300)
    finally:
        kill_group(proc)
    out = log.read_text()
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert code == 2, out[-4000:]
    assert len(errors) == 1 and errors[0].startswith("error: stage grpo1: verl's "), errors
    assert (run.stage / "logs" / "verl_error.txt").is_file()
    assert run.complete_step() == 1

    out = run.finish()
    assert resumed_from("verl", out) == 1, out[-4000:]
    run.assert_finished(resumed=1)


def resumed_from(engine: str, out: str) -> int | None:
    """The step the rerun's log says the stage resumed from."""
    pattern = r"verl \w+ from step (\d+) of" if engine == "verl" else r"resuming \S+ from \S+ \(step (\d+) of"
    match = re.search(pattern, out)
    return int(match.group(1)) if match else None
