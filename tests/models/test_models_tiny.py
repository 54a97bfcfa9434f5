"""The tiny Qwen2.5-VL and Qwen3-VL: built offline, reload through the Auto classes, deterministic, usable for
generation, with the same 28-px visual tokens in both families."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from reasoner.errors import ReasonerError
from reasoner.models import build_tiny_model, encode_prompts, load_model
from reasoner.models.inputs import prompt_token_counts
from reasoner.models.loading import ATTENTION, load_processor
from reasoner.models.tiny import FAMILIES, SIZES, ensure_tiny_model

MODEL_CLASSES = {"qwen2.5-vl": "Qwen2_5_VLForConditionalGeneration", "qwen3-vl": "Qwen3VLForConditionalGeneration"}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_dir(request, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(family, its tiny 'demo' model folder, seed 0) for each family."""
    folder = ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", family=request.param, size="demo", seed=0)
    return request.param, folder


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def test_folder_reloads_offline_with_auto_classes(family_dir: tuple[str, Path]) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    family, folder = family_dir
    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    assert type(model).__name__ == MODEL_CLASSES[family]
    assert processor.image_processor is not None and processor.video_processor is not None
    assert 0.5e6 < sum(p.numel() for p in model.parameters()) < 2e6
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    # The processors cut images into the vision tower's own patches and merge them into 28-px tokens.
    vision = model.config.vision_config
    for images in (processor.image_processor, processor.video_processor):
        assert (images.patch_size, images.merge_size, images.temporal_patch_size) == (14, 2, 2)
        assert (vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size) == (14, 2, 2)
        assert (images.size["shortest_edge"], images.size["longest_edge"]) == (4 * 784, 64 * 784)


def test_qwen3_folder_has_deepstack_and_interleaved_rotary_positions(family_dir: tuple[str, Path]) -> None:
    import json

    family, folder = family_dir
    config = json.loads((folder / "config.json").read_text())
    if family == "qwen2.5-vl":
        assert config["model_type"] == "qwen2_5_vl" and "deepstack_visual_indexes" not in config["vision_config"]
        return
    assert config["model_type"] == "qwen3_vl"
    assert config["vision_config"]["deepstack_visual_indexes"] == [0]
    rope = config["text_config"]["rope_parameters"]
    assert rope["mrope_interleaved"] and rope["mrope_section"] == [6, 5, 5]  # Qwen3-VL's 24:20:20 of head_dim/2
    assert config["text_config"]["head_dim"] == 32
    assert json.loads((folder / "tiny_model.json").read_text())["family"] == "qwen3-vl"


def test_a_video_goes_through_the_saved_video_processor(family_dir: tuple[str, Path]) -> None:
    import numpy as np

    _, folder = family_dir
    processor = load_processor(folder)
    frames = np.zeros((4, 56, 84, 3), dtype=np.uint8)  # 4 frames -> 2 temporal patches of 2x3 tokens
    out = processor.video_processor(videos=[frames], return_tensors="pt")
    assert out["video_grid_thw"].tolist() == [[2, 4, 6]]


