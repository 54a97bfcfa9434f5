"""What the pipeline hands an engine: one training job per stage, and a generator per model.

Engines make no algorithmic decisions about data (which problems, which targets): the pipeline builds the data,
the engine trains on it, checkpoints into `ckpt_dir`, and exports a loadable model folder to `out_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reasoner.config import RunConfig, StageConfig
from reasoner.data.records.problem import Problem
from reasoner.data.stage.preference import PreferencePair
from reasoner.data.stage.selection import SFTExample
from reasoner.generation.base import Generator
from reasoner.prompts import Template

if TYPE_CHECKING:
    from reasoner.schedule import StagePlan


@dataclass
class TrainJob:
    """One stage's training: start model, data, and where to write."""

    stage: StageConfig
    init_model: Path
    """HF model folder to start from."""
    ckpt_dir: Path
    """Resumable checkpoints; a job that finds one here continues from it."""
    out_model: Path
    """Where the final model folder appears (whole, by rename)."""
    log_dir: Path
    """Tensorboard events and metrics.jsonl."""
    template: Template
    seed: int
    fingerprint: str = ""
    """The stage's fingerprint (`schedule.plan`): a checkpoint written under another one is not resumed."""
    tensorboard: bool = True
    """Write tensorboard events to `log_dir` (`logging.backends` lists tensorboard)."""


class Engine(Protocol):
    """What the pipeline asks of an engine; engines are looked up by name in `reasoner.engines.registry`."""

    def __init__(self, run: RunConfig) -> None: ...

    @staticmethod
    def validate(run: RunConfig, plans: list[StagePlan]) -> Any:
        """Check, before any work, that this engine can run every planned stage; raise ReasonerError if not."""

    def generator(self, model_path: Path) -> Generator:
        """A generator serving the model folder (used for evaluation and self-distillation)."""

    def train_sft(self, job: TrainJob, examples: list[SFTExample]) -> dict[str, float]:
        """Supervised fine-tuning on `examples`; returns summary metrics for the manifest."""

    def train_grpo(self, job: TrainJob, problems: list[Problem]) -> dict[str, float]:
        """GRPO on `problems` with verifiable rewards; returns summary metrics for the manifest."""

    def train_dpo(self, job: TrainJob, pairs: list[PreferencePair]) -> dict[str, float]:
        """DPO on preference `pairs` (the held-out ones scored, not trained on); returns summary metrics for the
        manifest. An engine without a route refuses dpo stages in `validate`."""

