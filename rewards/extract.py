"""Answer extraction: find the span of a response that holds its final answer, and say which rule found it.

One extractor, two modes (`extract_answer(response, fallback, mode, question=...)`):
- "lenient", the evaluation reading: free text read the way MathVista's official (GPT-4) extraction reads it;
- "strict", the training reading: only the content of exactly one well-formed `<answer>...</answer>` that ends
  the response (a lone `\\boxed{}` inside is unwrapped); anything else has no answer (rule "none").

Lenient rules, tried in this order (the first that finds a non-empty span wins; within a rule the LAST occurrence
counts):

| rule            | example                                                                                             |
|-----------------|-----------------------------------------------------------------------------------------------------|
| answer_tag      | `<think>...</think><answer>(B) 8/11</answer>`                                                       |
| boxed           | `... so $\\boxed{\\frac{1}{2}}$`                                                                    |
| answer_is       | "The correct answer is (C) 45°.", "The correct option letter (to choose) is B", "选项为C",           |
|                 | "option C is the correct answer", "选项C是正确答案"; never inside a hypothesis ("If ..., the answer is A") |
|                 | nor inside what a refusal cannot tell ("I cannot determine whether the answer is yes or no")        |
| answer_label    | "Answer: 7", "Final answer: 7", "A: 7" (at a line start), "答案：7"                                    |
| option_letter   | a letter alone on the last line: "B", "(B)", "B.", "option B"                                       |
| bracket_list    | the last "[...]" (list answers only)                                                                |
| refusal         | the last sentence refuses ("Without the data, we cannot determine it."): no number is read from it  |
| answer_sentence | the number of the answering sentence: the last "Therefore / So ..." one, else the first of a       |
|                 | response of several lines (models answer, then explain: "There are 3 bars below 40.\\nThey are     |
|                 | 58, 59 and 63." -> 3), the last of one paragraph; its first bolded number, else its last number    |
|                 | that is no threshold and, when another is there, none of the question's own numbers ("The value   |
|                 | first reaches 2 at x = 3" -> 3); an aside after ", with" / ", while" left out (numeric answers)    |
| bold            | the last short bolded number, "**1578**" (numeric answers only)                                     |
| last_number     | the last number that is not a threshold ("3 bars below 40" -> 3) nor restated from the question    |
| full_text       | the whole response (multiple choice matching scans it)                                              |
| none            | the response is empty                                                                               |

Inside an `<answer>` tag the content is refined by the boxed / answer_is / answer_label rules, so
`<answer>The answer is \\boxed{5}</answer>` yields "5" (rule "answer_tag").

Every rule runs in time linear in the response (a policy can write 200k unclosed `<answer>` tags): tags and
braces are found in one scan, answer phrases are read within a window, and the fallbacks read only the end.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from .numeric import answer_number, find_numbers
from .sentences import REFUSAL_RE, answer_sentence, is_refusal, last_sentence

Fallback = Literal["text", "number", "list"]
Mode = Literal["lenient", "strict"]
EXTRACTION_MODES: tuple[str, ...] = ("lenient", "strict")
# Every tag and brace is found by one left-to-right scan: a policy can write 200k unclosed "<answer>" tags, and a
# pattern such as "<answer>(.*?)</answer>" would rescan the rest of the text from each of them (quadratic).
ANSWER_TAG_RE = re.compile(r"<(/?)answer>", re.IGNORECASE)
BOX_OR_BRACE_RE = re.compile(r"\\(?:boxed|fbox)\s*\{|[{}]")
# How far after "the answer is" an answer may run, and how many such phrases (the last ones) are tried.
SPAN_WINDOW_CHARS = 500
MARKERS_TRIED = 64
# With no answer marker, only the end of a response is read (its last line, last number, choices it names):
# real answers (a few thousand characters) fit whole, and a megabyte of digits costs no more than this.
FALLBACK_WINDOW_CHARS = 16_000
ANSWER_IS_RES = (
    re.compile(
        r"(?:\b(?:answer|solution|final\s+(?:value|result|count)|(?:option|choice)(?:\s+letter)?)"
        r"|\b(?:correct|right)\s+one)"
        r"(?:\s+(?:to|for)\s+(?:this|the)\s+(?:question|problem)|\s+to\s+(?:choose|select|pick))?"
        r"\s+(?:is|would\s+be|should\s+be|will\s+be|must\s+be|=)\b\s*[:：]?",
        re.IGNORECASE,
    ),
    # "答案是 C", "选项为C", "故选：D"; not the "应选" inside "对应选项" (the corresponding option).
    re.compile(r"(?:正确)?(?:答案|选项)(?:应该|应|就)?(?:是|为)\s*[:：]?|(?:故|所以|因此|(?<!对)应|则|即)选(?!项)\s*[:：]?"),
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
# A letter said to be right: "option C is the correct answer", "(C) is correct", "选项C是正确答案".
LETTER_IS_CORRECT_RE = re.compile(
    r"(?:\b(?:option|choice)\s*\(?([A-H])\)?|\(([A-H])\)|\b([A-H]))\s+is\s+(?:the\s+)?(?:correct|right|best)\s+"
    r"(?:answer|option|choice)\b"
    r"|(?:\b(?:option|choice)\s*\(?([A-H])\)?|\(([A-H])\))\s+is\s+(?:correct|right)\b"
    r"|选项\s*\(?([A-H])\)?\s*(?:是|为)?正确",
    re.IGNORECASE,
)
# An aside after the answer: "... is 2016, with 94% of schools" (not ", which gives 2123": that is the result).
TRAILING_CLAUSE_RE = re.compile(r",\s*(?:with|while|where|whereas)\b")
# A hypothesis: a sentence that starts with "If ..." / "Otherwise" ("If it is taller, the answer is (A) Yes.").
CONDITION_RE = re.compile(r"(?:if|otherwise|else|unless|whereas)\b|如果|若|否则", re.IGNORECASE)
SENTENCE_START_RE = re.compile(r"\n|(?<=[^\s\d])[.!?](?=\s)|[。！？]")
CONDITION_WINDOW_CHARS = 300
# What a refusal says it cannot tell: "I cannot determine whether the answer is yes or no" (no answer follows).
REFUSED_CLAUSE_RE = re.compile(r"[^,;]*\b(?:whether|if|what|which)\b[^,;]*$", re.IGNORECASE)
# A short bolded number ("**70**", "**week 3**"): chat models bold the answer inside an explanation.
BOLD_NUMBER_RE = re.compile(r"\*\*([^*\n:]{0,24}\d[^*\n:]{0,24})\*\*")
TEXT_WRAPPER_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|mbox|operatorname)\s*\{([^{}]*)\}")
# Function names that may appear without a backslash in a math answer ("sqrt(2)", "2pi").
MATH_WORDS_RE = re.compile(r"\\[A-Za-z]+|\b(?:sqrt|pi|sin|cos|tan|log|ln|exp|frac|infty|inf)\b")
# Fullwidth punctuation folded to ASCII; zero-width characters dropped (a response of one "\u200b" is empty).
FULLWIDTH = str.maketrans({"（": "(", "）": ")", "：": ":", "，": ",", "．": ".", "\u3000": " ", "−": "-",
                           "\u200b": None, "\u200c": None, "\u200d": None, "\ufeff": None})


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


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}) that closes, with nested braces; None if there is none.

    One scan with a stack of open braces, so it stays linear however many boxes are left unclosed."""
    stack: list[int | None] = []  # content start of an open box, None for a plain "{"
    best: tuple[int, int] | None = None
    for match in BOX_OR_BRACE_RE.finditer(text):
        token = match.group(0)
        if token == "}":
            opened = stack.pop() if stack else None
            if opened is not None and (best is None or opened > best[0]):
                best = (opened, match.start())
        else:
            stack.append(match.end() if token != "{" else None)
    return text[best[0] : best[1]] if best else None


