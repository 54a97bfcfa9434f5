"""Deduplicate imported problems, and find those that overlap an evaluation set (never train on the test set):
MathVista testmini, MATH-Vision testmini, or any evaluation set of a run. `BenchmarkIndex.match` is the one
overlap test: the importers' `--exclude-*` options drop what it finds, and the run's contamination guard
(`reasoner.data.stage.contamination`) stops a stage on it.

- Duplicates: the same images (hash of their bytes) + the same normalised question + the same choices; the
  first occurrence is kept.
- Overlap, in this order: an image byte-identical to a benchmark image; an image perceptually the same
  (`imagehash`: a 64-bit pHash within `SIMILAR_BITS`, the benchmark image also indexed at slight centre crops),
  which finds re-encoded, resized and cropped copies; a distinctive benchmark question. The question counts
  only where the images cannot tell: when the benchmark problem and the checked one both have pixels, their
  images decide (a templated question about another picture is not the same problem). The shared MathVista copy
  has no images, so question text is what works there. Generic questions ("Find x.", 44 x "What is the age gap
  between these two people in image?") recur in testmini and in any training set about other images; matching
  on them alone would drop honest training data, so a benchmark question counts only when it occurs once in
  the benchmark and is at least `min_question_chars` long once normalised.
- `whole_problems`: only the same problem (`duplicate_key`) counts; for two sets drawn from one generated world,
  whose few images recur with other questions by design and whose train / eval splits partition the problems.

Every drop is recorded (id, reason, the matching id or pid); `clean_import` turns the counts into the JSON
written next to an imported file.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reasoner.data.records.files import read_problems
from reasoner.data.records.problem import ImageRef, Problem
from reasoner.data.stage.imagehash import SIMILAR_BITS, hash_arrays, nearest, perceptual_hashes

log = logging.getLogger(__name__)

MIN_QUESTION_CHARS = 30
"""Shortest normalised testmini question that counts as an overlap on its own (shorter ones are generic)."""
_NON_WORD = re.compile(r"[\W_]+")


def normalize_question(text: str) -> str:
    """Case, punctuation, whitespace and Unicode width folded away: 'What is x?' == 'what  is X'."""
    return " ".join(_NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).split())


def image_digest(image: ImageRef) -> str | None:
    """sha256 of an image's encoded bytes (embedded or read from its file); None when the file is absent."""
    if image.data is not None:
        return hashlib.sha256(image.data).hexdigest()
    path = image.resolved_path()
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None
    except OSError:  # absent, unreadable, or not a usable file name: nothing to compare
        return None


