"""Causal technical indicators over 1-D or 2-D ``(n_bars, n_symbols)`` arrays.

Every function works along axis 0 and returns float64 arrays of the input's shape.
Values at row ``t`` use only rows ``<= t``, so an indicator computed on a history cut
at ``t`` agrees with the one computed on the full history up to row ``t``.

Missing candles
    A NaN input row (a gap, or a symbol not listed yet) is *skipped*: the indicator
    is computed on the symbol's existing candles, in order, and the output is NaN at
    the rows where the input is NaN. A 20-bar SMA is therefore the mean of the last
    20 candles that exist, and an EMA carries its state across a gap.

Warm-up
    Rows before an indicator has enough valid input are NaN (for example the first
    ``window - 1`` valid rows of an SMA, the first ``window`` rows of an RSI).

Recursive indicators (EMA, RSI, ATR) are seeded with a simple average of their first
``window`` values, as TA-Lib does; their value at a row still depends (with a weight
that decays geometrically) on where the history starts, so a trailing window needs
about three times the period to agree with the full history to a few parts in 10^3.
The kernels are numba-compiled (``cache=True``) and take contiguous float64 arrays.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

__all__ = [
    "MACD",
    "Bollinger",
    "atr",
    "bollinger",
    "ema",
    "log_returns",
    "macd",
    "returns",
    "rolling_mean",
    "rolling_std",
    "rsi",
    "sma",
    "true_range",
    "volume_zscore",
]


class MACD(NamedTuple):
    """MACD line (fast EMA - slow EMA), its signal EMA and the histogram (line - signal)."""

    line: FloatArray
    signal: FloatArray
    hist: FloatArray


class Bollinger(NamedTuple):
    """Bollinger bands: SMA ``mid``, ``upper``/``lower`` at ``k`` population standard
    deviations, ``percent_b`` = (x - lower) / (upper - lower) and ``width`` =
    (upper - lower) / mid."""

    mid: FloatArray
    upper: FloatArray
    lower: FloatArray
    percent_b: FloatArray
    width: FloatArray


# --------------------------------------------------------------------------- kernels
# Each kernel takes the *valid* (NaN-free) values of one column and returns an array of
# the same length; the wrappers below scatter the result back around the NaN rows.


@njit(cache=True, nogil=True)
def _rolling_mean_nb(x: FloatArray, window: int) -> FloatArray:
    # Each window is summed afresh (O(n * window)) so that a value depends on exactly the
    # window's inputs, bit for bit, however long the history before it is.
    n = x.shape[0]
    mean = np.full(n, np.nan)
    for t in range(window - 1, n):
        s = 0.0
        for k in range(t - window + 1, t + 1):
            s += x[k]
        mean[t] = s / window
    return mean


@njit(cache=True, nogil=True)
def _rolling_mean_std_nb(x: FloatArray, window: int, ddof: int) -> tuple[FloatArray, FloatArray]:
    n = x.shape[0]
    mean = np.full(n, np.nan)
    std = np.full(n, np.nan)
    for t in range(window - 1, n):
        s = 0.0
        for k in range(t - window + 1, t + 1):
            s += x[k]
        m = s / window
        mean[t] = m
        if window - ddof > 0:
            ss = 0.0
            for k in range(t - window + 1, t + 1):
                d = x[k] - m
                ss += d * d
            std[t] = np.sqrt(ss / (window - ddof))
    return mean, std


@njit(cache=True, nogil=True)
def _ema_nb(x: FloatArray, window: int, alpha: float) -> FloatArray:
    n = x.shape[0]
    out = np.full(n, np.nan)
    if n < window:
        return out
    s = 0.0
    for k in range(window):
        s += x[k]
    v = s / window
    out[window - 1] = v
    for t in range(window, n):
        v = alpha * x[t] + (1.0 - alpha) * v
        out[t] = v
    return out


@njit(cache=True, nogil=True)
def _rsi_nb(x: FloatArray, window: int) -> FloatArray:
    n = x.shape[0]
    out = np.full(n, np.nan)
    if n <= window:
        return out
    gain = 0.0
    loss = 0.0
    for t in range(1, window + 1):
        d = x[t] - x[t - 1]
        if d > 0:
            gain += d
        else:
            loss -= d
    gain /= window
    loss /= window
    for t in range(window, n):
        if t > window:
            d = x[t] - x[t - 1]
            g = d if d > 0 else 0.0
            lo = -d if d < 0 else 0.0
            gain = (gain * (window - 1) + g) / window
            loss = (loss * (window - 1) + lo) / window
        if loss == 0.0:
            out[t] = 50.0 if gain == 0.0 else 100.0
        else:
            out[t] = 100.0 - 100.0 / (1.0 + gain / loss)
    return out


@njit(cache=True, nogil=True)
def _true_range_nb(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    n = high.shape[0]
    out = np.empty(n)
    for t in range(n):
        r = high[t] - low[t]
        if t > 0:
            pc = close[t - 1]
            r = max(r, abs(high[t] - pc), abs(low[t] - pc))
        out[t] = r
    return out


# --------------------------------------------------------------------------- plumbing


def _as_float(x: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be 1-D (n_bars,) or 2-D (n_bars, n_symbols), got shape {arr.shape}"
        )
    return arr


def _check_window(window: int, name: str = "window", minimum: int = 1) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {window!r}")
    return int(window)


def _apply(
    inputs: tuple[FloatArray, ...], kernel: Callable[..., FloatArray | tuple], *args: object
) -> tuple[FloatArray, ...]:
    """Run ``kernel`` on the valid rows of each column; NaN where any input is NaN."""
    first = inputs[0]
    for other in inputs[1:]:
        if other.shape != first.shape:
            raise ValueError(f"input shapes differ: {first.shape} vs {other.shape}")
    two_d = first.ndim == 2
    cols = [a if two_d else a[:, None] for a in inputs]
    n, m = cols[0].shape
    outs: list[FloatArray] | None = None
    for j in range(m):
        col = [np.ascontiguousarray(c[:, j]) for c in cols]
        valid = np.ones(n, dtype=np.bool_)
        for c in col:
            valid &= ~np.isnan(c)
        full = bool(valid.all())
        res = kernel(*(c if full else np.ascontiguousarray(c[valid]) for c in col), *args)
        res = res if isinstance(res, tuple) else (res,)
        if outs is None:
            outs = [np.full((n, m), np.nan) for _ in res]
        for o, r in zip(outs, res, strict=True):
            if full:
                o[:, j] = r
            else:
                o[valid, j] = r
    assert outs is not None
    return tuple(o if two_d else o[:, 0] for o in outs)


def _lag_valid(x: FloatArray, periods: int) -> FloatArray:
    """For each row, the value ``periods`` valid rows earlier (NaN rows skipped)."""

    def shift(col: FloatArray, p: int) -> FloatArray:
        out = np.full(col.shape[0], np.nan)
        out[p:] = col[:-p]
        return out

    return _apply((x,), shift, periods)[0]


# --------------------------------------------------------------------------- memo
# A parameter sweep runs one strategy many times on the same candles; inside ``memoized()``
# an indicator called again with the same input array and arguments returns the array it
# computed the first time (read-only), so each distinct indicator is computed once.

_MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("indicator_memo", default=None)


@contextlib.contextmanager
def memoized(table: dict | None = None) -> Iterator[dict]:
    """Share indicator results between calls on the same arrays while the block runs.

    ``table`` continues an earlier memo (a long-lived worker keeps one across calls); by
    default a new one is made and emptied at the end of the block.
    """
    own = table is None
    memo: dict = {} if table is None else table
    token = _MEMO.set(memo)
    try:
        yield memo
    finally:
        _MEMO.reset(token)
        if own:
            memo.clear()


def memoized_here() -> contextlib.AbstractContextManager:
    """The memo already open in this context, or a new one for the block."""
    if _MEMO.get() is not None:
        return contextlib.nullcontext()
    return memoized()


def _memo(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        table = _MEMO.get()
        if table is None:
            return fn(*args, **kwargs)
        arrays = tuple(a for a in args if isinstance(a, np.ndarray))
        others = tuple(a for a in args if not isinstance(a, np.ndarray))
        key = (
            fn.__name__,
            tuple((id(a), a.shape, a.dtype.str) for a in arrays),
            others,
            tuple(sorted(kwargs.items())),
        )
        hit = table.get(key)
        if hit is not None:
            return hit[1]
        out = fn(*args, **kwargs)
        for a in out if isinstance(out, tuple) else (out,):
            a.flags.writeable = False  # shared between callers: nobody may change it
        table[key] = (arrays, out)  # the inputs are kept alive so their ids stay theirs
        return out

    return wrapper


# --------------------------------------------------------------------------- public API


@_memo
def returns(x: ArrayLike, periods: int = 1) -> FloatArray:
    """Simple returns ``x[t] / x[t - periods] - 1`` over existing candles.

    Parameters
    ----------
    x : array_like, (n,) or (n, n_symbols)
        Prices (float); NaN rows are skipped, so a return spans a gap.
    periods : int
        Lag in valid rows.

    Returns
    -------
    np.ndarray
        Same shape; NaN for the first ``periods`` valid rows and at NaN inputs.
    """
    arr = _as_float(x, "x")
    p = _check_window(periods, "periods")
    return arr / _lag_valid(arr, p) - 1.0


@_memo
def log_returns(x: ArrayLike, periods: int = 1) -> FloatArray:
    """Log returns ``log(x[t] / x[t - periods])`` over existing candles (see :func:`returns`)."""
    arr = _as_float(x, "x")
    p = _check_window(periods, "periods")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(arr / _lag_valid(arr, p))


def rolling_mean(x: ArrayLike, window: int) -> FloatArray:
    """Mean of the last ``window`` existing values (alias of :func:`sma`)."""
    return sma(x, window)


@_memo
def sma(x: ArrayLike, window: int) -> FloatArray:
    """Simple moving average of the last ``window`` existing values.

    Parameters
    ----------
    x : array_like, (n,) or (n, n_symbols)
    window : int
        Number of valid rows averaged, >= 1.

    Returns
    -------
    np.ndarray
        Same shape, float64; NaN for the first ``window - 1`` valid rows and at NaN inputs.
    """
    arr = _as_float(x, "x")
    w = _check_window(window)
    return _apply((arr,), _rolling_mean_nb, w)[0]


@_memo
def rolling_std(x: ArrayLike, window: int, ddof: int = 1) -> FloatArray:
    """Standard deviation of the last ``window`` existing values (``ddof=1``: sample)."""
    arr = _as_float(x, "x")
    w = _check_window(window, minimum=ddof + 1)
    return _apply((arr,), _rolling_mean_std_nb, w, int(ddof))[1]


@_memo
def ema(x: ArrayLike, window: int) -> FloatArray:
    """Exponential moving average with ``alpha = 2 / (window + 1)``.

    Seeded with the mean of the first ``window`` valid values (placed at the
    ``window``-th valid row), then ``ema[t] = alpha * x[t] + (1 - alpha) * ema[t-1]``
    over existing candles.

    Returns
    -------
    np.ndarray
        Same shape as ``x``; NaN for the first ``window - 1`` valid rows and at NaN inputs.
    """
    arr = _as_float(x, "x")
    w = _check_window(window)
    return _apply((arr,), _ema_nb, w, 2.0 / (w + 1.0))[0]


@_memo
def rsi(x: ArrayLike, window: int = 14) -> FloatArray:
    """Wilder's Relative Strength Index, 0..100.

    Average gain and loss are seeded with the plain mean of the first ``window`` price
    changes and then smoothed with ``alpha = 1 / window``. RSI is 100 when there are
    only gains, 0 with only losses and 50 when the price has not moved at all.

    Returns
    -------
    np.ndarray
        Same shape as ``x``; NaN for the first ``window`` valid rows and at NaN inputs.
    """
    arr = _as_float(x, "x")
    w = _check_window(window)
    return _apply((arr,), _rsi_nb, w)[0]


@_memo
def macd(x: ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9) -> MACD:
    """MACD: ``ema(x, fast) - ema(x, slow)``, its ``signal``-period EMA and the histogram.

    Returns
    -------
    MACD
        ``line`` is valid from the ``slow``-th valid row, ``signal`` and ``hist`` from
        ``slow + signal - 1`` valid rows on.
    """
    arr = _as_float(x, "x")
    f = _check_window(fast, "fast")
    s = _check_window(slow, "slow")
    g = _check_window(signal, "signal")
    if f >= s:
        raise ValueError(f"fast ({f}) must be smaller than slow ({s})")
    line = ema(arr, f) - ema(arr, s)
    sig = ema(line, g)
    return MACD(line, sig, line - sig)


@_memo
def bollinger(x: ArrayLike, window: int = 20, k: float = 2.0) -> Bollinger:
    """Bollinger bands around the ``window`` SMA at ``k`` population standard deviations.

    ``percent_b`` is NaN where the bands have zero width (a flat window).
    """
    arr = _as_float(x, "x")
    w = _check_window(window)
    if not np.isfinite(k) or k <= 0:
        raise ValueError(f"k must be a positive number, got {k!r}")
    mid, sd = _apply((arr,), _rolling_mean_std_nb, w, 0)
    upper = mid + k * sd
    lower = mid - k * sd
    span = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(span > 0, (arr - lower) / span, np.nan)
        width = span / mid
    return Bollinger(mid, upper, lower, pct, width)


@_memo
def true_range(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> FloatArray:
    """True range ``max(high - low, |high - prev close|, |low - prev close|)``.

    The previous close is the one of the previous existing candle; the first candle's
    true range is ``high - low``.
    """
    h, lo, c = _as_float(high, "high"), _as_float(low, "low"), _as_float(close, "close")
    return _apply((h, lo, c), _true_range_nb)[0]


@_memo
def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, window: int = 14) -> FloatArray:
    """Wilder's Average True Range.

    Seeded with the mean of the first ``window`` true ranges, then
    ``atr[t] = (atr[t-1] * (window - 1) + tr[t]) / window``.

    Returns
    -------
    np.ndarray
        Same shape as the inputs; NaN for the first ``window - 1`` rows where all three
        inputs are valid, and at rows where any of them is NaN.
    """
    h, lo, c = _as_float(high, "high"), _as_float(low, "low"), _as_float(close, "close")
    w = _check_window(window)

    def kernel(hh: FloatArray, ll: FloatArray, cc: FloatArray) -> FloatArray:
        return _ema_nb(_true_range_nb(hh, ll, cc), w, 1.0 / w)  # Wilder smoothing

    return _apply((h, lo, c), kernel)[0]


@_memo
def volume_zscore(volume: ArrayLike, window: int = 20) -> FloatArray:
    """Rolling z-score ``(v - mean) / std`` of volume over the last ``window`` candles.

    The window includes the current candle; ``std`` is the sample standard deviation
    (``ddof=1``). A window of identical volumes gives 0.

    Returns
    -------
    np.ndarray
        Same shape; NaN for the first ``window - 1`` valid rows and at NaN inputs.
    """
    v = _as_float(volume, "volume")
    w = _check_window(window, minimum=2)
    mean, sd = _apply((v,), _rolling_mean_std_nb, w, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (v - mean) / sd
    return np.where(sd == 0, 0.0, z)
