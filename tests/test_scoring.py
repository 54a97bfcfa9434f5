"""reasoner.data.records.scoring on real TabMWP answers (integers, "8.20", "5/18", "23,520", times, names, yes/no, multiple
choice, units such as "$" and "games per year"): every gold answer scores right in every form, through the local
engine's callers and through the verl reward file fed the RL parquet's extra_info."""

from __future__ import annotations

import importlib.util
import math
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from reasoner.config import GRPOConfig, RunConfig, SamplingConfig, StageConfig, StageKind
from reasoner.data.records.problem import ANSWER_TYPES
from reasoner.data.records.scoring import score_pairs, scorer_arguments
from reasoner.data.stage.selection import select_examples, verify
from reasoner.data.stage.selfdistill import sample_and_verify
from reasoner.engines.base import TrainJob
from reasoner.engines.local import LocalEngine
from reasoner.engines.verl.data_format import write_rl_parquet
from reasoner.generation.base import SamplingSpec
from reasoner.generation.hf import HFGenerator
from reasoner.prompts import LETTERS, load_template

TEMPLATE = load_template("reason")
VERL_FILE = Path(__file__).resolve().parents[1] / "rewards" / "verl.py"


def gold_forms(problem) -> dict[str, str]:
    """The gold answer as a model may write it: bare, in our tags, boxed, and with the unit where it has one."""
    label = problem.answer_label()
    forms = {
        "bare": label,
        "tagged": f"<think>Read the table.</think>\nSo it is {label}.\n<answer>{label}</answer>",
        "boxed": f"Reading the table, the answer is $\\boxed{{{label}}}$.",
    }
    if problem.unit and not problem.choices:
        unit = problem.unit
        with_unit = f"${problem.answer}" if unit.startswith("$") else f"{problem.answer} {unit}"
        forms["unit"] = f"<think>..</think>\n<answer>{with_unit}</answer>"
    return forms


def wrong_response(problem) -> str:
    """A tagged answer that is wrong: another option's letter, or a number no TabMWP answer has."""
    if problem.choices:
        other = next(c for c in problem.choices if c != problem.answer)
        return f"<answer>{LETTERS[problem.choices.index(other)]}</answer>"
    return "<answer>123456.5</answer>"


def varied(problems, per_kind: int = 4) -> list:
    """A few problems of every (answer type, has unit) kind, in data order."""
    taken: Counter = Counter()
    chosen = []
    for problem in problems:
        kind = (problem.answer_type, problem.unit is not None)
        if taken[kind] < per_kind:
            taken[kind] += 1
            chosen.append(problem)
    return chosen


def test_tabmwp_records_use_every_free_form_answer_type(tabmwp_problems):
    types = Counter(p.answer_type for p in tabmwp_problems)
    assert set(types) == {"text", "integer", "float", "expression"} <= set(ANSWER_TYPES)
    assert sum(types.values()) == 2000


def test_every_tabmwp_gold_answer_scores_in_every_form(tabmwp_problems):
    pairs, forms = [], []
    for problem in tabmwp_problems:
        for form, response in gold_forms(problem).items():
            pairs.append((problem, response))
            forms.append(form)
    scores = score_pairs(pairs)
    right, total = Counter(), Counter(forms)
    wrong = []
    for (problem, response), form, result in zip(pairs, forms, scores, strict=True):
        right[form] += result.accuracy == 1.0
        if result.accuracy != 1.0:
            wrong.append((problem.id, problem.answer, response, result.reason))
    assert total["bare"] == total["tagged"] == total["boxed"] == 2000 and total["unit"] > 400
    assert right == total, wrong[:5]


def test_a_wrong_answer_scores_zero_for_every_answer_type(tabmwp_problems):
    chosen = varied(tabmwp_problems, per_kind=2)
    wrong = [(problem, wrong_response(problem)) for problem in chosen]
    assert [s.accuracy for s in score_pairs(wrong)] == [0.0] * len(wrong)


def test_the_verl_reward_file_scores_tabmwp_from_the_parquet_extra_info(tabmwp_problems, tmp_path):
    spec = importlib.util.spec_from_file_location("custom_module_scoring_test", VERL_FILE)
    adapter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(adapter)  # loaded by path, the way verl loads a custom reward function
    chosen = varied(tabmwp_problems)
    path = write_rl_parquet(chosen, tmp_path / "grpo.parquet", TEMPLATE, data_source="tabmwp")
    rows = pq.read_table(path).to_pandas().to_dict("records")  # numpy arrays and NaN, as verl hands them over
    for problem, row in zip(chosen, rows, strict=True):
        assert row["extra_info"]["answer_type"] == scorer_arguments(problem)["answer_type"]
        truth = row["reward_model"]["ground_truth"]
        for form, response in gold_forms(problem).items():
            result = adapter.compute_score(row["data_source"], response, truth, row["extra_info"])
            assert result["acc"] == 1.0, (problem.id, form, response, result)
        missed = adapter.compute_score(row["data_source"], wrong_response(problem), truth, row["extra_info"])
        assert missed["acc"] == 0.0


def test_one_grpo_step_and_one_self_distillation_round_on_tabmwp(tabmwp_problems, tiny_model_dir, tmp_path):
    chosen = varied(tabmwp_problems, per_kind=1)  # one of each answer type, with and without a unit
    grpo = GRPOConfig(sampling=SamplingConfig(n=2, max_new_tokens=6), prompts_per_step=len(chosen), kl_coef=0.0)
    stage = StageConfig(kind=StageKind.grpo, name="grpo1", steps=1, lr=1e-4, grpo=grpo)
    job = TrainJob(
        stage, tiny_model_dir, tmp_path / "ckpt", tmp_path / "model", tmp_path / "logs", TEMPLATE, seed=0
    )
    summary = LocalEngine(RunConfig(name="t")).train_grpo(job, chosen)
    assert summary["steps"] == 1 and summary["samples"] == 2 * len(chosen)
    assert math.isfinite(summary["reward/mean"])

    generator = HFGenerator.from_pretrained(job.out_model)
    spec = SamplingSpec(n=2, temperature=1.0, max_new_tokens=6, seed=0)
    samples = sample_and_verify(generator, chosen, TEMPLATE, spec)
    assert [len(group) for group in samples] == [2] * len(chosen)
    gold = verify(chosen, [[gold_forms(p)["tagged"]] for p in chosen])
    examples, stats = select_examples(chosen, gold, "shortest")
    assert stats["kept"] == len(examples) == len(chosen)
