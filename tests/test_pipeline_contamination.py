"""The contamination guard end to end: a run whose training set is MathVista testmini, or overlaps the MathVista
set it evaluates on, stops with one line before any work; with `data.allow_overlap` it trains and report.md says
so in a visible line. Tiny model, one GRPO step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasoner.cli import main
from reasoner.data.records.files import write_problems
from reasoner.data.records.problem import ImageRef, Problem
from reasoner.data.worlds import generate

PIDS = ["1", "2", "3", "4"]
RUN = """
name: guard
model: {{path: {model}}}
datasets:
  train: {train}
  vista: {{source: mathvista, path: {vista}}}
  heldout: {{source: synthetic, n: 2, seed: 4, split: eval}}
eval: {{datasets: [heldout{evaluated}], max_new_tokens: 4, evaluate_base: false}}
stages:
  - kind: grpo
    data: {{dataset: train{allow}}}
    steps: 1
    grpo: {{prompts_per_step: 2, sampling: {{n: 2, max_new_tokens: 4}}}}
"""


@pytest.fixture(scope="module")
def vista(mathvista_dir: Path, tmp_path_factory) -> Path:
    """Four real testmini problems with pixels (rendered synthetic figures stand in for the hub's images)."""
    testmini = json.loads((mathvista_dir / "testmini.json").read_text(encoding="utf-8"))
    folder = tmp_path_factory.mktemp("mathvista")
    (folder / "images").mkdir()
    (folder / "testmini.json").write_text(json.dumps({pid: testmini[pid] for pid in PIDS}), encoding="utf-8")
    for pid, problem in zip(PIDS, generate("bars", 4, level=2, seed=8), strict=True):
        problem.images[0].load().save(folder / testmini[pid]["image"])
    return folder


def _config(tmp_path: Path, model: Path, vista: Path, train: str, *, evaluated=False, allow=False) -> Path:
    text = RUN.format(model=model, vista=vista, train=train, evaluated=", vista" if evaluated else "",
                      allow=", allow_overlap: true" if allow else "")  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def _one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


def test_mathvista_as_training_set_stops_and_allow_overlap_reports(vista, tiny_model_dir, tmp_path, capsys):
    train = f"{{source: mathvista, path: {vista}}}"
    config = _config(tmp_path, tiny_model_dir, vista, train)
    assert main(["run", str(config), f"output_dir={tmp_path}"]) == 2
    assert "'train' is mathvista, an evaluation-only set; never train on it" in _one_line_error(capsys)
    assert not (tmp_path / "guard" / "stages").exists()

    allowed = _config(tmp_path, tiny_model_dir, vista, train, allow=True)
    assert main(["run", str(allowed), f"output_dir={tmp_path}"]) == 0
    report = (tmp_path / "guard" / "report.md").read_text()
    assert ("> **Warning: trained on evaluation data.** stage grpo1: 4 of 4 training problems (dataset 'train') "
            f"overlap the evaluation set 'train' (mathvista {vista}), e.g. 1 ~ 1 (image), 2 ~ 2 (image)") in report
    assert (tmp_path / "guard" / "stages" / "01_grpo" / "manifest.json").is_file()


def test_a_training_file_overlapping_the_evaluated_mathvista_stops_before_any_work(
    vista, tiny_model_dir, tmp_path, capsys
):
    """Copies of the benchmark's figures at twice their size, under other questions: found by the perceptual hash."""
    copies = []
    for pid in PIDS[:3]:
        image = ImageRef(path=str(next((vista / "images").glob(f"{pid}.*")))).load()
        bigger = ImageRef.from_image(image.resize((image.width * 2, image.height * 2)))
        copies.append(Problem(id=f"scraped-{pid}", question="Which bar is the tallest?", answer="A",
                              answer_type="text", images=[bigger]))  # fmt: skip
    path = write_problems([*generate("count", 5, level=2, seed=2), *copies], tmp_path / "train.jsonl")
    config = _config(tmp_path, tiny_model_dir, vista, f"{{source: file, path: {path}}}", evaluated=True)
    assert main(["run", str(config), f"output_dir={tmp_path}"]) == 2
    error = _one_line_error(capsys)
    assert ("stage grpo1: 3 of 8 training problems (dataset 'train') overlap the evaluation set 'vista' "
            f"(mathvista {vista}), e.g. scraped-1 ~ 1 (similar image), scraped-2 ~ 2 (similar image)") in error
    assert not list((tmp_path / "guard").glob("stages/*"))  # no stage started, not even the base
