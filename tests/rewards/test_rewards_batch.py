"""score_batch: same results as score, in order, with one process or several."""

from __future__ import annotations

import pytest

from rewards import RECIPE_WEIGHTS, score, score_batch


def _items() -> list[dict]:
    items = []
    for index in range(300):
        gold = str(index % 17)
        items.append({"response": f"<think>counting</think>\n<answer>{index % 13}</answer>", "ground_truth": gold,
                      "answer_type": "integer"})
        items.append({"response": f"The answer is ({'ABC'[index % 3]}).", "ground_truth": "45°",
                      "choices": ["30°", "45°", "60°"], "answer_type": "text"})
    return items


def _expected(items: list[dict], **options) -> list:
    return [score(**item, **options) for item in items]


def test_one_worker_keeps_order() -> None:
    items = _items()
    assert score_batch(items) == _expected(items)


def test_two_worker_processes_keep_order_and_weights() -> None:
    items = _items()
    results = score_batch(items, workers=2, weights=RECIPE_WEIGHTS)
    assert results == _expected(items, weights=RECIPE_WEIGHTS)
    assert sum(result.accuracy for result in results) == sum(result.accuracy for result in _expected(items))


@pytest.mark.parametrize(("item", "message"), [
    ({"response": "7"}, "item 0: missing keys ['ground_truth']"),
    ({"response": "7", "ground_truth": "7", "answer": "7"}, "unknown keys ['answer']"),
])
def test_bad_items_are_named(item: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        score_batch([item])


def test_bad_arguments_name_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="answer_type 'number' is not one of"):
        score("7", "7", answer_type="number")
    with pytest.raises(ValueError, match="precision 'two'"):
        score("7", "7", answer_type="float", precision="two")
    with pytest.raises(ValueError, match="ground truth '75°' is none of the choices"):
        score("B", "75°", choices=["30°", "45°"])


def test_a_letter_ground_truth_names_its_choice() -> None:
    assert score("45°", "B", choices=["30°", "45°"]).accuracy == 1.0
    assert score("(A)", "(B)", choices=["30°", "45°"]).accuracy == 0.0
