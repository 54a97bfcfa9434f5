"""The pure translation our config -> verl overrides, pinned by golden lists, and verl accepting the result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from verl.utils.config import omega_conf_to_dataclass

from reasoner.config import (
    ClusterConfig,
    DatasetConfig,
    Engine,
    GRPOConfig,
    LossAggMode,
    ModelConfig,
    PolicyLoss,
    RunConfig,
    SamplingConfig,
    StageConfig,
    StageDataConfig,
    StageKind,
)  # fmt: skip
from reasoner.config.loading import name_stages, validate
from reasoner.engines.verl.compose import GRPO_CONFIG, SFT_CONFIG, compose, verl_config_dir
from reasoner.engines.verl.engine import compose_stage
from reasoner.engines.verl.overrides import (
    REWARD_FILE,
    StagePaths,
    format_value,
    grpo_overrides,
    launch_env,
    sft_overrides,
    training_steps,
)  # fmt: skip
from reasoner.errors import ReasonerError

PATHS = StagePaths(
    Path("/runs/g/base"), (Path("/runs/g/train.parquet"),), Path("/runs/g/ckpt"), Path("/runs/g/logs")
)


@pytest.fixture(scope="module")
def run() -> RunConfig:
    grpo = GRPOConfig(
        sampling=SamplingConfig(n=5, temperature=1.0, top_p=0.99, max_new_tokens=2048),
        prompts_per_step=64,
        updates_per_batch=4,
        kl_coef=0.01,
        summary_penalty=-0.5,
    )
    run = RunConfig(
        name="golden", engine=Engine.verl, seed=3, model=ModelConfig(path="/models/base"),
        datasets={"pool": DatasetConfig(source="file", path="/data/pool.parquet")},
        stages=[
            StageConfig(kind=StageKind.grpo, name="grpo1", data=StageDataConfig(dataset="pool"), epochs=2.0,
                        lr=1e-6, weight_decay=0.01, warmup_ratio=0.0, freeze_vision=True, checkpoint_every=5,
                        grpo=grpo),
            StageConfig(kind=StageKind.sft, name="sft2", data=StageDataConfig(dataset="pool"), batch_size=16,
                        grad_accum=2, lr=5e-6, freeze_vision=False),
        ],
        cluster=ClusterConfig(nodes=2, gpus_per_node=4, max_prompt_tokens=4096, keep_checkpoints=2),
    )  # fmt: skip
    name_stages(run)
    validate(run)
    return run


GOLDEN_GRPO = [
    "algorithm.adv_estimator=grpo",
    "algorithm.norm_adv_by_std_in_grpo=true",
    "algorithm.use_kl_in_reward=false",
    "data.train_files=[/runs/g/train.parquet]",
    "data.val_files=[/runs/g/train.parquet]",
    "data.val_max_samples=1",
    "data.train_batch_size=64",
    "data.max_prompt_length=4096",
    "data.max_response_length=2048",
    "data.filter_overlong_prompts=true",
    "data.truncation=error",
    "data.seed=4",
    "actor_rollout_ref.model.path=/runs/g/base",
    "actor_rollout_ref.model.enable_gradient_checkpointing=true",
    "actor_rollout_ref.model.use_remove_padding=true",
    "actor_rollout_ref.actor.strategy=fsdp2",
    "actor_rollout_ref.actor.optim.lr=1e-06",
    "actor_rollout_ref.actor.optim.weight_decay=0.01",
    "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio=0.0",
    "actor_rollout_ref.actor.optim.lr_scheduler_type=cosine",
    "actor_rollout_ref.actor.optim.zero_indexed_step=false",
    "actor_rollout_ref.actor.optim.clip_grad=1.0",
    "actor_rollout_ref.actor.ppo_mini_batch_size=16",
    "actor_rollout_ref.actor.ppo_epochs=1",
    "actor_rollout_ref.actor.use_dynamic_bsz=true",
    "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.actor.clip_ratio=0.2",
    "actor_rollout_ref.actor.clip_ratio_low=0.2",
    "actor_rollout_ref.actor.clip_ratio_high=0.2",
    "actor_rollout_ref.actor.use_kl_loss=true",
    "actor_rollout_ref.actor.kl_loss_coef=0.01",
    "actor_rollout_ref.actor.kl_loss_type=low_var_kl",
    "actor_rollout_ref.actor.entropy_coeff=0",
    "actor_rollout_ref.actor.loss_agg_mode=token-mean",
    "actor_rollout_ref.actor.freeze_vision_tower=true",
    "actor_rollout_ref.actor.data_loader_seed=4",
    "actor_rollout_ref.actor.fsdp_config.param_offload=false",
    "actor_rollout_ref.actor.fsdp_config.optimizer_offload=false",
    "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
    "actor_rollout_ref.ref.fsdp_config.param_offload=true",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4",
    "actor_rollout_ref.rollout.name=vllm",
    "actor_rollout_ref.rollout.n=5",
    "actor_rollout_ref.rollout.temperature=1.0",
    "actor_rollout_ref.rollout.top_p=0.99",
    "actor_rollout_ref.rollout.tensor_model_parallel_size=2",
    "actor_rollout_ref.rollout.gpu_memory_utilization=0.6",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
    "actor_rollout_ref.rollout.seed=4",
    "+actor_rollout_ref.rollout.engine_kwargs.vllm.mm_device_do_normalize=false",
    f"reward.custom_reward_function.path={REWARD_FILE}",
    "reward.custom_reward_function.name=compute_score",
    "trainer.nnodes=2",
    "trainer.n_gpus_per_node=4",
    "trainer.project_name=reasoner",
    "trainer.experiment_name=golden-grpo1",
    "trainer.logger=[console,file,tensorboard]",
    "trainer.total_epochs=30",
    "trainer.total_training_steps=30",
    "trainer.save_freq=5",
    "trainer.default_local_dir=/runs/g/ckpt",
    "trainer.resume_mode=auto",
    "trainer.max_actor_ckpt_to_keep=2",
    "trainer.val_before_train=false",
    "trainer.test_freq=-1",
    "+reward.custom_reward_function.reward_kwargs.format_weight=0.0",
    "+reward.custom_reward_function.reward_kwargs.summary_penalty=-0.5",
    "+reward.custom_reward_function.reward_kwargs.extraction=strict",
]

GOLDEN_SFT = [
    "data.train_files=[/runs/g/train.parquet]",
    "data.val_files=null",
    "data.train_batch_size=32",
    "data.micro_batch_size_per_gpu=2",
    "data.use_dynamic_bsz=true",
    "data.max_token_len_per_gpu=16384",
    "data.max_length=8192",
    "data.truncation=error",
    "data.pad_mode=no_padding",
    "data.messages_key=messages",
    "model.path=/runs/g/base",
    "model.enable_gradient_checkpointing=true",
    "model.use_remove_padding=true",
    "engine.strategy=fsdp2",
    "engine.param_offload=false",
    "engine.optimizer_offload=false",
    "optim.lr=5e-06",
    "optim.weight_decay=0.0",
    "optim.lr_warmup_steps_ratio=0.1",
    "optim.lr_scheduler_type=cosine",
    "optim.zero_indexed_step=false",
    "optim.clip_grad=1.0",
    "checkpoint.save_contents=[model,optimizer,extra,hf_model]",
    "trainer.nnodes=2",
    "trainer.n_gpus_per_node=4",
    "trainer.project_name=reasoner",
    "trainer.experiment_name=golden-sft2",
    "trainer.logger=[console,file,tensorboard]",
    "trainer.total_epochs=31",
    "trainer.total_training_steps=31",
    "trainer.save_freq=31",
    "trainer.default_local_dir=/runs/g/ckpt",
    "trainer.resume_mode=auto",
    "trainer.max_ckpt_to_keep=2",
    "trainer.seed=5",
]


def test_grpo_overrides_golden(run):
    # 1000 problems / 64 per step = 15 steps per epoch, 2 epochs -> 30 steps.
    assert grpo_overrides(run, run.stages[0], PATHS, n_problems=1000, seed=4) == GOLDEN_GRPO


def test_sft_overrides_golden(run):
    # 16 x 2 = 32 examples per optimizer step; 1000 // 32 = 31 steps in one epoch.
    assert sft_overrides(run, run.stages[1], PATHS, n_examples=1000, seed=5) == GOLDEN_SFT


def test_verl_composes_the_golden_lists_into_the_values_we_meant(run):
    grpo = compose_stage(GRPO_CONFIG, GOLDEN_GRPO, where="golden")
    actor, rollout = grpo.actor_rollout_ref.actor, grpo.actor_rollout_ref.rollout
    assert (grpo.algorithm.adv_estimator, grpo.actor_rollout_ref.ref.strategy) == ("grpo", "fsdp2")
    # The worker builds its engine from the converted actor config, which takes the strategy from actor.strategy.
    assert omega_conf_to_dataclass(actor).engine.strategy == "fsdp2"
    assert (actor.ppo_mini_batch_size * rollout.n, grpo.data.train_batch_size * rollout.n) == (80, 320)
    assert actor.kl_loss_coef == 0.01 and actor.optim.lr == 1e-6 and rollout.top_p == 0.99
    assert grpo.actor_rollout_ref.ref.log_prob_use_dynamic_bsz is True  # follows the actor by interpolation
    assert dict(grpo.reward.custom_reward_function.reward_kwargs) == {
        "format_weight": 0.0,
        "summary_penalty": -0.5,
        "extraction": "strict",  # the recipe's tag-only reward
    }
    sft = compose_stage(SFT_CONFIG, GOLDEN_SFT, where="golden")
    assert (sft.engine.strategy, sft.data.train_batch_size, sft.trainer.max_ckpt_to_keep) == ("fsdp2", 32, 2)


@pytest.mark.parametrize(("config_name", "overrides"), [(GRPO_CONFIG, GOLDEN_GRPO), (SFT_CONFIG, GOLDEN_SFT)])
def test_fast_compose_equals_a_fresh_hydra_composition(config_name, overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
        fresh = hydra_compose(config_name=config_name, overrides=overrides)
    assert OmegaConf.to_container(compose(config_name, overrides)) == OmegaConf.to_container(fresh)


def test_one_kept_checkpoint_is_two_for_verl(run):
    """verl keeping one deletes it before its tracker names the next (export.verl_checkpoints_to_keep)."""
    one = dataclasses.replace(run, cluster=dataclasses.replace(run.cluster, keep_checkpoints=1))
    grpo = grpo_overrides(one, one.stages[0], PATHS, n_problems=1000, seed=4)
    sft = sft_overrides(one, one.stages[1], PATHS, n_examples=1000, seed=5)
    assert "trainer.max_actor_ckpt_to_keep=2" in grpo and "trainer.max_ckpt_to_keep=2" in sft


def test_unknown_data_size_leaves_steps_to_verl(run):
    assert training_steps(run.stages[0], None, 64) == (None, 2)
    overrides = grpo_overrides(run, run.stages[0], PATHS)
    assert "trainer.total_training_steps=null" in overrides and "trainer.total_epochs=2" in overrides
    stage = StageConfig(kind=StageKind.grpo, steps=7)
    assert training_steps(stage, None, 64) == (7, 7) and training_steps(stage, 10_000, 64) == (7, 7)
    assert training_steps(StageConfig(kind=StageKind.sft, epochs=0.5), 1000, 32) == (15, 15)


def test_paths_with_hydra_special_characters_survive_composition(tmp_path):
    odd = "/data/my runs/a,b=c's [1]"
    assert format_value(odd) == "'/data/my runs/a,b=c\\'s [1]'"
    cfg = compose(SFT_CONFIG, [f"model.path={format_value(odd)}", f"data.train_files={format_value([odd])}"])
    assert cfg.model.path == odd and list(cfg.data.train_files) == [odd]
    assert [format_value(v) for v in (True, None, 2, 1e-6, "x.y")] == ["true", "null", "2", "1e-06", "x.y"]


def test_verl_rejects_bad_keys_and_batch_splits_with_clear_errors(run):
    with pytest.raises(ReasonerError, match=r"stage x: verl's ppo_trainer config rejected.*no_such_key"):
        compose(GRPO_CONFIG, ["actor_rollout_ref.actor.no_such_key=1"], where="stage x")
    with pytest.raises(ReasonerError, match=r"\['model_engine=megatron'\] would switch a verl config group"):
        compose(GRPO_CONFIG, ["model_engine=megatron"])  # config groups are not ours to switch
    uneven = [o.replace("trainer.n_gpus_per_node=4", "trainer.n_gpus_per_node=3") for o in GOLDEN_GRPO]
    with pytest.raises(
        ReasonerError, match=r"ppo_mini_batch_size x rollout.n \(16 x 5\) must be divisible by the 6"
    ):
        compose_stage(GRPO_CONFIG, uneven, where="stage x")
    uneven = [o.replace("trainer.n_gpus_per_node=4", "trainer.n_gpus_per_node=3") for o in GOLDEN_SFT]
    with pytest.raises(
        ReasonerError, match=r"train_batch_size \(32\) must be divisible by the number of GPUs \(6\)"
    ):
        compose_stage(SFT_CONFIG, uneven, where="stage x")


def test_launch_env_carries_logs_and_the_freeze_flag(run):
    env = launch_env(run.stages[0], PATHS, PATHS.log_dir / "m.jsonl")
    assert env["REASONER_FREEZE_VISION"] == "1" and env["VERL_FILE_LOGGER_PATH"] == "/runs/g/logs/m.jsonl"
    assert env["VERL_USE_EXTERNAL_MODULES"] == "reasoner.engines.verl.freeze,reasoner.engines.verl.mrope"
    cpu = launch_env(run.stages[0], PATHS, Path("m"), cpu=True)
    assert cpu["VERL_USE_EXTERNAL_MODULES"] == "reasoner.engines.verl.cpu" and cpu["VERL_PLATFORM"] == "cpu"
    assert launch_env(run.stages[1], PATHS, Path("m"))["REASONER_FREEZE_VISION"] == "0"


LOSS_FAMILY = {
    "dr-grpo": (
        {"loss_agg_mode": LossAggMode("seq-mean-token-sum-norm"), "norm_adv_by_std": False},
        {
            "algorithm.norm_adv_by_std_in_grpo=false",
            "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm",
            "actor_rollout_ref.actor.loss_scale_factor=2048",  # the response budget, as the local engine
        },
    ),
    "dapo-clip": (
        {"clip_ratio_low": 0.2, "clip_ratio_high": 0.28},
        {"actor_rollout_ref.actor.clip_ratio_high=0.28"},  # low 0.2 = clip_ratio: the golden line already
    ),
    "dapo-dynamic": (
        {"clip_ratio_high": 0.28, "dynamic_sampling": True, "max_extra_batches": 4},
        {
            "actor_rollout_ref.actor.clip_ratio_high=0.28",
            "algorithm.filter_groups.enable=true",
            "algorithm.filter_groups.metric=reward",
            "algorithm.filter_groups.max_num_gen_batches=5",  # the first generation batch + 4 extra
        },
    ),
    "gspo": (
        {"policy_loss": PolicyLoss.gspo, "loss_agg_mode": LossAggMode("seq-mean-token-mean"),
         "clip_ratio_low": 3e-4, "clip_ratio_high": 4e-4},
        {
            "actor_rollout_ref.actor.policy_loss.loss_mode=gspo",
            "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean",
            "actor_rollout_ref.actor.clip_ratio_low=0.0003",
            "actor_rollout_ref.actor.clip_ratio_high=0.0004",
        },
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(LOSS_FAMILY))
def test_the_loss_family_translates_to_verls_keys_and_passes_its_validation(run, name):
    keys, expected = LOSS_FAMILY[name]
    stage = dataclasses.replace(run.stages[0], grpo=dataclasses.replace(run.stages[0].grpo, **keys))
    overrides = grpo_overrides(run, stage, PATHS, n_problems=1000, seed=4)
    assert set(overrides) - set(GOLDEN_GRPO) == expected  # only these lines differ from the defaults' list
    added = {line.split("=")[0] for line in expected} - {line.split("=")[0] for line in GOLDEN_GRPO}
    assert len(overrides) == len(GOLDEN_GRPO) + len(added)  # the others replace golden lines, one for one
    cfg = compose_stage(GRPO_CONFIG, overrides, where="loss family")
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)  # verl's ActorConfig checks the mode
    grpo = stage.grpo
    assert actor.loss_agg_mode == grpo.loss_agg_mode.value and actor.policy_loss.loss_mode == grpo.policy_loss.value
    assert (actor.clip_ratio_low, actor.clip_ratio_high) == (
        grpo.clip_ratio_low or grpo.clip_ratio,
        grpo.clip_ratio_high or grpo.clip_ratio,
    )
    assert actor.loss_scale_factor == (2048 if name == "dr-grpo" else None)
    assert cfg.algorithm.norm_adv_by_std_in_grpo is grpo.norm_adv_by_std
    filter_groups = omega_conf_to_dataclass(cfg.algorithm).filter_groups  # verl's AlgoConfig checks the section
    assert (filter_groups.enable, filter_groups.metric) == (grpo.dynamic_sampling, "reward")


def test_the_defaults_translate_to_the_golden_list_unchanged(run):
    """The loss-family keys at their defaults, or spelled out, add nothing to what verl received before them."""
    spelled = dataclasses.replace(
        run.stages[0].grpo, clip_ratio_low=0.2, clip_ratio_high=0.2, loss_agg_mode=LossAggMode("token-mean"),
        policy_loss=PolicyLoss.vanilla, norm_adv_by_std=True, max_extra_batches=7,  # a cap without dynamic sampling
    )  # fmt: skip
    stage = dataclasses.replace(run.stages[0], grpo=spelled)
    assert grpo_overrides(run, stage, PATHS, n_problems=1000, seed=4) == GOLDEN_GRPO


def test_trackers_become_verls_loggers_and_each_stage_logs_into_its_own_mlflow_run(run, tmp_path, monkeypatch):
    """`logging` on the verl engine: verl's `trainer.logger` names the trackers, its project and experiment names
    are ours, and the launch environment points verl's `Tracking` at the stage's run (created once, kept)."""
    from mlflow.tracking import MlflowClient

    from reasoner import tracking
    from reasoner.config import LoggingConfig, Tracker

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    logged = dataclasses.replace(
        run, output_dir=str(tmp_path), logging=LoggingConfig(backends=[Tracker.mlflow, Tracker.wandb], project="p")
    )
    overrides = grpo_overrides(logged, logged.stages[0], PATHS, n_problems=1000, seed=4)
    changed = set(overrides) - set(GOLDEN_GRPO)
    assert changed == {"trainer.logger=[console,file,mlflow,wandb]", "trainer.project_name=p"}
    cfg = compose_stage(GRPO_CONFIG, overrides, where="trackers")
    assert list(cfg.trainer.logger) == ["console", "file", "mlflow", "wandb"]
    assert cfg.trainer.experiment_name == "golden-grpo1"
    env = tracking.stage_environment(logged, "grpo1", tmp_path / "logs")
    assert env == tracking.stage_environment(logged, "grpo1", tmp_path / "logs")  # the same run when resumed
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert (env["WANDB_RUN_GROUP"], env["WANDB_RESUME"], env["WANDB_DIR"]) == ("golden", "allow", str(tmp_path / "logs"))
    created = MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(env["MLFLOW_RUN_ID"])
    assert created.info.run_name == "golden-grpo1"
    assert created.info.artifact_uri.startswith((tmp_path / "mlflow-artifacts").as_uri())
