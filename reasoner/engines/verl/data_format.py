"""Problems -> the parquet files verl 0.9.1 trains on: RL rows for GRPO (`RLHFDataset`) and chat rows for SFT
(`MultiTurnSFTDataset`).

RL row (one per problem):

    data_source   the dataset name (verl groups validation metrics by it)
    prompt        [{"role": "user", "content": "<image>...<image>" + rendered prompt}]
    images        [{"bytes": encoded image, "max_pixels": int, "min_pixels": int}, ...]
    ability       "math"
    reward_model  {"style": "rule", "ground_truth": answer}
    extra_info    {"index", "id"} + `reasoner.data.records.scoring.scorer_arguments` (answer_type, choices, precision, unit,
                  question), which rewards/verl.py hands to `rewards.score`; a new scorer argument also needs a
                  column below

SFT row: `messages` = the same user turn + {"role": "assistant", "content": target}, and the same `images`.

DPO rows (`reasoner.engines.verl.dpo.PairDataset`): two SFT rows per pair, the chosen response then the rejected
one, consecutive, each with `ref_logp` (the reference's summed response log-prob; null before it is computed).

The prompt text is rendered by `reasoner.prompts` exactly as the local engine renders it (images first, then the
text), so both engines train and evaluate on the same prompt. verl turns each `<image>` into one image part and
asserts that their count equals the number of images, so the text holds exactly one `<image>` per image: a
literal `<image>` / `<video>` inside a question would shift that count and is removed (with a warning).
`max_pixels` / `min_pixels` ride on each image because verl's vision preprocessing (qwen_vl_utils.fetch_image)
reads them per image; that is where `cluster.max_image_pixels` takes effect.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner.atomic import atomic_path
from reasoner.data.records.problem import ImageRef, Problem
from reasoner.data.records.scoring import scorer_arguments
from reasoner.errors import ReasonerError
from reasoner.prompts import Template, shown_images

log = logging.getLogger(__name__)

IMAGE_PLACEHOLDER = "<image>"
_PLACEHOLDERS = re.compile(r"<image>|<video>|<audio>")


@dataclass(frozen=True)
class ImageLimits:
    """Pixel bounds verl's vision preprocessing applies to each image (None = the processor's default)."""

    max_pixels: int | None = None
    min_pixels: int | None = None


def user_content(problem: Problem, template: Template) -> str:
    """The user turn as verl reads it: one `<image>` per image, then the rendered prompt text."""
    cleaned, removed = _PLACEHOLDERS.subn("", template.prompt(problem))
    if removed:
        log.warning(
            "problem %s: removed %d literal <image>/<video>/<audio> marker(s) from the prompt text "
            "(verl reads each as a media slot)",
            problem.id,
            removed,
        )
    return IMAGE_PLACEHOLDER * len(shown_images(problem, template)) + cleaned


def image_entries(problem: Problem, template: Template, limits: ImageLimits) -> list[dict[str, Any]]:
    """The images the prompt shows as embedded encoded bytes (files are read now, so every node sees the pixels)."""
    return [
        {
            "bytes": _image_bytes(image, problem.id),
            "max_pixels": limits.max_pixels,
            "min_pixels": limits.min_pixels,
        }
        for image in shown_images(problem, template)
    ]


def _image_bytes(image: ImageRef, problem_id: str) -> bytes:
    if image.data is not None:
        return image.data
    path = image.resolved_path()
    if path is None or not path.is_file():
        raise ReasonerError(f"problem {problem_id}: image file {path} is missing")
    return path.read_bytes()


def rl_row(
    problem: Problem, index: int, template: Template, *, data_source: str, limits: ImageLimits
) -> dict:
    """One RLHFDataset row for a problem (see the module docstring)."""
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": user_content(problem, template)}],
        "images": image_entries(problem, template, limits),
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": problem.answer},
        "extra_info": {"index": index, "id": problem.id, **scorer_arguments(problem)},
    }


def sft_row(problem: Problem, target: str, template: Template, *, limits: ImageLimits) -> dict:
    """One MultiTurnSFTDataset row: the user turn and the assistant target (the only turn with loss)."""
    return {
        "id": problem.id,
        "messages": [
            {"role": "user", "content": user_content(problem, template)},
            {"role": "assistant", "content": target},
        ],
        "images": image_entries(problem, template, limits),
    }


def _schemas() -> dict[str, Any]:
    import pyarrow as pa

    image = pa.struct([("bytes", pa.binary()), ("max_pixels", pa.int64()), ("min_pixels", pa.int64())])
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    extra = pa.struct([
        ("index", pa.int64()), ("id", pa.string()), ("answer_type", pa.string()),
        ("choices", pa.list_(pa.string())), ("precision", pa.int64()), ("unit", pa.string()),
        ("question", pa.string()),
    ])  # fmt: skip
    rl = pa.schema([
        ("data_source", pa.string()), ("prompt", pa.list_(message)), ("images", pa.list_(image)),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", extra),
    ])  # fmt: skip
    sft = pa.schema([("id", pa.string()), ("messages", pa.list_(message)), ("images", pa.list_(image))])
    pairs = pa.schema([*sft, ("ref_logp", pa.float64())])
    return {"rl": rl, "sft": sft, "pairs": pairs}


def _write(rows: list[dict], schema: Any, path: Path, what: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        raise ReasonerError(f"{path}: no {what} rows to write (the stage's data is empty)")
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    return path


def write_rl_parquet(
    problems: Sequence[Problem],
    path: str | Path,
    template: Template,
    *,
    data_source: str,
    limits: ImageLimits = ImageLimits(),
) -> Path:
    """Write GRPO problems as a verl RL parquet file (atomically); returns its path."""
    rows = [rl_row(p, i, template, data_source=data_source, limits=limits) for i, p in enumerate(problems)]
    return _write(rows, _schemas()["rl"], Path(path), "RL")


def write_sft_parquet(
    examples: Iterable[tuple[Problem, str, Template]],
    path: str | Path,
    *,
    limits: ImageLimits = ImageLimits(),
) -> Path:
    """Write (problem, assistant target, its prompt template) as a verl multi-turn SFT parquet file (atomically)."""
    rows = [sft_row(problem, target, template, limits=limits) for problem, target, template in examples]
    return _write(rows, _schemas()["sft"], Path(path), "SFT")


def write_pair_parquet(
    pairs: Sequence[tuple[Problem, str, str]],
    path: str | Path,
    template: Template,
    *,
    limits: ImageLimits = ImageLimits(),
    refs: Sequence[tuple[float, float]] | None = None,
) -> Path:
    """Write (problem, chosen, rejected) pairs as consecutive SFT rows, chosen first, with each row's reference
    log-prob from `refs` (one (chosen, rejected) per pair; null without them)."""
    rows = []
    for i, (problem, chosen, rejected) in enumerate(pairs):
        for j, response in enumerate((chosen, rejected)):
            row = sft_row(problem, response, template, limits=limits)
            rows.append({**row, "ref_logp": None if refs is None else float(refs[i][j])})
    return _write(rows, _schemas()["pairs"], Path(path), "DPO pair")
