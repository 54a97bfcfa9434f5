"""`VerlEngine`: the `verl` engine of the Engine protocol, and `validate_plan` for `reasoner run CONFIG --plan`.

Per training stage: write the stage's verl parquet, translate the stage config into verl overrides, compose and
validate verl's own config, launch verl's trainer on the Ray cluster (skipped when the checkpoints already reach
the last step), then export the newest checkpoint as a Hugging Face folder. Generation (evaluation,
self-distillation) runs on a pool of vLLM actors, one per `rollout_tensor_parallel` GPUs; the pool is shut down
before training so verl gets every GPU.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner import tracking
from reasoner.atomic import remove_partial_writes, write_text
from reasoner.config import ClusterConfig, ClusterDevice, RunConfig, StageConfig, StageKind
from reasoner.data.records.problem import Problem
from reasoner.data.stage.preference import PreferencePair
from reasoner.data.stage.selection import SFTExample
from reasoner.engines.base import TrainJob
from reasoner.engines.verl import lora
from reasoner.engines.verl import overrides as ov
from reasoner.engines.verl.compose import GRPO_CONFIG, SFT_CONFIG, compose, validate_grpo, validate_sft
from reasoner.engines.verl.data_format import (
    ImageLimits,
    write_pair_parquet,
    write_rl_parquet,
    write_sft_parquet,
)
from reasoner.engines.verl.export import (
    checkpoint_step,
    claim_checkpoints,
    discard_partial_checkpoints,
    export_model,
    final_metrics,
    latest_checkpoint,
    prune_checkpoints,
)
from reasoner.errors import ReasonerError
from reasoner.generation.base import Generator
from reasoner.schedule import StagePlan

log = logging.getLogger(__name__)

TRAIN_FILE = Path("verl_data") / "train.parquet"
"""Where a stage's verl parquet goes, inside its ckpt dir (storage every node sees)."""
METRICS_FILE = "verl_metrics.jsonl"
ERROR_FILE = "verl_error.txt"
"""A failed trainer's whole traceback (the driver's and the Ray workers'), beside its metrics."""


@dataclass(frozen=True)
class VerlStagePlan:
    """What `validate_plan` checked for one stage: verl's config name, our overrides, the composed config."""

    name: str
    kind: str
    config_name: str
    overrides: list[str]
    config: Any
    """verl's composed and validated config (an OmegaConf DictConfig)."""


DPO_EVAL_EVERY = (
    "stages.{stage}.dpo.eval_every: {every} is not carried by the verl engine (its held-out pairs are scored in the "
    "driver at the start and the end only); set it to 0 or run the stage with engine: local"
)
HELDOUT_FILE = Path("verl_data") / "heldout.parquet"
"""A dpo stage's held-out pairs, tokenized by verl's dataset for the driver's scoring (in its ckpt dir)."""


def stage_paths(init_model: Path, ckpt_dir: Path, log_dir: Path) -> ov.StagePaths:
    """A stage's verl paths (absolute): its parquet file lives in its checkpoint folder."""
    ckpt_dir = ckpt_dir.absolute()
    return ov.StagePaths(init_model.absolute(), (ckpt_dir / TRAIN_FILE,), ckpt_dir, log_dir.absolute())


def stage_overrides(run: RunConfig, stage: StageConfig, paths: ov.StagePaths, n_items: int | None, seed: int):
    """(verl config name, overrides) of one stage: the GPU translation, plus the CPU list on a CPU cluster."""
    if stage.kind == StageKind.grpo:
        name, overrides = GRPO_CONFIG, ov.grpo_overrides(run, stage, paths, n_problems=n_items, seed=seed)
    elif stage.kind == StageKind.dpo:
        name, overrides = SFT_CONFIG, ov.dpo_overrides(run, stage, paths, n_pairs=n_items, seed=seed)
    else:
        name, overrides = SFT_CONFIG, ov.sft_overrides(run, stage, paths, n_examples=n_items, seed=seed)
    if run.cluster.device == ClusterDevice.cpu:
        overrides += ov.cpu_overrides(name, run.cluster)
    return name, overrides


def compose_stage(config_name: str, overrides: list[str], where: str):
    """verl's composed and validated config for one stage (ReasonerError naming `where` on failure)."""
    cfg = compose(config_name, overrides, where=where)
    (validate_grpo if config_name == GRPO_CONFIG else validate_sft)(cfg, where=where)
    return cfg


