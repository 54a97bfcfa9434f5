"""`reasoner submit`: run a config (or any command) as a Ray job on a cluster, follow it, ask its status, stop it.

    reasoner submit CONFIG --address http://HEAD:8265 [--follow] [key=value ...]
    reasoner submit --entrypoint "python -m reasoner.cli score mathvista ..." --address URL [--follow]
    reasoner submit --status JOB --address URL        |   reasoner submit --stop JOB --address URL

Uses Ray's job submission SDK (`ray.job_submission.JobSubmissionClient`). The job runs in a copy of this repo
(`working_dir`, uploaded by Ray, at most 100 MiB: runs/, .venv/, data/ and .git/ stay behind) with `python -m
reasoner.cli run CONFIG ...` as entrypoint, so the job's code is the code that was submitted. Because that copy is
temporary, a run's `output_dir` and every input path must be absolute paths on storage the nodes share.
A job that asks for more than the cluster has (entrypoint CPUs/GPUs) stays PENDING; `--follow` says so after
`pending_timeout_s` instead of waiting silently.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
# gitignore syntax relative to working_dir; a leading "/" anchors at the repo root (so reasoner/data/ stays).
DEFAULT_EXCLUDES = ("/runs/", "/.venv/", "/data/", "/.git/", "__pycache__/", "*.egg-info/", ".pytest_cache/")
DEFAULT_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass
class JobRequest:
    """One job to submit: the shell command, its environment, and what its driver reserves."""

    entrypoint: str
    working_dir: Path = REPO_ROOT
    env: dict[str, str] = field(default_factory=dict)
    excludes: tuple[str, ...] = DEFAULT_EXCLUDES
    num_cpus: float | None = None
    """CPUs reserved for the entrypoint process itself (None: Ray's default, 0)."""
    num_gpus: float | None = None
    """GPUs reserved for the entrypoint process itself (the verl engine's driver needs none)."""

    def runtime_env(self) -> dict:
        """Ray runtime environment: the repo copy, env vars, upload excludes."""
        return {
            "working_dir": str(self.working_dir),
            "env_vars": {**DEFAULT_ENV, **self.env},
            "excludes": list(self.excludes),
        }


def run_entrypoint(config_path: str | Path, overrides: list[str], working_dir: Path = REPO_ROOT) -> str:
    """`python -m reasoner.cli run CONFIG k=v ...`; CONFIG, and a fragment file among the overrides (a preset),
    relative to the repo copy when it lives inside it."""
    from reasoner.config.overrides import is_fragment

    shown = [_job_path(item, working_dir) if is_fragment(item) else item for item in overrides]
    return shlex.join(["python", "-m", "reasoner.cli", "run", _job_path(config_path, working_dir), *shown])


def _job_path(path: str | Path, working_dir: Path) -> str:
    """Where the job finds a local file: in its copy of the repo, or else at this absolute path."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(working_dir.resolve()))
    except ValueError:
        log.warning(
            "%s is outside %s: the job reads it at this absolute path on the head node", path, working_dir
        )
        return str(path)


def check_run_config(config_path: str | Path, overrides: list[str]) -> None:
    """Load and validate the config here, before submitting: bad keys fail now, not minutes later on the head."""
    from reasoner.config import load

    run = load(config_path, overrides)
    if not Path(run.output_dir).is_absolute():
        raise ReasonerError(
            f"output_dir: {run.output_dir!r} is relative; a Ray job runs in a temporary copy of the repo, so its "
            "runs would be lost. Set an absolute path on storage every node sees, e.g. output_dir=/shared/runs"
        )
    if run.model.path and not Path(run.model.path).is_absolute():
        raise ReasonerError(
            f"model.path: {run.model.path!r} is relative; give the absolute path on the cluster"
        )


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ReasonerError(
            f"cannot reach the Ray job server at {address}: {err}. Is the head up "
            "(`ray start --head --dashboard-host=0.0.0.0`) and the address its dashboard URL "
            "(http://HEAD:8265)?"
        ) from None


def submit(address: str, request: JobRequest, *, submission_id: str | None = None) -> str:
    """Submit a job; returns its submission id."""
    client = _client(address)
    try:
        return client.submit_job(
            entrypoint=request.entrypoint,
            runtime_env=request.runtime_env(),
            submission_id=submission_id,
            entrypoint_num_cpus=request.num_cpus,
            entrypoint_num_gpus=request.num_gpus,
            metadata={"submitted_by": "reasoner submit"},
        )
    except RuntimeError as err:
        raise ReasonerError(f"Ray refused the job: {err}") from None


@dataclass(frozen=True)
class JobState:
    """A job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED) and Ray's message about it."""

    job_id: str
    status: str
    message: str

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def status(address: str, job_id: str) -> JobState:
    """The job's current state (ReasonerError for an unknown id)."""
    try:
        info = _client(address).get_job_info(job_id)
    except RuntimeError as err:
        raise ReasonerError(f"job {job_id}: {err}") from None
    return JobState(job_id, str(info.status), info.message or "")


