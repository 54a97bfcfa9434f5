"""A tiny random Qwen2.5-VL built offline: config, tokenizer, processor and weights in an ordinary model folder.

The folder loads with `AutoModelForImageTextToText.from_pretrained` / `AutoProcessor.from_pretrained` under
HF_HUB_OFFLINE=1, so every code path that serves a real Qwen2.5-VL checkpoint also serves the demo and the tests.
The same (size, seed) always gives a byte-identical folder.

    reasoner data tiny-model OUT [--size demo] [--seed 0]
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from reasoner.atomic import atomic_dir
from reasoner.errors import ReasonerError
from reasoner.models.tokenizer import (
    CHAT_TEMPLATE,
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    build_tokenizer,
)

log = logging.getLogger(__name__)

# One merged visual token covers a 28x28 patch (14-px patches, 2x2 spatial merge).
PIXELS_PER_VISUAL_TOKEN = 28 * 28


@dataclass(frozen=True)
class TinySize:
    """Shape of a tiny model. `head_dim = text_hidden // text_heads`; `mrope_section` sums to head_dim / 2."""

    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    mrope_section: tuple[int, int, int]
    vision_depth: int
    vision_hidden: int
    vision_heads: int
    vision_intermediate: int
    vocab_size: int  # an upper bound: the built-in corpus supports ~1,500 tokens
    min_visual_tokens: int = 4  # a 56x56 image
    max_visual_tokens: int = 64  # a 224x224 image


SIZES: dict[str, TinySize] = {
    # ~1M parameters: forwards a batch of 8 in tens of ms on one CPU thread.
    "demo": TinySize(
        text_hidden=128,
        text_layers=2,
        text_heads=4,
        text_kv_heads=2,
        text_intermediate=256,
        mrope_section=(4, 6, 6),
        vision_depth=2,
        vision_hidden=64,
        vision_heads=4,
        vision_intermediate=128,
        vocab_size=2048,
    ),
    # ~10M parameters: for runs that should learn more than the format in a CPU demo.
    "small": TinySize(
        text_hidden=256,
        text_layers=4,
        text_heads=4,
        text_kv_heads=2,
        text_intermediate=768,
        mrope_section=(8, 12, 12),
        vision_depth=4,
        vision_hidden=128,
        vision_heads=4,
        vision_intermediate=256,
        vocab_size=2048,
        max_visual_tokens=256,
    ),
}


def build_tiny_model(out_dir: str | Path, *, size: str = "demo", seed: int = 0) -> Path:
    """Build a random tiny Qwen2.5-VL with a locally trained tokenizer and save it to `out_dir`.

    The folder is written to a temporary sibling first and moved into place, so a crash never leaves a
    half-written model that looks complete. An existing non-empty `out_dir` is an error.
    """
    if size not in SIZES:
        raise ReasonerError(f"unknown tiny model size {size!r}; allowed: {sorted(SIZES)}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ReasonerError(f"tiny model output folder {out} exists and is not empty; choose a new folder")
    spec = SIZES[size]
    with atomic_dir(out) as staging:
        processor = _build_processor(spec)
        model = _build_model(spec, processor.tokenizer, seed)
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        _write_build_info(staging, size, seed, model)
        _canonicalise_json(staging)
    log.info("tiny Qwen2.5-VL %r (seed %d, %d parameters) written to %s", size, seed, _count(model), out)
    return out


def _build_processor(spec: TinySize):
    """Qwen2_5_VLProcessor with image + video processors and a tokenizer trained on the built-in corpus."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    tokenizer = build_tokenizer(spec.vocab_size)
    pixels = {
        "shortest_edge": spec.min_visual_tokens * PIXELS_PER_VISUAL_TOKEN,
        "longest_edge": spec.max_visual_tokens * PIXELS_PER_VISUAL_TOKEN,
    }
    image_processor = Qwen2VLImageProcessor(size=pixels, patch_size=14, temporal_patch_size=2, merge_size=2)
    video_processor = Qwen2VLVideoProcessor(size=pixels, patch_size=14, temporal_patch_size=2, merge_size=2)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def _build_config(spec: TinySize, tokenizer):
    from transformers import Qwen2_5_VLConfig

    ids = {
        name: tokenizer.convert_tokens_to_ids(name)
        for name in (IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END)
    }
    head_dim = spec.text_hidden // spec.text_heads
    if sum(spec.mrope_section) * 2 != head_dim:
        raise ReasonerError(f"mrope_section {spec.mrope_section} must sum to head_dim/2 = {head_dim // 2}")
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_intermediate,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_kv_heads,
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": list(spec.mrope_section),
        },
        "tie_word_embeddings": True,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision_config = {
        "depth": spec.vision_depth,
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_intermediate,
        "num_heads": spec.vision_heads,
        "out_hidden_size": spec.text_hidden,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [spec.vision_depth - 1],
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=True,
    )


def _build_model(spec: TinySize, tokenizer, seed: int):
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    config = _build_config(spec, tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(
        eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, bos_token_id=eos[1], do_sample=False
    )
    return model


def _write_build_info(folder: Path, size: str, seed: int, model) -> None:
    info = {"builder": "reasoner.models.tiny", "size": size, "seed": seed, "parameters": _count(model)}
    (folder / "tiny_model.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def _canonicalise_json(folder: Path) -> None:
    """Rewrite JSON files with sorted keys so the folder is byte-identical across builds of one seed."""
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(
            json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def ensure_tiny_model(cache_dir: str | Path, *, size: str = "demo", seed: int = 0) -> Path:
    """Return `cache_dir/tiny-<size>-seed<seed>`, building it first if absent (for demos and test sessions)."""
    folder = Path(cache_dir) / f"tiny-{size}-seed{seed}"
    if not (folder / "tiny_model.json").is_file():
        build_tiny_model(folder, size=size, seed=seed)
    return folder


def describe_model_folder(path: str | Path) -> str:
    """One line naming a tiny model folder's size, seed and parameter count."""
    info = json.loads((Path(path) / "tiny_model.json").read_text())
    return f"{info['size']!r} (seed {info['seed']}, {info['parameters']:,} parameters)"
