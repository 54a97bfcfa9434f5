"""Description accuracy on real rendered worlds: a caption scores 100, each changed fact costs what it should, an
invented object costs precision, order counts, an empty response scores 0; end to end, a run evaluates a
`descriptions` set with the `caption` template whatever its own prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasoner.benchmarks.descriptions import facts, score_description, score_responses
from reasoner.cli import main
from reasoner.config import fingerprint
from reasoner.data.records.files import write_problems
from reasoner.data.worlds import generate, generate_mixed
from reasoner.eval.runner import eval_fingerprint
from reasoner.pipeline import execute, load_run
from reasoner.prompts import load_template


def one(task: str, level: int, seed: int = 3) -> str:
    return generate(task, 1, level=level, seed=seed, split=None)[0].caption


@pytest.mark.parametrize("level", [1, 2, 3])
def test_the_exact_caption_scores_100_on_every_task(level):
    problems = generate_mixed(["count", "digits", "bars"], 24, level=level, seed=level, split=None)
    scores, items = score_responses(problems, {p.id: p.caption for p in problems})
    assert scores["accuracy"] == scores["exact"] == scores["recall"] == scores["precision"] == 100.0
    assert scores["correct"] == scores["n"] == 24 and scores["stderr"] == 0.0
    assert set(scores["breakdown"]["task"]) == {"count", "digits", "bars"} and all(i["correct"] for i in items)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_caption_facts_are_the_scene(level):
    """The grammar reads every object the world drew, with its attributes, and nothing else."""
    for task in ("count", "digits", "bars"):
        for problem in generate(task, 10, level=level, seed=7, split=None):
            scene, found = problem.metadata["scene"], facts(problem.caption)
            if task == "count":
                expected = {("count", "shapes", len(scene["shapes"]))}
                for s in scene["shapes"]:
                    expected |= {("shape", (s["row"], s["col"]), "colour", s["colour"]),
                                 ("shape", (s["row"], s["col"]), "shape", s["shape"])}  # fmt: skip
            elif task == "digits":
                expected = {("count", "numbers", len(scene["digits"]))}
                for i, d in enumerate(scene["digits"], start=1):
                    expected |= {("number", i, "value", d["value"]), ("number", i, "colour", d["colour"])}
            else:
                expected = {("count", "bars", len(scene["bars"]))}
                for i, b in enumerate(scene["bars"], start=1):
                    expected |= {("bar", i, "colour", b["colour"]), ("bar", i, "value", b["value"])}
                if level > 1:
                    expected.add(("gridlines", 1, 2 * len(scene["bars"])))  # half-cell units
            assert set(found) == expected and sum(found.values()) == len(expected), problem.caption


def test_one_changed_colour_value_or_count_costs_one_fact():
    bars = one("bars", 1)  # 'A bar chart with 3 bars, left to right: c1 v1, c2 v2, c3 v3.': 7 facts
    head, _, listing = bars.partition(": ")
    first_colour, first_value = listing.split(",")[0].split()
    value = str(int(first_value) % 3 + 1)
    changed = {
        "value": f"{head}: {first_colour} {value}" + listing[len(first_colour) + 1 + len(first_value):],
        "colour": bars.replace(first_colour, "black", 1),
        "count": bars.replace("3 bars", "4 bars"),
    }
    for what, text in changed.items():
        result = score_description(bars, text)
        assert (result["facts"], result["stated"], result["matched"]) == (7, 7, 6), what
        assert result["f1"] == pytest.approx(6 / 7) and not result["exact"], what
    digits = one("digits", 3)  # three numbers: 7 facts
    colour = digits.split("(")[1].split(")")[0]
    other = "black" if colour != "black" else "blue"
    result = score_description(digits, digits.replace(f"({colour})", f"({other})", 1))
    assert (result["facts"], result["matched"], result["wrong"]) == (7, 6, [f"number 1 colour {other}"])


def test_a_changed_count_in_a_shape_caption_costs_a_fact():
    caption = one("count", 2)
    n = int(caption.split()[0])
    result = score_description(caption, caption.replace(f"{n} shapes", f"{n + 1} shapes", 1))
    total = 1 + 2 * n
    assert result["recall"] == result["precision"] == pytest.approx((total - 1) / total)
    assert result["missed"] == [f"{n} shapes"] and result["wrong"] == [f"{n + 1} shapes"]


def test_invented_objects_lower_precision_and_listing_everything_scores_badly():
    bars = one("bars", 1)
    result = score_description(bars, bars.rstrip(".") + ", red 1, blue 2.")
    assert result["recall"] == 1.0 and result["precision"] == pytest.approx(7 / 11) and not result["exact"]
    caption = one("count", 1)  # a 3x3 grid
    everything = ", ".join(f"{c} {s} ({r},{k})" for r in (1, 2, 3) for k in (1, 2, 3)
                           for c in ("red", "blue", "green") for s in ("square", "circle", "triangle"))  # fmt: skip
    result = score_description(caption, f"{caption.split()[0]} shapes on white, by (row, column): {everything}.")
    assert result["recall"] == 1.0 and result["f1"] < 0.2


def test_reordered_bars_and_digits_are_wrong_on_order():
    for problem in generate("bars", 20, level=2, seed=5, split=None):  # the first chart whose first two differ
        head, _, rest = problem.caption.partition(": ")
        listing, _, tail = rest.partition(";")
        entries = listing.split(", ")
        if entries[0].split()[1] != entries[1].split()[1]:
            break
    swapped = f"{head}: {', '.join([entries[1], entries[0], *entries[2:]])};{tail}"
    result = score_description(problem.caption, swapped)
    assert result["stated"] == result["facts"] and result["matched"] == result["facts"] - 4  # 2 colours, 2 values
    assert sorted(result["missed"]) == sorted(f"bar {i} {a} {v}" for i, e in ((1, entries[0]), (2, entries[1]))
                                              for a, v in zip(("colour", "value"), e.split(), strict=True))
    for problem in generate("digits", 20, level=1, seed=5, split=None):  # two numbers, distinct values and inks
        head, _, rest = problem.caption.rstrip(".").partition(": ")
        first, second = rest.split(", ")
        if first.split()[0] != second.split()[0] and first.split()[1] != second.split()[1]:
            break
    result = score_description(problem.caption, f"{head}: {second}, {first}.")
    assert (result["matched"], result["facts"]) == (1, 5)  # only the count is right


def test_lenient_reading_and_empty_or_missing_responses():
    digits = "2 seven-segment numbers on white, left to right, top to bottom: 4 (purple), 5 (black)."
    assert score_description(digits, "I see 2 Seven-Segment   numbers:\n4 ( Purple ) and 5 (BLACK)")["exact"]
    problems = generate_mixed(["count", "bars"], 4, level=1, seed=2, split="eval")
    responses = {problems[0].id: "", problems[1].id: "a picture", problems[2].id: problems[2].caption}
    scores, items = score_responses(problems, responses)
    assert [i["reason"] for i in items] == ["empty", "scored", "scored", "missing"]
    assert [i["f1"] for i in items] == [0.0, 0.0, 1.0, 0.0] and scores["accuracy"] == 25.0
    assert (scores["empty"], scores["missing"], scores["no_facts"], scores["correct"]) == (1, 1, 1, 1)
    assert scores["stderr"] == 25.0  # sd of (0, 0, 1, 0) = 0.5, over sqrt(4)


RUN = """
name: describe
model: {{path: {model}}}
prompt: reason
datasets:
  train: {{source: synthetic, n: 2, tasks: [bars]}}
  desc: {{source: descriptions, n: 3, split: eval}}
  heldout: {{source: synthetic, n: 2, split: eval}}
