"""In-memory candles: one timeframe, several symbols, on one common time index.

This is what the catalog hands to the engine, the strategies and the feature
builders. Arrays are plain numpy so numba kernels can take them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gogo2.timeframes import timeframe_ms


@dataclass(frozen=True)
class Bars:
    """OHLCV of ``symbols`` at ``timeframe`` on the common index ``time``.

    Attributes
    ----------
    time : np.ndarray[int64, (n,)]
        Candle open times, UTC milliseconds, strictly increasing, on the timeframe grid.
    open, high, low, close, volume : np.ndarray[float64, (n, n_symbols)]
        C-contiguous; NaN where a symbol has no candle at that time (gap or not yet listed).
    synthetic : bool
        True when any of the series is generated, not exchange data.
    """

    timeframe: str
    symbols: tuple[str, ...]
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    exchange: str = ""
    synthetic: bool = False
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def n(self) -> int:
        return int(self.time.shape[0])

    @property
    def tf_ms(self) -> int:
        return timeframe_ms(self.timeframe)

    @property
    def close_time(self) -> np.ndarray:
        """Time at which each candle's data becomes known (open time + one timeframe)."""
        return self.time + self.tf_ms

    @classmethod
    def from_frame(cls, df: Any, symbol: str, timeframe: str | None = None) -> Bars:
        """Candles of one ``symbol`` from a pandas OHLCV frame.

            bars = Bars.from_frame(df, symbol="BTC/USDT")  # timeframe from the spacing

        ``df`` has columns open, high, low, close (any letter case; volume optional, NaN
        when absent) and a DatetimeIndex or a time column (``time``, ``timestamp``, ``date``,
        ``datetime`` or ``open_time``) of epoch milliseconds, datetimes or ISO text, the
        candles' *open* times; times without a zone are UTC. ``timeframe`` defaults to the
        smallest spacing between rows. Rules: :mod:`datasets.frames`.

        Raises
        ------
        UserInputError
            Missing column or times, unsorted or duplicate times, non-numeric prices,
            spacing that does not fit the timeframe.
        """
        from datasets.frames import bars_from_frames

        return bars_from_frames({symbol: df}, timeframe)

    def column(self, symbol: str) -> int:
        return self.symbols.index(symbol)

    def slice(self, start: int, stop: int) -> Bars:
        """Rows ``start:stop`` (positional), sharing no memory with self."""
        sl = slice(start, stop)
        return Bars(
            self.timeframe,
            self.symbols,
            self.time[sl].copy(),
            self.open[sl].copy(),
            self.high[sl].copy(),
            self.low[sl].copy(),
            self.close[sl].copy(),
            self.volume[sl].copy(),
            self.exchange,
            self.synthetic,
            dict(self.meta),
        )

    def until(self, close_time_ms: int) -> Bars:
        """Only the candles closed by ``close_time_ms`` (for look-ahead checks and live windows)."""
        stop = int(np.searchsorted(self.close_time, close_time_ms, side="right"))
        return self.slice(0, stop)


@dataclass(frozen=True)
class MultiBars:
    """Several timeframes of the same symbols. ``base`` is the finest one: decisions happen on it."""

    base: str
    frames: dict[str, Bars]

    @classmethod
    def from_frames(cls, frames: Mapping[str, Any], timeframe: str | None = None) -> MultiBars:
        """Several symbols' pandas OHLCV frames as one timeframe, on the union of their times.

            data = MultiBars.from_frames({"BTC/USDT": btc, "ETH/USDT": eth})

        A symbol without a candle at a time of the union gets NaN there (a missing bar).
        Each frame follows :meth:`Bars.from_frame`; the timeframe, when not given, is the
        smallest spacing of any frame.
        """
        from datasets.frames import bars_from_frames

        bars = bars_from_frames(frames, timeframe)
        return cls(bars.timeframe, {bars.timeframe: bars})

    @property
    def bars(self) -> Bars:
        return self.frames[self.base]

    def __getitem__(self, timeframe: str) -> Bars:
        return self.frames[timeframe]

    def until(self, close_time_ms: int) -> MultiBars:
        return MultiBars(self.base, {tf: b.until(close_time_ms) for tf, b in self.frames.items()})
