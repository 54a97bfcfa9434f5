"""Multiple choice: map an answer onto one of the choice TEXTS, the way MathVista's pipeline does.

The official pipeline (lupantech/MathVista evaluation/) has GPT-4 extract the answer, then maps a letter "(B)" or
"B" within range to its choice, and anything else to the choice nearest by edit distance, so every response lands
on some choice. `match_choice` (the lenient, evaluation reading) tries, in order:

| step      | example (choices)                                                                 |
|-----------|-----------------------------------------------------------------------------------|
| exact     | "45°", "(B)", "b" -- a choice text as written comes first: "(b)" is the choice "(b)" |
| letter    | "(C) 45°", "C. 45°", "C - all of above", "A is the correct answer"                |
| yes/no    | "No, it is not." -> No; "Periwinkle is not the maximum." -> No (negation reading) |
| mention   | "... so the angle is 45°." (the choice's text or number inside the conclusion)     |
| refusal   | "I cannot determine this." -> policy "strict": no prediction; "official": nearest  |
| overlap   | "the hottest month is July" -> "July and August" (most of a choice's words)        |
| nearest   | edit distance, as the official pipeline                                           |

For a whole response (no answer marker) the conclusion is its last line, the first line counts for letters
("B. The time shown is ..."), and option lists the model echoed from the query are ignored.
`strict_choice` (the strict, training reading) accepts only the exact choice or letter, or a letter followed by
its own choice text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .extract import answer_sentence, clean_answer, is_refusal, letter_alone
from .normalize import fold, read_number
from .numeric import find_numbers

LEADING_LETTER_RE = re.compile(
    r"^(?:(?:option|choice)\s*)?(?:\(([A-Za-z])\)|([A-Z])(?=$|[\s.,:;)\-]))\s*[.,:;)\-]?\s*(.*)$", re.S | re.IGNORECASE
)
STRICT_LETTER_RE = re.compile(r"^(?:(?:option|choice)\s*\(?[A-Z]\b|\(?[A-Z]\)?\s*[.:)]|[A-Z]\s+[-–]\s)", re.IGNORECASE)
LETTER_IS_CORRECT_RE = re.compile(
    r"^(?:option\s+|choice\s+)?\(?([A-Z])\)?\s+is\s+(?:the\s+)?(?:correct|right|best)\b(?!\s+(?:length|value|angle))"
)
TRAILING_LETTER_RE = re.compile(r"(?<![\w'])([A-Z])\s*[.!)]?\s*$")
PAREN_LETTER_RE = re.compile(r"\(([A-Za-z])\)")
# Words after a bare "A" that make it the option letter ("A is correct") rather than the article ("A triangle").
LETTER_VERBS = {"is", "because", "since", "as", "which", "would", "should", "seems", "appears", "must", "will", "and",
                "or"}


YES_NO = ("yes", "no")
# Negations that make a one-sentence answer to a yes/no question a "no" ("Indigo does not have the lowest value").
NEGATION_RE = re.compile(
    r"\b(?:not|no|never|none|neither|nor|cannot|without)\b|n't\b|不|没|否", re.IGNORECASE
)
YES_NO_WORD_RE = re.compile(r"^\W*(?:[A-Z][.)]\s*)?(yes|no)\b|\b(yes|no)\s*[.!]?\s*$", re.IGNORECASE)
ECHO_HEADER_RE = re.compile(r"^(?:choices|options)\s*:?$", re.IGNORECASE)
# Words too common to say which choice a sentence names.
STOP_WORDS = frozenset(
    "a an the of to in on at by for with and or is are was were be will would it its this that as from than "
    "which who what".split()
)
WORD_RE = re.compile(r"[^\W_]+")
# What the official GPT-4 extractor most often writes for a refusal with no answer phrase in it.
REFUSAL_STAND_IN = "Cannot be determined"


@dataclass(frozen=True)
class Normalized:
    """A prediction in MathVista's normal form (None: no prediction) and how it was reached.

    `mapping` is one of: exact, letter, text, yes-no, mention, overlap, nearest; refusal (with a prediction under
    the official refusal policy, without one under the strict policy); no-answer, unparseable (no prediction).
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



def strict_choice(span: str | None, choices: list[str]) -> Normalized:
    """The strict (training) reading: the exact choice or its letter, or a letter followed by its own choice text
    ("(B) 8/11"); anything else (a tag holding every option, a sentence) has no prediction."""
    cleaned = clean_answer(span or "")
    if not cleaned:
        return Normalized(None, "no-answer")
    found = exact_choice(cleaned, choices)
    if found is not None:
        return found
    match = LEADING_LETTER_RE.match(cleaned)
    letter = (match.group(1) or match.group(2)).upper() if match else None
    by_letter = _letter_choice(letter, choices)
    if by_letter is not None and fold(match.group(3)) == fold(by_letter):
        return Normalized(by_letter, "letter")
    return Normalized(None, "unparseable")


def _is_echo(line: str, choices: list[str]) -> bool:
    """True for a line of an option list copied from the query: "(B) 45°", "B. 45°", "Choices:"."""
    if ECHO_HEADER_RE.match(line):
        return True
    match = LEADING_LETTER_RE.match(line)
    by_letter = _letter_choice((match.group(1) or match.group(2)) if match else None, choices)
    return by_letter is not None and fold(match.group(3)) == fold(by_letter)


