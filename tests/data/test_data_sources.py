"""MathVista (official json and hub parquet), Geometry3K and generic importers, and `reasoner data import`."""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from reasoner import cli
from reasoner.data.records.files import read_problems
from reasoner.data.records.problem import Problem
from reasoner.data.sets.sources import (
    has_images,
    infer_answer_type,
    load_generic,
    load_geometry3k,
    load_mathvista,
    parse_mapping,
)
from reasoner.data.worlds import generate
from reasoner.errors import ReasonerError

PLACEHOLDER_SCALE = 16  # placeholder images are img_width x img_height divided by this


def _png(width: int, height: int, colour: tuple[int, int, int] = (90, 90, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (max(1, width), max(1, height)), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def mathvista_official(mathvista_dir: Path) -> list[Problem]:
    return load_mathvista(mathvista_dir)


@pytest.fixture(scope="session")
def mathvista_parquet_dir(mathvista_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hub parquet export layout, written from the real records with rendered placeholder images."""
    records = json.loads((mathvista_dir / "testmini.json").read_text())
    queries = json.loads((mathvista_dir / "testmini_query.json").read_text())
    rows = []
    for pid, r in records.items():
        meta = r["metadata"]
        png = _png(meta["img_width"] // PLACEHOLDER_SCALE, meta["img_height"] // PLACEHOLDER_SCALE)
        rows.append({
            "pid": pid, "question": r["question"], "image": r["image"],
            "decoded_image": {"bytes": png, "path": None}, "choices": r["choices"], "unit": r["unit"],
            "precision": None if r["precision"] is None else float(r["precision"]), "answer": r["answer"],
            "question_type": r["question_type"], "answer_type": r["answer_type"], "metadata": meta,
            "query": queries[pid],
        })  # fmt: skip
    folder = tmp_path_factory.mktemp("mathvista_hub")
    pq.write_table(pa.Table.from_pylist(rows), folder / "testmini-00000-of-00001-abc.parquet")
    return folder


def test_official_json_matches_the_published_statistics(mathvista_official: list[Problem]) -> None:
    problems = mathvista_official
    assert len(problems) == 1000
    assert Counter(p.answer_type for p in problems) == {"text": 540, "integer": 418, "float": 40, "list": 2}
    assert Counter(p.precision for p in problems if p.answer_type == "float") == {1: 20, 2: 20}
    assert all(type(p.precision) is int for p in problems if p.precision is not None)
    assert Counter(p.metadata["task"] for p in problems)["figure question answering"] == 269
    assert all(p.answer in p.choices for p in problems if p.answer_type == "text")
    first = problems[0]
    assert first.id == "1" and first.answer == "1.2" and first.metadata["question_type"] == "free_form"
    assert first.metadata["query"].startswith("Hint: Please answer the question requiring a floating-point")
    assert {"skills", "grade", "context", "source", "category", "language"} <= set(first.metadata)
    assert [p.id for p in problems if p.answer_type == "list"] == ["225", "506"]


def test_missing_image_folder_fails_clearly(mathvista_dir: Path, mathvista_official: list[Problem]) -> None:
    assert not has_images(mathvista_official)
    problem = next(p for p in mathvista_official if p.id == "42")
    with pytest.raises(ReasonerError) as err:
        problem.load_images()
    assert str(err.value) == f"problem 42: image {mathvista_dir}/images/42.jpg is missing"


def test_hub_parquet_gives_the_same_problems(
    mathvista_official: list[Problem], mathvista_parquet_dir: Path
) -> None:
    from_parquet = load_mathvista(mathvista_parquet_dir)
    assert [replace(p, images=[]) for p in from_parquet] == [
        replace(p, images=[]) for p in mathvista_official
    ]
    assert has_images(from_parquet)
    by_id = {p.id: p for p in from_parquet}
    image = by_id["1"].load_images()[0]
    assert image.size == (1514 // PLACEHOLDER_SCALE, 720 // PLACEHOLDER_SCALE)
    assert load_mathvista(mathvista_parquet_dir, limit=7) == from_parquet[:7]


def test_mathvista_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ReasonerError, match=rf"MathVista data folder {tmp_path}/absent not found"):
        load_mathvista(tmp_path / "absent")
    with pytest.raises(
        ReasonerError, match=r"no MathVista data for split 'testmini': expected testmini.json"
    ):
        load_mathvista(tmp_path)
    (tmp_path / "testmini.json").write_text("{broken")
    with pytest.raises(ReasonerError, match=r"testmini.json: cannot read JSON"):
        load_mathvista(tmp_path)


def test_geometry3k_hub_parquet(tmp_path: Path) -> None:
    rows = [
        {"images": [{"bytes": _png(60, 40), "path": "0.png"}], "problem": "<image>Find x.", "answer": "3"},
        {"images": [{"bytes": _png(30, 30), "path": None}], "problem": "<image>Find y. Round to the nearest tenth.",
         "answer": "7.5"},
        {"images": [{"bytes": _png(30, 30), "path": None}], "problem": "<image>Find z.", "answer": "2\\sqrt{3}"},
    ]  # fmt: skip
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "train-00000-of-00001.parquet")
    problems = load_geometry3k(tmp_path)
    assert [(p.id, p.question, p.answer_type, p.precision) for p in problems] == [
        ("geometry3k-train-0", "Find x.", "integer", None),
        ("geometry3k-train-1", "Find y. Round to the nearest tenth.", "float", 1),
        ("geometry3k-train-2", "Find z.", "expression", None),
    ]
    assert problems[0].load_images()[0].size == (60, 40)
    assert problems[0].metadata == {"source": "Geometry3K", "split": "train", "index": 0}


def test_generic_importer_maps_columns(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (40, 20), "white").save(tmp_path / "pics" / "q1.png")
    rows = [
        {
            "uid": 11,
            "problem": "Which?",
            "solution": "B",
            "options": ["cat", "dog"],
            "img": "q1.png",
            "grade": 3,
        },
        {"uid": 12, "problem": "How many?", "solution": 4, "img": "q1.png", "grade": 5},
        {"uid": 13, "problem": "How long?", "solution": "2.25", "img": "q1.png", "grade": 5},
    ]
    source = tmp_path / "set.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = parse_mapping(["id=uid", "question=problem", "answer=solution", "choices=options", "image=img"])
    problems = load_generic(source, mapping, image_dir=tmp_path / "pics")
    assert [(p.id, p.answer, p.answer_type, p.precision) for p in problems] == [
        ("11", "dog", "text", None), ("12", "4", "integer", None), ("13", "2.25", "float", 2),
    ]  # fmt: skip
    assert problems[0].metadata == {"grade": 3}
    assert problems[0].load_images()[0].size == (40, 20)


def test_generic_importer_errors(tmp_path: Path) -> None:
    with pytest.raises(ReasonerError, match=r"unknown field 'solution'; allowed: id, question"):
        parse_mapping(["solution=answer"])
    with pytest.raises(ReasonerError, match=r"expected FIELD=COLUMN"):
        parse_mapping(["question"])
    source = tmp_path / "set.json"
    source.write_text(json.dumps({"a": {"problem": "q", "answer": "1"}}))
    with pytest.raises(
        ReasonerError,
        match=r"set.json: column 'text' \(mapped to question\) not found; columns: \['answer', 'id', 'problem'\]",
    ):
        load_generic(source, {"question": "text"})
    with pytest.raises(ReasonerError, match=r"row 1: field 'question' is missing \(map it with --map"):
        load_generic(source, {})
    assert load_generic(source, {"question": "problem"})[0].id == "a"


def test_infer_answer_type() -> None:
    assert infer_answer_type("12") == ("integer", None)
    assert infer_answer_type("-0.125") == ("float", 3)
    assert infer_answer_type("[1, 2]") == ("list", None)
    assert infer_answer_type("x^2") == ("expression", None)
    assert infer_answer_type("dog", ["cat", "dog"]) == ("text", None)


def test_cli_import_mathvista(
    mathvista_dir: Path, mathvista_official: list[Problem], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "mv.parquet"
    assert (
        cli.main(["data", "import", "--format", "mathvista", str(mathvista_dir), str(out), "--limit", "20"])
        == 0
    )
    assert "wrote 20 mathvista problems" in capsys.readouterr().out
    loaded = read_problems(out)
    assert [replace(p, images=[]) for p in loaded] == [replace(p, images=[]) for p in mathvista_official[:20]]
    # the relative image path now points at the data folder, from wherever the output lives
    assert loaded[0].images[0].resolved_path().resolve() == (mathvista_dir / "images" / "1.jpg").resolve()


def test_cli_import_generic_and_errors(tmp_path: Path, capsys) -> None:
    source = tmp_path / "src.parquet"
    problems = generate("count", 3, level=1, seed=0)
    rows = [{"q": p.question, "a": p.answer, "pic": p.images[0].data} for p in problems]
    pq.write_table(pa.Table.from_pylist(rows), source)
    out = tmp_path / "out.jsonl"
    argv = [
        "data",
        "import",
        "--format",
        "generic",
        str(source),
        str(out),
        "--map",
        "question=q",
        "--map",
        "answer=a",
    ]
    assert cli.main([*argv, "--map", "image=pic"]) == 0
    loaded = read_problems(out)
    assert [p.images[0].data for p in loaded] == [p.images[0].data for p in problems]
    assert cli.main(["data", "import", "--format", "mathvista", str(tmp_path / "none"), str(out)]) == 2
    assert "MathVista data folder" in capsys.readouterr().err
