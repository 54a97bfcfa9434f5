"""The transformers backend on the tiny model: batching, sampling, seeds, prompt limits and bad input."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from reasoner.errors import ReasonerError
from reasoner.generation import GenerationRequest, Generator, HFGenerator, SamplingSpec, user_message

GREEDY = SamplingSpec(n=1, temperature=0.0, max_new_tokens=12)


@pytest.fixture(scope="module")
def generator(tiny_model_dir: Path) -> HFGenerator:
    return HFGenerator.from_pretrained(tiny_model_dir, batch_size=8, show_progress=False)


def _requests(images: list, prefix: str = "q") -> list[GenerationRequest]:
    return [
        GenerationRequest(user_message(f"What is the sum of the digits? {i}"), [image], id=f"{prefix}{i}")
        for i, image in enumerate(images)
    ]


def test_batch_of_eight_image_prompts_generates_in_order(generator: HFGenerator, digit_images: list) -> None:
    assert isinstance(generator, Generator)
    results = generator.generate(_requests(digit_images), GREEDY)
    assert len(results) == 8 and all(len(r) == 1 for r in results)
    eos = generator.eos_token_ids
    for [completion] in results:
        assert 1 <= len(completion.token_ids) <= 12
        if completion.finish_reason == "stop":
            assert completion.token_ids[-1] in eos and not set(completion.token_ids[:-1]) & eos
        else:
            assert len(completion.token_ids) == 12 and not set(completion.token_ids) & eos
        assert completion.text == generator.processor.tokenizer.decode(
            completion.token_ids, skip_special_tokens=True
        )
    # Request order is kept: generating the last request alone gives the last result.
    [alone] = generator.generate(_requests(digit_images)[-1:], GREEDY)
    assert alone == results[-1]
    assert generator.stats.prompts == 9


def test_greedy_matches_an_unbatched_forward_argmax(generator: HFGenerator, digit_images: list) -> None:
    from reasoner.models.inputs import encode_prompts

    request = _requests(digit_images[2:3])[0]
    [[completion]] = generator.generate([request], SamplingSpec(max_new_tokens=3))
    inputs = encode_prompts(generator.processor, [request.messages], [request.images])
    with torch.no_grad():
        first = generator.model(**inputs).logits[0, -1].argmax().item()
    assert completion.token_ids[0] == first


def test_sampling_is_seeded_n_per_request_and_leaves_caller_rng_alone(
    generator: HFGenerator, digit_images: list
) -> None:
    requests = _requests(digit_images[:3])
    spec = SamplingSpec(n=4, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=11)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = generator.generate(requests, spec)
    assert torch.rand(1) == before
    assert [len(r) for r in first] == [4, 4, 4]
    assert generator.generate(requests, spec) == first
    assert len({c.token_ids for c in first[0]}) > 1  # a random tiny model samples different responses
    other = generator.generate(requests, SamplingSpec(n=4, temperature=1.0, max_new_tokens=8, seed=12))
    assert other != first


def test_greedy_with_n_copies_returns_identical_completions(
    generator: HFGenerator, digit_images: list
) -> None:
    [copies] = generator.generate(_requests(digit_images[:1]), SamplingSpec(n=3, max_new_tokens=6))
    assert len(copies) == 3 and copies[0] == copies[1] == copies[2]


def test_long_prompt_error_names_the_request(tiny_model_dir: Path, digit_images: list) -> None:
    limited = HFGenerator.from_pretrained(tiny_model_dir, max_prompt_tokens=60, show_progress=False)
    requests = _requests(digit_images[:1])
    requests.append(GenerationRequest(user_message("long question " * 30), [digit_images[0]], id="long-one"))
    with pytest.raises(ReasonerError, match="'long-one'.*> max_prompt_tokens=60"):
        limited.generate(requests, GREEDY)


def test_long_prompt_truncation_fits_the_limit_and_is_counted(
    tiny_model_dir: Path, digit_images: list
) -> None:
    from reasoner.models.inputs import encode_prompts, prompt_token_counts

    limited = HFGenerator.from_pretrained(
        tiny_model_dir, max_prompt_tokens=60, on_long_prompt="truncate", show_progress=False
    )
    question = "Count the circles. " * 30 + "Answer with an integer."
    request = GenerationRequest(user_message(question), [digit_images[0]], id="long")
    [prepared] = limited.limiter.fit(limited.limiter.prepare([request]))
    assert (
        prompt_token_counts(encode_prompts(limited.processor, [prepared.messages], [prepared.images]))[0]
        <= 60
    )
    text = prepared.messages[0]["content"][1]["text"]
    assert (
        text.startswith("Count the circles.") and text.endswith("Answer with an integer.") and " ... " in text
    )
    results = limited.generate([request, _requests(digit_images[1:2])[0]], GREEDY)
    # Counted twice: once in fit() above, once in generate().
    assert len(results) == 2 and limited.stats.truncated_prompts == 2
    # Images alone over the limit cannot be truncated away.
    tiny_limit = HFGenerator(
        limited.model, limited.processor, max_prompt_tokens=10, on_long_prompt="truncate"
    )
    with pytest.raises(ReasonerError, match="'big'.*too short"):
        tiny_limit.generate([GenerationRequest(user_message("hi"), [digit_images[3]], id="big")], GREEDY)


def test_bad_images_name_the_request(generator: HFGenerator, digit_images: list, tmp_path: Path) -> None:
    missing = GenerationRequest(user_message("q"), [str(tmp_path / "nope.png")], id="pid-7")
    with pytest.raises(ReasonerError, match="'pid-7'.*does not exist"):
        generator.generate([missing], GREEDY)
    corrupt_file = tmp_path / "corrupt.png"
    corrupt_file.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(ReasonerError, match="'pid-8'.*cannot read image"):
        generator.generate([GenerationRequest(user_message("q"), [corrupt_file], id="pid-8")], GREEDY)
    with pytest.raises(ReasonerError, match="'pid-9'.*cannot read image"):
        generator.generate([GenerationRequest(user_message("q"), [b"garbage"], id="pid-9")], GREEDY)
    with pytest.raises(ReasonerError, match="request #1.*1 image part.*2 image"):
        generator.generate(
            [_requests(digit_images[:1])[0], GenerationRequest(user_message("q"), digit_images[:2])], GREEDY
        )


def test_images_from_paths_and_bytes_match_pil(
    generator: HFGenerator, digit_images: list, tmp_path: Path
) -> None:
    path = tmp_path / "img.png"
    digit_images[4].save(path)
    buffer = io.BytesIO()
    digit_images[4].save(buffer, format="PNG")
    requests = [
        GenerationRequest(user_message("q"), [source])
        for source in (digit_images[4], path, buffer.getvalue())
    ]
    results = generator.generate(requests, GREEDY)
    assert results[0] == results[1] == results[2]


def test_live_model_is_shared_and_its_training_mode_restored(
    generator: HFGenerator, digit_images: list
) -> None:
    live = HFGenerator(generator.model, generator.processor, show_progress=False)
    assert live.model is generator.model
    generator.model.train()
    try:
        live.generate(_requests(digit_images[:1]), GREEDY)
        assert generator.model.training
    finally:
        generator.model.eval()


def test_sampling_spec_validation() -> None:
    with pytest.raises(ReasonerError, match="temperature"):
        SamplingSpec(temperature=-1)
    with pytest.raises(ReasonerError, match="top_p"):
        SamplingSpec(top_p=0)
    with pytest.raises(ReasonerError, match="allowed: \\['error', 'truncate'\\]"):
        from reasoner.generation.base import check_long_prompt_policy

        check_long_prompt_policy("drop")


def test_forked_processes_give_the_completions_of_one_process(generator: HFGenerator, digit_images: list) -> None:
    """`processes=2` shares the batches between this process and a forked one: the same batches with the same
    seeds, so exactly the same sampled completions and token counts; an error in the forked process's batch is
    raised here with its own message."""
    spec = SamplingSpec(n=2, temperature=1.0, max_new_tokens=10, seed=5)
    requests = _requests(digit_images) + _requests(digit_images, prefix="r")  # 16 prompts: 4 batches of 4 x 2
    forked = HFGenerator(generator.model, generator.processor, batch_size=8, show_progress=False, processes=2)
    one = HFGenerator(generator.model, generator.processor, batch_size=8, show_progress=False)
    assert forked.generate(requests, spec) == one.generate(requests, spec)
    assert forked.stats.generated_tokens == one.stats.generated_tokens > 0
    # The prompt limit is checked per batch, in the process that generates it: batch 1 is the forked one's.
    limited = HFGenerator(
        generator.model, generator.processor, batch_size=8, show_progress=False, processes=2, max_prompt_tokens=60
    )
    short = _requests([digit_images[0]] * 4)
    long = GenerationRequest(user_message("Count the circles. " * 30), [digit_images[0]], id="long-one")
    with pytest.raises(ReasonerError, match="'long-one'.*max_prompt_tokens=60"):
        limited.generate([*short, long], spec)
    # A prompt shortened in the forked process is counted here.
    truncating = HFGenerator(
        generator.model, generator.processor, batch_size=8, show_progress=False, processes=2, max_prompt_tokens=60,
        on_long_prompt="truncate",
    )  # fmt: skip
    assert len(truncating.generate([*short, long], spec)) == 5 and truncating.stats.truncated_prompts == 1
