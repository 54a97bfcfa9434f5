"""Command line: `reasoner run | eval | score | report | data | submit`.

Each command is a small function that parses nothing itself and delegates to the module that owns the work.
Bad input raises `ReasonerError`, printed as one message with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from reasoner.errors import ReasonerError


def _at_least(minimum: int):
    """An argparse type: a whole number >= `minimum` (argparse names the option and exits with status 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is not allowed; allowed: >= {minimum}")
        return value

    return parse


def _add_score(sub: argparse._SubParsersAction) -> None:
    score = sub.add_parser("score", help="score existing responses against a benchmark")
    benchmarks = score.add_subparsers(dest="score_command", required=True, metavar="BENCHMARK")
    score._benchmarks = benchmarks  # `_add_score_*` functions add the other benchmarks here
    parser = benchmarks.add_parser(
        "mathvista",
        help="score MathVista testmini responses exactly (rule-based extraction, no GPT)",
        description="Writes OUT/scores.json (overall + per task/skill/... accuracy, percent of ALL problems: "
        "missing or empty responses count wrong) and OUT/items.jsonl (one row per problem).",
    )
    parser.add_argument(
        "--predictions", required=True, metavar="P.jsonl", help='one {"pid", "response"} per line'
    )
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="folder with testmini.json or the hub parquet"
    )
    parser.add_argument("--out", required=True, metavar="OUT", help="output folder")
    parser.add_argument("--workers", type=_at_least(1), default=1, help="scoring worker processes (default 1)")
    parser.add_argument(
        "--refusals", choices=("official", "strict"), default="official",
        help="official (default, as the published numbers: a multiple-choice refusal still lands on the nearest "
        "choice) or strict (a refusal is wrong)",
    )  # fmt: skip
    parser.set_defaults(handler=_run_score_mathvista)


def _add_score_mathvision(sub: argparse._SubParsersAction) -> None:
    parser = sub.choices["score"]._benchmarks.add_parser(
        "mathvision",
        help="score MATH-Vision testmini responses by the benchmark's own rules (no GPT)",
        description="Writes OUT/scores.json (overall + per level/subject accuracy, percent of ALL problems: "
        "missing or empty responses count wrong) and OUT/items.jsonl (one row per problem).",
    )
    parser.add_argument("--predictions", required=True, metavar="P.jsonl", help='one {"pid", "response"} per line')
    parser.add_argument("--data", required=True, metavar="DIR", help="folder with testmini.jsonl (images optional)")
    parser.add_argument("--out", required=True, metavar="OUT", help="output folder")
    parser.set_defaults(handler=_run_score_mathvision)


def _run_score_mathvision(args: argparse.Namespace) -> int:
    from reasoner.eval.mathvision import score_predictions_file
    from reasoner.eval.mathvista import format_table

    scores = score_predictions_file(args.predictions, args.data, args.out)
    print(format_table(scores, fields=("level", "subject")))
    print(f"wrote {args.out}/scores.json and {args.out}/items.jsonl")
    return 0


def _run_score_mathvista(args: argparse.Namespace) -> int:
    from reasoner.eval.mathvista import format_table, score_predictions_file

    scores = score_predictions_file(
        args.predictions, args.data, args.out, workers=args.workers, refusals=args.refusals
    )
    print(format_table(scores))
    print(f"wrote {args.out}/scores.json and {args.out}/items.jsonl")
    return 0


