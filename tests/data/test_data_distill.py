"""Caption-then-reason distillation: verification, selection, trimming and length filtering on realistic chains,
end to end on the tiny model (captioner and reasoner), resuming after a crash, the CLI and the config checks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

import rewards
from reasoner import cli
from reasoner import config as config_mod
from reasoner.config import DistillConfig, SamplingConfig
from reasoner.data.records.files import read_problems
from reasoner.data.records.problem import Problem
from reasoner.data.stage.distill import distill, reason_prompt
from reasoner.data.stage.selection import choose_chain, sft_examples, token_counter, verify
from reasoner.data.worlds import generate_mixed
from reasoner.errors import ReasonerError
from reasoner.generation import Completion, GenerationRequest, HFGenerator, SamplingSpec
from reasoner.generation.base import requests_for
from reasoner.prompts import format_target, load_template

REPO = Path(__file__).resolve().parents[2]


def _problem(
    answer: str,
    answer_type: str,
    *,
    choices: list[str] | None = None,
    precision: int | None = None,
    question: str = "How many red shapes are there?",
) -> Problem:
    return Problem(
        id=f"p-{answer}",
        question=question,
        answer=answer,
        answer_type=answer_type,
        choices=choices,
        precision=precision,
        caption="Seven red squares and two blue circles on white.",
    )


def _score(text: str, problem: Problem) -> rewards.RewardScore:
    answer_type = None if problem.answer_type == "expression" else problem.answer_type
    return rewards.score(
        text,
        problem.answer,
        answer_type=answer_type,
        choices=problem.choices,
        precision=problem.precision,
        unit=problem.unit,
    )


SEVEN = _problem("7", "integer")
HALF = _problem("0.5", "float", precision=1, question="What fraction of the shapes is red?")
COLOUR = _problem("purple", "text", choices=["purple", "red", "green"], question="Which bar is the tallest?")
ROOT = _problem("2\\sqrt{3}", "expression", question="Find x.")

PADDING = (
    " I go over the description once more, row by row and column by column, to make sure no shape is missed."
)
LONG = f"<think>The description lists the shapes by row.{PADDING * 3} Red squares: 3 in the top row and 4 in the bottom row, so 3 + 4 = 7.</think>\nThere are 7 red shapes.\n<answer>7</answer>"  # noqa: E501
LOOP = (
    "<think>Red squares: 3 in the top row and 4 in the bottom row, so 3 + 4 = 7. Wait, let me re-check the "
    "bottom row. Hmm, the bottom row has 4 red squares. Yes, 7.</think>\nThere are 7 red shapes.\n<answer>7</answer>"
)
WRONG = "<think>I see 3 in the top row and 3 below, 6 in all.</think>\nThere are 6.\n<answer>6</answer>"
NO_ANSWER = "<think>Red squares: 3 in the top row and 4 in the bottom row, so"
SEVERAL = "<think>3 + 4 = 7.</think>\nFirst I thought <answer>6</answer> but it is <answer>7</answer>"
FIXED_BY_REFLECTION = (
    "<think>3 + 3 = 6, so the answer is 6. But wait, the bottom row has 4 squares: 3 + 4 = 7."
    "</think>\nThere are 7.\n<answer>7</answer>"
)
ONLY_ANSWER = "<answer>7</answer>"
# An R1-style reasoner: the chat template opens <think>, so only its close is generated; the answer is boxed.
R1_STYLE = (
    "Okay, the description says 3 red squares on top and 4 below. 3 + 4 = 7.\n\nWait, let me double-check "
    "the colours. Hmm, the circles are blue, so they do not count. Yes.\n</think>\n\nThere are "
    "$\\boxed{7}$ red shapes."
)


def test_verify_judges_realistic_chains_like_the_scorer() -> None:
    cases = [
        (SEVEN, [LONG, LOOP, WRONG, NO_ANSWER, SEVERAL, FIXED_BY_REFLECTION], [1, 1, 0, 0, 1, 1]),
        (
            HALF,
            [
                "<think>4 of 8 shapes are red: 4/8 = 1/2.</think>\nHalf.\n<answer>1/2</answer>",
                "<think>4 of 8.</think>\nHalf.\n<answer>0.50</answer>",
                "<think>3 of 8.</think>\nSo 0.4.\n<answer>0.4</answer>",
            ],
            [1, 1, 0],
        ),
        (
            COLOUR,
            [
                "<think>Purple is tallest.</think>\nPurple.\n<answer>purple</answer>",
                "<think>Purple is tallest.</think>\nOption A.\n<answer>A</answer>",
                "<think>Red looks tallest.</think>\nRed.\n<answer>(B) red</answer>",
            ],
            [1, 1, 0],
        ),
        (
            ROOT,
            [
                "<think>x = \\sqrt{12}</think>\nSo x is 2 root 3.\n<answer>\\sqrt{12}</answer>",
                "<think>x = 3</think>\nx is 3.\n<answer>3</answer>",
            ],
            [1, 0],
        ),
    ]
    for problem, texts, expected in cases:
        [samples] = verify([problem], [texts])
        assert [int(s.correct) for s in samples] == expected, problem.id
        assert [s.score for s in samples] == [_score(t, problem) for t in texts]


def test_selection_takes_the_shortest_correct_chain_and_trims_its_reflection_loop() -> None:
    [samples] = verify([SEVEN], [[WRONG, LONG, LOOP, NO_ANSWER]])
    choice = choose_chain(SEVEN, samples)
    assert (choice.outcome, choice.sample, choice.trimmed) == ("kept", 2, True)
    assert choice.reasoning == "Red squares: 3 in the top row and 4 in the bottom row, so 3 + 4 = 7."
    assert choose_chain(SEVEN, samples, rule="longest").sample == 1
    assert choose_chain(SEVEN, samples, rule="first").sample == 1
    [samples] = verify([SEVEN], [[R1_STYLE, LONG]])
    r1 = choose_chain(SEVEN, samples)
    assert samples[0].correct and r1.sample == 0
    assert r1.reasoning == "Okay, the description says 3 red squares on top and 4 below. 3 + 4 = 7."
    # The SFT target pairs the trimmed chain with the verified ground-truth label.
    [[target]] = verify([SEVEN], [[format_target(choice.reasoning, SEVEN.answer_label())]])
    assert target.correct and target.score.format == 1.0


def test_trimming_drops_a_chain_whose_kept_part_states_a_wrong_answer() -> None:
    [samples] = verify([SEVEN], [[FIXED_BY_REFLECTION, WRONG]])
    assert samples[0].correct
    assert choose_chain(SEVEN, samples).outcome == "contradicted"
    [samples] = verify([SEVEN], [[ONLY_ANSWER]])
    assert choose_chain(SEVEN, samples).outcome == "no_reasoning"
    [samples] = verify([SEVEN], [[WRONG, NO_ANSWER]])
    assert choose_chain(SEVEN, samples).outcome == "no_correct"


def test_targets_carry_the_answer_in_the_prompted_form() -> None:
    [half] = verify(
        [HALF], [["<think>4 of 8 shapes are red: 4/8 = 1/2.</think>\nHalf.\n<answer>1/2</answer>"]]
    )
    [colour] = verify([COLOUR], [["<think>Purple is tallest.</think>\nPurple.\n<answer>purple</answer>"]])
    for problem, samples, label in ((HALF, half, "0.5"), (COLOUR, colour, "A")):
        choice = choose_chain(problem, samples)
        assert choice.outcome == "kept"
        [example] = sft_examples([Problem(**{**problem.__dict__, "reasoning": choice.reasoning})])
        assert example.target.endswith(f"<answer>{label}</answer>")


def test_length_filter_counts_target_tokens_with_a_real_tokenizer(tiny_model_dir: Path) -> None:
    count = token_counter(tiny_model_dir)
    [samples] = verify([SEVEN], [[LOOP]])
    kept = choose_chain(SEVEN, samples, max_target_tokens=1000, count_tokens=count)
    assert kept.outcome == "kept"
    assert kept.target_tokens == count(format_target(kept.reasoning, "7")) > 10
    assert (
        choose_chain(SEVEN, samples, max_target_tokens=kept.target_tokens, count_tokens=count).outcome
        == "kept"
    )
    too_long = choose_chain(SEVEN, samples, max_target_tokens=kept.target_tokens - 1, count_tokens=count)
    assert too_long.outcome == "too_long"
    with pytest.raises(ReasonerError, match="token counter"):
        choose_chain(SEVEN, samples, max_target_tokens=5)


def test_reason_prompt_inserts_the_caption_literally() -> None:
    template = load_template("reason_from_caption")
    text = reason_prompt(COLOUR, "Costs $5 and $question marks.", template)
    assert "Costs $5 and $question marks." in text and "Which bar is the tallest?" in text
    assert "(A) purple" in text and "<answer>" in text


def test_a_caption_template_shows_the_caption_instead_of_the_image() -> None:
    """The teacher stage's prompt: the same text distillation sends its reasoner, with no image part."""
    template = load_template("reason_from_caption")
    problem = generate_mixed(["bars"], 1, level=1, seed=3)[0]
    (request,) = requests_for([problem], template)
    assert request.images == [] and all(part["type"] == "text" for part in request.messages[0]["content"])
    assert request.messages[0]["content"][0]["text"] == reason_prompt(problem, problem.caption, template)
    assert problem.caption in reason_prompt(problem, problem.caption, template)
    # The image template shows the image and never the caption.
    (plain,) = requests_for([problem], load_template("reason"))
    assert len(plain.images) == 1 and problem.caption not in str(plain.messages)
    problem.caption = None
    with pytest.raises(ReasonerError, match=f"problem {problem.id}: .*shows the caption, but the problem has none"):
        requests_for([problem], template)


