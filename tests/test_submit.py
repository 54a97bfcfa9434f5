"""`reasoner submit` against a real local Ray head (CPU, 2 CPUs): submit, follow, status, stop, PENDING.

The head is this module's own: its own ports and short temp dir, token auth off (RAY_AUTH_MODE=disabled), the
venv's bin first on PATH (a job's entrypoint gets the head's PATH), stopped by killing only its own process
group (`ray stop` would stop every Ray process on the machine). To run the shortened demo instead of the tiny
entrypoint, set SUBMIT_TEST_ENTRYPOINT (e.g. "python -m reasoner.cli run configs/demo.yaml ... output_dir=/tmp/x").
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from reasoner import submit
from reasoner.cli import main
from reasoner.errors import ReasonerError

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MARKER = "reasoner-submit-test-ok"
# The job proves three things: it runs our uploaded repo copy (reasoner/data is there, .venv is not), it joins
# the cluster with a bare ray.init(), and its env vars arrive.
TINY_JOB = (
    "python -c \"import os, ray; ray.init(); assert os.path.isdir('reasoner/data') and not os.path.exists('.venv'); "
    f"print('{MARKER}', os.environ['SUBMIT_TEST_VAR'], int(ray.cluster_resources()['CPU']))\""
)
ENTRYPOINT = os.environ.get("SUBMIT_TEST_ENTRYPOINT", TINY_JOB)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="module")
def ray_address():
    """A private Ray head for this module; yields its job server URL."""
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # socket paths must stay under 107 bytes
    gcs, dashboard, client, agent_http, agent_grpc, runtime_env, metrics, node_manager, object_manager = (
        _free_ports(9)
    )
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "RAY_USAGE_STATS_ENABLED": "0",
        "SUBMIT_TEST_VAR": "from-head-env-must-not-leak",
    }
    command = [
        str(VENV_BIN / "ray"), "start", "--head", "--block", "--num-cpus=2", "--dashboard-host=127.0.0.1",
        f"--port={gcs}", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
        f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
        f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]  # fmt: skip
    log = open(Path(temp_dir) / "head.log", "w")  # noqa: SIM115 - closed in teardown
    head = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_job_server(address, head, Path(temp_dir) / "head.log")
        yield address
    finally:
        _stop_head(head)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop_head(head: subprocess.Popen) -> None:
    """End the head's process group only (SIGTERM, then SIGKILL if it lingers, e.g. with a job still queued)."""
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=10)


def _wait_for_job_server(address: str, head: subprocess.Popen, log_path: Path, timeout_s: float = 60) -> None:
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.fail(f"ray start exited with {head.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            JobSubmissionClient(address).list_jobs()
            return
        except Exception:  # noqa: BLE001 - not up yet: connection refused, 503, ...
            time.sleep(0.5)
    pytest.fail(f"Ray job server at {address} did not answer within {timeout_s} s")


def test_submit_follow_succeeds_and_streams_logs(ray_address, capsys):
    code = main(
        [
            "submit",
            "--entrypoint",
            ENTRYPOINT,
            "--address",
            ray_address,
            "--follow",
            "--env",
            "SUBMIT_TEST_VAR=from-job-env",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "submitted job " in out and ": SUCCEEDED" in out
    if ENTRYPOINT == TINY_JOB:
        assert f"{MARKER} from-job-env 2" in out  # logs streamed; env var from the job, not the head


def test_failing_job_exits_nonzero_and_status_reports_it(ray_address, capsys):
    job_id = submit.submit(ray_address, submit.JobRequest(entrypoint="python -c 'raise SystemExit(3)'"))
    final = submit.follow(ray_address, job_id, out=io.StringIO())
    assert final.status == "FAILED"
    assert main(["submit", "--status", job_id, "--address", ray_address]) == 0
    assert f"job {job_id}: FAILED" in capsys.readouterr().out


def test_stop_running_job(ray_address, capsys):
    job_id = submit.submit(
        ray_address, submit.JobRequest(entrypoint="python -c 'import time; time.sleep(120)'")
    )
    assert submit.wait_until_started(ray_address, job_id, timeout_s=30).status == "RUNNING"
    assert main(["submit", "--stop", job_id, "--address", ray_address]) == 0
    assert f"job {job_id}: STOPPED" in capsys.readouterr().out
    assert submit.status(ray_address, job_id).status == "STOPPED"


def test_job_asking_for_missing_gpus_is_reported_pending(ray_address, capsys):
    job_id = submit.submit(ray_address, submit.JobRequest(entrypoint="python -c 'print(1)'", num_gpus=1))
    with pytest.raises(ReasonerError, match=r"still PENDING after 2 s.*waiting for resources.*--stop"):
        submit.follow(ray_address, job_id, out=io.StringIO(), pending_timeout_s=2)
    # Ray cannot stop a job before it starts: say so instead of waiting for a STOPPED that does not come.
    assert main(["submit", "--stop", job_id, "--address", ray_address]) == 0
    out = capsys.readouterr().out
    assert f"job {job_id}: PENDING" in out and "RAY_JOB_START_TIMEOUT_SECONDS" in out


def test_unknown_job_and_unreachable_server_are_clear_errors(ray_address):
    with pytest.raises(ReasonerError, match="job raysubmit_nonexistent"):
        submit.status(ray_address, "raysubmit_nonexistent")
    with pytest.raises(ReasonerError, match="cannot reach the Ray job server"):
        submit.status(f"http://127.0.0.1:{_free_ports(1)[0]}", "x")


def test_build_request_for_a_config_runs_the_repo_copy(tmp_path):
    request = submit.build_request(
        "configs/demo.yaml", ["output_dir=/shared/runs", "stages.grpo1.steps=2"], env=["A=1"]
    )
    assert request.entrypoint == (
        "python -m reasoner.cli run configs/demo.yaml output_dir=/shared/runs stages.grpo1.steps=2"
    )
    runtime_env = request.runtime_env()
    assert runtime_env["working_dir"] == str(REPO) and runtime_env["env_vars"]["A"] == "1"
    assert (
        "/data/" in runtime_env["excludes"] and "data/" not in runtime_env["excludes"]
    )  # keep reasoner/data


def test_build_request_rejects_what_would_fail_on_the_cluster():
    with pytest.raises(ReasonerError, match="output_dir: 'runs' is relative"):
        submit.build_request("configs/demo.yaml", [])
    with pytest.raises(ReasonerError, match="stages.nope"):
        submit.build_request("configs/demo.yaml", ["output_dir=/x", "stages.nope.steps=1"])
    with pytest.raises(ReasonerError, match="either CONFIG"):
        submit.build_request("configs/demo.yaml", [], entrypoint="echo hi")
    with pytest.raises(ReasonerError, match="KEY=VALUE"):
        submit.build_request(None, [], entrypoint="echo hi", env=["novalue"])


def test_submitted_demo_schedule_succeeds_and_writes_its_report(ray_address, demo_smoke, tmp_path, capsys):
    """The shortened demo (local engine) as a Ray job through `reasoner submit CONFIG`, followed to the end."""
    overrides = [*demo_smoke, f"output_dir={tmp_path}", "eval.datasets=[heldout]"]
    code = main(["submit", str(REPO / "configs" / "demo.yaml"), *overrides, "--address", ray_address, "--follow"])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    report = tmp_path / "demo" / "report.md"
    assert report.is_file(), out[-3000:]
    assert "| grpo2 |" in report.read_text()
