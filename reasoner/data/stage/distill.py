"""Caption-then-reason distillation: the recipe's iteration-1 SFT data.

    caption each image (a VLM; or the captions the data already carries)
      -> a text-only reasoner answers from caption + question, k chains per problem
      -> the one selection pipeline (`reasoner.data.stage.selection`): verify every chain with `rewards`, select one
         correct chain per problem, trim its reflections, drop it when it states a wrong answer or its SFT
         target is longer than `max_target_tokens`
      -> the kept chains on the ORIGINAL images: `Problem.reasoning`, trained as `format_target(reasoning, label)`

Work goes in shards of `shard_size` problems. A finished shard is one file written atomically, so a run that
stops (crash, Ctrl-C, preemption) redoes only unfinished shards; shard i samples with seed + i, so a resumed run
equals an uninterrupted one.

    out_dir/plan.json                  what the shards are made with (another plan discards stale shards)
    out_dir/shards/shard-00000.jsonl   per problem: caption, every chain with its verdict, the outcome
    out_dir/distilled.jsonl            the SFT set: kept problems with caption, reasoning, metadata["distill"]
    out_dir/stats.json                 counts per filter step, in total and per source

    reasoner data distill configs/distill-demo.yaml [KEY=VALUE ...]
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from reasoner import config as config_mod
from reasoner.atomic import write_json, write_jsonl
from reasoner.config import DistillConfig
from reasoner.data.records.files import write_problems
from reasoner.data.records.problem import Problem
from reasoner.data.stage.selection import OUTCOMES, choose_chain, verify
from reasoner.errors import ReasonerError
from reasoner.generation.base import GenerationRequest, Generator, SamplingSpec, user_message
from reasoner.prompts import Template, load_template, problem_messages
from reasoner.rundir import read_json

log = logging.getLogger(__name__)

GeneratorLike = Generator | Callable[[], Generator]
"""A generator, or a zero-argument factory (e.g. a `GeneratorConfig`) called only when a shard needs it."""
STEPS = ("problems", "captions", "samples", "correct", "selected", "after_trimming", "after_length_filter")
"""The counts in the statistics table: problems, captions made, chains sampled, chains correct, then problems
left after selection (some chain correct), trimming and the length filter."""
_EXTRA_COUNTS = ("captions_from_data", "empty_captions", "trimmed")


# ------------------------------------------------------------------------------------------------ prompts


def caption_requests(problems: Sequence[Problem], template: Template) -> list[GenerationRequest]:
    """One captioning request per problem: all of its images, then the captioning prompt."""
    return [
        GenerationRequest(problem_messages(p, template), images=p.load_images(), id=p.id) for p in problems
    ]


def _reason_template(name: str) -> Template:
    template = load_template(name, "distill.reason_prompt")
    if not template.shows_caption:
        raise ReasonerError(
            f"prompt template {template.name!r} does not use $caption; the reasoner sees no image"
        )
    return template


def reason_prompt(problem: Problem, caption: str, template: Template) -> str:
    """The reasoner's text prompt: the template with `$caption` and the problem's question fields filled in."""
    return template.prompt(problem, caption=caption)


def reason_requests(
    problems: Sequence[Problem], captions: Sequence[str], template: Template
) -> list[GenerationRequest]:
    """Text-only requests for the reasoner: caption + question, no image."""
    return [
        GenerationRequest(user_message(reason_prompt(p, c, template), images=0), id=p.id)
        for p, c in zip(problems, captions, strict=True)
    ]


# ------------------------------------------------------------------------------------------------- shards


@dataclass
class _Context:
    cfg: DistillConfig
    seed: int
    caption_template: Template | None
    reason_template: Template
    reasoner: GeneratorLike
    captioner: GeneratorLike | None
    count_tokens: Callable[[str], int] | None
    built: dict[str, Generator] = field(default_factory=dict)

    def generator(self, role: str) -> Generator:
        """The captioner or reasoner, built from its factory on first use (a finished run loads no model)."""
        if role not in self.built:
            given = getattr(self, role)
            self.built[role] = given if isinstance(given, Generator) else given()
        return self.built[role]


def _captions(problems: Sequence[Problem], ctx: _Context, seed: int) -> list[str]:
    if ctx.captioner is None:
        return [p.caption or "" for p in problems]
    spec = SamplingSpec(n=1, temperature=0.0, max_new_tokens=ctx.cfg.caption_max_new_tokens, seed=seed)
    results = ctx.generator("captioner").generate(caption_requests(problems, ctx.caption_template), spec)
    return [group[0].text.strip() for group in results]


def _distill_shard(problems: Sequence[Problem], index: int, ctx: _Context) -> list[dict[str, Any]]:
    """Caption, sample k chains, verify and filter one shard; one JSON-ready row per problem."""
    seed = ctx.seed + index
    captions = _captions(problems, ctx, seed)
    cfg = ctx.cfg
    spec = SamplingSpec.of(cfg.sampling, seed)
    requests = reason_requests(problems, captions, ctx.reason_template)
    completions = ctx.generator("reasoner").generate(requests, spec)
    samples = verify(problems, [[c.text for c in group] for group in completions])
    rows = []
    for problem, caption, group, chains in zip(problems, captions, samples, completions, strict=True):
        choice = choose_chain(
            problem,
            group,
            rule=cfg.select.value,
            max_target_tokens=cfg.max_target_tokens,
            count_tokens=ctx.count_tokens,
        )
        row = {
            "id": problem.id,
            "source": str(problem.metadata.get("source") or "unknown"),
            "caption": caption,
            "caption_generated": ctx.captioner is not None,
        }
        row["samples"] = [
            {
                "text": s.text,
                "correct": s.correct,
                "extracted": s.score.extracted,
                "reason": s.score.reason,
                "finish_reason": c.finish_reason,
                "tokens": len(c.token_ids),
            }
            for s, c in zip(group, chains, strict=True)
        ]
        row.update(
            outcome=choice.outcome,
            chosen=choice.sample,
            reasoning=choice.reasoning,
            trimmed=choice.trimmed,
            target_tokens=choice.target_tokens,
        )
        rows.append(row)
    return rows


def _shard_path(out_dir: Path, index: int) -> Path:
    return out_dir / "shards" / f"shard-{index:05d}.jsonl"


def _read_shard(path: Path, problems: Sequence[Problem]) -> list[dict[str, Any]] | None:
    """A finished shard's rows, or None when it is absent or belongs to other problems."""
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows if [r["id"] for r in rows] == [p.id for p in problems] else None


