"""The one interface of a benchmark: find and load a set, build its prompts, score responses, lay out its report.

Every data source a config names (`datasets.<name>.source`) is a `Benchmark` registered by name in
`reasoner.registry`: the evaluation runner, `reasoner eval`, `reasoner score NAME`, config validation, the
contamination guard ask the registry (the report reads what the scores say), so a new benchmark is one module and one registration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasoner.benchmarks.scoring import read_predictions, score_with_rewards, write_outputs
from reasoner.config import DatasetConfig
from reasoner.data.records.problem import Problem
from reasoner.errors import ReasonerError
from reasoner.prompts import Template, load_template


class Benchmark:
    """A benchmark; subclasses set the class attributes and override `load` / `load_path` / `score` as needed.

    The defaults describe a set of fixed problems scored by the one scorer (`rewards.score`), broken down by
    `fields`."""

    name: str = ""
    """The `source` value in a config and the `reasoner score NAME` name."""
    summary: str = ""
    """One line: what the set is (help of `reasoner score NAME`, error messages)."""
    needs_path: bool = False
    """`datasets.<name>.path` names its file or folder (required)."""
    generated: bool = False
    """Drawn from a seed (`seed`, `n` > 0, `tasks`, `level`, `split`) rather than read from files."""
    evaluation_only: bool = False
    """A published benchmark: a training stage may not name it (without `data.allow_overlap`), every training set
    is compared with it by image hashes too (the contamination guard)."""
    tasks: tuple[str, ...] = ()
    """The allowed `datasets.<name>.tasks` values (generated sets)."""
    fields: tuple[str, ...] = ("task", "level", "question_type", "answer_type")
    """Metadata fields the scores are broken down by."""
    table_fields: tuple[str, ...] = ("task", "skills", "level")
    """Breakdown fields the console table shows (those present)."""
    official_prompt: str | None = None
    """A `--prompt` name that selects the benchmark's own official query instead of a template."""
    prompt: str | None = None
    """The template this set is always evaluated with (configs/prompts/<prompt>.txt), whatever the run's `prompt` or
    `reasoner eval --prompt`; None: the run's (or the command's) template."""
    score_options: Mapping[str, Mapping[str, Any]] = {}
    """Extra `reasoner score NAME` options: option name -> argparse keywords (passed to `score` by name)."""

    def load(self, ds: DatasetConfig) -> list[Problem]:
        """The problems of a configured set (its seed already filled in for generated sets)."""
        problems = self.load_path(ds.path)
        return problems[: ds.n] if ds.n else problems

    def load_path(self, path: str | Path | None, *, images: bool = True) -> list[Problem]:
        """The problems of a file or folder (`reasoner eval --data`; `reasoner score --data` with `images=False`:
        scoring needs no pixels, so a set may skip checking its image files)."""
        raise ReasonerError(f"{self.name}: problems are generated from a seed, not read from a path")

    @property
    def reads_files(self) -> bool:
        """Whether its problems can be read from a path (`reasoner eval --data`, `reasoner score NAME --data`): a set
        with `needs_path`, or a generated one that also reads a problems file (its own `load_path`: descriptions)."""
        return self.needs_path or type(self).load_path is not Benchmark.load_path

    def recognizes(self, path: Path) -> bool:
        """Whether `path` holds this benchmark's files (`reasoner eval --data PATH` picks the benchmark by it)."""
        return False

    def template(self, prompt: str) -> Template:
        """The prompt template `prompt` names (configs/prompts/<prompt>.txt), or the official query."""
        return load_template(prompt)

    def eval_template(self, default: Template) -> Template:
        """The template this set is evaluated with: its own `prompt`'s, else `default` (the run's)."""
        return self.template(self.prompt) if self.prompt else default

    def score(
        self, problems: Sequence[Problem], responses: Mapping[str, str | None], *, name: str,
        where: str = "responses", **options: Any,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """`(scores, items)`: the `scores.json` document and one `items.jsonl` row per problem, in order."""
        return score_with_rewards(problems, responses, benchmark=name, fields=self.fields, where=where, **options)

    def score_file(self, predictions: str | Path, data: str | Path, out: str | Path, **options: Any) -> dict:
        """`reasoner score NAME`: score a predictions file against the set at `data`; write OUT/scores.json and
        OUT/items.jsonl."""
        responses = read_predictions(predictions)
        scores, items = self.score(self.load_path(data, images=False), responses, name=self.name, where=str(predictions), **options)
        write_outputs(out, scores, items)
        return scores
