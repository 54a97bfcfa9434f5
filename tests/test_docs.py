"""The documentation cannot drift from the code: the configuration reference is what the schema generates, the site
builds in strict mode, and every shell block marked runnable in README.md and docs/ runs."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reasoner.config import reference

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUNNABLE = re.compile(r"<!-- runnable -->\n```bash\n(.*?)```", re.S)


def test_the_configuration_reference_is_current():
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == reference.markdown(), "docs/configuration.md is stale: run `make docs-reference`"


def test_every_config_field_is_documented():
    rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in reference.markdown().splitlines() if line.startswith("| `")]
    undocumented = [cells[0].strip() for cells in rows if not cells[-1].strip()]  # the last cell: what it does
    assert len(rows) > 100 and not undocumented, undocumented


@pytest.mark.slow
def test_the_site_builds_in_strict_mode(tmp_path):
    result = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


def runnable_blocks() -> list[tuple[str, str]]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in RUNNABLE.findall(path.read_text(encoding="utf-8")):
            found.append((str(path.relative_to(ROOT)), block))
    return found


@pytest.mark.slow
@pytest.mark.parametrize(("page", "block"), runnable_blocks(), ids=lambda v: v if v.endswith(".md") else v[:40])
def test_runnable_blocks_run(page, block, tmp_path, mathvista_dir):
    """From a folder laid out like the repository (configs/ beside it, ../shared above it), with outputs left there."""
    work = tmp_path / "work" / "repo"
    work.mkdir(parents=True)
    for name in ("configs", "Makefile"):
        (work / name).symlink_to(ROOT / name)
    (tmp_path / "work" / "shared").symlink_to(mathvista_dir.parents[1])
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, f"{page}:\n{block}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    shutil.rmtree(work / "runs", ignore_errors=True)


def test_there_are_runnable_blocks():
    assert len(runnable_blocks()) >= 4
