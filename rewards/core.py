"""`score`: one scorer for GRPO rewards, SFT data filtering and MathVista grading (`score_batch` maps it).

How a response is judged, by the kind of answer:
- multiple choice (`choices` given; MathVista answer_type "text"): the ground truth is the choice TEXT (a letter
  ground truth is mapped to its choice); the response may give the letter or the text (`normalize.match_choice`);
- "integer" / "float": a whole number / MathVista's `str(round(float(x), precision))` on both sides (a number
  with a fractional part is no integer answer: "1.5" is wrong for 1, as in the published verdicts);
- "list": MathVista's `str(list)` on both sides;
- "expression" (a free-form answer that is no plain number: "5/18", "2\\sqrt{3}", "(3,-4)", a name) and None
  (generic): exact text, then letter against letter, list against list, number against number, all
  in-process; only two math expressions that are not plain numbers go to math-verify, in a worker process
  bounded by `timeout_s`. Text answers ("yes", "kyoto") never reach math-verify, which would equate them.
Fast paths run in-process; math-verify is only asked when an expression must be evaluated or compared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .choices import Normalized, exact_choice, leading_letter, match_choice, strict_choice
from .equivalence import DEFAULT_TIMEOUT_S, EquivalencePool, default_pool
from .extract import (
    BRACKET_LIST_RE,
    EXTRACTION_MODES,
    Extraction,
    answer_phrase,
    clean_answer,
    extract_answer,
    is_mathy,
    is_refusal,
    last_boxed,
    letter_alone,
)
from .formatting import check_format
from .normalize import (
    NumberReading,
    fold,
    holds_one_answer,
    is_whole,
    normalize_float,
    normalize_integer,
    normalize_list,
    read_number,
)

ANSWER_TYPES = ("text", "integer", "float", "list", "expression")
"""The answer types of `reasoner` records; "expression" is judged on the generic path, like None."""
REFUSAL_POLICIES = ("official", "strict")
# Longer responses are not read at all (reason "too-long"): every rule is linear, but a reward must stay bounded
# for any input, and no real answer (a few thousand tokens) comes near this.
MAX_RESPONSE_CHARS = 4_000_000
# Rules whose span starts with the answer, so its first number counts (an <answer> tag may hold a sentence).
MARKER_RULES = ("answer_is", "answer_label")
# Mappings that say a span names one choice outright (its text or its letter), not a guess from the wording.
NAMED_CHOICE = ("exact", "letter", "text")


@dataclass(frozen=True)
class RewardWeights:
    """How the parts add up: overall = accuracy * acc + format * fmt + summary_penalty (if summary missing).

    The default (1, 0, 0) makes overall the plain 0/1 accuracy, the right thing for evaluation and data
    filtering. The OpenVLThinker GRPO recipe is `RECIPE_WEIGHTS`: accuracy only, -0.5 when nothing stands
    between `</think>` and `<answer>`.
    """

    accuracy: float = 1.0
    format: float = 0.0
    summary_penalty: float = 0.0


RECIPE_WEIGHTS = RewardWeights(accuracy=1.0, format=0.0, summary_penalty=-0.5)


@dataclass(frozen=True)
class RewardScore:
    """The score of one response.

    overall: the weighted sum (see RewardWeights). accuracy: 1.0 if the answer is right, else 0.0.
    format: 1.0 if the response is `<think>..</think>..<answer>..</answer>`. extracted: the raw answer span
    (None: none found). prediction: what was compared with the ground truth, in MathVista's normal form (the
    choice text for multiple choice). rule: the extraction rule that fired (see rewards.extract). reason: why
    right or wrong: match, mismatch, no-answer, refusal, unparseable, timeout, parse-error, worker-error,
    reward-error (the scorer raised or gave a non-finite score: `rewards.guard`).
    mapping: how the prediction was reached (letter, mention, nearest, integer, math-verify, ...).
    summary_missing: the `</think>` is directly followed by `<answer>`.
    """

    overall: float
    accuracy: float
    format: float
    extracted: str | None
    prediction: str | None
    rule: str
    reason: str
    mapping: str
    summary_missing: bool

    def as_dict(self) -> dict:
        """The fields as a plain dict (for JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class _Reading:
    """How to read a response: the extraction mode and the refusal policy (see `score`)."""

    extraction: str
    refusals: str
    question: str | None = None

    @property
    def strict(self) -> bool:
        return self.extraction == "strict"


@dataclass(frozen=True)
class _Judgement:
    correct: bool
    extracted: str | None
    prediction: str | None
    rule: str
    reason: str
    mapping: str


def score(
    response: str,
    ground_truth: str,
    *,
    answer_type: str | None = None,
    choices: Sequence[str] | None = None,
    precision: float | int | None = None,
    unit: str | None = None,
    weights: RewardWeights | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    extraction: str = "lenient",
    refusals: str = "strict",
    question: str | None = None,
) -> RewardScore:
    """Score one response against its ground truth (see the module docstring for the rules).

    `choices` may be any sequence (a numpy array from parquet too); `precision` the number of decimals of a
    float answer (2 or 2.0; NaN counts as None); `unit` is stripped from the response ("years", "g").
    `timeout_s` bounds the math-verify work this response may trigger.
    `extraction`: "lenient" (the evaluation reading of free text, see rewards.extract) or "strict" (training:
    only the content of one well-formed final `<answer>` tag, read as one answer: no mentions, no nearest
    choice, one number). `refusals` (multiple choice, lenient only): "strict" (a refusal has no prediction,
    reason "refusal") or "official" (MathVista's pipeline: it still lands on the nearest choice, mapping
    "refusal"). `question` (optional, lenient only) is the question text, which the official extractor sees too:
    a yes/no answer that only states a comparison ("there are more jets than buses") is read against it, and a
    number the question already holds is not taken for the answer when another is given. Raises ValueError for
    a bad argument (a response that is not a string included).
    """
    weights = weights or RewardWeights()
    choice_list, precision = _check_arguments(answer_type, choices, precision, extraction, refusals)
    if response is not None and not isinstance(response, str):
        raise ValueError(f"response must be a string, not {type(response).__name__} ({response!r:.80})")
    response = (response or "").replace("\x00", "")
    layout = check_format(response)
    if len(response) > MAX_RESPONSE_CHARS:
        judgement = _Judgement(False, None, None, "none", "too-long", "too-long")
    else:
        judgement = _judge(response, str(ground_truth), answer_type, choice_list, precision, unit, timeout_s,
                           default_pool(), _Reading(extraction, refusals, question))
    accuracy = 1.0 if judgement.correct else 0.0
    overall = weights.accuracy * accuracy + weights.format * layout.score
    if layout.summary_missing:
        overall += weights.summary_penalty
    return RewardScore(
        overall=overall,
        accuracy=accuracy,
        format=layout.score,
        extracted=judgement.extracted,
        prediction=judgement.prediction,
        rule=judgement.rule,
        reason=judgement.reason,
        mapping=judgement.mapping,
        summary_missing=layout.summary_missing,
    )


def _check_arguments(
    answer_type: str | None, choices: Sequence[str] | None, precision: float | int | None, extraction: str,
    refusals: str,
) -> tuple[list[str] | None, float | None]:
    if answer_type is not None and answer_type not in ANSWER_TYPES:
        raise ValueError(f"answer_type {answer_type!r} is not one of {ANSWER_TYPES} or None")
    if extraction not in EXTRACTION_MODES:
        raise ValueError(f"extraction {extraction!r} is not one of {EXTRACTION_MODES}")
    if refusals not in REFUSAL_POLICIES:
        raise ValueError(f"refusals {refusals!r} is not one of {REFUSAL_POLICIES}")
    choice_list = [str(choice) for choice in choices] if choices is not None else None
    if precision is not None:
        try:
            precision = float(precision)
        except (TypeError, ValueError):
            raise ValueError(f"precision {precision!r} is not a number of decimals (e.g. 1, 2 or 2.0)") from None
        precision = None if math.isnan(precision) else precision
    return choice_list or None, precision


def _judge(response: str, ground_truth: str, answer_type: str | None, choices: list[str] | None,
           precision: float | None, unit: str | None, timeout_s: float, pool: EquivalencePool,
           reading: _Reading) -> _Judgement:
    if choices:
        return _judge_choice(response, ground_truth, choices, reading)
    if answer_type in ("integer", "float"):
        return _judge_number(response, ground_truth, answer_type, precision, unit, timeout_s, pool, reading)
    if answer_type == "list":
        return _judge_list(response, ground_truth, reading)
    return _judge_generic(response, ground_truth, precision, unit, timeout_s, pool, reading)


def _verdict(correct: bool, extracted: str | None, prediction: str | None, rule: str, mapping: str) -> _Judgement:
    return _Judgement(correct, extracted, prediction, rule, "match" if correct else "mismatch", mapping)


def _gold_choice(ground_truth: str, choices: list[str]) -> str:
    """The choice text the ground truth names (MathVista gives the text; other sets give a letter)."""
    if ground_truth in choices:
        return ground_truth
    named = exact_choice(clean_answer(ground_truth), choices)
    if named is None:
        raise ValueError(f"ground truth {ground_truth!r} is none of the choices {choices} nor a letter of one")
    return named.prediction


def _judge_choice(response: str, ground_truth: str, choices: list[str], reading: _Reading) -> _Judgement:
    extraction = extract_answer(response, "text", reading.extraction)
    gold = _gold_choice(ground_truth, choices)
    if reading.strict:
        normalized = strict_choice(extraction.text, choices)
    else:
        normalized = match_choice(extraction.text, choices, full_text=extraction.rule == "full_text",
                                  refusals=reading.refusals, question=reading.question)
        if extraction.rule == "boxed" and normalized.mapping not in NAMED_CHOICE:
            extraction, normalized = _phrase_over_box(response, choices, extraction, normalized)
        if extraction.rule in MARKER_RULES and normalized.mapping == "polarity":
            extraction, normalized = _word_over_polarity(response, choices, extraction, normalized, reading)
    if normalized.prediction is None:
        return _Judgement(False, extraction.text, None, extraction.rule, normalized.mapping, normalized.mapping)
    return _verdict(normalized.prediction == gold, extraction.text, normalized.prediction, extraction.rule,
                    normalized.mapping)


def _phrase_over_box(response: str, choices: list[str], boxed: Extraction,
                     normalized: Normalized) -> tuple[Extraction, Normalized]:
    """A box that names no choice ("\\boxed{82^\\circ}" among 45, 49, 90, 98) gives way to an answer phrase that
    does ("The correct answer is (B)."), as in the official reading; else the box stands."""
    phrase = answer_phrase(response)
    if phrase is None:
        return boxed, normalized
    named = match_choice(phrase.text, choices)
    return (phrase, named) if named.mapping in NAMED_CHOICE else (boxed, normalized)


def _word_over_polarity(response: str, choices: list[str], marked: Extraction, normalized: Normalized,
                        reading: _Reading) -> tuple[Extraction, Normalized]:
    """A yes/no answer phrase read only by its polarity ("... the roughest option is D (Teal).") gives way to a
    "yes" or "no" that opens the response ("C. No, Chartreuse is not the roughest. ..."); else it stands."""
    whole = match_choice(response, choices, full_text=True, refusals=reading.refusals, question=reading.question)
    if whole.mapping == "yes-no":
        return Extraction(response.strip(), "full_text"), whole
    return marked, normalized


def _to_mathvista_number(value: float, answer_type: str, precision: float | None, gold: str) -> str:
    if answer_type == "integer":
        return normalize_integer(value)
    if precision is None:  # MathVista always gives one; elsewhere use as many decimals as the ground truth has
        precision = len(gold.split(".", 1)[1]) if "." in gold else 0
    return normalize_float(value, precision)


def _judge_number(response: str, ground_truth: str, answer_type: str, precision: float | None, unit: str | None,
                  timeout_s: float, pool: EquivalencePool, reading: _Reading) -> _Judgement:
    extraction = extract_answer(response, "number", reading.extraction, question=reading.question)
    if extraction.text is None:
        return _Judgement(False, None, None, extraction.rule, "no-answer", "no-answer")
    if extraction.rule == "refusal":
        return _Judgement(False, extraction.text, None, extraction.rule, "refusal", "refusal")
    if reading.strict and not holds_one_answer(extraction.text, unit):
        return _Judgement(False, extraction.text, None, extraction.rule, "unparseable", "several-answers")
    number = read_number(extraction.text, unit, first=extraction.rule in MARKER_RULES)
    value, mapping = number.value, answer_type
    if number.kind == "expression":
        verdict = pool.evaluate(number.text, timeout_s=timeout_s)
        if verdict.value is None:
            return _Judgement(False, extraction.text, None, extraction.rule, verdict.reason, "math-verify")
        value, mapping = verdict.value, "math-verify"
    if value is None:
        reason = "refusal" if is_refusal(extraction.text) else "unparseable"
        return _Judgement(False, extraction.text, None, extraction.rule, reason, reason)
    if answer_type == "integer" and not is_whole(value, number.text):
        return _verdict(False, extraction.text, number.text, extraction.rule, "not-integer")
    gold_value = read_number(ground_truth, unit).value
    gold = ground_truth.strip()
    if gold_value is not None:
        gold = _to_mathvista_number(gold_value, answer_type, precision, gold)
    prediction = _to_mathvista_number(value, answer_type, precision, ground_truth.strip())
    return _verdict(prediction == gold, extraction.text, prediction, extraction.rule, mapping)


def _judge_list(response: str, ground_truth: str, reading: _Reading) -> _Judgement:
    extraction = extract_answer(response, "list", reading.extraction)
    prediction = normalize_list(extraction.text)
    if prediction is None:
        reason = "no-answer" if extraction.text is None else "unparseable"
        return _Judgement(False, extraction.text, None, extraction.rule, reason, reason)
    gold = normalize_list(ground_truth) or clean_answer(ground_truth)
    return _verdict(prediction == gold, extraction.text, prediction, extraction.rule, "list")


def _judge_generic(response: str, ground_truth: str, precision: float | None, unit: str | None, timeout_s: float,
                   pool: EquivalencePool, reading: _Reading) -> _Judgement:
    gold = clean_answer(last_boxed(ground_truth) or ground_truth)
    gold_reading = read_number(gold, unit)
    fallback = "number" if gold_reading.kind != "none" and is_mathy(gold) else "text"
    extraction = extract_answer(response, fallback, reading.extraction, question=reading.question)
    prediction = clean_answer(extraction.text or "")
    if not prediction:
        return _Judgement(False, extraction.text, None, extraction.rule, "no-answer", "no-answer")
    if extraction.rule == "refusal":
        return _Judgement(False, extraction.text, None, extraction.rule, "refusal", "refusal")
    if fold(prediction) == fold(gold):
        return _verdict(True, extraction.text, prediction, extraction.rule, "exact")
    if reading.strict and not holds_one_answer(prediction, unit):
        return _Judgement(False, extraction.text, None, extraction.rule, "unparseable", "several-answers")
    quick = _compare_in_process(prediction, gold, gold_reading, precision, unit, extraction.rule, reading.strict)
    if quick is not None:
        correct, shown, mapping = quick
        return _verdict(correct, extraction.text, shown, extraction.rule, mapping)
    if is_refusal(prediction):
        return _Judgement(False, extraction.text, None, extraction.rule, "refusal", "refusal")
    if not (is_mathy(gold) and is_mathy(strip_unit_words(prediction, unit))):
        return _verdict(False, extraction.text, prediction, extraction.rule, "text")
    verdict = pool.verify(gold, strip_unit_words(prediction, unit), timeout_s=timeout_s)
    if verdict.reason in ("match", "mismatch"):
        return _verdict(verdict.equal, extraction.text, prediction, extraction.rule, "math-verify")
    return _Judgement(False, extraction.text, prediction, extraction.rule, verdict.reason, "math-verify")


def strip_unit_words(text: str, unit: str | None) -> str:
    """`text` without the item's unit word, so "5\\sqrt{2} cm" with unit "cm" can go to math-verify."""
    if not unit or not unit.strip():
        return text
    return re.sub(r"(?<![A-Za-z])" + re.escape(unit.strip()) + r"(?![A-Za-z])", " ", text).strip()


def _compare_in_process(prediction: str, gold: str, gold_reading: NumberReading, precision: float | None,
                        unit: str | None, rule: str, strict: bool) -> tuple[bool, str | None, str] | None:
    """(correct, shown prediction, mapping) when letters, lists or plain numbers settle it; else None.
    `strict` (the strict extraction mode) takes a letter only when it stands alone."""
    gold_letter = letter_alone(gold)
    if gold_letter is not None:
        letter = letter_alone(prediction)
        if letter is None and not strict:
            letter = leading_letter(prediction, strict=rule == "full_text")
        return letter == gold_letter, letter, "letter"
    if BRACKET_LIST_RE.fullmatch(gold):
        listed = normalize_list(prediction)
        return listed == normalize_list(gold), listed, "list"
    if gold_reading.kind != "number":
        return None
    reading = read_number(prediction, unit, first=rule in MARKER_RULES)
    if reading.kind == "none":  # no number, no math: "B" or "blue" against "5"
        return False, prediction, "number"
    if reading.kind != "number":
        return None
    if precision is not None:
        shown = normalize_float(reading.value, precision)
        return shown == normalize_float(gold_reading.value, precision), shown, "float"
    close = math.isclose(reading.value, gold_reading.value, rel_tol=1e-6, abs_tol=1e-9)
    return close, _plain(reading.value), "number"


def _plain(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else str(value)