def _span_after(text: str, position: int) -> str:
    """The answer text starting at `position`: up to the sentence end, or the next line if this one is empty."""
    rest = text[position : position + SPAN_WINDOW_CHARS]
    first_line = rest.split("\n", 1)[0]
    if not first_line.strip() and "\n" in rest:
        rest = rest.split("\n", 1)[1].lstrip("\n ")
    end = SPAN_END_RE.search(rest)
    span = rest[: end.start()] if end else rest
    return LEADING_FILLER_RE.sub("", span.strip()).strip()


def answering_number(raw: str, restated: Collection[float] = ()) -> str | None:
    """The number the answering sentence of a whole response gives (see rule answer_sentence): its first bolded
    number ("The maximum is **70**, reached in **2009**") else its last that is no threshold; None when that
    sentence holds no number.

    With several lines, models answer first and explain after; in one paragraph they reason up to the answer,
    so there it is the last sentence (a "Therefore ..." one in both cases when there is one)."""
    several_lines = len([line for line in raw.splitlines() if line.strip()]) > 1
    sentence = answer_sentence(raw, first=several_lines)
    sentence = TRAILING_CLAUSE_RE.split(sentence, 1)[0]
    emphasized = last_bold_number(sentence, first=True)
    if emphasized is not None:
        return emphasized
    number = answer_number(sanitize(sentence), restated)
    return number.raw if number is not None else None


