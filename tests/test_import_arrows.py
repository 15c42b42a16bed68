"""The import arrows run one way: datasets -> strategies -> engine below, runner and adapters
above. Checked on the source with ast, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "engine": {"strategies", "runner", "adapters", "models"},
    "strategies": {"runner", "adapters"},
    "datasets": {"engine", "strategies", "runner"},
    "adapters": {"runner", "strategies"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_checker_sees_lazy_and_from_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "import os\n"
        "def g():\n"
        "    from strategies.base import Strategy\n"
        "    import runner.backtest as rb\n"
        "    return Strategy, rb\n",
        encoding="utf-8",
    )
    assert imported_packages(f) == {"os", "strategies", "runner"}


def test_no_package_imports_against_the_arrows():
    bad = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            hits = imported_packages(path) & forbidden
            bad.extend(f"{path.relative_to(ROOT)} imports {name}" for name in sorted(hits))
    assert bad == []


def test_the_kernel_imports_nothing_of_the_project_but_its_enums():
    names = imported_packages(ROOT / "engine" / "nb.py")
    assert names <= {"__future__", "numpy", "numba", "engine"}
    backtest = imported_packages(ROOT / "engine" / "backtest.py")
    assert not backtest & {"strategies", "runner", "adapters"}
