"""Atomic writes: all or nothing, and the mode a plain create would give (group-readable under umask 002/022)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from reasoner import atomic
from reasoner.errors import ReasonerError


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


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """A filler file that leaves `leave_bytes` free on `folder`'s filesystem."""
    filler = folder / "filler"
    size = shutil.disk_usage(folder).free - leave_bytes
    with filler.open("wb") as handle:  # written, not fallocated: tmpfs may hand fallocated pages back
        for start in range(0, size, 1 << 20):
            handle.write(bytes(min(1 << 20, size - start)))
    return filler


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_full_disk_names_the_file_and_the_free_space_and_keeps_the_old_version(small_filesystem):
    fs = small_filesystem(2)
    target = atomic.write_json(fs / "scores.json", {"old": 1})
    fill(fs, 64 * 1024)
    with pytest.raises(atomic.DiskFull) as err:
        atomic.write_jsonl(fs / "scores.json", ({"row": "x" * 1000} for _ in range(1000)))
    line = one_line(err)
    assert line.startswith(f"no space left on device writing {target} (")
    assert "written when the space ran out, removed" in line and "KiB free on " in line and str(fs) in line
    assert isinstance(err.value, ReasonerError)  # the CLI prints it as one line, exit status 2
    assert json.loads(target.read_text()) == {"old": 1}
    assert sorted(p.name for p in fs.iterdir()) == ["filler", "scores.json"]  # no temporary left


def test_a_full_disk_inside_torch_save_names_the_checkpoint_file(small_filesystem):
    """torch.save reports ENOSPC as an opaque RuntimeError; the folder keeps its old version, no temporary."""
    import torch

    fs = small_filesystem(2)
    with atomic.atomic_dir(fs / "step_000001") as staging:
        (staging / "checkpoint.json").write_text("{}")
    with pytest.raises(atomic.DiskFull) as err, atomic.atomic_dir(fs / "step_000002") as staging:
        atomic.write_json(staging / "checkpoint.json", {"step": 2})
        torch.save({"weights": torch.zeros(1_000_000)}, staging / "state.pt")  # 4 MB
    assert one_line(err).startswith(f"no space left on device writing {fs / 'step_000002'} (")
    assert sorted(p.name for p in fs.iterdir()) == ["step_000001"]
    # The partial's space counts as free again (torch's writer, kept alive by the traceback, let go of it).
    assert "written when the space ran out, removed; 2.0 MiB free on" in str(err.value)
    # A nested atomic write that fills the disk is named as it would be inside the final folder.
    fill(fs)
    with pytest.raises(atomic.DiskFull) as err, atomic.atomic_dir(fs / "model") as staging:
        atomic.write_json(staging / "config.json", {"x": 1})
    inside = fs / "model" / "config.json"
    assert one_line(err).startswith(f"no space left on device writing {inside} (0 B free on")
    assert sorted(p.name for p in fs.iterdir()) == ["filler", "step_000001"]


def test_other_failures_are_not_taken_for_a_full_disk(tmp_path):
    with pytest.raises(RuntimeError, match="not a disk problem"), atomic.atomic_path(tmp_path / "x") as tmp:
        tmp.write_text("x")
        raise RuntimeError("not a disk problem")


def test_partial_writes_of_a_killed_writer_are_cleaned_and_a_moved_aside_version_restored(tmp_path):
    """What a SIGKILL inside `atomic_dir` / `atomic_path` leaves: temporaries (removed) and, killed between the two
    renames of a folder's swap, the old version under its `-old` name while the name itself is gone (restored)."""
    atomic.write_text(tmp_path / "kept.json", "{}")
    (tmp_path / ".step_000004.k2j_x9ab.tmp").mkdir()  # a checkpoint folder killed mid-write
    (tmp_path / ".step_000004.k2j_x9ab.tmp" / "state.pt").write_bytes(b"\0" * 100)
    (tmp_path / ".metrics.json.abc123.tmp").write_text("{")  # a file killed mid-write
    (tmp_path / ".model.q1w2e3r4.tmp-old").mkdir()  # killed after moving `model` aside, before the new one took it
    (tmp_path / ".model.q1w2e3r4.tmp-old" / "config.json").write_text("{}")
    (tmp_path / ".hidden").write_text("not ours")
    removed = atomic.remove_partial_writes(tmp_path)
    assert sorted(p.name for p in removed) == [".metrics.json.abc123.tmp", ".step_000004.k2j_x9ab.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "kept.json", "model"]
    assert (tmp_path / "model" / "config.json").read_text() == "{}"
    assert atomic.remove_partial_writes(tmp_path / "missing") == []


def test_a_moved_aside_version_is_dropped_when_the_new_one_took_the_name(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / ".model.q1w2e3r4.tmp-old").mkdir()
    assert [p.name for p in atomic.remove_partial_writes(tmp_path)] == [".model.q1w2e3r4.tmp-old"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
