"""The local engine's SFT loop on a real tiny Qwen2.5-VL (and Qwen3-VL: the vision freeze) and rendered synthetic
problems (CPU, one thread)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from reasoner.config import EvalConfig, RunConfig, StageConfig, StageKind
from reasoner.engines.base import TrainJob
from reasoner.engines.local import LocalEngine
from reasoner.engines.local.sft import encode_batch, target_logprobs
from reasoner.errors import ReasonerError
from reasoner.models.loading import load_model
from reasoner.models.tiny import FAMILIES, ensure_tiny_model
from reasoner.prompts import load_template


def make_job(root: Path, init: Path, fingerprint: str = "", **stage) -> TrainJob:
    stage = StageConfig(kind=StageKind.sft, name="sft1", **{"batch_size": 4, "lr": 1e-3, **stage})
    return TrainJob(
        stage, init, root / "ckpt", root / "model", root / "logs", load_template("reason"), seed=0,
        fingerprint=fingerprint,
    )  # fmt: skip


def crash_after(last: int):
    """An on_step hook that interrupts the job after step `last` (as Ctrl-C would)."""

    def hook(step: int, metrics: dict) -> None:
        if step == last:
            raise KeyboardInterrupt("simulated crash")

    return hook


def params(path: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(path)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_batch_learns_only_the_assistant_turn(tiny_dir, examples):
    model, processor = load_model(tiny_dir)
    batch = encode_batch(model, processor, examples[:3], load_template("reason"), torch.device("cpu"))
    tokenizer = processor.tokenizer
    for row, example in enumerate(examples[:3]):
        learned = batch.targets[row][batch.mask[row].bool()].tolist()
        assert tokenizer.decode(learned) == example.target + tokenizer.eos_token
    input_ids, labels = batch.labels()
    prompt_width = batch.prompts.inputs["input_ids"].shape[1]
    assert (labels[:, :prompt_width] == -100).all()
    # Our response-only loss equals transformers' own loss on the masked labels of the full sequences.
    mm_types = torch.cat([batch.prompts.inputs["mm_token_type_ids"], torch.zeros_like(batch.targets)], dim=1)
    attention = torch.cat([batch.prompts.attention_mask, batch.mask], dim=1)
    with torch.no_grad():
        reference = model(
            input_ids=input_ids,
            attention_mask=attention,
            labels=labels,
            mm_token_type_ids=mm_types,
            pixel_values=batch.prompts.inputs["pixel_values"],
            image_grid_thw=batch.prompts.inputs["image_grid_thw"],
        ).loss
        ours = -(target_logprobs(model, batch) * batch.mask).sum() / batch.mask.sum()
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_one_step_trains_language_model_not_frozen_vision(family, examples, tmp_path, tmp_path_factory):
    init = ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", family=family, size="demo", seed=0)
    job = make_job(tmp_path, init, steps=1, freeze_vision=True)
    summary = LocalEngine(RunConfig(name="t")).train_sft(job, examples)
    assert summary["steps"] == 1 and summary["examples"] == 4
    assert torch.isfinite(torch.tensor(summary["train/loss"]))
    before, after = params(init), params(job.out_model)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert any(name.startswith("model.language_model") for name in changed)
    assert not any(name.startswith("model.visual") for name in changed)
    # Qwen3-VL's deepstack mergers are part of the vision tower, frozen with it.
    assert any("deepstack" in name for name in before) == (family == "qwen3-vl")
    assert (job.log_dir / "metrics.jsonl").read_text().count("\n") == 1
    assert any(path.name.startswith("events.out.tfevents") for path in job.log_dir.iterdir())


def test_unfrozen_vision_trains_too(tiny_dir, examples, tmp_path):
    job = make_job(tmp_path, tiny_dir, steps=1, freeze_vision=False)
    LocalEngine(RunConfig(name="t")).train_sft(job, examples)
    before, after = params(tiny_dir), params(job.out_model)
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith("model.visual"))


def test_resume_after_interruption_matches_straight_run(tiny_dir, examples, tmp_path):
    straight = make_job(tmp_path / "straight", tiny_dir, steps=4, grad_accum=2, checkpoint_every=2)
    LocalEngine(RunConfig(name="t")).train_sft(straight, examples)

    def crash_after_step_2(step: int, metrics: dict) -> None:
        if step == 2:
            raise KeyboardInterrupt("simulated crash")

    resumed = make_job(tmp_path / "resumed", tiny_dir, steps=4, grad_accum=2, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        LocalEngine(RunConfig(name="t"), on_step=crash_after_step_2).train_sft(resumed, examples)
    assert not resumed.out_model.exists() and (resumed.ckpt_dir / "step_000002").is_dir()
    summary = LocalEngine(RunConfig(name="t")).train_sft(resumed, examples)
    assert summary["examples"] == 4 * 8
    expected, got = params(straight.out_model), params(resumed.out_model)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)
    rows = (resumed.log_dir / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 4


def test_export_reloads_and_generates(tiny_dir, examples, tmp_path):
    job = make_job(tmp_path, tiny_dir, steps=1)
    engine = LocalEngine(RunConfig(name="t"))
    engine.train_sft(job, examples)
    model, processor = load_model(job.out_model)
    assert processor.image_processor is not None and model.config.model_type == "qwen2_5_vl"
    assert not list(job.out_model.parent.glob(".model.*"))
    from reasoner.generation.base import GenerationRequest, SamplingSpec
    from reasoner.prompts import problem_messages

    problem = examples[0].problem
    request = GenerationRequest(problem_messages(problem, job.template), problem.load_images(), id=problem.id)
    [[completion]] = engine.generator(job.out_model).generate([request], SamplingSpec(max_new_tokens=4))
    assert 1 <= len(completion.token_ids) <= 4


def test_checkpoint_of_another_stage_config_is_discarded_not_resumed(tiny_dir, examples, tmp_path, caplog):
    """Interrupted at step 2 of 4 with lr=1e-3; re-run with lr=5e-3 (a new fingerprint): trains from step 0."""
    old = make_job(tmp_path, tiny_dir, "fp-old", steps=4, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        LocalEngine(RunConfig(name="t"), on_step=crash_after(2)).train_sft(old, examples)
    info = json.loads((old.ckpt_dir / "step_000002" / "checkpoint.json").read_text())
    assert info["fingerprint"] == "fp-old"
    new = make_job(tmp_path, tiny_dir, "fp-new", steps=4, checkpoint_every=2, lr=5e-3)
    with caplog.at_level(logging.WARNING):
        LocalEngine(RunConfig(name="t")).train_sft(new, examples)
    assert "discarding checkpoint" in caplog.text and "fp-old" in caplog.text and "fp-new" in caplog.text
    rows = [json.loads(line) for line in (new.log_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert max(r["train/lr"] for r in rows) == pytest.approx(5e-3)  # every step under the new config
    assert json.loads((new.ckpt_dir / "step_000004" / "checkpoint.json").read_text())["fingerprint"] == "fp-new"


@pytest.mark.parametrize("damage", ["state", "info"])
def test_garbage_checkpoint_stops_with_one_line_naming_it(tiny_dir, examples, tmp_path, damage):
    job = make_job(tmp_path, tiny_dir, "fp", steps=3, checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        LocalEngine(RunConfig(name="t"), on_step=crash_after(1)).train_sft(job, examples)
    damaged = job.ckpt_dir / "step_000001" / ("state.pt" if damage == "state" else "checkpoint.json")
    damaged.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ReasonerError) as err:
        LocalEngine(RunConfig(name="t")).train_sft(job, examples)
    message = str(err.value)
    assert str(damaged) in message and "--redo-from sft1" in message and "\n" not in message


def test_local_generator_calls_take_eval_batch_size(tiny_model_dir):
    engine = LocalEngine(RunConfig(name="t", eval=EvalConfig(batch_size=5)))
    assert engine.generator(tiny_model_dir).batch_size == 5


def test_two_processes_take_the_steps_of_one(tiny_dir, examples, tmp_path):
    """`processes: 2` splits every batch between two forked ranks and sums their gradients: the same steps as
    one process up to float rounding, one metrics row per step for the whole batch, one exported model."""
    jobs = {n: make_job(tmp_path / str(n), tiny_dir, steps=3) for n in (1, 2)}
    for n, job in jobs.items():
        summary = LocalEngine(RunConfig(name="t", processes=n)).train_sft(job, examples)
        assert summary["examples"] == 3 * 4
    rows = {n: [json.loads(line) for line in (job.log_dir / "metrics.jsonl").read_text().splitlines()]
            for n, job in jobs.items()}  # fmt: skip
    assert [r["count/examples"] for r in rows[2]] == [4.0, 4.0, 4.0]
    assert [r["train/target_tokens"] for r in rows[2]] == [r["train/target_tokens"] for r in rows[1]]
    for one, two in zip(rows[1], rows[2], strict=True):
        assert two["train/loss"] == pytest.approx(one["train/loss"], rel=1e-5)
    expected, got = params(jobs[1].out_model), params(jobs[2].out_model)
    changed = [name for name in expected if not torch.equal(expected[name], params(tiny_dir)[name])]
    assert changed
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-5)
