"""``cli.py backtest``: replay history through a strategy and write a report.

Only click and the small ``gogo2`` helpers are imported at module level, so
``cli.py backtest --help`` stays fast; pandas, numba, duckdb and quantstats
are imported inside the command body (through :mod:`runner.backtest`).
"""

from __future__ import annotations

import click

from gogo2.clikit import (
    config_option,
    load,
    models_option,
    param_option,
    strategy_option,
    symbols_option,
    with_models,
)

EPILOG = """\b
Examples:
  python cli.py backtest --from 2023-01-01
  python cli.py backtest --from 2023-01-01 --to 2023-03-01 --symbols BTC/USDT \\
      --strategy sma_cross --param fast=20 --param slow=100 --fee 0.0005 --slippage 1
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--from", "start", required=True, metavar="DATE", help="First day (UTC), e.g. 2023-01-01."
)
@click.option(
    "--to",
    "end",
    default=None,
    metavar="DATE",
    help="End (UTC, exclusive on candle open time). Default: end of the stored data.",
)
@symbols_option
@click.option(
    "--timeframe",
    default=None,
    help="Base timeframe, e.g. 1m, 5m, 1h. Default: the config's for the config's strategy, "
    "else the strategy's own.",
)
@strategy_option
@param_option
@models_option
@click.option("--cash", default=None, metavar="AMOUNT", help="Initial cash in quote currency.")
@click.option(
    "--fee",
    default=None,
    metavar="RATE",
    help="Fee rate for maker and taker fills, as a fraction (0.001 = 0.1 %).",
)
@click.option(
    "--slippage", default=None, metavar="BPS", help="Adverse slippage in basis points (2 = 0.02 %)."
)
@click.option(
    "--report",
    "report",
    default=None,
    metavar="FILE",
    help="HTML tearsheet path; trades, equity and metrics go beside it (FILE_trades.csv, ...). "
    "Missing folders are created. Default: a folder per run under backtest.report_dir.",
)
@click.option("--no-report", is_flag=True, help="Skip the HTML tearsheet (metrics and files only).")
@click.option(
    "--exchange",
    default=None,
    help="Catalog exchange to read; 'synthetic' is the embedded generated sample.",
)
@config_option
def backtest(
    start: str,
    end: str | None,
    symbols: str | None,
    timeframe: str | None,
    strategy: str | None,
    params: tuple[str, ...],
    models: str | None,
    cash: str | None,
    fee: str | None,
    slippage: str | None,
    report: str | None,
    no_report: bool,
    exchange: str | None,
    config_path: str | None,
) -> None:
    """Replay history through a strategy, print a summary and write a QuantStats report.

    Decisions use only candles closed at decision time and fill at the next bar or
    later; fees and slippage are charged. Trades (CSV), the equity curve (Parquet)
    and the metrics (JSON) are written with the report, in a folder of the run's own
    (<report_dir>/<strategy>_<timeframe>_<symbols>_<from>_<to>_<hash>/, with a
    'latest' link beside it) unless --report names the HTML file.
    """
    import sys

    from rich.console import Console

    from engine.metrics import summary_table
    from runner.backtest import run_backtest

    settings = load(config_path)
    console = Console()
    notices = Console(stderr=True)
    if report is not None and no_report:
        from gogo2.errors import UserInputError

        raise UserInputError("--report and --no-report contradict each other; give one of them.")

    def progress(msg: str) -> None:
        if sys.stderr.isatty():
            notices.print(f"[dim]{msg} ...[/dim]")

    out = run_backtest(
        settings,
        start=start,
        end=end,
        symbols=symbols,
        timeframe=timeframe,
        strategy=strategy,
        params=with_models(strategy or settings.backtest.strategy, params, models),
        cash=cash,
        fee=fee,
        slippage=slippage,
        exchange=exchange,
        report=False if no_report else (report or None),
        console=notices,
        progress=progress,
    )
    quotes = {s.split("/")[-1] for s in out.request.symbols}
    quote = quotes.pop() if len(quotes) == 1 else ""
    title = "Backtest summary" + (" - SYNTHETIC DATA" if out.synthetic else "")
    console.print(title, markup=False, highlight=False, soft_wrap=True)
    console.print(summary_table(out.metrics, out.header_rows(), title=None, quote=quote))
    for warning in out.warnings:
        console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    if out.synthetic:
        console.print(
            "data: SYNTHETIC (generated sample, not market data)", markup=False, soft_wrap=True
        )
    if out.run_dir is not None:
        # one folder per run: say where, then the names inside it
        names = [
            p.name
            for p in (out.report_path, out.trades_path, out.equity_path, out.metrics_path)
            if p is not None
        ]
        console.print(f"run: {_rel(out.run_dir)}", markup=False, highlight=False, soft_wrap=True)
        console.print(f"files: {' '.join(names)}", markup=False, highlight=False, soft_wrap=True)
    else:
        for label, path in (
            ("report", out.report_path),
            ("trades", out.trades_path),
            ("equity", out.equity_path),
            ("metrics", out.metrics_path),
        ):
            if path is not None:
                console.print(
                    f"{label}: {_rel(path)}", markup=False, highlight=False, soft_wrap=True
                )
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in out.timings.items())
    console.print(f"time: {phases}", markup=False, highlight=False, soft_wrap=True)
    _record_run(settings, out, console)


def _record_run(settings: object, out: object, console: object) -> None:
    """Add the run's manifest to the run store (``runner.runstore``); a failure only warns."""
    from gogo2.errors import Gogo2Error
    from runner.manifests import record_backtest

    try:
        run_id = record_backtest(settings, out)
    except Gogo2Error as e:
        console.print(f"warning: not recorded in the run store: {e}", markup=False, soft_wrap=True)  # type: ignore[attr-defined]
        return
    if run_id:
        console.print(f"run store id: {run_id}", markup=False, highlight=False)  # type: ignore[attr-defined]


def _rel(path: object) -> str:
    import os

    p = str(path)
    try:
        rel = os.path.relpath(p)
    except ValueError:
        return p
    return p if rel.startswith("..") else rel
