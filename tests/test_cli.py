"""The command line: bad numbers stop at argument parsing (exit 2, naming the option); bad data in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from reasoner.cli import main


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["eval", "--model", "m", "--data", "d", "--out", "o", "--limit", "-3"],
            "--limit: -3 is not allowed",
        ),
        (
            ["eval", "--model", "m", "--data", "d", "--out", "o", "--batch-size", "0"],
            "--batch-size: 0 is not allowed",
        ),
        (
            ["data", "import", "--format", "generic", "src", "out", "--limit", "-3"],
            "--limit: -3 is not allowed",
        ),
        (["data", "import", "--format", "generic", "src", "out", "--limit", "0"], "allowed: >= 1"),
        (["data", "synthetic", "out.jsonl", "--task", "count", "--n", "-1"], "--n: -1 is not allowed"),
    ],
)
def test_negative_limits_and_counts_are_refused(argv, expected, capsys):
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2 and expected in capsys.readouterr().err


def test_empty_training_file_says_so(tmp_path: Path, tiny_model_dir: Path, capsys):
    """Not "has no reference reasoning; use targets: self": the file has no problems at all."""
    (tmp_path / "empty.jsonl").write_text("")
    config = tmp_path / "run.yaml"
    config.write_text(
        f"name: e\nmodel: {{path: {tiny_model_dir}}}\ndatasets: {{train: {{source: file, path: {tmp_path}/empty.jsonl}}}}\n"
        "eval: {evaluate_base: false}\nstages: [{kind: sft, data: {dataset: train}, steps: 1}]\n"
    )
    assert main(["run", str(config), f"output_dir={tmp_path}"]) == 2
    error = capsys.readouterr().err
    assert (
        f"datasets.train: {tmp_path / 'empty.jsonl'} has no problems" in error
        and "targets: self" not in error
    )
