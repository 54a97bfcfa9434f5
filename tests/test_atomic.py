"""Atomic writes: all or nothing, and the mode a plain create would give (group-readable under umask 002/022)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reasoner import atomic


@pytest.fixture
def umask():
    """Run the body under a given umask, restoring the old one."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize(
    "mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)]
)
def test_files_and_folders_get_the_umask_mode(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    assert atomic.current_umask() == mask
    atomic.write_json(tmp_path / "a.json", {"x": 1})
    atomic.write_jsonl(tmp_path / "b.jsonl", [{"x": 1}, {"y": 2}])
    atomic.write_text(tmp_path / "c.txt", "c")
    with atomic.atomic_dir(tmp_path / "model") as staging:
        (staging / "w.bin").write_bytes(b"w")
    assert [mode(tmp_path / n) for n in ("a.json", "b.jsonl", "c.txt")] == [file_mode] * 3
    assert mode(tmp_path / "model") == dir_mode and mode(tmp_path / "model" / "w.bin") == file_mode
    assert [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()] == [
        {"x": 1},
        {"y": 2},
    ]


def test_a_failed_write_leaves_the_old_file_and_no_temporaries(tmp_path):
    target = atomic.write_text(tmp_path / "scores.json", "old")

    def rows():
        yield {"ok": 1}
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic.write_jsonl(target, rows())
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]


def test_a_folder_is_replaced_whole(tmp_path):
    with atomic.atomic_dir(tmp_path / "model") as staging:
        (staging / "old.bin").write_bytes(b"1")
    with pytest.raises(RuntimeError), atomic.atomic_dir(tmp_path / "model") as staging:
        (staging / "half.bin").write_bytes(b"2")
        raise RuntimeError("crash while exporting")
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["old.bin"]
    with atomic.atomic_dir(tmp_path / "model") as staging:
        (staging / "new.bin").write_bytes(b"3")
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
