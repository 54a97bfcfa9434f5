"""The `Problem` record every stage reads and writes (its files: `reasoner.data.records.files`).

A problem is one image-grounded question with a verifiable answer. `answer` is always a string; for multiple
choice it is the choice TEXT (as MathVista stores it), and the prompt asks the model for the option letter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

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
        return json_object(value, f"{where}: field 'metadata'")
    if not isinstance(value, dict):
        raise ReasonerError(f"{where}: field 'metadata' must be an object, got {type(value).__name__}")
    return value


def json_object(text: str, where: str) -> dict[str, Any]:
    """`text` parsed as one JSON object; invalid JSON or another kind of value raises ReasonerError naming `where`
    (a file and line, a field)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ReasonerError(f"{where}: not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ReasonerError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def missing_images(problems: Sequence[Problem]) -> list[str]:
    """Ids of problems with at least one image that cannot be had (no bytes, file absent)."""
    return [problem.id for problem in problems if not problem.images_available()]
