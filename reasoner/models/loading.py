"""Load any Qwen2.5-VL-style model folder (tiny, merged checkpoint or a downloaded hub snapshot) for inference.

Every engine loads models through `load_model`, so the attention implementation, eval mode and the processor
check live in one place.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")


def load_model(path: str | Path, *, device: str = "cpu", dtype: str | Any | None = None) -> tuple[Any, Any]:
    """Load `(model, processor)` from a model folder, in eval mode on `device`.

    `dtype` is a torch dtype or one of `DTYPES`; None keeps float32 on CPU and bfloat16 elsewhere. Attention
    uses PyTorch SDPA so flash-attn is never required. Raises `ReasonerError` when the folder is missing, is
    not a model folder, or its processor comes back without an image processor (transformers then silently
    returns a bare tokenizer, e.g. when torchvision is missing).
    """
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ReasonerError(f"model folder {folder} has no config.json (expected a saved Hugging Face model)")
    from transformers import AutoModelForImageTextToText

    processor = load_processor(folder)
    torch_dtype = _resolve_dtype(dtype, device)
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            folder, dtype=torch_dtype, attn_implementation="sdpa"
        )
    except (OSError, ValueError) as err:
        raise ReasonerError(f"cannot load the model in {folder}: {err}") from err
    model.to(device).eval()
    log.info("loaded %s (%s, %s) from %s", type(model).__name__, device, torch_dtype, folder)
    return model, processor


def load_processor(path: str | Path) -> Any:
    """Load the multimodal processor of a model folder and check that it can process images."""
    from transformers import AutoProcessor

    folder = Path(path)
    try:
        processor = AutoProcessor.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise ReasonerError(f"cannot load the processor in {folder}: {err}") from err
    check_processor(processor, folder)
    return processor


def check_processor(processor: Any, where: str | Path = "the processor") -> None:
    """Raise `ReasonerError` unless `processor` has a tokenizer, an image processor and a chat template."""
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ReasonerError(
            f"{where}: AutoProcessor returned {type(processor).__name__} without an image processor; "
            "a Qwen2.5-VL processor needs torchvision installed and preprocessor_config.json in the folder"
        )
    if not getattr(processor, "chat_template", None):
        raise ReasonerError(f"{where}: the processor has no chat template (chat_template.jinja is missing)")


def _resolve_dtype(dtype: str | Any | None, device: str) -> Any:
    import torch

    if dtype is None:
        return torch.float32 if str(device).startswith("cpu") else torch.bfloat16
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ReasonerError(f"unknown dtype {dtype!r}; allowed: {list(DTYPES)}")
    return getattr(torch, dtype)
