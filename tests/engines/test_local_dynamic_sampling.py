"""Dynamic sampling (DAPO) in the local GRPO loop: the choice of groups with signal on hand-made rewards, then
refilled steps on a warmed tiny model, resumed exactly, and on two processes that decide their refills together."""

from __future__ import annotations

import torch

from reasoner.config import RunConfig
from reasoner.data.worlds import TASKS, generate_mixed
from reasoner.engines.local import LocalEngine
from reasoner.engines.local.dynamic import has_signal, merge_rollouts, select_groups
from reasoner.engines.local.rollout import Rollout


def test_dynamic_sampling_chooses_groups_with_signal_in_draw_order():
    assert has_signal(torch.tensor([1.0, 0, 1, 1, 1, 1, 0.5, 0.5, 0.5]), 3) == [True, False, False]
    signal = [[True, False, False, True], [False, True, True, True]]
    assert select_groups(signal, 4) == ([(0, 0), (0, 3), (1, 1), (1, 2)], 0)  # the first four with signal
    assert select_groups([[False, True], [False, False]], 2) == ([(0, 0), (0, 1)], 1)  # topped up: a dropped one
    assert select_groups([[False, False]], 2) == ([(0, 0), (0, 1)], 2)
    short, long = (Rollout(torch.ones(2, n, dtype=torch.long), torch.ones(2, n, dtype=torch.long), ["a", "b"],
                           [True, False]) for n in (2, 3))  # fmt: skip
    merged = merge_rollouts([short, long], pad_id=7)
    assert merged.tokens.tolist() == [[1, 1, 7], [1, 1, 7], [1, 1, 1], [1, 1, 1]]
    assert merged.mask.sum(1).tolist() == [2, 2, 3, 3] and merged.texts == ["a", "b", "a", "b"]


DYNAMIC = {"dynamic_sampling": True, "max_extra_batches": 2}


def check_dynamic_rows(rows: list[dict], prompts: int = 4, group: int = 4) -> None:
    for row in rows:
        batches = row["dynamic/generation_batches"]
        assert row["count/prompts"] == prompts and row["count/samples"] == batches * prompts * group
        with_signal = batches * prompts - row["dynamic/groups_dropped"]
        assert row["dynamic/groups_short"] == max(0, prompts - with_signal)
        assert batches == 3 or row["dynamic/groups_short"] == 0  # stops early only when the step is full
    assert any(row["dynamic/generation_batches"] > 1 for row in rows), "no refill in this setup; see warm_dir"


def test_dynamic_sampling_refills_steps_and_resumes_exactly(
    warm_dir, tmp_path, make_job, metric_rows, assert_crash_and_resume_match
):
    problems = generate_mixed(list(TASKS), 64, level=1, seed=7)
    straight = make_job(tmp_path / "straight", warm_dir, steps=3, grpo_keys=DYNAMIC, checkpoint_every=2)
    LocalEngine(RunConfig(name="t")).train_grpo(straight, problems)
    check_dynamic_rows(metric_rows(straight))
    assert_crash_and_resume_match(RunConfig(name="t"), straight, problems, warm_dir, tmp_path, grpo_keys=DYNAMIC)


def test_dynamic_sampling_on_two_processes_decides_refills_together(warm_dir, tmp_path, make_job, metric_rows):
    problems = generate_mixed(list(TASKS), 64, level=1, seed=7)
    job = make_job(tmp_path, warm_dir, steps=2, grpo_keys=DYNAMIC)
    LocalEngine(RunConfig(name="t", processes=2)).train_grpo(job, problems)
    rows = metric_rows(job)
    assert all(row["dynamic/generation_batches"] in (1.0, 2.0, 3.0) for row in rows)  # the same on both ranks
    for row in rows:  # summed over the ranks: each rank tops up its own half
        assert row["count/prompts"] == 4 and row["count/samples"] == row["dynamic/generation_batches"] * 16
        assert row["dynamic/groups_short"] <= 4 and row["dynamic/groups_dropped"] >= row["dynamic/groups_short"]
