"""Import candle files into the catalog.

    python cli.py data import PATH [PATH ...] [--exchange binance] [--symbol BTC/USDT]
        [--timeframe 1m] [--force] [--repair] [--max-jump 1.0] [--config PATH]

Formats (recognised by extension and content):

* **Binance public data** kline dumps (``BTCUSDT-1m-2023-01.csv`` or the ``.zip`` they are
  published in): 12 columns (open time, open, high, low, close, volume, close time, quote
  volume, trades, taker base, taker quote, ignore), with or without a header row. The open
  time is in milliseconds or, in newer dumps, microseconds: the unit is detected from the
  magnitude of each value.
* **freqtrade** data files (``BTC_USDT-1m.feather``, ``.parquet``, ``.json``, ``.json.gz``;
  futures ``BTC_USDT_USDT-1h-futures.feather``): feather/parquet with a ``date`` column
  (timezone-aware datetime) and ``open high low close volume``; json as a list of
  ``[ms, open, high, low, close, volume]`` rows.
* **Plain tables** (``.csv``, ``.parquet``, ``.feather``, ``.json``) with a header: a time
  column named ``timestamp``, ``time``, ``open_time``, ``date`` or ``datetime`` holding
  seconds, milliseconds, microseconds (detected by magnitude), ISO text or datetimes
  (naive ones are taken as UTC), and ``open high low close volume``; names are
  case-insensitive, other columns are ignored. A CSV without a header must have the
  Binance column order (the first six columns are used).

Symbol, timeframe and exchange come from the options when given, else from the file name
(``BTCUSDT-1m-...`` or ``BTC_USDT-1m...``) and the folder (freqtrade keeps files under
``.../data/<exchange>/``; a Binance dump implies ``binance``). A timeframe found nowhere is
taken from the most common spacing of the candles (and said so). A ``--symbol`` or
``--timeframe`` that contradicts the file name (``--symbol ETH/USDT`` for
``BTCUSDT-1h-2023-01.csv``) is refused unless ``--force``. In freqtrade names only the real
candle types count as a type (``-futures``; ``-mark``, ``-index``, ``-premiumIndex`` and
``-funding_rate`` are refused, as they are not traded prices); any other part after the
timeframe is just a part of the name. A CSV delimited by ``;``, tabs or ``|`` (with a
decimal comma or not) is recognised from its first lines and said so.

The extreme-jump threshold is ``--max-jump`` when given, else ``data.max_jump`` when the
configuration sets it, else the per-timeframe default of
:func:`datasets.schema.default_max_jump` (0.5 up to 1h, 0.75 up to 4h, 1.0 up to 1d, 2.0
above).

All files are read and validated before anything is written: a bad file (unreadable,
missing columns, bad candles without ``--repair``) stops the command and the catalog is left
untouched. Files of one series are merged (a later file wins on a repeated timestamp) and
written with one atomic ``Catalog.write`` per series. A write can still be refused by the
catalog when a new candle jumps too far from a *stored* neighbour; series written before
that one stay written, and the message says which series failed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datasets.catalog_cli import max_jump_option
from gogo2.clikit import config_option
from gogo2.errors import DataError, UserInputError
from gogo2.timeframes import format_time, normalize, timeframe_ms

if TYPE_CHECKING:
    import pandas as pd

OHLCV = ("open", "high", "low", "close", "volume")
TIME_NAMES = ("timestamp", "time", "open_time", "opentime", "open time", "date", "datetime")
BINANCE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
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


@dataclass
class ParsedFile:
    """One file read into schema columns, with what was inferred about it."""

    path: Path
    frame: pd.DataFrame
    fmt: str
    symbol: str | None = None
    timeframe: str | None = None
    exchange: str | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- names
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


# --------------------------------------------------------------------------- parsing
def _to_ms_numeric(values: Any, path: Path, column: str) -> Any:
    """Epoch numbers in s / ms / µs / ns (per value, by magnitude) to int64 ms."""
    import numpy as np

    arr = np.asarray(values)
    if arr.dtype.kind in "iu":  # exact integer arithmetic (ns values exceed float precision)
        v = arr.astype(np.int64)
        a = np.abs(v)
        out = np.where(a < 10**11, v * 1000, v)
        out = np.where((a >= 10**14) & (a < 10**17), v // 1000, out)
        return np.where(a >= 10**17, v // 1_000_000, out).astype(np.int64)
    v = arr.astype(np.float64)
    if np.isnan(v).any():
        row = int(np.flatnonzero(np.isnan(v))[0])
        raise DataError(
            f"{path}: column {column!r} has an empty or non-numeric time at data row {row + 1}. "
            "Fix or remove that row."
        )
    a = np.abs(v)
    scale = np.where(a < 1e11, 1e3, np.where(a < 1e14, 1.0, np.where(a < 1e17, 1e-3, 1e-6)))
    return np.floor(v * scale + 1e-6).astype(np.int64)


def _time_to_ms(series: pd.Series, path: Path, column: str) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(
        series.dtype
    ):
        s = series
        if s.isna().any():
            row = int(np.flatnonzero(s.isna().to_numpy())[0])
            raise DataError(f"{path}: column {column!r} has an empty time at data row {row + 1}.")
        if getattr(s.dt, "tz", None) is None:
            s = s.dt.tz_localize("UTC")
        return s.dt.tz_convert("UTC").dt.as_unit("ms").astype("int64").to_numpy()
    if pd.api.types.is_numeric_dtype(series.dtype):
        return _to_ms_numeric(series.to_numpy(), path, column)
    text = series.astype("string").str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().all():
        return _to_ms_numeric(numeric.to_numpy(), path, column)
    try:
        parsed = pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        bad = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(
            f"{path}: column {column!r} value {text.iloc[bad]!r} (data row {bad + 1}) is not a "
            "time. Use epoch seconds/milliseconds or ISO text like 2023-01-01 00:00:00."
        ) from None
    return parsed.dt.as_unit("ms").astype("int64").to_numpy()


def _numbers(frame: pd.DataFrame, path: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    out = {}
    for col in OHLCV:
        raw = frame[col]
        if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
            out[col] = raw.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        vals = pd.to_numeric(raw, errors="coerce")
        bad = vals.isna() & raw.notna() & (raw.astype("string").str.strip() != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: column {col!r} value {raw.iloc[row]!r} (data row {row + 1}) is not a "
                "number. Fix or remove that row."
            )
        out[col] = vals.to_numpy(dtype=np.float64)
    return out


def normalize_table(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Map a table with a header to the schema columns (time ms int64, OHLCV float64)."""
    import pandas as pd

    if isinstance(df.index, pd.DatetimeIndex) and not any(
        str(c).strip().lower() in TIME_NAMES for c in df.columns
    ):
        df = df.reset_index(names="date")
    by_lower: dict[str, Any] = {}
    for c in df.columns:
        by_lower.setdefault(str(c).strip().lower(), c)
    time_col = next((by_lower[n] for n in TIME_NAMES if n in by_lower), None)
    missing = [c for c in OHLCV if c not in by_lower]
    if time_col is None or missing:
        need = ([] if time_col is not None else ["a time column (timestamp/time/date)"]) + missing
        raise DataError(
            f"{path}: missing column(s) {', '.join(need)}; found {', '.join(map(str, df.columns))}. "
            "The file needs a time column and open, high, low, close, volume (any letter case)."
        )
    sub = df[[time_col] + [by_lower[c] for c in OHLCV]].copy()
    sub.columns = ["time", *OHLCV]
    values = _numbers(sub, path)
    return pd.DataFrame({"time": _time_to_ms(sub["time"], path, str(time_col)), **values})


