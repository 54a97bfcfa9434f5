"""A tiny random Qwen-VL built offline: config, tokenizer, processor and weights in an ordinary model folder.

Two families: Qwen2.5-VL (the default) and Qwen3-VL. The folder loads with `AutoModelForImageTextToText` /
`AutoProcessor.from_pretrained` under HF_HUB_OFFLINE=1, so every code path that serves a real checkpoint of
the family also serves the demo and the tests. The same (family, size, seed) always gives a byte-identical folder.

    reasoner data tiny-model OUT [--family qwen2.5-vl|qwen3-vl] [--size demo] [--seed 0]
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reasoner.atomic import atomic_dir
from reasoner.config import TINY_FAMILIES, TINY_SIZES
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

# One merged visual token covers a 28x28 patch (14-px patches, 2x2 spatial merge) in both families: the
# synthetic worlds draw on this 28-px grid. Qwen3-VL's released models use 16-px patches (32-px tokens), but a
# tiny model is built from a config, so its patch size is ours to choose; 14 keeps one world cell per token.
PATCH_SIZE = 14
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
PIXELS_PER_VISUAL_TOKEN = (PATCH_SIZE * MERGE_SIZE) ** 2


@dataclass(frozen=True)
class TinySize:
    """Shape of a tiny model. `head_dim = text_hidden // text_heads`, a multiple of 32 (see `mrope_section`)."""

    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vision_depth: int
    vision_hidden: int
    vision_heads: int
    vision_intermediate: int
    vocab_size: int  # an upper bound: the built-in corpus supports ~1,500 tokens
    deepstack_blocks: tuple[int, ...]
    """Qwen3-VL only: vision blocks whose features are added to the first text layers (the 8B taps 8, 16, 24)."""
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
        vision_depth=2,
        vision_hidden=64,
        vision_heads=4,
        vision_intermediate=128,
        vocab_size=2048,
        deepstack_blocks=(0,),
    ),
    # ~10M parameters: for runs that should learn more than the format in a CPU demo.
    "small": TinySize(
        text_hidden=256,
        text_layers=4,
        text_heads=4,
        text_kv_heads=2,
        text_intermediate=768,
        vision_depth=4,
        vision_hidden=128,
        vision_heads=4,
        vision_intermediate=256,
        vocab_size=2048,
        deepstack_blocks=(1, 2),
        max_visual_tokens=256,
    ),
}


def _qwen25_settings(spec: TinySize, head_dim: int, text_config: dict, vision_config: dict) -> None:
    """Qwen2.5-VL's own settings: windowed attention in every vision block but the last."""
    vision_config.update({"window_size": 112, "fullatt_block_indexes": [spec.vision_depth - 1]})


def _qwen3_settings(spec: TinySize, head_dim: int, text_config: dict, vision_config: dict) -> None:
    """Qwen3-VL's own settings: an explicit head_dim (its default is 128), interleaved mrope, deepstack taps and
    a learned position grid of one entry per patch of the largest square image (interpolated for others)."""
    if any(b >= spec.vision_depth for b in spec.deepstack_blocks) or len(spec.deepstack_blocks) > spec.text_layers:
        raise ReasonerError(
            f"deepstack_blocks {spec.deepstack_blocks} need vision blocks < {spec.vision_depth} and at most "
            f"{spec.text_layers} of them (one per text layer they feed)"
        )
    text_config["head_dim"] = head_dim
    text_config["rope_parameters"]["mrope_interleaved"] = True
    vision_config["deepstack_visual_indexes"] = list(spec.deepstack_blocks)
    vision_config["num_position_embeddings"] = spec.max_visual_tokens * MERGE_SIZE**2


@dataclass(frozen=True)
class Family:
    """What differs between the model families a tiny model can be built as (transformers class names)."""

    title: str
    config_class: str
    model_class: str
    processor_class: str
    video_processor_class: str
    mrope_section: tuple[int, int, int]
    """The released models' split of the 64 rotary frequencies of a 128-dim head into (t, h, w); scaled to the
    tiny head_dim."""
    settings: Callable[[TinySize, int, dict, dict], None]
    """Adds the family's own keys to (spec, head_dim, text_config, vision_config)."""
    pixel_norm: float | None = None
    """Mean and std of every channel in the released processor (None: the image processor's default, CLIP's)."""


FAMILIES: dict[str, Family] = {
    "qwen2.5-vl": Family(
        "Qwen2.5-VL", "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor",
        "Qwen2VLVideoProcessor", (16, 24, 24), _qwen25_settings,
    ),
    "qwen3-vl": Family(
        "Qwen3-VL", "Qwen3VLConfig", "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor",
        "Qwen3VLVideoProcessor", (24, 20, 20), _qwen3_settings, pixel_norm=0.5,
    ),
}  # fmt: skip
DEFAULT_FAMILY = TINY_FAMILIES[0]
assert tuple(SIZES) == TINY_SIZES and tuple(FAMILIES) == TINY_FAMILIES, "config.schema names the tiny models"


