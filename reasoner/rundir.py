"""The run directory and atomic files.

    runs/<name>/
      config.yaml                 the resolved config of the last invocation
      report.md  report.json  accuracy.png
      stages/NN_<kind>/
        data/    the stage's training set (written atomically) and its statistics
        ckpt/    resumable training checkpoints
        model/   the exported model folder (appears whole, by rename)
        eval/<dataset>/{items.jsonl, scores.json}   one evaluation; scores.json is written last
        logs/    tensorboard events and the stage log
        manifest.json   written last and atomically: the stage is finished iff it exists

A stage writes only inside its own directory, so a crash or Ctrl-C never touches finished stages, and
partial files never look finished (every file is written to a temporary name and renamed).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside `path`, then rename it into place."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any | None:
    """The parsed JSON at `path`, or None if it does not exist."""
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; on success rename it to `path`, on failure remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: Path):
    """Yield a temporary folder beside `path`; on success it replaces `path` whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class StageDir:
    """The folders of one stage."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def ckpt(self) -> Path:
        return self.root / "ckpt"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def eval(self, dataset: str) -> Path:
        return self.root / "eval" / dataset

    def read_manifest(self) -> dict | None:
        return read_json(self.manifest)

    def write_manifest(self, manifest: dict) -> None:
        write_json_atomic(self.manifest, manifest)


@dataclass(frozen=True)
class RunDir:
    """`<output_dir>/<name>/` of one run."""

    root: Path

    def stage(self, dir_name: str) -> StageDir:
        return StageDir(self.root / "stages" / dir_name)

    def stage_dirs(self) -> list[StageDir]:
        """Existing stage folders in order."""
        stages = self.root / "stages"
        return [StageDir(p) for p in sorted(stages.iterdir()) if p.is_dir()] if stages.is_dir() else []

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"
