"""A Qwen-style byte-level BPE tokenizer trained offline on a small built-in corpus (for tiny models only).

Digits are split one per token (as in Qwen), the Qwen chat and vision special tokens exist with their usual
names, and `<think> </think> <answer> </answer>` are single tokens so the response format is cheap to learn.
Training is deterministic: the same corpus and vocabulary size give the same tokenizer file.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from reasoner.prompts import LETTERS, PROMPTS_DIR

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)
# Not "special": they must survive `skip_special_tokens=True` because rewards read them.
FORMAT_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# Qwen-style chat template: a default system turn, `<|im_start|>role\n...<|im_end|>\n` turns, and images rendered
# as `<|vision_start|><|image_pad|><|vision_end|>` (the processor expands the pad to the image's token count).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}"
    "{{ part['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

_SENTENCES = """\
How many objects are left after you subtract all red cubes?
What is the value of the largest bar in the chart? What is the smallest value?
Find the area of the triangle. The base is 6 and the height is 4, so the area is 12.
What is the perimeter of the rectangle? Add the lengths of all four sides.
Count the circles, squares and triangles in the image. How many shapes are there in total?
Which number is missing in the sequence? Look at the pattern of the numbers.
What is the measure of angle ABC in degrees? The angles of a triangle sum to 180 degrees.
Is the line in the figure parallel to the x-axis? Answer yes or no.
Hint: Please answer the question requiring an integer answer and provide the final value.
Question: What fraction of the shape is shaded? Give the answer as a decimal.
The graph shows the function f(x) = 2x + 3. What is f(5)?
How much money does Ann need to buy a pencil and a notebook?
What is the difference between the highest and the lowest value in the table?
Subtract the number of blue spheres from the number of green cylinders.
The clock shows the time. What time will it be in two hours?
Move the ruler to measure the nail. The nail is about 3 inches long.
What is the sum of the two digits in the picture? First read each digit, then add them.
The image shows a grid of cells. Each cell holds one digit or one shape.
Let me think step by step. First, I count the items. Then I compute the result.
So the answer is 7. The final answer is B. The correct option is (C).
Choices: (A) yes (B) no (C) maybe (D) none of these
Which of the following options is correct? Answer with the option's letter.
Answer with an integer. Answer with a number with 1 decimal place. Answer with a Python list, e.g. [1, 2, 3].
The radius of the circle is 5 cm, so the diameter is 10 cm and the circumference is about 31.4 cm.
What is the mean of the numbers 4, 8, 15 and 16? The median? The mode?
There are 3 rows with 4 apples each, so there are 3 * 4 = 12 apples.
If x + 5 = 9, then x = 4. If 2y = 10, then y = 5.
The percentage is 25%. The ratio is 3:4. The probability is 0.5.
What is the color of the biggest shape? red, green, blue, yellow, purple, orange, black, white, gray
left, right, top, bottom, above, below, next to, between, inside, outside, first, second, third, last
plus, minus, times, divided by, equals, greater than, less than, more, fewer, total, each, half, double
"""


_WORDS = {
    "objects": "apple ball block car cube cylinder sphere star coin book pencil marble flower bird fish tree box cup "
    "bus bike dog cat toy shirt bottle candle clock ruler nail leaf shell stamp sticker card cookie egg",
    "colors": "red green blue yellow purple orange black white gray brown pink cyan",
    "shapes": "triangle rectangle square circle polygon hexagon pentagon octagon parallelogram trapezoid rhombus "
    "ellipse semicircle quadrilateral prism pyramid cone",
    "geometry": "angle radius diameter chord tangent arc perimeter area volume vertex edge face side hypotenuse "
    "perpendicular parallel bisector midpoint congruent similar degree segment ray line intersect inscribed",
    "algebra": "equation function variable slope intercept graph coordinate point plane quadratic linear "
    "exponential derivative limit maximum minimum increasing decreasing value expression solve",
    "statistics": "mean median mode range average probability percent percentage ratio fraction decimal integer "
    "sum difference product quotient total number numbers digit digits count table chart bar legend axis",
    "units": "cm m km mm kg g mL L dollars cents hours minutes seconds years days inches feet meters units",
    "english": "about after again against all almost along also always among animal another any around ask "
    "away back become before begin behind being best better between big both bottom bought boy bring build buy "
    "can carry change child children city class close come could cut dark day did different do does done down "
    "draw during each early earth eat end enough even every example eye fall far fast few fill find fit follow "
    "food for found four friend from full gave get girl give go good great group grow half hand happen has have "
    "he her here high him his hold home house idea if into it its just keep kind know land large last late left "
    "less let light like little live long look low made make man many may me might more most move must my name "
    "near need never new night no not now off often old once one only open other our out over own paper part "
    "people place plan play put read real right room round run said same saw say school sea see seem set she "
    "should show simple small some something sometimes start still stop story such sure take tall teacher tell "
    "than that their them these they thing think this those three through time to together too took top toward "
    "turn two under until up upon us use very walk want was water way we week well went were while who whole "
    "why will with without word work world would write year yes yet you young your",
    "reasoning": "therefore because since thus hence first next then finally step compute calculate measure "
    "compare estimate check verify answer question option choice correct incorrect hint image figure picture "
    "diagram shown below above which what how many much whose where when is are the of in on and or",
}


CORPUS_TEMPLATES = ("caption", "mathvista_hints", "mathvista_query", "reason", "reason_from_caption")
"""The prompt templates (configs/prompts/) the tiny tokenizer is trained on: a fixed list, so that adding a template
leaves every tiny model (its tokenizer, hence its weights and results) as it was. A template added later is
tokenised in smaller pieces."""


def corpus() -> Iterator[str]:
    """The built-in training text: math word sentences, the prompt templates, numbers, options and formats."""
    yield from _SENTENCES.splitlines()
    for name in CORPUS_TEMPLATES:
        yield (PROMPTS_DIR / f"{name}.txt").read_text(encoding="utf-8")
    yield " ".join(str(n) for n in range(1000))
    yield (
        " ".join(f"({letter})" for letter in LETTERS)
        + " "
        + " ".join(LETTERS)
        + " "
        + " ".join(LETTERS.lower())
    )
    for a, b in itertools.product(range(10), repeat=2):
        yield f"{a} + {b} = {a + b}. {a} - {b} = {a - b}. {a} * {b} = {a * b}. The answer is {a + b}."
    words = {group: text.split() for group, text in _WORDS.items()}
    for group in words.values():
        yield " ".join(group) + ". " + " ".join(w.capitalize() for w in group) + "."
    # Templated sentences so that whole words, not just their pieces, become frequent enough to merge.
    for i, (obj, color) in enumerate(itertools.product(words["objects"], words["colors"])):
        shape = words["shapes"][i % len(words["shapes"])]
        yield f"There are {i % 9 + 2} {color} {obj}s next to the {shape}. How many {obj}s are {color}?"
    for i, (term, unit) in enumerate(itertools.product(words["geometry"] + words["algebra"], words["units"])):
        stat = words["statistics"][i % len(words["statistics"])]
        yield f"The {term} is {i % 97} {unit}. What is the {stat} of the {term}s in the figure?"
    english = words["english"]
    for i, word in enumerate(english):
        yield f"{word.capitalize()} {english[(i * 7) % len(english)]} {english[(i * 13) % len(english)]} {word}."
    yield "system user assistant You are a helpful assistant."


def build_tokenizer(vocab_size: int):
    """Train the byte-level BPE and wrap it as a `PreTrainedTokenizerFast` with the Qwen chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS) - len(FORMAT_TOKENS),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus(), trainer=trainer)
    # Added after training so regular tokens come first and these get the highest ids, as in Qwen.
    bpe.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t in FORMAT_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
