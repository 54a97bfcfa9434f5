"""A benchmark added by registration alone: a config may name it, `reasoner score` and `reasoner eval` take it, and a
run evaluates on it and reports it, without a change anywhere else."""

import json
from pathlib import Path

import pytest

from reasoner import cli, config, registry
from reasoner.benchmarks.base import Benchmark
from reasoner.data.records.problem import Problem
from reasoner.errors import ReasonerError


class Parity(Benchmark):
    """Is a number even? Read from `parity.json` (a list of integers) in a folder; answers yes or no."""

    name = "parity"
    summary = "parity questions (a folder with parity.json)"
    needs_path = True
    fields = ("task", "answer_type")

    def load_path(self, path, *, images=True):
        numbers = json.loads((Path(path) / "parity.json").read_text())
        return [
            Problem(id=f"p{n}", question=f"Is {n} even?", answer="yes" if n % 2 == 0 else "no", answer_type="text",
                    choices=["yes", "no"], metadata={"task": "parity"})
            for n in numbers
        ]  # fmt: skip

    def recognizes(self, path):
        return (path / "parity.json").is_file()


@pytest.fixture
def parity(tmp_path):
    folder = tmp_path / "parity"
    folder.mkdir()
    (folder / "parity.json").write_text(json.dumps([1, 2, 3, 4, 5, 6]))
    registry.register(Parity())
    yield folder
    registry.unregister("parity")


def run_config(tmp_path: Path, parity: Path, **extra: str) -> Path:
    path = tmp_path / "run.yaml"
    source = extra.get("source", "parity")
    path.write_text(f"""
name: toy
output_dir: {tmp_path / "runs"}
processes: 1
model: {{tiny_size: demo}}
datasets:
  train: {{source: synthetic, n: 8}}
  checks: {{source: {source}, path: {parity}}}
eval: {{datasets: [checks], max_new_tokens: 4, batch_size: 8}}
stages:
  - {{name: sft1, kind: sft, steps: 1, batch_size: 2, data: {{dataset: train}}}}
""")
    return path


def test_config_validation_knows_a_registered_benchmark(tmp_path, parity):
    run = config.load(run_config(tmp_path, parity))
    assert run.datasets["checks"].source == "parity"
    with pytest.raises(ReasonerError, match=r"datasets.checks.path: required for source=parity"):
        config.load(run_config(tmp_path, parity), ["datasets.checks.path=null"])
    registry.unregister("parity")
    with pytest.raises(ReasonerError, match=r"datasets.checks.source: 'parity' is not allowed; allowed: synthetic, "):
        config.load(run_config(tmp_path, parity))


def test_reasoner_score_takes_a_registered_benchmark(tmp_path, parity, capsys):
    predictions = tmp_path / "p.jsonl"
    lines = [{"pid": f"p{n}", "response": f"<answer>{'yes' if n % 2 == 0 else 'no'}</answer>"} for n in (1, 2, 3, 4)]
    predictions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    assert cli.main(["score", "parity", "--predictions", str(predictions), "--data", str(parity), "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert (scores["benchmark"], scores["n"], scores["correct"], scores["missing"]) == ("parity", 6, 4, 2)
    assert "parity" in capsys.readouterr().out


@pytest.mark.slow
def test_reasoner_eval_and_a_run_take_a_registered_benchmark(tmp_path, parity, tiny_model_dir):
    out = tmp_path / "eval"
    assert cli.main(["eval", "--model", str(tiny_model_dir), "--data", str(parity), "--out", str(out),
                     "--max-new-tokens", "4"]) == 0  # fmt: skip
    scores = json.loads((out / "scores.json").read_text())
    assert (scores["benchmark"], scores["dataset"], scores["n"]) == ("parity", "parity", 6)

    assert cli.main(["run", str(run_config(tmp_path, parity))]) == 0
    report = json.loads((tmp_path / "runs" / "toy" / "report.json").read_text())
    assert report["datasets"] == ["checks"]
    assert [stage["eval"]["checks"]["n"] for stage in report["stages"]] == [6, 6]
    assert "## checks" in (tmp_path / "runs" / "toy" / "report.md").read_text()
