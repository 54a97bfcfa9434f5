"""Realistic free-text answers of VLMs, scored the way MathVista's GPT-4 extraction + normalisation would."""

from __future__ import annotations

import pytest

from rewards import score

ANGLES = ["30°", "45°", "60°", "90°"]
YES_NO = ["Yes", "No"]
COUNTS = ["2", "4", "6", "8"]
FUNCTIONS = ["a polynomial", "a trigonometric function", "an exponential function", "a logarithmic function"]
CLOCK = ["half", "quarter", "o'clock", "quarter to", "quarter past"]
LETTER_CHOICES = ["(c)", "(a)", "(e)", "(d)", "(b)"]  # MathVista pids 168 / 849

# (response, ground truth, scorer options, expected accuracy)
CASES = [
    # hedged
    ("I think it's about 5 cm", "5", {"answer_type": "integer"}, 1.0),
    ("It looks like there are roughly 12 birds in the picture.", "12", {"answer_type": "integer"}, 1.0),
    ("Probably 3.", "3", {"answer_type": "integer"}, 1.0),
    ("I would guess around 2.5 or so", "2.5", {"answer_type": "float", "precision": 1}, 1.0),
    ("I'm fairly sure it is the exponential one: an exponential function", "an exponential function",
     {"answer_type": "text", "choices": FUNCTIONS}, 1.0),
    # units
    ("The total volume of the measuring cup is 1000 g.", "1000", {"answer_type": "integer", "unit": "g"}, 1.0),
    ("The age gap is 7 years.", "7", {"answer_type": "integer", "unit": "years"}, 1.0),
    ("7 years", "7", {"answer_type": "integer", "unit": "years"}, 1.0),
    ("The perimeter is 24.5 cm.", "24.5", {"answer_type": "float", "precision": 1}, 1.0),
    ("It costs $1.45 in total.", "1.45", {"answer_type": "float", "precision": 2}, 1.0),
    ("The percentage is 45%.", "45", {"answer_type": "integer"}, 1.0),
    ("The population is 1,234 people.", "1234", {"answer_type": "integer"}, 1.0),
    ("The angle measures 65 degrees.", "65", {"answer_type": "integer"}, 1.0),
    ("x = 12.5", "12.5", {"answer_type": "float", "precision": 1}, 1.0),
    ("The answer is 0.5 (or 50%).", "0.5", {"answer_type": "float", "precision": 1}, 1.0),
    ("<answer>0.5 (or 50%)</answer>", "0.5", {"answer_type": "float", "precision": 1}, 1.0),
    ("<answer>There are 2 red and 3 blue cubes, so 5</answer>", "5", {"answer_type": "integer"}, 1.0),
    ("Answer: 12 cubes, 3 per row", "12", {"answer_type": "integer"}, 1.0),
    ("The answer is 12 + 3 = 15.", "15", {"answer_type": "integer"}, 1.0),
    ("The slope is −4.3", "-4.3", {"answer_type": "float", "precision": 1}, 1.0),
    # option text instead of the letter
    ("The answer is 45°.", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("The measure of angle 1 is 45 degrees.", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("an exponential function", "an exponential function", {"answer_type": "text", "choices": FUNCTIONS}, 1.0),
    ("Yes, the bar for 2019 is higher than the one for 2018.", "Yes", {"answer_type": "text", "choices": YES_NO}, 1.0),
    ("no", "No", {"answer_type": "text", "choices": YES_NO}, 1.0),
    ("The clock shows quarter past six.", "quarter past", {"answer_type": "text", "choices": CLOCK}, 1.0),
    ("There are 2 rows of 3 cubes, so there are 6 cubes.", "6", {"answer_type": "text", "choices": COUNTS}, 1.0),
    ("(b)", "(b)", {"answer_type": "text", "choices": LETTER_CHOICES}, 1.0),
    ("The answer is (E).", "(b)", {"answer_type": "text", "choices": LETTER_CHOICES}, 1.0),
    ("The answer is (B).", "(b)", {"answer_type": "text", "choices": LETTER_CHOICES}, 0.0),
    # refusals are wrong, whatever the nearest choice would be
    ("I'm sorry, I can't determine the answer from this image.", "30°", {"answer_type": "text", "choices": ANGLES}, 0.0),
    ("Cannot be determined from the image.", "No", {"answer_type": "text", "choices": YES_NO}, 0.0),
    ("Sorry, I cannot help with that.", "No", {"answer_type": "text", "choices": YES_NO}, 0.0),
    ("I cannot determine the exact number of people.", "3", {"answer_type": "integer"}, 0.0),
    ("", "Yes", {"answer_type": "text", "choices": YES_NO}, 0.0),
    ("   ", "7", {"answer_type": "integer"}, 0.0),
    # other languages
    ("答案是：C。", "60°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("因此，正确答案是 45°。", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("所以选B", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("答案：12", "12", {"answer_type": "integer"}, 1.0),
    ("La respuesta correcta es la B.", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("Respuesta: 12", "12", {"answer_type": "integer"}, 1.0),
    ("La réponse est (D).", "90°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("Réponse : 7", "7", {"answer_type": "integer"}, 1.0),
    ("Die Antwort ist 3,5.", "3.5", {"answer_type": "float", "precision": 1}, 1.0),
    ("Antwort: B", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    # a letter alone on the last line
    ("Looking at the chart, the tallest bar belongs to Canada.\nB", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("Comparing the two angles carefully.\n\n**C**", "60°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("Step 1: measure.\nStep 2: compare.\n(D)", "90°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("The angle is acute but not the smallest one.\nB.", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("B\nBecause the two sides are equal, the base angles are 45° each.", "45°",
     {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("I believe it is closer to C.", "60°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    # "A:" used as "Answer:"
    ("Q: How many birds are there?\nA: 4", "4", {"answer_type": "integer"}, 1.0),
    ("A: 45°", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("The options are:\nA: 30°\nB: 45°\nC: 60°\nD: 90°\nThe correct one is B.", "45°",
     {"answer_type": "text", "choices": ANGLES}, 1.0),
    # long chains: the final number counts
    ("First, count the red cubes: 3. Then the blue ones: 4. Adding them: 3 + 4 = 7. Removing 2 gives 5.", "5",
     {"answer_type": "integer"}, 1.0),
    ("The triangle has legs 3 and 4, so its area is 3*4/2 = 6", "6", {"answer_type": "integer"}, 1.0),
    ("There are 5 birds, and one of them is flying.", "5", {"answer_type": "integer"}, 1.0),
    ("In 2014 sales were 20; in 2015 they were 35, so the increase is 15.", "15", {"answer_type": "integer"}, 1.0),
    ("Angle A is 30°, angle B is 60°, so angle C = 180° - 30° - 60° = 90°.", "90°",
     {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("The first bar is 12 and the second is 30. Therefore, the difference is 18.", "12", {"answer_type": "integer"}, 0.0),
    # "the answer is (C) 45°" and friends: the letter wins over the text, as in GPT-4's extraction
    ("The answer is (C) 60°.", "60°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("the answer is (C) 45°", "60°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("The correct answer is option B.", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("Option B is correct.", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("C is the midpoint of AB, and angle ACB is 45 degrees.", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("**Answer:** (B) 45°", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("B. 45°", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("The answer is: **B**", "45°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("The answer is 50°, not 60°.", "60°", {"answer_type": "text", "choices": ["50°", "60°"]}, 0.0),
    ("The answer is C because angle ABC is larger.", "60°", {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("Final Answer: The final answer is $\\boxed{24}$. I hope it is correct.", "24", {"answer_type": "integer"}, 1.0),
    # think/answer responses
    ("<think>The base angles are equal, so each is 45°.</think>\n<answer>B</answer>", "45°",
     {"answer_type": "text", "choices": ANGLES}, 1.0),
    ("<think>12 + 3 = 15.</think> So there are 15.\n<answer>\\boxed{15}</answer>", "15", {"answer_type": "integer"}, 1.0),
    ("<think>The answer is 15.</think>\n<answer>16</answer>", "15", {"answer_type": "integer"}, 0.0),
    ("<think>The answer is 15.</think>\n<answer></answer>", "15", {"answer_type": "integer"}, 0.0),
    # MathVista's numeric rules
    # An integer item answered with a fraction is wrong, never truncated (the published verdicts); whole stays whole.
    ("5.7", "5", {"answer_type": "integer"}, 0.0),
    ("The mean of 4, 5 and 6 is 5.00.", "5", {"answer_type": "integer"}, 1.0),
    ("The lowest accuracy is 0." + "9" * 40 + ".", "1", {"answer_type": "integer"}, 0.0),
    ("The answer is 7.071", "7.07", {"answer_type": "float", "precision": 2.0}, 1.0),
    ("7.1", "7.07", {"answer_type": "float", "precision": 2}, 0.0),
    ("\\boxed{\\frac{3}{4}}", "0.75", {"answer_type": "float", "precision": 2}, 1.0),
    ("seven", "7", {"answer_type": "integer"}, 1.0),
    ("There are seven apples on the table.", "7", {"answer_type": "integer"}, 1.0),
    ("The line graph peaks between 2014 and 2016.", "[2014, 2016]", {"answer_type": "list"}, 1.0),
    ("[2014,2016]", "[2014, 2016]", {"answer_type": "list"}, 1.0),
    ("The chain code is [0, 2, 0, 2, 1, 7, 1, 2, 0, 3, 0, 6].", "[0, 2, 0, 2, 1, 7, 1, 2, 0, 3, 0, 6]",
     {"answer_type": "list"}, 1.0),
    ("[2014, 2015]", "[2014, 2016]", {"answer_type": "list"}, 0.0),
]


@pytest.mark.parametrize(("response", "ground_truth", "options", "expected"), CASES,
                         ids=[f"{i}-{case[0][:30]}" for i, case in enumerate(CASES)])
def test_realistic_response(response: str, ground_truth: str, options: dict, expected: float) -> None:
    result = score(response, ground_truth, **options)
    assert result.accuracy == expected, result


@pytest.mark.parametrize("response", [
    "I'm sorry, I can't determine the answer from this image.",
    "The image is too blurry; it is not possible to tell.",
    "",
])
def test_refusals_never_land_on_a_choice(response: str) -> None:
    """The official nearest-choice step would map these onto the shortest choice; here they have no prediction."""
    for gold in ANGLES:
        result = score(response, gold, answer_type="text", choices=ANGLES)
        assert result.accuracy == 0.0 and result.prediction is None
        assert result.reason in ("refusal", "no-answer")


def test_unmarked_text_lands_on_the_nearest_choice_like_the_official_scorer() -> None:
    result = score("expontial functon", "an exponential function", answer_type="text", choices=FUNCTIONS)
    assert (result.prediction, result.mapping, result.accuracy) == ("an exponential function", "nearest", 1.0)


def test_result_names_rule_and_reason() -> None:
    result = score("Looking closely, the answer is (C) 60°.", "60°", answer_type="text", choices=ANGLES)
    assert (result.extracted, result.rule, result.prediction, result.reason) == ("(C) 60°", "answer_is", "60°", "match")
    wrong = score("The answer is 6", "5", answer_type="integer")
    assert (wrong.prediction, wrong.reason) == ("6", "mismatch")
    nothing = score("", "5", answer_type="integer")
    assert (nothing.extracted, nothing.rule, nothing.reason) == (None, "none", "no-answer")