def _head(path: Path, suffix: str, n: int = 2) -> list[str]:
    """The first ``n`` lines of a (zipped or gzipped) text file."""
    import gzip
    import io
    import itertools
    import zipfile

    if suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise DataError(
                    f"{path}: the zip holds {len(names)} files; expected exactly one CSV "
                    "(a Binance public-data dump). Unzip it and import the CSV files."
                )
            with zf.open(names[0]) as fh:
                text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace")
                return list(itertools.islice(text, n))
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        return list(itertools.islice(fh, n))


#: Delimiters recognised besides the comma, and how they are named in notes.
_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")


def sniff_delimiter(lines: list[str]) -> tuple[str, str]:
    """``(delimiter, decimal)`` of a CSV from its first lines.

    The comma unless the first line splits into more fields on ``;``, a tab or ``|``; with
    another delimiter than the comma, numbers written with a decimal comma (``16500,25``,
    as spreadsheets in many locales export them) are read as such.
    """
    first = lines[0] if lines else ""
    best, fields = ",", first.count(",")
    for d in _DELIMITERS:
        if first.count(d) > fields:
            best, fields = d, first.count(d)
    decimal = "."
    if best != ",":
        cells = [c.strip().strip('"') for line in lines for c in line.split(best)]
        if any(_DECIMAL_COMMA.match(c) for c in cells):
            decimal = ","
    return best, decimal


