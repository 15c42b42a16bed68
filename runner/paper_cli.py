"""``cli.py paper`` and ``cli.py parity``. Only click at module level (``--help`` stays light);
ccxt, numba and pandas are imported inside the command bodies."""

from __future__ import annotations

from pathlib import Path

import click

from gogo2.clikit import config_option, load, param_option, strategy_option, symbols_option

API_URL_ENV = "GOGO2_EXCHANGE_API_URL"

PAPER_EPILOG = """\b
Examples:
  python cli.py paper --exchange binance --symbols BTC/USDT --timeframe 1m --max-bars 60
  python cli.py paper --strategy mtf_trend --duration 2h --feed rest
  python cli.py paper --replay --from 2024-06-01 --to 2024-06-08 --speed 0
"""


@click.command(epilog=PAPER_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--exchange", default=None, help="ccxt exchange id (binance), or the catalog's with --replay."
)
@symbols_option
@click.option("--timeframe", default=None, help="Base timeframe, e.g. 1s, 1m, 5m.")
@strategy_option
@param_option
@click.option("--cash", default=None, metavar="AMOUNT", help="Initial paper cash (quote currency).")
@click.option("--fee", default=None, metavar="RATE", help="Fee rate as a fraction (0.001 = 0.1 %).")
@click.option("--slippage", default=None, metavar="BPS", help="Adverse slippage in basis points.")
@click.option("--max-bars", type=int, default=None, help="Stop after N closed bars.")
@click.option("--duration", default=None, help="Stop after this long (90s, 30m, 2h).")
@click.option(
    "--feed",
    type=click.Choice(["ws", "rest"]),
    default="ws",
    show_default=True,
    help="Live candles by websocket (ws, falling back to REST polling when it fails) or by "
    "REST polling (rest).",
)
@click.option("--replay", is_flag=True, help="Replay catalog history instead (offline).")
@click.option("--from", "start", default=None, metavar="DATE", help="With --replay: first day.")
@click.option("--to", "end", default=None, metavar="DATE", help="With --replay: end (exclusive).")
@click.option("--speed", type=float, default=0.0, help="With --replay: N x real time; 0 = max.")
@click.option("--no-report", is_flag=True, help="Skip the HTML tearsheet.")
@click.option(
    "--run",
    "run_dir",
    default=None,
    metavar="DIR",
    help="Journal directory: every bar is journaled there; the same DIR continues the run.",
)
@click.option("--api-url", default=None, envvar=API_URL_ENV, hidden=True)
@config_option
def paper(
    exchange: str | None,
    symbols: str | None,
    timeframe: str | None,
    strategy: str | None,
    params: tuple[str, ...],
    cash: str | None,
    fee: str | None,
    slippage: str | None,
    max_bars: int | None,
    duration: str | None,
    feed: str,
    replay: bool,
    start: str | None,
    end: str | None,
    speed: float,
    no_report: bool,
    run_dir: str | None,
    api_url: str | None,
    config_path: str | None,
) -> None:
    """Run a strategy on live closed candles with simulated fills (no keys, no real orders).

    Fills follow the backtest engine's own rules (its kernel runs bar by bar). A status line
    per bar; at the end (--max-bars, --duration, Ctrl-C) trades, equity, metrics and a
    report go to a run folder under the report directory, as a backtest's do.
    """
    import sys

    from runner import paper as session

    settings = load(config_path)
    req, cls = session.validate(
        settings,
        mode="replay" if replay else feed,
        start=start,
        end=end,
        symbols=symbols,
        timeframe=timeframe,
        strategy=strategy,
        params=list(params),
        cash=cash,
        fee=fee,
        slippage=slippage,
        exchange=exchange,
        max_bars=max_bars,
        duration=duration,
        speed=speed,
        api_url=api_url,
        run_dir=None if run_dir is None else Path(run_dir).expanduser().resolve(),
    )

    def say(text: str) -> None:
        click.echo(text)
        sys.stdout.flush()

    out = session.run_paper(settings, req, cls, report=not no_report, say=say)
    rec = out.record
    for line in out.lines:
        say(line)
    if out.run is not None:
        m = out.run.metrics
        say(
            f"stopped by {rec.stopped_by}: {len(rec.time)} bars, {len(out.run.result.trades)} "
            f"trades, final equity {out.run.result.final_equity:,.2f}, return "
            f"{m.total_return * 100:.2f} %"
        )
        say(f"run: {_rel(out.run.run_dir)}")


PARITY_EPILOG = """\b
Examples:
  python cli.py parity --strategy sma_cross --from 2023-03-01 --to 2023-04-01
  python cli.py parity --strategy mtf_trend --from 2023-03-01 --to 2023-03-08 --symbols BTC/USDT
  python cli.py parity --run reports/latest
"""


@click.command(epilog=PARITY_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@strategy_option
@param_option
@click.option("--from", "start", default=None, metavar="DATE", help="First day (UTC).")
@click.option("--to", "end", default=None, metavar="DATE", help="End (UTC, exclusive).")
@symbols_option
@click.option("--timeframe", default=None, help="Base timeframe.")
@click.option("--exchange", default=None, help="Catalog exchange.")
@click.option("--run", "run_dir", default=None, metavar="DIR", help="A finished paper run folder.")
@config_option
def parity(
    strategy: str | None,
    params: tuple[str, ...],
    start: str | None,
    end: str | None,
    symbols: str | None,
    timeframe: str | None,
    exchange: str | None,
    run_dir: str | None,
    config_path: str | None,
) -> None:
    """Replay a period through the paper runner and backtest it; diff the trades.

    Each difference gets its cause (rounding, min notional rejection, missing candle,
    changed decision); exit code 1 when a difference is unexplained.
    """
    from runner import parity as par

    settings = load(config_path)
    if run_dir is not None:
        report = par.check_run(settings, run_dir)
    else:
        if start is None:
            from gogo2.errors import UserInputError

            raise UserInputError("parity needs --from DATE (or --run DIR of a paper run).")
        report = par.check_period(
            settings,
            strategy=strategy,
            params=list(params),
            start=start,
            end=end,
            symbols=symbols,
            timeframe=timeframe,
            exchange=exchange,
        )
    for line in par.format_report(report):
        click.echo(line)
    if not report.ok:
        from gogo2.errors import Gogo2Error

        class ParityDifference(Gogo2Error):
            exit_code = 1

        raise ParityDifference(
            f"{len(report.unexplained)} unexplained difference(s) between the backtest and "
            "the paper replay (listed above)."
        )
    click.echo("parity: ok")


def _rel(path: object) -> str:
    import os

    p = str(path)
    try:
        rel = os.path.relpath(p)
    except ValueError:
        return p
    return p if rel.startswith("..") else rel