def _write_shard(path: Path, rows: list[dict[str, Any]]) -> None:
    write_jsonl(path, rows)


def _plan(problems: Sequence[Problem], ctx: _Context) -> dict[str, Any]:
    identity = [[p.id, p.question, p.answer, [im.sha256() for im in p.images]] for p in problems]
    return {
        "problems": len(problems),
        "problems_fingerprint": config_mod.fingerprint(identity),
        "config": config_mod.to_dict(ctx.cfg),
        "seed": ctx.seed,
        "captions": "captioner" if ctx.captioner is not None else "data",
        "prompts": {t.name: t.sha256 for t in (ctx.caption_template, ctx.reason_template) if t is not None},
    }


def _start(out_dir: Path, plan: dict[str, Any]) -> None:
    """Keep the shards of a run with the same plan; discard those of any other (they would mix settings)."""
    previous = read_json(out_dir / "plan.json")
    if previous is not None and previous != plan:
        stale = sorted((out_dir / "shards").glob("shard-*.jsonl"))
        log.warning(
            "%s: settings or problems changed since the last run; discarding %d shards", out_dir, len(stale)
        )
        for path in stale:
            path.unlink()
    write_json(out_dir / "plan.json", plan)


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class DistillResult:
    """The distilled SFT set, its statistics, and where both were written."""

    problems: list[Problem]
    stats: dict[str, Any]
    path: Path
    stats_path: Path
    shards_run: int
    """Shards computed by this call (the others were finished before)."""


