"""Sentence-level reading shared by extraction and choice mapping: which sentence of a free-text answer
answers, and whether a sentence refuses to answer."""

from __future__ import annotations

import re

LETTER_GRADE_RE = re.compile(
    r"^(?:(?:option|choice)\s+)?\(?[A-H]\)?\s+is\s+(?:not\s+)?(?:correct|incorrect|wrong|right)\W*$", re.IGNORECASE
)
CONCLUSION_RE = re.compile(r"^(?:therefore|thus|so|hence|in conclusion|overall|in summary)\b", re.IGNORECASE)
SENTENCE_END_RE = re.compile(r"(?<=[.!?。])\s+|\n+")
REFUSAL_RE = re.compile(
    r"\b(?:can ?not|can't|cannot|unable to|not possible to|impossible to|not able to)\s+(?:\w+ly\s+)?(?:be\s+)?(?:\w+ly\s+)?"
    r"(?:determine|determined|tell|answer|answered|say|know|identify|identified|decide|provide|"
    r"calculate|calculated|infer|compute|help|assist)\b"
    r"|\b(?:can ?not|can't|unable to)\s+(?:see|view|read|access|open)\s+(?:the|any|an|this)\s+"
    r"(?:image|picture|figure|graph|chart|diagram)"
    r"|\b(?:not enough|insufficient|no)\s+(?:information|data|context)\b|\bI'?\s*a?m sorry\b|\bI apologi[sz]e\b"
    # "The text does not provide enough information", "I don't have sufficient data"
    r"|(?:\bnot|n't)\s+(?:\w+\s+){0,2}?(?:enough|sufficient|adequate)\s+(?:information|data|context|details)\b"
    # "The question is too vague", "The image is unclear", "the picture is too blurry to read"
    r"|\btoo\s+(?:vague|ambiguous|unclear|blurry|blurred)\b"
    r"|\b(?:image|picture|photo|figure|graph|chart|diagram|question)\s+(?:is|was|seems|appears)\s+(?:\w+\s+)?"
    r"(?:unclear|blurry|blurred|ambiguous|illegible|unreadable)\b"
    r"|\bI (?:do not|don't) know\b|\bunanswerable\b|\bnot (?:clear|visible|discernible) (?:from|in) the\b"
    r"|无法(?:确定|判断|回答)|不能确定",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    """True for answers like "I cannot determine this from the image" (counted as no answer, never matched)."""
    return bool(REFUSAL_RE.search(text))


def answer_sentence(text: str, *, first: bool = True) -> str:
    """The sentence of a whole response that answers: its last one starting with "Therefore" / "So" / ...,
    else its first (models answer, then explain), or its last with `first=False`; a sentence that only grades an
    option letter ("D is incorrect.") is none."""
    sentences = [sentence.strip() for sentence in SENTENCE_END_RE.split(text)
                 if sentence.strip() and not LETTER_GRADE_RE.match(sentence.strip())]
    concluding = [sentence for sentence in sentences if CONCLUSION_RE.match(sentence.lstrip("*"))]
    return (concluding or sentences or [text])[0 if first and not concluding else -1]


def last_sentence(text: str) -> str:
    """The last sentence of `text` (its last line when that line does not end a sentence)."""
    sentences = [sentence.strip() for sentence in SENTENCE_END_RE.split(text) if sentence.strip()]
    return sentences[-1] if sentences else ""
