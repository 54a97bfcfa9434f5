"""Every verl recipe in configs/ loads, plans and passes verl's own validation for every stage (CPU, no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reasoner.config import load
from reasoner.engines.verl import validate_plan
from reasoner.errors import ReasonerError
from reasoner.prompts import load_template
from reasoner.schedule import plan

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
VERL_RECIPES = sorted(p for p in CONFIGS.glob("*.yaml") if "engine: verl" in p.read_text(encoding="utf-8"))


def plan_of(path: Path, overrides: list[str] = ()):
    run = load(path, overrides)
    return run, plan(run, load_template(run.prompt).sha256)


def test_the_openvlthinker_recipes_are_there():
    assert {p.name for p in VERL_RECIPES} >= {
        "openvlthinker-7b.yaml",
        "openvlthinker-3b.yaml",
        "openvlthinker-v2-8b.yaml",
    }


@pytest.fixture(scope="module")
def validated() -> dict:
    """recipe name -> (run, plans, validate_plan's result), composed once per test module."""
    results = {}
    for recipe in VERL_RECIPES:
        run, plans = plan_of(recipe)
        results[recipe.name] = (run, plans, validate_plan(run, plans))
    return results


@pytest.mark.parametrize("recipe", VERL_RECIPES, ids=lambda p: p.stem)
def test_recipe_passes_verl_validation(recipe, validated):
    header = recipe.read_text(encoding="utf-8").splitlines()[:12]
    assert any(f"reasoner submit configs/{recipe.name}" in line for line in header), (
        "header names the command"
    )
    run, plans, checked = validated[recipe.name]
    assert [c.name for c in checked] == [s.name for s in run.stages]
    for index, (stage, check) in enumerate(zip(run.stages, checked, strict=True)):
        starts_from = plans[
            index
        ]  # plans[0] is the base; a stage starts from the one before it unless init: base
        if stage.kind.value == "grpo":
            assert check.config.actor_rollout_ref.actor.freeze_vision_tower == stage.freeze_vision
            assert check.config.actor_rollout_ref.model.path.endswith(f"stages/{starts_from.dir_name}/model")
        else:
            base = run.model.path or f"stages/{plans[0].dir_name}/model"  # a real base, or the tiny one built
            assert check.config.model.path.endswith(base) == (index == 0 or stage.init == "base")


def test_7b_recipe_carries_the_published_hyperparameters(validated):
    run, _, checked = validated["openvlthinker-7b.yaml"]
    by_name = {c.name: c.config for c in checked}
    grpo1, grpo3, sft1 = by_name["grpo1"], by_name["grpo3"], by_name["sft1"]
    actor, rollout = grpo1.actor_rollout_ref.actor, grpo1.actor_rollout_ref.rollout
    assert (rollout.n, rollout.temperature, rollout.top_p, rollout.tensor_model_parallel_size) == (
        5,
        1.0,
        0.99,
        2,
    )
    assert (grpo1.data.train_batch_size, actor.ppo_mini_batch_size) == (512, 128)
    assert (actor.optim.lr, actor.optim.weight_decay, actor.optim.clip_grad) == (1e-6, 0.01, 1.0)
    assert (actor.use_kl_loss, actor.kl_loss_type, actor.kl_loss_coef) == (True, "low_var_kl", 0.01)
    assert (grpo1.data.max_prompt_length, grpo1.data.max_response_length) == (6144, 2048)
    assert actor.fsdp_config.param_offload and actor.fsdp_config.optimizer_offload
    kwargs = grpo1.reward.custom_reward_function.reward_kwargs
    assert (kwargs.summary_penalty, kwargs.format_weight) == (-0.5, 0.0)
    assert actor.freeze_vision_tower and not grpo3.actor_rollout_ref.actor.freeze_vision_tower
    assert [s.data.difficulty.value for s in run.stages if s.kind.value == "grpo"] == [
        "medium",
        "medium",
        "hard",
    ]
    assert (sft1.optim.lr, sft1.optim.lr_scheduler_type, sft1.optim.lr_warmup_steps_ratio) == (
        5e-6,
        "cosine",
        0.1,
    )


def test_v2_8b_recipe_is_the_7b_schedule_on_qwen3_vl_with_32px_image_limits(validated):
    run8, _, checked8 = validated["openvlthinker-v2-8b.yaml"]
    run7, _, checked7 = validated["openvlthinker-7b.yaml"]
    assert run8.model.path.endswith("Qwen3-VL-8B-Instruct") and run8.stages == run7.stages
    for eight, seven in zip(checked8, checked7, strict=True):  # the same verl settings, stage by stage
        if eight.name.startswith("grpo"):
            assert eight.config.actor_rollout_ref.actor == seven.config.actor_rollout_ref.actor
            assert eight.config.actor_rollout_ref.rollout.n == seven.config.actor_rollout_ref.rollout.n
        else:
            assert eight.config.optim == seven.config.optim
    assert (run8.cluster.min_image_pixels, run8.cluster.max_image_pixels) == (64 * 64, 512 * 512)


def test_v2_8b_recipe_plans_with_the_cli_without_the_8b_weights(tmp_path, capsys):
    """`reasoner run --plan` checks that model.path and the data exist: a tiny Qwen3-VL stands in for the 8B folder
    and a synthetic problems file for the seed pool; evaluation is off (no MathVista images on this machine)."""
    from reasoner.cli import main
    from reasoner.data.records.files import write_problems
    from reasoner.data.worlds import TASKS, generate_mixed
    from reasoner.models.tiny import ensure_tiny_model

    model = ensure_tiny_model(tmp_path / "models", family="qwen3-vl")
    problems = write_problems(generate_mixed(list(TASKS), 8, seed=3), tmp_path / "pool.jsonl")
    (tmp_path / "mathvista").mkdir()
    overrides = [
        f"model.path={model}", f"datasets.seed_pool.path={problems}", f"datasets.distilled.path={problems}",
        f"datasets.mathvista.path={tmp_path / 'mathvista'}", "eval.datasets=[]", f"output_dir={tmp_path / 'runs'}",
    ]  # fmt: skip
    assert main(["run", str(CONFIGS / "openvlthinker-v2-8b.yaml"), "--plan", *overrides]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("run 'openvlthinker-v2-8b' (verl engine)")
    assert [line.split()[0] for line in lines[1:]] == [f"0{i}_{k}" for i, k in enumerate(["base"] + ["sft", "grpo"] * 3)]
    assert all(line.endswith("pending") for line in lines[1:])
    assert main(["run", str(CONFIGS / "openvlthinker-v2-8b.yaml"), "--plan"]) == 2  # no weights, no data: one line
    assert "does not exist" in capsys.readouterr().err


def test_tiny_demo_on_the_verl_engine_plans_the_built_base_model():
    run, plans = plan_of(CONFIGS / "demo.yaml", ["engine=verl", "output_dir=/shared/runs"])
    first = validate_plan(run, plans)[0].config
    assert first.model.path == "/shared/runs/demo/stages/00_base/model"


def test_cluster_and_stage_settings_verl_cannot_honour_are_all_reported():
    with pytest.raises(ReasonerError, match="cluster.rollout_tensor_parallel: 4 must divide the 6 GPUs"):
        load(CONFIGS / "openvlthinker-3b.yaml", ["cluster.gpus_per_node=6", "cluster.rollout_tensor_parallel=4"])
    run, plans = plan_of(
        CONFIGS / "openvlthinker-3b.yaml",
        [
            "cluster.gpus_per_node=6",
            "stages.grpo2.grpo.updates_per_batch=3",
        ],
    )
    with pytest.raises(ReasonerError) as err:
        validate_plan(run, plans)
    message = str(err.value)
    assert (
        "stages.grpo2.grpo.prompts_per_step: 512 must be a multiple of grpo.updates_per_batch (3)" in message
    )
    assert "stages.sft1: verl's validation of the sft_trainer_engine config failed" in message


@pytest.mark.parametrize("recipe", ["openvlthinker-3b.yaml", "demo-verl.yaml"])
def test_without_flash_attn_training_attention_is_sdpa_on_padded_batches(recipe):
    """`cluster.remove_padding: false` (a GPU node without flash-attn) composes and passes verl's validation, on a
    GPU recipe and on the CPU demo (whose CPU list turns remove-padding off already: no key is set twice)."""
    run, plans = plan_of(CONFIGS / recipe, ["cluster.remove_padding=false"])
    for check in validate_plan(run, plans):
        model = check.config.actor_rollout_ref.model if check.kind == "grpo" else check.config.model
        assert model.use_remove_padding is False and model.override_config.attn_implementation == "sdpa"


PRESETS = CONFIGS / "presets"


@pytest.mark.parametrize("preset", sorted(PRESETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_preset_on_the_7b_recipe_passes_verl_validation_with_its_values(preset):
    run, plans = plan_of(CONFIGS / "openvlthinker-7b.yaml", [str(preset)])
    for stage, check in zip(run.stages, validate_plan(run, plans), strict=True):
        if stage.kind.value != "grpo":
            continue
        grpo, cfg = stage.grpo, check.config
        actor = cfg.actor_rollout_ref.actor
        assert (actor.loss_agg_mode, actor.policy_loss.loss_mode) == (grpo.loss_agg_mode.value, grpo.policy_loss.value)
        assert (actor.clip_ratio_low, actor.clip_ratio_high) == (grpo.clip_ratio_low, grpo.clip_ratio_high)
        assert cfg.algorithm.norm_adv_by_std_in_grpo == grpo.norm_adv_by_std
        assert (actor.use_kl_loss, actor.kl_loss_coef) == (grpo.kl_coef > 0, grpo.kl_coef)
        assert cfg.algorithm.filter_groups.enable == grpo.dynamic_sampling
        sum_norm = grpo.loss_agg_mode.value == "seq-mean-token-sum-norm"
        assert actor.loss_scale_factor == (grpo.sampling.max_new_tokens if sum_norm else None)
