"""``cli.py data list``: what the catalog holds; and what the data commands share.

A table of exchange, symbol, timeframe, first and last candle (UTC open times), rows, gaps
(events / missing candles) and whether the series is real exchange data or the generated
synthetic sample, under the resolved catalog path. Derived timeframes cached by the catalog
are shown too, marked derived. An ``--exchange`` that is neither stored nor a ccxt exchange
id is refused (exit code 2) with the closest name.

``data import`` and ``data download`` take their ``--max-jump`` option from here and end
with the :func:`stored_in` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gogo2.clikit import config_option, load

max_jump_option = click.option(
    "--max-jump",
    "max_jump",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="FRACTION",
    help="Largest accepted close-to-close move as a fraction, 1.0 = 100% (default: data.max_jump if "
    "set, else 0.5 up to 1h, 0.75 up to 4h, 1.0 up to 1d, 2.0 above).",
)


def catalog_path(catalog: Any) -> Path:
    """The catalog's root directory, resolved (absolute, symlinks followed)."""
    return Path(catalog.root).resolve()


def stored_in(catalog: Any) -> str:
    """``"stored in <resolved catalog path>"``, the last line of import and download."""
    return f"stored in {catalog_path(catalog)}"


def check_exchange_name(exchange: str, stored: set[str]) -> None:
    """Refuse an exchange name that is neither in the catalog nor a ccxt exchange id.

    ``synthetic`` (the generated sample) is always a valid name. ccxt is imported only
    when ``exchange`` is neither stored nor ``synthetic``.

    Raises
    ------
    UserInputError
        With the closest stored or ccxt name.
    """
    stored = stored | {"synthetic"}
    if exchange in stored:
        return
    import ccxt

    from gogo2.errors import UserInputError, did_you_mean

    if exchange in ccxt.exchanges:
        return
    hint = did_you_mean(exchange, stored) or did_you_mean(exchange, set(ccxt.exchanges))
    have = ", ".join(sorted(stored - {"synthetic"})) or "none"
    raise UserInputError(
        f"--exchange {exchange!r} is not an exchange: neither stored in the catalog nor a ccxt "
        f"exchange id.{hint} Stored exchanges: {have}."
    )


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
    exchange = exchange.strip().lower() if exchange else None
    stored = catalog.coverage()
    everything = [s for s in stored if derived or not s.derived]
    if exchange:
        check_exchange_name(exchange, {s.exchange for s in stored})
    if not everything:
        click.echo(
            f"The catalog at {catalog_path(catalog)} is empty.\n"
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
            hints.append(f"series of exchange {exchange!r} are stored.")
        if symbol and symbol not in {s.symbol for s in everything}:
            hints.append(
                f"symbol {symbol!r}.{did_you_mean(symbol, {s.symbol for s in everything})}"
            )
        detail = (" No " + " No ".join(hints)) if hints else ""
        click.echo(
            f"No stored series match the filters.{detail} "
            "Run `python cli.py data list` without filters to see everything.\n"
            f"Catalog: {catalog_path(catalog)}"
        )
        return
    table = Table(
        title="Stored series",
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
    console.print(
        f"catalog: {catalog_path(catalog)}", markup=False, highlight=False, soft_wrap=True
    )
    if any(s.source == "synthetic" for s in rows):
        console.print(
            "[yellow]synthetic[/] rows are generated sample data, not exchange prices: "
            "results on them say nothing about any market."
        )