def check_stage(stage: StageConfig) -> list[str]:
    """Stage settings the translation could only round, and stage kinds it has no route for (messages naming the
    key)."""
    if stage.kind == StageKind.dpo and stage.dpo.eval_every:
        return [DPO_EVAL_EVERY.format(stage=stage.name, every=stage.dpo.eval_every)]
    grpo = stage.grpo
    if stage.kind == StageKind.grpo and (
        grpo.updates_per_batch < 1 or grpo.prompts_per_step % grpo.updates_per_batch
    ):
        return [
            f"stages.{stage.name}.grpo.prompts_per_step: {grpo.prompts_per_step} must be a multiple of "
            f"grpo.updates_per_batch ({grpo.updates_per_batch}): verl updates on equal minibatches"
        ]
    return []


def validate_plan(run: RunConfig, plans: list[StagePlan], run_dir: Path | None = None) -> list[VerlStagePlan]:
    """Compose and validate every stage's verl config (no Ray, no GPU, no model loading); raise on any error."""
    run_dir = run_dir or Path(run.output_dir) / run.name
    errors: list[str] = lora.check(run)
    by_name = {plan.name: plan for plan in plans}
    checked = []
    for plan in plans:
        if plan.config is None:
            continue
        stage_dir = run_dir / "stages" / plan.dir_name
        if check_stage(plan.config):
            errors += check_stage(plan.config)
            continue
        paths = stage_paths(
            _planned_model(run, run_dir, by_name[plan.init]), stage_dir / "ckpt", stage_dir / "logs"
        )
        config_name, overrides = stage_overrides(run, plan.config, paths, None, plan.seed)
        try:
            cfg = compose_stage(config_name, overrides, where=f"stages.{plan.name}")
        except ReasonerError as err:
            errors.append(str(err))
            continue
        checked.append(VerlStagePlan(plan.name, plan.kind, config_name, overrides, cfg))
    if errors:
        raise ReasonerError("verl engine: " + "\n  ".join(errors))
    return checked


def _planned_model(run: RunConfig, run_dir: Path, init: StagePlan) -> Path:
    """Where the model a stage starts from will be (the base: model.path, or the tiny model stage 00 builds)."""
    if init.config is None and run.model.path:
        return Path(run.model.path)
    return run_dir / "stages" / init.dir_name / "model"