def stop(address: str, job_id: str) -> bool:
    """Ask Ray to stop the job; True if it was still running."""
    try:
        return bool(_client(address).stop_job(job_id))
    except RuntimeError as err:
        raise ReasonerError(f"job {job_id}: {err}") from None


def stop_and_wait(address: str, job_id: str, timeout_s: float = 30.0) -> JobState:
    """Stop a job and wait for it to end. A PENDING job stays PENDING: Ray (2.60) delivers the stop request only
    once the job's supervisor starts, and fails a job that never starts after RAY_JOB_START_TIMEOUT_SECONDS
    (default 900 s); such a job holds no resources meanwhile."""
    before = status(address, job_id)
    if before.finished:
        return before
    stop(address, job_id)
    if before.status == "PENDING":
        return status(address, job_id)
    return wait_for_end(address, job_id, timeout_s=timeout_s)


def wait_until_started(address: str, job_id: str, timeout_s: float, poll_s: float = 0.5) -> JobState:
    """Wait while the job is PENDING; after `timeout_s` raise a ReasonerError saying why it may be stuck."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = status(address, job_id)
        if state.status != "PENDING":
            return state
        if time.monotonic() > deadline:
            raise ReasonerError(
                f"job {job_id} is still PENDING after {timeout_s:.0f} s: {state.message} A job that asks for more "
                "CPUs/GPUs than the cluster has stays queued until nodes join (check `ray status`). It stays "
                f"queued; stop it with: reasoner submit --stop {job_id} --address {address}"
            )
        time.sleep(poll_s)


def follow(
    address: str, job_id: str, *, out: TextIO | None = None, pending_timeout_s: float = 120.0
) -> JobState:
    """Stream the job's logs to `out` (default: stdout) until it ends; returns its final state."""
    out = out or sys.stdout
    wait_until_started(address, job_id, pending_timeout_s)
    client = _client(address)

    async def stream() -> None:
        async for lines in client.tail_job_logs(job_id):
            out.write(lines)
            out.flush()

    asyncio.run(stream())
    return wait_for_end(address, job_id)


def wait_for_end(address: str, job_id: str, *, timeout_s: float = 60.0, poll_s: float = 0.5) -> JobState:
    """Poll until the job reaches a terminal state or `timeout_s` passes (logs can end a moment before the status
    does); returns the last state seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = status(address, job_id)
        if state.finished or time.monotonic() > deadline:
            return state
        time.sleep(poll_s)


def parse_env(items: list[str]) -> dict[str, str]:
    """`KEY=VALUE` strings -> a dict (ReasonerError for a malformed item)."""
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ReasonerError(f"--env {item!r} is not of the form KEY=VALUE")
        env[key] = value
    return env


def build_request(
    config: str | None,
    overrides: list[str],
    *,
    entrypoint: str | None = None,
    env: list[str] = (),
    num_cpus: float | None = None,
    num_gpus: float | None = None,
) -> JobRequest:
    """The job for `reasoner submit`: `reasoner run CONFIG overrides` (checked here first) or a given command."""
    if bool(config) == bool(entrypoint):
        raise ReasonerError(
            "give either CONFIG (runs `reasoner run CONFIG`) or --entrypoint COMMAND, not both"
        )
    if entrypoint and overrides:
        raise ReasonerError(f"key=value overrides {overrides} go with CONFIG, not with --entrypoint")
    if config:
        check_run_config(config, overrides)
        entrypoint = run_entrypoint(config, overrides)
    return JobRequest(entrypoint=entrypoint, env=parse_env(list(env)), num_cpus=num_cpus, num_gpus=num_gpus)
