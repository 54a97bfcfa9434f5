"""math-verify in killable worker processes, safe to call from any thread, thread pool, asyncio executor or actor.

Why processes: math-verify's own timeouts use signal.alarm, which raises ValueError outside the main thread, and
even in the main thread cannot interrupt C-level bignum work (a power tower like 9^{9^{9^9}} runs for minutes).
Here each request goes to a worker process (a fresh interpreter started with subprocess, so it does not re-run
the caller's __main__ the way multiprocessing's spawn does) and is answered within `timeout_s` or the worker is
killed, counted, logged and replaced. Workers are kept between requests (math-verify imports take seconds); one
process-wide pool holds at most `REWARDS_MATH_WORKERS` of them (default: min(4, CPUs)); callers beyond that wait
for a free one. The waiting and the worker start-up are not part of `timeout_s`, which bounds the work itself.
Verdicts are cached per pool (the last 4096 requests), except timeouts and worker errors.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 120.0
CACHE_SIZE = 4096
MAX_INPUT_CHARS = 2000  # longer "answers" are not math worth parsing, and cost the worker time
WORKER_SCRIPT = Path(__file__).with_name("equivalence_worker.py")


@dataclass(frozen=True)
class Verdict:
    """The answer to one request. `reason`: match, mismatch, value (evaluate succeeded), timeout, parse-error or
    worker-error; `value` is set for evaluate; `detail` says more about a failure."""

    reason: str
    value: float | None = None
    detail: str = ""

    @property
    def equal(self) -> bool:
        """True only for a verified match."""
        return self.reason == "match"


class _Counters:
    """Process-wide counts of requests and failures, readable through `equivalence_stats()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values = {"requests": 0, "timeouts": 0, "parse_errors": 0, "worker_errors": 0, "workers_started": 0}

    def add(self, key: str) -> None:
        with self._lock:
            self.values[key] += 1


COUNTERS = _Counters()


class _Worker:
    """One worker process and the bytes read from it that do not yet form a whole line."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        self._pending = b""
        self.ready = False
        COUNTERS.add("workers_started")

    def _read_line(self, deadline: float) -> bytes | None:
        """One line from the worker, or None if the deadline passes first. Raises EOFError if it died."""
        fd = self.process.stdout.fileno()
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError(f"math-verify worker exited with code {self.process.poll()}")
                self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line

    def poll_ready(self) -> bool:
        """Whether the worker has said it is ready, without blocking."""
        if not self.ready and select.select([self.process.stdout.fileno()], [], [], 0)[0]:
            try:
                self.wait_ready()
            except (RuntimeError, EOFError, ValueError):
                return False  # it failed to start; the request that takes it will see the same failure
        return self.ready

    def wait_ready(self) -> None:
        """Block until the worker has imported math-verify; raises RuntimeError if it cannot."""
        if self.ready:  # its greeting was read already (a warm-up after earlier use)
            return
        line = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        if line is None:
            raise RuntimeError(f"math-verify worker did not start within {STARTUP_TIMEOUT_S:.0f} s")
        message = json.loads(line)
        if not message.get("ready"):
            raise RuntimeError(message.get("fatal", f"unexpected worker greeting {message!r}"))
        self.ready = True

    def ask(self, request: dict, timeout_s: float) -> dict | None:
        """Send one request; its answer, or None if `timeout_s` passed (the caller then kills the worker)."""
        if not self.ready:
            self.wait_ready()
        self.process.stdin.write((json.dumps(request) + "\n").encode("utf-8"))
        self.process.stdin.flush()
        line = self._read_line(time.monotonic() + timeout_s)
        return None if line is None else json.loads(line)

    def kill(self) -> None:
        """End the worker now (it may be deep in C code, so no polite request first)."""
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()


class EquivalencePool:
    """A bounded, thread-safe set of math-verify workers. Use `default_pool()` rather than making your own."""

    def __init__(self, max_workers: int | None = None) -> None:
        default = min(4, os.cpu_count() or 1)
        self.max_workers = max(1, max_workers or int(os.environ.get("REWARDS_MATH_WORKERS", default)))
        self._condition = threading.Condition()
        self._idle: list[_Worker] = []
        self._count = 0
        self._fatal: str | None = None
        # Rollouts repeat answers (GRPO samples n per prompt): remember recent verdicts, oldest dropped first.
        self._cache: OrderedDict[str, Verdict] = OrderedDict()

    def _acquire(self) -> _Worker:
        with self._condition:
            while not self._idle and self._count >= self.max_workers:
                self._condition.wait()
            if self._idle:  # prefer a started worker over a successor still importing math-verify
                ready = [worker for worker in self._idle if worker.poll_ready()]
                chosen = ready[-1] if ready else self._idle[-1]
                self._idle.remove(chosen)
                return chosen
            self._count += 1
        try:
            return _Worker()
        except OSError:
            self._release(None)
            raise

    def _release(self, worker: _Worker | None) -> None:
        """Return a healthy worker, or pass None for one that was killed (its place becomes free)."""
        with self._condition:
            if worker is None:
                self._count -= 1
            else:
                self._idle.append(worker)
            self._condition.notify()

    def _replace(self) -> None:
        """Start a successor for a killed worker now, so it has imported math-verify when next asked."""
        try:
            successor = _Worker()
        except OSError as error:
            logger.warning("could not start a math-verify worker: %s", error)
            self._release(None)
            return
        self._release(successor)

    def _call(self, request: dict, timeout_s: float) -> Verdict:
        key = json.dumps(request, sort_keys=True)
        with self._condition:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        verdict = self._ask_worker(request, timeout_s)
        if verdict.reason not in ("timeout", "worker-error"):  # those depend on load, not on the input alone
            with self._condition:
                self._cache[key] = verdict
                if len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return verdict

    def _ask_worker(self, request: dict, timeout_s: float) -> Verdict:
        COUNTERS.add("requests")
        if self._fatal is not None:  # math-verify is missing: do not start a doomed worker per request
            COUNTERS.add("worker_errors")
            return Verdict("worker-error", detail=self._fatal)
        try:
            worker = self._acquire()
        except OSError as error:
            COUNTERS.add("worker_errors")
            logger.warning("could not start a math-verify worker: %s", error)
            return Verdict("worker-error", detail=str(error)[:200])
        try:
            answer = worker.ask(request, timeout_s)
        except (OSError, EOFError, RuntimeError, ValueError) as error:
            worker.kill()
            self._release(None)  # not replaced at once: a worker that cannot start would fail again
            COUNTERS.add("worker_errors")
            if "cannot import math_verify" in str(error):
                self._fatal = str(error)
            logger.warning("math-verify worker failed (%s); it will be replaced", error)
            return Verdict("worker-error", detail=str(error)[:200])
        if answer is None:
            worker.kill()
            self._replace()
            COUNTERS.add("timeouts")
            logger.warning("math-verify took over %.1f s on %s; worker killed", timeout_s, _preview(request))
            return Verdict("timeout", detail=f"over {timeout_s:.1f} s")
        self._release(worker)
        return _verdict(answer, request)

    def verify(self, gold: str, prediction: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
               float_rounding: int = 6) -> Verdict:
        """Whether math-verify finds `prediction` equal to `gold`: reason match / mismatch / timeout / parse-error."""
        if max(len(gold), len(prediction)) > MAX_INPUT_CHARS:
            COUNTERS.add("parse_errors")
            return Verdict("parse-error", detail=f"longer than {MAX_INPUT_CHARS} characters")
        request = {"op": "verify", "gold": gold, "prediction": prediction, "float_rounding": float_rounding}
        return self._call(request, timeout_s)

    def evaluate(self, expression: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Verdict:
        """The numeric value of a LaTeX/plain expression ("2\\sqrt{3}"): reason value / timeout / parse-error."""
        if len(expression) > MAX_INPUT_CHARS:
            COUNTERS.add("parse_errors")
            return Verdict("parse-error", detail=f"longer than {MAX_INPUT_CHARS} characters")
        return self._call({"op": "evaluate", "expression": expression}, timeout_s)

    def warm_up(self, workers: int = 1) -> None:
        """Start `workers` workers now and wait until they are ready, so later requests do not pay start-up."""
        started = [self._acquire() for _ in range(min(workers, self.max_workers))]
        for worker in started:
            worker.wait_ready()
            self._release(worker)

    def clear_cache(self) -> None:
        """Forget the cached verdicts (for timings that must not reuse earlier answers)."""
        with self._condition:
            self._cache.clear()

    def close(self) -> None:
        """Stop the idle workers (busy ones stop when their caller returns them or the process exits)."""
        with self._condition:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for worker in idle:
            worker.kill()


def _preview(request: dict) -> str:
    text = request.get("prediction", request.get("expression", ""))
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _verdict(answer: dict, request: dict) -> Verdict:
    if "error" in answer:
        COUNTERS.add("parse_errors")
        logger.info("math-verify could not read %s: %s", _preview(request), answer.get("detail", ""))
        return Verdict(answer["error"], detail=str(answer.get("detail", ""))[:200])
    if "value" in answer:
        return Verdict("value", value=float(answer["value"]))
    return Verdict("match" if answer.get("equal") else "mismatch")


_DEFAULT: tuple[int, EquivalencePool] | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> EquivalencePool:
    """The process-wide pool; a forked child gets a fresh one instead of its parent's worker pipes."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None or _DEFAULT[0] != os.getpid():
            _DEFAULT = (os.getpid(), EquivalencePool())
        return _DEFAULT[1]


def equivalence_stats() -> dict[str, int]:
    """Counts in this process so far: requests (sent to a worker; cached verdicts are not counted), timeouts,
    parse_errors, worker_errors, workers_started."""
    with COUNTERS._lock:
        return dict(COUNTERS.values)


@atexit.register
def _close_default_pool() -> None:
    if _DEFAULT is not None and _DEFAULT[0] == os.getpid():
        _DEFAULT[1].close()
