"""Pre-flight check of a training stage's prompts: image tokens and length against the limit that would cut them.

Real images come in every size and aspect ratio; a Qwen-VL model turns each into one token per side x side pixels
after resizing it to a multiple of side within [min_pixels, max_pixels] (`smart_resize`), where side = patch size
x spatial merge, read from the processor (28 for Qwen2.5-VL and our tiny models, 32 for a released Qwen3-VL).
Before a stage trains, every
prompt (with its SFT target) is measured without encoding any pixels (image sizes come from the file headers):

    image tokens + text tokens of the chat-rendered prompt (+ target for SFT, + the response budget for
    local GRPO) <= the limit

The limit and the pixel bounds are the ones in force on the stage's engine:
- verl: GRPO prompts <= `cluster.max_prompt_tokens` (verl would silently drop longer ones), SFT prompt + target
  <= `cluster.max_sft_tokens`; images bounded by `cluster.min/max_image_pixels` within the processor's own bounds;
- local: prompt + target / response budget <= the model's `max_position_embeddings`; the processor's bounds.

The stage's statistics (image and prompt tokens per example: min / median / max) go into its manifest; when any
example is over the limit the stage stops before training with a message naming examples and what to change.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from reasoner.config import RunConfig, StageConfig, StageKind
from reasoner.data.records.problem import ImageRef, Problem
from reasoner.errors import ReasonerError
from reasoner.prompts import Template, problem_messages, shown_images

log = logging.getLogger(__name__)

_NAMED = 5


@dataclass(frozen=True)
class PromptBudget:
    """What a stage's examples must fit: `max_tokens` (named `limit_name` in messages), pixel bounds, and tokens
    reserved after the prompt (`reserved_tokens`: local GRPO's response budget)."""

    max_tokens: int
    limit_name: str
    min_pixels: int
    max_pixels: int
    reserved_tokens: int = 0


def image_tokens(width: int, height: int, min_pixels: int, max_pixels: int, *, token_side: int) -> int:
    """Visual tokens of one image after Qwen-VL's resizing (the processor's own `smart_resize`), for merged tokens
    of `token_side` x `token_side` pixels (`pixels_per_token_side`)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    resized_h, resized_w = smart_resize(
        height, width, factor=token_side, min_pixels=min_pixels, max_pixels=max_pixels
    )
    return (resized_h // token_side) * (resized_w // token_side)


def pixels_per_token_side(processor: Any) -> int:
    """Side in pixels of one merged visual token: the image processor's patch size x its merge size."""
    image_processor = processor.image_processor
    return int(image_processor.patch_size) * int(image_processor.merge_size)


def image_size(image: ImageRef) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    import io

    source: Any = io.BytesIO(image.data) if image.data is not None else image.resolved_path()
    try:
        with Image.open(source) as opened:
            return opened.size
    except (FileNotFoundError, OSError) as err:
        raise ReasonerError(
            f"problem {image.owner}: image {image.path or 'bytes'} cannot be read: {err}"
        ) from None


def processor_pixels(processor: Any) -> tuple[int, int]:
    """(min_pixels, max_pixels) a Qwen2-VL image processor resizes to."""
    image_processor = processor.image_processor
    size = image_processor.size
    get = size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)
    low = get("shortest_edge") or getattr(image_processor, "min_pixels", None)
    high = get("longest_edge") or getattr(image_processor, "max_pixels", None)
    if not (low and high):
        raise ReasonerError(f"{type(image_processor).__name__}: no min/max pixels found in its size {size!r}")
    return int(low), int(high)


def stage_budget(run: RunConfig, stage: StageConfig, model_dir: Path, processor: Any) -> PromptBudget:
    """The limit and pixel bounds a stage's examples must fit on the run's engine (see the module docstring)."""
    low, high = processor_pixels(processor)
    if run.engine.value == "verl":
        cluster = run.cluster
        low, high = max(low, cluster.min_image_pixels), min(high, cluster.max_image_pixels)
        if stage.kind == StageKind.grpo:
            return PromptBudget(cluster.max_prompt_tokens, "cluster.max_prompt_tokens", low, high)
        return PromptBudget(cluster.max_sft_tokens, "cluster.max_sft_tokens", low, high)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    context = (
        config.get("text_config", {}).get("max_position_embeddings") or config["max_position_embeddings"]
    )
    reserved = stage.grpo.sampling.max_new_tokens if stage.kind == StageKind.grpo else 0
    return PromptBudget(int(context), "the model's max_position_embeddings", low, high, reserved)


