"""`reasoner data synthetic | import | distill | tiny-model`: build and import problem sets, build tiny models.

Registered by `reasoner.cli.build_parser`; each command delegates to the module that owns the work.
"""

from __future__ import annotations

import argparse

from reasoner.cli.args import at_least


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    """Add `reasoner data` and its subcommands to the top-level subparsers `sub`."""
    data = sub.add_parser("data", help="build and import problem sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    for add in (_add_data_synthetic, _add_data_import, _add_data_tiny_model, _add_data_distill):
        add(data_sub)


def _add_data_synthetic(sub: argparse._SubParsersAction) -> None:
    from reasoner.config import Split

    parser = sub.add_parser(
        "synthetic", help="render synthetic visual-math problems (count, digits, bars) to jsonl/parquet"
    )
    parser.add_argument("out", metavar="OUT", help="output file, .jsonl or .parquet")
    parser.add_argument("--task", action="append", required=True, help="task family; repeat to mix tasks")
    parser.add_argument("--n", type=at_least(1), required=True, help="number of problems")
    parser.add_argument("--level", type=int, choices=(1, 2, 3), default=1, help="difficulty 1..3 (default 1)")
    parser.add_argument("--seed", type=at_least(0), default=0, help="random seed (default 0)")
    parser.add_argument(
        "--split", default="train", choices=[s.value for s in Split], help="part of the problem space (disjoint)"
    )
    parser.set_defaults(handler=_run_data_synthetic)


def _run_data_synthetic(args: argparse.Namespace) -> int:
    from reasoner.data.records.files import write_problems
    from reasoner.data.worlds import generate_mixed

    problems = generate_mixed(args.task, args.n, level=args.level, seed=args.seed, split=args.split)
    path = write_problems(problems, args.out)
    print(f"wrote {len(problems)} {args.split} problems ({', '.join(args.task)}, level {args.level}) to {path}")
    return 0


PERCEPTION = ("aro-relation", "aro-attribution", "coco-order", "flickr-order", "whatsup", "whatsup-pairs")
"""Released perception files `reasoner data import` reads (`reasoner.data.sets.perception_files.FORMATS`)."""


def _add_data_import(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("import", help="convert a public data set into a problems file")
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
    parser.add_argument("--limit", type=at_least(1), help="import at most this many problems")
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
    parser.add_argument(
        "--exclude-problems", metavar="FILE", action="append", default=[],
        help="drop problems overlapping a problems file, e.g. your held-out split imported first (same image bytes, "
        "or a distinctive question: what the run's contamination guard checks); repeatable",
    )  # fmt: skip
    parser.set_defaults(handler=_run_data_import)


def _run_data_import(args: argparse.Namespace) -> int:
    from reasoner.data.records.files import write_problems
    from reasoner.data.records.problem import missing_images
    from reasoner.data.sets import importers, sources

    if args.format == "mathvista":
        problems = sources.load_mathvista(args.src, split=args.split, limit=args.limit)
    elif args.format == "geometry3k":
        problems = sources.load_geometry3k(args.src, limit=args.limit)
    elif args.format == "tabmwp":
        problems = importers.load_tabmwp(args.src, limit=args.limit)
    elif args.format == "mathvision":
        problems = importers.load_mathvision(args.src, split=args.split, limit=args.limit)
    elif args.format in PERCEPTION:
        from reasoner.data.sets.perception_files import load_perception_file

        problems = load_perception_file(args.format, args.src, image_dir=args.image_dir, limit=args.limit)
    else:
        mapping = sources.parse_mapping(args.map)
        problems = sources.load_generic(args.src, mapping, image_dir=args.image_dir, limit=args.limit)
    from reasoner.atomic import write_json
    from reasoner.data.stage import dedupe

    exclude = [dedupe.mathvista_index(args.exclude_mathvista)] if args.exclude_mathvista else []
    if args.exclude_mathvision:
        exclude.append(dedupe.mathvision_index(args.exclude_mathvision))
    exclude += [dedupe.problems_index(path) for path in args.exclude_problems]
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
    parser = sub.add_parser(
        "distill",
        help="caption -> reason -> verify -> filter: build an SFT set with other models (resumable, sharded)",
        description="Writes <output_dir>/<name>/distilled.jsonl (problems with distilled reasoning, original images) "
        "and stats.json; re-running the same command redoes only unfinished shards.",
    )
    parser.add_argument("config", metavar="CONFIG", help="distill config YAML, e.g. configs/distill-demo.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. distill.sampling.n=8")
    parser.set_defaults(handler=_run_data_distill)


def _run_data_distill(args: argparse.Namespace) -> int:
    from reasoner.cli.distill_job import load_job, run_job
    from reasoner.data.stage.distill import format_stats

    result = run_job(load_job(args.config, args.overrides))
    print(format_stats(result.stats))
    print(f"wrote {len(result.problems)} SFT problems to {result.path}; statistics in {result.stats_path}")
    return 0


def _add_data_tiny_model(sub: argparse._SubParsersAction) -> None:
    from reasoner.models.tiny import DEFAULT_FAMILY, FAMILIES, SIZES

    parser = sub.add_parser(
        "tiny-model", help="build a tiny random Qwen-VL (model, tokenizer, processor) offline for demos/tests"
    )
    parser.add_argument("out", metavar="OUT", help="new model folder (must not exist or be empty)")
    parser.add_argument(
        "--family", default=DEFAULT_FAMILY, choices=list(FAMILIES), help=f"model family (default {DEFAULT_FAMILY})"
    )
    parser.add_argument("--size", default="demo", choices=sorted(SIZES), help="named size (default demo)")
    parser.add_argument("--seed", type=at_least(0), default=0, help="weight seed; the same seed gives identical files")
    parser.set_defaults(handler=_run_data_tiny_model)


def _run_data_tiny_model(args: argparse.Namespace) -> int:
    from reasoner.models.tiny import build_tiny_model, describe_model_folder

    path = build_tiny_model(args.out, family=args.family, size=args.size, seed=args.seed)
    print(f"wrote {describe_model_folder(path)} to {path}")
    return 0