def is_conditional(text: str, position: int) -> bool:
    """True when the sentence holding `position` states a hypothesis, not an answer: "If the bar is taller,
    then the answer is (A) Yes. Otherwise, the answer is (B) No." (MathVista's extractor reads neither)."""
    head = text[max(0, position - CONDITION_WINDOW_CHARS) : position]
    sentence = SENTENCE_START_RE.split(head)[-1]
    return bool(CONDITION_RE.match(sentence.lstrip(" \t*-")))


def is_refused(text: str, position: int) -> bool:
    """True when the answer phrase at `position` is what a refusal says it cannot tell: "I cannot determine
    whether the answer is yes or no." (a refusal, not the answer "yes or no")."""
    head = text[max(0, position - CONDITION_WINDOW_CHARS) : position]
    sentence = SENTENCE_START_RE.split(head)[-1]
    refusal = REFUSAL_RE.search(sentence)
    return refusal is not None and bool(REFUSED_CLAUSE_RE.match(sentence[refusal.end() :]))


def _last_marked(text: str, candidates: list[tuple[int, int]]) -> tuple[int, str] | None:
    """(start, span) of the latest (start, end) marker followed by a non-empty answer and not inside a
    hypothesis ("If ..., the answer is (A)"); only the last MARKERS_TRIED markers are tried, which bounds the
    work on a response that repeats a phrase endlessly."""
    for start, end in sorted(candidates)[-MARKERS_TRIED:][::-1]:
        span = _span_after(text, end)
        if clean_answer(span) and not is_conditional(text, start) and not is_refused(text, start):
            return start, span
    return None


def last_answer_is(text: str) -> tuple[int, str] | None:
    """(where, span) after the last "the answer is" phrase (English, Chinese, Spanish, French, German, ...)."""
    return _last_marked(text, [(m.start(), m.end()) for pattern in ANSWER_IS_RES for m in pattern.finditer(text)])


def last_letter_is_correct(text: str) -> tuple[int, str] | None:
    """(where, letter) of the last "option C is the correct answer" (or "(C) is correct", "选项C是正确答案")
    that is not a hypothesis ("If ..., option A is the correct answer")."""
    for match in list(LETTER_IS_CORRECT_RE.finditer(text))[-MARKERS_TRIED:][::-1]:
        letter = next(group for group in match.groups() if group)
        if (match.group(3) is None or letter.isupper()) and not is_conditional(text, match.start()):
            return match.start(), letter.upper()
    return None


def last_answer_label(text: str) -> tuple[int, str] | None:
    """(where, span) after the last "Answer:" label (or "A:" at a line start used the same way)."""
    candidates = [(match.start(), match.end()) for match in ANSWER_LABEL_RE.finditer(text)]
    option_lines = [match.start() for match in LATER_OPTION_LINE_RE.finditer(text)]
    last_option_line = option_lines[-1] if option_lines else -1
    for match in A_LABEL_RE.finditer(text):
        if last_option_line < match.end():  # not the first of a list of options "A: ..  B: .."
            candidates.append((match.start(), match.end()))
    return _last_marked(text, candidates)


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


def _marker_span(text: str, *, boxes: bool = True) -> Extraction | None:
    boxed = last_boxed(text) if boxes else None
    if boxed is not None and clean_answer(boxed):
        return Extraction(boxed.strip(), "boxed")
    hits = (("answer_is", last_answer_is(text)), ("answer_is", last_letter_is_correct(text)),
            ("answer_label", last_answer_label(text)))
    found = [(hit, rule) for rule, hit in hits if hit is not None]
    if not found:
        return None
    (_, span), rule = max(found)  # the later of "the answer is ..." and "Answer: ..."
    return Extraction(span, rule)


def answer_phrase(response: str) -> Extraction | None:
    """The span after the last answer phrase of `response` ("The correct answer is (B).", "Answer: 7"), boxes
    ignored; None when it has none. Multiple choice reads it when the box holds no choice: models state the
    option, then box an intermediate value of their working."""
    return _marker_span(sanitize(response), boxes=False)


def last_bold_number(raw: str, *, first: bool = False) -> str | None:
    """The last (or `first`) short bolded span holding one number ("**week 3**"), or None."""
    spans = [match.group(1) for match in BOLD_NUMBER_RE.finditer(raw.replace("\x00", ""))]
    for span in spans if first else reversed(spans):
        if len(find_numbers(span)) == 1:
            return span.strip()
    return None


