"""Problem files: JSONL and parquet, read with validation and written atomically (`reasoner.atomic`).

On disk:
- JSONL: one `Problem.to_dict()` per line; embedded images as `{"bytes": "<base64>"}`, others as `{"path": p}`.
- parquet: one row per problem; `images` is a list of `{bytes: binary, path: string}` structs (the layout the
  Hugging Face `Image` feature and verl use), `metadata` a JSON string (its values are heterogeneous).
Relative image paths are relative to the data file's folder and are resolved when the image is loaded.
Both writers are atomic (`reasoner.atomic`), so a partial file never looks finished.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from reasoner import atomic
from reasoner.data.records.problem import Problem, json_object
from reasoner.errors import ReasonerError


def _metadata_json(problem: Problem) -> str:
    try:
        return json.dumps(problem.metadata, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise ReasonerError(f"problem {problem.id}: metadata is not JSON-serialisable: {err}") from None


def write_jsonl(problems: Iterable[Problem], path: str | Path) -> Path:
    """Write problems as JSONL (images embedded as base64 or referenced by path), atomically."""
    path = Path(path)

    def rows() -> Iterable[dict[str, Any]]:
        for problem in problems:
            _metadata_json(problem)
            yield problem.to_dict(out_dir=path.parent)

    return atomic.write_jsonl(path, rows())


def jsonl_objects(path: str | Path) -> Iterator[tuple[str, dict]]:
    """(where, object) for each non-blank line of a JSONL file; `where` ("FILE: line N") names it in errors.
    A line that is not a JSON object raises ReasonerError naming the file and line."""
    path = _existing(path)
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {line_number}"
            yield where, json_object(line, where)


def read_jsonl(path: str | Path) -> list[Problem]:
    """Read and validate a JSONL file of problems; errors name the file, the line and the field."""
    path = _existing(path)
    problems = [Problem.from_dict(row, where=where, base_dir=path.parent) for where, row in jsonl_objects(path)]
    _check_unique_ids(problems, path)
    return problems


def parquet_schema() -> Any:
    """The arrow schema of a problems parquet file."""
    import pyarrow as pa

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    return pa.schema(
        [
            ("id", pa.string()),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("answer_type", pa.string()),
            ("choices", pa.list_(pa.string())),
            ("precision", pa.int64()),
            ("unit", pa.string()),
            ("images", pa.list_(image)),
            ("metadata", pa.string()),
            ("caption", pa.string()),
            ("reasoning", pa.string()),
        ]
    )


def write_parquet(problems: Iterable[Problem], path: str | Path) -> Path:
    """Write problems as parquet (images as binary bytes or path strings, metadata as JSON), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    rows = []
    for problem in problems:
        row = problem.to_dict(binary=True, out_dir=path.parent)
        row["metadata"] = _metadata_json(problem)
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=parquet_schema())
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_parquet(path: str | Path) -> list[Problem]:
    """Read and validate a problems parquet file; errors name the file, the row (1-based) and the field."""
    import pyarrow.parquet as pq

    path = _existing(path)
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as err:
        raise ReasonerError(f"{path}: not a readable parquet file: {err}") from None
    problems = [
        Problem.from_dict(row, where=f"{path}: row {number}", base_dir=path.parent)
        for number, row in enumerate(rows, start=1)
    ]
    _check_unique_ids(problems, path)
    return problems


def write_problems(problems: Iterable[Problem], path: str | Path) -> Path:
    """Write `.jsonl` or `.parquet`, chosen by the file suffix."""
    suffix = Path(path).suffix
    if suffix == ".jsonl":
        return write_jsonl(problems, path)
    if suffix == ".parquet":
        return write_parquet(problems, path)
    raise ReasonerError(f"{path}: unknown problems file suffix {suffix!r}; allowed: .jsonl, .parquet")


def read_problems(path: str | Path) -> list[Problem]:
    """Read `.jsonl` or `.parquet`, chosen by the file suffix."""
    suffix = Path(path).suffix
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".parquet":
        return read_parquet(path)
    raise ReasonerError(f"{path}: unknown problems file suffix {suffix!r}; allowed: .jsonl, .parquet")


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ReasonerError(f"{path}: file not found")
    return path


def _check_unique_ids(problems: Sequence[Problem], path: Path) -> None:
    seen: dict[str, int] = {}
    for number, problem in enumerate(problems, start=1):
        if problem.id in seen:
            raise ReasonerError(
                f"{path}: field 'id' {problem.id!r} appears twice (records {seen[problem.id]} and {number})"
            )
        seen[problem.id] = number
