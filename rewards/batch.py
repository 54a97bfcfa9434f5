"""`score_batch`: many items at once, in order, optionally spread over worker processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat

from .core import RewardScore, RewardWeights, score
from .equivalence import DEFAULT_TIMEOUT_S
from .guard import guarded

ITEM_KEYS = ("response", "ground_truth", "answer_type", "choices", "precision", "unit", "question")


def _score_item(item: Mapping, weights: RewardWeights | None, timeout_s: float, reading: dict) -> RewardScore:
    return score(
        item["response"],
        item["ground_truth"],
        answer_type=item.get("answer_type"),
        choices=item.get("choices"),
        precision=item.get("precision"),
        unit=item.get("unit"),
        question=item.get("question"),
        weights=weights,
        timeout_s=timeout_s,
        **reading,
    )


def _score_chunk(chunk: list[Mapping], weights: RewardWeights | None, timeout_s: float,
                 reading: dict, guard: bool = False) -> list[RewardScore]:
    if guard:
        return [guarded(_score_item, item, weights, timeout_s, reading) for item in chunk]
    return [_score_item(item, weights, timeout_s, reading) for item in chunk]


def _check_items(items: Iterable[Mapping]) -> list[Mapping]:
    checked = []
    for index, item in enumerate(items):
        missing = [key for key in ("response", "ground_truth") if key not in item]
        unknown = sorted(set(item) - set(ITEM_KEYS))
        if missing or unknown:
            raise ValueError(f"item {index}: missing keys {missing}, unknown keys {unknown}; allowed: {ITEM_KEYS}")
        checked.append(item)
    return checked


def score_batch(
    items: Iterable[Mapping],
    workers: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    weights: RewardWeights | None = None,
    progress: bool = False,
    extraction: str = "lenient",
    refusals: str = "strict",
    guard: bool = False,
) -> list[RewardScore]:
    """Score many items (mappings with response, ground_truth and optional answer_type, choices, precision,
    unit, question), in order. `workers` > 1 spreads chunks over that many spawned processes; `progress` shows tqdm.
    `extraction` and `refusals` apply to every item, as in `score`. With `guard` (training rewards) an item whose
    scoring raises or gives a non-finite score scores 0 with reason `reward-error` (`rewards.guard`) instead of
    raising."""
    checked = _check_items(items)
    reading = {"extraction": extraction, "refusals": refusals}
    chunk_size = max(16, min(512, len(checked) // max(1, 4 * workers) or 1))
    chunks = [checked[start : start + chunk_size] for start in range(0, len(checked), chunk_size)]
    bar = _progress_bar(len(checked)) if progress else None
    results: list[RewardScore] = []
    if workers <= 1 or len(chunks) <= 1:
        mapped = map(_score_chunk, chunks, repeat(weights), repeat(timeout_s), repeat(reading), repeat(guard))
        results = _collect(mapped, bar)
    else:
        context = multiprocessing.get_context("spawn")  # fork is unsafe in threaded callers (Ray, vLLM)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as executor:
            mapped = executor.map(
                _score_chunk, chunks, repeat(weights), repeat(timeout_s), repeat(reading), repeat(guard)
            )
            results = _collect(mapped, bar)
    if bar is not None:
        bar.close()
    return results


def _collect(chunk_results: Iterable[list[RewardScore]], bar) -> list[RewardScore]:
    results: list[RewardScore] = []
    for chunk in chunk_results:
        results.extend(chunk)
        if bar is not None:
            bar.update(len(chunk))
    return results


def _progress_bar(total: int):
    from tqdm import tqdm  # only when asked for: verl loads this package in every reward worker

    return tqdm(total=total, desc="scoring", unit="resp")

