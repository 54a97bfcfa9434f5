"""ARO and What'sUp in their released forms, turned into perception items (`reasoner.data.worlds.perception`).

    reasoner data import --format aro-relation visual_genome_relation.json OUT.jsonl --image-dir ARO/images

Formats (`--format`), the released file each reads, and how its captions become options:

| format          | released file (repository)                                   | family    | options                             |
|-----------------|--------------------------------------------------------------|-----------|-------------------------------------|
| aro-relation    | visual_genome_relation.json (mertyg/vision-language-models-are-bows) | relation | true_caption, false_caption |
| aro-attribution | visual_genome_attribution.json (same)                        | attribution | true_caption, false_caption       |
| coco-order      | coco_karpathy_test.json (the Karpathy split ARO reads)       | order     | each caption + its 4 ARO shuffles   |
| flickr-order    | flickr30k_test.json (same)                                   | order     | each caption + its 4 ARO shuffles   |
| whatsup         | controlled_images_dataset.json / controlled_clevr_dataset.json (amitakamath/whatsup_vlms) | spatial | caption_options (the first is true) |
| whatsup-pairs   | coco_qa_{one,two}_obj.json / vg_qa_{one,two}_obj.json (same) | spatial   | [image id, true caption, false caption] rows |

Conversion to the generative form: the options are shuffled with a seed made of the item's id (the released files
put the true caption first or last; a fixed position would give the answer away when asked for a letter), the
question is "Pick the best caption for this image from the below options.", and the answer is the true caption's
text. VG-Relation/-Attribution images are cropped to the item's `bbox_x/y/w/h` (as ARO does) and embedded (JPEG,
quality 95); the other sets reference their image files. Order items: one item per caption (5 per image), every
option shown lower-cased without punctuation (ARO's `pre_caption` does the same), shuffles made by
`perception.order_negatives` (a closed-class word list instead of ARO's spaCy tagger, so single shuffles differ
from ARO's, not their kind). Image paths are resolved under `--image-dir` (default: the data file's folder): the
path as written, else its file name (What'sUp's files write `data/controlled_images/<name>.jpeg`);
`whatsup-pairs` ids become `<id>.jpg`, or `<12-digit id>.jpg` for COCO's val2017.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from reasoner.data.records.problem import ImageRef, Problem
from reasoner.data.sets.sources import read_json
from reasoner.data.worlds.perception import caption_problem, order_negatives, plain_caption
from reasoner.errors import ReasonerError


def _rows(path: Path) -> list[Any]:
    data = read_json(path)
    if not isinstance(data, list):
        raise ReasonerError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    return data


def _field(row: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(row, dict):
        raise ReasonerError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if key not in row:
        raise ReasonerError(f"{where}: key {key!r} is missing; present: {', '.join(sorted(row)) or 'none'}")
    if not isinstance(row[key], kind):
        raise ReasonerError(f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}, got {row[key]!r}")
    return row[key]


def _image_path(image_dir: Path, written: str, where: str, *candidates: str) -> Path:
    """The image file: the path as written under `image_dir`, else its file name there (or a candidate name)."""
    tried = [image_dir / written, image_dir / Path(written).name, *(image_dir / c for c in candidates)]
    for path in tried:
        if path.is_file():
            return path.resolve()
    raise ReasonerError(f"{where}: image not found; tried {', '.join(map(str, dict.fromkeys(tried)))}")


def _crop(path: Path, row: dict, where: str) -> ImageRef:
    box = [_field(row, k, where, (int, float)) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")]
    try:
        with Image.open(path) as image:
            crop = image.convert("RGB").crop((box[0], box[1], box[0] + box[2], box[1] + box[3]))
    except (UnidentifiedImageError, OSError) as err:
        raise ReasonerError(f"{where}: image {path} cannot be decoded: {err}") from None
    return ImageRef.from_image(crop, format="JPEG")


def _vg(family: str, key: str) -> Callable[[list, Path, str], Iterator[Problem]]:
    def load(rows: list, image_dir: Path, fmt: str) -> Iterator[Problem]:
        for i, row in enumerate(rows):
            where, pid = f"{fmt} item {i}", f"{fmt}-{i}"
            image = _crop(_image_path(image_dir, _field(row, "image_path", where, str), where), row, where)
            yield caption_problem(
                pid, image, _field(row, "true_caption", where, str), [_field(row, "false_caption", where, str)],
                family, source=fmt, rng=random.Random(pid), metadata={key: row.get(key)},
            )  # fmt: skip

    return load


def _order(rows: list, image_dir: Path, fmt: str) -> Iterator[Problem]:
    for i, row in enumerate(rows):
        where = f"{fmt} image {i}"
        path = _image_path(image_dir, _field(row, "image", where, str), where)
        for j, caption in enumerate(_field(row, "caption", where, list)):
            pid = f"{fmt}-{i}-{j}"
            rng = random.Random(pid)
            yield caption_problem(
                pid, ImageRef(path=str(path)), plain_caption(str(caption)), order_negatives(str(caption), rng),
                "order", source=fmt, rng=rng, metadata={"image": row["image"]},
            )  # fmt: skip


def _whatsup(rows: list, image_dir: Path, fmt: str) -> Iterator[Problem]:
    for i, row in enumerate(rows):
        where, pid = f"{fmt} item {i}", f"{fmt}-{i}"
        options = _field(row, "caption_options", where, list)
        if len(options) < 2:
            raise ReasonerError(f"{where}: 'caption_options' needs the true caption and at least one negative")
        path = _image_path(image_dir, _field(row, "image_path", where, str), where)
        yield caption_problem(
            pid, ImageRef(path=str(path)), str(options[0]), [str(o) for o in options[1:]], "spatial", source=fmt,
            rng=random.Random(pid), metadata={"image": row["image_path"]},
        )  # fmt: skip


def _whatsup_pairs(rows: list, image_dir: Path, fmt: str) -> Iterator[Problem]:
    for i, row in enumerate(rows):
        where, pid = f"{fmt} item {i}", f"{fmt}-{i}"
        if not (isinstance(row, list) and len(row) == 3):
            raise ReasonerError(f"{where}: expected [image_id, true_caption, false_caption], got {row!r}")
        image_id, true, false = row
        padded = f"{int(image_id):012d}.jpg" if str(image_id).isdigit() else f"{image_id}.jpg"
        path = _image_path(image_dir, f"{image_id}.jpg", where, padded)
        yield caption_problem(
            pid, ImageRef(path=str(path)), str(true), [str(false)], "spatial", source=fmt, rng=random.Random(pid),
            metadata={"image": str(image_id)},
        )  # fmt: skip


FORMATS: dict[str, Callable[[list, Path, str], Iterator[Problem]]] = {
    "aro-relation": _vg("relation", "relation_name"),
    "aro-attribution": _vg("attribution", "attributes"),
    "coco-order": _order,
    "flickr-order": _order,
    "whatsup": _whatsup,
    "whatsup-pairs": _whatsup_pairs,
}


def load_perception_file(
    fmt: str, source: str | Path, *, image_dir: str | Path | None = None, limit: int | None = None
) -> list[Problem]:
    """Perception items of one released ARO / What'sUp file (see the module docstring for the formats)."""
    if fmt not in FORMATS:
        raise ReasonerError(f"perception format {fmt!r} is not allowed; allowed: {', '.join(FORMATS)}")
    path = Path(source)
    if not path.is_file():
        raise ReasonerError(f"{path}: {fmt} file not found")
    folder = Path(image_dir) if image_dir else path.parent
    if not folder.is_dir():
        raise ReasonerError(f"{folder}: image folder not found (--image-dir)")
    problems = []
    for problem in FORMATS[fmt](_rows(path), folder, fmt):
        if limit and len(problems) >= limit:
            break
        problems.append(problem)
    if not problems:
        raise ReasonerError(f"{path}: no {fmt} items")
    return problems
