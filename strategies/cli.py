"""``cli.py check-lookahead``: prove a strategy's past decisions ignore future candles.

Only click and small ``gogo2`` helpers load at import time so ``--help`` stays fast;
numpy, numba, duckdb and the strategies are imported inside the command.
"""

from __future__ import annotations

import click

from gogo2.clikit import (
    config_option,
    load,
    models_option,
    param_option,
    parse_symbols,
    strategy_option,
    symbols_option,
    with_models,
)

DAY_MS = 86_400_000

EPILOG = """\b
Examples:
  python cli.py check-lookahead --strategy sma_cross
  python cli.py check-lookahead --strategy mtf_trend --from 2023-01-01 --days 365 --sampled
  python cli.py check-lookahead --strategy mtf_trend --param trend=30 --cuts 40
  python cli.py check-lookahead --strategy ml --models cnn     # after python cli.py train
  python cli.py check-lookahead --strategy rsi_reversion --symbols BTC/USDT \\
      --from 2023-06-01 --to 2023-06-15 --timeframe 5m
"""


def _first_common_time(catalog: object, exchange: str, symbols: list[str]) -> int | None:
    firsts = []
    for sym in symbols:
        infos = [
            i
            for i in catalog.coverage(exchange=exchange, symbol=sym)  # type: ignore[attr-defined]
            if not i.derived and i.first is not None
        ]
        if not infos:
            return None  # the loader raises the catalog's own error for this symbol
        firsts.append(min(i.first for i in infos))
    return max(firsts)


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@strategy_option
@param_option
@models_option
@symbols_option
@click.option(
    "--from",
    "start",
    default=None,
    metavar="DATE",
    help="First day checked (UTC). Default: the first stored candle.",
)
@click.option(
    "--to",
    "end",
    default=None,
    metavar="DATE",
    help="End (UTC, exclusive). Default: --days after --from.",
)
@click.option(
    "--days",
    default="30",
    show_default=True,
    metavar="N",
    help="Length of the checked range when --to is not given.",
)
@click.option(
    "--timeframe", default=None, help="Base timeframe. Default: the strategy's own (e.g. 5m)."
)
@click.option("--exchange", default=None, help="Catalog exchange. Default: data.exchange.")
@click.option(
    "--exhaustive/--sampled",
    "exhaustive",
    default=None,
    help="Re-decide every row from its trailing window, or only the boundary rows plus "
    "--cuts whole-history cuts. Default: exhaustive up to 50,000 base bars.",
)
@click.option(
    "--cuts",
    default="20",
    show_default=True,
    metavar="N",
    help="Whole-history cut points (sampled mode).",
)
@click.option(
    "--seed", default="0", show_default=True, metavar="S", help="Seed of the cut choice (sampled)."
)
@click.option(
    "--warmup-starts",
    default="5",
    show_default=True,
    metavar="N",
    help="Also check the warm-up with N later starts of the history (0: skip).",
)
@click.option(
    "--list", "list_only", is_flag=True, help="List the strategies and their parameters, then exit."
)
@config_option
def check_lookahead(
    strategy: str | None,
    params: tuple[str, ...],
    models: str | None,
    symbols: str | None,
    start: str | None,
    end: str | None,
    days: str,
    timeframe: str | None,
    exchange: str | None,
    exhaustive: bool | None,
    cuts: str,
    seed: str,
    warmup_starts: str,
    list_only: bool,
    config_path: str | None,
) -> None:
    """Prove a strategy's past decisions do not change when future data is cut.

    The strategy runs on the whole range; then each row after the warm-up is decided
    again from the trailing window of warm-up bars that ends at it, as a live runner
    would (every timeframe cut at the row's close, so a coarse candle still open then
    is absent). Up to 50,000 base bars every row is checked (--exhaustive); beyond,
    the rows where sparse leaks hide (last bar of each hour and day, first bar seeing
    each coarse candle, both edges of every gap, every acting row and the row before
    each of them) plus --cuts whole-history cuts (--sampled). A decision that differs
    from the full run, and still differs when rerun on the whole history up to its
    row, is look-ahead bias: the command prints the bar, symbol, field and both values
    and exits with code 1.

    It also restarts the history later (--warmup-starts) and warns when decisions
    after the strategy's warm-up differ from the full run: then a live window or a
    backtest starting at --from would not trade like the long history.
    """
    if list_only:
        from strategies.registry import available, describe

        click.echo("\n\n".join(describe(name) for name in available()))
        return

    from rich.console import Console

    from gogo2.clikit import parse_number
    from gogo2.errors import UserInputError
    from gogo2.timeframes import format_time, parse_time

    settings = load(config_path)
    n_cuts = parse_number("--cuts", cuts, int)
    seed_v = parse_number("--seed", seed, int)
    n_days = parse_number("--days", days, float)
    n_starts = parse_number("--warmup-starts", warmup_starts, int)
    if n_starts < 0:
        raise UserInputError(f"--warmup-starts {n_starts} must be >= 0 (0 skips the check).")
    if n_cuts < 1:
        raise UserInputError(f"--cuts {n_cuts} must be >= 1, for example 20.")
    if seed_v < 0:
        raise UserInputError(f"--seed {seed_v} must be >= 0.")
    if not n_days > 0:
        raise UserInputError(f"--days {days} must be a positive number of days, like 30.")
    t0 = parse_time(start, "--from")
    t1 = parse_time(end, "--to")
    if t0 is not None and t1 is not None and t1 <= t0:
        raise UserInputError(
            f"--from {start} is not before --to {end}. Give a start earlier than the end."
        )
    exch = (exchange or settings.data.exchange).strip()
    if not exch:
        raise UserInputError("--exchange is empty. Give an exchange name, like synthetic.")
    syms = list(parse_symbols(symbols, settings.backtest.symbols))

    from strategies.registry import create

    name = strategy or settings.backtest.strategy
    strat = create(name, with_models(name, params, models), timeframe)

    from datasets.catalog import Catalog

    console = Console()
    notices = Console(stderr=True)
    catalog = Catalog(settings.data.path)
    if exch == "synthetic":
        from datasets.synthetic import ensure_sample

        ensure_sample(catalog, settings.data.sample_seed, console=notices)
    if t0 is None:
        t0 = _first_common_time(catalog, exch, syms)
    if t1 is None and t0 is not None:
        t1 = t0 + int(n_days * DAY_MS)

    from strategies.loader import load_strategy_data
    from strategies.lookahead import LookaheadError, check_lookahead, check_warmup

    data = load_strategy_data(catalog, strat, syms, t0, t1, exch, warmup=True)
    bars = data.bars
    console.print(
        f"checking {strat!r} on {', '.join(bars.symbols)} {bars.timeframe} "
        f"({exch}{'; generated data, not market data' if bars.synthetic else ''}): {bars.n} bars "
        f"{format_time(int(bars.time[0]))} .. {format_time(int(bars.close_time[-1]))}, "
        f"warm-up {strat.warmup} bars",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    report = check_lookahead(strat, data, cuts=n_cuts, seed=seed_v, exhaustive=exhaustive)
    if n_starts and bars.n > strat.warmup + 1:
        # a short warm-up does not bias the past, so it is reported, not failed
        warm = check_warmup(strat, data, starts=n_starts, seed=seed_v, lookahead=report)
        prefix = "" if warm.ok else "warning: "
        console.print(prefix + warm.summary(), markup=False, highlight=False, soft_wrap=True)
    if report.ok:
        console.print(report.summary(), markup=False, highlight=False, soft_wrap=True)
        return
    for issue in report.issues:
        console.print(f"  {issue.describe()}", markup=False, highlight=False, soft_wrap=True)
    raise LookaheadError(report.summary())