def duplicate_key(problem: Problem) -> str:
    """What makes two problems the same: image bytes (or paths, when absent), question text and choices."""
    digest = hashlib.sha256()
    for image in problem.images:
        digest.update((image_digest(image) or f"path:{image.path}").encode())
    digest.update(normalize_question(problem.question).encode())
    digest.update(repr([normalize_question(c) for c in problem.choices or []]).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Dropped:
    """One problem left out of an import, and why."""

    id: str
    reason: str
    """duplicate | <benchmark>_image | <benchmark>_question (benchmark: mathvista, mathvision)"""
    match: str
    """The id of the problem it duplicates, or the benchmark id it overlaps."""


def deduplicate(problems: Sequence[Problem]) -> tuple[list[Problem], list[Dropped]]:
    """Keep the first of each set of duplicates (see `duplicate_key`), in order."""
    first: dict[str, str] = {}
    kept, dropped = [], []
    for problem in problems:
        key = duplicate_key(problem)
        if key in first:
            dropped.append(Dropped(problem.id, "duplicate", first[key]))
        else:
            first[key] = problem.id
            kept.append(problem)
    return kept, dropped


@dataclass
class BenchmarkIndex:
    """What a problem is checked against: a benchmark's image hashes (exact and perceptual) and distinctive
    questions, or (`whole_problems`) its problems' identities only."""

    name: str
    problems: int
    images: dict[str, str]
    """Image sha256 -> benchmark id (only images whose bytes are present)."""
    questions: dict[str, str]
    """Normalised distinctive question -> benchmark id."""
    similar: np.ndarray = field(default_factory=lambda: hash_arrays(())[0])
    """Perceptual hashes of the benchmark's images and of their slight crops (`imagehash.crop_variants`)."""
    similar_aspects: np.ndarray = field(default_factory=lambda: hash_arrays(())[1])
    """The log aspect ratio of each perceptual hash's image."""
    similar_ids: list[str] = field(default_factory=list)
    """The benchmark id of each perceptual hash."""
    with_pixels: set[str] = field(default_factory=set)
    """Benchmark ids with a perceptual hash: for those, a problem with pixels of its own is judged by its images."""
    keys: dict[str, str] = field(default_factory=dict)
    """`duplicate_key` -> benchmark id (whole-problem identity; filled instead of the rest by `whole_problems`)."""

    @classmethod
    def build(
        cls,
        name: str,
        problems: Sequence[Problem],
        min_question_chars: int = MIN_QUESTION_CHARS,
        *,
        whole_problems: bool = False,
        perceptual: bool = True,
    ) -> BenchmarkIndex:
        """Index a benchmark's problems (see the module docstring for which questions count); without
        `perceptual`, images are compared by their bytes only."""
        if whole_problems:
            keys = {duplicate_key(p): p.id for p in reversed(problems)}  # reversed: the first id wins
            return cls(name, len(problems), {}, {}, keys=keys)
        counts = Counter(normalize_question(p.question) for p in problems)
        index = cls(name, len(problems), {}, {})
        similar = []
        for problem in problems:
            for image in problem.images:
                digest = image_digest(image)
                if digest is not None:
                    index.images.setdefault(digest, problem.id)
                similar += [(h, problem.id) for h in perceptual_hashes(image, variants=True)] if perceptual else []
            text = normalize_question(problem.question)
            if counts[text] == 1 and len(text) >= min_question_chars:
                index.questions[text] = problem.id
        index.similar, index.similar_aspects = hash_arrays(h for h, _ in similar)
        index.similar_ids = [pid for _, pid in similar]
        index.with_pixels = set(index.similar_ids)
        return index

    def match(self, problem: Problem) -> Dropped | None:
        """Why `problem` overlaps this benchmark (the same problem; an image, byte-identical or perceptually the
        same; a distinctive question where the images cannot tell), or None."""
        if self.keys:
            pid = self.keys.get(duplicate_key(problem))
            return Dropped(problem.id, f"{self.name}_problem", pid) if pid is not None else None
        hashes = []
        for image in problem.images:
            digest = image_digest(image)
            if digest is not None and digest in self.images:
                return Dropped(problem.id, f"{self.name}_image", self.images[digest])
            hashes += perceptual_hashes(image)
        for query in hashes:
            best, distance = nearest(query, self.similar, self.similar_aspects)
            if distance <= SIMILAR_BITS:
                return Dropped(problem.id, f"{self.name}_similar_image", self.similar_ids[best])
        pid = self.questions.get(normalize_question(problem.question))
        if pid is None or (hashes and pid in self.with_pixels):  # both have pictures, and they differ
            return None
        return Dropped(problem.id, f"{self.name}_question", pid)


def mathvista_index(data_dir: str | Path, *, split: str = "testmini") -> BenchmarkIndex:
    """The overlap index of a MathVista folder (official json with optional images/, or the hub parquet)."""
    from reasoner.data.sets.sources import load_mathvista

    index = BenchmarkIndex.build("mathvista", load_mathvista(data_dir, split=split))
    log.info(
        "MathVista %s: %d problems, %d images hashed, %d distinctive questions",
        split,
        index.problems,
        len(index.images),
        len(index.questions),
    )
    return index


def mathvision_index(data_dir: str | Path, *, split: str = "testmini") -> BenchmarkIndex:
    """The overlap index of a MATH-Vision folder (`<split>.jsonl` + `images/`)."""
    from reasoner.data.sets.importers import load_mathvision

    index = BenchmarkIndex.build("mathvision", load_mathvision(data_dir, split=split))
    log.info("MATH-Vision %s: %d problems, %d images hashed, %d distinctive questions",
             split, index.problems, len(index.images), len(index.questions))
    return index


def problems_index(path: str | Path) -> BenchmarkIndex:
    """The overlap index of a problems file (an evaluation split of your own), compared as the run's contamination
    guard compares a training set with a `file` evaluation set: image bytes and distinctive questions."""
    index = BenchmarkIndex.build(Path(path).stem, read_problems(path), perceptual=False)
    log.info("%s: %d problems, %d images hashed, %d distinctive questions", path, index.problems,
             len(index.images), len(index.questions))  # fmt: skip
    return index


def find_overlap(problems: Sequence[Problem], index: BenchmarkIndex) -> list[Dropped]:
    """Each problem that overlaps the benchmark, with why (the one test: imports drop them, runs stop on them)."""
    return [found for found in map(index.match, problems) if found is not None]


def drop_overlap(problems: Sequence[Problem], index: BenchmarkIndex) -> tuple[list[Problem], list[Dropped]]:
    """Problems that do not overlap the benchmark, and a record of those that do."""
    found = [index.match(problem) for problem in problems]
    return [p for p, f in zip(problems, found, strict=True) if f is None], [f for f in found if f is not None]


def clean_import(
    problems: Sequence[Problem],
    *,
    dedupe: bool = False,
    exclude: Sequence[BenchmarkIndex] = (),
    source: dict[str, Any] | None = None,
) -> tuple[list[Problem], dict[str, Any]]:
    """Deduplicate and/or decontaminate imported problems (against each benchmark of `exclude`, in order);
    returns the kept ones and a JSON-ready record (`overlap`: one entry per benchmark)."""
    kept, duplicates, overlaps = list(problems), [], []
    if dedupe:
        kept, duplicates = deduplicate(kept)
    summaries = []
    for index in exclude:
        kept, dropped = drop_overlap(kept, index)
        overlaps += dropped
        summaries.append(_overlap_summary(index, dropped))
    record: dict[str, Any] = {
        "sources": [{**(source or {}), "loaded": len(problems)}],
        "written": len(kept),
        "dedupe": {"enabled": dedupe, "duplicates": len(duplicates)},
        "overlap": summaries,
        "dropped": [asdict(d) for d in duplicates + overlaps],
    }
    log.info(
        "import: %d loaded, %d duplicates, %d overlapping %s, %d kept",
        len(problems),
        len(duplicates),
        len(overlaps),
        " + ".join(index.name for index in exclude) or "nothing",
        len(kept),
    )
    return kept, record


def _overlap_summary(index: BenchmarkIndex, dropped: Sequence[Dropped]) -> dict[str, Any]:
    reasons = Counter(d.reason for d in dropped)
    return {
        "benchmark": index.name,
        "benchmark_problems": index.problems,
        "benchmark_images_hashed": len(index.images),
        "benchmark_images_perceptual": len(index.with_pixels),
        "distinctive_questions": len(index.questions),
        "dropped": len(dropped),
        "by_image": reasons[f"{index.name}_image"],
        "by_similar_image": reasons[f"{index.name}_similar_image"],
        "by_question": reasons[f"{index.name}_question"],
    }


def record_path(out: str | Path) -> Path:
    """Where the import record of an output file goes: `train.parquet` -> `train.sources.json`."""
    out = Path(out)
    return out.with_name(f"{out.stem}.sources.json")
