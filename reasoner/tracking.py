"""Experiment trackers (`logging` section): where a schedule's metrics, evaluations and report are logged.

One schedule is one mlflow experiment and one wandb run group (`logging.experiment`, default the run name); each
stage is one run in it, `<experiment>-<stage>`, holding the stage's training metrics (under the names its engine
logs them: `train/*`, `reward/*`, `actor/*` ... on the local engine, verl's own on the verl engine) and, at the
stage's last step, its evaluations (`eval/<dataset>/accuracy`, the same names on both engines). The base model's
evaluation is the run `<experiment>-base`; the final report table is the run `<experiment>-report`.

Both engines hand training metrics to verl's `Tracking` (verl/utils/tracking.py), which speaks to every backend:
the verl engine through `trainer.logger` in its trainer, the local engine through `StageTracker` here. A stage's
run is created once, its ids kept in the stage's `logs/tracking.json`, so a resumed stage and its evaluations log
into the same run: mlflow by run id (`MLFLOW_RUN_ID`, which verl's `Tracking` attaches to; on the verl engine each
launch of the trainer gets a child run of its own, see `verl_attempt_environment`), wandb by run id and
`resume="allow"` (`WANDB_RUN_ID`, `WANDB_RESUME`). Evaluations and the report go through each library's own API
(`log_evaluation`, `log_report`). Tensorboard events are written by the engines themselves (the local engine's
`MetricsLog`, verl's tensorboard logger), so `Tracking` is asked for mlflow and wandb only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reasoner.atomic import write_json
from reasoner.config import RunConfig, Tracker, to_dict
from reasoner.errors import ReasonerError
from reasoner.rundir import read_json_object

log = logging.getLogger(__name__)

STATE_FILE = "tracking.json"
INSTALL_HINT = "pip install 'reasoner[trackers]'"
PACKAGES = {Tracker.mlflow: "mlflow", Tracker.wandb: "wandb"}
"""The package each optional tracker needs (tensorboard is a dependency of reasoner itself)."""


def check_installed(run: RunConfig) -> None:
    """Stop when a listed tracker's package is missing (one line naming the extra)."""
    for backend in run.logging.backends:
        package = PACKAGES.get(Tracker(backend))
        if package and importlib.util.find_spec(package) is None:
            raise ReasonerError(
                f"logging.backends lists {Tracker(backend).value}, whose package {package} is not installed: "
                f"{INSTALL_HINT}"
            )


def check(run: RunConfig) -> None:
    """Before any work: every listed tracker's package is installed, and mlflow's store opens (its experiment is
    made here)."""
    check_installed(run)
    if Tracker.mlflow in [Tracker(b) for b in run.logging.backends]:
        _mlflow_experiment(run)


def experiment(run: RunConfig) -> str:
    return run.logging.experiment or run.name


def run_name(run: RunConfig, stage: str) -> str:
    """A stage's run name in every tracker: `<experiment>-<stage>`."""
    return f"{experiment(run)}-{stage}"


def remote_backends(run: RunConfig) -> list[str]:
    """The listed trackers that verl's `Tracking` writes (all but tensorboard, which the engines write)."""
    return [Tracker(b).value for b in run.logging.backends if Tracker(b) != Tracker.tensorboard]


def mlflow_uri(run: RunConfig) -> str:
    if run.logging.mlflow_uri:
        return run.logging.mlflow_uri
    return (
        os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(run.output_dir).resolve() / 'mlflow.db'}"
    )


def stage_environment(run: RunConfig, stage: str, log_dir: Path) -> dict[str, str]:
    """The environment under which verl's `Tracking` logs into this stage's run (created here on first use):
    the local engine sets it around `Tracking`, the verl engine hands it to its trainer's processes."""
    backends = remote_backends(run)
    if not backends:
        return {}
    state = _state(run, stage, log_dir)
    env: dict[str, str] = {}
    if Tracker.mlflow.value in backends:
        env.update({"MLFLOW_TRACKING_URI": mlflow_uri(run), "MLFLOW_RUN_ID": state["mlflow_run_id"]})
    if Tracker.wandb.value in backends:
        env.update(
            {
                "WANDB_RUN_ID": state["wandb_run_id"],
                "WANDB_RESUME": "allow",
                "WANDB_RUN_GROUP": experiment(run),
                "WANDB_DIR": os.environ.get("WANDB_DIR") or str(log_dir),
            }
        )
    return env


