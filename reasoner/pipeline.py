"""The driver of `reasoner run`: per stage build data -> train -> export -> manifest, then evaluate, then report.

    base (00) -> stage 01 -> stage 02 -> ...      each: data/ -> ckpt/ -> model/ -> manifest.json
                                                  then eval/<dataset>/scores.json per evaluation set

Finished stages (manifest with a matching fingerprint) are skipped; a stage without a manifest is redone from its
last checkpoint (the engine resumes from ckpt/, and discards one of another config) or its start; a finished stage
whose config changed, or whose manifest or model is damaged, stops the run with a message, unless `--redo-from`
names where to start over. One run at a time works in a run folder (`runlock`).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reasoner import config as config_mod
from reasoner import registry, tracking
from reasoner.atomic import write_json, write_text
from reasoner.config import DAR_SUFFIX, RunConfig, Tracker
from reasoner.data.records.problem import Problem, missing_images
from reasoner.data.sets.datasets import Datasets
from reasoner.data.stage import contamination
from reasoner.data.stage.builders import StageContext, build_stage_data
from reasoner.data.stage.preflight import check_stage
from reasoner.engines.base import Engine, TrainJob
from reasoner.engines.registry import make_engine, validate_plans
from reasoner.errors import ReasonerError
from reasoner.eval.runner import describe as describe_images
from reasoner.eval.runner import eval_fingerprint, evaluate
from reasoner.models.tiny import build_tiny_model, describe_tiny_model
from reasoner.prompts import PAIR_PROMPT, Template, load_template
from reasoner.report import write_report
from reasoner.rundir import DamagedFile, RunDir, StageDir, read_json
from reasoner.runlock import hold
from reasoner.schedule import StagePlan, Status, check, check_prompts, plan, statuses

log = logging.getLogger(__name__)

@dataclass
class Run:
    """A loaded run: config, template, plans and where it lives."""

    config: RunConfig
    template: Template
    plans: list[StagePlan]
    dir: RunDir
    datasets: Datasets = field(init=False)
    """The run's problem sets, each loaded once: by the input checks, the guard, the stages and evaluation."""

    def __post_init__(self) -> None:
        self.datasets = Datasets(self.config)

    def template_of(self, stage: StagePlan) -> Template:
        """The stage's prompt template: its own `prompt`, else the run's; a dpo stage's is each pair's prompt."""
        if stage.kind == "dpo":
            return PAIR_PROMPT
        if stage.config is None or not stage.config.prompt:
            return self.template
        return load_template(stage.config.prompt, f"stages.{stage.name}.prompt")

    def status_table(self) -> str:
        """One line per stage: index, name, start model, data, status."""
        lines = [f"run {self.config.name!r} ({self.config.engine.value} engine) in {self.dir.root}"]
        for stage, state in zip(self.plans, statuses(self.dir, self.plans), strict=True):
            lines.append(f"  {stage.dir_name:10s} {_describe(stage, self.config):58s} {state.value}")
        return "\n".join(lines)


def _describe(stage: StagePlan, run: RunConfig) -> str:
    if stage.config is None:
        model = run.model
        source = model.path or describe_tiny_model(model.tiny_family, model.tiny_size, model.tiny_seed)
        return f"base: {source}"
    data = stage.config.data
    what = f"{data.dataset}"
    if stage.kind == "sft":
        what += f", targets={data.targets.value}" + (f" from {stage.policy}" if stage.policy else "")
        what += f", described by {data.describe.policy}" if data.describe.policy else ""
    elif stage.kind == "dpo":
        dpo = stage.config.dpo
        pairs = "STIC pairs from its images" if dpo.pairs.value == "stic" else "preference pairs"
        what += f" ({pairs}, beta={dpo.beta:g}, nll_alpha={dpo.nll_alpha:g}, heldout={dpo.heldout:g})"
    elif data.difficulty.value != "all":
        what += f", difficulty={data.difficulty.value}"
    return f"{stage.name}: from {stage.init}, data {what}"


