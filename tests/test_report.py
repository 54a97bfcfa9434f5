"""The single-run report shows every accuracy with its binomial standard error (tables, report.json, plot); runs
of several seeds combine into one report with each seed, the mean ± sd and standard errors."""

from __future__ import annotations

import json
from pathlib import Path

from reasoner.atomic import write_json, write_jsonl
from reasoner.data.worlds import generate_mixed
from reasoner.eval.runner import score
from reasoner.report import collect, curves, write_report
from reasoner.rundir import RunDir

DEMO = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def write_scores(run: RunDir, stage: str, dataset: str, problems, correct: int, first: int = 0) -> None:
    """items.jsonl and scores.json as an evaluation writes them: the real scorer over responses, problems
    `first` .. `first + correct - 1` answered right."""
    right = range(first, first + correct)
    responses = {p.id: f"<answer>{p.answer_label()}</answer>" if i in right else "" for i, p in enumerate(problems)}
    scores, items = score(problems, responses, dataset)
    write_jsonl(run.stage(stage).eval(dataset) / "items.jsonl", items)
    write_json(run.stage(stage).eval(dataset) / "scores.json", scores)


def test_accuracy_comes_with_its_standard_error(tmp_path):
    problems = generate_mixed(["count", "digits", "bars"], 50, level=1, seed=2, split="eval")
    run = RunDir(tmp_path / "run")
    write_scores(run, "00_base", "heldout", problems, 0)
    write_scores(run, "01_sft", "heldout", problems, 10)  # 20% of 50: sqrt(0.2 * 0.8 / 50) = 5.66 points
    text = write_report(run).read_text()
    assert "s.e. is its binomial standard error sqrt(p (1 - p) / n)" in text
    assert "| stage | n | accuracy | s.e. | Δ prev | items +/- | p | Δ base |" in text
    assert "| 00_base | 50 | 0.0 | 0.0 |  |  |  | +0.0 |" in text
    # 10 items right that the stage before got wrong, none the other way: exact McNemar p = 2 / 2^10
    assert "| 01_sft | 50 | 20.0 | 5.7 | +20.0 | +10 / -0 | 0.002 | +20.0 |" in text
    report = json.loads(run.report_json.read_text())
    assert [s["eval"]["heldout"]["stderr"] for s in report["stages"]] == [0.0, 5.66]
    [curve] = curves(collect(run))
    assert (curve.values, curve.errors) == ([0.0, 20.0], [0.0, 5.66])  # the plot's error bars
    assert (run.root / "accuracy.png").stat().st_size > 1000


def test_a_change_is_also_tested_item_by_item(tmp_path):
    problems = generate_mixed(["count", "digits", "bars"], 50, level=1, seed=2, split="eval")
    run = RunDir(tmp_path / "run")
    write_scores(run, "01_sft", "heldout", problems, 20)
    write_scores(run, "02_grpo", "heldout", problems, 20, first=5)  # same accuracy: 5 items lost, 5 others won
    write_scores(run, "03_sft", "heldout", problems, 30)  # 10 more, and the 5 lost come back
    text = write_report(run).read_text()
    assert "| 02_grpo | 50 | 40.0 | 6.9 | +0.0 | +5 / -5 | 1 | +0.0 |" in text
    assert "| 03_sft | 50 | 60.0 | 6.9 | +20.0 | +10 / -0 | 0.002 | +20.0 |" in text
    report = json.loads(run.report_json.read_text())
    assert report["stages"][1]["eval"]["heldout"]["paired"] == {"gained": 5, "lost": 5, "p": 1.0}
    assert "items" not in report["stages"][1]["eval"]["heldout"]  # the per-item results stay in items.jsonl
    (run.stage("02_grpo").eval("heldout") / "items.jsonl").unlink()  # e.g. an evaluation copied without it
    text = write_report(run).read_text()
    assert "| 02_grpo | 50 | 40.0 | 6.9 | +0.0 |  |  | +0.0 |" in text  # no paired test, no error


