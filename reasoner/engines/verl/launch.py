"""Start verl's trainers on the Ray cluster: the boundary where a validated config is handed to verl.

Everything up to these calls (overrides, composition, validation, data files) is built and checked by tested
code; these functions only hand a validated config to verl. Each trainer runs inside a driver actor whose
runtime environment carries `env` (log locations, the vision-freeze flag, and on a CPU cluster the CPU platform),
which every worker verl starts inherits. Inside a Ray job, `ray.init()` joins the job's cluster.

On GPUs nothing here runs in the CPU test suite; with `cluster.device: cpu` the same calls run verl's real
trainers on CPU processes (tests/engines/test_verl_cpu_train.py).
"""

from __future__ import annotations

import contextlib
import logging
import os

from reasoner.config import ClusterConfig, ClusterDevice

log = logging.getLogger(__name__)

CPU_RAY_CPUS = 16
"""Logical CPUs a local CPU cluster declares: verl's helper actors (agent loop, reward, TransferQueue) each
reserve one but mostly wait, so the count is a scheduling token, not a core count."""


def ray_init_kwargs(cluster: ClusterConfig) -> dict:
    """`ray.init` arguments when this process starts its own Ray (no cluster to join).

    A CPU cluster declares one fake GPU per training rank: verl places its workers on GPU bundles, and the CPU
    platform runs them on the CPU (the resource is only a placement token).
    """
    if cluster.device == ClusterDevice.cpu:
        return {"num_cpus": CPU_RAY_CPUS, "num_gpus": cluster.nodes * cluster.gpus_per_node}
    return {}


def join_ray(cluster: ClusterConfig) -> None:
    """Join the job's Ray cluster, or start a local one shaped for `cluster` (fake GPUs on a CPU cluster)."""
    import ray

    if cluster.device == ClusterDevice.cpu:
        # This driver process composes verl objects too: it must see the CPU platform like every worker does.
        os.environ["VERL_PLATFORM"] = "cpu"
        import reasoner.engines.verl.cpu  # noqa: F401
    if not ray.is_initialized():
        # In a Ray job (or with RAY_ADDRESS set) this joins the existing cluster. No runtime_env here: a job's own
        # would conflict; each trainer's driver actor carries `env` and the workers it starts inherit it.
        ray.init(**({} if os.environ.get("RAY_ADDRESS") else ray_init_kwargs(cluster)))


@contextlib.contextmanager
def releasing_placement_groups():
    """Remove the placement groups a trainer created in this job when it ends.

    Why: verl's trainers reserve their GPUs (fake ones on a CPU cluster) in placement groups created from a driver
    actor; Ray scopes those to the job, not to the actor, so after one stage they would keep every GPU and the
    next stage of the same `reasoner run` would wait for resources forever (or fail: "Total available GPUs 0").
    """
    import ray
    from ray._raylet import PlacementGroupID
    from ray.util import placement_group_table, remove_placement_group
    from ray.util.placement_group import PlacementGroup

    job = ray.get_runtime_context().get_job_id()
    before = set(placement_group_table())
    try:
        yield
    finally:
        for pg_id, info in placement_group_table().items():
            # A placement group id ends with the id of the job that created it.
            if pg_id not in before and pg_id.endswith(job) and info["state"] != "REMOVED":
                remove_placement_group(PlacementGroup(PlacementGroupID.from_hex(pg_id)))


def run_grpo(cfg, env: dict[str, str], cluster: ClusterConfig) -> None:
    """verl's PPO/GRPO trainer (`verl.trainer.main_ppo.run_ppo` with its V1 TaskRunner) on a composed config."""
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo

    join_ray(cluster)
    log.info("starting verl GRPO (%d node(s) x %d rank(s), %s)", cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node,
             cluster.device.value)  # fmt: skip
    with releasing_placement_groups():
        run_ppo(cfg, task_runner_class=TaskRunnerV1.options(runtime_env={"env_vars": env}))


def run_sft(cfg, env: dict[str, str], cluster: ClusterConfig, dpo: tuple[float, float] | None = None) -> None:
    """verl's Ray SFT trainer (`verl.trainer.sft_trainer_ray.SFTTrainer`) in a driver actor; with `dpo` (beta,
    nll_alpha), its loss is our DPO loss (`reasoner.engines.verl.dpo`) instead of verl's SFT loss."""
    import ray

    join_ray(cluster)
    log.info("starting verl SFT (%d node(s) x %d rank(s), %s)", cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node,
             cluster.device.value)  # fmt: skip
    with releasing_placement_groups():
        runner = ray.remote(num_cpus=1)(_SFTRunner).options(runtime_env={"env_vars": env}).remote()
        ray.get(runner.run.remote(cfg, dpo))
        ray.kill(runner)  # its worker actors go with it


def failure_cause(err: BaseException) -> str:
    """The innermost error of a failed verl job as one line ("ValueError: ..."), unwrapping Ray's task errors."""
    inner = err
    while (nested := getattr(inner, "cause", None) or inner.__cause__) is not None and nested is not inner:
        inner = nested
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return f"{type(inner).__name__}: {lines[-1] if lines else ''}".rstrip(": ")


class _SFTRunner:
    """Driver actor body: verl's SFTTrainer builds its worker group from here, so workers inherit our env."""

    def run(self, cfg, dpo: tuple[float, float] | None = None) -> None:
        from verl.trainer.sft_trainer_ray import SFTTrainer

        trainer = SFTTrainer(config=cfg)
        if dpo is not None:
            from reasoner.engines.verl import dpo as dpo_loss

            # verl's extension point: the worker group's loss (set once more, before any step, over the SFT loss).
            trainer.training_client.set_loss_fn(loss_fn=dpo_loss.loss_function(*dpo))
            dpo_loss.sum_metric_parts(trainer.training_client)
        trainer.fit()
