"""The configuration reference (docs/configuration.md), generated from the schema: every field of a run config with
its type, default, allowed values and what it does (the docstring-style comment under it).

    python -m reasoner.config.reference > docs/configuration.md     (or: make docs-reference)

tests/test_docs.py fails when the committed page differs from what this prints, so the page cannot drift from the
schema.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import sys
import textwrap
import typing
from typing import Any

from reasoner import registry
from reasoner.config import schema, stages
from reasoner.config.ranges import range_of
from reasoner.config.schema import RunConfig

SECTIONS = "sections"
HEADER = """# Configuration reference

Generated from the schema (`reasoner/config/schema.py`, `reasoner/config/stages.py`) by
`python -m reasoner.config.reference`; do not edit by hand (tests/test_docs.py checks it is current). The guide
with examples is [the configuration guide](configuration-guide.md). A config is YAML; any key can also be given on
the command line as `key=value` (`stages.grpo1.steps=3` names a stage by its name, `stages.0.lr=1e-4` by its index).
Every number outside its allowed range fails at load with its key path.
"""


def field_docs(cls: type) -> dict[str, str]:
    """The docstring-style comment under each field of a dataclass, by field name (from its source)."""
    source = textwrap.dedent(inspect.getsource(cls))
    body = ast.parse(source).body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def type_name(annotation: Any) -> str:
    """A field's type as a reader writes it in YAML terms (int, float, str, bool, list[str], enum names...)."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "str"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list[{type_name(args[0])}]"
    if origin is dict:
        return f"map of {type_name(args[1])}"
    return getattr(annotation, "__name__", str(annotation))


def allowed(cls: type, field: dataclasses.Field, annotation: Any) -> str:
    """What values a field takes: its range, its enum's values, or (a dataset's source) the registered names."""
    found = range_of(field)
    if found is not None:
        return found.describe(field.name)
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return " \\| ".join(member.value for member in candidate)
    if cls is schema.DatasetConfig and field.name == "source":
        return " \\| ".join(registry.names())
    if cls is schema.ModelConfig and field.name in ("tiny_size", "tiny_family"):
        return " \\| ".join(schema.TINY_SIZES if field.name == "tiny_size" else schema.TINY_FAMILIES)
    return ""


def default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
        if isinstance(value, enum.Enum):
            value = value.value
        if isinstance(value, bool):
            return f"`{str(value).lower()}`"  # as YAML writes it
        return "required" if value == "???" else "null" if value is None else f"`{value}`"
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = field.default_factory()  # type: ignore[misc]
        return "(section)" if dataclasses.is_dataclass(value) else f"`{value}`"
    return "required"


def nested(annotation: Any) -> tuple[type | None, str]:
    """The dataclass inside a field's type and how its keys continue (`.`, `.<name>.`, `[].`)."""
    if dataclasses.is_dataclass(annotation):
        return annotation, "."
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and dataclasses.is_dataclass(args[1]):
        return args[1], ".<name>."
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        return args[0], "[]."
    return None, ""


def sections(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, type]]:
    """Every section of a run config, depth first: (key prefix, dataclass)."""
    found = [(prefix, cls)]
    hints = typing.get_type_hints(cls, vars(schema) | vars(stages))
    for field in dataclasses.fields(cls):
        inner, joint = nested(hints[field.name])
        if inner is not None:
            found += sections(inner, f"{prefix}{field.name}{joint}")
    return found


def markdown() -> str:
    """The whole reference page."""
    lines = [HEADER]
    for prefix, cls in sections():
        hints = typing.get_type_hints(cls, vars(schema) | vars(stages))
        docs = field_docs(cls)
        title = prefix.rstrip(".") or "run (top level)"
        lines += [f"## `{title}`", ""]
        if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
            lines += [" ".join(cls.__doc__.split()), ""]
        lines += ["| key | type | default | allowed | what it does |", "|---|---|---|---|---|"]
        for field in dataclasses.fields(cls):
            annotation = hints[field.name]
            if nested(annotation)[0] is not None:
                text = f"see [`{prefix}{field.name}`](#{_anchor(prefix + field.name + nested(annotation)[1])})"
                lines.append(f"| `{prefix}{field.name}` | section | | | {docs.get(field.name, '')} {text} |")
                continue
            cells = [f"`{prefix}{field.name}`", type_name(annotation), default(field),
                     allowed(cls, field, annotation), docs.get(field.name, "").replace("|", "\\|")]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _anchor(title: str) -> str:
    """The heading id MkDocs gives `## `title``: lower case, punctuation dropped, spaces to hyphens."""
    title = title.rstrip(".")
    return "".join(c for c in title.lower() if c.isalnum() or c in "-_ ").replace(" ", "-")


if __name__ == "__main__":
    sys.stdout.write(markdown())
