"""Work shared by forked CPU processes: data-parallel training ranks (`ranks`) and a map over items (`fork_map`).

Why processes rather than threads: the demo's tiny model is too small for intra-op threads (two torch threads
were slower than one on these machines), while two single-threaded processes each run at full speed. Forking
(POSIX) gives each process the parent's loaded model for free, copy-on-write.

## Training: `ranks`

    with ranks(processes) as group:     # forks processes-1 children; the body runs in every rank
        mine = group.share(step_items)  # this rank's contiguous part of a step's items
        ...backward on mine (losses normalised by group.sum(local_count))...
        group.sum_grads(params)         # before the optimizer step: every rank then takes the same step

The children are forked after the model, optimizer and reference are built, so they start from the parent's
exact state (copy-on-write) without loading anything. Gradients are summed, not averaged: each rank's loss is
normalised by the whole step's token count (`group.sum`), so the sum is the single-process gradient up to float
rounding, and every rank applies the identical update. Only the parent (rank 0) writes logs, metrics,
checkpoints and the exported model; a child leaves with `os._exit` at the end of the block. A failed child makes
the parent's next collective fail (its socket closes) and the parent raises naming the rank; a failed parent
kills its children. One process (the default) forks nothing and runs the body as before.

## Generation: `fork_map`

    results = fork_map(fn, n_items, processes)   # [fn(0), ..., fn(n_items - 1)]

Item i runs in process i % processes (this process takes its share too); results come back pickled, in order.
When `fn(i)` depends only on i (generation seeds each batch from its index), the results are exactly those of
one process. A failure in a child is raised in the parent: a `ReasonerError` with its own message, anything else
as a `ReasonerError` carrying the child's traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch

from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT = timedelta(minutes=30)
"""How long a collective waits for a rank that is alive but silent (a rank that dies fails it at once)."""


@dataclass(frozen=True)
class Group:
    """This process's rank among `world` data-parallel ranks."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes."""
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's contiguous part of `items` (whose length the world divides: the config checks it)."""
        if len(items) % self.world:
            raise ReasonerError(f"{len(items)} items per step cannot be split evenly over {self.world} processes")
        part = len(items) // self.world
        return list(items[self.rank * part : (self.rank + 1) * part])

    def sum(self, value: float) -> float:
        """`value` summed over the ranks."""
        if self.world == 1:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64)
        torch.distributed.all_reduce(tensor)
        return float(tensor[0])

    def sum_grads(self, params: Iterable[torch.Tensor]) -> None:
        """Sum the gradients of `params` over the ranks, in place (one flat all-reduce)."""
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def combine(self, metrics: dict[str, float], additive: Sequence[str] = ()) -> dict[str, float]:
        """One row of metrics for the whole step: keys starting with an `additive` prefix are summed over the
        ranks (counts; losses already normalised by the whole step), the others averaged (equal shares)."""
        if self.world == 1:
            return metrics
        keys = sorted(metrics)
        values = torch.tensor([float(metrics[key]) for key in keys], dtype=torch.float64)
        torch.distributed.all_reduce(values)
        return {
            key: float(value) if key.startswith(tuple(additive)) else float(value) / self.world
            for key, value in zip(keys, values.tolist(), strict=True)
        }


@contextlib.contextmanager
def ranks(processes: int) -> Iterator[Group]:
    """Run the block in `processes` data-parallel ranks (this process is rank 0; see the module doc)."""
    if processes == 1:
        yield Group()
        return
    import torch.distributed as dist

    if dist.is_initialized():
        raise ReasonerError("the local engine's data-parallel ranks need a process without a torch process group")
    store_file = tempfile.NamedTemporaryFile(prefix="reasoner-ranks-", delete=False)
    store_file.close()
    os.unlink(store_file.name)  # the FileStore creates it; it must not exist yet
    sys.stdout.flush()
    sys.stderr.flush()
    children: dict[int, int] = {}  # pid -> rank
    rank = 0
    for child_rank in range(1, processes):
        pid = os.fork()
        if pid == 0:
            rank = child_rank
            break
        children[pid] = child_rank
    if rank:
        yield from _child(rank, processes, store_file.name)
        return  # never reached: the child exits in _child
    try:
        dist.init_process_group(
            backend="gloo", store=dist.FileStore(store_file.name, processes), rank=0, world_size=processes, timeout=TIMEOUT
        )
        yield Group(0, processes)
    except BaseException as err:
        # A collective fails (RuntimeError) when another rank died: name that rank rather than gloo's message.
        failed = _stop(children, grace=2.0 if isinstance(err, RuntimeError) else 0.0)
        if failed and not isinstance(err, KeyboardInterrupt):
            raise _failure(failed) from err
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(store_file.name)
    failed = _wait(children, block=True)
    if failed:
        raise _failure(failed)


