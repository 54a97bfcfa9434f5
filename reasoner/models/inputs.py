"""Chat messages + images -> model inputs, shared by the generators and the SFT / GRPO trainers.

Messages use the transformers multimodal chat format:
`[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]}]`; each `{"type": "image"}`
part consumes one image of the request, in order.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)

Messages = list[dict[str, Any]]
ImageLike = Any  # a PIL image, a file path, or encoded image bytes


def count_image_slots(messages: Messages) -> int:
    """How many images a conversation expects: one per `{"type": "image"}` content part."""
    slots = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            slots += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image")
    return slots


def load_image(image: ImageLike, where: str) -> Any:
    """Return `image` as a decoded RGB PIL image; a missing or unreadable image raises `ReasonerError` naming `where`."""
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(image, Image.Image):
            image.load()
            return image if image.mode == "RGB" else image.convert("RGB")
        if isinstance(image, (bytes, bytearray)):
            opened = Image.open(io.BytesIO(image))
        elif isinstance(image, (str, Path)):
            if not Path(image).is_file():
                raise ReasonerError(f"{where}: image file {image} does not exist")
            opened = Image.open(image)
        else:
            raise ReasonerError(
                f"{where}: unsupported image type {type(image).__name__}; use a PIL image, path or bytes"
            )
        opened.load()
        return opened.convert("RGB")
    except Image.DecompressionBombError as err:
        raise ReasonerError(f"{where}: image too large to decode safely ({err}); downscale it or drop it") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ReasonerError(f"{where}: cannot read image ({err})") from err


def prepare_images(messages: Messages, images: Sequence[ImageLike], where: str) -> list[Any]:
    """Decode a request's images and check their count against the image parts of its messages."""
    slots = count_image_slots(messages)
    if slots != len(images):
        raise ReasonerError(
            f"{where}: the messages have {slots} image part(s) but {len(images)} image(s) were given"
        )
    return [load_image(image, f"{where} image {i}") for i, image in enumerate(images)]


def render_prompts(
    processor: Any, messages_batch: Sequence[Messages], *, add_generation_prompt: bool = True
) -> list[str]:
    """Render each conversation with the processor's chat template (text with one image pad per image)."""
    return [
        processor.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )
        for messages in messages_batch
    ]


def encode_prompts(
    processor: Any,
    messages_batch: Sequence[Messages],
    images_batch: Sequence[Sequence[Any]],
    *,
    add_generation_prompt: bool = True,
    padding_side: str = "left",
) -> Any:
    """Tokenize a batch of conversations with their images into one padded `BatchFeature`.

    The result holds `input_ids`, `attention_mask`, `pixel_values`, `image_grid_thw` and `mm_token_type_ids`
    (keep the last one: Qwen-VL models compute their 3-D positions from it; without it Qwen2.5-VL silently
    falls back to 1-D positions). Images must already be decoded PIL images (see `prepare_images`). Left padding
    is what batched generation needs; trainers that append targets may ask for right padding.
    """
    if len(messages_batch) != len(images_batch):
        raise ReasonerError(f"{len(messages_batch)} conversations but {len(images_batch)} image lists")
    if padding_side not in ("left", "right"):
        raise ReasonerError(f"padding_side {padding_side!r}; allowed: ['left', 'right']")
    texts = render_prompts(processor, messages_batch, add_generation_prompt=add_generation_prompt)
    flat_images = [image for images in images_batch for image in images]
    return processor(
        text=texts,
        images=flat_images or None,
        padding=True,
        padding_side=padding_side,
        return_tensors="pt",
    )


def prompt_token_counts(batch: Any) -> list[int]:
    """Non-padding tokens of each row of an encoded batch (image tokens included)."""
    return [int(n) for n in batch["attention_mask"].sum(dim=1).tolist()]


def shorten_longest_text(processor: Any, messages: Messages, excess_tokens: int) -> Messages | None:
    """Drop `excess_tokens` (+ a marker) from the middle of the longest text part, keeping its head and tail.

    The middle is cut because prompts put the question first and the answer-format instruction last; image
    parts are never touched (their tokens must match the image). Returns None when no text part is long enough.
    """
    tokenizer = processor.tokenizer
    best: tuple[int, int, int] | None = None  # (token count, message index, part index)
    for m, message in enumerate(messages):
        content = message.get("content")
        parts = [content] if isinstance(content, str) else content
        for p, part in enumerate(parts):
            text = part if isinstance(part, str) else part.get("text") if part.get("type") == "text" else None
            if text:
                n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
                if best is None or n > best[0]:
                    best = (n, m, p)
    marker = " ... "
    cut = excess_tokens + len(tokenizer(marker, add_special_tokens=False)["input_ids"])
    if best is None or best[0] - cut < 2:
        return None
    n, m, p = best
    content = messages[m]["content"]
    text = content if isinstance(content, str) else content[p]["text"]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    head = (n - cut) // 2
    shortened = tokenizer.decode(ids[:head]) + marker + tokenizer.decode(ids[n - (n - cut - head) :])
    new_messages = [dict(message) for message in messages]
    if isinstance(content, str):
        new_messages[m]["content"] = shortened
    else:
        new_messages[m]["content"] = [dict(part) for part in content]
        new_messages[m]["content"][p]["text"] = shortened
    return new_messages
