"""Atomic writes, the one way files and folders are written: a reader sees the old version or the new one, whole.

Every helper writes under a temporary name beside the target (same filesystem) and renames it into place
(`os.replace`, atomic on POSIX); a failure removes the temporary and leaves the target as it was. Temporaries come
from `tempfile`, which makes them private (files 0600, folders 0700); before the rename they get the mode a plain
`open()` / `mkdir()` would give (0666 / 0777 minus the umask), so a run folder on a shared cluster filesystem is
readable by the group whenever the umask allows it. A folder's entries get that mode too (some libraries write
private files), executable bits kept.

A write that runs out of space (ENOSPC, or a quota) raises `DiskFull`, a `ReasonerError` whose one line names the
file and the space left, after the temporary is removed: the target keeps its old version (or stays absent), so a
rerun with space resumes from what was finished.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_FULL_TEXTS = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")
_NEARLY_FULL_BYTES = 1 << 20
"""Free space below which a failed write is taken as out of space: torch.save's C++ writer reports ENOSPC as an
opaque RuntimeError ("unexpected pos ..."); a filesystem that filled leaves (almost) nothing free."""


class DiskFull(ReasonerError):
    """A write ran out of space; `path` is the file (or folder) that was being written, left as it was."""

    def __init__(self, path: Path, written: int | None = None) -> None:
        self.path = Path(path)
        self.written = written
        free, where = _free_space(self.path)
        partial = f"{_size(written)} of it written when the space ran out, removed; " if written else ""
        super().__init__(
            f"no space left on device writing {self.path} ({partial}{_size(free)} free on {where}); its previous "
            "version, if any, is kept and finished work is not lost: free some space and rerun the same command "
            "to resume"
        )


def _size(n_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def _free_space(path: Path) -> tuple[int, Path]:
    """Bytes free to this user on the filesystem that holds `path` (its nearest existing folder), and its mount."""
    folder = path.absolute()
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    mount = folder
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    try:
        return shutil.disk_usage(folder).free, mount
    except OSError:
        return 0, mount


def is_out_of_space(err: BaseException, folder: Path) -> bool:
    """Whether `err` (a failed write into `folder`) came from a full filesystem or an exhausted quota."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL_ERRNOS:
            return True
        if any(text in str(seen).lower() for text in _FULL_TEXTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return isinstance(err, (OSError, RuntimeError)) and _free_space(folder)[0] < _NEARLY_FULL_BYTES


@contextmanager
def reporting_full_disk(path: str | Path) -> Iterator[None]:
    """Turn running out of space inside the body (a plain append, a library's own writer) into `DiskFull(path)`."""
    try:
        yield
    except ReasonerError:
        raise
    except Exception as err:  # libraries wrap ENOSPC in their own types (safetensors)
        if not is_out_of_space(err, Path(path).parent):
            raise
        raise DiskFull(Path(path)) from err


def _release(err: BaseException) -> None:
    """Drop the locals of the failed writer's finished frames: a writer object there (torch.save's) holds an open
    descriptor that keeps a removed partial file's space in use."""
    seen: BaseException | None = err
    while seen is not None:
        traceback.clear_frames(seen.__traceback__)
        seen = seen.__cause__ or seen.__context__


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())
    return path.stat().st_size if path.exists() else 0


def current_umask() -> int:
    """The process umask, read without changing it (Linux: /proc; elsewhere set and restore)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(path: Path, *, directory: bool) -> None:
    """Give a temporary the mode a plain create would have given the final file or folder. Inside a folder every
    entry gets it too: some writers (safetensors) create private files whatever the umask."""
    mask = current_umask()
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)
    if directory:
        for root, dirs, files in os.walk(path):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o777 & ~mask)
            for name in files:
                entry = os.path.join(root, name)
                os.chmod(entry, (0o666 | (os.stat(entry).st_mode & 0o111)) & ~mask)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside `path`; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    with reporting_full_disk(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _publish(tmp, directory=False)
        os.replace(tmp, path)
    except ReasonerError:
        raise
    except Exception as err:  # libraries wrap ENOSPC in their own types (safetensors)
        if not is_out_of_space(err, path.parent):
            raise
        written = _size_of(tmp)
        _release(err)
        tmp.unlink(missing_ok=True)  # before the message measures what is free
        raise DiskFull(path, written) from err
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` whole (an old `path` is moved aside
    first, so the name never points at a half-written folder), on failure it is removed."""
    path = Path(path)
    with reporting_full_disk(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = tmp.with_name(tmp.name + "-old")
    try:
        yield tmp
        _publish(tmp, directory=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except DiskFull as err:  # a nested atomic write: named as the file will be named inside `path`
        raise _folder_full(path, tmp, err) from err
    except ReasonerError:
        raise
    except Exception as err:  # libraries wrap ENOSPC in their own types (safetensors)
        if not is_out_of_space(err, path.parent):
            raise
        raise _folder_full(path, tmp, err) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():  # the new folder could not take the name: the old one keeps it
            os.replace(old, path)
        shutil.rmtree(old, ignore_errors=True)


_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp(?P<old>-old)?")
"""The names `atomic_path` / `atomic_dir` write under: `.<name>.<random>.tmp`, and `...tmp-old` for the version
they move aside during a folder's swap."""


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Clean up what writers killed mid-write (SIGKILL, preemption, power loss) left in `folder`: their temporaries
    are removed (a checkpoint's worth of bytes each), and a previous version moved aside just before the kill gets
    its name back. Each is logged; returns the removed temporaries. Only for folders one process writes at a time (a run folder,
    under its lock): another writer's temporary in flight would be removed too."""
    folder = Path(folder)
    removed = []
    for entry in sorted(folder.glob(".*.tmp*")) if folder.is_dir() else []:
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None:
            continue
        target = folder / match["name"]
        if match["old"] and not target.exists():
            os.replace(entry, target)
            log.warning("%s: restored from %s (a replacement was interrupted before it took the name)", target, entry)
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        log.warning("removed %s: its write was interrupted before it completed", entry)
        removed.append(entry)
    return removed


def _folder_full(path: Path, tmp: Path, err: BaseException) -> DiskFull:
    """`DiskFull` for a folder written at `tmp` for `path`, naming the file inside it where known (as it would be
    named in `path`); the temporary folder is removed first so the message counts the space it held as free."""
    written = _size_of(tmp)
    _release(err)
    shutil.rmtree(tmp, ignore_errors=True)
    name = err.path if isinstance(err, DiskFull) else getattr(err, "filename", None)
    target = Path(name) if name else path
    if target.is_relative_to(tmp):
        target = path / target.relative_to(tmp)
    elif not target.is_relative_to(path):
        target = path
    return DiskFull(target, written)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any, *, indent: int = 2, sort_keys: bool = False) -> Path:
    """Write JSON (non-JSON values as their str) to `path` atomically."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, ensure_ascii=False, default=str)
    return write_text(path, text + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    """Write one JSON document per line to `path` atomically (rows are streamed, not joined in memory)."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)
