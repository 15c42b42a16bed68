"""The runner's memory of recent candles: growing arrays per timeframe, trailing windows."""

from __future__ import annotations

import numpy as np

from datasets.bars import Bars, MultiBars
from gogo2.timeframes import timeframe_ms
from strategies.window import REACH, trailing_window

_FIELDS = ("open", "high", "low", "close", "volume")


class _Frame:
    def __init__(self, bars: Bars, keep: int) -> None:
        self.timeframe = bars.timeframe
        self.tf_ms = timeframe_ms(bars.timeframe)
        self.symbols = bars.symbols
        self.exchange = bars.exchange
        self.synthetic = bars.synthetic
        self.keep = max(int(keep), 1)
        n, m = bars.n, len(bars.symbols)
        cap = max(2 * n, 2 * self.keep, 64)
        self.time = np.zeros(cap, np.int64)
        self.values = {f: np.full((cap, m), np.nan) for f in _FIELDS}
        self.n = n
        self.time[:n] = bars.time
        for f in _FIELDS:
            self.values[f][:n] = getattr(bars, f)

    def append(self, time: int, o, h, lo, c, v) -> None:
        if self.n and time <= self.time[self.n - 1]:
            return  # never twice, never back in time
        if self.n == self.time.shape[0]:
            self._make_room()
        k = self.n
        self.time[k] = time
        for f, a in zip(_FIELDS, (o, h, lo, c, v), strict=True):
            self.values[f][k] = a
        self.n += 1

    def _make_room(self) -> None:
        cap = self.time.shape[0]
        if self.n > 2 * self.keep:
            # drop old rows: a trailing window never reaches back more than ``keep`` rows
            drop = self.n - self.keep
            self.time[: self.n - drop] = self.time[drop : self.n]
            for a in self.values.values():
                a[: self.n - drop] = a[drop : self.n]
            self.n -= drop
            return
        self.time = np.concatenate([self.time, np.zeros(cap, np.int64)])
        for f, a in self.values.items():
            self.values[f] = np.concatenate([a, np.full_like(a, np.nan)])

    def view(self, lo: int, hi: int) -> Bars:
        return Bars(
            timeframe=self.timeframe,
            symbols=self.symbols,
            time=self.time[lo:hi],
            open=self.values["open"][lo:hi],
            high=self.values["high"][lo:hi],
            low=self.values["low"][lo:hi],
            close=self.values["close"][lo:hi],
            volume=self.values["volume"][lo:hi],
            exchange=self.exchange,
            synthetic=self.synthetic,
        )


class CandleBook:
    """Base and informative candles seen so far (warm-up included), appended as they close.

    :meth:`window` is :func:`strategies.window.trailing_window` of everything held: the
    last ``length`` base bars, reaching back over missing candles until every symbol has
    ``length`` of them (at most ``REACH * length`` rows, which is why at least that many
    rows are kept), and the coarser candles closing inside that span.
    """

    def __init__(self, history: MultiBars, length: int) -> None:
        self.base = history.base
        self.length = int(length)
        keep = REACH * self.length
        self.frames = {tf: _Frame(b, keep) for tf, b in history.frames.items()}

    @property
    def n_base(self) -> int:
        return self.frames[self.base].n

    def append(self, timeframe: str, row) -> None:
        self.frames[timeframe].append(row.time, row.open, row.high, row.low, row.close, row.volume)

    def held(self) -> MultiBars:
        """Every candle kept, as views of the book's arrays (valid until the next append)."""
        return MultiBars(self.base, {tf: f.view(0, f.n) for tf, f in self.frames.items()})

    def window(self) -> MultiBars:
        """The trailing window the next decision is taken on (views, not copies)."""
        return trailing_window(self.held(), self.length, copy=False)
