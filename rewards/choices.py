"""Multiple choice: map an answer onto one of the choice TEXTS, the way MathVista's pipeline does.

The official pipeline (lupantech/MathVista evaluation/) has GPT-4 extract the answer, then maps a letter "(B)" or
"B" within range to its choice, and anything else to the choice nearest by edit distance, so every response lands
on some choice. `match_choice` (the lenient, evaluation reading) tries, in order:

| step       | example (choices)                                                                          |
|------------|--------------------------------------------------------------------------------------------|
| exact      | "45°", "(B)", "b" -- a choice text as written comes first: "(b)" is the choice "(b)"       |
| refusal    | a conclusion that refuses, before every reading rule below: "The text does not provide     |
|            | enough information.", "we cannot tell if it is odd or even" (naming choices); for yes/no   |
|            | "No information is given" refuses, "No, it cannot be told" answers; a choice that refuses  |
|            | ("It cannot be determined") is what a refusal answers (mapping mention)                    |
| option list| "(C) Yes (D) No", "(A) 2cm (B) 3cm": the first bracketed letter, in range its choice, else  |
|            | the choice nearest to the letter (the official normalisation), never the text after it     |
| yes/no     | a whole response opening with "Yes"/"No", also after a letter: "A - No, it is round." -> No |
| letter     | "(C) 45°", "C. 45°", "A is the correct answer", "... is (D)." on the first line;           |
|            | a letter beyond the choices ("(D) April" of three) -> the choice nearest to "D" (official) |
| yes/no     | "... so the answer is no."; a comparison read against the question (`polar`); otherwise   |
|            | the polarity: "Periwinkle is not the maximum." -> No. True/False choices read the same way |
| mention    | the first sentence of the conclusion naming exactly one choice, read without a leading     |
|            | "If ...," or a trailing "because / as it ..." (`mentions`); else its last mention           |
| nearest    | a concluding number that is no choice: the choice nearest to it by edit distance (official) |
| overlap    | "the hottest month is July" -> "July and August"; "it was flipped" -> "flip" (stems)        |
| nearest    | edit distance of the conclusion, as the official pipeline                                  |

Refusals: policy "strict" gives no prediction; "official" lands on the choice nearest to what the official
extractor writes for one (`refusal_statement`). For a whole response (no answer marker) the conclusion is its
last line, the first line counts for letters ("B. The time shown is ..."), and option lists the model echoed
from the query are ignored.
`strict_choice` (the strict, training reading) accepts only the exact choice or letter, or a letter followed by
its own choice text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .extract import clean_answer, is_mathy, letter_alone, sanitize
from .mentions import choice_value, mentions, overlap_choice, pick_mention, sole_mention
from .normalize import fold
from .numeric import answer_number
from .polar import leading_yes_no, polar_choices, polar_reading
from .sentences import SENTENCE_END_RE, answer_sentence, is_refusal

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

ECHO_HEADER_RE = re.compile(r"^(?:choices|options)\s*:?$", re.IGNORECASE)
# A list of options written as the answer: "(C) Yes (D) No", "(A) 2cm (B) 3cm ..." (`_option_list` wants the next
# letter in order after a short item, so "(A) No, because (C) ..." is no list).
OPTION_LIST_RE = re.compile(r"^\(([A-Za-z])\)[^()\n]{0,40}?\(([A-Za-z])\)")
# A yes/no answer word that answers ("No, it cannot be determined", "(B) No", "... so no."), not the determiner of a
# refusal ("No information is given") nor a pair of options ("whether the answer is yes or no").
STATED_YES_NO_RE = re.compile(
    r"^\W*(?:[A-Z]\s*[.):\-–]\s*)?(?:yes|no|true|false)\s*(?:$|[,.!:;])"
    r"|(?<!\bor\s)(?<!\band\s)\b(?:yes|no|true|false)\s*[.!]?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Normalized:
    """A prediction in MathVista's normal form (None: no prediction) and how it was reached.

    `mapping` is one of: exact, letter, text, option-list, yes-no, comparison, polarity, mention, overlap, nearest;
    refusal
    (with a prediction under the official refusal policy, without one under the strict policy); no-answer,
    unparseable (no prediction).
    """

    prediction: str | None
    mapping: str

def choice_letter(index: int) -> str:
    """The option letter of the `index`-th choice: 0 -> "A"."""
    return chr(ord("A") + index)

def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1), as MathVista uses.

    Bit-parallel (Myers 1999, in Hyyrö's form for the global distance): one column of the distance table per
    character of the longer string, the column held as bit vectors as long as the shorter one, so a
    2,000-character response against a choice costs 2,000 integer steps, not 2,000 x len(choice)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    full = (1 << len(b)) - 1
    last = 1 << (len(b) - 1)
    matches: dict[str, int] = {}
    for position, char in enumerate(b):
        matches[char] = matches.get(char, 0) | (1 << position)
    plus, minus, distance = full, 0, len(b)  # vertical deltas of the current column: +1 / -1 per row
    for char in a:
        equal = matches.get(char, 0)
        vertical = equal | minus
        horizontal = (((equal & plus) + plus) ^ plus) | equal
        up = minus | (~(horizontal | plus) & full)
        down = plus & horizontal
        if up & last:
            distance += 1
        elif down & last:
            distance -= 1
        up = ((up << 1) | 1) & full  # row 0 grows by one per column: a global, not a search, distance
        down = (down << 1) & full
        plus = down | (~(vertical | up) & full)
        minus = up & vertical
    return distance

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
        if letter is not None and _out_of_range_letter_counts(line):
            # "D" or "(D) April" of three choices: the official extractor writes the letter, which then lands on
            # the choice nearest to "D"
            return Normalized(_nearest(letter, choices), "nearest")
    for line in (lines[0], lines[-1]) if full_text else lines:  # MathVista reads the first "(x)" anywhere
        paren = PAREN_LETTER_RE.findall(line)
        by_letter = _letter_choice(paren[0], choices) if paren else None
        if by_letter is not None:
            return Normalized(by_letter, "letter")
    return None

def _out_of_range_letter_counts(line: str) -> bool:
    """True when a letter beyond the choices is the answer the official extractor takes: a lone letter or one
    written as an option ("(D) April", "C) Aubrey ..."); not a refusal ("(C) Cannot be determined", left to the
    refusal policy)."""
    return bool(letter_alone(line) or STRICT_LETTER_RE.match(line)) and not is_refusal(line)

def _concluding_choice(cleaned: str, lines: list[str], choices: list[str], full_text: bool) -> Normalized | None:
    """A choice named in the conclusion: by its text or number, or a letter ending the last line. A conclusion
    that refuses was taken for a refusal before (`_refusal`)."""
    mentioned = sole_mention(lines[-1], choices) if full_text else None
    mentioned = mentioned or pick_mention(lines[-1], choices, last=full_text)
    if mentioned is not None:
        return Normalized(mentioned, "mention")
    trailing = TRAILING_LETTER_RE.search(lines[-1])  # "I believe it is closer to C."
    by_letter = _letter_choice(trailing.group(1), choices) if trailing else None
    if by_letter is not None:
        return Normalized(by_letter, "letter")
    if not full_text:
        return None
    if not is_mathy(lines[-1]) and all(choice_value(choice) is not None and is_mathy(choice) for choice in choices):
        stated = answer_number(sanitize(lines[-1]))
        if stated is not None:
            return Normalized(_nearest(stated.raw, choices), "nearest")
    mentioned = pick_mention(cleaned, choices, last=True)
    return Normalized(mentioned, "mention") if mentioned is not None else None


def _refusal(lines: list[str], choices: list[str]) -> Normalized | None:
    """The refusal class, recognised before every reading rule (a refusal is negative, so polarity would read
    "No"; it may hold "no", a comparison or a number): the conclusion (a whole response's last line, a marker
    span as a whole) refuses and states no choice. Naming several choices is still a refusal ("we cannot tell
    whether it is odd or even"); for a yes/no question only a "yes"/"no" said as the answer counts as one
    ("No, it cannot be told" answers, "No information is given" refuses). A choice that itself refuses ("It cannot
    be determined from the information given") is what a refusal answers. A whole response whose first line
    states a choice ("B. 45°", "45°", "No.") answers first and doubts after: no refusal."""
    conclusion = lines[-1]
    if not is_refusal(conclusion) or (len(lines) > 1 and _states_choice(lines[0], choices)):
        return None
    refusing = [choice for choice in choices if is_refusal(choice)]
    if len(refusing) == 1:
        return Normalized(refusing[0], "mention")
    if polar_choices(choices) is not None:
        stated = any(STATED_YES_NO_RE.search(line) for line in (lines[0], conclusion))
    else:
        stated = len({index for _, _, index in mentions(conclusion, choices)}) == 1
    return None if stated else Normalized(None, "refusal")


def _states_choice(line: str, choices: list[str]) -> bool:
    """True for a line that is a choice, or starts with the letter of one ("B", "(B) 45°", "B. 45°")."""
    if exact_choice(clean_answer(line), choices) is not None:
        return True
    return _letter_choice(letter_alone(line) or leading_letter(line, strict=True), choices) is not None


def _option_list(lines: list[str], choices: list[str], full_text: bool) -> Normalized | None:
    """An answer that lists options in order ("(C) Yes (D) No", "(A) 2cm (B) 3cm ..."; for a whole response,
    starting its first or last line, or its first lines one option each): the official normalisation takes the
    first bracketed letter, its choice when in range, else the choice nearest to the letter itself, never the
    text written after it."""
    candidates = [" ".join(lines[:2]), lines[-1]] if full_text else lines
    for text in candidates:
        listed = OPTION_LIST_RE.match(text)
        if listed and ord(listed.group(2).upper()) == ord(listed.group(1).upper()) + 1:
            return Normalized(official_nearest(text, choices), "option-list")
    return None


def _leading_yes_no(lines: list[str], choices: list[str], full_text: bool) -> Normalized | None:
    """In a whole response to a yes/no question, a "yes" or "no" opening its first or last line (see
    `polar.leading_yes_no`)."""
    word = leading_yes_no(lines, choices) if full_text else None
    return Normalized(word, "yes-no") if word is not None else None

def _polar_choice(cleaned: str, lines: list[str], choices: list[str], full_text: bool,
                  question: str | None) -> Normalized | None:
    """A yes/no (or true/false) question's answer read by `polar.polar_reading`."""
    reading = polar_reading(cleaned, _answer_sentence("\n".join(lines), full_text), lines, choices, question)
    return Normalized(*reading) if reading is not None else None

def _answer_sentence(text: str, full_text: bool) -> str:
    """The sentence that answers: a marker span as a whole; in a whole response, `answer_sentence`."""
    return answer_sentence(text) if full_text else text

def official_nearest(extraction: str, choices: list[str]) -> str:
    """What MathVista's normalisation makes of an extraction that is no choice: the first "(x)" letter in range,
    else the choice nearest by (case-sensitive) edit distance, the first one on a tie."""
    paren = PAREN_LETTER_RE.search(extraction)
    if paren is None:
        return _nearest(extraction, choices)
    letter = paren.group(1).upper()
    return _letter_choice(letter, choices) or _nearest(letter, choices)  # out of range: the nearest to "C"

def match_choice(
    span: str | None, choices: list[str], *, full_text: bool = False, refusals: str = "strict",
    question: str | None = None,
) -> Normalized:
    """Map an extracted span onto one of `choices` (the lenient reading; see the module docstring).

    `full_text` says the span is a whole response with no answer marker: its conclusion is then its last line
    (then its last mention anywhere), and letters count only at the start of its first or last line (the first
    first), or ending its last line; a marker span's first mention counts ("50°, not 60°"). `refusals`: "strict"
    gives a refusal no prediction; "official" maps it as MathVista does (to the nearest choice), with mapping
    "refusal". `question` (optional) lets a yes/no answer that states a comparison be read against it.
    """
    cleaned = clean_answer(span or "")
    if not cleaned:
        return Normalized(None, "no-answer")
    lines = [clean_answer(line) for line in (span or "").splitlines()] if full_text else [cleaned]
    lines = _drop_echoed_options([line for line in lines if line], choices) or [cleaned]
    found = (
        exact_choice(cleaned, choices)
        or _refusal(lines, choices)
        or _option_list(lines, choices, full_text)
        or _leading_yes_no(lines, choices, full_text)
        or _leading_choice(lines, choices, full_text)
        or _polar_choice(cleaned, lines, choices, full_text, question)
        or _concluding_choice(cleaned, lines, choices, full_text)
    )
    if found is not None and found.mapping != "refusal":
        return found
    if found is None:
        sentences = [_answer_sentence("\n".join(lines), full_text), lines[-1]]
        overlapping = overlap_choice(sentences, choices)
        if overlapping is not None:
            return Normalized(overlapping, "overlap")
        candidate = lines[-1][-4 * max(len(choice) for choice in choices) - 8 :]
        return Normalized(_nearest(candidate, choices), "nearest")
    if refusals == "strict":
        return found
    return Normalized(official_nearest(refusal_statement(span) if full_text else cleaned, choices), "refusal")

def refusal_statement(response: str) -> str:
    """What the official (GPT-4) extractor writes for a whole response that refuses: most often it copies the
    sentence saying no answer can be given ("Without this information, we cannot determine the correct option
    letter."), so the last sentence that refuses, else the last sentence."""
    sentences = [clean_answer(sentence) for sentence in SENTENCE_END_RE.split(response) if sentence.strip()]
    refusing = [sentence for sentence in sentences if is_refusal(sentence)]
    return (refusing or sentences or [clean_answer(response)])[-1]
