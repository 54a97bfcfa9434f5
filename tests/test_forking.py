"""Forked CPU processes: data-parallel ranks (sums, shares, gradients, failures) and fork_map (order, errors)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from reasoner.errors import ReasonerError
from reasoner.forking import Group, fork_map, ranks


def test_fork_map_keeps_order_and_runs_items_in_other_processes() -> None:
    results = fork_map(lambda i: (i * i, os.getpid()), 7, processes=3)
    assert [value for value, _ in results] == [i * i for i in range(7)]
    pids = [pid for _, pid in results]
    assert pids[0] == pids[3] == pids[6] == os.getpid()  # item i runs in process i % 3
    assert len(set(pids)) == 3
    assert fork_map(lambda i: i, 2, processes=8) == [0, 1]  # never more processes than items


def test_fork_map_raises_a_child_failure_in_the_parent() -> None:
    def bad_input(i: int) -> int:
        if i == 1:
            raise ReasonerError("request 'x': image does not exist")
        return i

    with pytest.raises(ReasonerError, match="^request 'x': image does not exist$"):
        fork_map(bad_input, 4, processes=2)

    def crash(i: int) -> int:
        return 1 // (i - 3)

    with pytest.raises(ReasonerError, match="(?s)forked worker failed.*ZeroDivisionError"):
        fork_map(crash, 4, processes=2)


def test_ranks_sum_share_and_combine() -> None:
    with ranks(2) as group:
        share = group.share(list(range(8)))
        total = group.sum(float(sum(share)))
        row = group.combine({"count/items": float(len(share)), "loss": float(group.rank)}, additive=("count/",))
        if not group.main:  # the child checks too: a failed assertion there fails the block in the parent
            assert share == [4, 5, 6, 7]
    assert share == [0, 1, 2, 3] and total == 28.0
    assert row == {"count/items": 8.0, "loss": 0.5}
    with ranks(1) as single:
        assert single == Group() and single.share([1, 2]) == [1, 2] and single.sum(3.0) == 3.0
    with pytest.raises(ReasonerError, match="3 items per step cannot be split evenly over 2"):
        Group(0, 2).share([1, 2, 3])


def test_summed_gradients_are_the_gradient_of_the_whole_batch() -> None:
    torch.manual_seed(0)
    data, weight = torch.randn(8, 3), torch.randn(3)
    whole = torch.nn.Parameter(weight.clone())
    (data @ whole).pow(2).sum().backward()
    with ranks(2) as group:
        part = torch.nn.Parameter(weight.clone())
        (data[group.rank * 4 : group.rank * 4 + 4] @ part).pow(2).sum().backward()
        group.sum_grads([part])
        assert torch.allclose(part.grad, whole.grad, atol=1e-5)  # on both ranks


def test_a_failed_rank_is_named_in_the_parent() -> None:
    with pytest.raises(ReasonerError, match="data-parallel rank 1 failed"):
        with ranks(2) as group:
            if not group.main:
                raise ValueError("rank 1 broke")
            group.sum(1.0)  # the collective fails when the other rank is gone


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_rank_dies_with_its_parent(tmp_path: Path) -> None:
    """A parent killed outright (OOM, SIGKILL) leaves no rank behind blocked in a collective."""
    import signal
    import subprocess
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, time\n"
        "from reasoner.forking import ranks\n"
        "with ranks(2) as group:\n"
        f"    open({str(tmp_path / 'rank')!r} + str(group.rank), 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)])
    pid_file = tmp_path / "rank1"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    status = Path(f"/proc/{child}/status")
    for _ in range(100):
        if not status.exists() or "\nState:\tZ" in status.read_text():  # gone, or dead and not yet reaped
            return
        time.sleep(0.05)
    raise AssertionError(f"rank 1 (pid {child}) outlived its killed parent")