def _failure(failed: list[int]) -> ReasonerError:
    ranks_text = ", ".join(str(r) for r in failed)
    return ReasonerError(f"data-parallel rank {ranks_text} failed (its traceback is above); the stage stopped")


def _die_with_parent() -> None:
    """In a forked child: be killed when the parent dies (Linux), so that a parent killed outright (OOM, SIGKILL)
    leaves no rank blocked in a collective, holding the run's lock."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _child(rank: int, processes: int, store_path: str) -> Iterator[Group]:
    """The body of a forked rank: join the group, run the block, leave without running the parent's code."""
    import torch.distributed as dist

    _die_with_parent()
    code = 0
    try:
        dist.init_process_group(
            backend="gloo", store=dist.FileStore(store_path, processes), rank=rank, world_size=processes, timeout=TIMEOUT
        )
        yield Group(rank, processes)
        dist.destroy_process_group()
    except BaseException:  # noqa: BLE001 - the child reports everything and exits; the parent raises
        sys.stderr.write(f"data-parallel rank {rank} failed:\n{traceback.format_exc()}")
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _stop(children: dict[int, int], grace: float) -> list[int]:
    """After the parent failed: the ranks that had failed (waiting up to `grace` seconds for a dying child to
    exit), then kill the rest."""
    deadline = time.monotonic() + grace
    failed = _wait(children, block=False)
    while not failed and time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.05)
        failed = _wait(children, block=False)
    for pid in children:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(children: dict[int, int], *, block: bool) -> list[int]:
    """Reap the children that have exited (all of them when `block`); the ranks that exited with an error.
    Reaped children leave `children`."""
    failed = []
    for pid, child_rank in list(children.items()):
        try:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            children.pop(pid)
            continue
        if done == 0:
            continue
        children.pop(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            failed.append(child_rank)
    return sorted(failed)


def fork_map(fn: Callable[[int], T], n_items: int, processes: int) -> list[T]:
    """`[fn(i) for i in range(n_items)]`, item i computed in process i % processes (see the module doc)."""
    processes = max(1, min(processes, n_items))
    if processes == 1:
        return [fn(i) for i in range(n_items)]
    sys.stdout.flush()
    sys.stderr.flush()
    readers: list[tuple[int, int]] = []  # (pid, read end)
    for rank in range(1, processes):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            _map_child(fn, range(rank, n_items, processes), write_end)
        os.close(write_end)
        readers.append((pid, read_end))
    results: dict[int, T] = {}
    try:
        results.update((i, fn(i)) for i in range(0, n_items, processes))
        for pid, read_end in readers:
            with os.fdopen(read_end, "rb") as pipe:
                status, payload = pickle.load(pipe)
            os.waitpid(pid, 0)
            if status == "error":
                raise ReasonerError(payload)
            results.update(payload)
    except BaseException:
        _stop({pid: 0 for pid, _ in readers}, grace=0.0)
        raise
    return [results[i] for i in range(n_items)]


def _map_child(fn: Callable[[int], T], items: Iterable[int], write_end: int) -> None:
    """A forked worker of `fork_map`: compute its items, send them (or its error) to the parent, exit."""
    _die_with_parent()
    code = 0
    try:
        message: tuple[str, object] = ("ok", {i: fn(i) for i in items})
    except ReasonerError as err:
        message = ("error", str(err))
    except BaseException:  # noqa: BLE001 - the parent raises it
        message = ("error", f"a forked worker failed:\n{traceback.format_exc()}")
        code = 1
    try:
        with os.fdopen(write_end, "wb") as pipe:
            pickle.dump(message, pipe)
    finally:
        os._exit(code)


__all__ = ["Group", "ranks", "fork_map"]
