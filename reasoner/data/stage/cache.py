"""The one cache of a stage's built data: a JSON file tagged with the fingerprint of everything that built it.

    {"fingerprint": <stage fingerprint>, "items": [...], "stats": {...}}

A resumed stage reuses the file only when the fingerprint matches; a file of another config, or one that cannot
be read, is discarded with a warning naming it, so a stale cache is never reused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from reasoner.atomic import write_json
from reasoner.rundir import DamagedFile, read_json

log = logging.getLogger(__name__)

T = TypeVar("T")
Built = tuple[list[T], dict[str, Any]]
"""What a builder returns: its items and statistics for the stage manifest."""


def cached_build(
    path: Path,
    fingerprint: str,
    build: Callable[[], Built],
    *,
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
    owner: str,
) -> Built:
    """The items and statistics cached at `path` under `fingerprint`, else `build()`'s, written there first.

    `encode`/`decode` turn one item into JSON and back (a decode error counts as an unreadable file); `owner`
    names who the cache belongs to in log lines (e.g. `stage sft2`)."""
    found = _read(path, fingerprint, decode, owner)
    if found is not None:
        log.info("%s: reusing %s (built for this config)", owner, path)
        return found
    items, stats = build()
    write_json(path, {"fingerprint": fingerprint, "items": [encode(item) for item in items], "stats": stats})
    return items, stats


def _read(path: Path, fingerprint: str, decode: Callable[[Any], T], owner: str) -> Built | None:
    try:
        cached = read_json(path)
        if cached is None:
            return None
        if cached.get("fingerprint") == fingerprint:
            return [decode(item) for item in cached["items"]], dict(cached["stats"])
    except (DamagedFile, AttributeError, KeyError, TypeError, ValueError) as err:
        log.warning("%s: discarding %s, it cannot be read (%s); building it again", owner, path, err)
        path.unlink()
        return None
    log.warning(
        "%s: discarding %s: it was built for another config of the stage (fingerprint %s, now %s)",
        owner, path, cached.get("fingerprint"), fingerprint,
    )  # fmt: skip
    path.unlink()
    return None
