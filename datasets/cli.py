"""``cli.py data ...``: download, import and list candles. Subcommands load lazily."""

from __future__ import annotations

import importlib

import click

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


class _LazyData(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module, attr, _ = SUBCOMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(n, SUBCOMMANDS[n][2]) for n in sorted(SUBCOMMANDS)])


@click.group(cls=_LazyData)
def data() -> None:
    """Download, import and list market data."""