eval: {{datasets: [desc, heldout], max_new_tokens: 6, evaluate_base: true}}
stages:
  - {{kind: sft, data: {{dataset: train}}, steps: 1, batch_size: 2}}
"""


def test_a_run_evaluates_descriptions_with_the_caption_template(tiny_model_dir: Path, tmp_path: Path):
    config = tmp_path / "run.yaml"
    config.write_text(RUN.format(model=tiny_model_dir))
    run = load_run(config, [f"output_dir={tmp_path / 'runs'}"])
    report = execute(run)
    caption, reason = load_template("caption"), load_template("reason")
    for stage in run.plans:
        folder = run.dir.stage(stage.dir_name).eval("desc")
        scores = json.loads((folder / "scores.json").read_text())
        assert scores["fingerprint"] == eval_fingerprint(run.config, "desc", stage.fingerprint, caption.sha256)
        assert scores["n"] == 3 and set(scores["breakdown"]["task"]) == {"count", "digits", "bars"}
        heldout = json.loads((run.dir.stage(stage.dir_name).eval("heldout") / "scores.json").read_text())
        assert heldout["fingerprint"] == eval_fingerprint(run.config, "heldout", stage.fingerprint, reason.sha256)
    assert "## desc" in report.read_text()


def test_reasoner_eval_scores_descriptions_of_a_problems_file(tiny_model_dir, tmp_path, capsys):
    data = write_problems(generate_mixed(["digits"], 2, level=1, seed=4, split="eval"), tmp_path / "d.jsonl")
    out = tmp_path / "out"
    argv = ["eval", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(out), "--max-new-tokens", "4",
            "--benchmark", "descriptions"]  # fmt: skip
    assert main(argv) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n"] == 2 and "exact" in scores and "mean fact F1" in capsys.readouterr().out
    # the caption template, though the command's --prompt default is `reason`
    expected = fingerprint({"data": str(data), "prompt": load_template("caption").sha256, "max_new_tokens": 4})
    assert scores["fingerprint"] == expected


def test_reasoner_score_descriptions_of_a_problems_file(tmp_path, capsys):
    """`reasoner score descriptions`: the set is generated in a run, but a problems file with captions (`reasoner
    eval --benchmark descriptions` reads one too) is scored against its captions; the captions themselves score
    100, an empty response 0."""
    problems = generate_mixed(["count", "digits", "bars"], 3, level=1, seed=4, split="eval")
    data = write_problems(problems, tmp_path / "d.jsonl")
    predictions = tmp_path / "p.jsonl"
    rows = [{"pid": p.id, "response": p.caption if i else ""} for i, p in enumerate(problems)]
    predictions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"
    argv = ["score", "descriptions", "--data", str(data), "--predictions", str(predictions), "--out", str(out)]
    assert main(argv) == 0 and "wrote" in capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n"] == 3 and scores["exact"] == round(200 / 3, 2)
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert [item["f1"] for item in items] == [0.0, 1.0, 1.0]