def _drop_echoed_options(lines: list[str], choices: list[str]) -> list[str]:
    """The lines of a whole response without an option list it echoed (two such lines or more)."""
    echoes = [_is_echo(line, choices) for line in lines]
    if sum(echoes) < 2:
        return lines
    return [line for line, echo in zip(lines, echoes, strict=True) if not echo] or lines


def _leading_choice(lines: list[str], choices: list[str], full_text: bool) -> Normalized | None:
    """A letter starting the span ("(C) 45°"); for whole responses, starting its first line (models answer,
    then explain; a list of every option with comments reads as its first) or its last line. A lone
    letter out of range maps to the choice nearest to it, as in the official pipeline."""
    for line in (lines[0], lines[-1]) if full_text else lines:
        correct = LETTER_IS_CORRECT_RE.match(line)  # "A is the correct answer."
        letter = correct.group(1) if correct else letter_alone(line) or leading_letter(line, strict=full_text)
        by_letter = _letter_choice(letter, choices)
        if by_letter is not None:
            return Normalized(by_letter, "letter")
        if letter is not None and letter_alone(line):  # "D" of two choices: the official nearest to "D"
            return Normalized(_nearest(letter, choices), "nearest")
    paren = PAREN_LETTER_RE.findall(lines[-1])  # MathVista reads the first "(x)" anywhere
    by_letter = _letter_choice(paren[0], choices) if paren else None
    return Normalized(by_letter, "letter") if by_letter is not None else None


def _answer_sentence(text: str, full_text: bool) -> str:
    """The sentence that answers: a marker span as a whole; in a whole response, `answer_sentence`."""
    return answer_sentence(text) if full_text else text


def _yes_no_choice(cleaned: str, lines: list[str], choices: list[str], full_text: bool) -> Normalized | None:
    """For a yes/no question: a "yes" or "no" that starts or ends the answer, else the answer sentence's polarity
    (a negation reads as "no"). Refusals are left to the refusal policy."""
    by_fold = {fold(choice): choice for choice in choices}
    if len(choices) != 2 or set(by_fold) != set(YES_NO):
        return None
    for line in (lines[0], lines[-1]) if full_text else [cleaned]:
        word = YES_NO_WORD_RE.search(line)
        if word:
            return Normalized(by_fold[(word.group(1) or word.group(2)).lower()], "yes-no")
    if is_refusal(cleaned):
        return None
    sentence = _answer_sentence(cleaned if not full_text else "\n".join(lines), full_text)
    return Normalized(by_fold["no" if NEGATION_RE.search(sentence) else "yes"], "yes-no")


def _words(text: str) -> set[str]:
    return {word for word in WORD_RE.findall(text.casefold()) if word not in STOP_WORDS}


def _overlap_choice(sentences: list[str], choices: list[str]) -> str | None:
    """The one choice most of whose words a sentence holds ("the hottest month is July" -> "July and August")."""
    keys = [_words(choice) for choice in choices]
    for sentence in sentences:
        words = _words(sentence)
        shares = [len(key & words) / len(key) if key else 0.0 for key in keys]
        best = max(shares)
        if best >= 0.5 and shares.count(best) == 1:
            return choices[shares.index(best)]
    return None


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


def official_nearest(extraction: str, choices: list[str]) -> str:
    """What MathVista's normalisation makes of an extraction that is no choice: the first "(x)" letter in range,
    else the choice nearest by (case-sensitive) edit distance, the first one on a tie."""
    paren = PAREN_LETTER_RE.search(extraction)
    if paren is None:
        return _nearest(extraction, choices)
    letter = paren.group(1).upper()
    return _letter_choice(letter, choices) or _nearest(letter, choices)  # out of range: the nearest to "C"


def match_choice(
    span: str | None, choices: list[str], *, full_text: bool = False, refusals: str = "strict"
) -> Normalized:
    """Map an extracted span onto one of `choices` (the lenient reading; see the module docstring).

    `full_text` says the span is a whole response with no answer marker: its conclusion is then its last line
    (then its last mention anywhere), and letters count only at the start of its first or last line (the first
    first), or ending its last line; a marker span's first mention counts ("50°, not 60°"). `refusals`: "strict" gives a refusal
    no prediction; "official" maps it as MathVista does (to the nearest choice), with mapping "refusal".
    """
    cleaned = clean_answer(span or "")
    if not cleaned:
        return Normalized(None, "no-answer")
    lines = [clean_answer(line) for line in (span or "").splitlines()] if full_text else [cleaned]
    lines = _drop_echoed_options([line for line in lines if line], choices) or [cleaned]
    found = (
        exact_choice(cleaned, choices)
        or _leading_choice(lines, choices, full_text)
        or _yes_no_choice(cleaned, lines, choices, full_text)
        or _concluding_choice(cleaned, lines, choices, full_text)
    )
    if found is not None and found.mapping != "refusal":
        return found
    if found is None:
        sentences = [_answer_sentence("\n".join(lines), full_text), lines[-1]]
        overlapping = _overlap_choice(sentences, choices)
        if overlapping is not None:
            return Normalized(overlapping, "overlap")
        candidate = lines[-1][-4 * max(len(choice) for choice in choices) - 8 :]
        return Normalized(_nearest(candidate, choices), "nearest")
    if refusals == "strict":
        return found
    return Normalized(official_nearest(REFUSAL_STAND_IN if full_text else cleaned, choices), "refusal")
