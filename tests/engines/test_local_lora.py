"""LoRA on the local engine (`model.lora`): adapters on the language model's linear layers only, only they train,
the GRPO reference is the policy with its adapters off (exactly the start model), the export is a plain merged
model, and resume / data-parallel processes behave as with full fine-tuning. Real tiny models, CPU, one thread."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reasoner.config import LoraConfig, ModelConfig, RunConfig, StageConfig, StageKind
from reasoner.data.worlds import TASKS, generate_mixed
from reasoner.engines.base import TrainJob
from reasoner.engines.local import LocalEngine
from reasoner.engines.local.common import STATE_FILE, export_model
from reasoner.engines.local.lora import adapters_disabled, attach, has_adapters, sampling_mode, target_names
from reasoner.errors import ReasonerError
from reasoner.models.loading import load_model
from reasoner.models.tiny import FAMILIES, ensure_tiny_model
from reasoner.prompts import load_template

LORA = LoraConfig(rank=4, alpha=8)
PROJECTIONS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def lora_run(**keys) -> RunConfig:
    return RunConfig(name="t", model=ModelConfig(lora=LoraConfig(**{"rank": 4, "alpha": 8, **keys})))


def make_job(root: Path, init: Path, **stage) -> TrainJob:
    stage = StageConfig(kind=StageKind.sft, name="sft1", **{"batch_size": 4, "lr": 1e-2, **stage})
    return TrainJob(stage, init, root / "ckpt", root / "model", root / "logs", load_template("reason"), seed=0)


def params(path: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(path)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def text_inputs(processor) -> dict[str, torch.Tensor]:
    return processor.tokenizer(["how many bars are there", "the answer is"], return_tensors="pt", padding=True)


def with_random_adapters(path: Path, lora: LoraConfig = LORA):
    """The model at `path` with adapters whose B is not zero (as after training), in train mode."""
    model, processor = load_model(path, dtype=torch.float32)
    model.train()
    attach(model, lora)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".lora_B." in name:
                parameter.normal_(0, 0.05)
    return model, processor


@pytest.mark.parametrize("family", list(FAMILIES))
def test_adapters_go_on_the_language_models_linear_layers_only(family, tmp_path_factory):
    """Qwen2.5-VL's vision blocks have gate/up/down projections too: they are never adapted."""
    path = ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", family=family, size="demo", seed=0)
    model, _ = load_model(path)
    every = target_names(model, LORA)
    assert every and all(name.startswith("model.language_model.layers.") for name in every)
    assert {name.rsplit(".", 1)[-1] for name in every} == PROJECTIONS
    picked = target_names(model, LoraConfig(rank=4, target_modules=["q_proj", "v_proj"]))
    assert {name.rsplit(".", 1)[-1] for name in picked} == {"q_proj", "v_proj"} and len(picked) == 4
    with pytest.raises(ReasonerError, match=r"model.lora.target_modules: qkv names no linear layer.*allowed: all-linear"):
        target_names(model, LoraConfig(rank=4, target_modules=["qkv"]))  # the vision tower's attention
    attach(model, LORA)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    assert not any(name.startswith("model.visual") for name in trainable)


def test_lora_sft_trains_only_adapters_and_exports_a_plain_merged_model(tiny_dir, examples, tmp_path):
    job = make_job(tmp_path, tiny_dir, steps=2)
    LocalEngine(lora_run(dropout=0.1)).train_sft(job, examples)
    before, after = params(tiny_dir), params(job.out_model)
    assert list(after) == list(before)  # the base model's parameters, no adapter left
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.rsplit(".", 2)[-2] in PROJECTIONS for name in changed)
    assert not any(name.startswith(("model.visual", "lm_head", "model.language_model.embed")) for name in changed)
    assert not (job.out_model / "adapter_config.json").exists()
    # The optimizer held the adapters only: one A and one B per adapted layer.
    state = torch.load(next(job.ckpt_dir.glob("step_*")) / STATE_FILE, weights_only=False)
    n_optimized = sum(len(group["params"]) for group in state["optimizer"]["param_groups"])
    assert n_optimized == 2 * len(target_names(load_model(tiny_dir)[0], LORA))