def verl_attempt_environment(run: RunConfig, stage: str, log_dir: Path) -> dict[str, str]:
    """`stage_environment` for one launch of verl's trainer: its mlflow run is a new child of the stage's run,
    `<experiment>-<stage>-verl-<N>` (the Nth launch). verl logs its whole config as the run's parameters, and mlflow
    refuses a parameter whose value changed (a resumed launch from another folder: a Ray job's copy of the code,
    or a changed setting outside the fingerprint), after which verl's `Tracking` carries on without mlflow; a run
    per launch keeps every launch's metrics. wandb resumes the stage's one run."""
    env = stage_environment(run, stage, log_dir)
    if "MLFLOW_RUN_ID" in env:
        path = log_dir / STATE_FILE
        state = read_json_object(path)
        state["verl_launches"] = int(state.get("verl_launches", 0)) + 1
        name = f"{run_name(run, stage)}-verl-{state['verl_launches']}"
        env["MLFLOW_RUN_ID"] = _create_mlflow_run(run, stage, name=name, parent=env["MLFLOW_RUN_ID"])
        write_json(path, state)
    return env


def _state(run: RunConfig, stage: str, log_dir: Path) -> dict[str, Any]:
    """The stage's tracker run ids, made once and kept in logs/tracking.json."""
    path = log_dir / STATE_FILE
    state = read_json_object(path) if path.is_file() else {}
    backends, before = remote_backends(run), dict(state)
    if Tracker.mlflow.value in backends and "mlflow_run_id" not in state:
        state["mlflow_run_id"] = _create_mlflow_run(run, stage, params=_settings(run, stage))
    if Tracker.wandb.value in backends and "wandb_run_id" not in state:
        state["wandb_run_id"] = uuid.uuid4().hex[:12]
    if state != before:
        log_dir.mkdir(parents=True, exist_ok=True)
        write_json(path, state)
        ids = ", ".join(f"{key.split('_')[0]} {value}" for key, value in state.items() if key.endswith("_run_id"))
        log.info("stage %s: tracker run %s (%s; ids in %s)", stage, run_name(run, stage), ids, path)
    return state


def _settings(run: RunConfig, stage: str) -> dict[str, str]:
    """A stage's settings (the base: the model section) as mlflow parameters: `grpo.kl_coef` -> `0.01`, ..."""
    found = [s for s in run.stages if s.name == stage]
    section = to_dict(found[0]) if found else to_dict(run.model) if stage == "base" else {}
    flat: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict) and (value or not key):
            for name, item in value.items():
                walk(item, f"{key}.{name}" if key else name)
        else:
            flat[key] = json.dumps(value)

    walk(section, "")
    return flat


def _create_mlflow_run(
    run: RunConfig, stage: str, *, name: str | None = None, parent: str | None = None, params: dict | None = None
) -> str:
    from mlflow.entities import Param

    client, experiment_id = _mlflow_experiment(run)
    tags = {"reasoner.stage": stage, **({"mlflow.parentRunId": parent} if parent else {})}
    created = client.create_run(experiment_id, run_name=name or run_name(run, stage), tags=tags)
    if params:
        client.log_batch(created.info.run_id, params=[Param(k, v) for k, v in params.items()])
    return created.info.run_id


def _mlflow_experiment(run: RunConfig) -> tuple[Any, str]:
    """mlflow's client and the schedule's experiment id (the experiment made on first use)."""
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=mlflow_uri(run))
        found = client.get_experiment_by_name(experiment(run))
        if found is not None:
            return client, found.experiment_id
        artifacts = None
        if not run.logging.mlflow_uri and not os.environ.get("MLFLOW_TRACKING_URI"):
            # A SQLite store would put artifacts in ./mlruns of whatever folder the run starts from.
            artifacts = (Path(run.output_dir).resolve() / "mlflow-artifacts").as_uri()
        return client, client.create_experiment(experiment(run), artifact_location=artifacts)
    except Exception as err:  # noqa: BLE001 - an unreadable store (mlflow raises many kinds): one line naming it
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReasonerError(
            f"logging: the mlflow store {mlflow_uri(run)} cannot be used ({first}); fix logging.mlflow_uri or "
            "$MLFLOW_TRACKING_URI, or remove mlflow from logging.backends"
        ) from err


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class StageTracker:
    """Logs one stage's metrics to the listed mlflow/wandb trackers through verl's `Tracking`; nothing to do (and
    verl not imported) when none is listed."""

    def __init__(self, run: RunConfig, stage: str, log_dir: Path) -> None:
        self.tracking = None
        backends = remote_backends(run)
        if not backends:
            return
        check_installed(run)
        from verl.utils.tracking import Tracking

        # verl's Tracking reads config["trainer"] (wandb's proxy) and logs the rest as parameters: nothing more here
        # (the stage's settings are its run's parameters from creation; mlflow refuses a changed value on resume).
        config = {"trainer": {}}
        self.wandb = Tracker.wandb.value in backends
        with _environment(stage_environment(run, stage, log_dir)):
            _forget_wandb_settings(self.wandb)
            self.tracking = Tracking(run.logging.project, run_name(run, stage), backends, config=config)

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.tracking is not None:
            self.tracking.log(data=metrics, step=step)

    def close(self) -> None:
        if self.tracking is not None:
            self.tracking.finish()
            self.tracking = None
            _forget_wandb_settings(self.wandb)