def fake_seed_run(root, seed: int, correct: dict[str, int], problems) -> RunDir:
    """A run folder as `reasoner run` leaves it (config.yaml, manifests, scores.json from the real scorer) for the
    demo's first stages, with `correct[stage]` of the held-out problems answered right."""
    import yaml

    from reasoner.config import to_dict
    from reasoner.pipeline import load_run

    loaded = load_run(DEMO, [f"seed={seed}", f"name=demo-s{seed}"])
    run = RunDir(root / f"demo-s{seed}")
    last = max(i for i, plan in enumerate(loaded.plans) if plan.name in correct)
    for plan in loaded.plans[: last + 1]:  # the teacher stage has a manifest but no evaluation
        stage = run.stage(plan.dir_name)
        if plan.name in correct:
            write_scores(run, plan.dir_name, "heldout", problems, correct[plan.name])
        stage.write_manifest({"name": plan.name, "kind": plan.kind, "fingerprint": plan.fingerprint, "model": "-"})
    (run.root / "config.yaml").write_text(yaml.safe_dump(to_dict(loaded.config)))
    return run


def test_seeds_combine_into_each_seed_mean_sd_and_standard_errors(tmp_path):
    from reasoner.report_seeds import write_combined_report

    problems = generate_mixed(["count", "digits", "bars"], 50, level=1, seed=2, split="eval")
    correct = [{"base": 0, "sft1": 10, "grpo1": 15}, {"base": 0, "sft1": 15, "grpo1": 15},
               {"base": 0, "sft1": 20, "grpo1": 30}]  # fmt: skip
    runs = [fake_seed_run(tmp_path, seed, counts, problems).root for seed, counts in enumerate(correct)]
    text = write_combined_report(runs, tmp_path / "seeds").read_text()
    # sft1: 20, 30, 40% -> mean 30, sd 10, s.e. 10 / sqrt(3) = 5.8; its change from base is the same.
    assert "| sft1 | 20.0 | 30.0 | 40.0 | 30.0 ± 10.0 | 5.8 | +30.0 ± 5.8 |" in text
    # grpo1: 30, 30, 60% -> mean 40, sd 17.3, s.e. 10.0; changes per seed +10, 0, +20 -> +10 ± 5.8.
    assert "| grpo1 | 30.0 | 30.0 | 60.0 | 40.0 ± 17.3 | 10.0 | +10.0 ± 5.8 |" in text
    prior = score(problems, {}, "heldout")[0]["prior_overall"]  # one evaluation set for every seed
    assert f"| prior (no image) |  |  |  | {prior:.1f} |  |  |" in text
    report = json.loads((tmp_path / "seeds" / "report.json").read_text())
    grpo1 = report["stages"][3]["eval"]["heldout"]
    assert grpo1 == {"n": 50, "accuracy": [30.0, 30.0, 60.0], "mean": 40.0, "sd": 17.32, "sem": 10.0,
                     "delta_prev": {"mean": 10.0, "sem": 5.77}, "vs": "sft1"}  # fmt: skip
    assert (tmp_path / "seeds" / "accuracy.png").stat().st_size > 1000


def test_prior_row_is_what_the_best_constant_answer_per_question_kind_scores(tmp_path):
    from collections import Counter

    from reasoner.prompts import LETTERS

    problems = generate_mixed(["count", "digits", "bars"], 120, level=1, seed=2, split="eval")

    def constant(p):  # what an image-blind constant answer must be to score p: its text, or its option letter
        return LETTERS[p.choices.index(p.answer)] if p.choices else p.answer

    kinds = {(p.metadata["task"], p.metadata["kind"]) for p in problems}
    best = {k: Counter(constant(p) for p in problems if (p.metadata["task"], p.metadata["kind"]) == k).most_common(1)[0][0]
            for k in kinds}  # fmt: skip
    blind = {p.id: f"<answer>{best[p.metadata['task'], p.metadata['kind']]}</answer>" for p in problems}
    scores, _ = score(problems, blind, "heldout")
    # The real scorer grades the best constant answers exactly at the prior, overall and per task.
    assert scores["prior_overall"] == scores["accuracy"] > 0
    assert scores["prior"] == {t: v["accuracy"] for t, v in scores["breakdown"]["task"].items()}
    run = RunDir(tmp_path / "run")
    write_json(run.stage("00_base").eval("heldout") / "scores.json", scores)
    text = write_report(run).read_text()
    assert f"| prior |  | {scores['prior_overall']:.1f} |  |  |  |" in text
    # A set without question kinds (a problems file from elsewhere) has no prior row.
    for p in problems:
        p.metadata.pop("kind")
    assert "prior" not in score(problems, blind, "other")[0]


