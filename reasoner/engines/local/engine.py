"""`LocalEngine`: the `Engine` protocol in one process, on CPU or one GPU.

engine = LocalEngine(run)
engine.train_sft(job, examples)      # -> summary metrics; model exported to job.out_model
engine.train_grpo(job, problems)
engine.train_dpo(job, pairs)
engine.generator(job.out_model)      # evaluation / (self-)distillation: transformers or vLLM (eval.backend)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from reasoner.config import GeneratorBackend, RunConfig
from reasoner.data.records.problem import Problem
from reasoner.data.stage.preference import PreferencePair
from reasoner.data.stage.selection import SFTExample
from reasoner.engines.base import TrainJob
from reasoner.engines.local.common import resolve_runtime
from reasoner.engines.local.loop import OnStep
from reasoner.generation.base import Generator
from reasoner.generation.hf import HFGenerator
from reasoner.tracking import StageTracker


class LocalEngine:
    """Trains with plain torch loops (see `sft`, `grpo`); generates with transformers or vLLM (`eval.backend`).

    `on_step(step, metrics)` is called after every step (after its checkpoint, if one is due); an exception it
    raises stops the job, which continues from its last checkpoint when run again.
    """

    def __init__(self, run: RunConfig, *, on_step: OnStep | None = None) -> None:
        self.run = run
        self.runtime = resolve_runtime(run)
        self.on_step = on_step
        self._vllm: tuple[Path, Generator] | None = None  # one vLLM engine at a time (it reserves memory)

    @staticmethod
    def validate(run: RunConfig, plans: list) -> None:
        """Nothing to add: the local engine honours every setting the config schema and its ranges allow."""

    def generator(self, model_path: Path) -> Generator:
        """A generator serving the model folder on this engine's device: with `eval.backend: hf` an `HFGenerator`
        (`eval.batch_size` sequences per call, its batches shared by the run's `processes`); with `vllm` one vLLM
        engine, kept while the same folder is asked for and stopped when another one is."""
        if self.run.eval.backend == GeneratorBackend.vllm:
            return self._vllm_generator(Path(model_path))
        return HFGenerator.from_pretrained(
            model_path,
            device=str(self.runtime.device),
            batch_size=self.run.eval.batch_size,
            processes=self.runtime.processes,
        )

    def _vllm_generator(self, model_path: Path) -> Generator:
        from reasoner.generation.vllm import VLLMGenerator

        if self._vllm is not None and self._vllm[0] == model_path:
            return self._vllm[1]
        self.release_generators()
        generator = VLLMGenerator(model_path, seed=self.run.seed, show_progress=False)
        self._vllm = (model_path, generator)
        return generator

    def release_generators(self) -> None:
        """Stop the vLLM engine, if one is running (before training needs the memory, and at the end)."""
        if self._vllm is not None:
            self._vllm[1].close()
            self._vllm = None

    def train_sft(self, job: TrainJob, examples: list[SFTExample]) -> dict[str, float]:
        """Supervised fine-tuning on `examples` (see `reasoner.engines.local.sft`)."""
        from reasoner.engines.local.sft import train_sft

        self.release_generators()
        with self._tracked(job) as on_step:
            return train_sft(job, examples, self.runtime, on_step=on_step)

    def train_grpo(self, job: TrainJob, problems: list[Problem]) -> dict[str, float]:
        """GRPO with verifiable rewards on `problems` (see `reasoner.engines.local.grpo`)."""
        from reasoner.engines.local.grpo import train_grpo

        self.release_generators()
        with self._tracked(job) as on_step:
            return train_grpo(job, problems, self.runtime, on_step=on_step)

    def train_dpo(self, job: TrainJob, pairs: list[PreferencePair]) -> dict[str, float]:
        """DPO on preference `pairs` (see `reasoner.engines.local.dpo`)."""
        from reasoner.engines.local.dpo import train_dpo

        self.release_generators()
        with self._tracked(job) as on_step:
            return train_dpo(job, pairs, self.runtime, on_step=on_step)

    @contextlib.contextmanager
    def _tracked(self, job: TrainJob) -> Iterator[OnStep]:
        """The step hook that also logs each step's metrics to the stage's mlflow/wandb runs (`logging.backends`;
        tensorboard and metrics.jsonl are written by the loop itself)."""
        tracker = StageTracker(self.run, job.stage.name, job.log_dir)

        def on_step(step: int, metrics: dict[str, float]) -> None:
            tracker.log(metrics, step)
            if self.on_step is not None:
                self.on_step(step, metrics)

        try:
            yield on_step
        finally:
            tracker.close()
