"""rewards/verl.py as verl uses it: loaded by file path, fed parquet-shaped extra_info."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

VERL_FILE = Path(__file__).resolve().parents[2] / "rewards" / "verl.py"
ANGLES = ["30°", "45°", "60°"]


@pytest.fixture(scope="module")
def adapter():
    """The adapter loaded the way verl's load_extern_object does: spec_from_file_location, no package."""
    spec = importlib.util.spec_from_file_location("custom_module_rewards_test", VERL_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compute_score_reads_parquet_shaped_extra_info(adapter) -> None:
    extra_info = {"answer_type": "text", "choices": np.array(ANGLES, dtype=object), "precision": math.nan,
                  "unit": None, "num_turns": None, "rollout_reward_scores": {}}
    result = adapter.compute_score("mathvista", "<think>a</think>\n<answer>(B)</answer>", "45°", extra_info)
    assert result["score"] == 1.0 and result["acc"] == 1.0 and result["format"] == 1.0
    assert result["pred"] == "45°" and result["reason"] == "match"
    assert all(isinstance(value, (float, str)) for value in result.values())


def test_compute_score_float_precision_and_weights(adapter) -> None:
    extra_info = {"answer_type": "float", "choices": None, "precision": 2.0, "unit": ""}
    result = adapter.compute_score("mathvista", "<think>a</think>\n<answer>7.071</answer>", "7.07", extra_info,
                                   summary_penalty=-0.5)
    assert (result["acc"], result["summary_missing"], result["score"]) == (1.0, 1.0, 0.5)
    wrong = adapter.compute_score("geo", "The answer is 3", "4", None, reward_router_address=None)
    assert (wrong["score"], wrong["acc"], wrong["no_answer"], wrong["reason"]) == (0.0, 0.0, 0.0, "mismatch")


def test_the_question_in_extra_info_reaches_the_scorer(adapter) -> None:
    extra_info = {"answer_type": "text", "choices": ["Yes", "No"], "question": "Are there more cubes than balls?"}
    response = "In the picture there are more balls than cubes."
    assert adapter.compute_score("mathvista", response, "No", extra_info)["acc"] == 1.0
    assert adapter.compute_score("mathvista", response, "No", {**extra_info, "question": None})["acc"] == 0.0


def test_choices_as_json_text_are_read_and_other_text_is_refused(adapter) -> None:
    extra_info = {"answer_type": "text", "choices": json.dumps(ANGLES)}
    assert adapter.compute_score("mathvista", "(C)", "60°", extra_info)["acc"] == 1.0
    with pytest.raises(ValueError, match="must be a list of choice texts"):
        adapter._choices("30°, 45°, 60°")
    # In verl's reward loop the refusal is a failed reward: scored 0 and counted, not a failed training step.
    refused = adapter.compute_score("mathvista", "(C)", "60°", {"choices": "30°, 45°, 60°"})
    assert (refused["score"], refused["acc"], refused["reward_error"], refused["reason"]) == (0.0, 0.0, 1.0,
                                                                                            "reward-error")


def test_a_failing_or_nan_reward_scores_zero_with_reward_error(adapter) -> None:
    unreadable = adapter.compute_score("geo", "<answer>3</answer>", "3", {"precision": "two"})
    nan = adapter.compute_score("geo", "<answer>3</answer>", "3", None, format_weight=math.nan)
    good = adapter.compute_score("geo", "<answer>3</answer>", "3", None)
    assert [r["score"] for r in (unreadable, nan, good)] == [0.0, 0.0, 1.0]
    assert [r["reward_error"] for r in (unreadable, nan, good)] == [1.0, 1.0, 0.0]
    assert all(isinstance(value, (float, str)) for value in unreadable.values())
    assert set(unreadable) == set(good)  # verl stacks every key over the batch


def test_loads_by_path_when_rewards_is_not_importable(tmp_path: Path) -> None:
    """In a bare interpreter (-S: no site-packages, so no editable install) run from elsewhere."""
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('custom_module_1', {str(VERL_FILE)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "result = module.compute_score('mathvista', 'The answer is (C).', '60°', "
        "{'answer_type': 'text', 'choices': ['30°', '45°', '60°']})\n"
        "print(json.dumps(result))\n"
    )
    completed = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                               timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["score"] == 1.0


def test_verl_custom_reward_loader_accepts_the_adapter() -> None:
    """verl 0.9.1's own get_custom_reward_fn, with reward_kwargs, as main_ppo would call it."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": str(VERL_FILE), "name": "compute_score", "reward_kwargs": {"summary_penalty": -0.5}}}})
    reward_fn = get_custom_reward_fn(config)
    result = reward_fn(data_source="mathvista", solution_str="<think>a</think>\n<answer>8</answer>",
                       ground_truth="7", extra_info={"answer_type": "integer"})
    assert (result["score"], result["acc"]) == (-0.5, 0.0)


@pytest.mark.parametrize("other_copy", ["imported first", "first on sys.path"])
def test_another_rewards_copy_in_the_working_directory_is_not_used(tmp_path: Path, other_copy: str) -> None:
    """A reward worker whose working directory holds another checkout's `rewards/` (a source checkout beside a
    non-editable install, a second checkout sharing the venv): verl's own loader, by path, scores with the package
    beside the file it was given. Before: "another 'rewards' package ... is already imported" (imported first) or,
    silently, the other copy's scorer (first on sys.path)."""
    checkout = tmp_path / "other-checkout"
    shutil.copytree(VERL_FILE.parent, checkout / "rewards", ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import inspect, json, sys\n"
        # The package's own folder comes after the working directory, as site-packages does.
        f"sys.path.append({str(VERL_FILE.parents[1])!r})\n"
        + ("import rewards\n" if other_copy == "imported first" else "")
        + "from verl.utils.import_utils import load_extern_object\n"
        f"compute_score = load_extern_object({str(VERL_FILE)!r}, 'compute_score')\n"
        "result = compute_score('mathvista', '<answer>8</answer>', '8', {'answer_type': 'integer'})\n"
        "named = sys.modules.get('rewards')\n"
        "print(json.dumps({'score': result['score'], 'scorer': inspect.getfile(compute_score.__globals__['score']),\n"
        "                  'rewards': named.__file__ if named else None}))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True,
                               timeout=120, check=False)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    assert found["score"] == 1.0
    assert found["scorer"] == str(VERL_FILE.parent / "core.py")
    if other_copy == "imported first":  # the other copy keeps its name: whoever imported it still has it
        assert found["rewards"] == str(checkout / "rewards" / "__init__.py")
