"""The driver of `reasoner run`: per stage build data -> train -> export -> manifest, then evaluate, then report.

    base (00) -> stage 01 -> stage 02 -> ...      each: data/ -> ckpt/ -> model/ -> manifest.json
                                                  then eval/<dataset>/scores.json per evaluation set

Finished stages (manifest with a matching fingerprint) are skipped; a stage without a manifest is redone from its
last checkpoint (the engine resumes from ckpt/) or its start; a finished stage whose config changed stops the run
with a message, unless `--redo-from` names where to start over.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reasoner import config as config_mod
from reasoner.config import DataSource, Difficulty, RunConfig, SFTTargets
from reasoner.data.preflight import check_stage
from reasoner.data.records import Problem
from reasoner.engines.base import Engine, SFTExample, TrainJob, make_engine
from reasoner.errors import ReasonerError
from reasoner.eval.runner import BENCHMARKS, eval_fingerprint, evaluate
from reasoner.prompts import Template, format_target, load_template
from reasoner.report import write_report
from reasoner.rundir import RunDir, StageDir, atomic_dir, read_json, write_json_atomic
from reasoner.schedule import StagePlan, Status, plan, statuses

log = logging.getLogger(__name__)


@dataclass
class Run:
    """A loaded run: config, template, plans and where it lives."""

    config: RunConfig
    template: Template
    plans: list[StagePlan]
    dir: RunDir

    def status_table(self) -> str:
        """One line per stage: index, name, start model, data, status."""
        lines = [f"run {self.config.name!r} ({self.config.engine.value} engine) in {self.dir.root}"]
        for stage, state in zip(self.plans, statuses(self.dir, self.plans), strict=True):
            lines.append(f"  {stage.dir_name:10s} {_describe(stage, self.config):58s} {state.value}")
        return "\n".join(lines)


def _describe(stage: StagePlan, run: RunConfig) -> str:
    if stage.config is None:
        source = run.model.path or f"tiny random Qwen2.5-VL ({run.model.tiny_size}, seed {run.model.tiny_seed})"
        return f"base: {source}"
    data = stage.config.data
    what = f"{data.dataset}"
    if stage.kind == "sft":
        what += f", targets={data.targets.value}" + (f" from {stage.policy}" if stage.policy else "")
    elif data.difficulty.value != "all":
        what += f", difficulty={data.difficulty.value}"
    return f"{stage.name}: from {stage.init}, data {what}"


def load_run(config_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Run:
    """Load and validate the config and plan its stages (no work, no files written)."""
    run = config_mod.load(config_path, overrides)
    template = load_template(run.prompt)
    plans = plan(run, template.sha256)
    loaded = Run(run, template, plans, RunDir(Path(run.output_dir) / run.name))
    check_inputs(loaded)
    return loaded


def check_inputs(run: Run) -> None:
    """Fail before any work when an input is missing: data files, MathVista images for evaluation."""
    cfg = run.config
    for name, ds in cfg.datasets.items():
        if ds.source in (DataSource.file, DataSource.mathvista, DataSource.mathvision) and not Path(ds.path).exists():
            raise ReasonerError(f"datasets.{name}.path: {ds.path} does not exist")
    for name in cfg.eval.datasets:
        if cfg.datasets[name].source == DataSource.mathvista:
            from reasoner.data.sources import has_images, load_mathvista

            if not has_images(load_mathvista(cfg.datasets[name].path)):
                raise ReasonerError(
                    f"datasets.{name}: MathVista images not found under {cfg.datasets[name].path} (testmini.json "
                    "alone has no pixels); point path at a copy with images/ or the hub parquet export, or remove "
                    f"{name} from eval.datasets"
                )
    if cfg.model.path and not Path(cfg.model.path).is_dir():
        raise ReasonerError(f"model.path: {cfg.model.path} is not a model folder")
    if cfg.engine.value == "verl":
        from reasoner.engines.verl import validate_plan

        validate_plan(cfg, run.plans)


def execute(run: Run, *, redo_from: str | None = None) -> Path:
    """Run every unfinished stage and evaluation, then write the report; returns report.md's path."""
    kept = run.plans if not redo_from else run.plans[: _stage_index(run, redo_from)]
    changed = [p.name for p, s in zip(kept, statuses(run.dir, kept), strict=True) if s == Status.changed]
    if changed:
        raise ReasonerError(
            f"stages {', '.join(changed)} of run {run.config.name!r} finished with a different config; "
            f"rerun with --redo-from {changed[0]} to redo them, or set name=<new name> for a new run"
        )
    if redo_from:
        _forget_from(run, redo_from)
    run.dir.root.mkdir(parents=True, exist_ok=True)
    (run.dir.root / "config.yaml").write_text(yaml.safe_dump(config_mod.to_dict(run.config), sort_keys=False))
    engine = make_engine(run.config)
    datasets = Datasets(run.config)
    for stage in run.plans:
        stage_dir = run.dir.stage(stage.dir_name)
        if stage_dir.read_manifest() is not None:
            log.info("stage %s (%s): finished, skipping", stage.dir_name, stage.name)
        else:
            _run_stage(run, stage, stage_dir, engine, datasets)
        _evaluate_stage(run, stage, stage_dir, engine, datasets)
    return write_report(run.dir)


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


