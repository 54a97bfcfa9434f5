"""The pre-flight prompt check on real TabMWP tables and MATH-Vision figures (varied sizes and aspect ratios):
our token counts equal the processor's own encoding, max_image_pixels shrinks them, and prompts over the limit
stop the stage with a message naming them."""

from __future__ import annotations

import pytest

from reasoner.config import Engine, GRPOConfig, RunConfig, SamplingConfig, StageConfig, StageKind
from reasoner.data.stage.preflight import (
    PromptBudget,
    check_prompts,
    image_size,
    image_tokens,
    measure,
    pixels_per_token_side,
    processor_pixels,
    stage_budget,
)
from reasoner.errors import ReasonerError
from reasoner.models.inputs import encode_prompts, prompt_token_counts
from reasoner.models.loading import load_processor
from reasoner.prompts import load_template, problem_messages

TEMPLATE = load_template("reason")


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return load_processor(tiny_model_dir)


@pytest.fixture(scope="module")
def real_problems(tabmwp_problems, mathvision_problems):
    """Tables and figures of varied shapes: the widest, tallest and largest of each set, and a few others."""
    chosen = []
    for problems in (tabmwp_problems, mathvision_problems):
        sizes = {p.id: image_size(p.images[0]) for p in problems}
        chosen += [
            max(problems, key=lambda p: sizes[p.id][0] / sizes[p.id][1]),
            min(problems, key=lambda p: sizes[p.id][0] / sizes[p.id][1]),
            max(problems, key=lambda p: sizes[p.id][0] * sizes[p.id][1]),
            *problems[:3],
        ]
    return chosen


def test_counts_equal_the_processors_encoding(real_problems, processor):
    low, high = processor_pixels(processor)
    budget = PromptBudget(10**6, "test", low, high)
    rows = measure([(p, None, TEMPLATE) for p in real_problems], processor, budget)
    messages = [problem_messages(p, TEMPLATE) for p in real_problems]
    encoded = encode_prompts(processor, messages, [p.load_images() for p in real_problems])
    assert [row[2] for row in rows] == prompt_token_counts(encoded)
    shapes = {row[3] for row in rows}
    assert len(shapes) == len(rows)  # all different sizes and aspect ratios


def test_each_example_is_measured_with_its_own_template(real_problems, processor):
    """data.caption_mix's examples carry the describing template: measured with it, not the stage's."""
    low, high = processor_pixels(processor)
    problem, caption = real_problems[0], load_template("caption")
    rows = measure([(problem, None, TEMPLATE), (problem, None, caption)], processor, PromptBudget(10**6, "test", low, high))
    for row, template in zip(rows, (TEMPLATE, caption), strict=True):
        encoded = encode_prompts(processor, [problem_messages(problem, template)], [problem.load_images()])
        assert row[2] == prompt_token_counts(encoded)[0]
    assert rows[0][2] != rows[1][2]


def test_max_image_pixels_bounds_the_image_tokens(real_problems, processor):
    low, _ = processor_pixels(processor)
    large = max(real_problems, key=lambda p: image_size(p.images[0])[0] * image_size(p.images[0])[1])
    width, height = image_size(large.images[0])
    side = pixels_per_token_side(processor)
    assert side == 28
    larger, smaller = (image_tokens(width, height, low, pixels, token_side=side) for pixels in (401408, 50176))
    assert larger > smaller
    assert smaller <= 50176 // 784


@pytest.mark.parametrize("patch_size", [14, 16])  # 16: a released Qwen3-VL's patches (32-px tokens)
def test_token_side_follows_the_image_processor(patch_size):
    from types import SimpleNamespace

    from PIL import Image
    from transformers import Qwen2VLImageProcessor

    low, high = 56 * 56, 512 * 512
    images = [Image.new("RGB", size, "white") for size in [(60, 45), (300, 120), (1000, 700), (37, 500)]]
    image_processor = Qwen2VLImageProcessor(
        patch_size=patch_size, merge_size=2, size={"shortest_edge": low, "longest_edge": high}
    )
    grid = image_processor(images=images, return_tensors="pt")["image_grid_thw"]  # [I, 3] in patches
    side = pixels_per_token_side(SimpleNamespace(image_processor=image_processor))
    counted = [image_tokens(*image.size, low, high, token_side=side) for image in images]
    assert side == 2 * patch_size and counted == (grid.prod(-1) // 4).tolist()


def test_prompts_over_the_limit_stop_the_stage_naming_them(real_problems, processor):
    low, high = processor_pixels(processor)
    stats = check_prompts(
        [(p, None, TEMPLATE) for p in real_problems],
        processor,
        PromptBudget(10**6, "test", low, high),
        stage="grpo1",
    )
    assert (
        stats["image_tokens_min"] <= stats["image_tokens_median"] <= stats["image_tokens_max"] <= high // 784
    )
    limit = int(stats["prompt_tokens_median"])
    with pytest.raises(
        ReasonerError, match=r"stage grpo1: \d+ of 12 examples exceed cluster.max_prompt_tokens"
    ):
        check_prompts(
            [(p, None, TEMPLATE) for p in real_problems],
            processor,
            PromptBudget(limit, "cluster.max_prompt_tokens", low, high),
            stage="grpo1",
        )


def test_the_budget_follows_the_engine(tiny_model_dir, processor):
    grpo = StageConfig(kind=StageKind.grpo, grpo=GRPOConfig(sampling=SamplingConfig(max_new_tokens=32)))
    local = stage_budget(RunConfig(name="t"), grpo, tiny_model_dir, processor)
    assert (local.max_tokens, local.reserved_tokens) == (4096, 32)
    run = RunConfig(name="t", engine=Engine.verl)
    run.cluster.max_image_pixels = 20000
    verl = stage_budget(run, grpo, tiny_model_dir, processor)
    assert (verl.limit_name, verl.max_pixels, verl.reserved_tokens) == ("cluster.max_prompt_tokens", 20000, 0)
    sft = stage_budget(run, StageConfig(kind=StageKind.sft), tiny_model_dir, processor)
    assert sft.limit_name == "cluster.max_sft_tokens"
