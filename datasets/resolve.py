"""Which stored series answers a request: series keys, the exchange, the base timeframe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from datasets.resample import multiples_hint
from datasets.schema import grid_offset_ms
from gogo2.errors import DataError, NoDataError, UnknownNameError
from gogo2.timeframes import format_time, normalize, timeframe_ms

if TYPE_CHECKING:
    from datasets.catalog import Catalog

EXCHANGE_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
SYMBOL_RE = re.compile(r"^[A-Za-z0-9.]+/[A-Za-z0-9.]+(:[A-Za-z0-9.]+)?$")


def check_key(exchange: str, symbol: str, timeframe: str) -> tuple[str, str, str]:
    if not isinstance(exchange, str) or not EXCHANGE_RE.match(exchange):
        raise DataError(
            f"exchange name {exchange!r} is not valid: use the lower-case ccxt id such as "
            "'binance' (letters, digits, '_', '-', '.')."
        )
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
        raise DataError(
            f"symbol {symbol!r} is not valid: write it BASE/QUOTE (for example BTC/USDT, "
            "or BTC/USDT:USDT for a perpetual)."
        )
    return exchange, symbol, normalize(timeframe)


def resolve_exchange(catalog: Catalog, symbols: list[str], exchange: str | None) -> str:
    if exchange is not None:
        return exchange
    stored = catalog._stored()
    if not stored:
        raise NoDataError(f"the catalog at {catalog.root} is empty. {how_to_get_data()}")
    held: dict[str, set[str]] = {}
    for m in stored:
        held.setdefault(m["exchange"], set()).add(m["symbol"])
    full = sorted(ex for ex, syms in held.items() if set(symbols) <= syms)
    if len(full) == 1:
        return full[0]
    if not full:
        missing = [s for s in symbols if not any(s in syms for syms in held.values())]
        if missing:
            raise UnknownNameError(
                "symbol", missing[0], catalog.symbols(), fix=how_to_get_data(catalog.root)
            )
        where = "; ".join(
            f"{s} on {', '.join(sorted(ex for ex, syms in held.items() if s in syms))}"
            for s in symbols
        )
        raise DataError(
            f"no single exchange holds all of {', '.join(symbols)} ({where}). "
            "Name the exchange (--exchange) and download the missing symbols there."
        )
    raise DataError(
        f"{', '.join(symbols)} is stored on several exchanges ({', '.join(full)}); "
        "name the exchange (--exchange)."
    )


def base_for(
    catalog: Catalog,
    exchange: str,
    symbol: str,
    tf: str,
    start: int | None = None,
    end: int | None = None,
) -> str:
    """The stored timeframe to read ``tf`` from.

    ``tf`` itself when stored; otherwise, of the stored timeframes that divide it, the
    one covering most of ``[start, end)`` (ties: the finest).
    """
    stored = catalog.timeframes(exchange, symbol)
    if tf in stored:
        return tf
    tf_ms = timeframe_ms(tf)
    divisors = [s for s in stored if tf_ms % timeframe_ms(s) == 0 and timeframe_ms(s) < tf_ms]
    if grid_offset_ms(tf_ms):
        divisors = [s for s in divisors if timeframe_ms(s) <= 86_400_000]
    if len(divisors) > 1:
        lo = -(2**62) if start is None else int(start)
        hi = 2**62 if end is None else int(end)

        def covered(base: str) -> int:
            meta = catalog._series_meta(exchange, symbol, base) or {}
            if not meta.get("rows"):
                return 0
            a = max(lo, int(meta["first"]))
            b = min(hi, int(meta["last"]) + timeframe_ms(base))
            return max(0, b - a)

        return max(divisors, key=lambda b: (covered(b), -timeframe_ms(b)))
    if divisors:
        return divisors[0]
    finer = [s for s in stored if timeframe_ms(s) < tf_ms]
    if finer:
        raise DataError(
            f"timeframe {tf} cannot be derived for {exchange} {symbol}: it is not a whole "
            f"multiple of the stored timeframe(s) {', '.join(stored)}. Choose a multiple "
            f"(for example {multiples_hint(finer[0])}) or store {tf} candles."
        )
    raise DataError(
        f"timeframe {tf} is finer than what is stored for {exchange} {symbol} "
        f"({', '.join(stored)}); a finer timeframe cannot be made from a coarser one. "
        f"Download or import {tf} candles, or use {stored[0]} or coarser."
    )


def check_range(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and int(start) >= int(end):
        raise DataError(
            f"empty time range: start {format_time(start)} is not before end {format_time(end)} "
            "(end is exclusive). Give a start earlier than the end."
        )


def how_to_get_data(root: Path | None = None) -> str:
    return (f"The catalog is {root}. " if root is not None else "") + (
        "Get candles with `cli.py data download` or `cli.py data import`; "
        "`cli.py backtest` creates the synthetic sample under exchange 'synthetic'."
    )
