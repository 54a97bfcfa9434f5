"""The compositional perception world: rendered scenes of coloured shapes, asked as caption choices or counts.

Each family (`reasoner.data.worlds.perception.FAMILIES`) asks about a scene of two named objects (a `colour shape`,
the two differing in both), in one row (left of / right of) or one column (above / below), plus distractors
whose colour and shape both differ from the named objects' (so every caption below stays true or false):

| family      | true caption (example)                    | hard negatives                              | hard positive (twin item)              |
|-------------|-------------------------------------------|---------------------------------------------|----------------------------------------|
| relation    | the red square is left of the blue circle  | the blue circle is left of the red square    | the blue circle is right of the red square |
| attribution | the red square and the blue circle         | the blue square and the red circle           | the blue circle and the red square     |
| order       | the red square is left of the blue circle  | ARO's four word-order shuffles of it         | the blue circle is right of the red square |
| spatial     | the red square is left of the blue circle  | ... is right of / above / below ...          | the blue circle is right of the red square (with its 3 wrong prepositions) |
| negation    | a square that is not blue                  | a square that is not red                     | a square that is red                   |
| counting    | "How many red shapes ...? Give a number from 1 to 4." (free-form)                                                          |

Phrasings (which object is the subject, which of a relation and its converse, conjunct order) are drawn at
random, so no wording alone tells a true caption from a false one. Levels: 1 = a 2x2 grid (4 visual tokens),
3 colours, square and triangle, no distractors, counts 1-4; 2 = 3x3, 4 colours, 3 shapes, up to 1 distractor,
counts 2-9; 3 = 4x4, 5 colours, 1-3 distractors, jittered and smaller shapes, counts 2-10 (the range "Scale can't
overcome pragmatics" states). Reference traces describe the scene, then name the option ("That is option B.").

Train and eval sets are disjoint by scene: a scene's split is fixed by the hash of its rendered image, so an
eval image is never seen in training, whatever the seeds or families.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reasoner.data.records.problem import Problem
from reasoner.data.worlds.base import CELL, LEVELS, count_aloud, plural
from reasoner.data.worlds.perception import (
    FAMILIES,
    caption_problem,
    count_problem,
    order_negatives,
    plain_caption,
)
from reasoner.data.worlds.worlds import render_shapes
from reasoner.errors import ReasonerError

SOURCE = "compose"
EVAL_SHARE = 0.2  # share of scenes that only evaluation sets draw from (as the other synthetic worlds)


@dataclass(frozen=True)
class ComposeLevel:
    """A grid x grid image, at most one shape per 28-px cell (one visual token)."""

    grid: int
    colours: tuple[str, ...]
    shapes: tuple[str, ...]
    distractors: tuple[int, int]  # how many, min and max
    size: tuple[int, int]  # shape side in px, min and max
    count_range: tuple[int, int]  # stated in counting questions
    centred: bool


LEVEL_SETTINGS = {
    1: ComposeLevel(2, ("red", "blue", "green"), ("square", "triangle"), (0, 0), (24, 24), (1, 4), True),
    2: ComposeLevel(3, ("red", "blue", "green", "orange"), ("square", "triangle", "circle"), (0, 1), (18, 24),
                    (2, 9), False),
    3: ComposeLevel(4, ("red", "blue", "green", "orange", "purple"), ("square", "triangle", "circle"), (1, 3),
                    (14, 22), (2, 10), False),
}  # fmt: skip
PREPOSITIONS = {"row": ("left of", "right of"), "column": ("above", "below")}
CONVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _place(rng: random.Random, cfg: ComposeLevel, cell: int, colour: str, shape: str) -> dict[str, Any]:
    size = rng.randint(*cfg.size)
    slack = CELL - size - 2  # >= 2 px between shapes of neighbouring cells
    dx, dy = (slack // 2, slack // 2) if cfg.centred else (rng.randint(0, slack), rng.randint(0, slack))
    row, col = divmod(cell, cfg.grid)
    return {"colour": colour, "shape": shape, "row": row + 1, "col": col + 1,
            "x": col * CELL + 1 + dx, "y": row * CELL + 1 + dy, "size": size}  # fmt: skip


def _pair_scene(rng: random.Random, cfg: ComposeLevel) -> dict[str, Any]:
    """Two named objects in one row or column (`first` left of / above `second`) plus distractors."""
    axis = rng.choice(("row", "column"))
    line = rng.randrange(cfg.grid)
    i, j = sorted(rng.sample(range(cfg.grid), 2))
    cells = [line * cfg.grid + i, line * cfg.grid + j] if axis == "row" else [i * cfg.grid + line, j * cfg.grid + line]
    colours, shapes = rng.sample(cfg.colours, 2), rng.sample(cfg.shapes, 2)
    named = [_place(rng, cfg, c, colour, shape) for c, colour, shape in zip(cells, colours, shapes, strict=True)]
    free = [c for c in range(cfg.grid**2) if c not in cells]
    other_colours = [c for c in cfg.colours if c not in colours]
    other_shapes = [s for s in cfg.shapes if s not in shapes]
    extra = [
        _place(rng, cfg, cell, rng.choice(other_colours), rng.choice(other_shapes))
        for cell in rng.sample(free, rng.randint(*cfg.distractors))
    ]
    return {"axis": axis, "first": named[0], "second": named[1], "shapes": named + extra}


def _name(obj: dict[str, Any]) -> str:
    return f"{obj['colour']} {obj['shape']}"


def _says(subject: dict, preposition: str, obj: dict) -> str:
    return f"the {_name(subject)} is {preposition} the {_name(obj)}"


def _true_relation(scene: dict[str, Any], rng: random.Random) -> tuple[dict, str, dict]:
    """(subject, preposition, object) of a true statement, in one of its two phrasings at random."""
    before = PREPOSITIONS[scene["axis"]][0]
    first, second = scene["first"], scene["second"]
    return (first, before, second) if rng.random() < 0.5 else (second, CONVERSE[before], first)


def _scene_trace(scene: dict[str, Any], positive: str) -> str:
    """The reference trace: the scene said one fixed way (first object first), then the option it makes true."""
    said = _says(scene["first"], PREPOSITIONS[scene["axis"]][0], scene["second"])
    return f"{said.capitalize()}." if said == positive else f"{said.capitalize()}, so {positive}."


def _relation_items(scene, rng, pid, kw) -> list[Problem]:
    subject, prep, obj = _true_relation(scene, rng)
    positive, negative = _says(subject, prep, obj), _says(obj, prep, subject)
    paraphrase = _says(obj, CONVERSE[prep], subject)
    return [
        caption_problem(pid, kw["image"], positive, [negative], "relation", rng=rng, pair=pid,
                        hard_positives=[paraphrase], reasoning=_scene_trace(scene, positive), **kw["common"]),
        caption_problem(f"{pid}-hp", kw["image"], paraphrase, [negative], "relation", rng=rng, pair=pid,
                        variant="hard_positive", reasoning=_scene_trace(scene, paraphrase), **kw["common"]),
    ]  # fmt: skip


def _spatial_items(scene, rng, pid, kw) -> list[Problem]:
    subject, prep, obj = _true_relation(scene, rng)
    options = [p for pair in PREPOSITIONS.values() for p in pair]
    positive, paraphrase = _says(subject, prep, obj), _says(obj, CONVERSE[prep], subject)
    return [
        caption_problem(pid, kw["image"], positive, [_says(subject, p, obj) for p in options if p != prep],
                        "spatial", rng=rng, pair=pid, hard_positives=[paraphrase],
                        reasoning=_scene_trace(scene, positive), **kw["common"]),
        caption_problem(f"{pid}-hp", kw["image"], paraphrase,
                        [_says(obj, p, subject) for p in options if p != CONVERSE[prep]], "spatial", rng=rng,
                        pair=pid, variant="hard_positive", reasoning=_scene_trace(scene, paraphrase),
                        **kw["common"]),
    ]  # fmt: skip


def _attribution_items(scene, rng, pid, kw) -> list[Problem]:
    a, b = rng.sample([scene["first"], scene["second"]], 2)
    positive = f"the {_name(a)} and the {_name(b)}"
    negative = f"the {b['colour']} {a['shape']} and the {a['colour']} {b['shape']}"
    paraphrase = f"the {_name(b)} and the {_name(a)}"
    trace = f"The {a['shape']} is {a['colour']} and the {b['shape']} is {b['colour']}."
    return [
        caption_problem(pid, kw["image"], positive, [negative], "attribution", rng=rng, pair=pid,
                        hard_positives=[paraphrase], reasoning=trace, **kw["common"]),
        caption_problem(f"{pid}-hp", kw["image"], paraphrase, [negative], "attribution", rng=rng, pair=pid,
                        variant="hard_positive", reasoning=trace, **kw["common"]),
    ]  # fmt: skip


def _order_items(scene, rng, pid, kw) -> list[Problem]:
    subject, prep, obj = _true_relation(scene, rng)
    positive = plain_caption(_says(subject, prep, obj))
    paraphrase = plain_caption(_says(obj, CONVERSE[prep], subject))
    negatives = order_negatives(positive, rng)
    return [
        caption_problem(pid, kw["image"], positive, negatives, "order", rng=rng, pair=pid,
                        hard_positives=[paraphrase], reasoning=_scene_trace(scene, positive), **kw["common"]),
        caption_problem(f"{pid}-hp", kw["image"], paraphrase, negatives, "order", rng=rng, pair=pid,
                        variant="hard_positive", reasoning=_scene_trace(scene, paraphrase), **kw["common"]),
    ]  # fmt: skip


def _negation_items(scene, rng, pid, kw) -> list[Problem]:
    x, y = rng.sample([scene["first"], scene["second"]], 2)
    positive, negative = f"a {x['shape']} that is not {y['colour']}", f"a {x['shape']} that is not {x['colour']}"
    paraphrase = f"a {x['shape']} that is {x['colour']}"
    # The twin's negative is affirmative too: beside "a square that is not red", the option without "not" would
    # always be the right one, answerable without the image.
    misattributed = f"a {x['shape']} that is {y['colour']}"
    trace = f"The {x['shape']} is {x['colour']} and the {y['shape']} is {y['colour']}."
    return [
        caption_problem(pid, kw["image"], positive, [negative], "negation", rng=rng, pair=pid,
                        hard_positives=[paraphrase], reasoning=f"{trace} So {positive}.", **kw["common"]),
        caption_problem(f"{pid}-hp", kw["image"], paraphrase, [misattributed], "negation", rng=rng, pair=pid,
                        variant="hard_positive", reasoning=f"{trace} So {paraphrase}.", **kw["common"]),
    ]  # fmt: skip


PAIR_FAMILIES = {
    "relation": _relation_items,
    "attribution": _attribution_items,
    "order": _order_items,
    "spatial": _spatial_items,
    "negation": _negation_items,
}


def _count_item(rng: random.Random, cfg: ComposeLevel, pid: str, common: dict) -> tuple[Problem, str]:
    """Count the shapes of one colour (level 1: every shape has it); the rest are other colours."""
    low, high = cfg.count_range
    count = rng.randint(low, min(high, cfg.grid**2))
    target = rng.choice(cfg.colours)
    cells = rng.sample(range(cfg.grid**2), cfg.grid**2)
    others = [c for c in cfg.colours if c != target] if cfg.distractors[1] else []
    n_other = rng.randint(0, min(len(cells) - count, 3)) if others else 0
    colours = [target] * count + [rng.choice(others) for _ in range(n_other)]
    shapes = [_place(rng, cfg, c, colour, rng.choice(cfg.shapes)) for c, colour in zip(cells[: len(colours)], colours, strict=True)]
    image = render_shapes(cfg.grid, shapes)
    things = f"{target} shapes"
    noun = f"{target} {plural(count, 'shape')}"
    trace = f"I count the {things}: {count_aloud(count, noun)}."
    caption = _describe(shapes)
    item = count_problem(pid, image, things, count, (low, high), reasoning=trace, caption=caption, **common)
    return item, _scene_key(image)


def _describe(shapes: Sequence[dict[str, Any]]) -> str:
    ordered = sorted(shapes, key=lambda s: (s["row"], s["col"]))
    return f"{len(ordered)} shapes on white, by (row, column): " + ", ".join(
        f"{_name(s)} ({s['row']},{s['col']})" for s in ordered
    ) + "."


def _scene_key(image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def scene_split(key: str) -> str:
    """`train` or `eval` for a scene, fixed by its pixels' hash (independent of seeds and families)."""
    return "eval" if int(key[:8], 16) < EVAL_SHARE * 16**8 else "train"


