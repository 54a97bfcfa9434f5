"""Agreement of `reasoner score mathvista` with the official MathVista verdicts on real free-text responses.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_mathvista_agreement.py \
        [--responses ../shared/data/mathvista/responses] [--data ../shared/data/mathvista] \
        [--refusals official|strict] [--dump OUT_DIR] [--by-class]

Each `responses/<model>.jsonl` holds one model's raw answers to the 1000 testmini items with the official GPT-4
extraction and per-item verdict (`official_correct`). This scores every file through the function the CLI
calls (`score_predictions_file`, so scores.json + items.jsonl are written exactly as the CLI writes them) and
prints per model: item-level agreement with the official verdicts, our accuracy, the official accuracy, the
difference, the refusal / no-answer counts, and the disagreements grouped by class. Items whose response is
empty are left out of every number (the official pipeline still sent them to GPT-4, which invented answers).
`--dump DIR` writes DIR/<model>.jsonl with every disagreement (response, official reading, ours) for reading.
`--by-class` adds a table by the class of rule that decided each item (the scorer's `mapping`: refusal,
option-list, yes-no, comparison, polarity, letter, mention, nearest, ...): how many items it decided and how many
of them disagree, per model, so a change shows which class it moved.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from reasoner.benchmarks.mathvista import score_predictions_file
from rewards.core import REFUSAL_POLICIES
from rewards.extract import sanitize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mathvista"
YES_NO = {"yes", "no"}


def read_rows(path: Path) -> list[dict]:
    """The non-empty responses of one model file (empty as extraction reads it: a lone zero-width space is)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if sanitize(row["response"]).strip()]


def disagreement_class(problem: dict, item: dict, official_correct: bool) -> str:
    """A coarse class of one disagreement: question kind, how we read it, and who says right."""
    if problem["choices"]:
        kind = "yes/no" if {c.lower() for c in problem["choices"]} == YES_NO else "choice"
    else:
        kind = problem["answer_type"]
    how = item["reason"] if item["prediction"] is None else item["mapping"]
    verdict = "official-right" if official_correct else "ours-right"
    return f"{kind}/{how}/{verdict}"


def measure(path: Path, problems: dict[str, dict], data: Path, refusals: str, out: Path) -> dict:
    """Score one model's responses; return its row of the table and its disagreements."""
    rows = read_rows(path)
    predictions = out / f"{path.stem}.predictions.jsonl"
    predictions.write_text("".join(json.dumps({"pid": r["pid"], "response": r["response"]}) + "\n" for r in rows))
    started = time.perf_counter()
    scores = score_predictions_file(predictions, data, out / path.stem, refusals=refusals)
    seconds = time.perf_counter() - started
    items = {}
    for line in (out / path.stem / "items.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        items[item["pid"]] = item
    disagreements = []
    for row in rows:
        item = items[row["pid"]]
        if item["correct"] != row["official_correct"]:
            problem = problems[row["pid"]]
            disagreements.append({
                "class": disagreement_class(problem, item, row["official_correct"]),
                "pid": row["pid"], "question": problem["question"], "choices": problem["choices"],
                "answer": problem["answer"], "response": row["response"],
                "official_extraction": row["official_extraction"], "official_prediction": row["official_prediction"],
                "official_correct": row["official_correct"], "ours": item,
            })  # fmt: skip
    n = len(rows)
    decided = Counter(items[row["pid"]]["mapping"] for row in rows)
    ours = sum(items[row["pid"]]["correct"] for row in rows)
    official = sum(row["official_correct"] for row in rows)
    return {
        "model": path.stem, "n": n, "agreement": 100 * (n - len(disagreements)) / n,
        "ours": 100 * ours / n, "official": 100 * official / n, "seconds": seconds,
        "refusals": scores["refusals"], "unread": scores["no_answer"], "disagreements": disagreements,
        "decided": decided,
    }  # fmt: skip


def print_report(results: list[dict], show_classes: int) -> None:
    header = f"{'model':<26} {'n':>5} {'agree %':>8} {'ours %':>7} {'official %':>10} {'delta':>6} " \
             f"{'refusals':>8} {'unread':>6} {'s':>5}"
    print(header)
    for r in results:
        print(f"{r['model']:<26} {r['n']:>5} {r['agreement']:>8.1f} {r['ours']:>7.1f} {r['official']:>10.1f} "
              f"{r['ours'] - r['official']:>+6.1f} {r['refusals']:>8} {r['unread']:>6} {r['seconds']:>5.2f}")
    print(f"{'mean':<26} {'':>5} {statistics.mean(r['agreement'] for r in results):>8.2f}")
    classes = Counter(d["class"] for r in results for d in r["disagreements"])
    print(f"\ndisagreements by class (all models, {sum(classes.values())} in all):")
    for name, count in classes.most_common(show_classes):
        per_model = " ".join(
            f"{r['model'][:6]}={sum(d['class'] == name for d in r['disagreements'])}" for r in results
        )
        print(f"  {count:>4}  {name:<40} {per_model}")


def print_by_class(results: list[dict]) -> None:
    """Items and disagreements by the rule that decided them (`mapping`), all models and per model."""
    decided = Counter()
    for r in results:
        decided.update(r["decided"])
    print("\nby the rule that decided (items / disagreements; per model: disagreements of items):")
    print(f"  {'rule':<14} {'items':>6} {'disagree':>8}  " + " ".join(f"{r['model'][:10]:>11}" for r in results))
    for rule, count in decided.most_common():
        wrong = [sum(d["ours"]["mapping"] == rule for d in r["disagreements"]) for r in results]
        cells = " ".join(f"{w:>4} of {r['decided'][rule]:<4}" for w, r in zip(wrong, results, strict=True))
        print(f"  {rule:<14} {count:>6} {sum(wrong):>8}  {cells}")


def dump(results: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for r in results:
        ordered = sorted(r["disagreements"], key=lambda d: (d["class"], int(re.sub(r"\D", "", d["pid"]) or 0)))
        text = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in ordered)
        (folder / f"{r['model']}.jsonl").write_text(text, encoding="utf-8")
    print(f"wrote the disagreements to {folder}/<model>.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=Path, default=DATA / "responses")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--refusals", choices=REFUSAL_POLICIES, default="official")
    parser.add_argument("--dump", type=Path, help="write every disagreement to DUMP/<model>.jsonl")
    parser.add_argument("--classes", type=int, default=25, help="how many disagreement classes to list")
    parser.add_argument("--by-class", action="store_true",
                        help="count items and disagreements by the rule that decided them (refusal, letter, ...)")
    args = parser.parse_args()
    problems = json.loads((args.data / "testmini.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        results = [
            measure(path, problems, args.data, args.refusals, Path(tmp))
            for path in sorted(args.responses.glob("*.jsonl"))
        ]
    print_report(results, args.classes)
    if args.by_class:
        print_by_class(results)
    if args.dump:
        dump(results, args.dump)


if __name__ == "__main__":
    main()
