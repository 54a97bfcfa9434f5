"""`reasoner score mathvision` on the real testmini: every gold answer in our forms scores 304/304, with the
official breakdowns by level and subject; missing and unknown ids are handled as for MathVista."""

from __future__ import annotations

import json

import pytest

from reasoner import cli
from reasoner.benchmarks.mathvision import gold_sides, score_responses
from reasoner.errors import ReasonerError

FORMS = {
    "bare": "{}",
    "tagged": "<think>Look at the figure.</think>\nSo it is {0}.\n<answer>{0}</answer>",
    "boxed": "Putting it together, the answer is $\\boxed{{{}}}$.",
}


def predictions(problems, form: str) -> list[dict]:
    return [{"pid": p.id, "response": FORMS[form].format(gold_sides(p)[0])} for p in problems]


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_gold_answer_scores_in_every_form(mathvision_dir, mathvision_problems, tmp_path, form, capsys):
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in predictions(mathvision_problems, form)))
    out = tmp_path / "out"
    argv = [
        "score",
        "mathvision",
        "--predictions",
        str(path),
        "--data",
        str(mathvision_dir),
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    assert "mathvision_testmini: accuracy 100.00% (304/304" in capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    assert (scores["correct"], scores["n"]) == (304, 304)
    assert len(scores["breakdown"]["level"]) == 5 and len(scores["breakdown"]["subject"]) == 16
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert len(items) == 304 and all(item["correct"] for item in items)
    assert {item["rule"] for item in items} == {"answer_tag" if form == "tagged" else "official"}


def test_wrong_missing_and_empty_responses_count_against_all_problems(mathvision_problems):
    responses = {p.id: FORMS["tagged"].format(gold_sides(p)[0]) for p in mathvision_problems[:100]}
    first, second, third = mathvision_problems[:3]
    responses[first.id] = ""
    responses[second.id] = "<answer>99999</answer>"
    del responses[third.id]
    scores, items = score_responses(mathvision_problems, responses)
    assert scores["correct"] == 97 and scores["accuracy"] == round(9700 / 304, 2)
    assert scores["missing"] == 205 and scores["empty"] == 1 and third.id in scores["missing_pids"]
    assert items[1]["reason"] == "mismatch" and items[1]["extraction"] == "99999"
    level_total = sum(group["n"] for group in scores["breakdown"]["level"].values())
    assert level_total == 304


def test_unknown_ids_are_rejected(mathvision_problems):
    with pytest.raises(ReasonerError, match="1 pid\\(s\\) are not in the 304 benchmark problems"):
        score_responses(mathvision_problems, {"no-such-id": "B"})
