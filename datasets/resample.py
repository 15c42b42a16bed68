"""Coarser candles from finer ones, and closed-bars-only as-of joins.

Aggregation rule (the same in DuckDB and in numpy): a coarse candle opened at
``b = floor(time / tf) * tf`` (UTC-aligned; weekly candles open on Monday 00:00 UTC) takes the
first open, the highest high, the lowest low, the last close and the summed volume of the fine
candles with open time in ``[b, b + tf)``.

Incomplete buckets: a coarse candle with missing fine candles (an outage) is still built from
the candles present, and ``fill`` (fraction of the fine candles present) records how complete
it is. The **last** bucket is dropped when the data ends before that bucket closes: it is a
candle still forming, not a closed one.

Times are int64 milliseconds UTC, candles labelled by open time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datasets.align import asof_index, take_asof
from datasets.bars import Bars
from datasets.schema import VALUE_COLUMNS, bucket_start, grid_offset_ms
from gogo2.errors import DataError
from gogo2.timeframes import normalize, timeframe_ms


def multiples_hint(base: str) -> str:
    """A few standard timeframes that are whole multiples of ``base`` (for messages)."""
    b = timeframe_ms(base)
    picks = [tf for tf in ("5m", "15m", "1h", "4h", "1d", "1w") if timeframe_ms(tf) % b == 0]
    picks = [tf for tf in picks if timeframe_ms(tf) > b][:3]
    return ", ".join(picks) or f"2 x {normalize(base)}"


def check_multiple(base: str, timeframe: str) -> tuple[int, int]:
    """``(base_ms, tf_ms)``; raise DataError unless ``timeframe`` is a whole multiple of ``base``."""
    b_ms, tf_ms = timeframe_ms(base), timeframe_ms(timeframe)
    if tf_ms % b_ms or tf_ms < b_ms:
        raise DataError(
            f"timeframe {timeframe} cannot be made from {base} candles: it is not a whole "
            f"multiple of {base}. Choose a multiple such as {multiples_hint(base)}."
        )
    if grid_offset_ms(tf_ms) and b_ms > 86_400_000:
        raise DataError(
            f"timeframe {timeframe} (Monday-aligned weeks) cannot be made from {base} candles; "
            "derive weeks from 1d or finer."
        )
    return b_ms, tf_ms


def _sql_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def derive_files(
    con: Any, files: Sequence[Path], base: str, timeframe: str
) -> dict[str, np.ndarray]:
    """Aggregate the candle files of one series from ``base`` to ``timeframe`` in DuckDB.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection to run the query on.
    files : sequence of Path
        Parquet files of one series (schema of :mod:`datasets.schema`), sorted unique times.
    base, timeframe : str
        Stored and wanted timeframe; ``timeframe`` must be a whole multiple of ``base``.

    Returns
    -------
    dict[str, np.ndarray]
        ``time`` (int64) and ``open, high, low, close, volume, fill`` (float64), sorted by
        time; the last bucket is dropped when it is not closed by the data.
    """
    b_ms, tf_ms = check_multiple(base, timeframe)
    if not files:
        return empty_columns()
    off = grid_offset_ms(tf_ms)
    per = float(tf_ms // b_ms)
    sql = f"""
        SELECT (time - {off}) // {tf_ms} * {tf_ms} + {off} AS time,
               arg_min(open, time) AS open, max(high) AS high, min(low) AS low,
               arg_max(close, time) AS close, sum(volume) AS volume,
               count(*) / {per} AS fill,
               max(time) AS last_open
        FROM read_parquet({_sql_list(files)})
        GROUP BY 1 ORDER BY 1
    """
    res = con.execute(sql).fetchnumpy()
    cols = {
        k: np.asarray(v.data if isinstance(v, np.ma.MaskedArray) else v) for k, v in res.items()
    }
    cols["time"] = cols["time"].astype(np.int64)
    t = cols["time"]
    if t.size and int(cols["last_open"][-1]) + b_ms < int(t[-1]) + tf_ms:
        cols = {k: v[:-1] for k, v in cols.items()}
    cols.pop("last_open")
    for c in (*VALUE_COLUMNS, "fill"):
        cols[c] = cols[c].astype(np.float64, copy=False)
    return cols


def resample_arrays(
    time: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    base: str,
    timeframe: str,
) -> dict[str, np.ndarray]:
    """The aggregation of :func:`derive_files` on 1-D in-memory arrays of one series.

    Parameters
    ----------
    time : np.ndarray
        int64 open times, sorted ascending, unique, on the ``base`` grid.
    open_, high, low, close, volume : np.ndarray
        float64, no NaN (drop absent rows first).
    base, timeframe : str
        Timeframe of the input and the wanted one (a whole multiple).

    Returns
    -------
    dict[str, np.ndarray]
        ``time, open, high, low, close, volume, fill``.
    """
    b_ms, tf_ms = check_multiple(base, timeframe)
    t = np.asarray(time, dtype=np.int64)
    if t.size == 0:
        return empty_columns()
    b = bucket_start(t, tf_ms)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], t.size]
    out = {
        "time": b[starts],
        "open": np.asarray(open_, dtype=np.float64)[starts],
        "high": np.maximum.reduceat(np.asarray(high, dtype=np.float64), starts),
        "low": np.minimum.reduceat(np.asarray(low, dtype=np.float64), starts),
        "close": np.asarray(close, dtype=np.float64)[ends - 1],
        "volume": np.add.reduceat(np.asarray(volume, dtype=np.float64), starts),
        "fill": (ends - starts) / float(tf_ms // b_ms),
    }
    if int(t[-1]) + b_ms < int(out["time"][-1]) + tf_ms:
        out = {k: v[:-1] for k, v in out.items()}
    return out


def resample_bars(bars: Bars, timeframe: str) -> Bars:
    """Aggregate in-memory :class:`Bars` to a coarser ``timeframe``, symbol by symbol.

    NaN rows of a symbol (no candle) are skipped; the result is on the union of the symbols'
    coarse open times and ``meta["fill"]`` holds each coarse candle's completeness.
    """
    tf = normalize(timeframe)
    check_multiple(bars.timeframe, tf)
    per_symbol = []
    for j in range(len(bars.symbols)):
        have = ~np.isnan(bars.close[:, j])
        per_symbol.append(
            resample_arrays(
                bars.time[have],
                bars.open[have, j],
                bars.high[have, j],
                bars.low[have, j],
                bars.close[have, j],
                bars.volume[have, j],
                bars.timeframe,
                tf,
            )
        )
    index = union_sorted([s["time"] for s in per_symbol])
    arrays: dict[str, np.ndarray] = {}
    for c in (*VALUE_COLUMNS, "fill"):
        out = np.full((index.size, len(bars.symbols)), np.nan)
        for j, s in enumerate(per_symbol):
            out[np.searchsorted(index, s["time"]), j] = s[c]
        arrays[c] = out
    meta = dict(bars.meta)
    meta["fill"] = arrays["fill"]
    meta["base_timeframe"] = bars.timeframe
    return Bars(
        tf,
        bars.symbols,
        index.astype(np.int64),
        arrays["open"],
        arrays["high"],
        arrays["low"],
        arrays["close"],
        arrays["volume"],
        bars.exchange,
        bars.synthetic,
        meta,
    )


def asof_join(
    fine: Bars, coarse: Bars, fields: Sequence[str] = VALUE_COLUMNS
) -> dict[str, np.ndarray]:
    """Coarse candles as seen from each fine bar, using only coarse candles already closed.

    A fine bar closing at ``T`` sees the last coarse candle whose close time is ``<= T``:
    a 1h candle opened at 10:00 becomes visible to the 1m bar closing at 11:00 (opened 10:59),
    never earlier.

    Parameters
    ----------
    fine, coarse : Bars
        Same symbols (in the same order); ``coarse`` of a coarser or equal timeframe.
    fields : sequence of str
        Which of ``open, high, low, close, volume`` to align.

    Returns
    -------
    dict[str, np.ndarray]
        One ``(fine.n, n_symbols)`` float64 array per field, NaN before the first coarse
        candle closes; plus ``"index"``: int64 ``(fine.n,)`` row of ``coarse`` used (-1: none)
        and ``"time"``: the open time of that coarse candle (-1: none).
    """
    if tuple(fine.symbols) != tuple(coarse.symbols):
        raise DataError(
            f"as-of join needs the same symbols in the same order: fine has "
            f"{', '.join(fine.symbols)}, coarse has {', '.join(coarse.symbols)}."
        )
    if coarse.tf_ms < fine.tf_ms:
        raise DataError(
            f"as-of join takes the coarser timeframe second: got fine={fine.timeframe}, "
            f"coarse={coarse.timeframe}."
        )
    idx = asof_index(fine.close_time, coarse.close_time)
    out: dict[str, np.ndarray] = {}
    for f in fields:
        if f not in VALUE_COLUMNS:
            raise DataError(f"unknown field {f!r}: choose from {', '.join(VALUE_COLUMNS)}.")
        if coarse.n == 0:
            out[f] = np.full((fine.n, len(fine.symbols)), np.nan)
        else:
            out[f] = take_asof(getattr(coarse, f), idx)
    out["index"] = idx
    if coarse.n == 0:
        out["time"] = np.full(fine.n, -1, dtype=np.int64)
    else:
        out["time"] = np.where(idx >= 0, coarse.time[np.maximum(idx, 0)], -1).astype(np.int64)
    return out


def union_sorted(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Sorted union of sorted int64 arrays (a merge: timsort on sorted runs is linear)."""
    if not arrays:
        return np.empty(0, dtype=np.int64)
    merged = np.concatenate([np.asarray(a, dtype=np.int64) for a in arrays])
    merged.sort(kind="stable")
    if merged.size < 2:
        return merged
    keep = np.empty(merged.size, dtype=bool)
    keep[0] = True
    np.not_equal(merged[1:], merged[:-1], out=keep[1:])
    return merged[keep]


def empty_columns() -> dict[str, np.ndarray]:
    """Empty ``time`` int64 and float64 ``open .. volume, fill`` arrays."""
    out: dict[str, np.ndarray] = {"time": np.empty(0, dtype=np.int64)}
    for c in (*VALUE_COLUMNS, "fill"):
        out[c] = np.empty(0, dtype=np.float64)
    return out
