"""Perception scoring and learnability: the untrained tiny model sits at (or below) chance on every family, and a
short SFT on the world's counting family moves it well above chance (real tiny Qwen2.5-VL, CPU, one thread)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reasoner.config import RunConfig, StageConfig, StageKind
from reasoner.data.synthetic.compose import generate_compose
from reasoner.engines.base import SFTExample, TrainJob
from reasoner.engines.local import LocalEngine
from reasoner.eval.perception import ROWS, family_rows, format_rows
from reasoner.eval.runner import generate_responses, score
from reasoner.models.tiny import ensure_tiny_model
from reasoner.prompts import LETTERS, format_target, load_template


def test_pair_row_needs_both_the_item_and_its_twin():
    problems = generate_compose(["relation"], 2, level=1, seed=0, split="eval")  # 2 items + 2 twins
    rows = family_rows(problems, [True, False, True, True])
    assert rows["relation"] == {"n": 2, "correct": 2, "accuracy": 100.0, "chance": 50.0}
    assert rows["hard_positive"]["accuracy"] == 50.0
    assert rows["pair"] == {"n": 2, "correct": 1, "accuracy": 50.0, "chance": 25.0}


def test_a_model_that_rejects_every_paraphrase_is_caught():
    problems = generate_compose(["relation", "attribution"], 40, level=2, seed=0, split="eval")
    # Right on the originals, but prefers the hard negative to every paraphrase.
    def pick(p):
        text = p.answer if p.metadata["variant"] == "original" else p.metadata["hard_negatives"][0]
        return f"<answer>{LETTERS[p.choices.index(text)]}</answer>"

    responses = {p.id: pick(p) for p in problems}
    rows = score(problems, responses, "perception")[0]["breakdown"]["family"]
    assert rows["relation"]["accuracy"] == rows["attribution"]["accuracy"] == 100.0
    assert rows["hard_positive"]["accuracy"] == 0.0 and rows["pair"]["accuracy"] == 0.0


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "models", size="demo", seed=0)


def test_untrained_at_chance_then_short_sft_well_above(tiny_dir, tmp_path):
    template = load_template("reason")
    engine = LocalEngine(RunConfig(name="t"))
    base_set = generate_compose([], 12, level=1, seed=2, split="eval")
    base, _ = score(base_set, generate_responses(engine.generator(tiny_dir), base_set, template, 24), "perception")
    print(format_rows(base))
    assert set(base["breakdown"]["family"]) == set(ROWS)
    for row, values in base["breakdown"]["family"].items():
        assert values["accuracy"] <= values["chance"] + 1e-9, (row, values)

    train = generate_compose(["counting"], 300, level=1, seed=1, split="train")
    stage = StageConfig(kind=StageKind.sft, name="sft1", batch_size=16, lr=3e-3, steps=60)
    job = TrainJob(stage, tiny_dir, tmp_path / "ckpt", tmp_path / "model", tmp_path / "logs", template, seed=0)
    engine.train_sft(job, [SFTExample(p, format_target(p.reasoning, p.answer_label())) for p in train])
    held_out = generate_compose(["counting"], 40, level=1, seed=2, split="eval")
    trained, _ = score(held_out, generate_responses(engine.generator(job.out_model), held_out, template, 48), "perception")
    print(format_rows(trained))
    counting = trained["breakdown"]["family"]["counting"]
    assert counting["chance"] == 25.0 and counting["accuracy"] >= 45.0, counting


def test_report_shows_families_beside_chance_across_stages(tmp_path):
    from reasoner.atomic import write_json
    from reasoner.report import write_report
    from reasoner.rundir import RunDir

    problems = generate_compose([], 12, level=1, seed=2, split="eval")
    run = RunDir(tmp_path / "run")
    for stage, answer in (("00_base", lambda p: ""), ("01_sft", lambda p: f"<answer>{p.answer_label()}</answer>")):
        scores, _ = score(problems, {p.id: answer(p) for p in problems}, "perception")
        write_json(run.stage(stage).eval("perception") / "scores.json", scores)
        write_json(run.stage(stage).eval("heldout") / "scores.json", {"n": 4, "accuracy": 50.0})
    text = write_report(run).read_text()
    # accuracy ± its binomial standard error: 50% of 4 items is sqrt(0.25 / 4) = 25 points either way
    assert "| stage | heldout | perception |" in text and "| 01_sft | 50.0 ± 25.0 | 100.0 ± 0.0 |" in text
    header = "| stage | n | accuracy | s.e. | Δ prev | items +/- | p | Δ base | " + " | ".join(ROWS) + " |"
    assert header in text
    assert "| chance |  | 37.7 |  |  |  |  |  | 50.0 | 50.0 | 20.0 | 25.0 | 50.0 | 25.0 | 39.0 | 17.1 |" in text
    assert (run.root / "accuracy.png").stat().st_size > 1000
