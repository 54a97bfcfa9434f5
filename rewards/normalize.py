"""MathVista's normalisation of free-form answers (lupantech/MathVista evaluation/calculate_score.py).

Kept exactly as the published verdicts: integers are `str(int(x))` of a whole number (a fractional one is
wrong, never truncated), floats `str(round(float(x), int(precision)))`,
lists `str(list)`; the prediction then equals the answer string exactly or not at all. Numbers are read the way
GPT-4 extraction reads them ("1,000", "45°", "50%", "seven", "3/4", "5 cm"). Multiple choice lives in
`rewards.choices`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .extract import BRACKET_LIST_RE, clean_answer, is_mathy, looks_like_expression
from .numeric import (
    find_number_words,
    find_numbers,
    format_list_element,
    last_number,
    parse_plain_number,
)

UNIT_NOISE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|°|\\%|%|\\[,;!]|~|\\\$|\$|\\degree|degrees?\b")
TRAILING_WORDS_RE = re.compile(r"^\s*(\S+?)\s*((?:[A-Za-z\u4e00-\u9fff²³/]+\.?\s*){1,3})$")
PAREN_ASIDE_RE = re.compile(r"\([^()]*\)")
NONZERO_DECIMALS_RE = re.compile(r"\d\.\d*[1-9]")
DECIMAL_COMMA_RE = re.compile(r"^-?\d+,\d{1,2}$")
EQUALS_RE = re.compile(r"=|≈|\\approx|\\simeq")
BETWEEN_RE = re.compile(r"(?:between|from)\s+(\S+)\s+(?:and|to)\s+(\S+)", re.IGNORECASE)


# A short answer with words after its number ("5 cm"); longer text is prose, which this pattern would backtrack
# over quadratically.
TRAILING_WORDS_MAX_CHARS = 200
SEVERAL_ANSWERS_RE = re.compile(r"\d\s+[-−]?\d|,|;|\bor\b|\band\b|\n", re.IGNORECASE)


def fold(text: str) -> str:
    """A comparison key insensitive to case, spaces and degree/percent signs."""
    return re.sub(r"\s+", "", UNIT_NOISE_RE.sub("", clean_answer(text))).casefold()


def strip_units(text: str, unit: str | None = None) -> str:
    """`text` without its unit (the item's `unit` field), degree and percent signs or currency symbols."""
    cleaned = clean_answer(text)
    if unit and unit.strip():
        cleaned = re.sub(r"(?<![A-Za-z])" + re.escape(unit.strip()) + r"(?![A-Za-z])", " ", cleaned)
    return re.sub(r"\s+", " ", UNIT_NOISE_RE.sub(" ", cleaned)).strip()


@dataclass(frozen=True)
class NumberReading:
    """What `read_number` made of a span: kind "number" (with value), "expression" (text needs evaluating,
    e.g. "2\\sqrt{3}" or "9^{9^9}") or "none"; `text` is the span without units and without "x =" in front."""

    value: float | None
    kind: str
    text: str


def read_number(span: str, unit: str | None = None, *, first: bool = False) -> NumberReading:
    """Read one number out of an answer span ("5 cm", "x = 5", "about 5", "1,000", "45°", "seven", "3/4").

    In a span of prose, asides in parentheses are dropped and the last number counts, or the first one with
    `first` (for spans after "the answer is" / "Answer:", where the answer leads: "12 cubes, 3 per row").
    """
    text = strip_units(span, unit)
    parts = EQUALS_RE.split(text)
    if len(parts) > 1 and parts[-1].strip():
        text = parts[-1].strip()  # "x = 5", "AB = 2\sqrt{3} ≈ 3.46"
    if not text:
        return NumberReading(None, "none", text)
    if DECIMAL_COMMA_RE.match(text):  # "3,5" (German, French, Spanish); "3,500" stays three thousand five hundred
        text = text.replace(",", ".")
    value = parse_plain_number(text)
    if value is not None:
        return NumberReading(value, "number", text)
    with_words = TRAILING_WORDS_RE.match(text) if len(text) <= TRAILING_WORDS_MAX_CHARS else None  # "5 cm", "20海里"
    if with_words:
        value = parse_plain_number(with_words.group(1))
        if value is not None:
            return NumberReading(value, "number", text)
    if looks_like_expression(text) and is_mathy(text) and (find_numbers(text) or "\\" in text):
        return NumberReading(None, "expression", text)
    without_asides = PAREN_ASIDE_RE.sub(" ", text)  # "5 (2 red + 3 blue)", "0.5 (or 50%)"
    if find_numbers(without_asides):
        text = without_asides
    numbers = find_numbers(text)
    number = numbers[0] if first and numbers else last_number(text)
    return NumberReading(number.value, "number", text) if number is not None else NumberReading(None, "none", text)


def holds_one_answer(span: str, unit: str | None = None) -> bool:
    """True when `span` gives one answer: one number ("x = 5 cm", "1,000"), one expression ("2\\sqrt{3}", "3/4")
    or no number at all; False for lists, alternatives and sentences with several numbers ("[3, 5]", "3 or 5",
    "2 red and 3 blue"). The strict extraction mode wants this of an `<answer>` tag."""
    text = EQUALS_RE.split(strip_units(span, unit))[-1].strip()
    numbers = find_numbers(text)
    if len(numbers) <= 1 and not BRACKET_LIST_RE.search(text):
        return True
    return is_mathy(text) and not SEVERAL_ANSWERS_RE.search(text)


def normalize_integer(value: float) -> str:
    """MathVista's integer form `str(int(x))` of a whole number (see `is_whole` for the others)."""
    return str(int(value))


def is_whole(value: float, written: str = "") -> bool:
    """True for a whole number, written without non-zero decimals ("7", "7.00"; not "1.5", nor "0.999...9",
    which a float rounds to 1). An integer answer that is not whole is wrong: MathVista's published verdicts
    never truncate it (its current `evaluation/` code would: `int(float("1.5"))` is 1; every one of the 49
    fractional extractions for integer items in the five published result files was scored wrong)."""
    return float(value).is_integer() and not NONZERO_DECIMALS_RE.search(written)


def normalize_float(value: float, precision: float | int) -> str:
    """MathVista's float form: `str(round(float(x), int(precision)))`; precision may arrive as 2.0."""
    return str(round(value, int(precision)))


def normalize_list(span: str | None) -> str | None:
    """MathVista's list form `str(list)`: "[1,2]", "(1, 2)", "between 1 and 2" -> "[1, 2]"; None if no list."""
    if not span:
        return None
    text = clean_answer(span)
    bracketed = BRACKET_LIST_RE.findall(text)
    if bracketed:
        values = [number.value for number in find_numbers(bracketed[-1].replace(",", " , "))]
    else:
        between = BETWEEN_RE.search(text)
        source = f"{between.group(1)} {between.group(2)}" if between else text
        values = [number.value for number in find_numbers(source.replace(",", " , "))]
        if not values:
            values = [number.value for number in find_number_words(source, allow_one=False)]
    if not values:
        return None
    return str([format_list_element(value) for value in values])
