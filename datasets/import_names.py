"""What a candle file's name (and folder) says: symbol, timeframe, exchange, candle type.

Binance public-data dumps are named ``BTCUSDT-1m-2023-01.csv`` (or ``.zip``); freqtrade
data files ``BTC_USDT-1m.feather`` (spot) and ``BTC_USDT_USDT-1h-futures.feather``
(``PAIR-TIMEFRAME-TYPE.ext`` for the other candle types). :func:`check_name_agrees` refuses
a ``--symbol`` / ``--timeframe`` that contradicts the name unless forced.
"""

from __future__ import annotations

import re
from pathlib import Path

from gogo2.errors import DataError, UserInputError
from gogo2.timeframes import normalize

#: Quote currencies tried (longest first) to split a Binance pair id like ``BTCUSDT``.
QUOTES = (
    "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "EUR", "TRY", "BRL", "GBP", "JPY",
    "AUD", "RUB", "UAH", "ZAR", "IDR", "USD", "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE",
)  # fmt: skip

_BINANCE_NAME = re.compile(
    r"^(?P<pair>[A-Z0-9]+)-(?P<tf>\d+(?:mo|[smhdw]))-(?P<date>\d{4}-\d{2}(?:-\d{2})?)$"
)
_FREQTRADE_NAME = re.compile(
    r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)(?:_(?P<settle>[A-Za-z0-9]+))?"
    r"-(?P<tf>\d+[smhdwM])(?:-(?P<rest>.+))?$"
)
#: freqtrade's candle types that are not traded prices. freqtrade names its data files
#: ``PAIR-TIMEFRAME.ext`` (spot) and ``PAIR-TIMEFRAME-TYPE.ext`` (``futures``, ``mark``,
#: ``index``, ``premiumIndex``, ``funding_rate``); any other third dash-separated part is
#: just a part of the file name (``BTC_USDT-1h-old.csv``).
DERIVED_CANDLE_TYPES = ("mark", "index", "premiumIndex", "funding_rate")
_SUFFIXES = (".json.gz", ".csv.gz", ".csv", ".zip", ".json", ".feather", ".parquet", ".pq")


def split_stem(path: Path) -> tuple[str, str]:
    """``(stem, suffix)`` with double suffixes like ``.json.gz`` kept together."""
    name = path.name
    for suf in _SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)], suf
    return path.stem, path.suffix.lower()


def split_pair(pair: str) -> str | None:
    """``BTCUSDT`` -> ``BTC/USDT`` using the known quote currencies, or None."""
    for quote in sorted(QUOTES, key=len, reverse=True):
        if pair.endswith(quote) and len(pair) > len(quote):
            return f"{pair[: -len(quote)]}/{quote}"
    return None


def infer_from_name(path: Path) -> dict[str, str]:
    """Symbol, timeframe and exchange that the file name (and folder) tell, when they do."""
    stem, _ = split_stem(path)
    out: dict[str, str] = {}
    m = _BINANCE_NAME.match(stem)
    if m:
        sym = split_pair(m.group("pair"))
        if sym:
            out["symbol"] = sym
        out["pair"] = m.group("pair")
        if m.group("tf").endswith("mo"):
            raise DataError(
                f"{path}: monthly candles ({m.group('tf')}) have no fixed length and cannot be "
                "stored; import a finer timeframe (1d or less)."
            )
        out["timeframe"] = m.group("tf")
        out["exchange"] = "binance"
        out["kind"] = "binance"
        return out
    m = _FREQTRADE_NAME.match(stem)
    if m:
        sym: str | None = f"{m.group('base').upper()}/{m.group('quote').upper()}"
        kind = m.group("rest")
        if m.group("settle"):
            # freqtrade writes a settle currency only in futures names (BTC_USDT_USDT-1h-futures);
            # without such a candle type, three parts (coinbase_BTC_USD-1d) are not a pair
            derivative = kind in ("futures", *DERIVED_CANDLE_TYPES)
            sym = f"{sym}:{m.group('settle').upper()}" if derivative else None
        if kind in DERIVED_CANDLE_TYPES:
            raise DataError(
                f"{path}: the name says these are freqtrade {kind!r} candles (a mark price, "
                "index, premium index or funding rate), not traded prices. Import the spot or "
                "futures candle file (PAIR-TIMEFRAME.ext or PAIR-TIMEFRAME-futures.ext)."
            )
        if sym is not None:
            out["symbol"] = sym
        out["timeframe"] = m.group("tf")
        out["kind"] = "freqtrade"
        ex = _exchange_from_folders(path)
        if ex:
            out["exchange"] = ex
    return out


def _exchange_from_folders(path: Path) -> str | None:
    import ccxt

    known = set(ccxt.exchanges)
    for parent in list(path.resolve().parents)[:2]:
        if parent.name.lower() in known:
            return parent.name.lower()
    return None


def _same_symbol(given: str, hints: dict[str, str]) -> bool:
    """Whether ``--symbol`` agrees with the symbol (or raw Binance pair) of the file name."""
    g = given.strip().upper()
    if hints.get("kind") == "binance":
        # spot and USD-M futures dumps share the name BTCUSDT-1h-...: the settle part is free
        g = g.split(":")[0]
        if "symbol" in hints:
            return g == hints["symbol"].upper()
        return g.replace("/", "") == hints["pair"].upper()
    if "symbol" in hints:
        return g == hints["symbol"].upper()
    return True


def check_name_agrees(
    path: Path,
    hints: dict[str, str],
    symbol: str | None,
    timeframe: str | None,
    force: bool,
    spacing: str | None = None,
) -> list[str]:
    """Refuse ``--symbol`` / ``--timeframe`` values that contradict the file name.

    ``spacing`` (the most common candle spacing, when known) is named in the timeframe
    message, so it says which of the two the data agrees with. Returns notes saying which
    option overrode the name when ``force`` is set.

    Raises
    ------
    DataError
        Naming the file, both values and the two fixes (drop the option, or ``--force``).
    """
    notes = []
    if symbol is not None and not _same_symbol(symbol, hints):
        named = hints.get("symbol") or hints["pair"]
        if not force:
            raise DataError(
                f"{path}: --symbol {symbol} contradicts the file name, which says {named}. "
                f"Drop --symbol to import it as {named}, or add --force if the file really "
                f"holds {symbol} candles."
            )
        notes.append(f"--symbol {symbol} overrides {named} of the file name (--force)")
    if timeframe is not None and "timeframe" in hints:
        named_tf = hints["timeframe"]
        try:
            same = normalize(named_tf) == normalize(timeframe)
        except UserInputError:  # a monthly name: refused later with its own message
            same = True
        if not same:
            if not force:
                data = f" The candles are mostly {spacing} apart." if spacing else ""
                raise DataError(
                    f"{path}: --timeframe {timeframe} contradicts the file name, which says "
                    f"{named_tf}.{data} Drop --timeframe to import it as {named_tf}, or add "
                    f"--force if the file really holds {timeframe} candles."
                )
            notes.append(f"--timeframe {timeframe} overrides {named_tf} of the file name (--force)")
    return notes
