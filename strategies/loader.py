"""Load the candles a strategy reads: its base timeframe plus every informative one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from datasets.bars import Bars, MultiBars
from gogo2.errors import UserInputError
from gogo2.timeframes import normalize, timeframe_ms

if TYPE_CHECKING:
    from strategies.base import Strategy

__all__ = ["load_strategy_data"]


def load_strategy_data(
    catalog: object,
    strategy: Strategy,
    symbols: Sequence[str],
    start: int | None,
    end: int | None,
    exchange: str | None,
    base_timeframe: str | None = None,
    *,
    warmup: bool = False,
) -> MultiBars:
    """Candles of ``symbols`` for ``strategy``: the base timeframe and its informative ones.

    Parameters
    ----------
    catalog : datasets.catalog.Catalog
        Anything with ``load(symbols=, timeframe=, start=, end=, exchange=) -> Bars``.
    strategy : Strategy
        Supplies the timeframes and the warm-up.
    symbols : sequence of str
    start, end : int or None
        UTC ms; ``end`` is exclusive on open time, like ``Catalog.load``.
    exchange : str or None
        Catalog exchange; None lets the catalog pick the one holding every symbol.
    base_timeframe : str, optional
        Base timeframe; must equal ``strategy.timeframe`` when given (create the
        strategy with ``timeframe=...`` to change it).
    warmup : bool
        Also load ``strategy.warmup`` base bars before ``start``.

    Returns
    -------
    MultiBars
        Base frame as loaded. Each informative frame starts at the coarse candle that
        contains the base start (so it covers the same span) and keeps only candles
        that close by the last base candle's close: a coarse candle still forming at
        the end of the range is left out, as it would be live.
    """
    base = normalize(base_timeframe) if base_timeframe is not None else strategy.timeframe
    if base != strategy.timeframe:
        raise UserInputError(
            f"base timeframe {base} differs from the one strategy {strategy.label()!r} was "
            f"created for ({strategy.timeframe}); create it with timeframe={base!r}."
        )
    syms = list(dict.fromkeys(symbols))
    if not syms:
        raise UserInputError("no symbols given; name at least one, for example BTC/USDT.")
    if start is not None and end is not None and end <= start:
        raise UserInputError(
            f"the range is empty: end ({end}) must be after start ({start}). Swap --from and --to."
        )
    base_ms = timeframe_ms(base)
    if warmup and start is not None:
        start = int(start) - strategy.warmup * base_ms
    bars = catalog.load(symbols=syms, timeframe=base, start=start, end=end, exchange=exchange)  # type: ignore[attr-defined]
    frames: dict[str, Bars] = {base: bars}
    for tf in strategy.timeframes[1:]:
        step = timeframe_ms(tf)
        first_open = int(bars.time[0]) if bars.n else start
        tf_start = None if first_open is None else first_open - first_open % step
        other = catalog.load(  # type: ignore[attr-defined]
            symbols=syms, timeframe=tf, start=tf_start, end=end, exchange=exchange
        )
        if bars.n:
            stop = int(np.searchsorted(other.close_time, bars.close_time[-1], side="right"))
            other = other.slice(0, stop)
        if other.symbols != bars.symbols:
            other = _reorder(other, bars.symbols)
        frames[tf] = other
    return MultiBars(base, frames)


def _reorder(bars: Bars, symbols: tuple[str, ...]) -> Bars:
    cols = [bars.column(s) for s in symbols]

    def take(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[:, cols])

    return Bars(
        bars.timeframe,
        symbols,
        bars.time,
        take(bars.open),
        take(bars.high),
        take(bars.low),
        take(bars.close),
        take(bars.volume),
        bars.exchange,
        bars.synthetic,
        dict(bars.meta),
    )
