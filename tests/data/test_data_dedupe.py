"""Import deduplication and MathVista testmini decontamination (question text, and image bytes when present)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from reasoner import cli
from reasoner.data.records.files import read_problems
from reasoner.data.records.problem import ImageRef, Problem
from reasoner.data.stage.dedupe import (
    BenchmarkIndex,
    deduplicate,
    mathvista_index,
    normalize_question,
    record_path,
)
from reasoner.data.worlds import generate

# A testmini question that recurs (44 times): too generic to count as an overlap without the image.
GENERIC = "What is the age gap between these two people in image?"


def _testmini(mathvista_dir: Path) -> dict:
    return json.loads((mathvista_dir / "testmini.json").read_text(encoding="utf-8"))


def _row(problem: Problem, question: str | None = None) -> dict:
    return {
        "question": question or problem.question,
        "answer": problem.answer,
        "choices": problem.choices,
        "image": problem.images[0].data,
    }


def test_normalised_questions_and_duplicates() -> None:
    assert normalize_question("  What is  the VALUE of x?\r\n") == normalize_question(
        "what is the value of x"
    )
    assert normalize_question("Ｆｉｎｄ　ｘ．") == "find x"
    a, b = generate("count", 2, level=2, seed=9)
    same = Problem(**{**a.__dict__, "id": "copy", "question": a.question.upper() + "  "})
    other_image = Problem(
        **{**a.__dict__, "id": "other-image", "images": generate("digits", 1, seed=9)[0].images}
    )
    other_choices = Problem(
        **{**a.__dict__, "id": "other-choices", "choices": ["1", "2"], "answer": "1", "answer_type": "text"}
    )
    kept, dropped = deduplicate([a, b, same, other_image, other_choices])
    assert [p.id for p in kept] == [a.id, b.id, "other-image", "other-choices"]
    assert [(d.id, d.reason, d.match) for d in dropped] == [("copy", "duplicate", a.id)]


def test_import_drops_planted_testmini_questions_and_duplicates(
    mathvista_dir: Path, tmp_path: Path, capsys
) -> None:
    index = mathvista_index(mathvista_dir)
    testmini = _testmini(mathvista_dir)
    assert index.problems == 1000 and index.images == {}  # the shared copy has no images
    planted = [pid for pid, r in testmini.items() if normalize_question(r["question"]) in index.questions][:3]
    assert normalize_question(GENERIC) not in index.questions
    honest = generate("digits", 6, level=2, seed=1)
    rows = [_row(p) for p in honest]
    rows += [
        _row(honest[0], testmini[planted[0]]["question"]),
        _row(honest[1], testmini[planted[1]]["question"].upper().replace(" ", "  ")),
        _row(honest[2], "  " + testmini[planted[2]]["question"] + " "),
        _row(honest[3], GENERIC),
        _row(honest[4]),
        _row(honest[5]),
    ]  # the last two repeat rows 4 and 5
    source = tmp_path / "seed.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)
    out = tmp_path / "train.parquet"
    argv = ["data", "import", "--format", "generic", str(source), str(out), "--map", "images=image"]
    assert cli.main([*argv, "--dedupe", "--exclude-mathvista", str(mathvista_dir)]) == 0
    assert "dropped 2 duplicates and 3 mathvista overlaps" in capsys.readouterr().out
    kept = read_problems(out)
    assert [p.question for p in kept] == [p.question for p in honest] + [GENERIC]
    record = json.loads(record_path(out).read_text())
    assert record["sources"] == [{"path": str(source), "format": "generic", "loaded": 12}]
    assert record["written"] == 7 and record["dedupe"] == {"enabled": True, "duplicates": 2}
    [overlap] = record["overlap"]
    assert overlap["dropped"] == overlap["by_question"] == 3
    assert [(d["reason"], d["match"]) for d in record["dropped"]] == [
        ("duplicate", "seed-4"),
        ("duplicate", "seed-5"),
    ] + [("mathvista_question", pid) for pid in planted]
    # Without the options nothing is dropped, and the record says so.
    assert cli.main([*argv]) == 0
    assert len(read_problems(out)) == 12 and json.loads(record_path(out).read_text())["overlap"] == []


def test_image_overlap_is_found_when_the_mathvista_images_are_present(
    mathvista_dir: Path, tmp_path: Path
) -> None:
    testmini = _testmini(mathvista_dir)
    pids = ["1", "2", "3"]
    folder = tmp_path / "mathvista"
    (folder / "images").mkdir(parents=True)
    (folder / "testmini.json").write_text(json.dumps({pid: testmini[pid] for pid in pids}), encoding="utf-8")
    for i, pid in enumerate(pids):
        Image.new("RGB", (64 + i, 48), (40 * i, 90, 200)).save(folder / testmini[pid]["image"], format="JPEG")
    index = mathvista_index(folder)
    assert sorted(index.images.values()) == pids
    test_image = (folder / testmini["2"]["image"]).read_bytes()
    reused = Problem(
        id="reused",
        question="How many rows are there?",
        answer="3",
        answer_type="integer",
        images=[ImageRef(data=test_image)],
    )
    on_disk = Problem(
        id="on-disk",
        question="What colour is it?",
        answer="blue",
        answer_type="text",
        images=[ImageRef(path=str(folder / testmini["3"]["image"]))],
    )
    [fresh] = generate("count", 1, level=1, seed=2)
    assert [(d.id, d.reason, d.match) for d in map(index.match, (reused, on_disk))] == [
        ("reused", "mathvista_image", "2"),
        ("on-disk", "mathvista_image", "3"),
    ]
    assert index.match(fresh) is None
    # These placeholders are one colour each: no shape for a perceptual hash, so only their bytes can match (real
    # figures re-encoded, resized or cropped are found perceptually: tests/data/test_data_imagehash.py).
    re_encoded = io.BytesIO()
    Image.open(io.BytesIO(test_image)).save(re_encoded, format="PNG")
    assert (
        index.match(Problem(**{**reused.__dict__, "images": [ImageRef(data=re_encoded.getvalue())]})) is None
    )


def test_short_or_repeated_benchmark_questions_do_not_count_alone() -> None:
    image = generate("count", 1, level=1, seed=0)[0].images
    bench = [
        Problem(id=str(i), question=q, answer="1", answer_type="integer", images=image)
        for i, q in enumerate(
            [
                "Find x.",
                "Which bar holds the largest value in the chart?",
                "How many birds are on the wire in the photo?",
                "How many birds are on the wire in the photo?",
            ]
        )
    ]
    index = BenchmarkIndex.build("bench", bench)
    assert list(index.questions) == ["which bar holds the largest value in the chart"]