def test_a_set_without_breakdown_fields_gets_a_well_formed_table(tmp_path):
    """A problems file whose items name no task (e.g. imported TabMWP): the table has the fixed columns only, and
    its header, separator and rows have as many cells."""
    problems = generate_mixed(["count"], 20, level=1, seed=2, split="eval")
    for problem in problems:
        problem.metadata.clear()
    run = RunDir(tmp_path / "run")
    write_scores(run, "00_base", "mine", problems, 0)
    write_scores(run, "01_sft", "mine", problems, 5)
    table = write_report(run).read_text().split("## mine")[1].split("\n\n")[1].splitlines()
    assert table[0] == "| stage | n | accuracy | s.e. | Δ prev | items +/- | p | Δ base |"
    assert {line.count("|") for line in table} == {9}, table


def branching_run(root: Path, name: str, seed: int, correct: dict[str, int], problems) -> RunDir:
    """A run of a branching schedule (stic-demo's shape): base -> caption -> stic -> grpo, and plain (and a
    branch off the text-only teacher, which has no evaluation) starting again from earlier stages."""
    run = RunDir(root / name)
    starts = {"base": None, "teacher": "base", "caption": "base", "stic": "caption", "grpo": "stic",
              "plain": "caption", "taught": "teacher"}  # fmt: skip
    for index, (stage, init) in enumerate(starts.items()):
        folder = f"{index:02d}_{stage}"
        if stage in correct:
            write_scores(run, folder, "heldout", problems, correct[stage])
        run.stage(folder).write_manifest({"name": stage, "kind": "sft", "init": init, "fingerprint": stage, "model": "-"})
    (run.root / "config.yaml").write_text(f"seed: {seed}\n")
    return run


def test_a_branch_is_compared_with_the_stage_it_starts_from(tmp_path):
    """stic-demo compared `plain` (started from `caption`) with `grpo`, the row above it, of another branch."""
    from reasoner.report_seeds import write_combined_report

    problems = generate_mixed(["count", "digits", "bars"], 50, level=1, seed=2, split="eval")
    counts = {"base": 0, "caption": 10, "stic": 20, "grpo": 30, "plain": 15, "taught": 5}
    run = branching_run(tmp_path, "s0", 0, counts, problems)
    text = write_report(run).read_text()
    assert "a stage marked `(from X)` is compared (Δ prev, items +/-) with X" in text
    assert "| grpo | 50 | 60.0 | 6.9 | +20.0 | +10 / -0 | 0.002 | +60.0 |" in text  # the row above: no mark
    assert "| plain (from caption) | 50 | 30.0 | 6.5 | +10.0 | +5 / -0 | 0.062 | +30.0 |" in text  # not -30 vs grpo
    assert "| taught | 50 | 10.0 | 4.2 |  |  |  | +10.0 |" in text  # its start has no row: no comparison
    report = json.loads(run.report_json.read_text())
    assert [s["eval"].get("heldout", {}).get("vs") for s in report["stages"]] == [
        None, None, "base", "caption", "stic", "caption", None,
    ]  # fmt: skip
    other = branching_run(tmp_path, "s1", 1, {**counts, "plain": 25}, problems)
    text = write_combined_report([run.root, other.root], tmp_path / "seeds").read_text()
    assert "a stage marked `(from X)` is compared" in text
    assert "| plain (from caption) | 30.0 | 50.0 | 40.0 ± 14.1 | 10.0 | +20.0 ± 10.0 |" in text
    # A linear schedule's report says nothing of branches (tests above: the demo's shape).
    linear = RunDir(tmp_path / "linear")
    write_scores(linear, "00_base", "heldout", problems, 0)
    write_scores(linear, "01_sft", "heldout", problems, 10)
    assert "(from" not in write_report(linear).read_text()
