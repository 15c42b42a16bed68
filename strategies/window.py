"""The trailing window a live decision sees: one definition for the runner and the checker.

A backtest decides every base row from the whole history; a live runner keeps only recent
candles and decides the newest bar from a trailing window of them. For the two to agree,
the window must hold what the strategy's indicators read: ``strategy.warmup + 1`` candles
of *every* symbol. Indicators skip a missing candle (a NaN row of one symbol), so a window
of ``warmup + 1`` rows with a hole in it would hold one candle too few for that symbol.
The window therefore reaches back, row by row, until every symbol has ``length`` candles
in it, but never more than :data:`REACH` times ``length`` rows: that is what the runner
keeps in memory (``runner.window.CandleBook``), and a symbol missing for longer than that
decides from the candles it has, there as here.

Rows missing for every symbol (an exchange outage: no row in the time index at all) need
no reach: a window of ``length`` rows already holds ``length`` candles of each symbol.

:func:`window_starts` gives the first row of the window ending at each row (the look-ahead
checker re-decides every row from it); :func:`trailing_window` cuts the window ending at
the last row (the runner decides from it). Coarser timeframes are cut at the same place:
the candles closing at or after the window's first base open.
"""

from __future__ import annotations

import numpy as np

from datasets.bars import Bars, MultiBars
from gogo2.errors import UserInputError

__all__ = ["REACH", "history_from", "trailing_window", "window_start", "window_starts"]

REACH = 4
"""A window reaches back at most ``REACH * length`` base rows for a symbol with holes."""


def _check_length(length: int) -> int:
    if isinstance(length, bool) or int(length) != length or length < 1:
        raise UserInputError(f"trailing window length {length!r} must be a whole number >= 1.")
    return int(length)


def window_starts(close: np.ndarray, length: int) -> np.ndarray:
    """First row of the trailing window that ends at each row of ``close``.

    Parameters
    ----------
    close : np.ndarray[float64, (n,) or (n, n_symbols)]
        Base closes; NaN where a symbol has no candle.
    length : int
        Candles per symbol the window must hold (``strategy.warmup + 1``).

    Returns
    -------
    np.ndarray[int64, (n,)]
        ``start[t]``: the latest row such that rows ``start[t]..t`` hold ``length`` candles
        of every symbol, but not before ``t + 1 - REACH * length`` nor row 0. Without holes
        this is ``max(0, t + 1 - length)``.
    """
    length = _check_length(length)
    c = np.asarray(close, dtype=np.float64)
    if c.ndim == 1:
        c = c[:, None]
    n = c.shape[0]
    rows = np.arange(n, dtype=np.int64)
    start = np.maximum(0, rows + 1 - length)
    for j in range(c.shape[1]):
        valid = ~np.isnan(c[:, j])
        if valid.all():
            continue
        where = np.flatnonzero(valid)
        count = np.cumsum(valid)  # candles of symbol j in rows 0..t
        enough = count >= length
        lo = np.zeros(n, dtype=np.int64)  # fewer than ``length`` candles: from the start
        lo[enough] = where[count[enough] - length]  # the length-th last candle
        start = np.minimum(start, lo)
    return np.maximum(start, rows + 1 - REACH * length).clip(min=0)


def window_start(close: np.ndarray, length: int) -> int:
    """First row of the trailing window ending at the last row of ``close``
    (:func:`window_starts` of that row, reading only the rows it can reach)."""
    length = _check_length(length)
    n = int(np.shape(close)[0])
    if n == 0:
        return 0
    lo = max(0, n - REACH * length)
    return lo + int(window_starts(close[lo:n], length)[-1])


def _rows(b: Bars, start: int, stop: int, copy: bool) -> Bars:
    if copy:
        return b.slice(start, stop)
    sl = slice(start, stop)
    return Bars(
        b.timeframe,
        b.symbols,
        b.time[sl],
        b.open[sl],
        b.high[sl],
        b.low[sl],
        b.close[sl],
        b.volume[sl],
        b.exchange,
        b.synthetic,
        b.meta,
    )


def history_from(data: MultiBars, row: int, *, copy: bool = True) -> MultiBars:
    """``data`` from base row ``row`` on, with the coarser candles closing at or after that
    row's open (a coarse candle that closed before it is not part of the span).

    ``copy=False`` returns views of ``data``'s arrays (the runner's memory, read at once)."""
    base = data.bars
    if base.n == 0:
        return data
    row = int(min(max(row, 0), base.n - 1))
    start_open = int(base.time[row])
    frames: dict[str, Bars] = {}
    for tf, b in data.frames.items():
        if tf == data.base:
            frames[tf] = _rows(b, row, b.n, copy)
        else:
            first = int(np.searchsorted(b.close_time, start_open, side="left"))
            frames[tf] = _rows(b, first, b.n, copy)
    return MultiBars(data.base, frames)


def trailing_window(data: MultiBars, bars: int, *, copy: bool = True) -> MultiBars:
    """The trailing window ending at ``data``'s last base row: its last ``bars`` rows,
    reaching back over missing candles until every symbol has ``bars`` candles (at most
    ``REACH * bars`` rows), and the coarser candles closing inside that span.

    With ``bars >= strategy.warmup + 1`` the strategy's last row computed on the window
    matches the one computed on the whole history (exactly for SMA-based rules; for
    recursive ones such as EMA and Wilder RSI once the warm-up covers the seed's decay).
    """
    bars = _check_length(bars)
    base = data.bars
    if base.n == 0:
        return data
    return history_from(data, window_start(base.close, bars), copy=copy)
