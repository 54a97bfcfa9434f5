"""`reasoner score mathvista` and `score_responses` on the real testmini problems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reasoner.benchmarks.mathvista import score_predictions_file, score_responses
from reasoner.benchmarks.scoring import read_predictions
from reasoner.cli import main
from reasoner.data.records.problem import Problem
from reasoner.data.sets.sources import load_mathvista
from reasoner.errors import ReasonerError

REPO = Path(__file__).resolve().parents[2]
LETTERS = "ABCDEFGHIJ"


@pytest.fixture(scope="module")
def problems(mathvista_dir):
    return load_mathvista(mathvista_dir)


def write_predictions(path: Path, rows: list[dict] | list[str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_cli(predictions: Path, data: Path, out: Path, *extra: str) -> int:
    argv = ["score", "mathvista", "--predictions", str(predictions), "--data", str(data), "--out", str(out)]
    return main([*argv, *extra])


def letter_of(problem) -> str:
    return LETTERS[problem.choices.index(problem.answer)]


def test_gold_answers_score_1000_via_cli(problems, mathvista_dir, tmp_path, capsys) -> None:
    predictions = write_predictions(
        tmp_path / "p.jsonl", [{"pid": p.id, "response": p.answer} for p in problems]
    )
    assert run_cli(predictions, mathvista_dir, tmp_path / "out") == 0
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    items = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    assert (scores["benchmark"], scores["n"], scores["correct"], scores["accuracy"]) == (
        "mathvista_testmini", 1000, 1000, 100.0,
    )  # fmt: skip
    assert [item["pid"] for item in items] == [p.id for p in problems]
    assert all(
        item["correct"] and item["prediction"] == p.answer for item, p in zip(items, problems, strict=True)
    )
    assert {"pid", "extraction", "prediction", "correct"} <= set(items[0])
    console = capsys.readouterr().out
    assert "accuracy 100.00%" in console and "geometry problem solving" in console and "skills" in console
    assert not list((tmp_path / "out").glob(".*tmp*"))  # atomic writes leave no temporary files


def test_breakdown_counts_match_mathvista(problems) -> None:
    scores, _ = score_responses(problems, {p.id: p.answer for p in problems})
    counts = {field: {k: v["n"] for k, v in groups.items()} for field, groups in scores["breakdown"].items()}
    assert counts["task"] == {
        "figure question answering": 269, "geometry problem solving": 208, "math word problem": 186,
        "visual question answering": 179, "textbook question answering": 158,
    }  # fmt: skip
    assert counts["question_type"] == {"multi_choice": 540, "free_form": 460}
    assert counts["answer_type"] == {"text": 540, "integer": 418, "float": 40, "list": 2}
    assert counts["category"] == {"math-targeted-vqa": 540, "general-vqa": 460}
    assert counts["language"] == {"english": 936, "chinese": 62, "persian": 2}
    assert (
        sum(counts["grade"].values())
        == sum(counts["context"].values())
        == sum(counts["source"].values())
        == 1000
    )
    # skills are multi-label: an item counts toward each of its skills
    assert counts["skills"]["arithmetic reasoning"] == 353 and counts["skills"]["logical reasoning"] == 37
    assert sum(counts["skills"].values()) == sum(len(p.metadata["skills"]) for p in problems) > 1000


def test_letter_and_answer_tag_responses_score_1000(problems) -> None:
    def response(problem) -> str:
        if problem.is_multiple_choice:
            return f"Looking at the figure, the answer is ({letter_of(problem)})."
        return f"<think>Reading the image carefully.</think>\nThe answer is {problem.answer}.\n<answer>{problem.answer}</answer>"

    scores, items = score_responses(problems, {p.id: response(p) for p in problems})
    wrong = [(item["pid"], item["extraction"], item["prediction"]) for item in items if not item["correct"]]
    assert wrong == []
    assert scores["accuracy"] == 100.0
    # pid 168's choices are literally "(a)".."(e)": the letter (E) must map to the 5th choice "(b)", the gold
    assert next(item for item in items if item["pid"] == "168")["prediction"] == "(b)"


def test_missing_empty_and_wrong_responses_count_wrong(problems, mathvista_dir, tmp_path, capsys) -> None:
    free = [p for p in problems if p.answer_type == "integer"]
    correct, wrong, empty = free[:100], free[100:150], free[150:160]
    rows = [{"pid": p.id, "response": p.answer} for p in correct]
    rows += [{"pid": p.id, "response": f"The answer is {int(p.answer) + 1}."} for p in wrong]
    rows += [{"pid": p.id, "response": "  "} for p in empty[:5]]
    rows += [{"pid": p.id, "response": None} for p in empty[5:]]  # null counts as empty
    predictions = write_predictions(tmp_path / "p.jsonl", rows)
    scores = score_predictions_file(predictions, mathvista_dir, tmp_path / "out")
    # the denominator is all 1000 problems, not the 160 answered
    assert (scores["n"], scores["correct"], scores["accuracy"]) == (1000, 100, 10.0)
    assert scores["missing"] == 1000 - 160 and len(scores["missing_pids"]) == 840
    assert scores["empty"] == 10
    assert scores["breakdown"]["answer_type"]["integer"] == {"n": 418, "correct": 100, "accuracy": 23.92}
    items = {json.loads(line)["pid"]: json.loads(line) for line in (tmp_path / "out" / "items.jsonl").open()}
    assert len(items) == 1000
    assert items[problems[0].id]["reason"] == "missing" and not items[problems[0].id]["correct"]
    assert items[empty[0].id]["reason"] == "empty"
    assert items[wrong[0].id]["prediction"] == str(int(wrong[0].answer) + 1)
    assert run_cli(predictions, mathvista_dir, tmp_path / "out2") == 0
    assert "missing 840" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"pid": "1", "response": "1.2"}', '{"pid": "2", "response": '], r"p\.jsonl: line 2: not valid JSON"),
        (['{"pid": "1", "response": "a"}', "", '["1", "a"]'], "line 3: expected a JSON object"),
        (['{"pid": "1"}'], "line 1: key 'response' is missing"),
        (['{"pid": "1", "response": 3}'], "line 1: 'response' must be a string or null"),
        (['{"pid": "7", "response": "a"}', '{"pid": "8", "response": "b"}', '{"pid": 7, "response": "c"}'],
         r"1 duplicate pid\(s\): '7' \(lines 1 and 3\)"),
        ([""], "no predictions"),
    ],
)  # fmt: skip
def test_bad_predictions_file(tmp_path, lines, message) -> None:
    path = write_predictions(tmp_path / "p.jsonl", lines)
    with pytest.raises(ReasonerError, match=message):
        read_predictions(path)


def test_unknown_pids_rejected_naming_them(problems, tmp_path) -> None:
    responses = {p.id: p.answer for p in problems[:10]} | {f"x{i}": "1" for i in range(7)}
    with pytest.raises(
        ReasonerError, match=r"7 pid\(s\) are not in the 1000 benchmark problems \(e\.g\. 'x0'"
    ):
        score_responses(problems, responses, where="p.jsonl")


def test_missing_or_unreadable_data_dir(tmp_path) -> None:
    predictions = write_predictions(tmp_path / "p.jsonl", ['{"pid": "1", "response": "1.2"}'])
    with pytest.raises(ReasonerError, match="data folder not found"):
        score_predictions_file(predictions, tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReasonerError, match="expected testmini.json"):
        score_predictions_file(predictions, tmp_path / "empty", tmp_path / "out")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "testmini.json").write_text('{"1": {', encoding="utf-8")
    with pytest.raises(ReasonerError, match="cannot read JSON"):
        score_predictions_file(predictions, tmp_path / "broken", tmp_path / "out")
    with pytest.raises(ReasonerError, match="predictions file not found"):
        score_predictions_file(tmp_path / "none.jsonl", tmp_path / "broken", tmp_path / "out")


def test_cli_subprocess_exit_codes_and_no_traceback(problems, mathvista_dir, tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    good = write_predictions(tmp_path / "good.jsonl", [{"pid": p.id, "response": p.answer} for p in problems])
    bad = write_predictions(tmp_path / "bad.jsonl", ['{"pid": "1", "response": "1.2"}', "{oops"])
    command = [sys.executable, "-m", "reasoner.cli", "score", "mathvista", "--data", str(mathvista_dir)]
    ok = subprocess.run([*command, "--predictions", str(good), "--out", str(tmp_path / "o")],
                        capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "accuracy 100.00%" in ok.stdout and (tmp_path / "o" / "scores.json").is_file()
    failed = subprocess.run([*command, "--predictions", str(bad), "--out", str(tmp_path / "o2")],
                            capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert failed.returncode == 2
    assert "bad.jsonl: line 2: not valid JSON" in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "o2").exists()


def test_other_problem_sets_with_own_fields_and_expression_answers() -> None:
    problems = [
        Problem(id="a", question="2+3?", answer="5", answer_type="integer", metadata={"task": "add", "level": 1}),
        Problem(id="b", question="x?", answer="2\\sqrt{3}", answer_type="expression", metadata={"task": "geo"}),
        Problem(id="c", question="Which?", answer="red", answer_type="text", choices=["blue", "red"],
                metadata={"task": "color", "level": 2}),
    ]  # fmt: skip
    responses = {"a": "<answer>5</answer>", "b": "The answer is 2\\sqrt{3}.", "c": "<answer>A</answer>"}
    scores, items = score_responses(problems, responses, benchmark="synthetic", fields=("task", "level"))
    assert [item["correct"] for item in items] == [True, True, False]
    assert (scores["benchmark"], scores["n"], scores["accuracy"]) == ("synthetic", 3, 66.67)
    assert scores["breakdown"]["level"] == {
        "1": {"n": 1, "correct": 1, "accuracy": 100.0},
        "2": {"n": 1, "correct": 0, "accuracy": 0.0},
    }
    assert set(scores["breakdown"]) == {"task", "level"}


def test_refusal_policy_and_counts_in_scores_json(problems, mathvista_dir, tmp_path, capsys) -> None:
    """A refusal to a multiple-choice item lands on a choice under `official` (the default) and is wrong under
    `strict`; either way scores.json counts it, and counts free-form answers with nothing readable."""
    choice_item = next(p for p in problems if p.choices)
    number_item = next(p for p in problems if p.answer_type == "integer")
    rows = [
        {"pid": choice_item.id, "response": "Sorry, I cannot determine the answer without a clearer image."},
        {"pid": number_item.id, "response": "The plot has several colored lines and a legend on the right."},
    ]
    predictions = write_predictions(tmp_path / "p.jsonl", rows)
    counts = {}
    for policy in ("official", "strict"):
        extra = () if policy == "official" else ("--refusals", "strict")
        assert run_cli(predictions, mathvista_dir, tmp_path / policy, *extra) == 0
        scores = json.loads((tmp_path / policy / "scores.json").read_text())
        items = {i["pid"]: i for i in map(json.loads, (tmp_path / policy / "items.jsonl").read_text().splitlines())}
        counts[policy] = (scores["refusal_policy"], scores["refusals"], scores["no_answer"])
        assert items[choice_item.id]["mapping"] == "refusal"
        landed = items[choice_item.id]["prediction"]
        assert (landed in choice_item.choices) if policy == "official" else landed is None
        assert f"refusals 1 (policy {policy})" in capsys.readouterr().out
    assert counts == {"official": ("official", 1, 1), "strict": ("strict", 1, 1)}
    with pytest.raises(ReasonerError, match="refusal policy"):
        score_responses(problems, {}, refusals="never")
