"""``cli.py data list``: what the catalog holds.

A table of exchange, symbol, timeframe, first and last candle (UTC open times), rows, gaps
(events / missing candles) and whether the series is real exchange data or the generated
synthetic sample. Derived timeframes cached by the catalog are shown too, marked derived.
"""

from __future__ import annotations

import click

from gogo2.clikit import config_option, load


@click.command("list")
@click.option("--exchange", default=None, help="Only this exchange (e.g. binance, synthetic).")
@click.option("--symbol", default=None, help="Only this symbol (e.g. BTC/USDT).")
@click.option("--timeframe", default=None, help="Only this timeframe (e.g. 1m, 1h).")
@click.option(
    "--derived/--no-derived",
    default=False,
    show_default=True,
    help="Also show cached derived (resampled) timeframes.",
)
@config_option
def list_cmd(
    exchange: str | None,
    symbol: str | None,
    timeframe: str | None,
    derived: bool,
    config_path: str | None,
) -> None:
    """List stored series: ranges, rows, gaps, real or synthetic."""
    from rich.console import Console
    from rich.table import Table

    from datasets.catalog import Catalog
    from gogo2.errors import did_you_mean
    from gogo2.timeframes import format_time, normalize

    settings = load(config_path)
    catalog = Catalog.from_settings(settings)
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=160)
    tf = normalize(timeframe) if timeframe else None
    everything = [s for s in catalog.coverage() if derived or not s.derived]
    if not everything:
        click.echo(
            f"The catalog at {settings.data.path} is empty.\n"
            "Get candles with:\n"
            "  python cli.py data download --exchange binance --symbols BTC/USDT "
            "--timeframes 1m --from 2024-01-01\n"
            "  python cli.py data import PATH --exchange binance --symbol BTC/USDT --timeframe 1m\n"
            "or run `python cli.py backtest`, which stores the synthetic sample "
            "(exchange 'synthetic') on first use."
        )
        return
    rows = [
        s
        for s in everything
        if (exchange is None or s.exchange == exchange)
        and (symbol is None or s.symbol == symbol)
        and (tf is None or s.timeframe == tf)
    ]
    if not rows:
        hints = []
        if exchange and exchange not in {s.exchange for s in everything}:
            hints.append(
                f"exchange {exchange!r}.{did_you_mean(exchange, {s.exchange for s in everything})}"
            )
        if symbol and symbol not in {s.symbol for s in everything}:
            hints.append(
                f"symbol {symbol!r}.{did_you_mean(symbol, {s.symbol for s in everything})}"
            )
        detail = (" No " + " No ".join(hints)) if hints else ""
        click.echo(
            f"No stored series match the filters.{detail} "
            "Run `python cli.py data list` without filters to see everything."
        )
        return
    table = Table(
        title=f"Catalog {settings.data.path}",
        caption="gaps: gap events / missing candles (reported, never filled)",
        header_style="bold",
    )
    for name, justify in (
        ("exchange", "left"),
        ("symbol", "left"),
        ("timeframe", "left"),
        ("first (UTC)", "left"),
        ("last (UTC)", "left"),
        ("rows", "right"),
        ("gaps", "right"),
        ("data", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)
    for s in rows:
        kind = s.source + (" (derived)" if s.derived else "")
        style = "yellow" if s.source == "synthetic" else None
        table.add_row(
            s.exchange,
            s.symbol,
            s.timeframe,
            format_time(s.first),
            format_time(s.last),
            f"{s.rows:,}",
            f"{s.gap_events:,} / {s.missing_bars:,}",
            kind,
            style=style,
        )
    console.print(table)
    if any(s.source == "synthetic" for s in rows):
        console.print(
            "[yellow]synthetic[/] rows are generated sample data, not exchange prices: "
            "results on them say nothing about any market."
        )
