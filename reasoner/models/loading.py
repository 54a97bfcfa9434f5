"""Load any Qwen-VL model folder (Qwen2.5-VL or Qwen3-VL: tiny, merged checkpoint or a downloaded hub snapshot).

Every engine loads models through `load_model`, so the attention implementation, eval mode and the processor
check live in one place.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")

ATTENTION = "sdpa_grouped"
"""The attention every model is loaded with: PyTorch SDPA, registered by `register_attention`."""


def grouped_sdpa(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **_: Any,
) -> tuple[Any, None]:
    """transformers' `sdpa` attention, except that grouped key/value heads (GQA) go to torch as they are.

    transformers' own `sdpa` copies each key/value head `num_key_value_groups` times (`repeat_kv`) whenever an
    attention mask is given, i.e. in every padded batch, and our batches are always padded. On CPU that copy of
    the whole KV cache at every decoding step was a quarter of a GRPO rollout's time. With `enable_gqa=True` torch
    reads the grouped heads in place: the same outputs bit for bit, gradients equal to float rounding (the grouped
    heads' gradients are summed in another order; tests/models/test_models_tiny.py), the demo's rollouts 1.3-1.5x
    as fast (`benchmarks/bench_local_speed.py`; ~1.7x measured on smaller 4 x 16 rollouts).
    """
    import torch

    grouped = getattr(module, "num_key_value_groups", 1) > 1
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    output = torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=bool(query.shape[2] > 1 and attention_mask is None and causal),
        enable_gqa=grouped,
    )
    return output.transpose(1, 2).contiguous(), None


def register_attention() -> str:
    """Register `grouped_sdpa` with transformers' attention interface, with the masks transformers builds for
    `sdpa` (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, grouped_sdpa)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    return ATTENTION


def resolve_device(device: str) -> str:
    """The torch device name for a configured device: `auto` is cuda when torch sees a GPU, else cpu; `cuda`
    without a GPU is an error naming the setting."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ReasonerError("device: cuda was asked for but torch sees no GPU; use device=auto or device=cpu")
    return device


def load_model(path: str | Path, *, device: str = "cpu", dtype: str | Any | None = None) -> tuple[Any, Any]:
    """Load `(model, processor)` from a model folder, in eval mode on `device`.

    `dtype` is a torch dtype or one of `DTYPES`; None keeps float32 on CPU and bfloat16 elsewhere. Attention
    uses PyTorch SDPA (`grouped_sdpa`) so flash-attn is never required. Raises `ReasonerError` when the folder is missing, is
    not a model folder, or its processor comes back without an image processor (transformers then silently
    returns a bare tokenizer, e.g. when torchvision is missing).
    """
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ReasonerError(f"model folder {folder} has no config.json (expected a saved Hugging Face model)")
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    # A config without a vision tower is a text-only LLM (the distillation reasoner, e.g. an R1 distill).
    text_only = "vision_config" not in json.loads((folder / "config.json").read_text(encoding="utf-8"))
    processor = TextProcessor.from_pretrained(folder) if text_only else load_processor(folder)
    auto_model = AutoModelForCausalLM if text_only else AutoModelForImageTextToText
    torch_dtype = _resolve_dtype(dtype, device)
    try:
        model = auto_model.from_pretrained(folder, dtype=torch_dtype, attn_implementation=register_attention())
    except (OSError, ValueError) as err:
        raise ReasonerError(f"cannot load the model in {folder}: {err}") from err
    model.to(device).eval()
    log.info("loaded %s (%s, %s) from %s", type(model).__name__, device, torch_dtype, folder)
    return model, processor


class TextProcessor:
    """A text-only LLM's tokenizer behind the processor interface the generators use (no images).

    Chat content given as a list of text parts is joined into one string, the form text-only chat templates
    expect."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.chat_template = tokenizer.chat_template

    @classmethod
    def from_pretrained(cls, folder: Path) -> TextProcessor:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as err:
            raise ReasonerError(f"cannot load the tokenizer in {folder}: {err}") from err
        if not tokenizer.chat_template:
            raise ReasonerError(f"{folder}: the tokenizer has no chat template")
        return cls(tokenizer)

    def apply_chat_template(self, messages: list[dict], **kwargs: Any) -> Any:
        return self.tokenizer.apply_chat_template([_flatten(m) for m in messages], **kwargs)

    def __call__(self, *, text: list[str], images: Any = None, **kwargs: Any) -> Any:
        if images:
            raise ReasonerError("a text-only model was given images; give it text-only requests")
        return self.tokenizer(text=text, **kwargs)


def _flatten(message: dict) -> dict:
    content = message["content"]
    if isinstance(content, list):
        if any(part.get("type") != "text" for part in content):
            raise ReasonerError("a text-only model was given an image part; give it text-only requests")
        content = "".join(part["text"] for part in content)
    return {**message, "content": content}


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
            "a Qwen-VL processor needs torchvision installed and preprocessor_config.json in the folder"
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
