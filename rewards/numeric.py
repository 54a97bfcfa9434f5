"""Reading numbers out of answer text: digits, thousands separators, simple fractions, number words.

Only cheap, bounded work happens here (regular expressions and float()); anything that needs a computer algebra
system (powers, roots, pi) is left to `rewards.equivalence`, which runs it in a killable worker process.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass

# A number as models write it: "-3", "1,000" (only 3-digit groups count as thousands), "2.5", ".5", "1.5e3".
# The minus sign counts only where it cannot be a hyphen or a subtraction ("2014-2016", "x-3").
NUMBER_RE = re.compile(
    r"(?:(?<![\w)\]}])[-−])?"
    r"(?<![\d.])(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?:\.\d+)?(?:[eE][-+]?\d+(?![\w]))?"
    r"|(?:(?<![\w)\]}])[-−])?(?<![\d.])\.\d+"
)
FRACTION_RE = re.compile(r"^\s*([-−]?)\s*\\?d?frac\s*\{\s*([-−]?[\d.]+)\s*\}\s*\{\s*([-−]?[\d.]+)\s*\}\s*$")
SLASH_FRACTION_RE = re.compile(r"^\s*([-−]?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
_UNIT_WORDS = "|".join(sorted(_UNITS, key=len, reverse=True))
_TENS_WORDS = "|".join(_TENS)
NUMBER_WORD_RE = re.compile(
    rf"\b(?:(?P<hundred>a hundred|one hundred)|(?P<tens>{_TENS_WORDS})(?:[\s-](?P<unit>{_UNIT_WORDS}))?"
    rf"|(?P<single>{_UNIT_WORDS}))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class NumberMatch:
    """One number found in a text: its value, the characters it came from and where."""

    value: float
    raw: str
    start: int
    end: int
    is_integer_literal: bool


def to_float(raw: str) -> float | None:
    """The value of one number literal ("1,000", "−2.5", ".5"), or None if it is not one."""
    text = raw.strip().replace("−", "-").replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def find_numbers(text: str) -> list[NumberMatch]:
    """Every digit-written number in `text`, in order of appearance."""
    found = []
    for match in NUMBER_RE.finditer(text):
        value = to_float(match.group(0))
        if value is None:
            continue
        raw = match.group(0)
        is_int = "." not in raw and "e" not in raw.lower()
        found.append(NumberMatch(value, raw, match.start(), match.end(), is_int))
    return found


def _word_value(match: re.Match[str]) -> int:
    if match.group("hundred"):
        return 100
    if match.group("single"):
        return _UNITS[match.group("single").lower()]
    value = _TENS[match.group("tens").lower()]
    if match.group("unit"):
        value += _UNITS[match.group("unit").lower()]
    return value


def find_number_words(text: str, *, allow_one: bool) -> list[NumberMatch]:
    """Number words ("seven", "twenty-one") in `text`, in order.

    "one" is too often a pronoun ("the one on the left") to count inside a sentence, so it is only read as 1
    when `allow_one` (the caller passes True when the whole answer is that word).
    """
    found = []
    for match in NUMBER_WORD_RE.finditer(text):
        if match.group("single") and match.group("single").lower() == "one" and not allow_one:
            continue
        value = _word_value(match)
        found.append(NumberMatch(float(value), match.group(0), match.start(), match.end(), True))
    return found


def parse_fraction(text: str) -> float | None:
    """The value of "3/4", "-3/4", "\\frac{3}{4}" or "\\dfrac{3}{4}"; None for anything else or a zero divisor."""
    match = FRACTION_RE.match(text)
    if match:
        sign, numerator, denominator = match.group(1), match.group(2), match.group(3)
    else:
        match = SLASH_FRACTION_RE.match(text)
        if not match:
            return None
        sign, numerator, denominator = "", match.group(1), match.group(2)
    top, bottom = to_float(numerator), to_float(denominator)
    if top is None or bottom is None or bottom == 0:
        return None
    value = top / bottom
    return -value if sign else value


def parse_plain_number(text: str) -> float | None:
    """The value of a text that is exactly one number (digits, a simple fraction or a number word), else None."""
    stripped = text.strip()
    if not stripped:
        return None
    matches = find_numbers(stripped)
    if len(matches) == 1 and matches[0].start == 0 and matches[0].end == len(stripped):
        return matches[0].value
    fraction = parse_fraction(stripped)
    if fraction is not None:
        return fraction
    words = find_number_words(stripped, allow_one=True)
    if len(words) == 1 and words[0].start == 0 and words[0].end == len(stripped):
        return words[0].value
    return None


def last_number(text: str) -> NumberMatch | None:
    """The last number written in digits in `text`; failing that, the last unambiguous number word."""
    matches = find_numbers(text)
    if matches:
        return matches[-1]
    words = find_number_words(text, allow_one=len(text.split()) <= 2)
    return words[-1] if words else None


# Words that make the number after them a threshold of the question ("bars below 40", "more than 7 people").
THRESHOLD_BEFORE_RE = re.compile(
    r"(?:\bthan|\bbelow|\babove|\bover|\bunder|\bat\s+least|\bat\s+most|\bexceed(?:s|ing)?|\bout\s+of|\bup\s+to)"
    r"\s*[$]?$",
    re.IGNORECASE,
)


def answer_number(text: str, restated: Collection[float] = ()) -> NumberMatch | None:
    """The number a free-text answer gives: the last one that is not a threshold restated from the question
    ("There are two bars with values larger than 4" -> two), nor one of the question's own numbers (`restated`:
    "The function first reaches 2 at x = 3" -> 3) when another is there; failing that, `last_number`."""
    short = len(text.split()) <= 2
    # "one" is too often a pronoun to count, unless nothing else is left: "There is only one bar below 0".
    groups = (find_numbers(text), find_number_words(text, allow_one=short), find_number_words(text, allow_one=True))
    for group in groups:
        free = [number for number in group if not THRESHOLD_BEFORE_RE.search(text[max(0, number.start - 16) : number.start])]
        new = [number for number in free if number.value not in restated]
        if new or free:
            return (new or free)[-1]
    return last_number(text)


def format_list_element(value: float) -> int | float:
    """An element of a list answer as Python would print it: 2014 rather than 2014.0 when integral."""
    return int(value) if value.is_integer() else value
