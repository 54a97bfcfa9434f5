"""Importers of the released TabMWP and MATH-Vision files (../shared/data), through the API and the CLI."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from reasoner import cli
from reasoner.data.records.files import read_problems
from reasoner.data.sets.importers import load_mathvision, load_tabmwp
from reasoner.data.stage.dedupe import record_path
from reasoner.errors import ReasonerError


def released_tabmwp(tabmwp_dir) -> dict:
    rows = {}
    for path in sorted(tabmwp_dir.glob("problems_*.json")):
        rows.update(json.loads(path.read_text(encoding="utf-8")))
    return rows


def test_tabmwp_fields_map_onto_our_records(tabmwp_dir, tabmwp_problems):
    released = released_tabmwp(tabmwp_dir)
    assert len(tabmwp_problems) == len(released) == 2000
    for problem in tabmwp_problems:
        row = released[problem.metadata["tabmwp_id"]]
        assert problem.id == f"tabmwp-{problem.metadata['tabmwp_id']}"
        assert problem.answer == row["answer"] and problem.question == row["question"]
        assert problem.reasoning == row["solution"] and problem.caption.endswith(row["table"])
        assert (problem.choices or None) == (row["choices"] or None)
        assert problem.unit == (row["unit"] or None)
        assert (
            problem.images[0].resolved_path()
            == tabmwp_dir / "tables" / f"{problem.metadata['tabmwp_id']}.png"
        )
    by_answer = {p.answer: p for p in tabmwp_problems if not p.choices}
    assert (by_answer["23,520"].answer_type, by_answer["8.20"].answer_type) == ("integer", "float")
    assert by_answer["8.20"].precision == 2 and by_answer["5/18"].answer_type == "expression"
    titled = next(p for p in tabmwp_problems if released[p.metadata["tabmwp_id"]]["table_title"])
    assert titled.caption.startswith(released[titled.metadata["tabmwp_id"]]["table_title"] + "\n")


def test_tabmwp_images_are_real_and_varied(tabmwp_problems):
    sizes = {p.load_images()[0].size for p in tabmwp_problems[:200]}
    ratios = [w / h for w, h in sizes]
    assert len(sizes) > 50 and min(ratios) < 1 < max(ratios)


def test_mathvision_letters_become_option_texts(mathvision_dir, mathvision_problems):
    released = [json.loads(line) for line in (mathvision_dir / "testmini.jsonl").read_text().splitlines()]
    assert len(mathvision_problems) == len(released) == 304
    kinds = Counter()
    for problem, row in zip(mathvision_problems, released, strict=True):
        assert problem.id == row["id"] and problem.metadata["level"] == row["level"]
        assert problem.metadata["subject"] == row["subject"] and problem.images[0].is_available()
        if row["options"]:
            letter = row["answer"]
            assert problem.metadata["answer_letter"] == letter and problem.answer_type == "text"
            assert problem.answer == row["options"]["ABCDE".index(letter)]
            kinds["letters" if row["options"] == list("ABCDE") else "texts"] += 1
        else:
            assert problem.answer == row["answer"] and problem.choices is None
            kinds["free"] += 1
    assert kinds["texts"] > 100 and kinds["letters"] > 50 and kinds["free"] == 114
    text_options = next(p for p in mathvision_problems if p.choices and p.choices != list("ABCDE"))
    assert text_options.answer not in "ABCDE"


def test_cli_imports_tabmwp_deduped_and_decontaminated(
    tabmwp_dir, mathvista_dir, mathvision_dir, tmp_path, capsys
):
    out = tmp_path / "tabmwp.jsonl"
    argv = [
        "data",
        "import",
        str(tabmwp_dir),
        str(out),
        "--format",
        "tabmwp",
        "--dedupe",
        "--exclude-mathvista",
        str(mathvista_dir),
        "--exclude-mathvision",
        str(mathvision_dir),
    ]
    assert cli.main(argv) == 0
    assert "0 duplicates and 10 mathvista overlaps, 0 mathvision overlaps" in capsys.readouterr().out
    problems = read_problems(out)
    record = json.loads(record_path(out).read_text())
    assert len(problems) == record["written"] == 1990
    assert [o["benchmark"] for o in record["overlap"]] == ["mathvista", "mathvision"]
    assert all(p.images_available() for p in problems[:50])  # paths made absolute: the file lives elsewhere


def test_cli_imports_mathvision_one_split(mathvision_dir, tmp_path):
    out = tmp_path / "mathvision.parquet"
    assert (
        cli.main(["data", "import", str(mathvision_dir), str(out), "--format", "mathvision", "--limit", "20"])
        == 0
    )
    problems = read_problems(out)
    assert len(problems) == 20 and problems[0].load_images()[0].size[0] > 0


def test_a_missing_table_image_names_the_problem(tabmwp_dir, tmp_path):
    released = released_tabmwp(tabmwp_dir)
    ids = list(released)[:3]
    (tmp_path / "tables").mkdir()
    for pid in ids[:2]:
        shutil.copy(tabmwp_dir / "tables" / f"{pid}.png", tmp_path / "tables")
    (tmp_path / "problems_dev1k.json").write_text(json.dumps({pid: released[pid] for pid in ids}))
    with pytest.raises(ReasonerError, match=f"1 image.*tabmwp-{ids[2]}"):
        load_tabmwp(tmp_path)
    assert len(load_tabmwp(tmp_path, limit=2)) == 2


def test_a_mathvision_answer_that_is_no_option_letter_is_rejected(mathvision_dir, tmp_path):
    row = json.loads((mathvision_dir / "testmini.jsonl").read_text().splitlines()[2])  # multiple choice
    row.update(answer="F", image=str(mathvision_dir / row["image"]))
    (tmp_path / "testmini.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ReasonerError, match="line 1: field 'answer' 'F' is not an option letter"):
        load_mathvision(tmp_path)
