"""Local copies of public data sets, read into `Problem` records.

- MathVista: the official `testmini.json` (+ `testmini_query.json`) with an `images/` folder that may be absent,
  or the hub parquet export (`testmini-*.parquet`, images embedded as `decoded_image`).
- Geometry3K: the hub parquet release (`images` list of `{bytes, path}`, `problem` with an `<image>` marker,
  `answer`).
- generic: json / jsonl / parquet with a column mapping (`question=problem`, `answer=solution`, ...) and images
  given as paths (relative to an image folder), bytes or `{bytes, path}` structs.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasoner.data.records.files import jsonl_objects
from reasoner.data.records.problem import Problem, missing_images
from reasoner.errors import ReasonerError

logger = logging.getLogger(__name__)

# Fields of `Problem` a generic source can map a column onto; `image`/`images` hold pictures.
MAPPABLE_FIELDS = (
    "id", "question", "answer", "answer_type", "choices", "precision", "unit", "images", "caption", "reasoning",
)  # fmt: skip
_MATHVISTA_META = ("question_type", "query")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)$")


def has_images(problems: Sequence[Problem]) -> bool:
    """True when every problem's images can be loaded (embedded bytes or existing files)."""
    return not missing_images(problems)


# ------------------------------------------------------------------------------------------------ MathVista


