"""A Ray actor pool that shards generation requests over N generator actors, with the single-generator API.

Each actor builds its own generator from a picklable factory (`GeneratorConfig` or any zero-argument callable),
so models load once per actor. Requests go out in fixed chunks and come back in request order. An actor that
dies (killed, OOM, node lost) is replaced and its in-flight chunk is sent again; bad input (`ReasonerError`
inside an actor) is raised to the caller unchanged and never retried.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from reasoner.errors import ReasonerError
from reasoner.generation.base import Backend, Completion, GenerationRequest, Generator, SamplingSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratorConfig:
    """A picklable recipe for a generator; calling it builds the generator (inside an actor, for the pool)."""

    model_path: str
    backend: str = "hf"
    device: str = "cpu"
    dtype: str | None = None
    batch_size: int = 16
    max_prompt_tokens: int | None = None
    on_long_prompt: str = "error"
    show_progress: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific, e.g. vLLM engine arguments

    def __post_init__(self) -> None:
        if self.backend not in tuple(Backend):
            allowed = ", ".join(backend.value for backend in Backend)
            raise ReasonerError(f"generator backend {self.backend!r} is not allowed; allowed: {allowed}")

    def __call__(self) -> Generator:
        if self.backend == "vllm":
            from reasoner.generation.vllm import VLLMGenerator

            return VLLMGenerator(
                self.model_path,
                max_prompt_tokens=self.max_prompt_tokens,
                on_long_prompt=self.on_long_prompt,
                show_progress=self.show_progress,
                **self.extra,
            )
        from reasoner.generation.hf import HFGenerator

        return HFGenerator.from_pretrained(
            self.model_path,
            device=self.device,
            dtype=self.dtype,
            batch_size=self.batch_size,
            max_prompt_tokens=self.max_prompt_tokens,
            on_long_prompt=self.on_long_prompt,
            show_progress=self.show_progress,
            **self.extra,
        )


class GeneratorActor:
    """The Ray actor body: one generator, one torch thread (more threads are slower on shared CPUs)."""

    def __init__(self, factory: Callable[[], Generator], torch_threads: int = 1) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch

        torch.set_num_threads(torch_threads)
        # Bad input (e.g. a wrong model path) is kept and raised from ready(): an error raised here would reach
        # the driver only as an actor death wrapped around a remote traceback.
        self.start_error: str | None = None
        try:
            self.generator = factory()
        except ReasonerError as err:
            self.start_error = str(err)

    def ready(self) -> int:
        """The actor's process id, once its generator is built; raises the build's `ReasonerError` if it failed."""
        if self.start_error is not None:
            raise ReasonerError(self.start_error)
        return os.getpid()

    def generate(self, requests: list[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        """Run the wrapped generator on one chunk."""
        return self.generator.generate(requests, spec)


@dataclass
class _Chunk:
    start: int
    requests: list[GenerationRequest]
    attempts: int = 0


class GeneratorPool:
    """`generate(requests, spec)` over `num_actors` Ray actors; same results and order as one generator.

    `chunk_size` requests go to an actor at a time; keep it a multiple of the generator's prompts per batch so
    each chunk batches exactly as a single generator would (then greedy results match it token for token).
    Ray must be initialised (`ray.init(...)`) by the caller, or `address` names the cluster to join.
    """

    def __init__(
        self,
        factory: Callable[[], Generator],
        *,
        num_actors: int = 2,
        chunk_size: int = 8,
        actor_options: dict[str, Any] | None = None,
        max_chunk_attempts: int = 3,
        torch_threads: int = 1,
        start_timeout_s: float = 600.0,
        address: str | None = None,
        show_progress: bool = True,
    ) -> None:
        import ray

        if num_actors < 1 or chunk_size < 1:
            raise ReasonerError(f"num_actors={num_actors}, chunk_size={chunk_size}; both must be >= 1")
        if not ray.is_initialized():
            log.info("joining Ray at %s", address or "a new local cluster")
            ray.init(address=address)
        self.factory = factory
        self.chunk_size = chunk_size
        self.max_chunk_attempts = max_chunk_attempts
        self.show_progress = show_progress
        self.restarts = 0  # actors replaced after dying
        self.completed_requests = 0  # requests finished over the pool's lifetime
        self._actor_resources = {"num_cpus": 1, **(actor_options or {})}
        self._actor_class = ray.remote(GeneratorActor).options(**self._actor_resources)
        self._torch_threads = torch_threads
        self.start_timeout_s = start_timeout_s
        self.actors = [self._new_actor() for _ in range(num_actors)]
        self._wait_ready(self.actors)

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        """Return `spec.n` completions per request, in request order."""
        import ray

        named = [_with_id(request, i) for i, request in enumerate(requests)]
        pending = deque(
            _Chunk(s, named[s : s + self.chunk_size]) for s in range(0, len(named), self.chunk_size)
        )
        results: list[list[Completion] | None] = [None] * len(named)
        in_flight: dict[Any, tuple[int, _Chunk]] = {}
        idle = list(range(len(self.actors)))
        with tqdm(
            total=len(named), desc="generate (pool)", unit="req", disable=not self.show_progress
        ) as bar:
            while pending or in_flight:
                while pending and idle:
                    slot, chunk = idle.pop(), pending.popleft()
                    # The chunk offset joins the seed, so sampled results do not depend on which actor ran a chunk.
                    chunk_spec = dataclasses.replace(spec, seed=spec.seed + chunk.start)
                    in_flight[self.actors[slot].generate.remote(chunk.requests, chunk_spec)] = (slot, chunk)
                done, _ = ray.wait(list(in_flight), num_returns=1)
                slot, chunk = in_flight.pop(done[0])
                if self._collect(done[0], slot, chunk, results, pending):
                    bar.update(len(chunk.requests))
                idle.append(slot)
        return results  # type: ignore[return-value]

    def shutdown(self) -> None:
        """Kill the pool's actors (the Ray cluster stays up)."""
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []

    def _collect(self, ref: Any, slot: int, chunk: _Chunk, results: list, pending: deque) -> bool:
        """Store a finished chunk's results; on actor death replace the actor and requeue the chunk."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            completions = ray.get(ref)
        except RayTaskError as err:
            if isinstance(err.cause, ReasonerError):
                raise ReasonerError(str(err.cause)) from None
            raise
        except RayActorError as err:
            chunk.attempts += 1
            if chunk.attempts >= self.max_chunk_attempts:
                raise ReasonerError(
                    f"generation of requests {chunk.start}..{chunk.start + len(chunk.requests) - 1} failed "
                    f"{chunk.attempts} times because its actor died; last error: {err}"
                ) from err
            log.warning(
                "generator actor %d died (%s); restarting it and retrying %d requests",
                slot,
                type(err).__name__,
                len(chunk.requests),
            )
            # It may be only unreachable: make sure it is gone before replacing it.
            ray.kill(self.actors[slot])
            self.actors[slot] = self._new_actor()
            self._wait_ready([self.actors[slot]])
            self.restarts += 1
            pending.appendleft(chunk)
            return False
        results[chunk.start : chunk.start + len(completions)] = completions
        self.completed_requests += len(completions)
        return True

    def _new_actor(self) -> Any:
        return self._actor_class.remote(self.factory, self._torch_threads)

    def _wait_ready(self, actors: list[Any]) -> None:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        try:
            ray.get([actor.ready.remote() for actor in actors], timeout=self.start_timeout_s)
        except (RayTaskError, RayActorError, GetTimeoutError) as err:
            for actor in actors:
                ray.kill(actor)  # a pending actor would otherwise grab resources whenever they free up
            if isinstance(err, GetTimeoutError):
                raise ReasonerError(
                    f"{len(actors)} generator actor(s) did not start within {self.start_timeout_s:.0f} s; each asks "
                    f"for {self._actor_resources} and the Ray cluster has {ray.available_resources()} free"
                ) from None
            cause = err.cause if isinstance(err, RayTaskError) else err
            raise ReasonerError(f"a generator actor failed to start: {cause}") from None


def _with_id(request: GenerationRequest, index: int) -> GenerationRequest:
    """Give id-less requests their global position as id, so errors raised inside actors still locate them."""
    return request if request.id is not None else dataclasses.replace(request, id=f"#{index}")
