"""`LocalEngine`: the `Engine` protocol in one process, on CPU or one GPU.

engine = LocalEngine(run)
engine.train_sft(job, examples)      # -> summary metrics; model exported to job.out_model
engine.train_grpo(job, problems)
engine.generator(job.out_model)      # an HFGenerator for evaluation / self-distillation
"""

from __future__ import annotations

from pathlib import Path

from reasoner.config import RunConfig
from reasoner.data.records import Problem
from reasoner.data.selection import SFTExample
from reasoner.engines.base import TrainJob
from reasoner.engines.local.common import resolve_runtime
from reasoner.engines.local.loop import OnStep
from reasoner.generation.hf import HFGenerator


class LocalEngine:
    """Trains with plain torch loops (see `sft`, `grpo`); generates with transformers.

    `on_step(step, metrics)` is called after every step (after its checkpoint, if one is due); an exception it
    raises stops the job, which continues from its last checkpoint when run again.
    """

    def __init__(self, run: RunConfig, *, on_step: OnStep | None = None) -> None:
        self.run = run
        self.runtime = resolve_runtime(run)
        self.on_step = on_step

    @staticmethod
    def validate(run: RunConfig, plans: list) -> None:
        """Nothing to add: the local engine honours every setting the config schema and its ranges allow."""

    def generator(self, model_path: Path) -> HFGenerator:
        """An `HFGenerator` serving the model folder on this engine's device, `eval.batch_size` sequences per call,
        its batches shared by the run's `processes`."""
        return HFGenerator.from_pretrained(
            model_path,
            device=str(self.runtime.device),
            batch_size=self.run.eval.batch_size,
            processes=self.runtime.processes,
        )

    def train_sft(self, job: TrainJob, examples: list[SFTExample]) -> dict[str, float]:
        """Supervised fine-tuning on `examples` (see `reasoner.engines.local.sft`)."""
        from reasoner.engines.local.sft import train_sft

        return train_sft(job, examples, self.runtime, on_step=self.on_step)

    def train_grpo(self, job: TrainJob, problems: list[Problem]) -> dict[str, float]:
        """GRPO with verifiable rewards on `problems` (see `reasoner.engines.local.grpo`)."""
        from reasoner.engines.local.grpo import train_grpo

        return train_grpo(job, problems, self.runtime, on_step=self.on_step)
