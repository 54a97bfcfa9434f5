"""MATH-Vision's own rule-based judgement (no GPT), written anew from the rules of mathllm/MATH-V
`evaluation/evaluate.py` and `evaluation/utils.py`.

Extraction (`official_answer`), applied to the stripped response, in this order:
1. a response ending in " B." / " (B)." or starting with "B\\n" / "(B)\\n" / "(B) B\\n" becomes "B" (A-E);
2. when the text after its last "is " (a final "." dropped) parses as a Python float, that text is the answer;
3. without any "oxed{": the text after the last "the final answer is", "the answer is", "the correct answer is",
   "the answer should be" (each also capitalised "The ..."), cut at the first line end and the first ". ";
   with two or more "oxed{": only the last `\\boxed{...}` is kept;
4. `find_math_answer`: lower case; the greedy span of `oxed{...}`; cut at a "}" that closes nothing; the part
   after the last "=" and "\\approx"; spaces, `\\text`, `\\left`/`\\right`, degree signs, "$", "\\%" and a few
   unit words (m^3, units, km) removed; `tfrac`/`dfrac` -> `frac`; `a/b` -> `\\frac{a}{b}`; "0.5" ->
   `\\frac{1}{2}`; then "(a)".."(e)" and "{a}".."{e}" -> the letter, and a final "." / leading ":" dropped.

Equality (`is_equal`), case-insensitive: empty -> wrong; equal after stripping -> right; tuples "(a,b)" /
lists "[a,b]" compared after rounding each element to 2 decimals; else both sides evaluated as numbers and
compared after rounding to 2 decimals (a side that is no number -> wrong). A response is right when its answer
equals the gold answer (the option letter for multiple choice) or the gold option's text.

Where we differ from the official script (documented in the README):
- our `<answer>...</answer>` tag: when a response has one, the rules above run on the last tag's content. The
  official script reads the whole text and so misses tagged answers ("...</answer>" ends no pattern);
- numbers are evaluated with plain Python for decimals and fractions, and with math-verify's LaTeX parser (in a
  worker process, bounded by `timeout_s`) for other expressions, where the official script uses latex2sympy2 and
  Python's `eval`; a bare name that `math` happens to define ("e", "pi" without a backslash) is no number here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .equivalence import DEFAULT_TIMEOUT_S, default_pool
from .extract import answer_tag_content
from .numeric import parse_fraction

OPTION_LETTERS = "ABCDE"
ANSWER_FLAGS = ("the final answer is", "the answer is", "the correct answer is", "the answer should be")
_BOXED_RE = re.compile(r"oxed{(.*)}", re.DOTALL)
_PLAIN_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?")
_INTEGER_RE = re.compile(r"[+-]?\d+")
# Removed by the official `find_math_answer` before `_strip_string`, in this order.
_ANSWER_CLEANUPS = (
    (" ", ""), ("\\,", ""), ("∞", "\\infty"), ("+\\infty", "\\infty"), ("\\\\", "\\"), ("\n", ""),
    ("\\text", ""), ("\\mbox", ""), ("bmatrix", "pmatrix"), ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""),
    ("^\\circ", ""), ("{m}^3", ""), ("m^3", ""), ("{units}", ""), ("units", ""), ("{km}", ""), ("km", ""),
)  # fmt: skip
_STRIP_CLEANUPS = (
    ("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""),
    ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""), ("$", ""),
)  # fmt: skip


@dataclass(frozen=True)
class MathVisionJudgement:
    """One response judged: `correct`; `extracted` (the answer the rules read); `rule` (answer_tag: our tag's
    content was read, official: the whole response); `matched` (letter | option | none: which gold side)."""

    correct: bool
    extracted: str
    rule: str
    matched: str


def judge(
    response: str, gold: str, gold_option: str = "", *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> MathVisionJudgement:
    """Judge a response against the gold answer (the option letter for multiple choice, else the value) and
    the gold option's text ("" for free-form problems)."""
    tag = answer_tag_content(response or "")
    rule = "answer_tag" if tag is not None else "official"
    extracted = official_answer(tag if tag is not None else response or "")
    if is_equal(gold, extracted, timeout_s=timeout_s):
        return MathVisionJudgement(True, extracted, rule, "letter" if gold_option else "value")
    if is_equal(gold_option, extracted, timeout_s=timeout_s):
        return MathVisionJudgement(True, extracted, rule, "option")
    return MathVisionJudgement(False, extracted, rule, "none")


def official_answer(response: str) -> str:
    """The answer the official rules read from a response (steps 1-4 of the module docstring)."""
    text = _option_letter_ending(response.strip())
    tail = text.split("is ")[-1].rstrip(".")
    if _is_python_float(tail):
        text = tail
    if "oxed{" not in text:
        for flag in ANSWER_FLAGS:
            text = _after_flag(_after_flag(text, flag), flag.replace("the", "The"))
    elif text.count("oxed{") > 1:
        text = "\\boxed{" + text.split("oxed{")[-1]
    text = find_math_answer(text)
    for letter in "abcde":
        text = text.replace(f"({letter})", letter).replace(f"{{{letter}}}", letter)
    return text.rstrip(".").lstrip(":").strip()


