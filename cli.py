#!/usr/bin/env python
"""gogo2 command line.

    python cli.py backtest --from 2023-01-01
    python cli.py check-lookahead --strategy sma_cross
    python cli.py data download --exchange binance --symbols BTC/USDT --timeframes 1m --from 2023-01-01
    python cli.py data import PATH ...
    python cli.py data list

Each command lives in its package (``engine/cli.py``, ``datasets/cli.py``, ...)
and is imported only when it runs, so ``--help`` stays fast. Heavy libraries
(numba, torch, quantstats, ccxt) are imported inside the command bodies.
"""

from __future__ import annotations

import importlib
import sys

import click

from gogo2.errors import Gogo2Error, UserInputError

COMMANDS = {
    "backtest": ("engine.cli", "backtest", "Replay history through a strategy and write a report."),
    "check-lookahead": (
        "strategies.cli",
        "check_lookahead",
        "Prove a strategy's past decisions do not change when future data is cut.",
    ),
    "data": ("datasets.cli", "data", "Download, import and list market data."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gogo2", message="gogo2 %(version)s")
def cli() -> None:
    """gogo2: backtest-first trading system for crypto markets."""


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="cli.py", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted.", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except UserInputError as e:
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except Gogo2Error as e:
        click.echo(f"error: {e}", err=True)
        return getattr(e, "exit_code", 1)
    except KeyboardInterrupt:
        click.echo("interrupted.", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
