"""Command line: `reasoner run | eval | score | report | data | submit`.

Each command is a small function that parses nothing itself and delegates to the module that owns the work; the
`reasoner data` commands live in `cli_data`.
Bad input raises `ReasonerError`, printed as one message with exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from pathlib import Path

from reasoner import registry
from reasoner.atomic import DiskFull
from reasoner.cli.args import at_least
from reasoner.errors import ReasonerError


def _add_score(sub: argparse._SubParsersAction) -> None:
    score = sub.add_parser("score", help="score existing responses against a benchmark")
    benchmarks = score.add_subparsers(dest="score_command", required=True, metavar="BENCHMARK")
    for name in registry.names():
        benchmark = registry.benchmark(name)
        if not benchmark.reads_files:  # generated sets have no files to score against (descriptions reads one)
            continue
        parser = benchmarks.add_parser(
            name,
            help=f"score responses to {benchmark.summary}",
            description="Writes OUT/scores.json (overall + per-field accuracy, percent of ALL problems: missing or "
            "empty responses count wrong) and OUT/items.jsonl (one row per problem). No GPT: rule-based reading.",
        )
        parser.add_argument("--predictions", required=True, metavar="P.jsonl", help='one {"pid", "response"} per line')
        parser.add_argument("--data", required=True, metavar="PATH", help=f"the set's files: {benchmark.summary}")
        parser.add_argument("--out", required=True, metavar="OUT", help="output folder")
        for option, keywords in benchmark.score_options.items():  # the benchmark checks their values
            parser.add_argument(f"--{option}", **keywords)
        parser.set_defaults(handler=_run_score, benchmark=name)


def _run_score(args: argparse.Namespace) -> int:
    from reasoner.benchmarks.scoring import format_table

    benchmark = registry.benchmark(args.benchmark)
    options = {option: getattr(args, option) for option in benchmark.score_options}
    scores = benchmark.score_file(args.predictions, args.data, args.out, **options)
    print(format_table(scores, fields=[f for f in benchmark.table_fields if f in scores["breakdown"]]))
    print(f"wrote {args.out}/scores.json and {args.out}/items.jsonl")
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run a schedule of SFT/GRPO stages with evaluation and a report (resumes where it stopped)",
        description="Runs every unfinished stage of CONFIG into <output_dir>/<name>/; finished stages are skipped.",
    )
    parser.add_argument("config", metavar="CONFIG", help="run config YAML, e.g. configs/demo.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="e.g. stages.grpo1.steps=3 seed=1, or a fragment file: configs/presets/dapo.yaml")  # fmt: skip
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
    from reasoner.config import Device
    from reasoner.generation.base import Backend

    parser = sub.add_parser(
        "eval",
        help="evaluate a model folder on MathVista or a problems file (generate, then score exactly)",
        description="Writes OUT/responses.jsonl, OUT/items.jsonl and OUT/scores.json (as `reasoner score`).",
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="a Qwen2.5-VL or Qwen3-VL model folder")
    parser.add_argument("--data", required=True, metavar="PATH", help="MathVista folder (with images) or .jsonl/.parquet")
    parser.add_argument("--out", required=True, metavar="OUT", help="output folder")
    parser.add_argument(
        "--backend", default="hf", choices=[b.value for b in Backend], help="generation backend (default hf)"
    )
    parser.add_argument(
        "--device", default="cpu", choices=[d.value for d in Device], help="hf backend: where it runs (default cpu)"
    )
    parser.add_argument(
        "--prompt", default="reason",
        help="prompt template name (default reason); mathvista_query: MathVista's official zero-shot query",
    )  # fmt: skip
    parser.add_argument("--max-new-tokens", type=at_least(1), default=512, help="response budget (default 512)")
    parser.add_argument("--batch-size", type=at_least(1), default=16, help="hf backend: prompts per batch (default 16)")
    parser.add_argument("--limit", type=at_least(0), default=0, help="evaluate the first N problems only (0 = all)")
    parser.add_argument(
        "--benchmark", choices=registry.names(),
        help="the set's benchmark (default: recognized from --data: a problems file, a MATH-Vision or a MathVista "
        "folder)",
    )  # fmt: skip
    parser.add_argument(
        "--describe-prompt", metavar="NAME",
        help="describe-and-respond: the model first describes each image with this template (e.g. caption), then "
        "answers with --prompt, which must use $description (e.g. reason_with_description); scored as <set>-dar, "
        "the descriptions in OUT/descriptions.json",
    )  # fmt: skip
    parser.add_argument(
        "--describe-max-new-tokens", type=at_least(1), default=96, help="description budget (default 96)"
    )
    parser.set_defaults(handler=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from reasoner.benchmarks.scoring import format_table
    from reasoner.eval.runner import evaluate_model
    from reasoner.generation.pool import GeneratorConfig
    from reasoner.models.loading import resolve_device

    generator = GeneratorConfig(
        args.model, backend=args.backend, device=resolve_device(args.device), batch_size=args.batch_size,
        show_progress=True,
    )()  # fmt: skip
    scores = evaluate_model(
        generator, args.data, Path(args.out), prompt=args.prompt, max_new_tokens=args.max_new_tokens, limit=args.limit,
        benchmark=args.benchmark, describe_prompt=args.describe_prompt,
        describe_max_new_tokens=args.describe_max_new_tokens,
    )
    print(format_table(scores, fields=[f for f in ("task", "skills", "level") if f in scores["breakdown"]]))
    also = " and descriptions.json" if args.describe_prompt else ""
    print(f"wrote {args.out}/scores.json, items.jsonl, responses.jsonl{also}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each `_add_*` function registers one command and its handler."""
    parser = argparse.ArgumentParser(prog="reasoner", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from reasoner.cli.data import add_data_commands

    for add in (_add_run, _add_report, _add_eval, _add_score, add_data_commands, _add_submit):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `reasoner` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    from reasoner.config.overrides import is_fragment

    # key=value overrides (and fragment files) may come after options too (`reasoner run CONFIG --plan seed=1`).
    if extra and hasattr(args, "overrides") and all(
        ("=" in e or is_fragment(e)) and not e.startswith("-") for e in extra
    ):
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
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A write outside `reasoner.atomic` (a library's own log file): the same one line as `DiskFull`.
        where = DiskFull(Path(err.filename)) if err.filename else f"no space left on device ({err})"
        print(f"error: {where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