class Datasets:
    """Problems of the configured datasets, loaded once per process."""

    def __init__(self, run: RunConfig):
        self.run = run
        self._cache: dict[str, list[Problem]] = {}

    def __getitem__(self, name: str) -> list[Problem]:
        if name not in self._cache:
            self._cache[name] = load_dataset(self.run.datasets[name], name)
        return self._cache[name]


def load_dataset(ds: config_mod.DatasetConfig, name: str) -> list[Problem]:
    """The problems of one dataset config."""
    if ds.source == DataSource.synthetic:
        from reasoner.data.synthetic import TASKS, generate_mixed

        problems = generate_mixed(ds.tasks or list(TASKS), ds.n, level=ds.level, seed=ds.seed, split=ds.split)
    elif ds.source == DataSource.file:
        from reasoner.data.records import read_problems

        problems = read_problems(ds.path)
    elif ds.source == DataSource.mathvision:
        from reasoner.data.importers import load_mathvision

        problems = load_mathvision(ds.path)
    else:
        from reasoner.data.sources import load_mathvista

        problems = load_mathvista(ds.path)
    problems = problems[: ds.n] if ds.n and ds.source != DataSource.synthetic else problems
    log.info("dataset %s: %d problems (%s)", name, len(problems), ds.source.value)
    return problems


def model_path(run: Run, stage_name: str) -> Path:
    """The model folder a finished stage produced (the base: the configured path or the built tiny model)."""
    stage = next(p for p in run.plans if p.name == stage_name)
    manifest = run.dir.stage(stage.dir_name).read_manifest()
    if manifest is None:
        raise ReasonerError(f"stage {stage_name} has no finished model yet")
    return Path(manifest["model"])


