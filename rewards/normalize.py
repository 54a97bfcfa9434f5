"""MathVista's normalisation (lupantech/MathVista evaluation/calculate_score.py), plus the cases it gets wrong.

Kept exactly: a multiple-choice prediction is turned into one of the choice TEXTS (a letter within range maps to
its choice; otherwise the choice nearest by edit distance), integers are `str(int(float(x)))` (truncating),
floats `str(round(float(x), int(precision)))`, lists `str(list)`; the prediction then equals the answer string
exactly or not at all.

Deliberate departures, each where the official pipeline (GPT-4 extraction + this normalisation) would be wrong:
- a response that is exactly a choice text is that choice before any letter reading, so "(b)" is the choice
  "(b)" for pids 168/849 (whose choices are "(a)".."(e)"); "(B)" is still option B there, as the query lists it;
- empty responses and refusals ("I cannot determine ...") get no prediction at all: the official nearest-choice
  step would map them onto the shortest choice, a correct answer by accident for ~1 item in 4;
- numbers are read the way GPT-4 extraction reads them ("1,000", "45°", "50%", "seven", "3/4", "5 cm").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .extract import BRACKET_LIST_RE, clean_answer, is_mathy, is_refusal, letter_alone, looks_like_expression
from .numeric import (
    find_number_words,
    find_numbers,
    format_list_element,
    last_number,
    parse_plain_number,
)

UNIT_NOISE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|°|\\%|%|\\[,;!]|~|\\\$|\$|\\degree|degrees?\b")
TRAILING_WORDS_RE = re.compile(r"^\s*(\S+?)\s*((?:[A-Za-z\u4e00-\u9fff²³/]+\.?\s*){1,3})$")
LEADING_LETTER_RE = re.compile(
    r"^(?:(?:option|choice)\s*)?(?:\(([A-Za-z])\)|([A-Z])(?=$|[\s.,:;)\-]))\s*[.,:;)\-]?\s*(.*)$", re.S | re.IGNORECASE
)
STRICT_LETTER_RE = re.compile(r"^(?:(?:option|choice)\s*\(?[A-Z]\b|\(?[A-Z]\)?\s*[.:)])", re.IGNORECASE)
TRAILING_LETTER_RE = re.compile(r"(?<![\w'])([A-Z])\s*[.!)]?\s*$")
PAREN_ASIDE_RE = re.compile(r"\([^()]*\)")
PAREN_LETTER_RE = re.compile(r"\(([A-Za-z])\)")
DECIMAL_COMMA_RE = re.compile(r"^-?\d+,\d{1,2}$")
EQUALS_RE = re.compile(r"=|≈|\\approx|\\simeq")
BETWEEN_RE = re.compile(r"(?:between|from)\s+(\S+)\s+(?:and|to)\s+(\S+)", re.IGNORECASE)
# Words after a bare "A" that make it the option letter ("A is correct") rather than the article ("A triangle").
LETTER_VERBS = {"is", "because", "since", "as", "which", "would", "should", "seems", "appears", "must", "will", "and",
                "or"}


@dataclass(frozen=True)
class Normalized:
    """A prediction in MathVista's normal form (None: no prediction) and how it was reached.

    `mapping` is one of: exact, letter, text, mention, number, nearest (multiple choice); integer, float, list
    (free form); expression (needs math evaluation first); refusal, no-answer, unparseable (no prediction).
    """

    prediction: str | None
    mapping: str


def choice_letter(index: int) -> str:
    """The option letter of the `index`-th choice: 0 -> "A"."""
    return chr(ord("A") + index)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1), as MathVista uses."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def fold(text: str) -> str:
    """A comparison key insensitive to case, spaces and degree/percent signs."""
    return re.sub(r"\s+", "", UNIT_NOISE_RE.sub("", clean_answer(text))).casefold()


def _letter_choice(letter: str | None, choices: list[str]) -> str | None:
    if letter is None:
        return None
    index = ord(letter.upper()) - ord("A")
    return choices[index] if 0 <= index < len(choices) else None


def leading_letter(text: str, *, strict: bool = False) -> str | None:
    """The option letter a span starts with ("(C) 45°", "C. 45°", "C, because"), or None.

    `strict` (for lines of prose, where "C is the midpoint" names a point) wants "(C)" or a letter followed by
    ".", ":" or ")".
    """
    match = LEADING_LETTER_RE.match(text.strip())
    if not match:
        return None
    if match.group(1):
        return match.group(1).upper()
    letter, rest = match.group(2), match.group(3)
    if not letter.isupper():
        return None
    if strict and not STRICT_LETTER_RE.match(text.strip()):
        return None
    first_word = rest.split()[0].lower().strip(".,") if rest.split() else ""
    if letter in "AI" and rest[:1].islower() and first_word not in LETTER_VERBS:
        return None  # the article "A" or the pronoun "I", not an option
    return letter


def choice_value(choice: str) -> float | None:
    """The number a choice stands for ("60°" -> 60, "6cm" -> 6), or None for non-numeric choices."""
    return read_number(choice).value


def _mentions(text: str, choices: list[str]) -> list[tuple[int, int, int]]:
    """(start, -length, choice index) of every place `text` names a choice, by its text or its number."""
    found = []
    lowered = text.casefold()
    for index, choice in enumerate(choices):
        key = clean_answer(choice).casefold()
        if not key or (len(key) == 1 and key.isalpha()):
            continue  # single-letter choices would match every article "a"
        pattern = r"(?<![\w.])" + re.escape(key) + r"(?![\w]|\.\d)"
        found.extend((m.start(), -len(key), index) for m in re.finditer(pattern, lowered))
    values = [choice_value(choice) for choice in choices]
    for number in find_numbers(text):
        for index, value in enumerate(values):
            if value is not None and value == number.value:
                found.append((number.start, -len(number.raw), index))
                break
    return found


def _pick_mention(text: str, choices: list[str], *, last: bool) -> str | None:
    mentions = _mentions(text, choices)
    if not mentions:
        return None
    if last:  # the mention that ends latest; "quarter past" beats the "quarter" inside it
        start, negative_length, index = max(mentions, key=lambda m: (m[0] - m[1], -m[1]))
    else:
        start, negative_length, index = min(mentions)
    return choices[index]


def _nearest(candidate: str, choices: list[str]) -> str:
    distances = [edit_distance(candidate, choice) for choice in choices]
    return choices[distances.index(min(distances))]


def exact_choice(cleaned: str, choices: list[str]) -> Normalized | None:
    """The choice `cleaned` names exactly: as written, by its letter, or up to case, spaces and degree signs."""
    if cleaned in choices:
        return Normalized(cleaned, "exact")
    by_letter = _letter_choice(letter_alone(cleaned), choices)
    if by_letter is not None:
        return Normalized(by_letter, "letter")
    for choice in choices:
        if fold(choice) == fold(cleaned):
            return Normalized(choice, "text")
    return None


def _leading_choice(lines: list[str], choices: list[str], full_text: bool) -> Normalized | None:
    """A letter starting the span ("(C) 45°"); for whole responses, starting its last or first line."""
    for line in (lines[-1], lines[0]) if full_text else lines:
        by_letter = _letter_choice(letter_alone(line) or leading_letter(line, strict=full_text), choices)
        if by_letter is not None:
            return Normalized(by_letter, "letter")
    paren = PAREN_LETTER_RE.findall(lines[-1])  # MathVista reads the first "(x)" anywhere
    by_letter = _letter_choice(paren[0], choices) if paren else None
    return Normalized(by_letter, "letter") if by_letter is not None else None


def _concluding_choice(cleaned: str, lines: list[str], choices: list[str], full_text: bool) -> Normalized | None:
    """A choice named in the conclusion: by its text or number, or a letter ending the last line."""
    mentioned = _pick_mention(lines[-1], choices, last=full_text)
    if mentioned is not None:
        return Normalized(mentioned, "mention")
    if is_refusal(lines[-1]):
        return Normalized(None, "refusal")
    trailing = TRAILING_LETTER_RE.search(lines[-1])  # "I believe it is closer to C."
    by_letter = _letter_choice(trailing.group(1), choices) if trailing else None
    if by_letter is not None:
        return Normalized(by_letter, "letter")
    mentioned = _pick_mention(cleaned, choices, last=True) if full_text else None
    return Normalized(mentioned, "mention") if mentioned is not None else None


def match_choice(span: str | None, choices: list[str], *, full_text: bool = False) -> Normalized:
    """Map an extracted span onto one of `choices` (MathVista multiple choice); see the module docstring.

    Order: the exact choice text or letter; a leading letter; a choice named in the conclusion; else the choice
    nearest by edit distance. `full_text` says the span is a whole response with no answer marker: its
    conclusion is then its last line (then its last mention anywhere), and letters count only at the start of
    its first or last line, or ending its last line; a marker span's first mention counts ("50°, not 60°").
    """
    cleaned = clean_answer(span or "")
    if not cleaned:
        return Normalized(None, "no-answer")
    lines = [clean_answer(line) for line in (span or "").splitlines()] if full_text else [cleaned]
    lines = [line for line in lines if line] or [cleaned]
    found = (
        exact_choice(cleaned, choices)
        or _leading_choice(lines, choices, full_text)
        or _concluding_choice(cleaned, lines, choices, full_text)
    )
    if found is not None:
        return found
    candidate = lines[-1][-4 * max(len(choice) for choice in choices) - 8 :]
    return Normalized(_nearest(candidate, choices), "nearest")


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
    with_words = TRAILING_WORDS_RE.match(text)  # "5 cm", "20海里", "3 years old"
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


def normalize_integer(value: float) -> str:
    """MathVista's integer form: `str(int(float(x)))`, so 5.7 -> "5" (it truncates)."""
    return str(int(value))


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