def test_merged_export_computes_what_the_adapted_model_computed(tiny_dir, tmp_path):
    model, processor = with_random_adapters(tiny_dir)
    inputs = text_inputs(processor)
    with torch.no_grad(), sampling_mode(model):
        adapted = model(**inputs).logits
    export_model(model, processor, tmp_path / "merged")  # merges the adapters (merge_adapters) and saves
    assert not has_adapters(model)
    reloaded, _ = load_model(tmp_path / "merged")
    with torch.no_grad():
        merged = reloaded(**inputs).logits
    torch.testing.assert_close(merged, adapted, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(adapted, load_model(tiny_dir)[0](**inputs).logits.detach(), atol=1e-3)


def test_reference_with_adapters_off_is_exactly_the_start_model(tiny_dir):
    """GRPO's KL reference under LoRA: the policy with adapters skipped computes the start model bit for bit."""
    model, processor = with_random_adapters(tiny_dir)
    inputs = text_inputs(processor)
    start, _ = load_model(tiny_dir)
    with torch.no_grad(), sampling_mode(model), adapters_disabled(model):
        reference = model(**inputs).logits
    assert torch.equal(reference, start(**inputs).logits.detach())
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in name for name in trainable)  # the adapters train again afterwards
    assert model.training


def test_lora_sft_resumes_exactly(tiny_dir, examples, tmp_path):
    straight = make_job(tmp_path / "straight", tiny_dir, steps=3, checkpoint_every=2)
    LocalEngine(lora_run()).train_sft(straight, examples)

    def crash_after_step_2(step: int, metrics: dict) -> None:
        if step == 2:
            raise KeyboardInterrupt("simulated crash")

    resumed = make_job(tmp_path / "resumed", tiny_dir, steps=3, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        LocalEngine(lora_run(), on_step=crash_after_step_2).train_sft(resumed, examples)
    assert (resumed.ckpt_dir / "step_000002").is_dir() and not resumed.out_model.exists()
    LocalEngine(lora_run()).train_sft(resumed, examples)
    expected, got = params(straight.out_model), params(resumed.out_model)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)


def test_lora_on_two_processes_takes_the_steps_of_one(tiny_dir, examples, tmp_path):
    jobs = {n: make_job(tmp_path / str(n), tiny_dir, steps=2) for n in (1, 2)}
    for n, job in jobs.items():
        run = lora_run()
        run.processes = n
        LocalEngine(run).train_sft(job, examples)
    expected, got = params(jobs[1].out_model), params(jobs[2].out_model)
    assert any(not torch.equal(expected[n], params(tiny_dir)[n]) for n in expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-5)


def test_lora_grpo_with_kl_resumes_exactly(warm_dir, tmp_path, metric_rows, assert_crash_and_resume_match, request):
    """LoRA GRPO with a KL term (the reference: adapters off), interrupted and resumed, as the full-weight test."""
    make_grpo_job = request.getfixturevalue("make_job")  # the GRPO job of conftest.py (this module has its own)
    problems = generate_mixed(list(TASKS), 64, level=1, seed=7)
    straight = make_grpo_job(tmp_path / "straight", warm_dir, steps=3, checkpoint_every=2)
    LocalEngine(lora_run()).train_grpo(straight, problems)
    rows = metric_rows(straight)
    assert rows[0]["actor/kl"] == 0.0 and any(row["actor/kl"] > 0 for row in rows[1:])
    before, after = params(warm_dir), params(straight.out_model)
    assert all(torch.equal(before[n], after[n]) for n in before if n.startswith("model.visual"))
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert_crash_and_resume_match(lora_run(), straight, problems, warm_dir, tmp_path)
