"""Describe-and-respond with one fixed describer: does description-infused SFT help when the descriptions are good?

    .venv/bin/python experiments/stic_fixed_describer.py runs/stic-demo-s0 runs/stic-demo-s1 runs/stic-demo-s2 \
        [--describer stic] [--out runs/stic-demo-seeds/fixed-describer.md]

In configs/stic-demo.yaml the evaluation `heldout-dar` lets each stage describe the image itself, as STIC's DaR
does; on the tiny model a stage trained on reasoning no longer describes (descriptions' fact F1 falls from ~55 to ~4
after any reasoning SFT), so its own descriptions carry little. Here one model, the `--describer` stage of each run
(default: `stic`, whose descriptions the `dif` stage trained on), describes every held-out image once (greedy, the
caption prompt), and every later stage answers with those descriptions in the `reason_with_description` prompt. The
stages are compared as in experiments/stic_compare.py (per seed, mean ± s.e. paired by seed, pooled McNemar). Results
go to each run's `studies/fixed-describer/<stage>/` (scores.json, items.jsonl); finished ones are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reasoner.benchmarks.metrics import mcnemar_p, spread  # noqa: E402

STAGES = ("dif", "grpo", "plain", "plain_grpo", "stic_sft", "stic_grpo")
PAIRS = (("dif", "plain"), ("grpo", "plain_grpo"), ("stic_sft", "plain"), ("stic_grpo", "plain_grpo"))


def evaluate_run(run_dir: Path, describer: str) -> dict[str, dict[str, bool]]:
    """Stage -> {pid: correct} with `describer`'s descriptions of the run's held-out set."""
    from reasoner import registry
    from reasoner.data.stage.stic import described_problems
    from reasoner.engines.registry import make_engine
    from reasoner.eval.runner import evaluate
    from reasoner.pipeline import load_run, model_path
    from reasoner.prompts import load_template

    run = load_run(run_dir / "config.yaml", [f"output_dir={run_dir.parent}", f"name={run_dir.name}"])
    engine = make_engine(run.config)
    problems = run.datasets["heldout"]
    benchmark = registry.benchmark(run.config.datasets["heldout"].source)
    root = run_dir / "studies" / "fixed-describer"
    cache = root / f"descriptions-{describer}.json"
    if cache.is_file():
        texts = json.loads(cache.read_text())
        problems = [_with(p, texts[p.id]) for p in problems]
    else:
        generator = engine.generator(model_path(run, describer))
        problems = described_problems(generator, problems, load_template("caption"), max_new_tokens=96)
        root.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({p.id: p.metadata["description"] for p in problems}))
    template = load_template("reason_with_description")
    results = {}
    for stage in STAGES:
        out = root / stage
        if not (out / "scores.json").is_file():
            generator = engine.generator(model_path(run, stage))
            evaluate(generator, problems, template, run.config.eval, "heldout-fixed-dar", out, fingerprint=describer,
                     benchmark=benchmark)  # fmt: skip
        rows = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
        results[stage] = {row["pid"]: bool(row["correct"]) for row in rows}
    engine.release_generators()
    return results


def _with(problem, text: str):
    from dataclasses import replace

    return replace(problem, metadata={**problem.metadata, "description": text})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--describer", default="stic")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = [evaluate_run(run, args.describer) for run in args.runs]
    lines = [f"# Describe and respond with `{args.describer}`'s descriptions, {len(args.runs)} seeds", "",
             "Accuracy on the held-out set, percent, per seed: " + "; ".join(
                 f"{stage} " + " / ".join(f"{100 * sum(r[stage].values()) / len(r[stage]):.1f}" for r in results)
                 for stage in STAGES), "",  # fmt: skip
             "| stage | vs | per seed | mean ± s.e. (paired by seed) | items +/- pooled | p |", "|---|---|---|---|---|---|"]
    for stage, other in PAIRS:
        diffs = [100 * (sum(r[stage].values()) - sum(r[other].values())) / len(r[stage]) for r in results]
        gained = sum(r[stage][p] and not r[other][p] for r in results for p in r[stage])
        lost = sum(r[other][p] and not r[stage][p] for r in results for p in r[stage])
        mean = spread(diffs) if len(diffs) > 1 else None
        summary = f"{mean.mean:+.1f} ± {mean.sem:.1f}" if mean else f"{diffs[0]:+.1f}"
        lines.append(f"| {stage} | {other} | {' / '.join(f'{d:+.1f}' for d in diffs)} | {summary} | +{gained} / -{lost} "
                     f"| {mcnemar_p(gained, lost):.2g} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
