"""The selection pipeline on realistic reasoning text: verify, select the shortest correct chain, trim reflections,
drop chains whose kept part states another answer (distillation and self-distillation alike)."""

from __future__ import annotations

from reasoner.data.records.problem import Problem
from reasoner.data.stage.selection import reasoning_of, select, select_examples, trim_reflections, verify

MC = Problem(id="mc", question="How many red shapes?", answer="3", answer_type="text", choices=["2", "3", "4", "5"])
FREE = Problem(id="free", question="What is half of the bar?", answer="0.5", answer_type="float", precision=1)

LONG_CORRECT = (
    "<think>I count the red shapes: one at the top, one in the middle, one at the bottom. That makes 3. "
    "Wait, let me re-check the middle one. It is red. So 3 red shapes.</think>\n"
    "There are 3 red shapes.\n<answer>B</answer>"
)
SHORT_CORRECT = "<think>Red shapes: 1, 2, 3.</think>\nThree red shapes.\n<answer>3</answer>"
WRONG = "<think>I see 4 red shapes.</think>\nFour.\n<answer>C</answer>"
NO_ANSWER = "I am not sure what the image shows."


def test_verify_uses_the_shared_scorer_on_every_form():
    samples = verify([MC, FREE], [[LONG_CORRECT, SHORT_CORRECT, WRONG, NO_ANSWER], ["<answer>1/2</answer>", "0.6"]])
    assert [s.correct for s in samples[0]] == [True, True, False, False]
    assert [s.correct for s in samples[1]] == [True, False]


def test_select_rules():
    group = verify([MC], [[LONG_CORRECT, WRONG, SHORT_CORRECT]])[0]
    assert select(group, "shortest").text == SHORT_CORRECT
    assert select(group, "longest").text == LONG_CORRECT
    assert select(group, "first").text == LONG_CORRECT
    assert select(verify([MC], [[WRONG, NO_ANSWER]])[0]) is None


def test_trim_reflections_keeps_the_chain_before_the_loop():
    reasoning = reasoning_of(LONG_CORRECT)
    assert trim_reflections(reasoning) == (
        "I count the red shapes: one at the top, one in the middle, one at the bottom. That makes 3."
    )
    assert trim_reflections("Hmm. Let me look.") == "Hmm. Let me look."  # a marker at the start is not a loop
    assert trim_reflections("3 + 4 = 7. But wait, is it 8? Actually, no: 7.") == "3 + 4 = 7."
    assert trim_reflections("The waiter counts 3.") == "The waiter counts 3."


def test_select_examples_keeps_one_canonical_target_per_solved_problem():
    samples = verify([MC, FREE], [[LONG_CORRECT, WRONG], ["<think>Half of 1 is 1/2.</think> Half. <answer>1/2</answer>"]])
    examples, stats = select_examples([MC, FREE], samples)
    targets = {e.problem.id: e.target for e in examples}
    # The trimmed chain, then the option letter the prompt asks for.
    assert targets["mc"].startswith("<think>I count the red shapes") and "re-check" not in targets["mc"]
    assert targets["mc"].endswith("<answer>B</answer>")
    # "1/2" was verified equal to 0.5; the target uses the canonical answer.
    assert targets["free"].endswith("<answer>0.5</answer>")
    assert stats == {
        "problems": 2, "samples": 3, "correct_samples": 2, "pass_rate": 2 / 3, "kept": 2, "trimmed": 1,
        "dropped_no_correct": 0, "dropped_no_reasoning": 0, "dropped_contradicted": 0, "dropped_too_long": 0,
    }  # fmt: skip


def test_select_examples_drops_a_self_distilled_chain_whose_trimmed_part_states_a_wrong_answer():
    """A policy's chain that is correct only after its reflection: trimmed, it would teach the wrong answer."""
    fixed_late = (
        "<think>The red shapes are 4, so the answer is 4. Wait, the top one is orange. So 3.</think>\n"
        "Three.\n<answer>B</answer>"
    )
    samples = verify([MC, FREE], [[fixed_late, WRONG], [NO_ANSWER]], extraction="strict")
    assert samples[0][0].correct  # the whole response verifies
    examples, stats = select_examples([MC, FREE], samples)
    assert examples == []
    assert (stats["dropped_contradicted"], stats["dropped_no_correct"], stats["kept"]) == (1, 1, 0)
