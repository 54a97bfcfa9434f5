"""Preference files: user-provided DPO pairs, one JSON object per line of a `.jsonl` file.

    {"id": "p1", "image": "images/p1.png", "prompt": "Describe the image.", "chosen": "...", "rejected": "..."}

`image` is a path relative to the file's folder, or absolute. Each row becomes a `Problem` (question = the prompt,
answer = the chosen response, metadata `chosen` / `rejected`), so the dataset layer, the contamination guard (images
and prompts) and the stage-data cache see a preference set as they see any other set; a DPO stage's data builder
turns the problems back into pairs (`reasoner.data.stage.preference`). A bad row fails with one line naming the
file, the line and the field. Empty or identical responses are read as written: the stage's selection drops them
and counts them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reasoner.data.records.files import jsonl_objects
from reasoner.data.records.problem import ImageRef, Problem
from reasoner.errors import ReasonerError

FIELDS = ("id", "image", "prompt", "chosen", "rejected")
"""Every field of a row, all required strings."""


def read_preference_file(path: str | Path, *, images: bool = True) -> list[Problem]:
    """The rows of a preference file as problems; errors name the file, the line and the field. With `images`,
    an image file that does not exist is an error too."""
    path = Path(path)
    if path.suffix != ".jsonl":
        raise ReasonerError(f"{path}: a preference file is a .jsonl file (one pair per line: {', '.join(FIELDS)})")
    problems: list[Problem] = []
    seen: set[str] = set()
    for where, row in jsonl_objects(path):
        problem = pair_problem(row, where, path.parent)
        if problem.id in seen:
            raise ReasonerError(f"{where}: field 'id' {problem.id!r} is used by an earlier line")
        if images and not problem.images_available():
            raise ReasonerError(f"{where}: field 'image' {row['image']!r}: no such file ({problem.images[0].resolved_path()})")
        seen.add(problem.id)
        problems.append(problem)
    return problems


def pair_problem(row: dict[str, Any], where: str, base_dir: Path) -> Problem:
    """One row as a `Problem`; `where` (file: line N) names it in errors."""
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise ReasonerError(f"{where}: unknown field(s) {unknown}; allowed: {', '.join(FIELDS)}")
    for name in FIELDS:
        if name not in row or row[name] is None:
            raise ReasonerError(f"{where}: field '{name}' is missing")
        if not isinstance(row[name], str):
            raise ReasonerError(f"{where}: field '{name}' must be a string, got {type(row[name]).__name__}")
    for name in ("id", "image", "prompt"):
        if not row[name].strip():
            raise ReasonerError(f"{where}: field '{name}' is empty")
    return Problem(
        id=row["id"],
        question=row["prompt"],
        answer=row["chosen"],
        answer_type="text",
        images=[ImageRef(path=row["image"], base_dir=str(base_dir))],
        metadata={"chosen": row["chosen"], "rejected": row["rejected"], "source": "preference"},
    )