def build_tiny_model(
    out_dir: str | Path, *, family: str = DEFAULT_FAMILY, size: str = "demo", seed: int = 0
) -> Path:
    """Build a random tiny VLM of `family` with a locally trained tokenizer and save it to `out_dir`.

    The folder is written to a temporary sibling first and moved into place, so a crash never leaves a
    half-written model that looks complete. An existing non-empty `out_dir` is an error.
    """
    if family not in FAMILIES:
        raise ReasonerError(f"unknown tiny model family {family!r}; allowed: {sorted(FAMILIES)}")
    if size not in SIZES:
        raise ReasonerError(f"unknown tiny model size {size!r}; allowed: {sorted(SIZES)}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ReasonerError(f"tiny model output folder {out} exists and is not empty; choose a new folder")
    spec, kind = SIZES[size], FAMILIES[family]
    with atomic_dir(out) as staging:
        processor = _build_processor(kind, spec)
        model = _build_model(kind, spec, processor.tokenizer, seed)
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        _write_build_info(staging, family, size, seed, model)
        _canonicalise_json(staging)
    log.info("tiny %s %r (seed %d, %d parameters) written to %s", kind.title, size, seed, _count(model), out)
    return out


def _build_processor(kind: Family, spec: TinySize):
    """The family's processor with image + video processors and a tokenizer trained on the built-in corpus.

    The image and video processors resize to the vision config's patch and merge sizes, within the spec's
    visual-token bounds, so every image becomes whole 28-px tokens."""
    import transformers

    tokenizer = build_tokenizer(spec.vocab_size)
    pixels = {
        "shortest_edge": spec.min_visual_tokens * PIXELS_PER_VISUAL_TOKEN,
        "longest_edge": spec.max_visual_tokens * PIXELS_PER_VISUAL_TOKEN,
    }
    shape = {"patch_size": PATCH_SIZE, "temporal_patch_size": TEMPORAL_PATCH_SIZE, "merge_size": MERGE_SIZE}
    norm = {"image_mean": [kind.pixel_norm] * 3, "image_std": [kind.pixel_norm] * 3} if kind.pixel_norm else {}
    image_processor = transformers.Qwen2VLImageProcessor(size=pixels, **shape, **norm)
    video_processor = getattr(transformers, kind.video_processor_class)(size=pixels, **shape, **norm)
    return getattr(transformers, kind.processor_class)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def _mrope_section(kind: Family, head_dim: int) -> list[int]:
    if head_dim % 32:
        raise ReasonerError(f"tiny model head_dim {head_dim} must be a multiple of 32 (text_hidden / text_heads)")
    return [n * head_dim // 128 for n in kind.mrope_section]


def _build_config(kind: Family, spec: TinySize, tokenizer):
    import transformers

    ids = {
        name: tokenizer.convert_tokens_to_ids(name)
        for name in (IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END)
    }
    head_dim = spec.text_hidden // spec.text_heads
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
            "mrope_section": _mrope_section(kind, head_dim),
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
        "patch_size": PATCH_SIZE,
        "spatial_merge_size": MERGE_SIZE,
        "temporal_patch_size": TEMPORAL_PATCH_SIZE,
    }
    kind.settings(spec, head_dim, text_config, vision_config)
    return getattr(transformers, kind.config_class)(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=True,
    )


def _build_model(kind: Family, spec: TinySize, tokenizer, seed: int):
    import torch
    import transformers

    config = _build_config(kind, spec, tokenizer)
    torch.manual_seed(seed)
    model = getattr(transformers, kind.model_class)(config).eval()
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = transformers.GenerationConfig(
        eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, bos_token_id=eos[1], do_sample=False
    )
    return model


def _write_build_info(folder: Path, family: str, size: str, seed: int, model) -> None:
    info = {
        "builder": "reasoner.models.tiny", "family": family, "size": size, "seed": seed, "parameters": _count(model),
    }
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


def ensure_tiny_model(
    cache_dir: str | Path, *, family: str = DEFAULT_FAMILY, size: str = "demo", seed: int = 0
) -> Path:
    """Return `cache_dir/tiny-<family>-<size>-seed<seed>`, building it first if absent (demos, test sessions)."""
    folder = Path(cache_dir) / f"tiny-{family}-{size}-seed{seed}"
    if not (folder / "tiny_model.json").is_file():
        build_tiny_model(folder, family=family, size=size, seed=seed)
    return folder


def describe_tiny_model(family: str, size: str, seed: int) -> str:
    """How logs and plans name a tiny model, e.g. `tiny random Qwen3-VL ('demo', seed 0)`."""
    return f"tiny random {FAMILIES[family].title} ({size!r}, seed {seed})"


def describe_model_folder(path: str | Path) -> str:
    """One line naming a tiny model folder's family, size, seed and parameter count."""
    info = json.loads((Path(path) / "tiny_model.json").read_text())
    return f"{describe_tiny_model(info['family'], info['size'], info['seed'])}, {info['parameters']:,} parameters"