def _option_letter_ending(text: str) -> str:
    for letter in OPTION_LETTERS:
        if text.endswith((f" {letter}.", f" ({letter}).")) or text.startswith(
            (f"{letter}\n", f"({letter})\n", f"({letter}) {letter}\n")
        ):
            text = letter
    return text


def _is_python_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _after_flag(text: str, flag: str) -> str:
    after = text.split(flag)[-1].strip()
    return after.split("\n")[0].split(". ")[0] if flag in text else after


def find_math_answer(text: str) -> str:
    """The official answer normalisation (step 4 of the module docstring), before the letter clean-up."""
    text = text.lower().replace("{}", "")
    boxed = _BOXED_RE.findall(text)
    answer = boxed[-1] if boxed else text
    close, open_ = answer.find("}"), answer.find("{")
    if close != -1 and (open_ == -1 or close < open_):
        answer = answer.split("}")[0]
    answer = answer.split("=")[-1].split("\\approx")[-1]
    for old, new in _ANSWER_CLEANUPS:
        answer = answer.replace(old, new)
    return _strip_string(answer)


def _strip_string(text: str) -> str:
    for old, new in _STRIP_CLEANUPS:
        text = text.replace(old, new)
    text = text.split("\\text{ ")[0].replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    for separator in ("=", "\\approx"):
        if len(text.split(separator)) == 2:
            text = text.split(separator)[-1]
    if "sqrt" in text:
        text = _brace_sqrt(text)
    text = text.replace(" ", "")
    if "sqrt" in text:
        text = _brace_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _slash_to_frac(text)


def _brace_sqrt(text: str) -> str:
    """`\\sqrt2` -> `\\sqrt{2}` (one character)."""
    head, *parts = text.split("\\sqrt")
    return head + "".join(
        "\\sqrt{" + part[0] + "}" + part[1:] if part and part[0] != "{" else "\\sqrt" + part for part in parts
    )


def _brace_fracs(text: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{2}` -> `\\frac{1}{2}`; unchanged when a `\\frac` has < 2 chars."""
    head, *parts = text.split("\\frac")
    out = head
    for part in parts:
        if part.startswith("{"):
            out += "\\frac" + part
        elif len(part) < 2:
            return text
        elif part[1] != "{":
            out += "\\frac{" + part[0] + "}{" + part[1] + "}" + part[2:]
        else:
            out += "\\frac{" + part[0] + "}" + part[1:]
    return out


def _slash_to_frac(text: str) -> str:
    """`3/4` -> `\\frac{3}{4}` when both sides are integers written plainly."""
    parts = text.split("/")
    if len(parts) != 2 or not all(_INTEGER_RE.fullmatch(p) for p in parts):
        return text
    top, bottom = int(parts[0]), int(parts[1])
    return f"\\frac{{{top}}}{{{bottom}}}" if text == f"{top}/{bottom}" else text


def is_equal(gold: str, answer: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """The official equality: text, then tuples element-wise, then numbers, each to 2 decimals."""
    gold, answer = gold.lower(), answer.lower()
    if not gold.replace(" ", "") or not answer.replace(" ", ""):
        return False
    if gold.strip() == answer.strip():
        return True
    gold, answer = _rounded_tuple(gold, timeout_s), _rounded_tuple(answer, timeout_s)
    if gold == answer:
        return True
    gold_value = number_value(gold, timeout_s)
    if gold_value is None:
        return False
    answer_value = number_value(answer, timeout_s)
    return answer_value is not None and round(gold_value, 2) == round(answer_value, 2)


def _rounded_tuple(text: str, timeout_s: float) -> str:
    """ "(2*3, 5)"-style tuples and lists with each element rounded to 2 decimals; other text unchanged."""
    if len(text) < 2 or (text[0], text[-1]) not in (("(", ")"), ("[", "]")):
        return text
    elements = text[1:-1].split(",")
    if len(elements) < 2:
        return text
    rounded = []
    for element in elements:
        if "infty" in element or element in ("a", "-a"):
            rounded.append(element)
            continue
        value = number_value(element, timeout_s)
        if value is None:
            return text
        rounded.append(str(round(value, 2)))
    return text[0] + ",".join(rounded) + text[-1]


def number_value(text: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> int | float | None:
    """The number a text denotes (an int for a plain integer, as the official eval gives), or None."""
    text = text.strip()
    if _INTEGER_RE.fullmatch(text):
        return int(text)
    if _PLAIN_NUMBER_RE.fullmatch(text):
        return float(text)
    fraction = parse_fraction(text)
    if fraction is not None:
        return fraction
    if not re.search(r"\d|\\[a-z]", text) or "$" in text:
        # Letters and words are symbols, never numbers; latex2sympy reads no "$" (the official eval fails there).
        return None
    verdict = default_pool().evaluate(text, timeout_s=timeout_s)
    return verdict.value
