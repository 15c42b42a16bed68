"""In-memory candles for tests: seeded random walks and closed-bar aggregation.

    bars = make_bars(2_000, ("BTC/USDT", "ETH/USDT"), "5m", seed=1)
    data = make_multibars(2_000, base="5m", informative=("1h",), seed=1)

Everything is deterministic for a given seed (``np.random.default_rng``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from datasets.bars import Bars, MultiBars
from gogo2.timeframes import timeframe_ms

START = 1_672_531_200_000  # 2023-01-01 00:00 UTC: aligned to every grid up to 1d
SYMBOLS = ("BTC/USDT", "ETH/USDT")


def make_bars(
    n: int,
    symbols: Sequence[str] = SYMBOLS,
    timeframe: str = "1m",
    seed: int = 0,
    *,
    start: int = START,
    vol: float = 0.002,
    gaps: float = 0.0,
) -> Bars:
    """A geometric random walk of ``n`` candles per symbol on one common index.

    Parameters
    ----------
    n : int
        Rows of the index.
    symbols : sequence of str
        Column names; each symbol starts at a different price level.
    timeframe : str
        Grid of the open times, starting at ``start``.
    seed : int
        Seed of ``np.random.default_rng``.
    vol : float
        Standard deviation of the log return per bar.
    gaps : float
        Fraction of (row, symbol) cells set to NaN in every OHLCV field, as missing candles.
    """
    rng = np.random.default_rng(seed)
    m = len(symbols)
    time = start + np.arange(n, dtype=np.int64) * timeframe_ms(timeframe)
    levels = 100.0 * (1 + np.arange(m, dtype=np.float64) * 10)
    steps = rng.normal(0.0, vol, size=(n, m))
    close = levels * np.exp(np.cumsum(steps, axis=0))
    open_ = np.vstack([levels[None, :], close[:-1]])
    wick = np.abs(rng.normal(0.0, vol / 2, size=(2, n, m)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(3.0, 0.5, size=(n, m))
    fields = [open_, high, low, close, volume]
    if gaps > 0:
        hole = rng.random((n, m)) < gaps
        for f in fields:
            f[hole] = np.nan
    return Bars(
        timeframe,
        tuple(symbols),
        time,
        *(np.ascontiguousarray(f) for f in fields),
        exchange="test",
        synthetic=True,
    )


def aggregate(bars: Bars, timeframe: str) -> Bars:
    """Resample ``bars`` to the coarser ``timeframe``, keeping only complete (closed) candles.

    A coarse candle covers the base candles whose open time falls in
    ``[t, t + timeframe)``; it is emitted only when the base index reaches its close,
    so the newest, still-forming candle is left out. Missing base candles are skipped
    (first open, max high, min low, last close, summed volume).
    """
    step = timeframe_ms(timeframe)
    if step % bars.tf_ms or step < bars.tf_ms:
        raise ValueError(f"{timeframe} is not a multiple of {bars.timeframe}")
    if bars.n == 0:
        empty = np.empty((0, len(bars.symbols)))
        return Bars(timeframe, bars.symbols, np.empty(0, np.int64), *([empty] * 5))
    bucket = bars.time - bars.time % step
    last_close = int(bars.close_time[-1])
    fields: dict[str, np.ndarray] = {}
    how = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    keys = None
    for name, fn in how.items():
        df = pd.DataFrame(getattr(bars, name)).groupby(bucket)
        agg = df.agg(fn) if fn != "sum" else df.sum(min_count=1)
        keys = agg.index.to_numpy(np.int64)
        fields[name] = agg.to_numpy(np.float64)
    assert keys is not None
    keep = keys + step <= last_close
    return Bars(
        timeframe,
        bars.symbols,
        keys[keep].copy(),
        *(np.ascontiguousarray(fields[k][keep]) for k in how),
        exchange=bars.exchange,
        synthetic=bars.synthetic,
    )


def make_multibars(
    n: int,
    symbols: Sequence[str] = SYMBOLS,
    base: str = "5m",
    informative: Sequence[str] = ("1h",),
    seed: int = 0,
    **kwargs: float,
) -> MultiBars:
    """``n`` random-walk base candles plus the informative timeframes aggregated from them."""
    bars = make_bars(n, symbols, base, seed, **kwargs)
    frames = {base: bars}
    for tf in informative:
        frames[tf] = aggregate(bars, tf)
    return MultiBars(base, frames)
