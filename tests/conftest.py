"""Shared test fixtures. Tests run on CPU, offline, with one torch thread (two are ~10x slower on a shared box)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
MATHVISTA_DIR = REPO.parent / "shared" / "data" / "mathvista"
TABMWP_DIR = REPO.parent / "shared" / "data" / "tabmwp"
MATHVISION_DIR = REPO.parent / "shared" / "data" / "mathvision"

# configs/demo.yaml shortened to a few steps per stage, by overrides only (the same file users run).
DEMO_SMOKE_OVERRIDES = [
    "datasets.train.n=48",
    "datasets.heldout.n=12",
    "eval.max_new_tokens=12",
    "stages.sft1.steps=2",
    "stages.sft1.batch_size=4",
    "stages.grpo1.steps=2",
    "stages.grpo1.grpo.prompts_per_step=2",
    "stages.grpo1.grpo.max_new_tokens=12",
    "stages.sft2.steps=2",
    "stages.sft2.batch_size=4",
    "stages.sft2.data.limit=12",
    "stages.sft2.data.max_new_tokens=12",
    "stages.grpo2.steps=2",
    "stages.grpo2.grpo.prompts_per_step=2",
    "stages.grpo2.grpo.max_new_tokens=12",
]


def _set_torch_threads() -> None:
    try:
        import torch
    except ImportError:  # rewards-only environments
        return
    torch.set_num_threads(1)


_set_torch_threads()


def _shared_data(folder: Path, marker: str, what: str) -> Path:
    """`folder` when `folder/marker` exists; else skip visibly (or fail when CI=true)."""
    if not (folder / marker).exists():
        message = f"{what} not found at {folder} (it lives in ../shared beside the repo)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def mathvista_dir() -> Path:
    """The real MathVista testmini problems (../shared/data/mathvista). Skips visibly where absent; CI fails."""
    return _shared_data(MATHVISTA_DIR, "testmini.json", "MathVista testmini data")


@pytest.fixture(scope="session")
def tabmwp_dir() -> Path:
    """The 2000 released TabMWP problems with their table images (../shared/data/tabmwp). Skips / CI fails."""
    return _shared_data(TABMWP_DIR, "tables", "TabMWP data")


@pytest.fixture(scope="session")
def mathvision_dir() -> Path:
    """MATH-Vision testmini with its images (../shared/data/mathvision). Skips visibly where absent; CI fails."""
    return _shared_data(MATHVISION_DIR, "images", "MATH-Vision testmini data")


@pytest.fixture(scope="session")
def tabmwp_problems(tabmwp_dir: Path) -> list:
    """All 2000 TabMWP problems through our importer (loaded once per session, ~1 s)."""
    from reasoner.data.importers import load_tabmwp

    return load_tabmwp(tabmwp_dir)


@pytest.fixture(scope="session")
def mathvision_problems(mathvision_dir: Path) -> list:
    """The 304 MATH-Vision testmini problems through our importer."""
    from reasoner.data.importers import load_mathvision

    return load_mathvision(mathvision_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 'demo' Qwen2.5-VL folder (seed 0), built once per session (~2 s)."""
    from reasoner.models.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", size="demo", seed=0)


@pytest.fixture(scope="session")
def demo_smoke() -> list[str]:
    """Overrides that shorten configs/demo.yaml to a few steps per stage."""
    return list(DEMO_SMOKE_OVERRIDES)


def render_text_image(text: str, size: tuple[int, int], color: str = "white"):
    """A real rendered image: `text` drawn in black on a plain background."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).text((size[0] // 4, size[1] // 3), text, fill="black")
    return image


@pytest.fixture(scope="session")
def digit_images() -> list:
    """Eight rendered images of two-digit sums, 56 to 224 px on a side (4 to 64 visual tokens)."""
    sizes = [(56, 56), (84, 56), (112, 112), (224, 224), (56, 168), (140, 84), (196, 196), (112, 56)]
    colors = ["white", "lightyellow", "lightblue", "white", "pink", "lightgreen", "white", "lavender"]
    return [
        render_text_image(f"{i} + {7 - i}", s, c) for i, (s, c) in enumerate(zip(sizes, colors, strict=True))
    ]
