"""ARO and What'sUp loaders on hand-written files in the released schemas, with real image files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from reasoner.cli import main
from reasoner.cli.data import PERCEPTION
from reasoner.data.records.files import read_problems
from reasoner.data.sets.perception_files import FORMATS, load_perception_file
from reasoner.errors import ReasonerError
from reasoner.eval.runner import score
from reasoner.prompts import LETTERS


def _image(path: Path, colour: str, size=(64, 48)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path.name


VG_RELATION = [
    {"image_path": "2316.jpg", "bbox_x": 4, "bbox_y": 2, "bbox_w": 40, "bbox_h": 30, "relation_name": "eating",
     "true_caption": "the horse is eating the grass", "false_caption": "the grass is eating the horse"},
    {"image_path": "2317.jpg", "bbox_x": 0, "bbox_y": 0, "bbox_w": 64, "bbox_h": 48, "relation_name": "on",
     "true_caption": "the cup is on the table", "false_caption": "the table is on the cup"},
    {"image_path": "2318.jpg", "bbox_x": 10, "bbox_y": 5, "bbox_w": 20, "bbox_h": 20, "relation_name": "under",
     "true_caption": "the cat is under the chair", "false_caption": "the chair is under the cat"},
]  # fmt: skip
VG_ATTRIBUTION = [
    {"image_path": "2316.jpg", "bbox_x": 1, "bbox_y": 1, "bbox_w": 30, "bbox_h": 30, "attributes": ["paved", "white"],
     "true_caption": "the paved road and the white house", "false_caption": "the white road and the paved house"},
    {"image_path": "2317.jpg", "bbox_x": 0, "bbox_y": 0, "bbox_w": 10, "bbox_h": 10, "attributes": ["red", "wooden"],
     "true_caption": "the red bus and the wooden bench", "false_caption": "the wooden bus and the red bench"},
]  # fmt: skip
KARPATHY = [
    {"image": "val2014/COCO_val2014_000000391895.jpg", "image_id": "391895",
     "caption": ["A man with a red helmet on a small moped on a dirt road.",
                 "Man riding a motor bike on a dirt road on the countryside."]},
]  # fmt: skip
CONTROLLED = [
    {"image_path": "data/controlled_images/mug_on_table.jpeg",
     "caption_options": ["A mug on a table", "A mug under a table", "A mug to the left of a table",
                         "A mug to the right of a table"]},
    {"image_path": "data/controlled_images/mug_under_table.jpeg",
     "caption_options": ["A mug under a table", "A mug on a table", "A mug to the left of a table",
                         "A mug to the right of a table"]},
]  # fmt: skip
QA_PAIRS = [[397133, "A dog to the left of a cat", "A dog to the right of a cat"],
            [37777, "A cup above a plate", "A cup below a plate"]]  # fmt: skip


@pytest.fixture()
def released(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """Each format's file in its published schema, and the image folder it needs."""
    aro = tmp_path / "aro"
    for name, colour in (("2316.jpg", "green"), ("2317.jpg", "brown"), ("2318.jpg", "grey")):
        _image(aro / "images" / name, colour)
    coco = tmp_path / "coco"
    _image(coco / "val2014" / "COCO_val2014_000000391895.jpg", "blue")
    whatsup = tmp_path / "whatsup"
    for row in CONTROLLED:
        _image(whatsup / "controlled_images" / Path(row["image_path"]).name, "white")
    _image(whatsup / "val2017" / "000000397133.jpg", "white")
    _image(whatsup / "val2017" / "000000037777.jpg", "black")
    files = {
        "aro-relation": (aro / "visual_genome_relation.json", VG_RELATION, aro / "images"),
        "aro-attribution": (aro / "visual_genome_attribution.json", VG_ATTRIBUTION, aro / "images"),
        "coco-order": (coco / "coco_karpathy_test.json", KARPATHY, coco),
        "flickr-order": (coco / "flickr30k_test.json", KARPATHY, coco),
        "whatsup": (whatsup / "controlled_images_dataset.json", CONTROLLED, whatsup / "controlled_images"),
        "whatsup-pairs": (whatsup / "coco_qa_two_obj.json", QA_PAIRS, whatsup / "val2017"),
    }
    for path, rows, _ in files.values():
        path.write_text(json.dumps(rows))
    return {fmt: (path, images) for fmt, (path, _, images) in files.items()}


