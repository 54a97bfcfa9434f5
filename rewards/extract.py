"""Answer extraction: find the span of a free-text response that holds its final answer, and say which rule found it.

Rules, tried in this order (the first that finds a non-empty span wins; within a rule the LAST occurrence counts):

| rule          | example                                                        |
|---------------|----------------------------------------------------------------|
| answer_tag    | `<think>...</think><answer>(B) 8/11</answer>`                    |
| boxed         | `... so $\\boxed{\\frac{1}{2}}$`                                 |
| answer_is     | "The correct answer is (C) 45°.", "答案是 C", "La respuesta es 5" |
| answer_label  | "Answer: 7", "Final answer: 7", "A: 7" (at a line start), "答案：7" |
| option_letter | a letter alone on the last line: "B", "(B)", "B.", "option B"  |
| bracket_list  | the last "[...]" (list answers only)                           |
| last_number   | the last number of a longer text (numeric answers only)        |
| full_text     | the whole response (multiple choice matching scans it)         |
| none          | the response is empty                                          |

Inside an `<answer>` tag the content is refined by the boxed / answer_is / answer_label rules, so
`<answer>The answer is \\boxed{5}</answer>` yields "5" (rule "answer_tag").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .numeric import last_number

Fallback = Literal["text", "number", "list"]

ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
OPEN_ANSWER_TAG_RE = re.compile(r"<answer>((?:(?!</?answer>).)*)$", re.DOTALL | re.IGNORECASE)
BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
ANSWER_IS_RES = (
    re.compile(
        r"(?:\b(?:answer|option|choice)|\b(?:correct|right)\s+one)(?:\s+(?:to|for)\s+(?:this|the)\s+(?:question|problem))?"
        r"\s+(?:is|would\s+be|should\s+be|will\s+be|must\s+be|=)\b\s*[:：]?",
        re.IGNORECASE,
    ),
    re.compile(r"(?:正确)?答案(?:应该|应|就)?(?:是|为)\s*[:：]?|(?:故|所以|因此|应|则|即)选\s*[:：]?"),
    re.compile(
        r"\b(?:respuesta(?:\s+correcta)?\s+es|réponse(?:\s+correcte)?\s+est|antwort\s+ist|"
        r"resposta(?:\s+correta)?\s+é|risposta(?:\s+corretta)?\s+è)\b\s*[:：]?",
        re.IGNORECASE,
    ),
)
ANSWER_LABEL_RE = re.compile(
    r"(?:\b(?:final\s+answer|answer|ans|respuesta|réponse|antwort|resposta|risposta)|ответ|答案)\s*[:：]",
    re.IGNORECASE,
)
# "A:" used as "Answer:" only at a line start, and not when it is the first of a list of options "A: ..  B: ..".
A_LABEL_RE = re.compile(r"^[ \t]*A[ \t]*[:：]", re.MULTILINE)
LATER_OPTION_LINE_RE = re.compile(r"^[ \t]*\(?[B-H][ \t]*[:.)]", re.MULTILINE)
LETTER_LINE_RE = re.compile(
    r"^(?:(?:the\s+)?(?:option|choice)\s*)?(?:[(\[]([A-Za-z])[)\]]|([A-Z]))\s*[.:)]?$", re.IGNORECASE
)
BRACKET_LIST_RE = re.compile(r"[\[(]\s*-?[\d.]+(?:\s*,\s*-?[\d.]+)+\s*[\])]")
# Where an answer span stops: end of line, a sentence end (not a decimal point), or a "because ..." clause.
# Not at ";": MathVista choices contain it ("neither; the samples have the same temperature").
SPAN_END_RE = re.compile(r"\n|(?<=\S)\.(?=\s|$)|。|,?\s+(?:because|since|as\s+it|as\s+the|which\s+is)\b")
LEADING_FILLER_RE = re.compile(
    r"^(?:(?:therefore|thus|hence|so|then|likely|probably|clearly|approximately|about|around|roughly|"
    r"option|choice|just|la|le|el|die|der|opción|l'option)\b[\s,:]*)+",
    re.IGNORECASE,
)
TEXT_WRAPPER_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|mbox|operatorname)\s*\{([^{}]*)\}")
# Function names that may appear without a backslash in a math answer ("sqrt(2)", "2pi").
MATH_WORDS_RE = re.compile(r"\\[A-Za-z]+|\b(?:sqrt|pi|sin|cos|tan|log|ln|exp|frac|infty|inf)\b")
FULLWIDTH = str.maketrans({"（": "(", "）": ")", "：": ":", "，": ",", "．": ".", "\u3000": " ", "−": "-"})
REFUSAL_RE = re.compile(
    r"\b(?:can ?not|can't|cannot|unable to|not possible to|impossible to|not able to)\s+(?:be\s+)?"
    r"(?:determine|determined|tell|answer|answered|say|know|identify|identified|decide|provide|"
    r"calculate|calculated|infer|compute|help|assist)\b"
    r"|\b(?:can ?not|can't|unable to)\s+(?:see|view|read|access|open)\s+(?:the|any|an|this)\s+"
    r"(?:image|picture|figure|graph|chart|diagram)"
    r"|\b(?:not enough|insufficient|no)\s+(?:information|data|context)\b|\bI'?\s*a?m sorry\b|\bI apologi[sz]e\b"
    r"|\bI (?:do not|don't) know\b|\bunanswerable\b|\bnot (?:clear|visible|discernible) (?:from|in) the\b"
    r"|无法(?:确定|判断|回答)|不能确定",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Extraction:
    """The span of a response taken as its answer (None when nothing was found) and the rule that found it."""

    text: str | None
    rule: str


def clean_answer(text: str) -> str:
    """Strip the wrapping models put around an answer: markdown, $..$, \\text{..}, quotes, a final full stop."""
    cleaned = text.translate(FULLWIDTH).replace("**", "").replace("__", "")
    for _ in range(3):  # nested wrappers such as \text{\textbf{B}}
        unwrapped = TEXT_WRAPPER_RE.sub(r"\1", cleaned)
        if unwrapped == cleaned:
            break
        cleaned = unwrapped
    cleaned = cleaned.strip().strip("`\"'“”‘’")
    if cleaned.startswith("$") and cleaned.endswith("$"):
        cleaned = cleaned.strip("$")
    cleaned = cleaned.replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    return cleaned.rstrip(".。!！,;:").strip()


def is_refusal(text: str) -> bool:
    """True for answers like "I cannot determine this from the image" (counted as no answer, never matched)."""
    return bool(REFUSAL_RE.search(text))


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}), with nested braces; None if there is none."""
    starts = [match.end() for match in BOXED_RE.finditer(text)]
    for start in reversed(starts):
        depth, index = 1, start
        while index < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            index += 1
        if depth == 0:
            return text[start : index - 1]
    return None


