"""`reasoner data distill CONFIG`: a standalone iteration-1 distillation outside any run schedule.

    reasoner data distill configs/distill-demo.yaml [key=value ...]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING

from reasoner.config import (
    DatasetConfig,
    Device,
    DistillConfig,
    ModelConfig,
)
from reasoner.config.loading import (
    check_dataset,
    check_distill,
    check_tiny_model,
    fill_seeds,
    load_structured,
)
from reasoner.config.ranges import ALL_IF_0, AT_LEAST_1, SEED, check_ranges, ranged
from reasoner.data.stage.distill import DistillResult, distill
from reasoner.data.stage.selection import token_counter
from reasoner.errors import ReasonerError
from reasoner.generation.base import Backend, Generator


@dataclass
class DistillJobConfig:
    """A standalone distillation (`reasoner data distill CONFIG`): a dataset, the models, the distill settings.
    Each number's range is beside its default (`ranged`), checked with the sections' own by `check_ranges`."""

    name: str = MISSING
    """Outputs go to <output_dir>/<name>/."""
    output_dir: str = "runs"
    seed: int = ranged(0, SEED)
    """Shard i samples with seed + i; also the tiny model's and a synthetic dataset's seed when theirs are null."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """What `base` means in distill.captioner / distill.reasoner (a model folder, or a tiny model to build)."""
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    """The problems to distil (synthetic | file | mathvista, as in run configs)."""
    limit: int = ranged(0, ALL_IF_0)
    """Use at most this many problems (0 = all)."""
    distill: DistillConfig = field(default_factory=DistillConfig)
    backend: Backend = Backend.hf
    """Generation backend of both models: hf | vllm."""
    device: Device = Device.cpu
    """hf backend: auto | cpu | cuda."""
    batch_size: int = ranged(16, AT_LEAST_1)
    """hf backend: sequences per generate call."""
    threads: int = ranged(1, AT_LEAST_1)
    """torch CPU threads."""


def load_job(path: str | Path, overrides: Sequence[str] = ()) -> DistillJobConfig:
    """Load a distill config from YAML plus `key=value` overrides; bad keys or values fail naming the key."""
    job: DistillJobConfig = load_structured(DistillJobConfig, path, overrides)
    fill_seeds(job.seed, job.model, {"dataset": job.dataset})
    errors = check_ranges(job) + check_dataset(job.dataset, "dataset") + check_distill(job.distill, "distill")
    errors += _check_job(job)
    if errors:
        raise ReasonerError(f"{path}: " + "\n  ".join(errors))
    return job


def _check_job(job: DistillJobConfig) -> list[str]:
    """What only a job has: a `base` model when the distill section names one."""
    uses_base = "base" in (job.distill.captioner, job.distill.reasoner)
    if uses_base and bool(job.model.path) == bool(job.model.tiny_size):
        return ["model: distill names `base`; set exactly one of model.path or model.tiny_size"]
    return check_tiny_model(job.model)


def run_job(job: DistillJobConfig) -> DistillResult:
    """Load the dataset, build the generators lazily, and distil into <output_dir>/<name>/."""
    import torch

    from reasoner.data.sets.datasets import load_dataset
    from reasoner.generation.pool import GeneratorConfig
    from reasoner.models.loading import resolve_device

    torch.set_num_threads(job.threads)
    out_dir = Path(job.output_dir) / job.name
    problems = load_dataset(job.dataset, job.name)
    problems = problems[: job.limit] if job.limit else problems

    def resolve(name: str) -> str:
        if name != "base":
            return name
        if job.model.path:
            return job.model.path
        from reasoner.models.tiny import ensure_tiny_model

        model = job.model
        return str(
            ensure_tiny_model(out_dir / "models", family=model.tiny_family, size=model.tiny_size, seed=model.tiny_seed)
        )

    def factory(name: str) -> Callable[[], Generator]:
        return lambda: GeneratorConfig(
            model_path=resolve(name),
            backend=job.backend.value,
            device=resolve_device(job.device.value),
            batch_size=job.batch_size,
        )()

    cfg = job.distill
    return distill(
        problems,
        out_dir,
        cfg,
        reasoner=factory(cfg.reasoner),
        captioner=factory(cfg.captioner) if cfg.captioner else None,
        count_tokens=token_counter(resolve(cfg.reasoner)) if cfg.max_target_tokens else None,
        seed=job.seed,
    )
