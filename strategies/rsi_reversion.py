"""RSI mean reversion: buy oversold, sell when the RSI has recovered."""

from __future__ import annotations

import math

import numpy as np

from datasets.bars import MultiBars
from datasets.indicators import rsi
from engine.signals import LIMIT, MARKET, Signals
from strategies.base import Param, Strategy, crossed_above, crossed_below

SEED_BITS = 53 + 16
"""Bits by which Wilder's averages must have forgotten their seed (see :func:`wilder_steps`)."""


def wilder_steps(window: int) -> int:
    """Updates after which Wilder's averages no longer depend on their seed, to the bit.

    ``datasets.indicators.rsi`` smooths the average gain and loss with the factor
    ``alpha = 1 / window``: ``avg = (avg * (window - 1) + x) / window``. Two histories
    that start at different bars differ only in the seed (the plain mean of their first
    ``window`` changes), and that difference shrinks by ``1 - alpha`` per update: after
    ``k`` updates it is ``(1 - alpha) ** k`` times what it was. The look-ahead checker
    compares decisions exactly, and an RSI a rounding error away from a threshold can
    flip one, so the trailing window's RSI must be the full history's bit for bit. Both
    averages round to the same float64, and from then on stay equal, once the difference
    is below float64's rounding unit, 2 ** -53 of the average: 53 bits. 16 bits more cover
    a seed up to 2 ** 16 times off the average it estimates (a quiet stretch after a
    burst) and the last-bit rounding of the two sequences meeting. On the synthetic
    sample (1m and 15m, windows 2 to 100, 24,000 later starts) the worst start needed
    63.2 bits. Hence ``(1 - alpha) ** k <= 2 ** -SEED_BITS``::

        k = ceil(SEED_BITS * ln 2 / -ln(1 - alpha))     # 646 for window = 14
    """
    alpha = 1.0 / window
    return math.ceil(SEED_BITS * math.log(2.0) / -math.log1p(-alpha))


class RsiReversion(Strategy):
    """Wilder RSI mean reversion.

    * Long when the RSI crosses below ``lower`` (oversold); exit when it crosses above
      ``exit_level``.
    * With ``short=true``, also short when the RSI crosses above ``upper`` (overbought),
      and exit when it crosses below ``100 - exit_level``. Both exit lines then close
      whatever is open: with the default ``exit_level=50`` a long's first cross of 50 is
      upward and a short's downward, so each side exits where it should.

    The rules remember no position: every decision depends on the RSI of the last two
    bars, so a live trailing window of ``warmup + 1`` bars reproduces the backtest's
    decisions (the warm-up lets Wilder's smoothing forget its seed to the last bit of a
    float64, :func:`wilder_steps`: 661 bars with the default window of 14). Entries are
    market orders, or with ``entry=limit`` limit orders ``offset`` below (long) / above
    (short) the decision bar's close, which pay the maker fee but may not fill. Any base
    timeframe works.
    """

    name = "rsi_reversion"
    description = "Wilder RSI mean reversion: long oversold, optional short overbought."
    base_timeframe = "15m"

    window = Param(14, min=2, max=500, doc="RSI period, bars")
    lower = Param(30.0, min=0.0, max=100.0, doc="oversold level: long on the cross below")
    upper = Param(70.0, min=0.0, max=100.0, doc="overbought level: short on the cross above")
    exit_level = Param(
        50.0, min=0.0, max=100.0, doc="exit on the cross above this (shorts: below 100 - this)"
    )
    short = Param(False, doc="also trade the overbought side")
    entry = Param("market", choices=("market", "limit"), doc="entry order type")
    offset = Param(0.001, min=0.0, max=0.2, doc="limit distance from the close, fraction")
    sl = Param(0.0, min=0.0, max=1.0, doc="stop-loss distance, fraction of entry; 0 = none")
    tp = Param(0.0, min=0.0, doc="take-profit distance, fraction of entry; 0 = none")

    def validate(self) -> None:
        if not self.lower < self.exit_level < self.upper:
            self.fail(
                f"levels must satisfy lower < exit_level < upper, got lower={self.lower}, "
                f"exit_level={self.exit_level}, upper={self.upper}; adjust them."
            )
        if self.short and not self.lower < 100.0 - self.exit_level < self.upper:
            self.fail(
                f"with short=true the short exit level 100 - exit_level = "
                f"{100.0 - self.exit_level} must lie between lower and upper; "
                "move exit_level towards 50."
            )

    def lookback(self) -> dict[str, int]:
        # The first RSI needs window + 1 closes (rows 0..window) and a cross the RSI of
        # the bar before too. Wilder smoothing forgets its seed only geometrically, so the
        # warm-up lets the seed be forgotten to the last bit first (wilder_steps): the
        # bar before the decision is the ``wilder_steps``-th update after the seed, at row
        # window + steps, and the decision bar the next one. Rows 0..window + steps + 1:
        return {self.timeframe: self.window + wilder_steps(self.window) + 2}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close
        r = rsi(close, self.window)
        entries = np.zeros(close.shape, dtype=np.int8)
        entries[crossed_below(r, self.lower)] = 1
        exits = crossed_above(r, self.exit_level)
        if self.short:
            entries[crossed_above(r, self.upper)] = -1
            exits |= crossed_below(r, 100.0 - self.exit_level)
        exits &= entries == 0  # an entry on the same bar reverses or holds; no exit needed
        order_type = price = None
        if self.entry == "limit":
            order_type = np.where(entries != 0, LIMIT, MARKET).astype(np.int8)
            price = np.where(
                entries > 0,
                close * (1.0 - self.offset),
                np.where(entries < 0, close * (1.0 + self.offset), np.nan),
            )
        return Signals(
            entries=entries,
            exits=exits,
            order_type=order_type,
            price=price,
            sl=self.stop_array(self.sl, entries),
            tp=self.stop_array(self.tp, entries),
        )