class VerlEngine:
    """The Engine protocol on a Ray cluster: verl trains, a vLLM actor pool generates."""

    validate = staticmethod(validate_plan)

    def __init__(self, run: RunConfig):
        self.run = run
        self._pool = None
        self._pool_model: Path | None = None

    def generator(self, model_path: Path) -> Generator:
        """A generation pool serving `model_path` (one live pool at a time: a new model replaces the old).

        GPU clusters: vLLM actors, one per `rollout_tensor_parallel` GPUs. CPU clusters: one actor generating with
        `eval.backend` (transformers by default, or vLLM's CPU build).
        """
        from reasoner.engines.verl import launch
        from reasoner.generation.pool import GeneratorConfig, GeneratorPool

        if self._pool is not None and self._pool_model == Path(model_path):
            return self._pool
        self.release_generators()
        cluster = self.run.cluster
        if cluster.device == ClusterDevice.cpu:
            factory = GeneratorConfig(
                str(model_path),
                backend=self.run.eval.backend.value,
                max_prompt_tokens=cluster.max_prompt_tokens,
                batch_size=self.run.eval.batch_size,
            )
            replicas, options = 1, {"num_cpus": 1}
        else:
            _require_vllm()
            replicas = cluster.nodes * cluster.gpus_per_node // cluster.rollout_tensor_parallel
            options = {"num_gpus": cluster.rollout_tensor_parallel}
            factory = GeneratorConfig(
                str(model_path),
                backend="vllm",
                max_prompt_tokens=cluster.max_prompt_tokens,
                extra=vllm_engine_args(cluster),
            )
        launch.join_ray(cluster)
        self._pool = GeneratorPool(factory, num_actors=replicas, chunk_size=64, actor_options=options)
        self._pool_model = Path(model_path)
        return self._pool

    def release_generators(self) -> None:
        """Shut the generation pool down so its GPUs are free for training."""
        if self._pool is not None:
            self._pool.shutdown()
        self._pool, self._pool_model = None, None

    def train_sft(self, job: TrainJob, examples: list[SFTExample]) -> dict[str, float]:
        """verl's Ray SFT trainer on `examples`; the exported model lands at `job.out_model`."""
        self._check_size(
            job.stage, len(examples), job.stage.batch_size * job.stage.grad_accum, "SFT examples"
        )
        paths = stage_paths(job.init_model, job.ckpt_dir, job.log_dir)
        write_sft_parquet(
            [(e.problem, e.target, e.template(job.template)) for e in examples],
            paths.train_files[0],
            limits=self._limits(),
        )
        return self._train(job, paths, len(examples), role=None)

    def train_grpo(self, job: TrainJob, problems: list[Problem]) -> dict[str, float]:
        """verl's GRPO (main_ppo) on `problems`; the exported model lands at `job.out_model`."""
        self._check_size(job.stage, len(problems), job.stage.grpo.prompts_per_step, "problems")
        paths = stage_paths(job.init_model, job.ckpt_dir, job.log_dir)
        write_rl_parquet(
            problems,
            paths.train_files[0],
            job.template,
            data_source=job.stage.data.dataset,
            limits=self._limits(),
        )
        return self._train(job, paths, len(problems), role="actor")

    def train_dpo(self, job: TrainJob, pairs: list[PreferencePair]) -> dict[str, float]:
        """DPO on verl's Ray SFT trainer with our pair dataset and loss (`engines/verl/dpo.py`); the reference and
        held-out log-probs are scored in this process (`dpo_scoring`). Returns the summary with `dpo_eval/*`."""
        from reasoner.engines.verl import dpo_scoring

        stage, dpo = job.stage, job.stage.dpo
        train = [pair for pair in pairs if not pair.heldout]
        heldout = [pair for pair in pairs if pair.heldout]
        self._check_size(stage, len(train), stage.batch_size * stage.grad_accum, "training pairs")
        paths = stage_paths(job.init_model, job.ckpt_dir, job.log_dir)
        heldout_file = paths.ckpt_dir / HELDOUT_FILE

        def write(group: list[PreferencePair], path: Path, refs=None) -> Path:
            triples = [(pair.problem, pair.chosen, pair.rejected) for pair in group]
            return write_pair_parquet(triples, path, job.template, limits=self._limits(), refs=refs)

        groups = [([p.problem.id for p in train], write(train, paths.train_files[0]))]
        if heldout:
            groups.append(([p.problem.id for p in heldout], write(heldout, heldout_file)))
        config_name, overrides = stage_overrides(self.run, stage, paths, len(train), job.seed)
        data_config = compose_stage(config_name, overrides, where=f"stage {stage.name}").data
        job.ckpt_dir.mkdir(parents=True, exist_ok=True)
        refs = dpo_scoring.reference_logps(job, groups, data_config)
        write(train, paths.train_files[0], refs=[refs[p.problem.id] for p in train])
        summary = self._train(job, paths, len(train), role=None, dpo=(dpo.beta, dpo.nll_alpha))
        if heldout:
            held_refs = [refs[p.problem.id] for p in heldout]
            summary.update(dpo_scoring.heldout_metrics(held_refs, held_refs, dpo.beta, "dpo_eval/start_"))
            scored = dpo_scoring.score_pairs(job.out_model, heldout_file, data_config)
            summary.update(dpo_scoring.heldout_metrics(scored, held_refs, dpo.beta, "dpo_eval/"))
        return summary

    def _train(
        self, job: TrainJob, paths: ov.StagePaths, n_items: int, role: str | None, dpo: tuple[float, float] | None = None
    ) -> dict[str, float]:
        from reasoner.engines.verl import launch

        errors = check_stage(job.stage)
        if errors:
            raise ReasonerError("verl engine: " + "\n  ".join(errors))
        config_name, overrides = stage_overrides(self.run, job.stage, paths, n_items, job.seed)
        cfg = compose_stage(config_name, overrides, where=f"stage {job.stage.name}")
        _write_config(cfg, paths.log_dir / "verl_config.yaml")
        total = int(cfg.trainer.total_training_steps)
        remove_partial_writes(paths.ckpt_dir)  # our own files there (the fingerprint marker) killed mid-write
        claim_checkpoints(paths.ckpt_dir, job.fingerprint, job.stage.name)
        discard_partial_checkpoints(paths.ckpt_dir, job.stage.name)
        prune_checkpoints(paths.ckpt_dir, self.run.cluster.keep_checkpoints, job.stage.name)
        done = checkpoint_step(latest_checkpoint(paths.ckpt_dir))
        metrics_file = paths.log_dir / METRICS_FILE
        if done < total:
            self.release_generators()
            _keep_previous(metrics_file)
            log.info("stage %s: verl %s from step %d of %d", job.stage.name, config_name, done, total)
            cpu = self.run.cluster.device == ClusterDevice.cpu
            env = ov.launch_env(job.stage, paths, metrics_file, cpu=cpu)
            env.update(tracking.verl_attempt_environment(self.run, job.stage.name, paths.log_dir))
            try:
                if config_name == GRPO_CONFIG:
                    launch.run_grpo(cfg, env, self.run.cluster)
                else:
                    launch.run_sft(cfg, env, self.run.cluster, dpo=dpo)
            except Exception as err:  # noqa: BLE001 - re-raised as one line naming the stage; the cause is chained
                raise trainer_failure(err, job.stage.name, config_name, paths) from err
            prune_checkpoints(paths.ckpt_dir, self.run.cluster.keep_checkpoints, job.stage.name)
        else:
            log.info(
                "stage %s: checkpoint at step %d of %d already; exporting it", job.stage.name, done, total
            )
        export_model(paths.ckpt_dir, job.out_model, role=role, init_model=job.init_model)
        return {**final_metrics(metrics_file), "verl/total_steps": float(total)}

    def _limits(self) -> ImageLimits:
        return ImageLimits(self.run.cluster.max_image_pixels, self.run.cluster.min_image_pixels)

    def _check_size(self, stage: StageConfig, n_items: int, batch: int, what: str) -> None:
        if n_items < batch:
            raise ReasonerError(
                f"stage {stage.name}: {n_items} {what} is fewer than one batch ({batch}); "
                "lower the batch size or add data"
            )


