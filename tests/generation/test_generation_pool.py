"""The Ray actor pool on a local 2-CPU Ray: same results and order as one generator, survives a killed actor."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from reasoner.errors import ReasonerError
from reasoner.generation import (
    GenerationRequest,
    GeneratorConfig,
    GeneratorPool,
    HFGenerator,
    SamplingSpec,
    user_message,
)

pytestmark = pytest.mark.slow  # Ray actors

SPEC = SamplingSpec(n=1, temperature=0.0, max_new_tokens=10)
BATCH = 2  # generator batch size == pool chunk size, so chunks batch exactly like the single generator


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # address="local" always starts a private cluster, even if another Ray runs on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def pool(ray_local, tiny_model_dir: Path):
    pool = GeneratorPool(
        GeneratorConfig(model_path=str(tiny_model_dir), batch_size=BATCH),
        num_actors=2,
        chunk_size=BATCH,
        show_progress=False,
    )
    yield pool
    pool.shutdown()


@pytest.fixture(scope="module")
def requests(digit_images: list) -> list[GenerationRequest]:
    images = digit_images + digit_images[::-1]
    return [
        GenerationRequest(user_message(f"Add the digits. ({i})"), [image]) for i, image in enumerate(images)
    ]


@pytest.fixture(scope="module")
def expected(tiny_model_dir: Path, requests: list[GenerationRequest]) -> list:
    single = HFGenerator.from_pretrained(tiny_model_dir, batch_size=BATCH, show_progress=False)
    return single.generate(requests, SPEC)


def test_pool_returns_what_one_generator_returns_in_order(pool: GeneratorPool, requests, expected) -> None:
    results = pool.generate(requests, SPEC)
    assert len(results) == 16
    assert results == expected


def test_pool_survives_a_killed_actor(ray_local, pool: GeneratorPool, requests, expected) -> None:
    outcome: dict = {}
    done_before = pool.completed_requests

    def run() -> None:
        try:
            outcome["results"] = pool.generate(requests, SPEC)
        except Exception as err:  # re-raised in the test thread below
            outcome["error"] = err

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while pool.completed_requests == done_before and time.monotonic() < deadline:
        time.sleep(0.01)
    ray_local.kill(pool.actors[0])  # mid-run: one chunk is done, the rest are pending or in flight
    worker.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["results"] == expected
    assert pool.restarts >= 1


def test_bad_input_inside_an_actor_is_raised_not_retried(
    pool: GeneratorPool, requests, tmp_path: Path
) -> None:
    restarts = pool.restarts
    bad = GenerationRequest(user_message("q"), [str(tmp_path / "gone.png")])
    with pytest.raises(ReasonerError, match="'#3'.*does not exist"):
        pool.generate([*requests[:3], bad], SPEC)
    assert pool.restarts == restarts


def test_actor_that_cannot_build_its_generator_fails_fast(ray_local, tmp_path: Path) -> None:
    with pytest.raises(ReasonerError, match="failed to start.*no config.json"):
        GeneratorPool(
            GeneratorConfig(model_path=str(tmp_path / "no-model")),
            num_actors=1,
            actor_options={"num_cpus": 0},  # the fixture pool holds both CPUs
            show_progress=False,
        )


def test_actors_that_cannot_be_scheduled_time_out_with_a_clear_error(ray_local, tiny_model_dir: Path) -> None:
    with pytest.raises(ReasonerError, match="did not start within 1 s.*num_cpus"):
        GeneratorPool(
            GeneratorConfig(model_path=str(tiny_model_dir)),
            num_actors=1,
            actor_options={"num_cpus": 64},
            start_timeout_s=1,
            show_progress=False,
        )
