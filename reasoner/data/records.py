"""The `Problem` record every stage reads and writes, and its JSONL / parquet IO.

A problem is one image-grounded question with a verifiable answer. `answer` is always a string; for multiple
choice it is the choice TEXT (as MathVista stores it), and the prompt asks the model for the option letter.

On disk:
- JSONL: one `Problem.to_dict()` per line; embedded images as `{"bytes": "<base64>"}`, others as `{"path": p}`.
- parquet: one row per problem; `images` is a list of `{bytes: binary, path: string}` structs (the layout the
  Hugging Face `Image` feature and verl use), `metadata` a JSON string (its values are heterogeneous).
Relative image paths are relative to the data file's folder and are resolved when the image is loaded.
Both writers are atomic (`reasoner.atomic`), so a partial file never looks finished.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from reasoner import atomic
from reasoner.errors import ReasonerError
from reasoner.prompts import LETTERS

ANSWER_TYPES = ("text", "integer", "float", "list", "expression")
"""`text`: multiple choice (answer is a choice text); the others are free-form."""

_FIELDS = (
    "id", "question", "answer", "answer_type", "choices", "precision", "unit", "images", "metadata", "caption",
    "reasoning",
)  # fmt: skip
_REQUIRED = ("id", "question", "answer", "answer_type")


@dataclass
class ImageRef:
    """One image of a problem: embedded encoded bytes (PNG/JPEG...) or a path to an image file.

    `base_dir` (where a relative `path` is resolved) and `owner` (the problem id, for error messages) are set
    by the reader and by `Problem`; they are not part of the record and do not take part in equality.
    """

    data: bytes | None = None
    path: str | None = None
    base_dir: str | None = field(default=None, compare=False, repr=False)
    owner: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.data is None and not self.path:
            raise ReasonerError(f"problem {self.owner or '?'}: an image needs bytes or a path, got neither")

    @classmethod
    def from_image(cls, image: Image.Image, *, format: str = "PNG") -> ImageRef:
        """Embed a PIL image as encoded bytes (PNG by default: lossless and deterministic)."""
        buffer = io.BytesIO()
        image.save(buffer, format=format)
        return cls(data=buffer.getvalue())

    def resolved_path(self) -> Path | None:
        """The absolute file path of a path reference (None for embedded images)."""
        if not self.path:
            return None
        path = Path(self.path)
        if not path.is_absolute() and self.base_dir:
            path = Path(self.base_dir) / path
        return path

    def is_available(self) -> bool:
        """True when the pixels can be had without reading them: bytes embedded or the file exists."""
        if self.data is not None:
            return True
        path = self.resolved_path()
        return path is not None and path.is_file()

    def load(self) -> Image.Image:
        """Decode the image as RGB; a missing or corrupt image raises ReasonerError naming the problem and path."""
        where = f"problem {self.owner or '?'}: image " + (
            f"{self.resolved_path()}" if self.data is None else f"({len(self.data)} embedded bytes)"
        )
        try:
            if self.data is not None:
                source: Any = io.BytesIO(self.data)
            else:
                source = self.resolved_path()
            with Image.open(source) as image:
                return image.convert("RGB")
        except FileNotFoundError:
            raise ReasonerError(f"{where} is missing") from None
        except Image.DecompressionBombError as err:
            raise ReasonerError(f"{where} is too large to decode safely ({err}); downscale it or drop it") from None
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise ReasonerError(f"{where} cannot be decoded: {err}") from None

    def sha256(self) -> str:
        """Hash of the encoded bytes (or of the path string for path references): used for deduplication."""
        return hashlib.sha256(self.data if self.data is not None else str(self.path).encode()).hexdigest()

    def to_dict(self, *, binary: bool = False, out_dir: Path | None = None) -> dict[str, Any]:
        """`{"bytes": ..., "path": ...}`; bytes as base64 text unless `binary`.

        A relative path is kept as written when the record stays beside its images; written elsewhere
        (`out_dir` differs from `base_dir`) it becomes absolute so it still points at the same file.
        """
        data: Any = self.data
        if data is not None and not binary:
            data = base64.b64encode(data).decode("ascii")
        path = self.path
        if path and not Path(path).is_absolute() and self.base_dir and out_dir is not None:
            if Path(self.base_dir).resolve() != out_dir.resolve():
                path = str(self.resolved_path().resolve())
        return {"bytes": data, "path": path}


@dataclass
class Problem:
    """One question about one or more images, with a verifiable answer and optional reference reasoning."""

    id: str
    question: str
    answer: str
    answer_type: str
    choices: list[str] | None = None
    precision: int | None = None
    unit: str | None = None
    images: list[ImageRef] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    caption: str | None = None
    reasoning: str | None = None

    def __post_init__(self) -> None:
        for image in self.images:
            image.owner = self.id

    @property
    def is_multiple_choice(self) -> bool:
        return bool(self.choices)

    def answer_label(self) -> str:
        """The answer as the model writes it inside <answer>: the option letter for multiple choice."""
        if self.choices:
            return LETTERS[self.choices.index(self.answer)]
        return self.answer

    def images_available(self) -> bool:
        """True when every image's pixels can be had (embedded, or the file exists)."""
        return all(image.is_available() for image in self.images)

    def load_images(self) -> list[Image.Image]:
        """All images decoded as RGB (ReasonerError naming this problem's id and the path when one fails)."""
        return [image.load() for image in self.images]

    def to_dict(self, *, binary: bool = False, out_dir: Path | None = None) -> dict[str, Any]:
        """A JSON-ready dict (image bytes as base64) or, with `binary`, a parquet-ready one (raw bytes)."""
        row = {name: getattr(self, name) for name in _FIELDS}
        row["choices"] = list(self.choices) if self.choices is not None else None
        row["images"] = [image.to_dict(binary=binary, out_dir=out_dir) for image in self.images]
        row["metadata"] = dict(self.metadata)
        return row

    @classmethod
    def from_dict(
        cls, row: dict[str, Any], *, where: str = "", base_dir: str | Path | None = None
    ) -> Problem:
        """Build and validate a problem; errors name `where` (file and row) and the field."""
        where = where or "record"
        unknown = sorted(set(row) - set(_FIELDS))
        if unknown:
            raise ReasonerError(f"{where}: unknown field(s) {unknown}; allowed: {', '.join(_FIELDS)}")
        for name in _REQUIRED:
            if row.get(name) is None:
                raise ReasonerError(f"{where}: field '{name}' is missing")
        text = {name: _check_str(row, name, where) for name in ("id", "question", "answer")}
        answer_type = _check_str(row, "answer_type", where)
        if answer_type not in ANSWER_TYPES:
            raise ReasonerError(
                f"{where}: field 'answer_type' is {answer_type!r}; allowed: {', '.join(ANSWER_TYPES)}"
            )
        choices = _check_choices(row.get("choices"), where)
        if answer_type == "text" and choices and text["answer"] not in choices:
            raise ReasonerError(
                f"{where}: field 'answer' {text['answer']!r} is not one of the choices {choices}"
            )
        return cls(
            **text,
            answer_type=answer_type,
            choices=choices,
            precision=_check_precision(row.get("precision"), where),
            unit=_check_optional_str(row, "unit", where),
            images=_check_images(row.get("images"), where, base_dir),
            metadata=_check_metadata(row.get("metadata"), where),
            caption=_check_optional_str(row, "caption", where),
            reasoning=_check_optional_str(row, "reasoning", where),
        )