def load_run(config_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Run:
    """Load and validate the config and plan its stages (no work, no files written)."""
    run = config_mod.load(config_path, overrides)
    check_prompts(run)
    template = load_template(run.prompt, "prompt")
    plans = plan(run, template.sha256)
    loaded = Run(run, template, plans, RunDir(Path(run.output_dir) / run.name))
    check_inputs(loaded)
    return loaded


def check_inputs(run: Run) -> None:
    """Fail before any work when an input is missing: data files, a benchmark's images for evaluation."""
    cfg = run.config
    for name, ds in cfg.datasets.items():
        if registry.benchmark(ds.source).needs_path and not Path(ds.path).exists():
            raise ReasonerError(f"datasets.{name}.path: {ds.path} does not exist")
    for name in cfg.eval.datasets:
        ds = cfg.datasets[name]
        if registry.benchmark(ds.source).evaluation_only and missing_images(run.datasets[name]):
            raise ReasonerError(
                f"datasets.{name}: {ds.source} images not found under {ds.path} (MathVista's testmini.json alone has "
                "no pixels); point path at a copy with images/ or the hub parquet export, or remove "
                f"{name} from eval.datasets"
            )
    if cfg.model.path and not Path(cfg.model.path).is_dir():
        raise ReasonerError(f"model.path: {cfg.model.path} is not a model folder")
    validate_plans(cfg, run.plans)
    tracking.check(cfg)


def execute(run: Run, *, redo_from: str | None = None) -> Path:
    """Run every unfinished stage and evaluation, then write the report; returns report.md's path.

    The run folder's lock is held throughout: a second run in the same folder stops at once, naming this one."""
    kept = run.plans if not redo_from else run.plans[: _stage_index(run, redo_from)]
    with hold(run.dir.lock_file):
        _check_finished(run, kept)
        if redo_from:
            _forget_from(run, redo_from)
        write_text(run.dir.root / "config.yaml", yaml.safe_dump(config_mod.to_dict(run.config), sort_keys=False))
        return _execute(run)


def _redo(problem: str, stage: str) -> ReasonerError:
    """A damaged file of `stage`, with what to do about it."""
    return ReasonerError(f"{problem}; rerun with --redo-from {stage} to redo that stage and the ones after it")


def _check_finished(run: Run, kept: list[StagePlan]) -> None:
    """Stop before any work when a finished stage that is kept changed its config or is damaged."""
    states = [(stage.name, *check(run.dir, stage)) for stage in kept]
    for name, state, problem in states:
        if state == Status.damaged:
            raise _redo(problem, name)
    changed = [name for name, state, _ in states if state == Status.changed]
    if changed:
        raise ReasonerError(
            f"stages {', '.join(changed)} of run {run.config.name!r} finished with a different config"
            f"{_seed_change(run)}; rerun with --redo-from {changed[0]} to redo them, or set name=<new name> for a "
            "new run"
        )


def _seed_change(run: Run) -> str:
    """`(seed 0 there, seed 1 now)` when the run folder was last run with another seed, else ''."""
    try:
        stored = yaml.safe_load((run.dir.root / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    seed = stored.get("seed") if isinstance(stored, dict) else None
    return f" (seed {seed} there, seed {run.config.seed} now)" if seed not in (None, run.config.seed) else ""


def _execute(run: Run) -> Path:
    datasets = run.datasets
    # Before any work: a training stage overlapping an evaluation set stops the run here (one line).
    write_json(run.dir.root / contamination.RECORD_FILE, contamination.check_run(run.config, datasets.__getitem__))
    engine = make_engine(run.config)
    for stage in run.plans:
        stage_dir = run.dir.stage(stage.dir_name)
        try:
            if stage_dir.read_manifest() is not None:
                log.info("stage %s (%s): finished, skipping", stage.dir_name, stage.name)
            else:
                _run_stage(run, stage, stage_dir, engine, datasets)
            _evaluate_stage(run, stage, stage_dir, engine, datasets)
        except DamagedFile as err:  # a cache or log inside the stage folder
            raise _redo(str(err), stage.name) from None
    report = write_report(run.dir)
    files = [run.dir.report_md, run.dir.report_json, run.dir.root / "accuracy.png"]
    tracking.log_report(run.config, run.dir.root, read_json(run.dir.report_json), files)
    return report


def _stage_index(run: Run, name: str) -> int:
    names = [p.name for p in run.plans]
    if name not in names:
        raise ReasonerError(f"--redo-from {name!r}: no such stage; stages: {', '.join(names)}")
    return names.index(name)


def _forget_from(run: Run, name: str) -> None:
    for stage in run.plans[_stage_index(run, name) :]:
        stage_dir = run.dir.stage(stage.dir_name)
        if stage_dir.root.exists():
            log.info("removing %s to redo it", stage_dir.root)
            shutil.rmtree(stage_dir.root)


def model_path(run: Run, stage_name: str) -> Path:
    """The model folder a finished stage produced (the base: the configured path or the built tiny model), in
    this run folder wherever it lies now."""
    stage = next(p for p in run.plans if p.name == stage_name)
    state, problem = check(run.dir, stage)
    if state == Status.damaged:
        raise _redo(problem, stage_name)
    if state != Status.done:
        raise ReasonerError(f"stage {stage_name} has no finished model yet")
    stage_dir = run.dir.stage(stage.dir_name)
    return run.dir.model_of(stage_dir, stage_dir.read_manifest())


def _run_stage(run: Run, stage: StagePlan, stage_dir: StageDir, engine: Engine, datasets: Datasets) -> None:
    start = time.perf_counter()
    log.info("stage %s (%s): starting", stage.dir_name, stage.name)
    if stage.kind == "base":
        model, metrics = _base_model(run, stage_dir), {}
    else:
        template = run.template_of(stage)
        job = TrainJob(
            stage=stage.config,
            init_model=model_path(run, stage.init),
            ckpt_dir=stage_dir.ckpt,
            out_model=stage_dir.model,
            log_dir=stage_dir.logs,
            template=template,
            seed=stage.seed,
            fingerprint=stage.fingerprint,
            tensorboard=Tracker.tensorboard in run.config.logging.backends,
        )
        problems = _limit(datasets[stage.config.data.dataset], stage.config.data.limit)
        context = StageContext(
            stage, run.plans, template, stage_dir.data, job.seed, lambda name: model_path(run, name), engine.generator
        )
        data, data_stats = build_stage_data(context, problems)
        items = [_preflight_item(stage.kind, item, template) for item in data]
        # Pre-flight: measure every prompt against the engine's limit; stop here rather than train on cut inputs.
        data_stats = {**data_stats, **check_stage(run.config, stage.config, job.init_model, items)}
        train = {"sft": engine.train_sft, "grpo": engine.train_grpo, "dpo": engine.train_dpo}[stage.kind]
        metrics = train(job, data)
        metrics = {**{f"data/{k}": v for k, v in data_stats.items()}, **metrics}
        model = stage_dir.model
    lora_on = run.config.model.lora.enabled
    stage_dir.write_manifest(
        {
            "name": stage.name,
            "kind": stage.kind,
            "fingerprint": stage.fingerprint,
            "init": stage.init,
            "model": run.dir.store(model),
            "config": config_mod.to_dict(stage.config) if stage.config else config_mod.to_dict(run.config.model),
            "prompt": {"name": run.template_of(stage).name, "sha256": run.template_of(stage).sha256},
            # The adapter a LoRA stage trained (its model/ holds the weights with it merged in).
            **({"lora": config_mod.to_dict(run.config.model.lora)} if stage.config and lora_on else {}),
            "metrics": metrics,
            "seconds": round(time.perf_counter() - start, 2),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    log.info("stage %s (%s): finished in %.1f s", stage.dir_name, stage.name, time.perf_counter() - start)


def _preflight_item(kind: str, item, template: Template) -> tuple[Problem, str | None, Template]:
    """What the pre-flight measures of one training item: an SFT example's prompt (its own template, if it has
    one) + target, a DPO pair's prompt + its longer response, a GRPO problem's prompt."""
    if kind == "sft":
        return item.problem, item.target, item.template(template)
    if kind == "dpo":
        return item.problem, max(item.chosen, item.rejected, key=len), template
    return item, None, template


def _limit(problems: list[Problem], limit: int) -> list[Problem]:
    return problems[:limit] if limit > 0 else problems


def _base_model(run: Run, stage_dir: StageDir) -> Path:
    if run.config.model.path:
        return Path(run.config.model.path).resolve()
    model = run.config.model
    if not stage_dir.model.is_dir():  # built whole, by rename
        build_tiny_model(stage_dir.model, family=model.tiny_family, size=model.tiny_size, seed=model.tiny_seed)
    return stage_dir.model


def _evaluate_stage(run: Run, stage: StagePlan, stage_dir: StageDir, engine: Engine, datasets: Datasets) -> None:
    if stage.kind == "base" and not run.config.eval.evaluate_base:
        return
    if run.template_of(stage).shows_caption:
        log.info("stage %s: trained on captions, not images; not evaluated on the image sets", stage.name)
        return
    metrics = stage_dir.read_manifest()["metrics"]
    last_step = int(metrics.get("steps", metrics.get("verl/total_steps", 0)))  # where trackers put evaluations
    dar = run.config.eval.describe_and_respond
    for label, name, template, describe in _evaluations(run):
        out = stage_dir.eval(label)
        benchmark = registry.benchmark(run.config.datasets[name].source)
        fp = eval_fingerprint(run.config, name, stage.fingerprint, template.sha256)
        if describe is not None:
            fp = config_mod.fingerprint({"answer": fp, "describe": describe.sha256, "tokens": dar.max_new_tokens})
        if _evaluated(out / "scores.json", fp):
            continue
        generator = engine.generator(model_path(run, stage.name))
        problems = datasets[name]
        if describe is not None:  # describe-and-respond: the model's own descriptions go into its prompts
            problems = describe_images(generator, problems, describe, dar.max_new_tokens, out)
        scores = evaluate(
            generator, problems, template, run.config.eval, label, out, fingerprint=fp, benchmark=benchmark
        )
        log.info("stage %s: %s accuracy %.1f%%", stage.name, label, scores["accuracy"])
        tracking.log_evaluation(run.config, stage.name, stage_dir.logs, last_step, _headline(label, scores))


def _evaluations(run: Run) -> list[tuple[str, str, Template, Template | None]]:
    """Every evaluation after a stage: (its name, its set, the answering template, the describing template of a
    describe-and-respond evaluation, else None)."""
    found = []
    for name in run.config.eval.datasets:
        benchmark = registry.benchmark(run.config.datasets[name].source)
        found.append((name, name, benchmark.eval_template(run.template), None))  # a set may have its own template
    dar = run.config.eval.describe_and_respond
    for name in dar.datasets:
        found.append((name + DAR_SUFFIX, name, load_template(dar.prompt), load_template(dar.describe_prompt)))
    return found


def _headline(dataset: str, scores: dict) -> dict[str, float]:
    """An evaluation's numbers for the trackers: `eval/<dataset>/accuracy`, `/stderr`, `/n`."""
    return {f"eval/{dataset}/{key}": float(scores[key]) for key in ("accuracy", "stderr", "n") if key in scores}


def _evaluated(scores_path: Path, fingerprint: str) -> bool:
    """Whether this evaluation is on disk already; a damaged scores file is logged and redone."""
    try:
        done = read_json(scores_path)
    except DamagedFile as err:
        log.warning("%s; evaluating again", err)
        return False
    return isinstance(done, dict) and done.get("fingerprint") == fingerprint