def _require_vllm() -> None:
    import importlib.util

    from reasoner.generation.vllm import INSTALL_HINT

    if importlib.util.find_spec("vllm") is None:
        raise ReasonerError(f"the verl engine generates with vLLM, which is not installed here: {INSTALL_HINT}")


def vllm_engine_args(cluster: ClusterConfig) -> dict:
    """`vllm.LLM` arguments of one generation replica: its GPUs, memory share and image size limits."""
    args = {
        "tensor_parallel_size": cluster.rollout_tensor_parallel,
        "gpu_memory_utilization": cluster.gpu_memory_utilization,
        "mm_processor_kwargs": {
            "max_pixels": cluster.max_image_pixels,
            "min_pixels": cluster.min_image_pixels,
        },
    }
    if cluster.rollout_tensor_parallel > 1:
        args["distributed_executor_backend"] = "mp"  # the actor owns its GPUs; no nested Ray placement
    return args


def _write_config(cfg, path: Path) -> None:
    from omegaconf import OmegaConf

    write_text(path, OmegaConf.to_yaml(cfg))


def _keep_previous(metrics_file: Path) -> None:
    """verl's file logger truncates its file: move an earlier attempt's metrics aside (resume after preemption)."""
    if metrics_file.is_file():
        attempt = 1
        while metrics_file.with_suffix(f".{attempt}.jsonl").exists():
            attempt += 1
        metrics_file.rename(metrics_file.with_suffix(f".{attempt}.jsonl"))


def trainer_failure(err: BaseException, stage: str, config_name: str, paths: ov.StagePaths) -> ReasonerError:
    """The one-line error of a failed verl trainer: the stage and the innermost cause. The whole traceback, Ray's
    remote ones included, goes to the stage's `logs/verl_error.txt`: Ray prints a worker's traceback only for an
    error nobody catches, and this one is caught."""
    from reasoner.engines.verl import launch

    trace = write_text(paths.log_dir / ERROR_FILE, "".join(traceback.format_exception(err)))
    return ReasonerError(
        f"stage {stage}: verl's {config_name} trainer failed: {launch.failure_cause(err)} (traceback in {trace}; "
        f"finished stages are kept, and re-running resumes this stage from its last checkpoint in {paths.ckpt_dir})"
    )
