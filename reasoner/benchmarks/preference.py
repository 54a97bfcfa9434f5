"""A preference file (`source: preference`, `path: pairs.jsonl`): the pairs a `kind: dpo` stage trains on
(`reasoner.data.records.preference` reads them). A set to train on, never to evaluate: config validation refuses
it in `eval.datasets` (`reasoner.config.preference`); a DPO stage scores its own held-out pairs (`dpo.heldout`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasoner.benchmarks.base import Benchmark
from reasoner.data.records.preference import read_preference_file
from reasoner.data.records.problem import Problem
from reasoner.errors import ReasonerError


class Preference(Benchmark):
    name = "preference"
    summary = "preference pairs (.jsonl: id, image, prompt, chosen, rejected) for kind=dpo stages"
    needs_path = True
    fields = ()

    def load_path(self, path: str | Path | None, *, images: bool = True) -> list[Problem]:
        return read_preference_file(path, images=images)

    def score(
        self, problems: Sequence[Problem], responses: Mapping[str, str | None], *, name: str,
        where: str = "responses", **options: Any,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        raise ReasonerError(f"{name}: a preference set has pairs of responses, not answers to score")


PREFERENCE = Preference()
