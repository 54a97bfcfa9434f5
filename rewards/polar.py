"""Yes/no (and true/false) questions answered in free text.

`polar_reading` reads, in order: a "yes" or "no" that starts or ends the answer ("(C) No, ...", "... so the answer
is no."); a comparison read against the question's ("Are there more buses than jets?" - "There are more jets than
buses." -> no); else the answer sentence's polarity (a negation reads as "no").

A comparison answer carries no "yes" or "no" and often no negation, so its polarity says nothing; the official
(GPT-4) extractor, which sees the question, reads it against the question: the same two things compared the same
way is "yes", swapped or compared the other way is "no", "the same number" is "no". `comparison_verdict` does that
with word overlap to tell which side is which.
"""

from __future__ import annotations

import re

from .normalize import fold
from .sentences import is_refusal

YES_NO = ("yes", "no")
TRUE_FALSE = ("true", "false")
# Negations that make a one-sentence answer to a yes/no question a "no" ("Indigo does not have the lowest value").
NEGATION_RE = re.compile(r"\b(?:not|no|never|none|neither|nor|cannot|without)\b|n't\b|不|没|否", re.IGNORECASE)
# "Yes", "(C) No, ...", "B. No." start an answer; "... so the answer is no." ends one.
LEADING_YES_NO_RE = re.compile(r"^\W*(?:[A-Z]\s*[.):\-–]\s*)?(yes|no)\b", re.IGNORECASE)
TRAILING_YES_NO_RE = re.compile(r"\b(yes|no)\s*[.!]?\s*$", re.IGNORECASE)

# Comparatives that say "more" (+1) or "less" (-1).
DIRECTIONS = {
    "more": 1, "greater": 1, "larger": 1, "bigger": 1, "higher": 1, "taller": 1, "longer": 1, "wider": 1,
    "fewer": -1, "less": -1, "smaller": -1, "lower": -1, "shorter": -1, "narrower": -1,
}  # fmt: skip
_COMPARATIVE = "|".join(DIRECTIONS)
# "more X than Y" (the comparative leads the first side) or "X is greater than Y" (it follows it).
LEADING_RE = re.compile(rf"\b(?P<cmp>{_COMPARATIVE})\s+(?P<a>[^.;?!]+?)\s+than\s+(?P<b>[^.;?!]+)", re.IGNORECASE)
TRAILING_RE = re.compile(
    rf"(?P<a>[^.;?!]+?)\s+(?:(?:is|are)\s+(?P<neg>not\s+)?)?(?P<cmp>{_COMPARATIVE})\s+than\s+(?P<b>[^.;?!]+)",
    re.IGNORECASE,
)
SAME_RE = re.compile(r"\b(?:the\s+same\s+(?:number|amount|size|value)|equal\s+(?:to|in)|as\s+many\b)", re.IGNORECASE)
NEGATED_RE = re.compile(r"\b(?:not|no)\s+(?:more|fewer|less|greater|smaller)\b|n't\b", re.IGNORECASE)
# Words that say nothing about which thing is meant.
FILLER = frozenset(
    "a an the of number numbers there are is based on image in picture that which than amount count".split()
)
WORD_RE = re.compile(r"[^\W_]+")
# How clearly the answer's sides must name the question's (a sum of shares, from -2 swapped to +2 same order).
MIN_OVERLAP = 0.5


def _stem(word: str) -> str:
    """A plural folded onto its singular, loosely ("buses", "buss" -> "bus"; "bikes" -> "bike")."""
    if word.endswith("ses") and len(word) > 4:
        return word[:-2]
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def _words(text: str) -> set[str]:
    return {_stem(word) for word in WORD_RE.findall(text.casefold()) if word not in FILLER}


def _comparison(text: str) -> tuple[str, int, str] | None:
    """(first side, +1 or -1, second side) of the first comparison in `text`, or None."""
    leading, trailing = LEADING_RE.search(text), TRAILING_RE.search(text)
    found = min((m for m in (leading, trailing) if m), key=lambda m: m.start("cmp"), default=None)
    if found is None:
        return None
    direction = DIRECTIONS[found.group("cmp").lower()]
    if found.re is TRAILING_RE and found.group("neg"):
        direction = -direction
    return found.group("a"), direction, found.group("b")


def _share(side: set[str], words: set[str]) -> float:
    """How much of what names `side` (a side of the question) `words` (a side of the answer) holds."""
    return len(side & words) / len(side) if side else 0.0


def comparison_verdict(question: str, answer: str) -> bool | None:
    """True ("yes") or False ("no") when `answer` states a comparison of the two things `question` compares;
    None when either holds no comparison or the sides cannot be told apart."""
    asked = _comparison(question)
    if asked is None:
        return None
    if SAME_RE.search(answer) and not _comparison(answer):
        return False  # "There are the same number of buses as jets."
    stated = _comparison(answer)
    if stated is None or NEGATED_RE.search(answer):
        return None
    first, second = _words(asked[0]), _words(asked[2])
    # Only the words that tell the two sides apart count: both often share a context ("in front of the bus").
    first, second = first - second, second - first
    one, two = _words(stated[0]), _words(stated[2])
    same_order = _share(first, one) - _share(second, one) + _share(second, two) - _share(first, two)
    if abs(same_order) < MIN_OVERLAP:
        return None
    return (stated[1] == asked[1]) == (same_order > 0)


def polar_choices(choices: list[str]) -> dict[str, str] | None:
    """{"yes": .., "no": ..} for a yes/no question, or a true/false one (answered "Yes, it does ..." as often);
    None for any other choices."""
    by_fold = {fold(choice): choice for choice in choices}
    for yes, no in YES_NO, TRUE_FALSE:
        if len(choices) == 2 and set(by_fold) == {yes, no}:
            return {"yes": by_fold[yes], "no": by_fold[no]}
    return None


def leading_yes_no(lines: list[str], choices: list[str]) -> str | None:
    """For a yes/no question answered in free text, the choice of the "yes" or "no" that starts its first (else
    its last) line, after any letter: the official extractor takes the word when the two disagree ("A - No, the
    windows are round." -> No; "(C) Yes, it is." -> Yes)."""
    polar = polar_choices(choices)
    if polar is None:
        return None
    for line in lines[0], lines[-1]:
        word = LEADING_YES_NO_RE.match(line)
        if word:
            return polar[word.group(1).lower()]
    return None


def polar_reading(answer: str, sentence: str, lines: list[str], choices: list[str],
                  question: str | None) -> tuple[str, str] | None:
    """(choice, how) for a yes/no question answered by `answer` (its first and last `lines`, its answering
    `sentence`): `how` is "yes-no" (a word that starts or ends the first or last line), "comparison" (read
    against `question`, when given) or "polarity" (of the sentence); None for other choices and for refusals,
    which the refusal policy handles."""
    polar = polar_choices(choices)
    if polar is None:
        return None
    for line in lines[0], lines[-1]:
        word = LEADING_YES_NO_RE.match(line) or TRAILING_YES_NO_RE.search(line)
        if word:
            return polar[word.group(1).lower()], "yes-no"
    if is_refusal(answer):
        return None
    compared = comparison_verdict(question, sentence) if question else None
    if compared is not None:
        return polar["yes" if compared else "no"], "comparison"
    return polar["no" if NEGATION_RE.search(sentence) else "yes"], "polarity"