def answer_tag_content(text: str) -> str | None:
    """The content of the last `<answer>` tag as the lenient reading takes it, or None when there is none."""
    return _lenient_tag(text, list(ANSWER_TAG_RE.finditer(text)))


def _lenient_tag(text: str, tags: list[re.Match[str]]) -> str | None:
    """The content of the last closed `<answer>` tag (from the last opening before its closing); else of a
    final tag left open (a response cut off after `<answer>`); else None."""
    opened: re.Match[str] | None = None
    closed: tuple[int, int] | None = None
    for tag in tags:
        if not tag.group(1):
            opened = tag
        elif opened is not None:
            closed, opened = (opened.end(), tag.start()), None
    if closed is not None:
        return text[closed[0] : closed[1]]
    return text[tags[-1].end() :] if tags and not tags[-1].group(1) else None


def _strict_tag(text: str, tags: list[re.Match[str]]) -> str | None:
    """The content of the one `<answer>...</answer>` of `text` when it is the only tag pair and ends the text;
    else None (several answer tags, an unclosed tag or text after it all give no answer)."""
    if len(tags) != 2 or tags[0].group(1) or not tags[1].group(1) or text[tags[1].end() :].strip():
        return None
    content = text[tags[0].end() : tags[1].start()].strip()
    boxed = last_boxed(content)
    if boxed is not None and re.fullmatch(r"\$?\\(?:boxed|fbox)\s*\{" + re.escape(boxed) + r"\}\$?", content):
        return boxed  # "<answer>\boxed{5}</answer>" is still one well-formed answer
    return content


def sanitize(response: str | None) -> str:
    """The response as extraction reads it: None as "", null bytes and zero-width characters dropped,
    fullwidth punctuation and markdown bold folded to plain text."""
    if response is not None and not isinstance(response, str):
        raise ValueError(f"response must be a string, not {type(response).__name__} ({response!r:.80})")
    return (response or "").replace("\x00", "").translate(FULLWIDTH).replace("**", "")


def extract_answer(response: str, fallback: Fallback = "text", mode: Mode = "lenient", *,
                   question: str | None = None) -> Extraction:
    """Find the final answer of `response`.

    `mode` "lenient" (evaluation: read free text the way MathVista's extractor does) tries every rule of the
    module docstring; "strict" (training rewards) takes only the content of exactly one well-formed
    `<answer>...</answer>` that ends the response, else nothing (rule "none"). `fallback` (lenient only) says
    what to take when no marker rule fires: "number" (the last number of a longer text that is not a
    comparison threshold nor, when another is there, a number of `question`; the whole text when it is a short
    expression), "list" (the last bracketed list) or "text" (the whole text).
    """
    if mode not in EXTRACTION_MODES:
        raise ValueError(f"extraction mode {mode!r} is not one of {EXTRACTION_MODES}")
    text = sanitize(response)
    tags = list(ANSWER_TAG_RE.finditer(text))
    if mode == "strict":
        tag = _strict_tag(text, tags)
        return Extraction(tag, "answer_tag") if tag else Extraction(None, "none")
    if not text.strip():
        return Extraction(None, "none")
    tag = _lenient_tag(text, tags)
    if tag is not None:
        inner = _marker_span(tag)
        span = inner.text if inner else tag
        return Extraction(span.strip() or None, "answer_tag")
    marked = _marker_span(text)
    if marked is not None:
        return marked
    last_line = _last_line(text[-FALLBACK_WINDOW_CHARS:])
    if letter_alone(last_line):
        return Extraction(last_line.strip(), "option_letter")
    return _fallback_span((response or "")[-FALLBACK_WINDOW_CHARS:], text[-FALLBACK_WINDOW_CHARS:], fallback,
                          question)


def _fallback_span(raw: str, text: str, fallback: Fallback, question: str | None) -> Extraction:
    if fallback == "list":
        lists = BRACKET_LIST_RE.findall(text)
        if lists:
            return Extraction(lists[-1], "bracket_list")
    if fallback == "number" and not looks_like_expression(text):
        conclusion = last_sentence(text)
        if is_refusal(conclusion):  # "... Without the data, we cannot determine the value." gives no number
            return Extraction(conclusion, "refusal")
        restated = {number.value for number in find_numbers(question or "")}
        stated = answering_number(raw, restated)
        if stated is not None:
            return Extraction(stated, "answer_sentence")
        emphasized = last_bold_number(raw)
        if emphasized is not None:
            return Extraction(emphasized, "bold")
        number = answer_number(text, restated)
        if number is not None:
            return Extraction(number.raw, "last_number")
    return Extraction(text.strip(), "full_text")
