"""`reasoner eval`: a real tiny model generates on real rendered problems; the same scorer grades the answers."""

from __future__ import annotations

import json

from reasoner.cli import main
from reasoner.data.records.files import write_problems
from reasoner.data.worlds import generate_mixed


def test_eval_command_generates_scores_and_breaks_down(tiny_model_dir, tmp_path, capsys):
    problems = generate_mixed(["count", "bars"], 6, level=1, seed=5, split="eval")
    data = write_problems(problems, tmp_path / "heldout.jsonl")
    out = tmp_path / "out"
    code = main(["eval", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(out), "--max-new-tokens", "8"])
    assert code == 0
    scores = json.loads((out / "scores.json").read_text())
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    responses = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert scores["n"] == 6 and [i["pid"] for i in items] == [p.id for p in problems] == [r["pid"] for r in responses]
    assert scores["accuracy"] == round(100 * sum(i["correct"] for i in items) / 6, 2)
    assert set(scores["breakdown"]["task"]) == {"count", "bars"}
    assert "wrote" in capsys.readouterr().out


def test_eval_on_mathvista_without_images_names_the_missing_image(tiny_model_dir, mathvista_dir, tmp_path, capsys):
    code = main(["eval", "--model", str(tiny_model_dir), "--data", str(mathvista_dir), "--out", str(tmp_path), "--limit", "2"])
    assert code == 2
    assert "images/1.jpg is missing" in capsys.readouterr().err