def _data_subparsers(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The subcommands of `reasoner data`, created once so each `_add_data_*` function can add its own."""
    if "data" not in sub.choices:
        data = sub.add_parser("data", help="build and import problem sets")
        data._data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    return sub.choices["data"]._data_sub


def _add_data_synthetic(sub: argparse._SubParsersAction) -> None:
    parser = _data_subparsers(sub).add_parser(
        "synthetic", help="render synthetic visual-math problems (count, digits, bars) to jsonl/parquet"
    )
    parser.add_argument("out", metavar="OUT", help="output file, .jsonl or .parquet")
    parser.add_argument("--task", action="append", required=True, help="task family; repeat to mix tasks")
    parser.add_argument("--n", type=_at_least(1), required=True, help="number of problems")
    parser.add_argument("--level", type=int, choices=(1, 2, 3), default=1, help="difficulty 1..3 (default 1)")
    parser.add_argument("--seed", type=_at_least(0), default=0, help="random seed (default 0)")
    parser.add_argument(
        "--split", default="train", choices=("train", "eval"), help="part of the problem space (disjoint)"
    )
    parser.set_defaults(handler=_run_data_synthetic)


def _run_data_synthetic(args: argparse.Namespace) -> int:
    from reasoner.data.records import write_problems
    from reasoner.data.synthetic import generate_mixed

    problems = generate_mixed(args.task, args.n, level=args.level, seed=args.seed, split=args.split)
    path = write_problems(problems, args.out)
    print(f"wrote {len(problems)} {args.split} problems ({', '.join(args.task)}, level {args.level}) to {path}")
    return 0


PERCEPTION = ("aro-relation", "aro-attribution", "coco-order", "flickr-order", "whatsup", "whatsup-pairs")
"""Released perception files `reasoner data import` reads (`reasoner.data.perception_loaders.FORMATS`)."""


def _add_data_import(sub: argparse._SubParsersAction) -> None:
    parser = _data_subparsers(sub).add_parser("import", help="convert a public data set into a problems file")
    parser.add_argument("src", metavar="SRC", help="data folder or file")
    parser.add_argument("out", metavar="OUT", help="output file, .parquet or .jsonl")
    parser.add_argument(
        "--format", required=True, choices=("mathvista", "geometry3k", "tabmwp", "mathvision", "generic", *PERCEPTION),
        help="tabmwp: a problems_*.json (or a folder of them) with tables/; mathvision: a folder with "
        "<split>.jsonl and images/; aro-*, *-order, whatsup*: a released ARO / What'sUp file (--image-dir: its images)",
    )
    parser.add_argument(
        "--map", action="append", default=[], metavar="FIELD=COLUMN", help="generic: column mapping"
    )
    parser.add_argument("--image-dir", help="generic, ARO, What'sUp: folder that relative image paths start from")
    parser.add_argument("--split", default="testmini", help="mathvista, mathvision: split name (default testmini)")
    parser.add_argument("--limit", type=_at_least(1), help="import at most this many problems")
    parser.add_argument(
        "--dedupe", action="store_true", help="drop repeats (same image bytes + question + choices); keep the first"
    )
    parser.add_argument(
        "--exclude-mathvista", metavar="DIR",
        help="drop problems overlapping MathVista testmini in DIR (same image bytes, or a distinctive question)",
    )
    parser.add_argument(
        "--exclude-mathvision", metavar="DIR",
        help="drop problems overlapping MATH-Vision testmini in DIR (same image bytes, or a distinctive question)",
    )
    parser.set_defaults(handler=_run_data_import)


def _run_data_import(args: argparse.Namespace) -> int:
    from reasoner.data import importers, sources
    from reasoner.data.records import missing_images, write_problems

    if args.format == "mathvista":
        problems = sources.load_mathvista(args.src, split=args.split, limit=args.limit)
    elif args.format == "geometry3k":
        problems = sources.load_geometry3k(args.src, limit=args.limit)
    elif args.format == "tabmwp":
        problems = importers.load_tabmwp(args.src, limit=args.limit)
    elif args.format == "mathvision":
        problems = importers.load_mathvision(args.src, split=args.split, limit=args.limit)
    elif args.format in PERCEPTION:
        from reasoner.data.perception_loaders import load_perception_file

        problems = load_perception_file(args.format, args.src, image_dir=args.image_dir, limit=args.limit)
    else:
        mapping = sources.parse_mapping(args.map)
        problems = sources.load_generic(args.src, mapping, image_dir=args.image_dir, limit=args.limit)
    from reasoner.atomic import write_json
    from reasoner.data import dedupe

    exclude = [dedupe.mathvista_index(args.exclude_mathvista)] if args.exclude_mathvista else []
    if args.exclude_mathvision:
        exclude.append(dedupe.mathvision_index(args.exclude_mathvision))
    source = {"path": str(args.src), "format": args.format}
    problems, record = dedupe.clean_import(problems, dedupe=args.dedupe, exclude=exclude, source=source)
    path = write_problems(problems, args.out)
    write_json(dedupe.record_path(path), record)
    missing = missing_images(problems)
    print(f"wrote {len(problems)} {args.format} problems to {path}; {len(missing)} with missing images")
    overlaps = ", ".join(f"{o['dropped']} {o['benchmark']} overlaps" for o in record["overlap"])
    print(f"dropped {record['dedupe']['duplicates']} duplicates and {overlaps or 'no benchmark overlaps (none checked)'}; "
          f"record: {dedupe.record_path(path)}")
    return 0


def _add_data_distill(sub: argparse._SubParsersAction) -> None:
    parser = _data_subparsers(sub).add_parser(
        "distill",
        help="caption -> reason -> verify -> filter: build an SFT set with other models (resumable, sharded)",
        description="Writes <output_dir>/<name>/distilled.jsonl (problems with distilled reasoning, original images) "
        "and stats.json; re-running the same command redoes only unfinished shards.",
    )
    parser.add_argument("config", metavar="CONFIG", help="distill config YAML, e.g. configs/distill-demo.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. distill.sampling.n=8")
    parser.set_defaults(handler=_run_data_distill)


def _run_data_distill(args: argparse.Namespace) -> int:
    from reasoner.data.distill import format_stats
    from reasoner.data.distill_job import load_job, run_job

    result = run_job(load_job(args.config, args.overrides))
    print(format_stats(result.stats))
    print(f"wrote {len(result.problems)} SFT problems to {result.path}; statistics in {result.stats_path}")
    return 0


def _add_data_tiny_model(sub: argparse._SubParsersAction) -> None:
    from reasoner.models.tiny import SIZES

    parser = _data_subparsers(sub).add_parser(
        "tiny-model", help="build a tiny random Qwen2.5-VL (model, tokenizer, processor) offline for demos/tests"
    )
    parser.add_argument("out", metavar="OUT", help="new model folder (must not exist or be empty)")
    parser.add_argument("--size", default="demo", choices=sorted(SIZES), help="named size (default demo)")
    parser.add_argument("--seed", type=_at_least(0), default=0, help="weight seed; the same seed gives identical files")
    parser.set_defaults(handler=_run_data_tiny_model)


def _run_data_tiny_model(args: argparse.Namespace) -> int:
    from reasoner.models.tiny import build_tiny_model, describe_model_folder

    path = build_tiny_model(args.out, size=args.size, seed=args.seed)
    print(f"wrote tiny Qwen2.5-VL {describe_model_folder(path)} to {path}")
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run a schedule of SFT/GRPO stages with evaluation and a report (resumes where it stopped)",
        description="Runs every unfinished stage of CONFIG into <output_dir>/<name>/; finished stages are skipped.",
    )
    parser.add_argument("config", metavar="CONFIG", help="run config YAML, e.g. configs/demo.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. stages.grpo1.steps=3 seed=1")
    parser.add_argument("--plan", action="store_true", help="validate and print the stages; start nothing")
    parser.add_argument("--redo-from", metavar="STAGE", help="delete this stage and all after it, then run")
    parser.set_defaults(handler=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    from reasoner.pipeline import execute, load_run

    run = load_run(args.config, args.overrides)
    print(run.status_table())
    if args.plan:
        return 0
    report = execute(run, redo_from=args.redo_from)
    print(report.read_text(encoding="utf-8"))
    print(f"report: {report} (also report.json, accuracy.png)")
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="regenerate a run folder's report.md/report.json/accuracy.png, or combine runs of several seeds",
        description="One RUN_DIR: rewrite its report from its stage folders (accuracy ± binomial standard error). "
        "Several RUN_DIRs (runs of one config with different seeds) and --out DIR: write a combined report into "
        "DIR: each seed's accuracy, mean ± sd over seeds and the mean's standard error, per stage and evaluation set.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="e.g. runs/demo, or runs/demo-s0 runs/demo-s1")
    parser.add_argument("--out", metavar="DIR", help="with several RUN_DIRs: folder of the combined report")
    parser.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from reasoner.report import open_run, write_report
    from reasoner.report_seeds import write_combined_report

    if len(args.run_dirs) == 1:
        if args.out:
            raise ReasonerError("--out combines runs of several seeds: give two or more RUN_DIRs (one run's report "
                                "is written into its own folder)")  # fmt: skip
        report = write_report(open_run(args.run_dirs[0]))
    elif not args.out:
        raise ReasonerError(f"{len(args.run_dirs)} RUN_DIRs: give --out DIR, the folder of their combined report")
    else:
        report = write_combined_report(args.run_dirs, args.out)
    print(report.read_text(encoding="utf-8"))
    return 0


def _add_submit(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "submit",
        help="run CONFIG (or a command) as a Ray job on a cluster; follow, query or stop jobs",
        description="Submits `reasoner run CONFIG [KEY=VALUE ...]` (or --entrypoint) to the Ray cluster at --address "
        "with this repo as the job's working dir, prints the job id, and with --follow streams its logs and exits "
        "with its status (0 = SUCCEEDED). --status JOB / --stop JOB query or stop a job.",
    )
    parser.add_argument("config", nargs="?", metavar="CONFIG", help="run config YAML, e.g. configs/openvlthinker-7b.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, as for `reasoner run`")
    parser.add_argument("--address", required=True, metavar="URL", help="the head's job server, http://HEAD:8265")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--status", metavar="JOB", help="print a job's status and exit")
    action.add_argument("--stop", metavar="JOB", help="stop a job and print its final status")
    action.add_argument("--entrypoint", metavar="COMMAND", help="run this shell command instead of CONFIG")
    parser.add_argument("--follow", action="store_true", help="stream the job's logs; exit with its status")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="job env var; repeatable")
    parser.add_argument("--num-cpus", type=float, help="CPUs reserved for the job's driver process (default 0)")
    parser.add_argument("--num-gpus", type=float, help="GPUs reserved for the job's driver process (default 0)")
    parser.add_argument("--pending-timeout", type=float, default=120.0, metavar="S",
                        help="with --follow: give up waiting (the job stays queued) after S s PENDING (default 120)")
    parser.set_defaults(handler=_run_submit)


def _run_submit(args: argparse.Namespace) -> int:
    from reasoner import submit

    if args.status or args.stop:
        job_id = args.status or args.stop
        state = submit.stop_and_wait(args.address, job_id) if args.stop else submit.status(args.address, job_id)
        print(f"job {job_id}: {state.status} ({state.message})")
        if args.stop and state.status == "PENDING":
            print("a job that has not started cannot be stopped by Ray yet: it stops when it starts, or fails "
                  "after RAY_JOB_START_TIMEOUT_SECONDS (default 900 s); it holds no resources meanwhile")
        return 0
    request = submit.build_request(args.config, args.overrides, entrypoint=args.entrypoint, env=args.env,
                                   num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    job_id = submit.submit(args.address, request)
    print(f"submitted job {job_id}: {request.entrypoint}")
    if not args.follow:
        print(f"follow:  reasoner submit --status {job_id} --address {args.address}   (or `ray job logs -f {job_id}`)")
        return 0
    state = submit.follow(args.address, job_id, pending_timeout_s=args.pending_timeout)
    print(f"job {job_id}: {state.status} ({state.message})")
    return 0 if state.status == "SUCCEEDED" else 1


def _add_eval(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="evaluate a model folder on MathVista or a problems file (generate, then score exactly)",
        description="Writes OUT/responses.jsonl, OUT/items.jsonl and OUT/scores.json (as `reasoner score`).",
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="a Qwen2.5-VL-style model folder")
    parser.add_argument("--data", required=True, metavar="PATH", help="MathVista folder (with images) or .jsonl/.parquet")
    parser.add_argument("--out", required=True, metavar="OUT", help="output folder")
    parser.add_argument("--backend", default="hf", choices=("hf", "vllm"), help="generation backend (default hf)")
    parser.add_argument("--device", default="cpu", help="hf backend: cpu or cuda (default cpu)")
    parser.add_argument("--prompt", default="reason", help="prompt template name (default reason)")
    parser.add_argument("--max-new-tokens", type=_at_least(1), default=512, help="response budget (default 512)")
    parser.add_argument("--batch-size", type=_at_least(1), default=16, help="hf backend: prompts per batch (default 16)")
    parser.add_argument("--limit", type=_at_least(0), default=0, help="evaluate the first N problems only (0 = all)")
    parser.set_defaults(handler=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from reasoner.eval.mathvista import format_table
    from reasoner.eval.runner import evaluate_model
    from reasoner.generation.pool import GeneratorConfig

    generator = GeneratorConfig(
        args.model, backend=args.backend, device=args.device, batch_size=args.batch_size, show_progress=True
    )()
    scores = evaluate_model(
        generator, args.data, Path(args.out), prompt=args.prompt, max_new_tokens=args.max_new_tokens, limit=args.limit
    )
    print(format_table(scores, fields=[f for f in ("task", "skills", "level") if f in scores["breakdown"]]))
    print(f"wrote {args.out}/scores.json, items.jsonl and responses.jsonl")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each `_add_*` function registers one command and its handler."""
    parser = argparse.ArgumentParser(prog="reasoner", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_run, _add_report, _add_eval, _add_score, _add_score_mathvision, _add_data_synthetic, _add_data_import, _add_data_tiny_model, _add_submit,
        _add_data_distill,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `reasoner` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options too (`reasoner run CONFIG --plan seed=1`).
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.handler(args) or 0)
    except ReasonerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