def _read_csv(path: Path, suffix: str) -> tuple[pd.DataFrame, str, list[str]]:
    import pandas as pd

    lines = _head(path, suffix)
    first = lines[0].strip() if lines else ""
    if not first:
        raise DataError(f"{path}: the file is empty. Give a file with candles.")
    sep, decimal = sniff_delimiter(lines)
    notes = []
    if sep != ",":
        notes.append(
            f"the file uses {_DELIMITERS[sep]} as delimiter"
            + (" and a decimal comma" if decimal == "," else "")
            + "; read as such"
        )
    cells = [c.strip().strip('"') for c in first.split(sep)]
    try:
        float(cells[0].replace(",", ".") if decimal == "," else cells[0])
        has_header = False
    except ValueError:
        has_header = True
    opts: dict[str, Any] = {"sep": sep, "decimal": decimal}
    if has_header:
        df = pd.read_csv(path, skipinitialspace=True, **opts)
        lower = [str(c).strip().lower() for c in df.columns]
        fmt = "binance-csv" if lower[: len(BINANCE_COLUMNS)] == list(BINANCE_COLUMNS) else "csv"
        return normalize_table(df, path), fmt, notes
    if len(cells) < 6:
        raise DataError(
            f"{path}: a CSV without a header needs at least 6 columns (open time, open, high, "
            f"low, close, volume, as in Binance dumps); the first line has {len(cells)}. Add a "
            "header row naming the columns."
        )
    df = pd.read_csv(path, header=None, usecols=range(6), **opts)
    df.columns = ["time", *OHLCV]
    fmt = "binance-csv" if len(cells) == len(BINANCE_COLUMNS) else "csv"
    return normalize_table(df, path), fmt, notes


def _read_json(path: Path) -> tuple[pd.DataFrame, str]:
    import gzip

    import pandas as pd

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    if isinstance(data, list) and data and isinstance(data[0], list):
        if any(len(r) < 6 for r in data):
            raise DataError(
                f"{path}: every row must be [timestamp_ms, open, high, low, close, volume] "
                "(freqtrade json format)."
            )
        df = pd.DataFrame([r[:6] for r in data], columns=["time", *OHLCV])
        return normalize_table(df, path), "freqtrade-json"
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return normalize_table(pd.DataFrame(data), path), "json-records"
    if isinstance(data, dict) and data:
        return normalize_table(pd.DataFrame(data), path), "json-columns"
    raise DataError(
        f"{path}: no candles found in the JSON. Expected a list of "
        "[timestamp_ms, open, high, low, close, volume] rows."
    )


def read_candles(path: str | Path) -> tuple[pd.DataFrame, str]:
    """Read one candle file into the schema columns.

    Parameters
    ----------
    path : str or Path
        A Binance dump (.csv/.zip), a freqtrade file (.feather/.parquet/.json[.gz]) or a
        plain table with a header.

    Returns
    -------
    (frame, fmt)
        ``time`` int64 ms UTC open time and ``open, high, low, close, volume`` float64, in
        file order (validation is the catalog's), and a short name of the detected format.

    Raises
    ------
    DataError
        The file is missing, unreadable, of an unknown type or lacks the needed columns.
    """
    frame, fmt, _ = read_candle_file(path)
    return frame, fmt


