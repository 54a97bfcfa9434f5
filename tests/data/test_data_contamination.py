"""The contamination guard on real data: a training set that overlaps an evaluation set or a benchmark folder the
run names stops the run with one line; `data.allow_overlap` lets it through, on the record; generated worlds are
compared as whole problems; a file imported from an evaluation-only format is refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from reasoner import cli, config
from reasoner.data.records.files import write_problems
from reasoner.data.records.problem import ImageRef, Problem
from reasoner.data.sets.datasets import Datasets
from reasoner.data.sets.importers import load_mathvision
from reasoner.data.stage.contamination import benchmark_names, check_run, warning_lines
from reasoner.data.worlds import generate
from reasoner.errors import ReasonerError

RUN = """
name: guard
model: {{tiny_size: demo}}
datasets:
  train: {{source: file, path: {train}}}
  heldout: {{source: synthetic, n: 8, seed: 4, split: eval}}
  {bench}
eval: {{datasets: [heldout{evaluated}]}}
stages:
  - {{kind: grpo, data: {{dataset: train{allow}}}, steps: 1}}
"""


def _load(tmp_path: Path, train: Path, bench: str, *, evaluated: bool, allow: bool = False) -> config.RunConfig:
    text = RUN.format(train=train, bench=bench, evaluated=", bench" if evaluated else "",
                      allow=", allow_overlap: true" if allow else "")  # fmt: skip
    (tmp_path / "run.yaml").write_text(text)
    return config.load(tmp_path / "run.yaml")


def _resized_copy(problem: Problem, pid: str) -> Problem:
    """A MATH-Vision problem as a scraped training set holds it: half size, JPEG, the question reworded."""
    image = problem.images[0].load()
    buffer = io.BytesIO()
    image.resize((image.width // 2, image.height // 2)).save(buffer, format="JPEG", quality=70)
    return Problem(id=pid, question="Which option is right?", answer="A", answer_type="text",
                   images=[ImageRef(data=buffer.getvalue())])  # fmt: skip


def test_overlap_with_an_evaluation_set_stops_with_one_line(mathvision_dir, tmp_path):
    vision = load_mathvision(mathvision_dir)
    train = [*generate("count", 10, level=2, seed=1), _resized_copy(vision[3], "scraped-1"),
             _resized_copy(vision[7], "scraped-2"), _resized_copy(vision[11], "scraped-3")]  # fmt: skip
    path = write_problems(train, tmp_path / "train.jsonl")
    bench = f"bench: {{source: mathvision, path: {mathvision_dir}}}"
    run = _load(tmp_path, path, bench, evaluated=True)
    assert benchmark_names(run) == ["heldout", "bench"]
    with pytest.raises(ReasonerError) as err:
        check_run(run, Datasets(run).__getitem__)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("stage grpo1: 3 of 13 training problems (dataset 'train') overlap the evaluation set "
                              f"'bench' (mathvision {mathvision_dir}), e.g. scraped-1 ~ {vision[3].id} (similar image), "
                              f"scraped-2 ~ {vision[7].id} (similar image)")  # fmt: skip
    assert "stages.grpo1.data.allow_overlap=true" in message

    allowed = _load(tmp_path, path, bench, evaluated=True, allow=True)
    record = check_run(allowed, Datasets(allowed).__getitem__)
    [finding] = record["findings"]
    assert finding["allowed"] and finding["overlapping"] == 3 and finding["benchmark"] == "bench"
    [line] = warning_lines(record)
    assert line.startswith("**Warning: trained on evaluation data.** stage grpo1: 3 of 13 training problems")


def test_a_tabmwp_import_without_exclude_options_is_checked_at_run_time(tabmwp_problems, mathvista_dir, tmp_path):
    """MathVista testmini holds TabMWP problems: a named MathVista folder (no images, not evaluated) finds them."""
    path = write_problems(tabmwp_problems, tmp_path / "tabmwp.jsonl")  # imported with no --exclude-* option
    run = _load(tmp_path, path, f"vista: {{source: mathvista, path: {mathvista_dir}}}", evaluated=False)
    with pytest.raises(ReasonerError, match=r"stage grpo1: 10 of 2000 training problems .* overlap the evaluation "
                                            r"set 'vista' \(mathvista .*\(question\)"):  # fmt: skip
        check_run(run, Datasets(run).__getitem__)


def test_generated_worlds_compare_whole_problems(tmp_path):
    """A world's images recur with other questions (the demo's train and heldout share 50 images), by design."""
    run = config.load(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml",
                      ["datasets.train.n=300", "datasets.heldout.n=100"])  # fmt: skip
    assert check_run(run, Datasets(run).__getitem__)["findings"] == []
    twin = config.load(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml",
                       ["datasets.train.n=300", "datasets.heldout.n=100", "datasets.heldout.seed=null",
                        "datasets.heldout.split=train", "eval.datasets=[train]"])  # fmt: skip
    with pytest.raises(ReasonerError, match=r"stage teacher: 300 of 300 .* \(problem\)"):
        check_run(twin, Datasets(twin).__getitem__)


def test_a_file_imported_from_an_evaluation_only_format_is_refused(mathvision_dir, tmp_path):
    out = tmp_path / "vision.jsonl"
    assert cli.main(["data", "import", str(mathvision_dir), str(out), "--format", "mathvision", "--limit", "4"]) == 0
    run = _load(tmp_path, out, "", evaluated=False)
    with pytest.raises(ReasonerError, match=r"stages.grpo1.data.dataset: 'train' .* was imported from mathvision, "
                                            r"an evaluation-only set"):  # fmt: skip
        check_run(run, Datasets(run).__getitem__)
    allowed = _load(tmp_path, out, "", evaluated=False, allow=True)
    assert check_run(allowed, Datasets(allowed).__getitem__)["findings"] == []  # nothing it is compared with


def test_mathvista_as_a_training_source_is_refused_at_load(mathvista_dir, tmp_path):
    (tmp_path / "run.yaml").write_text(RUN.format(train="x", bench="", evaluated="", allow="").replace(
        "{source: file, path: x}", f"{{source: mathvista, path: {mathvista_dir}}}"))  # fmt: skip
    with pytest.raises(ReasonerError, match=r"'train' is mathvista, an evaluation-only set; never train on it"):
        config.load(tmp_path / "run.yaml")
