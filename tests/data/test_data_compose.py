"""The compositional perception world: families, hard negatives and positives, splits, gold round trips."""

from __future__ import annotations

import pytest

from reasoner.data.worlds.compose import LEVEL_SETTINGS, generate_compose, scene_split
from reasoner.data.worlds.perception import FAMILIES
from reasoner.errors import ReasonerError
from reasoner.eval.runner import score


@pytest.mark.parametrize("level", [1, 2, 3])
def test_every_family_with_twins_negatives_and_stated_ranges(level):
    problems = generate_compose([], 12, level=level, seed=3, split="eval")
    by_family = {f: [p for p in problems if p.metadata["family"] == f] for f in FAMILIES}
    assert all(by_family.values())
    low, high = LEVEL_SETTINGS[level].count_range
    for p in problems:
        meta = p.metadata
        assert meta["split"] == "eval" and meta["level"] == level
        if meta["family"] == "counting":
            assert f"from {low} to {high}" in p.question and low <= int(p.answer) <= high
            assert meta["chance"] == pytest.approx(1 / (high - low + 1))
            continue
        assert p.answer in p.choices and set(meta["hard_negatives"]) == set(p.choices) - {p.answer}
        assert meta["chance"] == pytest.approx(1 / len(p.choices))
        assert p.reasoning.endswith(f"That is option {p.answer_label()}.")
    twins = [p for p in problems if p.metadata["variant"] == "hard_positive"]
    assert len(twins) == 10  # one per caption item (2 scenes x 5 caption families)
    for twin in twins:
        original = next(p for p in problems if p.id == twin.metadata["pair"])
        assert twin.answer in original.metadata["hard_positives"] and twin.answer != original.answer
        assert twin.images == original.images and twin.choices != original.choices


def test_hard_negatives_are_the_published_perturbations():
    drawn = generate_compose([], 6, level=2, seed=0)
    problems = {p.metadata["family"]: p for p in drawn if p.metadata["variant"] == "original"}
    rel = problems["relation"]
    [negative] = rel.metadata["hard_negatives"]
    assert sorted(negative.split()) == sorted(rel.answer.split()) and negative != rel.answer  # subject/object swap
    att = problems["attribution"]
    [negative] = att.metadata["hard_negatives"]
    assert sorted(negative.split()) == sorted(att.answer.split())  # attributes swapped between the two objects
    assert len(problems["order"].choices) == 5 and len(problems["spatial"].choices) == 4
    neg = problems["negation"]
    assert " not " in neg.answer and all(" not " in n for n in neg.metadata["hard_negatives"])


def test_answer_positions_are_balanced_and_wording_alone_does_not_tell():
    problems = [p for p in generate_compose(["relation"], 200, level=1, seed=1) if p.metadata["variant"] == "original"]
    first = sum(p.choices.index(p.answer) == 0 for p in problems)
    assert 70 <= first <= 130
    # The true caption says "left of"/"above" as often as the converse wording.
    converse = sum(" right of " in p.answer or " below " in p.answer for p in problems)
    assert 70 <= converse <= 130


def test_no_caption_item_is_answered_by_its_text(text_lookup):
    """Where an item's exact question and options recur in another set, the answer seen there is right here at
    about chance (the negation twin offered "a square that is red" beside "... not red": 100%). `order` items never
    recur (shuffled options), and are answerable from the text by design: ARO's shuffled negatives are
    ungrammatical (README "Perception")."""
    fit, test = (generate_compose([], 1200, level=1, seed=seed) for seed in (11, 12))
    twin = {"original": ""}
    hits = text_lookup(fit, test, lambda p: p.metadata["family"] + twin.get(p.metadata["variant"], "/twin"))
    rates = {group: sum(h) / len(h) for group, h in hits.items() if len(h) >= 50}
    assert "negation/twin" in rates and all(rate < 0.65 for rate in rates.values()), rates


def test_train_and_eval_never_share_a_scene():
    train = generate_compose([], 120, level=1, seed=1, split="train")
    evals = generate_compose([], 60, level=1, seed=2, split="eval")
    assert not {p.images[0].sha256() for p in train} & {p.images[0].sha256() for p in evals}
    prefix = generate_compose([], 6, level=1, seed=2, split="eval")
    assert prefix == evals[: len(prefix)]  # deterministic: a smaller set is the start of a larger one


def test_gold_scores_100_guessing_sits_at_chance():
    problems = generate_compose([], 300, level=2, seed=4, split="eval")
    gold = {p.id: f"<answer>{p.answer_label()}</answer>" for p in problems}
    scores, _ = score(problems, gold, "perception")
    assert scores["accuracy"] == 100.0 and scores["breakdown"]["family"]["pair"]["accuracy"] == 100.0
    guess = {p.id: "<answer>A</answer>" if p.choices else "<answer>5</answer>" for p in problems}
    rows = score(problems, guess, "perception")[0]["breakdown"]["family"]
    for family in ("relation", "attribution", "negation", "hard_positive"):
        assert abs(rows[family]["accuracy"] - rows[family]["chance"]) < 15, (family, rows[family])


def test_bad_family_and_level_are_named():
    with pytest.raises(ReasonerError, match="allowed: relation, attribution"):
        generate_compose(["colour"], 2)
    with pytest.raises(ReasonerError, match="level 4 is not allowed"):
        generate_compose([], 2, level=4)
    assert scene_split("0" * 64) == "eval" and scene_split("f" * 64) == "train"