def _forget_wandb_settings(used: bool) -> None:
    """wandb reads its environment (`WANDB_RUN_ID`, `WANDB_DIR`, ...) once per process, at its first `init`;
    `wandb.teardown()` (its public API) makes the next `init` read it again, so each stage gets its own run."""
    if used:
        import wandb

        wandb.teardown()


def log_evaluation(run: RunConfig, stage: str, log_dir: Path, step: int, metrics: dict[str, float]) -> None:
    """A stage's evaluation results, into its tracker runs at its last training step: tensorboard (an event file in
    the stage's logs/), mlflow (by run id), wandb (the run resumed; evaluations go to its summary, which a resumed
    online run keeps, where a history row at an earlier step would be dropped)."""
    backends = [Tracker(b) for b in run.logging.backends]
    if Tracker.tensorboard in backends:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(log_dir), filename_suffix=".eval")
        for key, value in metrics.items():
            writer.add_scalar(key, value, step)
        writer.close()
    if not remote_backends(run):
        return
    env = stage_environment(run, stage, log_dir)
    if Tracker.mlflow in backends:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
        for key, value in metrics.items():
            client.log_metric(env["MLFLOW_RUN_ID"], key, value, step=step)
        client.set_terminated(env["MLFLOW_RUN_ID"])  # the base model's run is only ever evaluated
    if Tracker.wandb in backends:
        import wandb

        handle = wandb.init(
            project=run.logging.project,
            name=run_name(run, stage),
            group=env["WANDB_RUN_GROUP"],
            id=env["WANDB_RUN_ID"],
            resume="allow",
            dir=env["WANDB_DIR"],
        )
        handle.summary.update(metrics)
        handle.finish()


def log_report(run: RunConfig, root: Path, report: dict[str, Any], files: list[Path]) -> None:
    """The final report as a run `<experiment>-report` of its own (a new one each time the report is written):
    each evaluated set's accuracy over the stages (`report/<dataset>/accuracy`, step = the stage's index), the
    table (mlflow: report_table.json; wandb: a Table) and the report files as artifacts."""
    if not remote_backends(run):
        return
    columns = ["stage", "kind", *report["datasets"]]
    rows = [
        [
            s["name"],
            s["kind"],
            *[(s.get("eval") or {}).get(d, {}).get("accuracy") for d in report["datasets"]],
        ]
        for s in report["stages"]
    ]
    log_dir = root / "logs"
    (log_dir / STATE_FILE).unlink(missing_ok=True)  # a new report run each time
    tracker = StageTracker(run, "report", log_dir)
    for index, row in enumerate(rows):
        values = {
            f"report/{d}/accuracy": v
            for d, v in zip(report["datasets"], row[2:], strict=True)
            if v is not None
        }
        if values:
            tracker.log(values, step=index)
    backends = [Tracker(b) for b in run.logging.backends]
    if Tracker.mlflow in backends:
        import mlflow

        mlflow.log_dict({"columns": columns, "data": rows}, "report_table.json")
        for path in files:
            if path.is_file():
                mlflow.log_artifact(str(path))
    if Tracker.wandb in backends:
        import wandb

        wandb.log({"report/table": wandb.Table(columns=columns, data=rows)}, step=max(len(rows) - 1, 0))
        for path in files:
            if path.is_file():
                wandb.save(str(path), base_path=str(path.parent), policy="now")
    tracker.close()
