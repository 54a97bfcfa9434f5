"""Pure translation: our stage config -> verl 0.9.1 Hydra overrides (GRPO: `ppo_trainer`, SFT and DPO:
`sft_trainer_engine`).

This is the one place that knows verl's key names. Everything here is a function of the config and the stage's
paths, so golden tests pin the exact list verl receives. Notes on the mapping:

- GRPO batch sizes are in prompts, as in verl: `prompts_per_step` -> `data.train_batch_size`, and
  `updates_per_batch` minibatches per rollout batch -> `ppo_mini_batch_size = prompts_per_step / updates`.
- SFT examples per optimizer step = `batch_size * grad_accum` -> `data.train_batch_size` (global); how it is
  split into micro batches per GPU is a cluster setting.
- `epochs` may be fractional: with the data size known, it becomes an exact `total_training_steps`; verl's
  `total_epochs` is then only an upper bound that lets that many steps happen (see `training_steps`).
- The GRPO loss family maps one to one: `loss_agg_mode`, `clip_ratio_low/high` (null: `clip_ratio`),
  `policy_loss` -> `actor.policy_loss.loss_mode`, `norm_adv_by_std` -> `algorithm.norm_adv_by_std_in_grpo`;
  seq-mean-token-sum-norm also sets `actor.loss_scale_factor` to the response budget, the constant the local
  engine divides by (verl's default, each micro-batch's padded length, moves with padding). `dynamic_sampling`
  -> `algorithm.filter_groups` (enable, metric `reward`); verl 0.9.1's V1 trainer has no cap on the refills.
- `model.lora` (on): verl's LoRA keys of the model section, see `reasoner.engines.verl.lora`.
- verl 0.9.1 declares `actor.freeze_vision_tower` but no code reads it; we still set it (it documents the
  intent and takes over if verl wires it), and `reasoner.engines.verl.freeze` does the freezing (launch env).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner import tracking
from reasoner.config import ClusterConfig, CPURollout, GRPOConfig, PolicyLoss, RunConfig, StageConfig, Tracker
from reasoner.engines.verl.export import verl_checkpoints_to_keep
from reasoner.engines.verl.lora import checkpoint_contents, lora_overrides

REWARD_FILE = Path(__file__).resolve().parents[3] / "rewards" / "verl.py"
"""The reward adapter verl loads by path (`reward.custom_reward_function.path`)."""

SUM_NORM = "seq-mean-token-sum-norm"
CHECKPOINT_CONTENTS = ("model", "optimizer", "extra", "hf_model")
"""What every checkpoint holds: resumable FSDP shards + optimizer + RNG/data state, and full HF weights (not under
LoRA: `lora.checkpoint_contents`)."""


@dataclass(frozen=True)
class StagePaths:
    """Where one stage's verl job reads and writes (all absolute, on storage every node sees)."""

    init_model: Path
    """HF model folder the stage starts from."""
    train_files: tuple[Path, ...]
    """The stage's verl parquet file(s)."""
    ckpt_dir: Path
    """verl's `default_local_dir`: global_step_N/ checkpoints; a job that finds one resumes from it."""
    log_dir: Path
    """Tensorboard events and the metrics file."""


