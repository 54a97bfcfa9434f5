"""`reasoner submit` against a real local Ray head (CPU, 8 logical CPUs, 1 fake GPU): submit, follow, status, stop,
PENDING. The head is the test session's own (`ray_head` in tests/conftest.py). To run the shortened demo instead of the tiny
entrypoint, set SUBMIT_TEST_ENTRYPOINT (e.g. "python -m reasoner.cli run configs/demo.yaml ... output_dir=/tmp/x").
"""

from __future__ import annotations

import io
import os
import socket
import sys
from pathlib import Path

import pytest

from reasoner import submit
from reasoner.cli import main
from reasoner.errors import ReasonerError

pytestmark = pytest.mark.slow  # a Ray cluster and real jobs

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


@pytest.fixture(scope="module")
def ray_address(ray_head: str) -> str:
    """The session's private Ray head (tests/conftest.py: 8 CPUs, 1 fake GPU)."""
    return ray_head


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
        assert f"{MARKER} from-job-env 8" in out  # logs streamed; env var from the job, not the head


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
    job_id = submit.submit(ray_address, submit.JobRequest(entrypoint="python -c 'print(1)'", num_gpus=2))
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
        submit.status(f"http://127.0.0.1:{_free_port()}", "x")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def test_a_preset_travels_with_the_job_as_its_path_in_the_repo_copy(tmp_path):
    preset = REPO / "configs" / "presets" / "dapo.yaml"
    request = submit.build_request(str(REPO / "configs" / "demo.yaml"), ["output_dir=/shared/runs", str(preset)])
    assert request.entrypoint == (
        "python -m reasoner.cli run configs/demo.yaml output_dir=/shared/runs configs/presets/dapo.yaml"
    )
    outside = tmp_path / "mine.yaml"
    outside.write_text("stages.*.grpo.kl_coef: 0.0\n")
    request = submit.build_request("configs/demo.yaml", ["output_dir=/shared/runs", str(outside)])
    assert request.entrypoint.endswith(f" {outside}")  # read at its absolute path on the head node


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
