"""The import contracts of pyproject.toml ([tool.importlinter]: layers, rewards standing alone, no cycles between
siblings) hold, no module imports itself back through others (a child importing its parent package included), and
both fail on a copy of the package into which one forbidden import is put back."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


MODULE_CYCLES = """
import grimp, networkx
graph = grimp.build_graph("reasoner", "rewards", include_external_packages=False, exclude_type_checking_imports=True)
edges = [(m, i) for m in graph.modules for i in graph.find_modules_directly_imported_by(m)]
cycles = [sorted(c) for c in networkx.strongly_connected_components(networkx.DiGraph(edges)) if len(c) > 1]
print(cycles)
"""


def module_cycles(root: Path) -> str:
    result = subprocess.run([sys.executable, "-c", MODULE_CYCLES], cwd=root, env={"PYTHONPATH": str(root)},
                            capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return result.stdout.strip()


def test_the_contracts_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout
    assert module_cycles(ROOT) == "[]"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("reasoner", "rewards"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    """Put back an import, inside a function (a lazy import counts as much as one at the top)."""
    module.write_text(module.read_text() + f"\n\ndef _put_back():\n    {statement}\n")


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        ("rewards/core.py", "import reasoner.errors", "rewards imports nothing from reasoner"),
        ("reasoner/data/records/problem.py", "import reasoner.pipeline", "layers point down"),
        ("reasoner/prompts.py", "from reasoner.generation.base import GenerationRequest", "no import cycles"),
        ("reasoner/config/schema.py", "from reasoner.models.tiny import SIZES", "layers point down"),
        ("reasoner/data/worlds/base.py", "from reasoner.data.stage import cache", "data: stage-data builders"),
    ],
)
def test_a_forbidden_import_breaks_them(tree: Path, module: str, statement: str, broken: str):
    assert lint(tree).returncode == 0  # the copy itself holds
    add_import(tree / module, statement)
    result = lint(tree)
    assert result.returncode == 1, result.stdout
    assert f"{broken}" in result.stdout.split("Broken contracts")[-1], result.stdout


def test_a_child_importing_its_package_back_is_a_cycle(tree: Path):
    assert module_cycles(tree) == "[]"
    add_import(tree / "reasoner/cli/data.py", "from reasoner.cli import main")  # cli/__init__ imports cli.data
    assert module_cycles(tree) == "[['reasoner.cli', 'reasoner.cli.data']]"