def build_items(family: str, level: int, rng: random.Random, pid: str) -> tuple[list[Problem], str]:
    """The item(s) one scene of `family` yields (an item and its hard-positive twin, or one count item) and the
    scene's key (for the train/eval split)."""
    cfg = LEVEL_SETTINGS[level]
    common = {"source": SOURCE, "metadata": {"task": SOURCE, "level": level}}
    if family == "counting":
        item, key = _count_item(rng, cfg, pid, common)
        return [item], key
    scene = _pair_scene(rng, cfg)
    image = render_shapes(cfg.grid, scene["shapes"])
    kw = {"image": image, "common": {**common, "caption": _describe(scene["shapes"])}}
    items = PAIR_FAMILIES[family](scene, rng, pid, kw)
    for item in items:
        item.metadata["scene"] = {"grid": cfg.grid, "shapes": scene["shapes"]}
    return items, _scene_key(image)


def generate_compose(
    families: Sequence[str], n: int, level: int = 1, seed: int = 0, *, split: str | None = "train"
) -> list[Problem]:
    """`n` scenes spread round-robin over `families` (empty = all), each giving its item and, where the family
    has one, its hard-positive twin right after it; deterministic in (families, n, level, seed, split)."""
    families = list(dict.fromkeys(families)) or list(FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ReasonerError(f"perception families {unknown} not allowed; allowed: {', '.join(FAMILIES)}")
    if level not in LEVELS:
        raise ReasonerError(f"perception level {level!r} is not allowed; allowed: {', '.join(map(str, LEVELS))}")
    if split not in ("train", "eval", None):
        raise ReasonerError(f"perception split {split!r} is not allowed; allowed: train, eval")
    problems: list[Problem] = []
    for k in range(n):
        family = families[k % len(families)]
        for attempt in range(10_000):
            pid = f"{SOURCE}-{family}-l{level}-s{seed}-{k}-{attempt}"
            items, key = build_items(family, level, random.Random(pid), pid)
            if split is None or scene_split(key) == split:
                break
        else:  # pragma: no cover - every level's scene space reaches both splits
            raise ReasonerError(f"perception {family} level {level}: no {split} scene found")
        for item in items:
            item.metadata["split"] = scene_split(key)
        problems += items
    return problems
