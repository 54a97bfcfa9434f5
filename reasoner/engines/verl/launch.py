"""The GPU-only boundary: start verl's trainers on the Ray cluster. Nothing here runs in the CPU test suite.

Everything up to these calls (overrides, composition, validation, data files) is built and checked by tested
code; these functions only hand a validated config to verl. Each trainer runs inside a driver actor whose
runtime environment carries `env` (log locations, the vision-freeze flag), which every worker verl starts
inherits. Inside a Ray job, `ray.init()` joins the job's cluster.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def _join_ray() -> None:
    import ray

    if not ray.is_initialized():
        ray.init()  # in a Ray job (or with RAY_ADDRESS set) this joins the existing cluster


def run_grpo(cfg, env: dict[str, str]) -> None:
    """verl's PPO/GRPO trainer (`verl.trainer.main_ppo.run_ppo` with its V1 TaskRunner) on a composed config."""
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo

    _join_ray()
    log.info("starting verl GRPO (%d node(s) x %d GPU(s))", cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node)
    run_ppo(cfg, task_runner_class=TaskRunnerV1.options(runtime_env={"env_vars": env}))


def run_sft(cfg, env: dict[str, str]) -> None:
    """verl's Ray SFT trainer (`verl.trainer.sft_trainer_ray.SFTTrainer`) in a driver actor."""
    import ray

    _join_ray()
    log.info("starting verl SFT (%d node(s) x %d GPU(s))", cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node)
    runner = ray.remote(num_cpus=1)(_SFTRunner).options(runtime_env={"env_vars": env}).remote()
    ray.get(runner.run.remote(cfg))


class _SFTRunner:
    """Driver actor body: verl's SFTTrainer builds its worker group from here, so workers inherit our env."""

    def run(self, cfg) -> None:
        from verl.trainer.sft_trainer_ray import SFTTrainer

        SFTTrainer(config=cfg).fit()