def test_cli_lists_every_loader():
    assert set(PERCEPTION) == set(FORMATS)


@pytest.mark.parametrize(
    "fmt,family,n,options",
    [("aro-relation", "relation", 3, 2), ("aro-attribution", "attribution", 2, 2), ("coco-order", "order", 2, 5),
     ("flickr-order", "order", 2, 5), ("whatsup", "spatial", 2, 4), ("whatsup-pairs", "spatial", 2, 2)],
)  # fmt: skip
def test_gold_answers_score_100_and_a_fixed_letter_does_not(released, fmt, family, n, options):
    path, images = released[fmt]
    problems = load_perception_file(fmt, path, image_dir=images)
    assert len(problems) == n
    for p in problems:
        assert p.metadata["family"] == family and len(p.choices) == options
        assert p.metadata["chance"] == pytest.approx(1 / options)
        assert p.answer in p.choices and p.answer not in p.metadata["hard_negatives"]
        assert p.images[0].load().size[0] > 0
    gold = {p.id: f"<think>...</think>\nThe answer is.\n<answer>{p.answer_label()}</answer>" for p in problems}
    scores, _ = score(problems, gold, fmt)
    assert scores["accuracy"] == 100.0 and scores["breakdown"]["family"][family]["accuracy"] == 100.0
    assert scores["chance"][family] == pytest.approx(100 / options, abs=0.01)
    wrong = {p.id: f"<answer>{LETTERS[(p.choices.index(p.answer) + 1) % options]}</answer>" for p in problems}
    assert score(problems, wrong, fmt)[0]["accuracy"] == 0.0


def test_released_true_caption_position_is_not_kept(released, tmp_path):
    _, images = released["aro-relation"]
    many = tmp_path / "many.json"
    many.write_text(json.dumps(VG_RELATION * 8))
    problems = load_perception_file("aro-relation", many, image_dir=images)
    # ARO lists the true caption second; asked for a letter that position must not stay fixed.
    positions = [p.choices.index(p.answer) for p in problems]
    assert 6 <= positions.count(0) <= 18, positions
    assert problems[0].images[0].load().size == (40, 30)  # cropped to the item's bbox


def test_order_options_are_plain_and_distinct_shuffles(released):
    path, images = released["coco-order"]
    problem = load_perception_file("coco-order", path, image_dir=images)[0]
    assert problem.answer == "a man with a red helmet on a small moped on a dirt road"
    assert len(set(problem.choices)) == 5
    assert all(sorted(c.split()) == sorted(problem.answer.split()) for c in problem.choices)


def test_cli_import_writes_a_problems_file_that_scores(released, tmp_path, capsys):
    path, images = released["whatsup"]
    out = tmp_path / "whatsup.jsonl"
    assert main(["data", "import", str(path), str(out), "--format", "whatsup", "--image-dir", str(images)]) == 0
    problems = read_problems(out)
    assert len(problems) == 2 and all(p.images_available() for p in problems)
    gold = {p.id: p.answer_label() for p in problems}
    assert score(problems, gold, "whatsup")[0]["accuracy"] == 100.0


def test_missing_key_and_missing_image_are_named(released, tmp_path):
    path, images = released["aro-relation"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{k: v for k, v in VG_RELATION[0].items() if k != "false_caption"}]))
    with pytest.raises(ReasonerError, match="aro-relation item 0: key 'false_caption' is missing"):
        load_perception_file("aro-relation", broken, image_dir=images)
    with pytest.raises(ReasonerError, match="image not found"):
        load_perception_file("aro-relation", path, image_dir=tmp_path)
    with pytest.raises(ReasonerError, match="allowed: aro-relation"):
        load_perception_file("aro", path)
