"""Problem records: JSONL / parquet round trips, validation messages, image references."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from reasoner.data.records.files import (
    parquet_schema,
    read_jsonl,
    read_parquet,
    read_problems,
    write_jsonl,
    write_problems,
)
from reasoner.data.records.problem import ImageRef, Problem, missing_images
from reasoner.data.worlds import generate_mixed
from reasoner.errors import ReasonerError


@pytest.fixture(scope="module")
def synthetic() -> list[Problem]:
    return generate_mixed(["count", "digits", "bars"], 12, level=2, seed=5)


def _with_path_image(tmp_path: Path) -> Problem:
    (tmp_path / "img").mkdir(exist_ok=True)
    Image.new("RGB", (56, 28), (10, 200, 30)).save(tmp_path / "img" / "a.png")
    return Problem(
        id="p1",
        question="What colour?",
        answer="green",
        answer_type="text",
        choices=["red", "green"],
        unit="cm",
        precision=None,
        images=[ImageRef(path="img/a.png", base_dir=str(tmp_path))],
        metadata={"skills": ["a", "b"], "n": 3, "nested": {"x": 1.5}},
        caption="A green rectangle.",
        reasoning="It is green.",
    )


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_round_trip_is_exact(tmp_path: Path, synthetic: list[Problem], suffix: str) -> None:
    problems = synthetic + [_with_path_image(tmp_path)]
    path = write_problems(problems, tmp_path / f"set{suffix}")
    loaded = read_problems(path)
    assert loaded == problems
    assert [p.images[0].load().tobytes() for p in loaded] == [p.images[0].load().tobytes() for p in problems]
    # writing what was read gives the same bytes (nothing drifts across generations of files)
    again = write_problems(loaded, tmp_path / f"again{suffix}")
    assert read_problems(again) == problems
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_relative_image_path_follows_the_file(tmp_path: Path) -> None:
    problem = _with_path_image(tmp_path)
    out = tmp_path / "elsewhere" / "set.jsonl"
    write_jsonl([problem], out)
    row = json.loads(out.read_text().splitlines()[0])
    assert Path(row["images"][0]["path"]).is_absolute()
    loaded = read_jsonl(out)[0]
    assert loaded.images[0].load().size == (56, 28)
    beside = write_jsonl([problem], tmp_path / "beside.jsonl")
    assert json.loads(beside.read_text())["images"][0]["path"] == "img/a.png"
    assert read_jsonl(beside)[0].load_images()[0].getpixel((0, 0)) == (10, 200, 30)


def test_answer_label_is_the_option_letter(tmp_path: Path) -> None:
    problem = _with_path_image(tmp_path)
    assert problem.answer_label() == "B"
    problem.choices, problem.answer_type, problem.answer = None, "integer", "7"
    assert problem.answer_label() == "7"


def _write_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _row(**fields) -> dict:
    row = {"id": "a", "question": "q?", "answer": "3", "answer_type": "integer"}
    row.update(fields)
    return row


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            _row(id="b", answer_type="number"),
            ["line 2", "'answer_type'", "text, integer, float, list, expression"],
        ),
        ({"id": "b", "question": "q?", "answer_type": "integer"}, ["line 2", "'answer' is missing"]),
        (
            _row(id="b", choices=["1", "2"], answer_type="text"),
            ["line 2", "'answer'", "not one of the choices"],
        ),
        (_row(id="b", precision=1.5), ["line 2", "'precision'"]),
        (_row(id="b", images=[{"bytes": "not base64!"}]), ["line 2", "images[0]", "base64"]),
        (_row(id="b", images=[{}]), ["line 2", "images[0]", "neither bytes nor a path"]),
        (_row(id="b", colour="red"), ["line 2", "unknown field", "colour"]),
        (_row(id="a"), ["'id' 'a' appears twice", "records 1 and 2"]),
    ],
)
def test_jsonl_validation_names_file_line_and_field(tmp_path: Path, bad: dict, expected: list[str]) -> None:
    path = _write_lines(tmp_path / "bad.jsonl", [_row(), bad])
    with pytest.raises(ReasonerError) as err:
        read_jsonl(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_jsonl_rejects_broken_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(_row()) + "\n{not json\n")
    with pytest.raises(ReasonerError, match=r"broken.jsonl: line 2: not valid JSON"):
        read_jsonl(path)


def test_parquet_validation_names_row_and_field(tmp_path: Path) -> None:
    rows = [dict(_row(id=str(i)), metadata="{}") for i in range(3)]
    rows[2]["answer_type"] = "bool"
    full = [{name: row.get(name) for name in parquet_schema().names} for row in rows]
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(full, schema=parquet_schema()), path)
    with pytest.raises(ReasonerError) as err:
        read_parquet(path)
    assert f"{path}: row 3: field 'answer_type' is 'bool'; allowed: text, integer" in str(err.value)


def test_failed_write_leaves_no_file(tmp_path: Path, synthetic: list[Problem]) -> None:
    broken = Problem(id="x", question="q", answer="1", answer_type="integer", metadata={"bad": object()})
    for name in ("set.jsonl", "set.parquet"):
        with pytest.raises(ReasonerError, match="problem x: metadata is not JSON-serialisable"):
            write_problems([*synthetic, broken], tmp_path / name)
        assert not (tmp_path / name).exists()
    assert list(tmp_path.iterdir()) == []


def test_missing_and_corrupt_images_name_the_problem(tmp_path: Path) -> None:
    missing = Problem(
        id="mv-17", question="q", answer="1", answer_type="integer",
        images=[ImageRef(path="images/17.jpg", base_dir=str(tmp_path))],
    )  # fmt: skip
    assert missing_images([missing]) == ["mv-17"]
    with pytest.raises(ReasonerError, match=rf"problem mv-17: image {tmp_path}/images/17.jpg is missing"):
        missing.load_images()
    corrupt = Problem(
        id="c-1", question="q", answer="1", answer_type="integer", images=[ImageRef(data=b"xx")]
    )
    assert missing_images([corrupt]) == []
    with pytest.raises(ReasonerError, match=r"problem c-1: image \(2 embedded bytes\) cannot be decoded"):
        corrupt.images[0].load()


def bomb_png(width: int, height: int) -> bytes:
    """A few-hundred-byte PNG whose header claims width x height pixels (a decompression bomb to PIL)."""
    import io
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("1", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


def test_decompression_bomb_is_one_clear_error(tmp_path: Path) -> None:
    from reasoner.models.inputs import load_image

    data = bomb_png(30000, 30000)  # 900 M pixels: over twice PIL's MAX_IMAGE_PIXELS, which PIL refuses to open
    assert len(data) < 1000 and 900_000_000 > 2 * Image.MAX_IMAGE_PIXELS
    (tmp_path / "bomb.png").write_bytes(data)
    for ref in (ImageRef(data=data), ImageRef(path="bomb.png", base_dir=str(tmp_path))):
        bomb = Problem(id="b-1", question="q", answer="1", answer_type="integer", images=[ref])
        with pytest.raises(ReasonerError, match=r"problem b-1: image .* too large to decode safely .*900000000"):
            bomb.load_images()
    with pytest.raises(ReasonerError, match=r"request 3: image too large to decode safely"):
        load_image(data, "request 3")


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReasonerError, match=r"allowed: .jsonl, .parquet"):
        write_problems([], tmp_path / "x.csv")
    with pytest.raises(ReasonerError, match=r"nope.parquet: file not found"):
        read_problems(tmp_path / "nope.parquet")
