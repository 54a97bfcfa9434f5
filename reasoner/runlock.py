"""One `reasoner run` per run folder: an exclusive lock on `<run>/run.lock`, held for the whole run.

Two runs in one folder would train every stage twice, resume from each other's half-written checkpoints and
interleave their metrics. `hold` takes an exclusive `flock` on the lock file. The kernel drops it whenever the
process ends (normal exit, exception, Ctrl-C, SIGKILL, a crash), so a dead holder never blocks the next run. The
file records who holds it (pid, host, start time, command): a refused run names the holder, and a run that finds
a dead holder's record says so as it takes the lock over.

On a filesystem whose locks do not work (ENOLCK, EOPNOTSUPP), the record decides instead: a live pid on this
host holds the folder; a holder on another host holds it until its record is removed by hand.

The file is emptied on release, never deleted: deleting it would let a waiting process lock the old, unlinked
file while another creates and locks a new one of the same name.

`reasoner report` and `reasoner run --plan` only read, and take no lock.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from reasoner.atomic import reporting_full_disk
from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)

_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a run folder's lock."""

    pid: int
    host: str
    started: str
    command: str

    @classmethod
    def this_process(cls) -> Holder:
        return cls(
            os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%dT%H:%M:%S%z"), " ".join(sys.argv)
        )

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} (started {self.started}: {self.command})"

    def is_running(self) -> bool:
        """Whether the process still exists; one on another host cannot be checked and counts as running."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            return True
        return True


@contextmanager
def hold(lock_file: Path) -> Iterator[Holder]:
    """Hold the run folder's lock for the body of the `with`; a held lock raises ReasonerError naming its holder."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _lock(fd, lock_file)
    except BaseException:
        os.close(fd)
        raise
    me = Holder.this_process()
    try:
        with reporting_full_disk(lock_file):
            _write(fd, me)
        yield me
    finally:
        os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock


def _lock(fd: int, lock_file: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ReasonerError(_refusal(lock_file, _read(fd))) from None
    except OSError as err:
        if err.errno not in _NO_LOCKS:
            raise
        holder = _read(fd)
        log.warning("%s: this filesystem has no working locks; trusting the holder record", lock_file)
        if holder is not None and holder.is_running():
            raise ReasonerError(_refusal(lock_file, holder, by_hand=True)) from None
    previous = _read(fd)
    if previous is not None:
        log.warning("%s: taking over from %s, which is no longer running", lock_file, previous.describe())


def _refusal(lock_file: Path, holder: Holder | None, by_hand: bool = False) -> str:
    who = holder.describe() if holder else "a process that has not recorded itself yet"
    message = (
        f"{lock_file.parent}: another `reasoner run` is working in this run folder: {who}; wait for it to "
        "finish or stop it (two runs in one folder would corrupt it), or give this run another name=/output_dir="
    )
    if by_hand:
        message += f"; if that process is gone, delete {lock_file}"
    return message


def _write(fd: int, holder: Holder) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(asdict(holder)) + "\n").encode(), 0)
    os.fsync(fd)


def _read(fd: int) -> Holder | None:
    raw = os.pread(fd, 65536, 0)
    try:
        return Holder(**json.loads(raw)) if raw.strip() else None
    except (ValueError, TypeError):
        return None