def _run_stage(run: Run, stage: StagePlan, stage_dir: StageDir, engine: Engine, datasets: Datasets) -> None:
    start = time.perf_counter()
    log.info("stage %s (%s): starting", stage.dir_name, stage.name)
    if stage.kind == "base":
        model, metrics = _base_model(run, stage_dir), {}
    else:
        job = TrainJob(
            stage=stage.config,
            init_model=model_path(run, stage.init),
            ckpt_dir=stage_dir.ckpt,
            out_model=stage_dir.model,
            log_dir=stage_dir.logs,
            template=run.template,
            seed=run.config.seed + stage.index,
        )
        problems = _limit(datasets[stage.config.data.dataset], stage.config.data.limit)
        if stage.kind == "sft":
            examples, data_stats = _sft_examples(run, stage, stage_dir, engine, problems)
            items = [(example.problem, example.target) for example in examples]
        else:
            problems, data_stats = _grpo_problems(run, stage, stage_dir, engine, problems)
            items = [(problem, None) for problem in problems]
        # Pre-flight: measure every prompt against the engine's limit; stop here rather than train on cut inputs.
        data_stats = {**data_stats, **check_stage(run.config, stage.config, job.init_model, run.template, items)}
        if stage.kind == "sft":
            metrics = engine.train_sft(job, examples)
        else:
            metrics = engine.train_grpo(job, problems)
        metrics = {**{f"data/{k}": v for k, v in data_stats.items()}, **metrics}
        model = stage_dir.model.resolve()
    stage_dir.write_manifest(
        {
            "name": stage.name,
            "kind": stage.kind,
            "fingerprint": stage.fingerprint,
            "init": stage.init,
            "model": str(model),
            "config": config_mod.to_dict(stage.config) if stage.config else config_mod.to_dict(run.config.model),
            "prompt": {"name": run.template.name, "sha256": run.template.sha256},
            "metrics": metrics,
            "seconds": round(time.perf_counter() - start, 2),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    log.info("stage %s (%s): finished in %.1f s", stage.dir_name, stage.name, time.perf_counter() - start)


def _grpo_problems(
    run: Run, stage: StagePlan, stage_dir: StageDir, engine: Engine, problems: list[Problem]
) -> tuple[list[Problem], dict[str, Any]]:
    """The stage's difficulty band of `problems` (pass rates estimated once, cached in data/)."""
    data = stage.config.data
    if data.difficulty == Difficulty.all:
        return problems, {}
    from reasoner.data.difficulty import Bands, difficulty_subset, sampling_spec

    pass_rate = data.pass_rate
    policy = model_path(run, stage.init if pass_rate.model == "init" else pass_rate.model)
    return difficulty_subset(
        problems,
        data.difficulty.value,
        stage_dir.data / "pass_rates.json",
        generator=lambda: engine.generator(policy),
        template=run.template,
        spec=sampling_spec(pass_rate, stage.config.grpo, seed=run.config.seed + stage.index),
        model=str(policy),
        bands=Bands(pass_rate.hard_below, pass_rate.easy_from),
    )


def _limit(problems: list[Problem], limit: int) -> list[Problem]:
    return problems[:limit] if limit else problems


def _base_model(run: Run, stage_dir: StageDir) -> Path:
    if run.config.model.path:
        return Path(run.config.model.path).resolve()
    from reasoner.models.tiny import build_tiny_model

    if not stage_dir.model.is_dir():
        with atomic_dir(stage_dir.model) as tmp:
            build_tiny_model(tmp, size=run.config.model.tiny_size, seed=run.config.model.tiny_seed)
    return stage_dir.model.resolve()


def _sft_examples(
    run: Run, stage: StagePlan, stage_dir: StageDir, engine: Engine, problems: list[Problem]
) -> tuple[list[SFTExample], dict[str, Any]]:
    """SFT targets (reference chains or self-distilled ones), cached in data/ so a resumed stage reuses them."""
    cached = read_json(stage_dir.data / "targets.json")
    if cached is not None:
        by_id = {p.id: p for p in problems}
        return [SFTExample(by_id[i], t) for i, t in cached["targets"]], cached["stats"]
    data = stage.config.data
    if data.targets == SFTTargets.reference:
        examples = [SFTExample(p, format_target(p.reasoning, p.answer_label())) for p in problems if p.reasoning]
        if not examples:
            raise ReasonerError(
                f"stages.{stage.name}.data: dataset {data.dataset!r} has no reference reasoning; use targets: self"
            )
        stats = {"problems": len(problems), "kept": len(examples)}
    elif data.targets == SFTTargets.distill:
        examples, stats = _distilled_examples(run, stage, stage_dir, engine, problems)
    else:
        from reasoner.data.selfdistill import build_examples, sample_and_verify
        from reasoner.generation.base import SamplingSpec

        spec = SamplingSpec(
            n=data.samples_per_problem,
            temperature=data.temperature,
            max_new_tokens=data.max_new_tokens,
            seed=run.config.seed + stage.index,
        )
        generator = engine.generator(model_path(run, stage.policy))
        samples = sample_and_verify(generator, problems, run.template, spec)
        examples, stats = build_examples(problems, samples, data.select.value)
        if not examples:
            raise ReasonerError(f"stage {stage.name}: the policy {stage.policy} solved none of {len(problems)} problems")
    write_json_atomic(
        stage_dir.data / "targets.json",
        {"targets": [[e.problem.id, e.target] for e in examples], "stats": stats},
    )
    return examples, stats


def _distilled_examples(
    run: Run, stage: StagePlan, stage_dir: StageDir, engine: Engine, problems: list[Problem]
) -> tuple[list[SFTExample], dict[str, Any]]:
    """Iteration-1 data: caption -> reason k times -> verify -> select -> trim (sharded, resumable in data/)."""
    from reasoner.data.distill import distill, sft_examples, token_counter

    cfg = stage.config.data.distill

    def folder(name: str) -> Path:
        return model_path(run, "base") if name == "base" else Path(name)

    result = distill(
        problems,
        stage_dir.data / "distill",
        cfg,
        reasoner=lambda: engine.generator(folder(cfg.reasoner)),
        captioner=(lambda: engine.generator(folder(cfg.captioner))) if cfg.captioner else None,
        count_tokens=token_counter(folder(cfg.reasoner)) if cfg.max_target_tokens else None,
        seed=run.config.seed + stage.index,
    )
    examples = sft_examples(result.problems)
    if not examples:
        raise ReasonerError(f"stage {stage.name}: distillation kept no chain of {len(problems)} problems")
    return examples, result.stats["total"]


def _evaluate_stage(run: Run, stage: StagePlan, stage_dir: StageDir, engine: Engine, datasets: Datasets) -> None:
    if stage.kind == "base" and not run.config.eval.evaluate_base:
        return
    for name in run.config.eval.datasets:
        out = stage_dir.eval(name)
        fp = eval_fingerprint(run.config, name, stage.fingerprint, run.template.sha256)
        done = read_json(out / "scores.json")
        if done is not None and done.get("fingerprint") == fp:
            continue
        generator = engine.generator(model_path(run, stage.name))
        source = run.config.datasets[name].source.value
        benchmark = source if source in BENCHMARKS else None
        scores = evaluate(
            generator, datasets[name], run.template, run.config.eval, name, out, fingerprint=fp, benchmark=benchmark
        )
        log.info("stage %s: %s accuracy %.1f%%", stage.name, name, scores["accuracy"])
