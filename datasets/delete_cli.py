"""``cli.py data delete``: remove a stored series, its metadata and its derived caches."""

from __future__ import annotations

import click

from gogo2.clikit import config_option, load


@click.command("delete")
@click.option("--exchange", required=True, help="Exchange of the series (e.g. binance).")
@click.option("--symbol", required=True, help="Symbol, e.g. BTC/USDT.")
@click.option(
    "--timeframe", default=None, help="Only this stored timeframe (default: every timeframe)."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@config_option
def delete_cmd(
    exchange: str, symbol: str, timeframe: str | None, yes: bool, config_path: str | None
) -> None:
    """Delete a stored series (one timeframe or all), its metadata and derived caches.

    Asks for confirmation unless --yes is given. An interrupt leaves the series whole or gone.
    """
    from datasets.catalog import Catalog
    from gogo2.timeframes import format_time

    settings = load(config_path)
    catalog = Catalog.from_settings(settings)
    exchange = exchange.strip().lower()
    symbol = symbol.strip()
    if symbol.upper() != symbol and symbol.upper() in catalog.symbols(exchange):
        symbol = symbol.upper()
    tf = catalog.check_stored(exchange, symbol, timeframe)
    series = [
        s
        for s in catalog.coverage(exchange, symbol)
        if not s.derived and (tf is None or s.timeframe == tf)
    ]
    if not yes:
        for s in series:
            click.echo(
                f"  {s.exchange} {s.symbol} {s.timeframe}: {s.rows:,} {s.source} candles, "
                f"{format_time(s.first)} .. {format_time(s.last)}"
            )
        what = f"{exchange} {symbol}" + (f" {tf}" if tf else " (every timeframe)")
        try:
            ok = click.confirm(f"Delete {what} from {catalog.root}?", default=False)
        except click.exceptions.Abort:
            ok = False
        if not ok:
            click.echo("Nothing deleted.")
            return
    gone = catalog.delete(exchange, symbol, tf)
    for s in gone:
        click.echo(f"deleted {s.exchange} {s.symbol} {s.timeframe} ({s.rows:,} candles).")
