"""The run directory: its layout, the paths stored in it, and reading its JSON files.

    runs/<name>/
      run.lock                    held (flock) by the one `reasoner run` working in this folder; see runlock.py
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
partial files never look finished (every file is written to a temporary name and renamed: reasoner.atomic).
Paths written into the run's files are relative to the run folder, so a run folder can be moved, copied or
mounted elsewhere and still resolves to its own files. A file that exists but cannot be read raises
`DamagedFile`, naming it, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner.atomic import atomic_dir, write_json
from reasoner.errors import ReasonerError

__all__ = ["DamagedFile", "RunDir", "StageDir", "atomic_dir", "read_json", "read_json_object"]
"""`atomic_dir` is re-exported for the engines that import it from here; it lives in `reasoner.atomic`."""

MANIFEST_KEYS = ("fingerprint", "model")


class DamagedFile(ReasonerError):
    """A file of a run folder that exists but cannot be read (truncated, garbage): the message names it."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def read_json(path: Path) -> Any | None:
    """The parsed JSON at `path`, or None if it does not exist; a damaged file raises DamagedFile."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DamagedFile(path, f"damaged, not valid JSON (truncated or overwritten?): {err}") from None
    except OSError as err:
        raise DamagedFile(path, f"cannot be read: {err.strerror or err}") from None


def read_json_object(path: Path, required: tuple[str, ...] = ()) -> dict | None:
    """`read_json` of a file that must hold a JSON object with the `required` keys (else DamagedFile)."""
    data = read_json(path)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise DamagedFile(Path(path), f"damaged, expected a JSON object, got {type(data).__name__}")
    missing = [key for key in required if key not in data]
    if missing:
        raise DamagedFile(Path(path), f"damaged, missing {', '.join(missing)}")
    return data


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
        """The manifest, None when the stage is unfinished; a damaged one raises DamagedFile."""
        return read_json_object(self.manifest, MANIFEST_KEYS)

    def write_manifest(self, manifest: dict) -> None:
        write_json(self.manifest, manifest)


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

    def store(self, path: Path) -> str:
        """How a path is written into the run's files: relative to the run folder when it lies inside it, so a
        moved, copied or differently mounted run resolves to its own files; absolute otherwise."""
        path = Path(path).resolve()
        try:
            return path.relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def resolve(self, stored: str) -> Path:
        """A path from the run's files on this machine: a relative one lies under this run folder."""
        path = Path(stored)
        return path if path.is_absolute() else self.root / path

    def model_of(self, stage: StageDir, manifest: dict) -> Path:
        """The model folder a finished stage's manifest names. Manifests written before paths were relative
        hold absolute ones; `<somewhere>/stages/<this stage>/model` is this stage's own model folder, so a moved
        or copied run loads its own model, never the original folder's."""
        stored = Path(manifest["model"])
        if stored.is_absolute() and stored.parts[-3:] == ("stages", stage.root.name, "model"):
            return stage.model
        return self.resolve(manifest["model"])

    @property
    def lock_file(self) -> Path:
        return self.root / "run.lock"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"