def read_candle_file(path: str | Path) -> tuple[pd.DataFrame, str, list[str]]:
    """:func:`read_candles` plus notes on how the file was read (e.g. its delimiter)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file. Check the path.")
    _, suffix = split_stem(path)
    try:
        if suffix in (".csv", ".csv.gz", ".zip"):
            return _read_csv(path, suffix)
        if suffix in (".json", ".json.gz"):
            return (*_read_json(path), [])
        if suffix == ".feather":
            df = pd.read_feather(path)
            fmt = "freqtrade-feather" if "date" in df.columns else "feather"
            return normalize_table(df, path), fmt, []
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
            fmt = "freqtrade-parquet" if "date" in df.columns else "parquet"
            return normalize_table(df, path), fmt, []
    except DataError:
        raise
    except Exception as e:  # pandas, pyarrow, zip and json raise many kinds
        raise DataError(
            f"{path}: cannot be read as {suffix.lstrip('.')} ({type(e).__name__}: "
            f"{str(e).strip()[:200]}). Check that the file is complete and of that type."
        ) from None
    raise DataError(
        f"{path}: unknown file type {suffix or '(none)'!r}. Import .csv, .zip (Binance dump), "
        ".json, .json.gz, .feather or .parquet files."
    )


def infer_timeframe(time_ms: Any) -> str | None:
    """The most common spacing of sorted open times, as a timeframe, or None."""
    import numpy as np

    t = np.unique(np.asarray(time_ms, dtype=np.int64))
    if t.size < 2:
        return None
    d = np.diff(t)
    vals, counts = np.unique(d, return_counts=True)
    step = int(vals[np.argmax(counts)])
    if step <= 0 or step % 1000:
        return None
    try:
        return normalize(f"{step // 1000}s")
    except UserInputError:
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


def parse_file(
    path: str | Path,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    exchange: str | None = None,
    force: bool = False,
) -> ParsedFile:
    """Read ``path`` and settle its series key (options first, then name and folder, then data).

    An option that contradicts the file name (``--symbol ETH/USDT`` for
    ``BTCUSDT-1h-2023-01.csv``, ``--timeframe 5m`` for ``BTC_USDT-1h.feather``) is refused
    unless ``force``.

    Raises
    ------
    DataError
        Unreadable file, an option contradicting the file name, or a symbol / exchange that
        cannot be inferred (the message says which option to give).
    """
    path = Path(path)
    hints = infer_from_name(path)
    frame, fmt, read_notes = read_candle_file(path)
    spacing = infer_timeframe(frame["time"].to_numpy())
    override_notes = check_name_agrees(path, hints, symbol, timeframe, force, spacing)
    pf = ParsedFile(path, frame, fmt, notes=[*read_notes, *override_notes])
    pf.symbol = symbol or hints.get("symbol")
    pf.exchange = exchange or hints.get("exchange")
    tf = timeframe or hints.get("timeframe")
    if tf is None:
        tf = infer_timeframe(frame["time"].to_numpy())
        if tf is not None:
            pf.notes.append(f"timeframe {tf} inferred from the candle spacing")
    if tf is not None and tf.endswith("M"):
        raise DataError(
            f"{path}: monthly candles ({tf}) have no fixed length and cannot be stored; "
            "import a finer timeframe."
        )
    if pf.symbol is None:
        raise DataError(
            f"{path}: cannot tell the symbol from the file name. Give it with --symbol "
            "(for example --symbol BTC/USDT), or name the file like BTCUSDT-1m-2023-01.csv or "
            "BTC_USDT-1m.feather."
        )
    if tf is None:
        raise DataError(
            f"{path}: cannot tell the timeframe from the file name or the data. Give it with "
            "--timeframe (for example --timeframe 1m)."
        )
    if pf.exchange is None:
        raise DataError(
            f"{path}: cannot tell the exchange. Give it with --exchange (for example "
            "--exchange binance)."
        )
    pf.timeframe = normalize(tf)
    if spacing is not None and timeframe_ms(spacing) > timeframe_ms(pf.timeframe):
        said = "--timeframe" if timeframe else "the file name"
        fix = f"--timeframe {spacing}"
        if "timeframe" in hints and not force:
            fix += " --force"  # the name says otherwise: the option must overrule it
        raise DataError(
            f"{path}: {said} says {pf.timeframe} but the candles are mostly {spacing} apart. "
            f"Give {fix} (or check the file)."
        )
    return pf


# --------------------------------------------------------------------------- import
@dataclass
class SeriesImport:
    """Validated candles of one series, ready to write."""

    exchange: str
    symbol: str
    timeframe: str
    files: list[Path]
    frame: pd.DataFrame
    changes: list[str]
    notes: list[str] = field(default_factory=list)


def prepare_import(
    paths: list[str | Path],
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    exchange: str | None = None,
    repair: bool = False,
    max_jump: float | None = None,
    force: bool = False,
) -> tuple[list[ParsedFile], list[SeriesImport]]:
    """Read and validate every file; nothing is written.

    Files of one (exchange, symbol, timeframe) are merged in the given order (a later file
    wins on a repeated timestamp) and validated again together, so a jump between files is
    caught too. ``max_jump`` None means the per-timeframe default
    (:func:`datasets.schema.default_max_jump`); ``force`` lets ``symbol`` / ``timeframe``
    overrule a file name that says otherwise.

    Raises
    ------
    DataError, CandleValidationError
        The first bad file (or pair of files), named in the message.
    """
    import pandas as pd

    from datasets.schema import check_candles, resolve_max_jump

    if not paths:
        raise UserInputError("data import: give at least one file.")
    parsed = [
        parse_file(p, symbol=symbol, timeframe=timeframe, exchange=exchange, force=force)
        for p in paths
    ]
    groups: dict[tuple[str, str, str], list[tuple[ParsedFile, pd.DataFrame, list[str]]]] = {}
    for pf in parsed:
        assert pf.exchange and pf.symbol and pf.timeframe
        clean, changes, _ = check_candles(
            pf.frame,
            pf.timeframe,
            origin=str(pf.path),
            repair=repair,
            max_jump=resolve_max_jump(pf.timeframe, max_jump),
        )
        groups.setdefault((pf.exchange, pf.symbol, pf.timeframe), []).append((pf, clean, changes))
    series = []
    for (ex, sym, tf), items in groups.items():
        changes = [f"{pf.path.name}: {c}" for pf, _, cs in items for c in cs]
        if len(items) == 1:
            frame = items[0][1]
        else:
            merged = pd.concat([f for _, f, _ in items], ignore_index=True)
            merged = merged.drop_duplicates("time", keep="last").sort_values("time", kind="stable")
            origin = " + ".join(str(pf.path) for pf, _, _ in items)
            frame, more, _ = check_candles(
                merged, tf, origin=origin, repair=repair, max_jump=resolve_max_jump(tf, max_jump)
            )
            changes += more
        notes = [f"{pf.path.name}: {n}" for pf, _, _ in items for n in pf.notes]
        files = [pf.path for pf, _, _ in items]
        series.append(SeriesImport(ex, sym, tf, files, frame, changes, notes))
    return parsed, series


def import_files(
    catalog: Any,
    paths: list[str | Path],
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    exchange: str | None = None,
    repair: bool = False,
    max_jump: float | None = None,
    force: bool = False,
) -> list[tuple[SeriesImport, Any]]:
    """Validate all ``paths`` first, then write each series to ``catalog`` (``source="real"``).

    ``max_jump`` (a fraction) replaces the per-timeframe extreme-jump threshold of
    :func:`datasets.schema.default_max_jump`, for the files and for the seams with what is
    stored; the catalog's own ``max_jump`` is not used here.

    Returns
    -------
    list of (SeriesImport, WriteReport)
    """
    from datasets.schema import resolve_max_jump

    _, series = prepare_import(
        paths,
        symbol=symbol,
        timeframe=timeframe,
        exchange=exchange,
        repair=repair,
        max_jump=max_jump,
        force=force,
    )
    out = []
    for s in series:
        report = catalog.write(
            s.frame,
            exchange=s.exchange,
            symbol=s.symbol,
            timeframe=s.timeframe,
            source="real",
            repair=repair,
            origin=" + ".join(str(p) for p in s.files),
            max_jump=resolve_max_jump(s.timeframe, max_jump),
        )
        out.append((s, report))
    return out


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--exchange", default=None, help="Exchange the candles come from (ccxt id).")
@click.option("--symbol", default=None, help="Symbol, e.g. BTC/USDT (default: from the file name).")
@click.option(
    "--timeframe", default=None, help="Timeframe, e.g. 1m (default: from the name or the data)."
)
@click.option(
    "--force",
    is_flag=True,
    help="Let --symbol / --timeframe overrule a file name that says otherwise.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Sort, de-duplicate and drop bad candles (each change is reported) instead of refusing.",
)
@max_jump_option
@config_option
def import_cmd(
    paths: tuple[str, ...],
    exchange: str | None,
    symbol: str | None,
    timeframe: str | None,
    force: bool,
    repair: bool,
    max_jump: float | None,
    config_path: str | None,
) -> None:
    """Import Binance, freqtrade or plain CSV candle files into the catalog.

    Every file is read and validated before anything is written; a bad file leaves the
    catalog untouched.
    """
    from rich.console import Console

    from datasets.catalog import Catalog
    from datasets.catalog_cli import stored_in
    from datasets.schema import configured_max_jump
    from gogo2.clikit import load

    settings = load(config_path)
    if timeframe is not None:
        timeframe = normalize(timeframe)
    catalog = Catalog.from_settings(settings)
    out = Console(highlight=False, soft_wrap=True)
    results = import_files(
        catalog,
        list(paths),
        symbol=symbol,
        timeframe=timeframe,
        exchange=exchange.strip().lower() if exchange else None,
        repair=repair,
        max_jump=max_jump if max_jump is not None else configured_max_jump(settings.data),
        force=force,
    )
    for s, report in results:
        out.print(
            f"{s.exchange} {s.symbol} {s.timeframe}: {report.rows_written} candles imported "
            f"({report.rows_new} new) from {len(s.files)} file(s), "
            f"{format_time(report.first)} .. {format_time(report.last)}.",
            markup=False,
        )
        for note in s.notes:
            out.print(f"  note: {note}", markup=False)
        for c in s.changes:
            out.print(f"  repaired: {c}", markup=False)
        for a, b, missing in report.gaps:
            out.print(
                f"  gap: {missing} missing candle(s) between {format_time(a)} and "
                f"{format_time(b)} (not filled).",
                markup=False,
            )
    out.print(stored_in(catalog), markup=False)