def _span_after(text: str, position: int) -> str:
    """The answer text starting at `position`: up to the sentence end, or the next line if this one is empty."""
    rest = text[position:]
    first_line = rest.split("\n", 1)[0]
    if not first_line.strip() and "\n" in rest:
        rest = rest.split("\n", 1)[1].lstrip("\n ")
    end = SPAN_END_RE.search(rest)
    span = rest[: end.start()] if end else rest
    return LEADING_FILLER_RE.sub("", span.strip()).strip()


def last_answer_is(text: str) -> tuple[int, str] | None:
    """(where, span) after the last "the answer is" phrase (English, Chinese, Spanish, French, German, ...)."""
    best: tuple[int, str] | None = None
    for pattern in ANSWER_IS_RES:
        for match in pattern.finditer(text):
            span = _span_after(text, match.end())
            if clean_answer(span) and (best is None or match.start() > best[0]):
                best = (match.start(), span)
    return best


def last_answer_label(text: str) -> tuple[int, str] | None:
    """(where, span) after the last "Answer:" label (or "A:" at a line start used the same way)."""
    candidates = [(match.start(), match.end()) for match in ANSWER_LABEL_RE.finditer(text)]
    for match in A_LABEL_RE.finditer(text):
        if not LATER_OPTION_LINE_RE.search(text, match.end()):
            candidates.append((match.start(), match.end()))
    for start, end in sorted(candidates, reverse=True):
        span = _span_after(text, end)
        if clean_answer(span):
            return start, span
    return None


def letter_alone(text: str) -> str | None:
    """The option letter if `text` is nothing but one: "B", "(B)", "B.", "B)", "[B]", "option B"; else None."""
    match = LETTER_LINE_RE.match(clean_answer(text))
    if not match:
        return None
    return (match.group(1) or match.group(2)).upper()


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def looks_like_expression(text: str) -> bool:
    """True for a short one-line answer with no prose ("2\\sqrt{3}", "3/4 cm"): worth reading as a whole."""
    stripped = text.strip()
    if "\n" in stripped or len(stripped) > 120:
        return False
    prose = re.sub(r"\\[a-zA-Z]+", " ", stripped)
    return not re.search(r"[A-Za-z]{2,}[^A-Za-z]+[A-Za-z]{2,}", prose)


def is_mathy(text: str) -> bool:
    """True unless `text` holds a word: two letters or more outside LaTeX commands and function names."""
    return not re.search(r"[A-Za-z]{2,}", MATH_WORDS_RE.sub(" ", text))


def _marker_span(text: str) -> Extraction | None:
    boxed = last_boxed(text)
    if boxed is not None and clean_answer(boxed):
        return Extraction(boxed.strip(), "boxed")
    found = [(hit, rule) for rule, hit in (("answer_is", last_answer_is(text)), ("answer_label", last_answer_label(text)))
             if hit is not None]
    if not found:
        return None
    (_, span), rule = max(found)  # the later of "the answer is ..." and "Answer: ..."
    return Extraction(span, rule)


def _answer_tag_content(text: str) -> str | None:
    contents = ANSWER_TAG_RE.findall(text)
    if contents:
        return contents[-1]
    unclosed = OPEN_ANSWER_TAG_RE.search(text)  # a response cut off (or never closed) after <answer>
    return unclosed.group(1) if unclosed else None


def extract_answer(response: str, fallback: Fallback = "text") -> Extraction:
    """Find the final answer of `response`.

    `fallback` says what to take when no marker rule fires: "number" (the last number of a longer text; the
    whole text when it is a short expression), "list" (the last bracketed list) or "text" (the whole text).
    """
    text = (response or "").translate(FULLWIDTH).replace("**", "")
    if not text.strip():
        return Extraction(None, "none")
    tag = _answer_tag_content(text)
    if tag is not None:
        inner = _marker_span(tag)
        span = inner.text if inner else tag
        return Extraction(span.strip() or None, "answer_tag")
    marked = _marker_span(text)
    if marked is not None:
        return marked
    last_line = _last_line(text)
    if letter_alone(last_line):
        return Extraction(last_line.strip(), "option_letter")
    return _fallback_span(text, fallback)


def _fallback_span(text: str, fallback: Fallback) -> Extraction:
    if fallback == "list":
        lists = BRACKET_LIST_RE.findall(text)
        if lists:
            return Extraction(lists[-1], "bracket_list")
    if fallback == "number" and not looks_like_expression(text):
        number = last_number(text)
        if number is not None:
            return Extraction(number.raw, "last_number")
    return Extraction(text.strip(), "full_text")
