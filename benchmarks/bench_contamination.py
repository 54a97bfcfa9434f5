"""The contamination guard: its cost on the demo and on a 100k-problem set, and its hit rate on transformed
benchmark images (docs/contamination.md holds the numbers).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_contamination.py [--big 100000] \
        [--mathvista ../shared/data/mathvista] [--mathvision ../shared/data/mathvision]

1. Cost. Building the MathVista and MATH-Vision testmini indexes; the demo's own guard (configs/demo.yaml: every
   training stage against its evaluation sets, `contamination.check_run`); the demo's training set against both
   benchmarks; a `--big` synthetic set (mixed tasks, level 1) against both. Seconds and problems per second.
2. Hit rate. Every MATH-Vision testmini image, transformed (JPEG re-encoding, resizing, cropping, a combination),
   under a question of its own (so only the image can find it): the share found against the MATH-Vision index.
   Beside it, false hits: the 2000 TabMWP tables and 2000 synthetic images, none of which is a benchmark image.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from reasoner import config
from reasoner.data.records.problem import ImageRef, Problem
from reasoner.data.sets.datasets import Datasets
from reasoner.data.sets.importers import load_mathvision, load_tabmwp
from reasoner.data.stage.contamination import check_run
from reasoner.data.stage.dedupe import BenchmarkIndex, find_overlap, mathvision_index, mathvista_index
from reasoner.data.worlds import TASKS, generate_mixed

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _against(problems: list[Problem], indexes: list[BenchmarkIndex], what: str) -> None:
    start = time.perf_counter()
    hits = sum(len(find_overlap(problems, index)) for index in indexes)
    seconds = time.perf_counter() - start
    print(f"{what:44s} {len(problems):>7} problems {seconds:8.2f} s {len(problems) / seconds:>8.0f}/s  {hits} hits")


def bench_cost(args: argparse.Namespace) -> list[BenchmarkIndex]:
    vista, seconds_vista = _timed(mathvista_index, args.mathvista)
    vision, seconds_vision = _timed(mathvision_index, args.mathvision)
    print(f"index MathVista testmini: {seconds_vista:.2f} s; MATH-Vision testmini ({len(vision.with_pixels)} images, "
          f"{len(vision.similar)} perceptual hashes): {seconds_vision:.2f} s")  # fmt: skip
    demo = config.load(REPO / "configs" / "demo.yaml")
    datasets = Datasets(demo)
    record, seconds = _timed(check_run, demo, datasets.__getitem__)
    print(f"demo guard (check_run: 5 stages x {record['compared']}, its sets generated inside): {seconds:.2f} s, "
          f"{len(record['findings'])} findings")  # fmt: skip
    _against(datasets["train"], [vista, vision], "demo training set vs MathVista + MATH-Vision")
    big, seconds = _timed(generate_mixed, list(TASKS), args.big, level=1, seed=0)
    print(f"(generated {len(big)} synthetic problems in {seconds:.0f} s, not counted)")
    _against(big, [vista, vision], f"{args.big} synthetic vs MathVista + MATH-Vision")
    return [vista, vision]


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _crop(image: Image.Image, sides: tuple[float, float, float, float]) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * sides[0]), round(h * sides[1]), w - round(w * sides[2]), h - round(h * sides[3])))


def _half(image: Image.Image) -> Image.Image:
    return image.resize((max(1, image.width // 2), max(1, image.height // 2)))


def transforms(rng: random.Random) -> dict[str, Callable[[Image.Image], Image.Image]]:
    """The copies measured: each a function of the RGB benchmark image."""
    def random_crop(image):  # up to 5% off each side, drawn per side
        return _crop(image, tuple(rng.uniform(0, 0.05) for _ in range(4)))

    return {
        "JPEG quality 50": lambda im: _jpeg(im, 50),
        "PNG (lossless re-encode)": lambda im: im,
        "resized to 1/2": _half,
        "resized to 2x": lambda im: im.resize((im.width * 2, im.height * 2)),
        "cropped 2% each side": lambda im: _crop(im, (0.02,) * 4),
        "cropped 5% each side": lambda im: _crop(im, (0.05,) * 4),
        "cropped 0-5% per side (random)": random_crop,
        "cropped 10% one side": lambda im: _crop(im, (0, 0, 0.1, 0)),
        "1/2 + 0-5% crop + JPEG 60": lambda im: _jpeg(random_crop(_half(im)), 60),
    }


def _as_problems(images: list[Image.Image], prefix: str) -> list[Problem]:
    """Each image under a question no benchmark asks, so only the image can match."""
    return [
        Problem(id=f"{prefix}-{i}", question=f"Copy {i}: what is shown?", answer="1", answer_type="integer",
                images=[ImageRef.from_image(image, format="PNG")])  # fmt: skip
        for i, image in enumerate(images)
    ]


def bench_hit_rate(args: argparse.Namespace, vision: BenchmarkIndex) -> None:
    originals = [p.images[0].load() for p in load_mathvision(args.mathvision)]
    rng = random.Random(0)
    print(f"\nhit rate on {len(originals)} transformed MATH-Vision testmini images (reason: image / similar_image)")
    for name, transform in transforms(rng).items():
        found = find_overlap(_as_problems([transform(im) for im in originals], "copy"), vision)
        print(f"  {name:32s} {len(found) / len(originals):7.1%}  ({len(found)}/{len(originals)})")
    tables = load_tabmwp(args.tabmwp)
    synthetic = generate_mixed(list(TASKS), 2000, level=2, seed=1)
    for what, problems in (("TabMWP tables", tables), ("synthetic level 2", synthetic)):
        found = find_overlap([Problem(**{**p.__dict__, "question": "Unrelated?"}) for p in problems], vision)
        print(f"  false hits, {what:22s} {len(found)}/{len(problems)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big", type=int, default=100_000, help="size of the large synthetic set")
    parser.add_argument("--mathvista", default=str(SHARED / "mathvista"))
    parser.add_argument("--mathvision", default=str(SHARED / "mathvision"))
    parser.add_argument("--tabmwp", default=str(SHARED / "tabmwp"))
    parser.add_argument("--skip-cost", action="store_true", help="only the hit rates")
    args = parser.parse_args()
    vision = bench_cost(args)[1] if not args.skip_cost else mathvision_index(args.mathvision)
    bench_hit_rate(args, vision)


if __name__ == "__main__":
    main()
