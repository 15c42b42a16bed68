"""pandas OHLCV frames to :class:`datasets.bars.Bars`: ``Bars.from_frame`` and
``MultiBars.from_frames`` build on this.

A frame holds one symbol's candles: columns open, high, low, close (any letter case),
optionally volume, and the candle open times as a DatetimeIndex or a time column
(``time``, ``timestamp``, ``date``, ``datetime`` or ``open_time``; an index with one of
those names works too) holding integer milliseconds since the epoch, datetimes or ISO
text. Times without a zone are UTC; times with one are converted to UTC.

Rows must be sorted by time without duplicates. A NaN candle (every price NaN) marks a
missing bar. Several symbols are joined on the union of their times, with NaN where a
symbol has no candle. The timeframe, when not given, is the smallest spacing between two
candles, and every spacing must be a whole number of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from gogo2.errors import UserInputError
from gogo2.timeframes import format_time, normalize, timeframe_ms

if TYPE_CHECKING:
    import pandas as pd

    from datasets.bars import Bars

__all__ = ["bars_from_frames"]

TIME_NAMES = ("time", "timestamp", "date", "datetime", "open_time")
PRICE_NAMES = ("open", "high", "low", "close")
# plausible epoch milliseconds: 1973-03-03 .. 5138-11-16; seconds, micro- or nanoseconds fall outside
_MS_LO, _MS_HI = 100_000_000_000, 100_000_000_000_000


def bars_from_frames(frames: Mapping[str, Any], timeframe: str | None = None) -> Bars:
    """One :class:`Bars` from ``{symbol: frame}`` on the union of the frames' times.

    Raises
    ------
    UserInputError
        A frame is not a DataFrame, is empty, lacks a column or a time source, has
        unparsable, unsorted or duplicate times, non-numeric prices, or spacing that does
        not fit the (given or inferred) timeframe.
    """
    from datasets.bars import Bars

    if not isinstance(frames, Mapping) or not frames:
        raise UserInputError(
            "frames must be a non-empty mapping {symbol: DataFrame}, e.g. {'BTC/USDT': df}."
        )
    parsed: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for symbol, df in frames.items():
        if not isinstance(symbol, str) or not symbol.strip():
            raise UserInputError(f"symbol {symbol!r} must be a non-empty string like 'BTC/USDT'.")
        parsed[symbol] = _parse_frame(df, symbol)

    if timeframe is None:
        tf = _infer_timeframe(parsed)
    else:
        tf = normalize(timeframe)
    tf_ms = timeframe_ms(tf)
    for symbol, (t, _) in parsed.items():
        _check_spacing(t, tf, tf_ms, symbol, given=timeframe is not None)

    symbols = tuple(parsed)
    if len(symbols) == 1:
        time = parsed[symbols[0]][0]
    else:
        time = np.unique(np.concatenate([t for t, _ in parsed.values()]))
        off = np.diff(time) % tf_ms != 0
        if off.any():
            i = int(np.argmax(off)) + 1
            raise UserInputError(
                f"the symbols' {tf} candles are not on one grid: {format_time(int(time[i - 1]))} "
                f"and {format_time(int(time[i]))} UTC are both candle open times, "
                f"{int(time[i] - time[i - 1]) // 1000} s apart, not a multiple of {tf}. Align the "
                "frames' times (every symbol's candles open at the same moments) or build one "
                "Bars per symbol."
            )
    n, m = time.shape[0], len(symbols)
    out = {k: np.full((n, m), np.nan) for k in (*PRICE_NAMES, "volume")}
    for j, symbol in enumerate(symbols):
        t, cols = parsed[symbol]
        rows = np.searchsorted(time, t)
        for k, values in cols.items():
            out[k][rows, j] = values
    return Bars(
        tf,
        symbols,
        time,
        out["open"],
        out["high"],
        out["low"],
        out["close"],
        out["volume"],
        meta={"source": "pandas frame"},
    )


def _parse_frame(df: Any, symbol: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import pandas as pd

    where = f"the frame of {symbol}"
    if not isinstance(df, pd.DataFrame):
        raise UserInputError(f"{where} must be a pandas DataFrame, not {type(df).__name__}.")
    if df.shape[0] == 0:
        raise UserInputError(f"{where} has no rows; give at least one candle.")
    by_lower: dict[str, Any] = {}
    for col in df.columns:
        key = str(col).strip().lower()
        if key in by_lower:
            raise UserInputError(
                f"{where} has two columns named {key!r} ignoring case "
                f"({by_lower[key]!r} and {col!r}); drop one."
            )
        by_lower[key] = col
    missing = [k for k in PRICE_NAMES if k not in by_lower]
    if missing:
        raise UserInputError(
            f"{where} lacks column(s) {', '.join(missing)} (has {', '.join(map(str, df.columns))}); "
            "give open, high, low, close (any letter case) and optionally volume."
        )

    time = _times(df, by_lower, where)
    d = np.diff(time)
    if (d <= 0).any():
        i = int(np.argmax(d <= 0)) + 1
        what = "repeats" if d[i - 1] == 0 else "comes before"
        raise UserInputError(
            f"{where} is not sorted by time without duplicates: row {i} "
            f"({format_time(int(time[i]))} UTC) {what} row {i - 1} "
            f"({format_time(int(time[i - 1]))} UTC). Sort it (df.sort_index()) and drop "
            "duplicate times (df[~df.index.duplicated()])."
        )

    cols: dict[str, np.ndarray] = {}
    for k in (*PRICE_NAMES, "volume"):
        if k not in by_lower:
            continue
        s = df[by_lower[k]]
        if not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
            raise UserInputError(
                f"column {by_lower[k]!r} of {where} has dtype {s.dtype}; give numbers "
                "(pd.to_numeric(df[col]) converts text)."
            )
        cols[k] = s.to_numpy(dtype=np.float64, na_value=np.nan)
    return time, cols


def _times(df: pd.DataFrame, by_lower: dict[str, Any], where: str) -> np.ndarray:
    """Open times as int64 UTC ms from the DatetimeIndex, a time-named index or a time column."""
    import pandas as pd

    index_name = str(df.index.name).strip().lower() if df.index.name is not None else ""
    column = next((by_lower[k] for k in TIME_NAMES if k in by_lower), None)
    if isinstance(df.index, pd.DatetimeIndex) or (index_name in TIME_NAMES and column is None):
        values: Any = df.index
        label = "the index"
    elif column is not None:
        values = df[column]
        label = f"column {column!r}"
    else:
        raise UserInputError(
            f"{where} has no times: give a DatetimeIndex or a column named one of "
            f"{', '.join(TIME_NAMES)} (ms since the epoch, datetimes or ISO text)."
        )
    if values.isna().any():
        i = int(np.argmax(np.asarray(values.isna())))
        raise UserInputError(
            f"{label} of {where} is missing at row {i}; every candle needs a time."
        )
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise UserInputError(f"{label} of {where} holds booleans, not times.")
    if pd.api.types.is_numeric_dtype(dtype):
        raw = np.asarray(values, dtype=np.float64)
        if not np.all(raw == np.floor(raw)):
            raise UserInputError(
                f"{label} of {where} holds fractional numbers (first {raw[raw != np.floor(raw)][0]!r}); "
                "numeric times must be whole milliseconds since the epoch."
            )
        ms = np.asarray(values).astype(np.int64)
        bad = (ms < _MS_LO) | (ms >= _MS_HI)
        if bad.any():
            v = int(ms[bad][0])
            raise UserInputError(
                f"{label} of {where} holds {v}, which is not a time in milliseconds since the "
                "epoch (seconds are ~1.7e9, ms ~1.7e12, ns ~1.7e18). Convert it, for example "
                "pd.to_datetime(col, unit='s')."
            )
        return ms
    try:
        if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
            idx = pd.DatetimeIndex(values)
        else:
            idx = pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601", utc=True))
    except (ValueError, TypeError) as e:
        raise UserInputError(
            f"{label} of {where} cannot be read as times ({e}); give ms since the epoch, "
            "datetimes or ISO text like 2024-01-01T00:00:00Z."
        ) from None
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    ns = idx.as_unit("ns").asi8
    if (ns % 1_000_000).any():
        raise UserInputError(
            f"{label} of {where} has times below the millisecond (first {idx[(ns % 1_000_000) != 0][0]}); "
            "candle times must be whole milliseconds."
        )
    return (ns // 1_000_000).astype(np.int64)


def _infer_timeframe(parsed: Mapping[str, tuple[np.ndarray, Any]]) -> str:
    steps = [int(np.diff(t).min()) for t, _ in parsed.values() if t.shape[0] > 1]
    if not steps:
        raise UserInputError(
            "cannot infer the timeframe from a single candle per symbol; pass timeframe='1h' "
            "(or the one the candles have)."
        )
    step = min(steps)
    if step % 1000:
        raise UserInputError(
            f"the smallest spacing between candles is {step} ms, not a whole number of seconds; "
            "pass timeframe= explicitly or fix the times."
        )
    return normalize(f"{step // 1000}s")


def _check_spacing(t: np.ndarray, tf: str, tf_ms: int, symbol: str, *, given: bool) -> None:
    d = np.diff(t)
    off = d % tf_ms != 0
    if off.any():
        i = int(np.argmax(off)) + 1
        how = "given" if given else "inferred from the smallest spacing"
        raise UserInputError(
            f"the candles of {symbol} do not fit timeframe {tf} ({how}): row {i} "
            f"({format_time(int(t[i]))} UTC) is {int(d[i - 1]) // 1000} s after the previous one, "
            f"not a multiple of {tf}. Pass the right timeframe= or resample the frame."
        )
