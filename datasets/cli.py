"""``cli.py data ...``: download, import and list candles. Subcommands load lazily."""

from __future__ import annotations

import click

from gogo2.clikit import LazyGroup

SUBCOMMANDS = {
    "download": (
        "datasets.download",
        "download_cmd",
        "Download candles from an exchange through ccxt.",
    ),
    "import": (
        "datasets.importers",
        "import_cmd",
        "Import Binance, freqtrade or plain CSV candle files.",
    ),
    "list": (
        "datasets.catalog_cli",
        "list_cmd",
        "List stored series: ranges, rows, gaps, real or synthetic.",
    ),
    "delete": (
        "datasets.delete_cli",
        "delete_cmd",
        "Delete a stored series, its metadata and derived caches.",
    ),
}


@click.group(cls=LazyGroup, lazy=SUBCOMMANDS)
def data() -> None:
    """Download, import and list market data."""