# ------------------------------------------------------------------------------------ real generation


class CountingGenerator:
    """A real generator (the tiny model) that records its calls and can stop like a preempted job."""

    def __init__(self, inner: HFGenerator, fail_after: int | None = None) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.calls: list[list[GenerationRequest]] = []

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("preempted")
        self.calls.append(list(requests))
        return self.inner.generate(requests, spec)


class ReferenceReasoner:
    """A stand-in for a strong text reasoner: answers each synthetic problem from its reference trace, k ways."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.by_id = {p.id: p for p in problems}

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        out = []
        for request in requests:
            p = self.by_id[request.id]
            label = p.answer_label()
            texts = [
                f"<think>{p.reasoning} Wait, let me re-check. {p.reasoning}</think>\nDone.\n<answer>{label}</answer>",
                f"<think>Reading the description.{PADDING * 4} {p.reasoning}</think>\nDone.\n<answer>{label}</answer>",
                "<think>I cannot tell.</think>\nNo idea.\n<answer>none</answer>",
            ]
            out.append([Completion(t, tuple(range(len(t.split()))), "stop") for t in texts[: spec.n]])
        return out


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> HFGenerator:
    return HFGenerator.from_pretrained(tiny_model_dir, batch_size=16, show_progress=False)


@pytest.fixture(scope="module")
def world() -> list[Problem]:
    return generate_mixed(["count", "digits", "bars"], 6, level=1, seed=3)


TINY_CFG = DistillConfig(
    captioner="tiny",
    caption_max_new_tokens=16,
    reasoner="tiny",
    sampling=SamplingConfig(n=2, temperature=1.0, top_p=1.0, max_new_tokens=16),
    shard_size=2,
)


@pytest.fixture(scope="module")
def tiny_run(tiny: HFGenerator, world: list[Problem], tmp_path_factory: pytest.TempPathFactory):
    """One uninterrupted distillation with the tiny model as captioner and reasoner (3 shards of 2)."""
    counting = CountingGenerator(tiny)
    out = tmp_path_factory.mktemp("distill-full")
    result = distill(world, out, TINY_CFG, reasoner=counting, captioner=counting, seed=5)
    return out, result, counting


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted((out / "shards").glob("*.jsonl")) for line in path.open()]


def test_tiny_model_distillation_statistics_match_what_was_generated(tiny_run, tiny, world) -> None:
    out, result, counting = tiny_run
    rows = _rows(out)
    total = result.stats["total"]
    assert len(counting.calls) == 6 and [r["id"] for r in rows] == [p.id for p in world]
    assert (total["problems"], total["captions"], total["samples"]) == (6, 6, 12)
    assert result.stats == json.loads((out / "stats.json").read_text())
    # Captions are what the captioner makes of the images (greedy: the same again); the reasoner gets text only.
    caption_calls, reason_calls = counting.calls[0::2], counting.calls[1::2]
    assert all(len(r.images) == 1 for call in caption_calls for r in call)
    spec = SamplingSpec(max_new_tokens=16, seed=5)
    again = tiny.generate(caption_calls[0], spec)
    assert [g[0].text.strip() for g in again] == [r["caption"] for r in rows[:2]]
    problems = {p.id: p for p in world}
    for call in reason_calls:
        for request in call:
            assert (
                request.images == []
                and problems[request.id].question in request.messages[0]["content"][-1]["text"]
            )
    # Every verdict is the scorer's verdict on the same text; the step counts follow from the rows.
    for row in rows:
        assert [s["correct"] for s in row["samples"]] == [
            _score(s["text"], problems[row["id"]]).accuracy == 1.0 for s in row["samples"]
        ]
    assert total["correct"] == sum(s["correct"] for r in rows for s in r["samples"])
    assert total["selected"] == sum(any(s["correct"] for s in r["samples"]) for r in rows)
    kept = [r for r in rows if r["outcome"] == "kept"]
    assert total["after_length_filter"] == len(kept) == len(result.problems)
    assert [p.id for p in read_problems(out / "distilled.jsonl")] == [r["id"] for r in kept]
    for problem in result.problems:
        assert problem.images == problems[problem.id].images
        assert problem.metadata["distill"]["samples"] == 2


def test_skipping_the_captioner_uses_the_captions_in_the_data(tiny, world, tmp_path: Path) -> None:
    counting = CountingGenerator(tiny)
    cfg = DistillConfig(
        reasoner="tiny", sampling=SamplingConfig(n=2, temperature=1.0, max_new_tokens=16), shard_size=4
    )
    result = distill(world, tmp_path, cfg, reasoner=counting, seed=0)
    assert len(counting.calls) == 2 and all(r.images == [] for call in counting.calls for r in call)
    prompts = {r.id: r.messages[0]["content"][-1]["text"] for call in counting.calls for r in call}
    assert all(p.caption in prompts[p.id] for p in world)
    total = result.stats["total"]
    assert (total["captions"], total["captions_from_data"], total["samples"]) == (0, 6, 12)
    assert [r["caption"] for r in _rows(tmp_path)] == [p.caption for p in world]
    without = [Problem(**{**p.__dict__, "caption": None}) for p in world]
    with pytest.raises(ReasonerError, match="no caption"):
        distill(without, tmp_path / "none", cfg, reasoner=counting)


def test_kept_chains_are_trimmed_shortest_ones_on_the_original_images(world, tmp_path: Path) -> None:
    cfg = DistillConfig(reasoner="reference", sampling=SamplingConfig(n=3), max_target_tokens=40, shard_size=4)
    result = distill(
        world, tmp_path, cfg, reasoner=ReferenceReasoner(world), count_tokens=lambda t: len(t.split())
    )
    total = result.stats["total"]
    assert (total["samples"], total["correct"], total["selected"]) == (18, 12, 6)
    assert total["after_trimming"] == total["trimmed"] == 6
    assert total["after_length_filter"] + total["too_long"] == 6
    for problem in result.problems:
        original = next(p for p in world if p.id == problem.id)
        assert problem.reasoning == original.reasoning and problem.images == original.images
    examples = sft_examples(read_problems(tmp_path / "distilled.jsonl"))
    assert [e.target for e in examples] == [
        format_target(p.reasoning, p.answer_label()) for p in result.problems
    ]


def test_an_interrupted_run_redoes_only_unfinished_shards(tiny_run, tiny, world, tmp_path: Path) -> None:
    full_dir, full, _ = tiny_run
    crashing = CountingGenerator(tiny, fail_after=3)  # shard 0: 2 calls; shard 1 stops at its reasoner call
    with pytest.raises(RuntimeError, match="preempted"):
        distill(world, tmp_path, TINY_CFG, reasoner=crashing, captioner=crashing, seed=5)
    assert [p.name for p in sorted((tmp_path / "shards").glob("*.jsonl"))] == ["shard-00000.jsonl"]
    resumed = CountingGenerator(tiny)
    result = distill(world, tmp_path, TINY_CFG, reasoner=resumed, captioner=resumed, seed=5)
    assert len(resumed.calls) == 4 and result.shards_run == 2
    assert {r.id for call in resumed.calls for r in call} == {p.id for p in world[2:]}
    for name in (
        "shards/shard-00000.jsonl",
        "shards/shard-00001.jsonl",
        "shards/shard-00002.jsonl",
        "stats.json",
        "distilled.jsonl",
    ):
        assert (tmp_path / name).read_bytes() == (full_dir / name).read_bytes(), name

    # A finished run loads no model; another seed discards the stale shards and redoes them all.
    def no_model():
        raise AssertionError("a finished run must not build a generator")

    assert distill(world, tmp_path, TINY_CFG, reasoner=no_model, captioner=no_model, seed=5).shards_run == 0
    again = CountingGenerator(tiny)
    assert distill(world, tmp_path, TINY_CFG, reasoner=again, captioner=again, seed=6).shards_run == 3
    assert len(again.calls) == 6


def test_cli_distill_runs_the_demo_config(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    argv = [
        "data",
        "distill",
        str(REPO / "configs" / "distill-demo.yaml"),
        f"output_dir={tmp_path}",
        f"model.path={tiny_model_dir}",
        "model.tiny_size=null",
        "dataset.n=4",
        "distill.shard_size=2",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    stats = json.loads((tmp_path / "distill-demo" / "stats.json").read_text())
    assert stats["total"]["problems"] == 4 and stats["total"]["samples"] == 8
    assert "after_length_filter" in out and "distilled.jsonl" in out
    assert len(list((tmp_path / "distill-demo" / "shards").glob("*.jsonl"))) == 2
    assert (
        cli.main(["data", "distill", str(REPO / "configs" / "distill-demo.yaml"), "distill.samples=3"]) == 2
    )
    assert "distill.samples" in capsys.readouterr().err
    bad_family = ["data", "distill", str(REPO / "configs" / "distill-demo.yaml"), "model.tiny_family=qwen4"]
    assert cli.main(bad_family) == 2
    assert "model.tiny_family: 'qwen4' is not allowed; allowed: qwen2.5-vl, qwen3-vl" in capsys.readouterr().err


def _run_config(tmp_path: Path, stage: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        "name: t\nmodel: {tiny_size: demo}\ndatasets: {train: {source: synthetic, n: 4}}\n"
        f"stages:\n  - {stage}\n",
        encoding="utf-8",
    )
    return path


def test_run_config_distill_section_is_validated(tmp_path: Path) -> None:
    ok = "{kind: sft, data: {dataset: train, targets: distill, distill: {reasoner: base, max_target_tokens: 512}}}"
    run = config_mod.load(_run_config(tmp_path, ok))
    assert run.stages[0].data.distill.reasoner == "base" and run.stages[0].data.distill.captioner is None
    bad = [
        ("{kind: sft, data: {dataset: train, targets: distill}}", "data.distill.reasoner: required"),
        (
            "{kind: sft, data: {dataset: train, targets: distill, distill: {reasoner: base, shard_size: 0}}}",
            "data.distill.shard_size",
        ),
        ("{kind: sft, data: {dataset: train, distill: {reasoner: base}}}", "data.targets is not distill"),
        (
            "{kind: grpo, data: {dataset: train, targets: distill, distill: {reasoner: base}}}",
            "only for kind=sft",
        ),
        (
            "{kind: sft, data: {dataset: train, targets: distill, distill: {reasoner: base, k: 2}}}",
            "stages[0].data.distill.k: unknown key",
        ),
    ]
    for stage, message in bad:
        with pytest.raises(ReasonerError, match=message.replace("[", r"\[").replace(".", r"\.")):
            config_mod.load(_run_config(tmp_path, stage))