def format_value(value: Any) -> str:
    """A Python value as Hydra override syntax (strings quoted only where Hydra's grammar needs it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{format_value(item)}" for key, item in value.items()) + "}"
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_\-+./:~@]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _pairs(items: Sequence[tuple[str, Any]]) -> list[str]:
    return [f"{key}={format_value(value)}" for key, value in items]


def steps_per_epoch(n_items: int, batch: int) -> int:
    """Optimizer steps in one pass (verl drops the last partial batch)."""
    return n_items // batch


def training_steps(stage: StageConfig, n_items: int | None, batch: int) -> tuple[int | None, int]:
    """(total_training_steps, total_epochs) for a stage; total is None when the data size is not known yet.

    With a known total, total_epochs is only a bound that must not stop verl early: verl saves the final
    checkpoint at its last step, and filtering (overlong prompts) can shrink an epoch below our count. Every
    epoch has at least one step, so `total` epochs always suffice.
    """
    if n_items is None:
        return (stage.steps or None), max(1, math.ceil(stage.steps or stage.epochs))
    total = stage.steps or max(1, int(stage.epochs * steps_per_epoch(n_items, batch)))
    return total, total


def verl_loggers(run: RunConfig) -> list[str]:
    """verl's `trainer.logger`: the console and the file our engine reads (verl_metrics.jsonl), then the listed
    trackers (mlflow and wandb log into the stage's runs by the ids `tracking.stage_environment` hands over)."""
    return ["console", "file", *(Tracker(b).value for b in run.logging.backends)]


def _trainer_common(
    run: RunConfig, stage: StageConfig, paths: StagePaths, total: int | None, epochs: int
) -> list:
    cluster = run.cluster
    save_every = stage.checkpoint_every if stage.checkpoint_every > 0 else (total or 10**9)
    return [
        ("trainer.nnodes", cluster.nodes),
        ("trainer.n_gpus_per_node", cluster.gpus_per_node),
        ("trainer.project_name", run.logging.project),
        ("trainer.experiment_name", tracking.run_name(run, stage.name)),
        ("trainer.logger", verl_loggers(run)),
        ("trainer.total_epochs", epochs),
        ("trainer.total_training_steps", total),
        ("trainer.save_freq", save_every),
        ("trainer.default_local_dir", str(paths.ckpt_dir)),
        ("trainer.resume_mode", "auto"),
    ]


def _optim(prefix: str, stage: StageConfig) -> list:
    return [
        (f"{prefix}.lr", stage.lr),
        (f"{prefix}.weight_decay", stage.weight_decay),
        (f"{prefix}.lr_warmup_steps_ratio", stage.warmup_ratio),
        (f"{prefix}.lr_scheduler_type", "cosine"),
        # verl's default counts scheduler steps from 0, so its first update runs at lr 0 during warmup; ours (and
        # the local engine's) trains from the first step. Measured: SFT loss curves one step apart otherwise.
        (f"{prefix}.zero_indexed_step", False),
        (f"{prefix}.clip_grad", stage.max_grad_norm),
    ]


def grpo_overrides(
    run: RunConfig,
    stage: StageConfig,
    paths: StagePaths,
    *,
    n_problems: int | None = None,
    seed: int | None = None,
) -> list[str]:
    """Overrides of verl's `ppo_trainer` config for one GRPO stage (`n_problems` None: data not built yet)."""
    grpo, cluster = stage.grpo, run.cluster
    seed = run.seed if seed is None else seed
    total, epochs = training_steps(stage, n_problems, grpo.prompts_per_step)
    files = [str(path) for path in paths.train_files]
    actor, rollout = "actor_rollout_ref.actor", "actor_rollout_ref.rollout"
    items: list[tuple[str, Any]] = [
        ("algorithm.adv_estimator", "grpo"),
        ("algorithm.norm_adv_by_std_in_grpo", grpo.norm_adv_by_std),
        ("algorithm.use_kl_in_reward", False),
        *_dynamic_sampling(grpo),
        ("data.train_files", files),
        # verl always builds a validation set; ours is evaluated by the pipeline, so it stays tiny and unused.
        ("data.val_files", files),
        ("data.val_max_samples", 1),
        ("data.train_batch_size", grpo.prompts_per_step),
        ("data.max_prompt_length", cluster.max_prompt_tokens),
        ("data.max_response_length", grpo.sampling.max_new_tokens),
        ("data.filter_overlong_prompts", True),
        ("data.truncation", "error"),
        ("data.seed", seed),
        ("actor_rollout_ref.model.path", str(paths.init_model)),
        ("actor_rollout_ref.model.enable_gradient_checkpointing", cluster.gradient_checkpointing),
        *_attention("actor_rollout_ref.model", cluster),
        *lora_overrides("actor_rollout_ref.model", run.model.lora, merge_for_rollout=True),
        (f"{actor}.strategy", "fsdp2"),
        *_optim(f"{actor}.optim", stage),
        (f"{actor}.ppo_mini_batch_size", grpo.prompts_per_step // grpo.updates_per_batch),
        (f"{actor}.ppo_epochs", 1),
        (f"{actor}.use_dynamic_bsz", cluster.dynamic_batch),
        (f"{actor}.ppo_max_token_len_per_gpu", cluster.max_tokens_per_gpu),
        (f"{actor}.ppo_micro_batch_size_per_gpu", cluster.micro_batch_size_per_gpu),
        (f"{actor}.clip_ratio", grpo.clip_ratio),
        (f"{actor}.clip_ratio_low", grpo.clip_ratio if grpo.clip_ratio_low is None else grpo.clip_ratio_low),
        (f"{actor}.clip_ratio_high", grpo.clip_ratio if grpo.clip_ratio_high is None else grpo.clip_ratio_high),
        (f"{actor}.use_kl_loss", grpo.kl_coef > 0),
        (f"{actor}.kl_loss_coef", grpo.kl_coef),
        (f"{actor}.kl_loss_type", "low_var_kl"),
        (f"{actor}.entropy_coeff", 0),
        (f"{actor}.loss_agg_mode", grpo.loss_agg_mode.value),
        *_loss_family(actor, grpo),
        (f"{actor}.freeze_vision_tower", stage.freeze_vision),
        (f"{actor}.data_loader_seed", seed),
        (f"{actor}.fsdp_config.param_offload", cluster.param_offload),
        (f"{actor}.fsdp_config.optimizer_offload", cluster.optimizer_offload),
        (f"{actor}.checkpoint.save_contents", checkpoint_contents(CHECKPOINT_CONTENTS, run.model.lora)),
        ("actor_rollout_ref.ref.fsdp_config.param_offload", cluster.ref_param_offload),
        (
            "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu",
            cluster.log_prob_micro_batch_size_per_gpu,
        ),
        (f"{rollout}.name", "vllm"),
        (f"{rollout}.n", grpo.sampling.n),
        (f"{rollout}.temperature", grpo.sampling.temperature),
        (f"{rollout}.top_p", grpo.sampling.top_p),
        (f"{rollout}.tensor_model_parallel_size", cluster.rollout_tensor_parallel),
        (f"{rollout}.gpu_memory_utilization", cluster.gpu_memory_utilization),
        (f"{rollout}.log_prob_micro_batch_size_per_gpu", cluster.log_prob_micro_batch_size_per_gpu),
        (f"{rollout}.seed", seed),
        # vLLM starts on dummy weights (verl's load_format: dummy) and gets only checkpoint tensors from the sync;
        # with device-side image normalisation (vLLM's default for Qwen2.5-VL) its per-channel mean/std live in
        # buffers the dummy loader fills with random values, so every image would be normalised wrongly. Off:
        # the processor normalises on the host, as transformers does.
        (f"+{rollout}.engine_kwargs.vllm.mm_device_do_normalize", False),
        ("reward.custom_reward_function.path", str(REWARD_FILE)),
        ("reward.custom_reward_function.name", "compute_score"),
        *_trainer_common(run, stage, paths, total, epochs),
        ("trainer.max_actor_ckpt_to_keep", verl_checkpoints_to_keep(cluster.keep_checkpoints)),
        ("trainer.val_before_train", False),
        ("trainer.test_freq", -1),
    ]
    # reward_kwargs is not in verl's schema: `+` adds the keys (verl passes them to compute_score).
    kwargs = [
        ("format_weight", grpo.format_weight),
        ("summary_penalty", grpo.summary_penalty),
        ("extraction", grpo.extraction.value),
    ]
    return _pairs(items) + [
        f"+reward.custom_reward_function.reward_kwargs.{k}={format_value(v)}" for k, v in kwargs
    ]


def _loss_family(actor: str, grpo: GRPOConfig) -> list[tuple[str, Any]]:
    """The policy loss and seq-mean-token-sum-norm's divisor, each only away from verl's default (the lists of
    stages that use neither stay as they were)."""
    items: list[tuple[str, Any]] = []
    if grpo.policy_loss != PolicyLoss.vanilla:
        items.append((f"{actor}.policy_loss.loss_mode", grpo.policy_loss.value))
    if grpo.loss_agg_mode.value == SUM_NORM:
        # verl's default divisor is each micro-batch's padded length; the local engine's is this constant.
        items.append((f"{actor}.loss_scale_factor", grpo.sampling.max_new_tokens))
    return items


def _dynamic_sampling(grpo: GRPOConfig) -> list[tuple[str, Any]]:
    """DAPO's group filtering on the reward (verl's canonical score: ours, format and penalty included), only when
    on. verl 0.9.1's V1 trainer refills prompt by prompt until the batch is full and ignores the cap (it logs
    so); the cap is still set, as the local engine reads it, for whoever reads the composed config."""
    if not grpo.dynamic_sampling:
        return []
    return [
        ("algorithm.filter_groups.enable", True),
        ("algorithm.filter_groups.metric", "reward"),
        ("algorithm.filter_groups.max_num_gen_batches", 1 + grpo.max_extra_batches),
    ]


def sft_overrides(
    run: RunConfig,
    stage: StageConfig,
    paths: StagePaths,
    *,
    n_examples: int | None = None,
    seed: int | None = None,
) -> list[str]:
    """Overrides of verl's `sft_trainer_engine` config (the Ray SFT trainer) for one SFT stage."""
    return _pairs(_sft_items(run, stage, paths, n_examples, seed))


def dpo_overrides(
    run: RunConfig,
    stage: StageConfig,
    paths: StagePaths,
    *,
    n_pairs: int | None = None,
    seed: int | None = None,
) -> list[str]:
    """A dpo stage on the same Ray SFT trainer: batches in pairs (`data.train_batch_size` = pairs per step), drawn by
    `reasoner.engines.verl.dpo.PairDataset` as consecutive chosen/rejected rows; fixed-size micro-batches of
    `cluster.micro_batch_size_per_gpu` rows (even: whole pairs) and no reordering (`balance_batch`), so no pair is
    split. The loss is set on the worker group at launch (`launch.run_sft`)."""
    items = dict(_sft_items(run, stage, paths, n_pairs, seed))
    items.update({
        "data.custom_cls.path": "pkg://reasoner.engines.verl.dpo",
        "data.custom_cls.name": "PairDataset",
        "data.use_dynamic_bsz": False,
        "trainer.balance_batch": False,
    })  # fmt: skip
    return _pairs(list(items.items()))


def _sft_items(
    run: RunConfig, stage: StageConfig, paths: StagePaths, n_examples: int | None, seed: int | None
) -> list[tuple[str, Any]]:
    cluster = run.cluster
    batch = stage.batch_size * stage.grad_accum
    total, epochs = training_steps(stage, n_examples, batch)
    items: list[tuple[str, Any]] = [
        ("data.train_files", [str(path) for path in paths.train_files]),
        ("data.val_files", None),
        ("data.train_batch_size", batch),
        ("data.micro_batch_size_per_gpu", cluster.micro_batch_size_per_gpu),
        ("data.use_dynamic_bsz", cluster.dynamic_batch),
        ("data.max_token_len_per_gpu", cluster.max_tokens_per_gpu),
        ("data.max_length", cluster.max_sft_tokens),
        ("data.truncation", "error"),
        ("data.pad_mode", "no_padding"),
        ("data.messages_key", "messages"),
        ("model.path", str(paths.init_model)),
        ("model.enable_gradient_checkpointing", cluster.gradient_checkpointing),
        *_attention("model", cluster),
        *lora_overrides("model", run.model.lora, merge_for_rollout=False),
        ("engine.strategy", "fsdp2"),
        ("engine.param_offload", cluster.param_offload),
        ("engine.optimizer_offload", cluster.optimizer_offload),
        *_optim("optim", stage),
        ("checkpoint.save_contents", checkpoint_contents(CHECKPOINT_CONTENTS, run.model.lora)),
        *_trainer_common(run, stage, paths, total, epochs),
        ("trainer.max_ckpt_to_keep", verl_checkpoints_to_keep(cluster.keep_checkpoints)),
        ("trainer.seed", run.seed if seed is None else seed),
    ]
    return items


HOOK_MODULES = ("reasoner.engines.verl.freeze", "reasoner.engines.verl.mrope")
"""Imported by verl in every process of every run: the vision-freeze hook and the mrope position_ids fix."""
CPU_MODULE = "reasoner.engines.verl.cpu"
"""Imported by verl in every process of a CPU run: the CPU platform, the hf rollout, the CPU patches."""


def _attention(model: str, cluster: ClusterConfig) -> list[tuple[str, Any]]:
    """verl's remove-padding path (flash-attn), or sdpa on padded batches when `cluster.remove_padding` is off."""
    if cluster.remove_padding:
        return [(f"{model}.use_remove_padding", True)]
    return [(f"{model}.use_remove_padding", False), (f"+{model}.override_config.attn_implementation", "sdpa")]


def cpu_overrides(config_name: str, cluster: ClusterConfig) -> list[str]:
    """What `cluster.device: cpu` adds on top of the GPU translation (verl's same trainers, on CPU processes).

    The rollout is verl's own vLLM rollout on vLLM's CPU build (`cluster.cpu_rollout: vllm`) or our transformers
    server (`hf`). vLLM on the CPU: eager mode (no torch.compile or CUDA graphs), no sleep mode (unsupported:
    nothing to free), fp32 like the trainer (so served log-probs match its own), a KV cache of
    `cpu_kv_cache_gib` (vLLM would otherwise reserve gpu_memory_utilization x all host memory). Qwen-VL's
    remove-padding path needs flash-attn, so training attention is sdpa on padded batches; parameters stay fp32
    (verl's default bf16 mixed precision is slow and lossy on a CPU, and fp32 is what the local engine trains
    in); torch.compile is off (a C++ build per process would dominate a short CPU job); the agent loop, reward
    loop and TransferQueue each get one worker (each reserves a Ray CPU).
    """
    fp32 = {"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"}
    if config_name == "ppo_trainer":
        rollout, actor = "actor_rollout_ref.rollout", "actor_rollout_ref.actor"
        items: list[tuple[str, Any]] = [
            ("trainer.device", "cpu"),
            (f"{rollout}.name", cluster.cpu_rollout.value),
            (f"{rollout}.free_cache_engine", False),
            (f"{rollout}.tensor_model_parallel_size", 1),
            (f"{rollout}.agent.num_workers", 1),
            ("actor_rollout_ref.model.use_remove_padding", False),
            ("++actor_rollout_ref.model.override_config.attn_implementation", "sdpa"),  # ++: the GPU list may set it
            (f"{actor}.use_torch_compile", False),
            (f"{actor}.fsdp_config.use_torch_compile", False),
            ("actor_rollout_ref.ref.fsdp_config.use_torch_compile", False),
            (f"+{actor}.fsdp_config.mixed_precision", fp32),
            ("+actor_rollout_ref.ref.fsdp_config.mixed_precision", fp32),
            ("reward.num_workers", 1),
            ("data.dataloader_num_workers", 0),
            ("transfer_queue.backend.SimpleStorage.num_data_storage_units", 1),
        ]
        if cluster.cpu_rollout == CPURollout.vllm:
            items += [
                (f"{rollout}.enforce_eager", True),
                (f"+{rollout}.enable_sleep_mode", False),
                (f"{rollout}.dtype", "float32"),
                (f"+{rollout}.engine_kwargs.vllm.kv_cache_memory_bytes", int(cluster.cpu_kv_cache_gib * 2**30)),
            ]
    else:
        items = [
            ("trainer.device", "cpu"),
            ("model.use_remove_padding", False),
            ("++model.override_config.attn_implementation", "sdpa"),
            ("engine.use_torch_compile", False),
            ("+engine.mixed_precision", fp32),
        ]
    return _pairs(items)


def launch_env(stage: StageConfig, paths: StagePaths, metrics_file: Path, cpu: bool = False) -> dict[str, str]:
    """Environment of the verl driver actor and (by Ray's runtime_env inheritance) every worker it starts."""
    # On the CPU, the CPU module imports these hooks itself, after registering the platform that importing
    # verl's engines asks for (listed side by side, a hook could be imported first, half-way through verl's init).
    modules = [CPU_MODULE] if cpu else list(HOOK_MODULES)
    env = {
        "TENSORBOARD_DIR": str(paths.log_dir / "tensorboard"),
        "VERL_FILE_LOGGER_PATH": str(metrics_file),
        # verl imports these modules in every process at `import verl`: our hooks live there.
        "VERL_USE_EXTERNAL_MODULES": ",".join(modules),
        "REASONER_FREEZE_VISION": "1" if stage.freeze_vision else "0",
        "TOKENIZERS_PARALLELISM": "true",
        "HF_HUB_OFFLINE": "1",
    }
    if cpu:
        env.update({"VERL_PLATFORM": "cpu", "OMP_NUM_THREADS": "1"})
    return env
