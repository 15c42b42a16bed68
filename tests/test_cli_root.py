"""The root command: lazy subcommands, fast --help, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numba", "torch", "quantstats", "ccxt", "duckdb", "matplotlib")


def test_help_lists_commands(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("backtest", "check-lookahead", "data"):
        assert name in out


def test_unknown_command_exits_2(capsys) -> None:
    assert cli.main(["bactest"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys, cli\n"
        "for argv in (['--help'], ['backtest', '--help'], ['data', '--help'], ['check-lookahead', '--help']):\n"
        "    cli.main(argv)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
