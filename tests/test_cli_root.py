"""The root command: lazy subcommands, fast --help, exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

import cli
from gogo2.clikit import LazyGroup

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numba", "torch", "quantstats", "ccxt", "duckdb", "matplotlib")


def test_help_lists_commands(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("backtest", "check-lookahead", "data", "models"):
        assert name in out


def one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["backtst"], "'backtest'"),
        (["bactest", "--from", "2023-01-01"], "'backtest'"),
        (["check-lookahed"], "'check-lookahead'"),
        (["data", "dowload"], "'download'"),
        (["data", "lst"], "'list'"),
        (["papr"], "'paper'"),
    ],
)
def test_mistyped_command_gets_a_suggestion(argv: list[str], suggestion: str, capsys) -> None:
    assert cli.main(argv) == 2
    line = one_error_line(capsys)
    assert f"unknown command {argv[0] if argv[0] != 'data' else argv[1]!r}" in line
    assert f"Did you mean {suggestion}?" in line


def test_unknown_command_without_close_match_lists_the_commands(capsys) -> None:
    assert cli.main(["xyzzy"]) == 2
    line = one_error_line(capsys)
    assert "Did you mean" not in line
    assert f"Commands: {', '.join(sorted(cli.COMMANDS))}." in line


@pytest.fixture(name="planned")
def fixture_planned(monkeypatch: pytest.MonkeyPatch) -> str:
    """A command announced but not built yet, in the root group's planned table."""
    monkeypatch.setattr(cli.cli, "planned", {**cli.cli.planned, "demo": "a planned demo command"})
    return "demo"


def test_planned_commands_are_refused_in_one_line(planned: str, capsys) -> None:
    for argv in ([planned], [planned, "--help"], [planned, "--from", "2023-01-01"]):
        assert cli.main(argv) == 2
        line = one_error_line(capsys)
        assert f"'cli.py {planned}' is not available yet (a planned demo command)" in line
        assert f"Available now: {', '.join(sorted(cli.COMMANDS))}." in line


def test_help_marks_planned_commands(planned: str, capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    commands, _, listed = out.partition("Not available yet:")
    assert re.search(rf"^\s+{planned}\s", listed, re.M)
    assert not re.search(rf"^\s+{planned}\s", commands, re.M)
    for name in cli.COMMANDS:
        assert re.search(rf"^\s+{name}\s", commands, re.M), name
        assert not re.search(rf"^\s+{name}\s", listed, re.M), name
    built = (
        "backtest",
        "sweep",
        "walk-forward",
        "runs",
        "paper",
        "parity",
        "models",
        "train",
        "live",
    )
    assert set(built) <= set(cli.COMMANDS)


def test_help_without_planned_commands_has_no_such_section(capsys) -> None:
    assert cli.PLANNED == {}  # every announced command is built
    assert cli.main(["--help"]) == 0
    assert "Not available yet" not in capsys.readouterr().out


def test_a_built_command_is_no_longer_planned() -> None:
    assert not set(cli.PLANNED) & set(cli.COMMANDS)
    group = LazyGroup(
        name="g",
        lazy={"paper": ("cli", "cli", "now built")},
        planned={"paper": "planned", "train": "planned"},
    )
    assert group.planned == {"train": "planned"}
    assert group.list_commands(click.Context(group)) == ["paper"]


def test_usage_errors_are_one_line(capsys) -> None:
    assert cli.main(["backtest"]) == 2
    line = one_error_line(capsys)
    assert "Missing option '--from'" in line and "cli.py backtest --help" in line
    assert cli.main(["--bogus"]) == 2
    assert "No such option '--bogus'" in one_error_line(capsys)


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys, cli\n"
        "for argv in (['--help'], ['backtest', '--help'], ['data', '--help'], ['check-lookahead', '--help'],\n"
        "             ['backtst'], ['data', 'dowload'], ['paper', '--help'], ['parity', '--help'],\n"
        "             ['train', '--help'], ['data', 'download', '--help'], ['models', '--help']):\n"
        "    cli.main(argv)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
