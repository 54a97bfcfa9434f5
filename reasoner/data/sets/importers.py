"""Importers for two public sets in their released form, with their real images.

- TabMWP (lupantech/PromptPG `data/tabmwp/problems_*.json`, an object keyed by problem id, with the rendered
  tables in `tables/<id>.png`): the table text (with its title) becomes the problem's `caption`, the worked
  `solution` its reference chain (`reasoning`), the released `answer` string is kept as written ("8.20",
  "5/18", "23,520", "2:10 P.M.", "yes"). Multiple-choice answers are choice texts already; a free-text answer
  gets its type from its value with thousands separators ignored: integer ("23,520"), float with as many
  decimals as written ("8.20": precision 2), or expression ("5/18").
- MATH-Vision (mathllm/MATH-V `data/<split>.jsonl` with `images/<id>.jpg`): a letter answer becomes the text
  of that option (our records store choice texts; options that are themselves letters stay letters); the
  letter is kept as `metadata.answer_letter`, which the benchmark's official rules compare against. `level` and
  `subject` go to metadata (the official breakdowns). Questions keep their `<image1>` ... markers: they name
  parts of the one released figure.

Every image is resolved beside the data file and checked (present, readable image header) at import; a
missing or broken one fails the import naming the problems. Ids: `tabmwp-<id>`; MATH-Vision keeps its own ids
(predictions for `reasoner score mathvision` use them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from reasoner.data.records.files import jsonl_objects
from reasoner.data.records.problem import Problem
from reasoner.data.sets.sources import infer_answer_type, read_json
from reasoner.errors import ReasonerError
from reasoner.prompts import LETTERS

log = logging.getLogger(__name__)

_NAMED = 5  # how many offending ids an error message lists


def check_image_files(problems: Sequence[Problem], what: str) -> None:
    """Raise ReasonerError when an image of a problem is missing or not a readable image (header only)."""
    broken = []
    for problem in problems:
        for image in problem.images:
            path = image.resolved_path()
            try:
                with Image.open(path) as opened:
                    opened.size  # noqa: B018 - the header is read lazily; touch it to validate the file
            except (FileNotFoundError, UnidentifiedImageError, OSError, TypeError) as err:
                broken.append(f"{problem.id} ({path}: {type(err).__name__})")
    if broken:
        raise ReasonerError(
            f"{what}: {len(broken)} image(s) missing or unreadable, e.g. {', '.join(broken[:_NAMED])}"
        )


# --------------------------------------------------------------------------------------------------- TabMWP


def tabmwp_files(source: str | Path) -> list[Path]:
    """The problem files of a TabMWP source: one `problems_*.json`, or every one in a folder."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.glob("problems_*.json"))
        if files:
            return files
        raise ReasonerError(f"{path}: no TabMWP problems_*.json files in this folder")
    raise ReasonerError(f"{path}: TabMWP file or folder not found")


def load_tabmwp(source: str | Path, *, limit: int | None = None) -> list[Problem]:
    """TabMWP problems from a released `problems_*.json` (or a folder of them), images in `tables/` beside it."""
    problems: list[Problem] = []
    for path in tabmwp_files(source):
        records = read_json(path)
        if not isinstance(records, dict):
            raise ReasonerError(
                f"{path}: expected an object keyed by problem id, got {type(records).__name__}"
            )
        for pid, row in records.items():
            if limit is not None and len(problems) >= limit:
                break
            problems.append(_tabmwp_problem(str(pid), row, f"{path}: problem {pid}", path.parent))
    check_image_files(problems, f"TabMWP {source}")
    log.info("loaded %d TabMWP problems from %s", len(problems), source)
    return problems


def _tabmwp_problem(pid: str, row: Any, where: str, base_dir: Path) -> Problem:
    if not isinstance(row, dict):
        raise ReasonerError(f"{where}: expected an object, got {type(row).__name__}")
    for key in ("question", "answer", "table"):
        if not isinstance(row.get(key), str):
            raise ReasonerError(f"{where}: field '{key}' must be a string, got {row.get(key)!r:.60}")
    answer, choices = row["answer"], row.get("choices") or None
    if choices:
        answer_type, precision = "text", None
    else:
        answer_type, precision = infer_answer_type(answer.replace(",", ""))
    title = row.get("table_title")
    record = {
        "id": f"tabmwp-{pid}",
        "question": row["question"],
        "answer": answer,
        "answer_type": answer_type,
        "choices": choices,
        "precision": precision,
        "unit": row.get("unit") or None,
        "images": [{"path": f"tables/{pid}.png"}],
        "caption": f"{title}\n{row['table']}" if title else row["table"],
        "reasoning": row.get("solution") or None,
        "metadata": {
            "source": "TabMWP",
            "tabmwp_id": pid,
            "split": row.get("split"),
            "grade": row.get("grade"),
            "question_type": "multi_choice" if choices else "free_form",
            "ans_type": row.get("ans_type"),
        },
    }
    return Problem.from_dict(record, where=where, base_dir=base_dir)


# ---------------------------------------------------------------------------------------------- MATH-Vision


def mathvision_file(source: str | Path, split: str = "testmini") -> Path:
    """The problems file of a MATH-Vision source: a `.jsonl` file, or `<split>.jsonl` in a folder."""
    path = Path(source)
    if path.is_dir():
        path = path / f"{split}.jsonl"
    if not path.is_file():
        raise ReasonerError(
            f"{path}: MATH-Vision problems file not found (expected {split}.jsonl and images/)"
        )
    return path


def load_mathvision(
    source: str | Path, *, split: str = "testmini", limit: int | None = None, check_images: bool = True
) -> list[Problem]:
    """MATH-Vision problems from its released jsonl (a folder holding `<split>.jsonl` + `images/`, or the file).

    `check_images=False` skips the image check (scoring saved responses needs no pixels)."""
    path = mathvision_file(source, split)
    problems = []
    for where, row in jsonl_objects(path):
        if limit is not None and len(problems) >= limit:
            break
        problems.append(_mathvision_problem(row, where, path.parent))
    if check_images:
        check_image_files(problems, f"MATH-Vision {path}")
    log.info("loaded %d MATH-Vision %s problems from %s", len(problems), split, path)
    return problems


def _mathvision_problem(row: Any, where: str, base_dir: Path) -> Problem:
    if not isinstance(row, dict):
        raise ReasonerError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("id", "question", "answer", "image"):
        if not isinstance(row.get(key), (str, int)) or isinstance(row.get(key), bool):
            raise ReasonerError(f"{where}: field '{key}' must be a string, got {row.get(key)!r:.60}")
    options = [str(option) for option in row.get("options") or []]
    answer = str(row["answer"]).strip()
    metadata = {"source": "MathVision", "level": row.get("level"), "subject": row.get("subject")}
    if options:
        if len(answer) != 1 or answer not in LETTERS[: len(options)]:
            raise ReasonerError(
                f"{where}: field 'answer' {answer!r} is not an option letter ({', '.join(LETTERS[: len(options)])})"
            )
        metadata.update(question_type="multi_choice", answer_letter=answer)
        answer_type, precision, answer = "text", None, options[LETTERS.index(answer)]
    else:
        metadata["question_type"] = "free_form"
        answer_type, precision = infer_answer_type(answer)
    record = {
        "id": str(row["id"]),
        "question": row["question"],
        "answer": answer,
        "answer_type": answer_type,
        "choices": options or None,
        "precision": precision,
        "images": [{"path": str(row["image"])}],
        "reasoning": row.get("solution") or None,
        "metadata": metadata,
    }
    return Problem.from_dict(record, where=where, base_dir=base_dir)
