"""Compositional perception items: pick the caption that fits an image (or count), with hard negatives/positives.

One item form serves the rendered world (`reasoner.data.worlds.compose`) and the real released sets
(`reasoner.data.sets.perception_files`: ARO, What'sUp), so both are asked, scored and reported the same way:

- a caption item asks "Pick the best caption for this image from the below options." with the true caption and
  its hard negatives as options, in an order shuffled by the item's seed (the released files put the true
  caption first or last; asked generatively that would give the answer away). The answer is the true caption's
  text; the model answers with its letter, and the one scorer (`reasoner.data.records.scoring` -> `rewards.score`) reads it.
- a count item asks "How many ... are there in this picture?" with the range of possible answers stated.
- a hard-positive item is the twin of a caption item: the same hard negatives, but the true caption replaced by
  a paraphrase that must also be accepted (swapped conjuncts, the converse relation). Both carry the same
  `pair` id, so the evaluation can report the pair ("brittleness": accept the positive AND reject the negative).

Metadata of every item: `family` (one of FAMILIES), `variant` (`original` | `hard_positive`), `pair` (shared by
an item and its twin, else None), `chance` (1 / options, or 1 / size of the stated count range), `hard_negatives`,
`hard_positives` and `source`.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence
from typing import Any

from PIL import Image

from reasoner.data.records.problem import ImageRef, Problem
from reasoner.errors import ReasonerError

FAMILIES = ("relation", "attribution", "order", "spatial", "negation", "counting")
"""relation: subject/object swapped (ARO VG-Relation); attribution: attributes swapped between objects (ARO
VG-Attribution); order: word-order perturbations (ARO COCO/Flickr-Order); spatial: prepositions (What'sUp);
negation: "a square that is not red"; counting: how many, with the range stated."""
VARIANTS = ("original", "hard_positive")
CAPTION_QUESTION = "Pick the best caption for this image from the below options."

# Closed-class words: what ARO's order perturbations treat as "not a noun or adjective". ARO tags with spaCy; we
# use this list (no tagger model to download): every other word that is not an -ing verb form counts as a noun
# or adjective. Perturbations of real captions therefore differ in detail from ARO's, not in kind.
FUNCTION_WORDS = frozenset(
    "a an the this that these those some any each every no not of in on at to with without and or but is are "
    "was were be been being has have had do does it its their his her he she they them there here for from by "
    "as into onto over under above below near next beside behind front left right up down out off while who "
    "which what where very too also than then".split()
)


def caption_problem(
    pid: str,
    image: Image.Image | ImageRef,
    positive: str,
    negatives: Sequence[str],
    family: str,
    *,
    source: str,
    rng: random.Random,
    variant: str = "original",
    pair: str | None = None,
    hard_positives: Sequence[str] = (),
    reasoning: str | None = None,
    caption: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Problem:
    """A multiple-choice caption item: `positive` among its distinct `negatives`, options shuffled by `rng`."""
    _check_family(family, variant)
    negatives = [n for n in dict.fromkeys(negatives) if n != positive]
    if not negatives:
        raise ReasonerError(f"item {pid}: no hard negative differs from the true caption {positive!r}")
    choices = [positive, *negatives]
    rng.shuffle(choices)
    ref = image if isinstance(image, ImageRef) else ImageRef.from_image(image)
    meta = {
        **(metadata or {}),
        "source": source,
        "family": family,
        "variant": variant,
        "pair": pair,
        "chance": 1 / len(choices),
        "question_type": "multi_choice",
        "hard_negatives": negatives,
        "hard_positives": list(hard_positives),
    }
    if reasoning is not None:
        from reasoner.prompts import LETTERS

        reasoning = f"{reasoning} That is option {LETTERS[choices.index(positive)]}."
    return Problem(
        id=pid, question=CAPTION_QUESTION, answer=positive, answer_type="text", choices=choices, images=[ref],
        metadata=meta, caption=caption, reasoning=reasoning,
    )  # fmt: skip


def count_problem(
    pid: str,
    image: Image.Image,
    things: str,
    count: int,
    count_range: tuple[int, int],
    *,
    source: str,
    reasoning: str | None = None,
    caption: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Problem:
    """A free-form count item whose question states the range of possible answers (chance = 1 / its size)."""
    low, high = count_range
    if not low <= count <= high:
        raise ReasonerError(f"item {pid}: count {count} is outside the stated range {low}-{high}")
    meta = {
        **(metadata or {}),
        "source": source,
        "family": "counting",
        "variant": "original",
        "pair": None,
        "chance": 1 / (high - low + 1),
        "question_type": "free_form",
        "hard_negatives": [],
        "hard_positives": [],
    }
    return Problem(
        id=pid,
        question=f"How many {things} are there in this picture? Give a number from {low} to {high}.",
        answer=str(count),
        answer_type="integer",
        images=[ImageRef.from_image(image)],
        metadata=meta,
        caption=caption,
        reasoning=reasoning,
    )


def blinded(problems: Sequence[Problem]) -> list[Problem]:
    """The same items with every image replaced by a blank (white) one of its size: the blind control. What a
    model learns from these it learns from the text alone, so on held-out items it must stay at chance; above
    chance means the items' text gives answers away."""
    def blank(image: ImageRef) -> ImageRef:
        return ImageRef.from_image(Image.new("RGB", image.load().size, "white"))

    return [dataclasses.replace(p, images=[blank(image) for image in p.images]) for p in problems]


def _check_family(family: str, variant: str) -> None:
    if family not in FAMILIES:
        raise ReasonerError(f"perception family {family!r} is not allowed; allowed: {', '.join(FAMILIES)}")
    if variant not in VARIANTS:
        raise ReasonerError(f"perception variant {variant!r} is not allowed; allowed: {', '.join(VARIANTS)}")


def is_perception(problems: Sequence[Problem]) -> bool:
    """Whether a problem set is made of perception items (every problem names its family): scored per family."""
    return bool(problems) and all(p.metadata.get("family") in FAMILIES for p in problems)


# ------------------------------------------------------------------------------------------ word order


def plain_caption(text: str, max_words: int = 30) -> str:
    """Lower case, punctuation dropped, at most `max_words` words: what every option of an order item is shown as,
    so neither case nor punctuation tells the true caption from its shuffles (as ARO compares them)."""
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()
    return " ".join(words[:max_words])


def _is_content(word: str) -> bool:
    return word not in FUNCTION_WORDS and not word.endswith("ing")


def _shuffle_positions(words: list[str], positions: list[int], rng: random.Random) -> list[str]:
    moved = [words[i] for i in positions]
    rng.shuffle(moved)
    out = list(words)
    for i, word in zip(positions, moved, strict=True):
        out[i] = word
    return out


def shuffle_nouns_and_adjectives(words: list[str], rng: random.Random) -> list[str]:
    """Permute the nouns and adjectives among their own positions."""
    return _shuffle_positions(words, [i for i, w in enumerate(words) if _is_content(w)], rng)


def shuffle_all_but_nouns_and_adjectives(words: list[str], rng: random.Random) -> list[str]:
    """Permute every other word among its own positions."""
    return _shuffle_positions(words, [i for i, w in enumerate(words) if not _is_content(w)], rng)


def _trigrams(words: list[str]) -> list[list[str]]:
    return [words[i : i + 3] for i in range(0, len(words), 3)]


def shuffle_trigrams(words: list[str], rng: random.Random) -> list[str]:
    """Permute the consecutive word trigrams."""
    grams = _trigrams(words)
    rng.shuffle(grams)
    return [w for gram in grams for w in gram]


def shuffle_within_trigrams(words: list[str], rng: random.Random) -> list[str]:
    """Permute the words inside each consecutive trigram."""
    out = []
    for gram in _trigrams(words):
        rng.shuffle(gram)
        out += gram
    return out


ORDER_PERTURBATIONS = (
    shuffle_nouns_and_adjectives,
    shuffle_all_but_nouns_and_adjectives,
    shuffle_within_trigrams,
    shuffle_trigrams,
)
"""ARO's four word-order perturbations of a caption (COCO-Order, Flickr30k-Order)."""


def order_negatives(caption: str, rng: random.Random, *, tries: int = 20) -> list[str]:
    """One shuffle per ARO perturbation of `caption` (in `plain_caption` form), each differing from the caption
    and from the others; a perturbation that cannot (too few words to move) is left out."""
    words = plain_caption(caption).split()
    original = " ".join(words)
    found: list[str] = []
    for perturb in ORDER_PERTURBATIONS:
        for _ in range(tries):
            shuffled = " ".join(perturb(list(words), rng))
            if shuffled != original and shuffled not in found:
                found.append(shuffled)
                break
    return found
