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


def test_eval_describe_and_respond_answers_with_the_models_own_descriptions(jittered_model_dir, tmp_path, capsys):
    """STIC's describe-and-respond outside a schedule: the descriptions are the model's greedy answers to the
    describing template (the same as `--prompt caption` gives), and the answers are scored as `<set>-dar`."""
    problems = generate_mixed(["count", "bars"], 4, level=1, seed=5, split="eval")
    data = write_problems(problems, tmp_path / "heldout.jsonl")
    base = ["eval", "--model", str(jittered_model_dir), "--data", str(data), "--max-new-tokens", "6"]
    dar = [*base, "--out", str(tmp_path / "dar"), "--prompt", "reason_with_description", "--describe-prompt",
           "caption", "--describe-max-new-tokens", "5"]  # fmt: skip
    assert main(dar) == 0 and "descriptions.json" in capsys.readouterr().out
    scores = json.loads((tmp_path / "dar" / "scores.json").read_text())
    assert scores["dataset"] == "heldout-dar" and scores["n"] == 4
    descriptions = json.loads((tmp_path / "dar" / "descriptions.json").read_text())
    assert main([*base[:-1], "5", "--out", str(tmp_path / "captions"), "--prompt", "caption"]) == 0
    captions = [json.loads(line) for line in (tmp_path / "captions" / "responses.jsonl").read_text().splitlines()]
    assert descriptions == {row["pid"]: row["response"].strip() for row in captions}
    assert len(set(descriptions.values())) > 1  # the images' own descriptions, not one text for all


def test_eval_describe_and_respond_needs_both_templates(tiny_model_dir, tmp_path, capsys):
    data = write_problems(generate_mixed(["count"], 1, level=1, seed=5, split="eval"), tmp_path / "h.jsonl")
    base = ["eval", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(tmp_path / "o")]
    assert main([*base, "--describe-prompt", "caption"]) == 2
    assert "the answering template 'reason' does not use $description" in capsys.readouterr().err
    assert main([*base, "--prompt", "reason_with_description"]) == 2
    assert "give --describe-prompt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before any generation