def test_tokenizer_splits_digits_and_keeps_format_tokens_whole(tiny_model_dir: Path) -> None:
    tokenizer = load_processor(tiny_model_dir).tokenizer
    assert 1000 < len(tokenizer) <= SIZES["demo"].vocab_size
    ids = tokenizer("<think>12 + 305</think><answer>317</answer>", add_special_tokens=False)["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert pieces[0] == "<think>" and "</answer>" == pieces[-1]
    assert [p for p in pieces if p.strip("Ġ").isdigit()] == ["1", "2", "3", "0", "5", "3", "1", "7"]
    for token in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<think>", "</answer>"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    # Rewards read the format tokens, so decoding without special tokens must keep them but drop <|im_end|>.
    decoded = tokenizer.decode(
        ids + [tokenizer.convert_tokens_to_ids("<|im_end|>")], skip_special_tokens=True
    )
    assert decoded == "<think>12 + 305</think><answer>317</answer>"


def test_chat_template_renders_qwen_turns_and_image_placeholder(tiny_model_dir: Path) -> None:
    processor = load_processor(tiny_model_dir)
    text = processor.apply_chat_template(_user("How many?"), tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>How many?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_same_seed_gives_identical_folder_and_other_seed_differs(
    tmp_path: Path, family_dir: tuple[str, Path]
) -> None:
    family, folder = family_dir
    again = build_tiny_model(tmp_path / "again", family=family, size="demo", seed=0)
    other = build_tiny_model(tmp_path / "other", family=family, size="demo", seed=1)
    assert _hashes(again) == _hashes(folder)
    differing = {k for k, v in _hashes(other).items() if _hashes(again)[k] != v}
    assert differing == {"model.safetensors", "tiny_model.json"}


def test_build_refuses_non_empty_folder_and_unknown_size(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ReasonerError, match="not empty"):
        build_tiny_model(tmp_path / "full")
    with pytest.raises(ReasonerError, match="allowed: \\['demo', 'small'\\]"):
        build_tiny_model(tmp_path / "new", size="huge")
    with pytest.raises(ReasonerError, match="allowed: \\['qwen2.5-vl', 'qwen3-vl'\\]"):
        build_tiny_model(tmp_path / "new", family="qwen4")


def test_encode_prompts_left_pads_and_counts_visual_tokens(family_dir: tuple[str, Path], digit_images: list) -> None:
    processor = load_processor(family_dir[1])
    small, large = digit_images[0], digit_images[3]  # 56x56 -> 2x2 merged tokens, 224x224 -> 8x8
    batch = encode_prompts(processor, [_user("a"), _user("a")], [[small], [large]])
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert (batch["input_ids"] == image_id).sum(dim=1).tolist() == [4, 64]
    assert "mm_token_type_ids" in batch and batch["image_grid_thw"].tolist() == [[1, 4, 4], [1, 16, 16]]
    counts = prompt_token_counts(batch)
    assert counts[1] - counts[0] == 60
    assert batch["attention_mask"][0, :60].sum() == 0 and batch["attention_mask"][0, -1] == 1  # left padding
    right = encode_prompts(processor, [_user("a"), _user("a")], [[small], [large]], padding_side="right")
    assert right["attention_mask"][0, 0] == 1 and right["attention_mask"][0, -60:].sum() == 0
    with pytest.raises(ReasonerError, match="padding_side"):
        encode_prompts(processor, [_user("a")], [[small]], padding_side="middle")


def test_large_images_are_capped_at_max_visual_tokens(tiny_model_dir: Path) -> None:
    from PIL import Image

    processor = load_processor(tiny_model_dir)
    batch = encode_prompts(processor, [_user("a")], [[Image.new("RGB", (640, 480), "white")]])
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert (batch["input_ids"] == image_id).sum().item() <= SIZES["demo"].max_visual_tokens


def test_load_model_forwards_a_batch_in_eval_mode(family_dir: tuple[str, Path], digit_images: list) -> None:
    model, processor = load_model(family_dir[1])
    assert not model.training and model.config._attn_implementation == ATTENTION
    batch = encode_prompts(processor, [_user(str(i)) for i in range(8)], [[image] for image in digit_images])
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(logits).all()


def test_grouped_attention_equals_transformers_sdpa(
    family_dir: tuple[str, Path], digit_images: list
) -> None:
    """`grouped_sdpa` skips transformers' copy of the grouped K/V heads; the logits and greedy tokens of a padded
    batch with images are exactly those of transformers' own `sdpa`, the gradients equal to float rounding."""
    ours, processor = load_model(family_dir[1])
    theirs, _ = load_model(family_dir[1])
    theirs.set_attn_implementation("sdpa")
    assert theirs.config._attn_implementation == "sdpa" and ours.config.text_config.num_key_value_heads < (
        ours.config.text_config.num_attention_heads
    )  # the demo model groups its K/V heads: the case the copy is for
    prompts = [_user("a" * (1 + 5 * i)) for i in range(4)]  # unequal lengths: a padded batch, a mask
    batch = encode_prompts(processor, prompts, [[image] for image in digit_images[:4]])
    assert (batch["attention_mask"] == 0).any()
    grads = []
    for model in (ours, theirs):
        model.zero_grad()
        logits = model(**batch).logits
        logits.logsumexp(-1).sum().backward()
        grads.append((logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    assert torch.equal(grads[0][0], grads[1][0])
    assert len(grads[0][1]) == len(grads[1][1]) > 0
    # The backward sums the grouped heads' gradients in another order: equal to float rounding.
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    with torch.no_grad():
        tokens = [m.generate(**batch, max_new_tokens=8, do_sample=False) for m in (ours, theirs)]
    assert torch.equal(*tokens)


def test_generate_with_an_image_continues_every_prompt(family_dir: tuple[str, Path], digit_images: list) -> None:
    model, processor = load_model(family_dir[1])
    batch = encode_prompts(processor, [_user("a"), _user("b")], [[digit_images[0]], [digit_images[3]]])
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False, min_new_tokens=6)
    new = out[:, batch["input_ids"].shape[1] :]
    assert new.shape == (2, 6) and (new < len(processor.tokenizer)).all()
    # The pixels reach the prediction: two images of one size give different next-token logits.
    from PIL import Image

    with torch.no_grad():
        logits = [
            model(**encode_prompts(processor, [_user("a")], [[Image.new("RGB", (56, 56), color)]])).logits[0, -1]
            for color in ("white", "navy")
        ]
    assert not torch.allclose(*logits)


def test_load_model_errors_name_the_folder(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ReasonerError, match="no config.json"):
        load_model(tmp_path / "missing")
    # Without the image/video processor files transformers silently returns a bare tokenizer: we must refuse.
    broken = tmp_path / "no_image_processor"
    shutil.copytree(tiny_model_dir, broken)
    for name in ("preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json"):
        (broken / name).unlink(missing_ok=True)
    with pytest.raises(ReasonerError, match="image processor|processor"):
        load_model(broken)
    with pytest.raises(ReasonerError, match="allowed"):
        load_model(tiny_model_dir, dtype="float8")


def test_a_bare_tokenizer_is_refused_as_processor(tiny_model_dir: Path) -> None:
    from reasoner.models.loading import check_processor

    tokenizer = load_processor(tiny_model_dir).tokenizer  # what AutoProcessor returns without torchvision
    with pytest.raises(ReasonerError, match="without an image processor.*torchvision"):
        check_processor(tokenizer, tiny_model_dir)


def test_cli_builds_a_tiny_model(tmp_path: Path, capsys: pytest.CaptureFixture, tiny_model_dir: Path) -> None:
    from reasoner.cli import main

    assert main(["data", "tiny-model", str(tmp_path / "m"), "--size", "demo", "--seed", "0"]) == 0
    assert "tiny random Qwen2.5-VL ('demo', seed 0)," in capsys.readouterr().out
    assert _hashes(tmp_path / "m") == _hashes(tiny_model_dir)
    assert main(["data", "tiny-model", str(tmp_path / "m")]) == 2  # not empty: a clean error, no traceback
    assert main(["data", "tiny-model", str(tmp_path / "q3"), "--family", "qwen3-vl"]) == 0
    assert "tiny random Qwen3-VL ('demo', seed 0)," in capsys.readouterr().out
