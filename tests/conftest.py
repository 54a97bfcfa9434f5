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


def _set_torch_threads() -> None:
    try:
        import torch
    except ImportError:  # rewards-only environments
        return
    torch.set_num_threads(1)


_set_torch_threads()


@pytest.fixture(scope="session")
def mathvista_dir() -> Path:
    """The real MathVista testmini problems (../shared/data/mathvista). Skips visibly where absent; CI fails."""
    if not (MATHVISTA_DIR / "testmini.json").is_file():
        message = f"MathVista testmini data not found at {MATHVISTA_DIR} (it lives in ../shared beside the repo)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)
    return MATHVISTA_DIR


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 'demo' Qwen2.5-VL folder (seed 0), built once per session (~2 s)."""
    from reasoner.models.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", size="demo", seed=0)
