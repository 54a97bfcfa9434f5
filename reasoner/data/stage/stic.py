"""STIC (Deng et al. 2024, "Enhancing Large Vision Language Models with Self-Training on Image Comprehension"):
a model's own descriptions of images, as preference pairs (stage 1) and as prompt context (stage 2).

    stage 1  `stic_problems`: per image of the stage's dataset (labels unused), the stage's start model describes
             it greedily with the good prompt on the original image (preferred), and once more, in a way drawn per
             image by the stage seed from `dpo.stic.dispreferred`: the bad prompt on the original image, or the good
             prompt on the image corrupted by a named, seeded transform (`CORRUPTIONS`) (dispreferred). The pair
             trains on the good prompt and the original image; `preference.select_pairs` then drops empty and
             identical pairs and holds some out, as for a preference file.
    stage 2  `described_problems`: a named model describes each image greedily; the description fills
             `$description` in an sft stage's prompt (`reasoner.prompts.DESCRIPTION_KEY` in the problem's metadata).

Both are cached in the stage's data/ folder under the stage fingerprint (`stic_pairs.json`, `descriptions.json`),
so a resumed stage trains on the very same texts.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from PIL import Image

from reasoner.data.records.problem import Problem
from reasoner.generation.base import GenerationRequest, Generator, SamplingSpec, requests_for
from reasoner.prompts import DESCRIPTION_KEY, Template, problem_messages

PAIRS_FILE = "stic_pairs.json"
"""In a dpo stage's data/: `[image id, chosen, rejected, way]` per image."""
DESCRIPTIONS_FILE = "descriptions.json"
"""In an sft stage's data/: `[problem id, description]` per problem."""


def color_jitter(image: Image.Image, rng: random.Random) -> Image.Image:
    """Every pixel's hue turned by one angle drawn in [60, 300) degrees (so each named colour becomes another),
    saturation and brightness kept: white and grey stay as they are, and so do the objects, counts and positions;
    the colours do not."""
    shift = round(rng.uniform(60, 300) / 360 * 256)
    hsv = np.array(image.convert("RGB").convert("HSV"), dtype=np.int64)  # [H, W, 3]
    hsv[..., 0] = (hsv[..., 0] + shift) % 256
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


def low_resolution(image: Image.Image, rng: random.Random) -> Image.Image:
    """Down-sampled by a factor drawn from 3-6 (box filter) and back up (bilinear): fine detail is lost."""
    factor = rng.randint(3, 6)
    small = image.convert("RGB").resize(
        (max(1, image.width // factor), max(1, image.height // factor)), Image.Resampling.BOX
    )
    return small.resize(image.size, Image.Resampling.BILINEAR)


CORRUPTIONS: dict[str, Callable[[Image.Image, random.Random], Image.Image]] = {
    "color_jitter": color_jitter,
    "low_resolution": low_resolution,
}
"""Image corruptions by name (`dpo.stic.dispreferred`), each seeded by the rng it is given."""


def _greedy(max_new_tokens: int) -> SamplingSpec:
    return SamplingSpec(n=1, temperature=0.0, max_new_tokens=max_new_tokens)


def _texts(generator: Generator, requests: list[GenerationRequest], max_new_tokens: int) -> list[str]:
    return [group[0].text.strip() for group in generator.generate(requests, _greedy(max_new_tokens))]


def image_problems(problems: Sequence[Problem]) -> list[Problem]:
    """One problem per distinct image set (a world draws several questions about one picture): the first."""
    seen, kept = set(), []
    for problem in problems:
        key = tuple(image.sha256() for image in problem.images)
        if key and key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept


def as_pair(problem: Problem, good: Template, chosen: str, rejected: str, way: str) -> Problem:
    """The pair problem of one image: the good prompt as its question, the two descriptions (and the way the
    dispreferred one was made) in its metadata, as a preference file's rows have them."""
    meta = {**problem.metadata, "chosen": chosen, "rejected": rejected, "dispreferred": way}
    return replace(problem, question=good.prompt(problem), choices=None, metadata=meta)


def stic_pairs(
    generator: Generator,
    problems: Sequence[Problem],
    good: Template,
    bad: Template,
    ways: Sequence[str],
    *,
    seed: int,
    max_new_tokens: int,
) -> tuple[list[Problem], dict]:
    """STIC pairs as problems carrying `chosen`, `rejected` and `dispreferred` (the way) in their metadata, their
    question the good prompt as rendered for them (a dpo stage sends it as written)."""
    images = image_problems(problems)
    drawn = [random.Random(f"stic:{seed}:{p.id}") for p in images]
    way_of = [rng.choice(list(ways)) for rng in drawn]
    chosen = _texts(generator, requests_for(images, good), max_new_tokens)
    rejected_requests = []
    for problem, way, rng in zip(images, way_of, drawn, strict=True):
        if way == "bad_prompt":
            rejected_requests += requests_for([problem], bad)
        else:
            corrupted = [CORRUPTIONS[way](image.load(), rng) for image in problem.images]
            rejected_requests.append(GenerationRequest(problem_messages(problem, good), corrupted, id=problem.id))
    rejected = _texts(generator, rejected_requests, max_new_tokens)
    pairs = [as_pair(p, good, c, r, way) for p, c, r, way in zip(images, chosen, rejected, way_of, strict=True)]
    stats = {"stic_images": len(images), **{f"stic_{way}": n for way, n in sorted(Counter(way_of).items())}}
    return pairs, stats


def described_problems(
    generator: Generator, problems: Sequence[Problem], template: Template, *, max_new_tokens: int
) -> list[Problem]:
    """`problems`, each with a greedy description of its images by `generator` in its metadata (`$description`);
    problems sharing an image share its description, and a problem without an image gets an empty one."""
    images = image_problems(problems)
    texts = _texts(generator, requests_for(images, template), max_new_tokens)
    by_image = {tuple(im.sha256() for im in p.images): text for p, text in zip(images, texts, strict=True)}
    return [
        replace(p, metadata={**p.metadata, DESCRIPTION_KEY: by_image.get(tuple(im.sha256() for im in p.images), "")})
        for p in problems
    ]
