"""Where a free-text answer names a choice: by its text or its number ("mentions"), or by most of its words
("overlap"); read in the clause that answers, without the condition it restates or the reason it adds."""

from __future__ import annotations

import re
from functools import lru_cache

from .extract import clean_answer
from .normalize import read_number
from .numeric import find_numbers
from .sentences import SENTENCE_END_RE

RADICAL_BRACES_RE = re.compile(r"√\{([^{}]*)\}")
TRAILING_REASON_RE = re.compile(r",?\s+(?:because|since|as\s+(?:it|they|the|this))\b", re.IGNORECASE)
LEADING_CONDITION_RE = re.compile(r"^\W*(?:if|when|once|assuming)\b[^,.;:]{1,200},\s*", re.IGNORECASE)
# Words too common to say which choice a sentence names.
STOP_WORDS = frozenset(
    "a an the of to in on at by for with and or is are was were be will would it its this that as from than "
    "which who what".split()
)
WORD_RE = re.compile(r"[^\W_]+")


@lru_cache(maxsize=4096)
def choice_value(choice: str) -> float | None:
    """The number a choice stands for ("60°" -> 60, "6cm" -> 6), or None for non-numeric choices."""
    return read_number(choice).value


@lru_cache(maxsize=4096)
def mention_patterns(choice: str) -> tuple[tuple[re.Pattern[str], int], ...]:
    """How a choice is found inside a (casefolded) text: its cleaned text as a whole word, also with "√{3}"
    written "√3"; nothing for a single letter, which would match every article "a"."""
    key = clean_answer(choice).casefold()
    if not key or (len(key) == 1 and key.isalpha()):
        return ()
    return tuple(
        (re.compile(r"(?<![\w.])" + re.escape(written) + r"(?![\w]|\.\d)"), len(written))
        for written in dict.fromkeys((key, RADICAL_BRACES_RE.sub(r"√\1", key)))
    )


def mentions(text: str, choices: list[str]) -> list[tuple[int, int, int]]:
    """(start, -length, choice index) of every place `text` names a choice, by its text or its number."""
    found = []
    lowered = text.casefold()
    for index, choice in enumerate(choices):
        for pattern, length in mention_patterns(choice):
            found.extend((m.start(), -length, index) for m in pattern.finditer(lowered))
    values = [choice_value(choice) for choice in choices]
    for number in find_numbers(text):
        for index, value in enumerate(values):
            if value is not None and value == number.value:
                found.append((number.start, -len(number.raw), index))
                break
    return found


def main_clause(sentence: str) -> str:
    """A sentence without the condition it opens with, which restates the question ("If caterpillars decrease,
    plants may increase" -> "plants may increase"), and without the reason it ends with ("... is Rabbit, as it
    is a prey of both Deer and Wolf" -> "... is Rabbit")."""
    return TRAILING_REASON_RE.split(LEADING_CONDITION_RE.sub("", sentence, count=1), 1)[0]


def sole_mention(text: str, choices: list[str]) -> str | None:
    """The choice named by the first sentence of `text` that names exactly one."""
    for sentence in SENTENCE_END_RE.split(text):
        named = {index for _, _, index in mentions(main_clause(sentence), choices)}
        if len(named) == 1:
            return choices[named.pop()]
    return None


def pick_mention(text: str, choices: list[str], *, last: bool) -> str | None:
    """The choice `text` names last (the mention that ends latest: "quarter past" beats the "quarter" inside it)
    or first; None when it names none."""
    found = mentions(text, choices)
    if not found:
        return None
    if last:
        _, _, index = max(found, key=lambda m: (m[0] - m[1], -m[1]))
    else:
        _, _, index = min(found)
    return choices[index]


def content_words(text: str) -> set[str]:
    """The content words of `text`, stemmed so that "flipped" holds "flip" and "decreases" "decrease"."""
    return {stem(word) for word in WORD_RE.findall(text.casefold()) if word not in STOP_WORDS}


def stem(word: str) -> str:
    """A crude English stem: one inflection ending off, then a doubled final consonant undoubled ("flipped" ->
    "flip", "turning" -> "turn", "decreases" / "decrease" -> "decreas")."""
    for ending in ("ing", "ed", "es", "s", "e"):
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            word = word[: -len(ending)]
            break
    if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    return word


def overlap_choice(sentences: list[str], choices: list[str]) -> str | None:
    """The one choice most of whose words a sentence holds ("the hottest month is July" -> "July and August")."""
    keys = [content_words(choice) for choice in choices]
    for sentence in sentences:
        words = content_words(main_clause(sentence))
        shares = [len(key & words) / len(key) if key else 0.0 for key in keys]
        best = max(shares)
        if best >= 0.5 and shares.count(best) == 1:
            return choices[shares.index(best)]
    return None
