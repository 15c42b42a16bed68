"""Read candle files (Binance dumps, freqtrade files, plain tables) into the schema columns.

Formats are recognised by extension and content; see :mod:`datasets.importers` for the
list. The result is ``time`` int64 ms UTC open time and ``open high low close volume``
float64, in file order: validation is the catalog's (:mod:`datasets.schema`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datasets.import_names import split_stem
from gogo2.errors import DataError, UserInputError
from gogo2.timeframes import normalize

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