def load_mathvista(
    data_dir: str | Path, *, split: str = "testmini", limit: int | None = None
) -> list[Problem]:
    """MathVista problems from the official `<split>.json` or the hub parquet export in `data_dir`.

    The official json references `images/<pid>.jpg` relative to `data_dir`; when that folder is absent the
    problems still load and `Problem.load_images()` fails naming the pid and the missing path.
    `metadata` holds MathVista's metadata plus `question_type` and `query` (the official query text).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ReasonerError(f"MathVista data folder {data_dir} not found")
    official = data_dir / f"{split}.json"
    if official.is_file():
        problems = _mathvista_from_json(official, limit)
    else:
        parquet = _mathvista_parquet_files(data_dir, split)
        if not parquet:
            raise ReasonerError(
                f"{data_dir}: no MathVista data for split {split!r}: expected {split}.json (official) or "
                f"{split}-*.parquet / {split}.parquet (hub export)"
            )
        problems = _mathvista_from_parquet(parquet, limit)
    logger.info("loaded %d MathVista %s problems from %s", len(problems), split, data_dir)
    return problems


def _mathvista_from_json(path: Path, limit: int | None) -> list[Problem]:
    records = read_json(path)
    if not isinstance(records, dict):
        raise ReasonerError(f"{path}: expected an object keyed by pid, got {type(records).__name__}")
    query_path = path.with_name(f"{path.stem}_query.json")
    queries = read_json(query_path) if query_path.is_file() else {}
    problems = []
    for pid, record in list(records.items())[:limit]:
        where = f"{path}: pid {pid}"
        if not isinstance(record, dict):
            raise ReasonerError(f"{where}: expected an object, got {type(record).__name__}")
        row = dict(record)
        if pid in queries:
            row["query"] = queries[pid]
        image = row.get("image")
        images = [{"path": image}] if image else []
        problems.append(_mathvista_problem(row, images, where, base_dir=path.parent))
    return problems


def _mathvista_parquet_files(data_dir: Path, split: str) -> list[Path]:
    for pattern in (f"{split}-*.parquet", f"{split}.parquet", f"data/{split}-*.parquet"):
        files = sorted(data_dir.glob(pattern))
        if files:
            return files
    return []


def _mathvista_from_parquet(files: list[Path], limit: int | None) -> list[Problem]:
    problems: list[Problem] = []
    for path in files:
        for number, row in enumerate(_read_parquet_rows(path), start=1):
            if limit is not None and len(problems) >= limit:
                return problems
            decoded = row.get("decoded_image")
            if isinstance(decoded, dict) and decoded.get("bytes") is not None:
                images = [{"bytes": decoded["bytes"], "path": row.get("image")}]
            else:
                images = [{"path": row["image"]}] if row.get("image") else []
            problems.append(_mathvista_problem(row, images, f"{path}: row {number}", base_dir=path.parent))
    return problems


def _mathvista_problem(row: dict[str, Any], images: list[dict], where: str, base_dir: Path) -> Problem:
    metadata = row.get("metadata")
    if not isinstance(metadata, dict):
        raise ReasonerError(f"{where}: field 'metadata' must be an object, got {type(metadata).__name__}")
    metadata = dict(metadata)
    for key in _MATHVISTA_META:
        if row.get(key) is not None:
            metadata[key] = row[key]
    precision = row.get("precision")
    if isinstance(precision, float) and math.isnan(precision):
        precision = None
    record = {
        "id": str(row.get("pid")) if row.get("pid") is not None else None,
        "question": row.get("question"),
        "answer": row.get("answer"),
        "answer_type": row.get("answer_type"),
        "choices": row.get("choices") or None,
        "precision": precision,
        "unit": row.get("unit") or None,
        "images": images,
        "metadata": metadata,
    }
    return Problem.from_dict(record, where=where, base_dir=base_dir)


# ----------------------------------------------------------------------------------------------- Geometry3K


def load_geometry3k(source: str | Path, *, limit: int | None = None) -> list[Problem]:
    """Geometry3K from the hub parquet release: a parquet file, or a folder of `<split>-*.parquet` files.

    Columns: `images` (list of `{bytes, path}`), `problem` (text with an `<image>` marker), `answer`.
    Answers are integers, decimals or latex expressions (`2\\sqrt{3}`); decimals get their places as precision.
    """
    files = _parquet_files(source)
    problems: list[Problem] = []
    for path in files:
        split = path.stem.split("-")[0]
        for number, row in enumerate(_read_parquet_rows(path), start=1):
            if limit is not None and len(problems) >= limit:
                return problems
            where = f"{path}: row {number}"
            for column in ("problem", "answer"):
                if not isinstance(row.get(column), str):
                    raise ReasonerError(
                        f"{where}: column '{column}' must be a string, got {row.get(column)!r:.60}"
                    )
            answer = row["answer"].strip()
            answer_type, precision = infer_answer_type(answer)
            record = {
                "id": f"geometry3k-{split}-{number - 1}",
                "question": row["problem"].replace("<image>", "").strip(),
                "answer": answer,
                "answer_type": answer_type,
                "precision": precision,
                "images": _image_items(row.get("images"), where, "images"),
                "metadata": {"source": "Geometry3K", "split": split, "index": number - 1},
            }
            problems.append(Problem.from_dict(record, where=where, base_dir=path.parent))
    logger.info("loaded %d Geometry3K problems from %s", len(problems), source)
    return problems


def infer_answer_type(answer: str, choices: Sequence[str] | None = None) -> tuple[str, int | None]:
    """(answer_type, precision) guessed from an answer string: choice text, integer, decimal, list, expression."""
    text = answer.strip()
    if choices:
        return "text", None
    if _INT.match(text):
        return "integer", None
    if _FLOAT.match(text):
        return "float", len(text.split(".")[1])
    if text.startswith("[") and text.endswith("]"):
        return "list", None
    return "expression", None


# -------------------------------------------------------------------------------------------------- generic


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    """`["question=problem", ...]` -> `{"question": "problem"}`, checking the field names."""
    mapping = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise ReasonerError(f"--map {pair!r}: expected FIELD=COLUMN, e.g. question=problem")
        if field == "image":
            field = "images"
        if field not in MAPPABLE_FIELDS:
            raise ReasonerError(
                f"--map {pair!r}: unknown field {field!r}; allowed: {', '.join(MAPPABLE_FIELDS)}"
            )
        mapping[field] = column
    return mapping


def load_generic(
    source: str | Path,
    mapping: dict[str, str] | None = None,
    *,
    image_dir: str | Path | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """Problems from json (a list, or an object keyed by id) / jsonl / parquet, renaming columns by `mapping`.

    Unmapped fields take the column of the same name (`image` also serves `images`); columns no field uses go
    to `metadata`. Image paths are relative to `image_dir` (default: the source file's folder). A missing
    `answer_type` is inferred; an answer given as an option letter is turned into that choice's text.
    """
    path = Path(source)
    rows = _read_rows(path)[:limit]
    mapping = dict(mapping or {})
    base_dir = Path(image_dir) if image_dir is not None else path.parent
    if image_dir is not None and not base_dir.is_dir():
        raise ReasonerError(f"image folder {base_dir} not found")
    present = set().union(*rows) if rows else set()
    for name, column in mapping.items():  # a column no row has is a typo; one some rows lack is optional
        if rows and column not in present:
            raise ReasonerError(
                f"{path}: column {column!r} (mapped to {name}) not found; columns: {sorted(present)}"
            )
    problems = [
        _generic_problem(
            row, mapping, f"{path}: row {number}", base_dir, default_id=f"{path.stem}-{number - 1}"
        )
        for number, row in enumerate(rows, start=1)
    ]
    logger.info("loaded %d problems from %s", len(problems), path)
    return problems


def _generic_problem(
    row: dict[str, Any], mapping: dict[str, str], where: str, base_dir: Path, default_id: str
) -> Problem:
    columns = {name: mapping.get(name, name) for name in MAPPABLE_FIELDS}
    if "images" not in mapping and "images" not in row and "image" in row:
        columns["images"] = "image"
    record = {name: row.get(column) for name, column in columns.items()}
    record["id"] = str(record["id"]) if record["id"] is not None else default_id
    for name in ("question", "answer"):
        if record[name] is None:
            raise ReasonerError(f"{where}: field '{name}' is missing (map it with --map {name}=COLUMN)")
        record[name] = str(record[name])
    choices = record["choices"]
    if isinstance(choices, str):  # choices stored as JSON text
        choices = _json_text(choices, where, "choices")
    record["choices"] = [str(c) for c in choices] if choices else None
    record["answer"] = _letter_to_choice(record["answer"], record["choices"])
    if record["answer_type"] is None:
        record["answer_type"], inferred_precision = infer_answer_type(record["answer"], record["choices"])
        if record["precision"] is None:
            record["precision"] = inferred_precision
    record["images"] = _image_items(record["images"], where, columns["images"])
    used = set(columns.values())
    record["metadata"] = {k: v for k, v in row.items() if k not in used and _jsonable(v)}
    return Problem.from_dict(record, where=where, base_dir=base_dir)


def _letter_to_choice(answer: str, choices: list[str] | None) -> str:
    """Sources often store the option letter; our records store the choice text."""
    letter = answer.strip().strip("()").upper()
    if (
        choices
        and answer not in choices
        and len(letter) == 1
        and "A" <= letter < chr(ord("A") + len(choices))
    ):
        return choices[ord(letter) - ord("A")]
    return answer


def _image_items(value: Any, where: str, column: str) -> list[dict[str, Any]]:
    """Normalise an image cell (path, bytes, {bytes, path}, or a list of those) to `{bytes, path}` items."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append({"path": item})
        elif isinstance(item, (bytes, bytearray)):
            out.append({"bytes": bytes(item)})
        elif isinstance(item, dict) and (item.get("bytes") is not None or item.get("path")):
            out.append(
                {"bytes": item.get("bytes"), "path": item.get("path") if item.get("bytes") is None else None}
            )
        else:
            raise ReasonerError(
                f"{where}: column {column!r} holds {item!r:.60}; expected a path, bytes or {{bytes, path}}"
            )
    return out


# ------------------------------------------------------------------------------------------------- file io


def read_json(path: Path) -> Any:
    """A JSON file's content; a missing or malformed file raises ReasonerError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReasonerError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReasonerError(f"{path}: cannot read JSON: {err}") from None


def _json_text(text: str, where: str, field: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ReasonerError(
            f"{where}: field '{field}' is text that is not a JSON list: {text!r:.60}"
        ) from None


def _read_parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as err:
        raise ReasonerError(f"{path}: not a readable parquet file: {err}") from None


def _parquet_files(source: str | Path) -> list[Path]:
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.glob("*.parquet")) or sorted(path.glob("data/*.parquet"))
        if files:
            return files
        raise ReasonerError(f"{path}: no .parquet files in this folder (or its data/ folder)")
    raise ReasonerError(f"{path}: file or folder not found")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a json / jsonl / parquet file as dicts (a json object keyed by id becomes rows with `id`)."""
    if not path.is_file():
        raise ReasonerError(f"{path}: file not found")
    if path.suffix == ".parquet":
        return _read_parquet_rows(path)
    if path.suffix == ".jsonl":
        rows = [row for _, row in jsonl_objects(path)]
    elif path.suffix == ".json":
        data = read_json(path)
        if isinstance(data, dict):
            rows = [{"id": key, **value} if isinstance(value, dict) else value for key, value in data.items()]
        else:
            rows = data if isinstance(data, list) else [data]
    else:
        raise ReasonerError(f"{path}: unknown file type {path.suffix!r}; allowed: .json, .jsonl, .parquet")
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise ReasonerError(f"{path}: row {number}: expected an object, got {type(row).__name__}")
    return rows


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