Item = tuple[Problem, str | None, Template]
"""One training example as measured: its problem, its SFT target (None: a prompt alone), its prompt template."""


def measure(items: Sequence[Item], processor: Any, budget: PromptBudget) -> list[tuple[str, int, int, str]]:
    """Per example: (id, image tokens, total tokens, image sizes) with the prompt rendered by the chat template."""
    rendered = [
        processor.apply_chat_template(
            problem_messages(problem, template), tokenize=False, add_generation_prompt=True
        )
        + (target or "")
        for problem, target, template in items
    ]
    text_tokens = processor.tokenizer(rendered, add_special_tokens=False)["input_ids"]
    side = pixels_per_token_side(processor)
    rows = []
    for (problem, _, template), ids in zip(items, text_tokens, strict=True):
        sizes = [image_size(image) for image in shown_images(problem, template)]
        visual = sum(image_tokens(w, h, budget.min_pixels, budget.max_pixels, token_side=side) for w, h in sizes)
        # The rendered text holds one image pad per image; the processor expands each to its visual tokens.
        total = len(ids) - len(sizes) + visual + budget.reserved_tokens
        rows.append((problem.id, visual, total, ", ".join(f"{w}x{h}" for w, h in sizes)))
    return rows


def check_prompts(items: Sequence[Item], processor: Any, budget: PromptBudget, *, stage: str) -> dict[str, float]:
    """Measure every example; return min/median/max image and total tokens, or raise ReasonerError naming the
    examples over the limit (the stage would train on cut or dropped inputs)."""
    if not items:
        return {}
    rows = measure(items, processor, budget)
    visual, total = [row[1] for row in rows], [row[2] for row in rows]
    stats = {
        "image_tokens_min": min(visual), "image_tokens_median": statistics.median(visual),
        "image_tokens_max": max(visual), "prompt_tokens_min": min(total),
        "prompt_tokens_median": statistics.median(total), "prompt_tokens_max": max(total),
        "prompt_token_limit": budget.max_tokens,
    }  # fmt: skip
    log.info(
        "stage %s pre-flight: %d examples, image tokens min/median/max %d/%g/%d, prompt tokens %d/%g/%d "
        "(limit %d = %s; images %d..%d px)", stage, len(rows), min(visual), stats["image_tokens_median"],
        max(visual), min(total), stats["prompt_tokens_median"], max(total), budget.max_tokens, budget.limit_name,
        budget.min_pixels, budget.max_pixels,
    )  # fmt: skip
    over = sorted((row for row in rows if row[2] > budget.max_tokens), key=lambda row: -row[2])
    if over:
        named = "; ".join(
            f"{pid}: {n} tokens, {v} of them image tokens ({sizes} px)" for pid, v, n, sizes in over[:_NAMED]
        )
        raise ReasonerError(
            f"stage {stage}: {len(over)} of {len(rows)} examples exceed {budget.limit_name}={budget.max_tokens} "
            f"and would be cut or dropped, e.g. {named}. Lower the image resolution (cluster.max_image_pixels, now "
            f"{budget.max_pixels} px in force), raise {budget.limit_name}, or leave these problems out"
        )
    return stats


def check_stage(
    run: RunConfig,
    stage: StageConfig,
    init_model: Path,
    items: Sequence[Item],
) -> dict[str, float]:
    """`check_prompts` for one stage's examples ((problem, SFT target or None, prompt template)), with the processor
    of its start model and the budget of the run's engine; the statistics are for the stage manifest."""
    from reasoner.models.loading import load_processor

    processor = load_processor(init_model)
    return check_prompts(items, processor, stage_budget(run, stage, init_model, processor), stage=stage.name)
