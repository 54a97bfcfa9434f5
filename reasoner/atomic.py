"""Atomic writes, the one way files and folders are written: a reader sees the old version or the new one, whole.

Every helper writes under a temporary name beside the target (same filesystem) and renames it into place
(`os.replace`, atomic on POSIX); a failure removes the temporary and leaves the target as it was. Temporaries come
from `tempfile`, which makes them private (files 0600, folders 0700); before the rename they get the mode a plain
`open()` / `mkdir()` would give (0666 / 0777 minus the umask), so a run folder on a shared cluster filesystem is
readable by the group whenever the umask allows it. A folder's entries get that mode too (some libraries write
private files), executable bits kept.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _publish(tmp, directory=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` whole (an old `path` is moved aside
    first, so the name never points at a half-written folder), on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = tmp.with_name(tmp.name + "-old")
    try:
        yield tmp
        _publish(tmp, directory=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


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