def distill(
    problems: Sequence[Problem],
    out_dir: str | Path,
    cfg: DistillConfig,
    *,
    reasoner: GeneratorLike,
    captioner: GeneratorLike | None = None,
    count_tokens: Callable[[str], int] | None = None,
    seed: int = 0,
) -> DistillResult:
    """Distil SFT chains for `problems` into `out_dir` (resumable; see the module docstring).

    `captioner` None uses the captions in the data (every problem must have one). Generators may be given as
    factories so a run whose shards are all finished loads no model.
    """
    out_dir = Path(out_dir)
    if captioner is None:
        missing = [p.id for p in problems if not p.caption]
        if missing:
            raise ReasonerError(
                f"{len(missing)} problems have no caption (first: {missing[0]}); "
                "set distill.captioner to caption them"
            )
    ctx = _Context(
        cfg=cfg,
        seed=seed,
        caption_template=load_template(cfg.caption_prompt, "distill.caption_prompt") if captioner is not None else None,
        reason_template=_reason_template(cfg.reason_prompt),
        reasoner=reasoner,
        captioner=captioner,
        count_tokens=count_tokens,
    )
    _start(out_dir, _plan(problems, ctx))
    size = cfg.shard_size
    shards = [list(problems[start : start + size]) for start in range(0, len(problems), size)]
    rows = [_read_shard(_shard_path(out_dir, i), shard) for i, shard in enumerate(shards)]
    pending = [i for i, r in enumerate(rows) if r is None]
    log.info("distill: %d problems in %d shards, %d to do", len(problems), len(shards), len(pending))
    for i in tqdm(pending, desc="distill", unit="shard", disable=len(pending) < 2):
        rows[i] = _distill_shard(shards[i], i, ctx)
        _write_shard(_shard_path(out_dir, i), rows[i])
        log.info("distill: shard %d/%d done (%s)", i + 1, len(shards), _summary(count_rows(rows[i])["total"]))
    all_rows = [row for shard in rows for row in shard]
    return _finish(out_dir, problems, all_rows, cfg, len(pending))


def _finish(
    out_dir: Path,
    problems: Sequence[Problem],
    rows: list[dict[str, Any]],
    cfg: DistillConfig,
    shards_run: int,
) -> DistillResult:
    by_id = {p.id: p for p in problems}
    kept = [_distilled_problem(by_id[row["id"]], row, cfg) for row in rows if row["outcome"] == "kept"]
    stats = count_rows(rows)
    path = write_problems(kept, out_dir / "distilled.jsonl")
    write_json(out_dir / "stats.json", stats)
    for line in format_stats(stats).splitlines():
        log.info("distill: %s", line)
    return DistillResult(kept, stats, path, out_dir / "stats.json", shards_run)


def _distilled_problem(problem: Problem, row: dict[str, Any], cfg: DistillConfig) -> Problem:
    info = {
        "captioner": cfg.captioner or "data",
        "reasoner": cfg.reasoner,
        "samples": len(row["samples"]),
        "correct": sum(s["correct"] for s in row["samples"]),
        "chosen": row["chosen"],
        "trimmed": row["trimmed"],
        "target_tokens": row["target_tokens"],
    }
    return replace(
        problem,
        caption=row["caption"],
        reasoning=row["reasoning"],
        metadata={**problem.metadata, "distill": info},
    )


def count_rows(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts per filter step (`STEPS`, plus outcomes), in total and per source, from shard rows."""
    groups: dict[str, dict[str, int]] = {}
    for row in rows:
        for name in ("total", f"source:{row['source']}"):
            group = groups.setdefault(name, dict.fromkeys(STEPS + _EXTRA_COUNTS + OUTCOMES, 0))
            _count_row(group, row)
    total = groups.pop("total", dict.fromkeys(STEPS, 0))
    return {"total": total, "by_source": {k.split(":", 1)[1]: v for k, v in sorted(groups.items())}}


def _count_row(group: dict[str, int], row: dict[str, Any]) -> None:
    outcome = row["outcome"]
    group["problems"] += 1
    group["captions" if row["caption_generated"] else "captions_from_data"] += 1
    group["empty_captions"] += not row["caption"]
    group["samples"] += len(row["samples"])
    group["correct"] += sum(s["correct"] for s in row["samples"])
    group["selected"] += outcome != "no_correct"
    group["after_trimming"] += outcome in ("too_long", "kept")
    group["after_length_filter"] += outcome == "kept"
    group["trimmed"] += bool(row["trimmed"]) and outcome in ("too_long", "kept")
    group[outcome] += 1


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{step} {counts.get(step, 0)}" for step in STEPS)


def format_stats(stats: dict[str, Any]) -> str:
    """A small table: one row per source and the total, one column per filter step."""
    rows = [*stats["by_source"].items(), ("total", stats["total"])]
    width = max(len(name) for name in ["source", *(name for name, _ in rows)])
    lines = [f"{'source':{width}s}" + "".join(f"  {step}" for step in STEPS)]
    lines += [f"{name:{width}s}" + "".join(f"  {c.get(s, 0):>{len(s)}d}" for s in STEPS) for name, c in rows]
    return "\n".join(lines)
