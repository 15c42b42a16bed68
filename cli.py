#!/usr/bin/env python
"""gogo2 command line.

    python cli.py backtest --from 2023-01-01
    python cli.py check-lookahead --strategy sma_cross
    python cli.py data download --exchange binance --symbols BTC/USDT --timeframes 1m --from 2023-01-01
    python cli.py data import PATH ...
    python cli.py data list
    python cli.py models [--check]
    python cli.py paper --symbols BTC/USDT --timeframe 1m --max-bars 60
    python cli.py paper --replay --from 2024-06-01 --to 2024-06-08
    python cli.py live --run runs/btc --symbols BTC/USDT --timeframe 1m --i-understand-real-money
    python cli.py parity --strategy sma_cross --from 2023-03-01 --to 2023-04-01

Each command lives in its package (``runner/backtest_cli.py``, ``runner/paper_cli.py``,
``datasets/cli.py``, ...) and is imported only when it runs, so ``--help`` stays fast. Heavy libraries
(numba, torch, quantstats, ccxt) are imported inside the command bodies.
Commands in ``PLANNED`` are not built yet: ``--help`` lists them as such and running
one prints a single line and exits with code 2. Bad usage (a mistyped command, a
missing option) is one ``error:`` line with exit code 2, like every bad input.
"""

from __future__ import annotations

import sys

import click

from gogo2.clikit import CommandNotFound, LazyGroup
from gogo2.errors import Gogo2Error, UserInputError

COMMANDS = {
    "backtest": (
        "runner.backtest_cli",
        "backtest",
        "Replay history through a strategy and write a report.",
    ),
    "check-lookahead": (
        "strategies.cli",
        "check_lookahead",
        "Prove a strategy's past decisions do not change when future data is cut.",
    ),
    "data": ("datasets.cli", "data", "Download, import and list market data."),
    "models": (
        "models.cli",
        "models",
        "List checkpointed models and the model registry's memory; --check loads them.",
    ),
    "train": (
        "runner.train_cli",
        "train",
        "Train the torch models (cnn, lstm, transformer, dqn) with purged walk-forward splits.",
    ),
    "paper": (
        "runner.paper_cli",
        "paper",
        "Paper trading: a strategy on live closed candles with simulated fills.",
    ),
    "live": (
        "runner.live_cli",
        "live",
        "Live trading on an exchange account (real orders; journal, reconciliation, kill switch).",
    ),
    "parity": (
        "runner.paper_cli",
        "parity",
        "Replay a period through the paper runner and diff its trades with the backtest's.",
    ),
    "sweep": (
        "runner.cli",
        "sweep",
        "Backtest a strategy over a grid of parameters and rank them.",
    ),
    "walk-forward": (
        "runner.cli",
        "walk_forward",
        "Choose parameters on rolling train windows, trade them on the next test window.",
    ),
    "runs": ("runner.cli", "runs", "List, show and compare recorded runs (the run store)."),
}

# Commands that are not built yet; move one to COMMANDS when it exists.
PLANNED = {}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    planned=PLANNED,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="gogo2", message="gogo2 %(version)s")
def cli() -> None:
    """gogo2: backtest-first trading system for crypto markets."""


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="cli.py", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted.", err=True)
        return 130
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()  # the help text, not an error line
        return e.exit_code
    except click.UsageError as e:
        where = ""
        if e.ctx is not None and not isinstance(e, CommandNotFound):
            where = f" Run '{e.ctx.command_path} --help' for usage."
        click.echo(f"error: {_one_line(e.format_message())}{where}", err=True)
        return e.exit_code
    except click.ClickException as e:
        click.echo(f"error: {_one_line(e.format_message())}", err=True)
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