def _check_str(row: dict[str, Any], name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise ReasonerError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    if name == "id" and not value:
        raise ReasonerError(f"{where}: field 'id' is empty")
    return value


def _check_optional_str(row: dict[str, Any], name: str, where: str) -> str | None:
    return None if row.get(name) is None else _check_str(row, name, where)


def _check_choices(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
        raise ReasonerError(f"{where}: field 'choices' must be a list of strings or null, got {value!r:.80}")
    return list(value)


def _check_precision(value: Any, where: str) -> int | None:
    if value is None:
        return None
    # MathVista's hub export stores precision as a float (1.0); anything integral is accepted.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise ReasonerError(
            f"{where}: field 'precision' must be a non-negative integer or null, got {value!r}"
        )
    return int(value)


def _check_images(value: Any, where: str, base_dir: str | Path | None) -> list[ImageRef]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ReasonerError(f"{where}: field 'images' must be a list, got {type(value).__name__}")
    images = []
    for index, item in enumerate(value):
        label = f"{where}: field 'images[{index}]'"
        if not isinstance(item, dict) or not set(item) <= {"bytes", "path"}:
            raise ReasonerError(f"{label} must be an object with 'bytes' and/or 'path', got {item!r:.80}")
        data, path = item.get("bytes"), item.get("path")
        if isinstance(data, str):
            try:
                data = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise ReasonerError(f"{label}.bytes is not valid base64") from None
        if data is not None and not isinstance(data, bytes):
            raise ReasonerError(f"{label}.bytes must be bytes or base64 text, got {type(data).__name__}")
        if path is not None and not isinstance(path, str):
            raise ReasonerError(f"{label}.path must be a string, got {type(path).__name__}")
        if data is None and not path:
            raise ReasonerError(f"{label} has neither bytes nor a path")
        images.append(ImageRef(data=data, path=path, base_dir=str(base_dir) if base_dir else None))
    return images


def _check_metadata(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):  # parquet stores metadata as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ReasonerError(f"{where}: field 'metadata' is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ReasonerError(f"{where}: field 'metadata' must be an object, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------------------- files


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
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ReasonerError(f"{where}: not valid JSON: {err}") from None
            if not isinstance(row, dict):
                raise ReasonerError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row


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


def missing_images(problems: Sequence[Problem]) -> list[str]:
    """Ids of problems with at least one image that cannot be had (no bytes, file absent)."""
    return [problem.id for problem in problems if not problem.images_available()]


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
