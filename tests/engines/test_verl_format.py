"""verl parquet files from our problems, read back by verl's own dataset classes with a tiny Qwen2.5-VL processor:
every image must reach the processor (one <image> per image, pixel limits applied)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from reasoner.data.records.problem import ImageRef, Problem
from reasoner.data.worlds import TASKS, generate_mixed
from reasoner.engines.verl.data_format import ImageLimits, user_content, write_rl_parquet, write_sft_parquet
from reasoner.errors import ReasonerError
from reasoner.models.tiny import ensure_tiny_model
from reasoner.prompts import format_target, load_template

LIMITS = ImageLimits(max_pixels=112 * 112, min_pixels=56 * 56)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", size="demo", seed=0)


@pytest.fixture(scope="module")
def processor(tiny_dir):
    from verl.utils import hf_processor

    return hf_processor(str(tiny_dir))


def drawn(text: str, size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((5, size[1] // 3), text, fill="black")
    return image


@pytest.fixture(scope="module")
def problems(tmp_path_factory) -> list[Problem]:
    """Rendered synthetic problems, a two-image problem (one image by file path, one large) and a question that
    literally contains "<image>"."""
    folder = tmp_path_factory.mktemp("images")
    drawn("3", (60, 60)).save(folder / "small.png")
    pair = Problem(
        id="pair",
        question="Which number is larger?",
        answer="7",
        answer_type="text",
        choices=["3", "7"],
        images=[
            ImageRef(path="small.png", base_dir=str(folder)),
            ImageRef.from_image(drawn("7", (600, 400))),
        ],
    )
    literal = Problem(
        id="literal",
        question="In <image> above, how many bars?",
        answer="4",
        answer_type="integer",
        images=[ImageRef.from_image(drawn("bars", (100, 80)))],
    )
    return [*generate_mixed(list(TASKS), 3, level=1, seed=3), pair, literal]


def image_pad_count(processor, input_ids) -> int:
    return int((input_ids == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum())


def test_rl_parquet_loads_with_rlhf_dataset_and_every_image_reaches_the_processor(
    tmp_path, problems, processor
):
    from verl.utils.dataset.rl_dataset import RLHFDataset

    template = load_template("reason")
    path = write_rl_parquet(problems, tmp_path / "rl.parquet", template, data_source="pool", limits=LIMITS)
    config = OmegaConf.create(
        {
            "max_prompt_length": 4096,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": 1,
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    dataset = RLHFDataset(str(path), processor.tokenizer, config, processor=processor)
    assert len(dataset) == len(problems)
    for index, problem in enumerate(problems):
        row = dataset[index]
        assert row["reward_model"] == {"style": "rule", "ground_truth": problem.answer}
        assert (
            row["extra_info"]["id"] == problem.id and row["extra_info"]["answer_type"] == problem.answer_type
        )
        assert row["extra_info"]["choices"] == problem.choices
        assert row["extra_info"]["question"] == problem.question  # the scorer reads comparisons against it
        # What verl's agent loop does before rollout: vision preprocessing, chat template, processor.
        images, _, _ = asyncio.run(
            RLHFDataset.process_multi_modal_info(row["raw_prompt"], dataset.image_patch_size, config)
        )
        assert len(images) == len(problem.images)
        assert all(image.width * image.height <= LIMITS.max_pixels for image in images)
        text = processor.apply_chat_template(row["raw_prompt"], tokenize=False, add_generation_prompt=True)
        assert (
            template.render(
                problem.question.replace("<image>", ""),
                choices=problem.choices,
                answer_type=problem.answer_type,
            )[:40]
            in text
        )
        inputs = processor(text=[text], images=images, return_tensors="pt")
        assert len(inputs["image_grid_thw"]) == len(problem.images)
        assert (
            image_pad_count(processor, inputs["input_ids"])
            == int(inputs["image_grid_thw"].prod(-1).sum()) // 4
        )


def test_sft_parquet_loads_with_multiturn_sft_dataset_and_trains_only_the_target(
    tmp_path, problems, processor
):
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    template, caption = load_template("reason"), load_template("caption")
    pairs = [
        (p, format_target(f"reasoning for {p.id}", p.answer_label()), template) for p in problems
    ]
    pairs[-1] = (problems[-1], "a caption", caption)  # a row with its own template (data.caption_mix)
    path = write_sft_parquet(pairs, tmp_path / "sft.parquet", limits=LIMITS)
    config = OmegaConf.create({"max_length": 4096, "pad_mode": "no_padding", "truncation": "error"})
    dataset = MultiTurnSFTDataset(str(path), processor.tokenizer, config, processor=processor)
    assert len(dataset) == len(problems)
    import pyarrow.parquet as pq

    users = [row[0]["content"] for row in pq.read_table(path).column("messages").to_pylist()]
    assert caption.text.strip()[:40] in users[-1] and all(caption.text.strip()[:40] not in u for u in users[:-1])
    for index, (problem, target, _) in enumerate(pairs):
        row = dataset[index]
        grid = row["multi_modal_inputs"]["image_grid_thw"]
        assert len(grid) == len(problem.images)
        assert image_pad_count(processor, row["input_ids"]) == int(grid.prod(-1).sum()) // 4
        assert row["multi_modal_inputs"]["pixel_values"].shape[0] == int(grid.prod(-1).sum())
        learned = processor.tokenizer.decode(row["input_ids"][row["loss_mask"].bool()])
        assert learned.startswith(target) and problem.question not in learned


def test_one_placeholder_per_image_even_when_the_question_says_image(problems):
    template = load_template("reason")
    by_id = {p.id: p for p in problems}
    assert user_content(by_id["pair"], template).startswith("<image><image>Which number")
    literal = user_content(by_id["literal"], template)
    assert literal.count("<image>") == 1 and literal.startswith("<image>In  above")


def test_missing_image_file_and_empty_data_are_reported(tmp_path):
    lost = Problem(
        id="lost",
        question="q",
        answer="1",
        answer_type="integer",
        images=[ImageRef(path="nowhere.png", base_dir=str(tmp_path))],
    )
    with pytest.raises(ReasonerError, match="problem lost: image file .*nowhere.png is missing"):
        write_rl_parquet([lost], tmp_path / "rl.parquet", load_template("reason"), data_source="x")
    with pytest.raises(ReasonerError, match="no SFT rows"):
        write_sft_parquet([], tmp_path / "sft.parquet")
    assert not (tmp_path / "rl.parquet").exists()
