"""RSI mean reversion: buy oversold, sell when the RSI has recovered."""

from __future__ import annotations

import numpy as np

from datasets.bars import MultiBars
from datasets.indicators import rsi
from engine.signals import LIMIT, MARKET, Signals
from strategies.base import Param, Strategy, crossed_above, crossed_below


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
    decisions (the warm-up covers ten RSI periods, enough for Wilder's smoothing to
    forget its seed). Entries are market orders, or with ``entry=limit`` limit orders
    ``offset`` below (long) / above (short) the decision bar's close, which pay the
    maker fee but may not fill. Any base timeframe works.
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
        # The first RSI needs window + 1 closes and a cross the RSI of the bar before, so
        # a decision is possible from row window + 1. Wilder smoothing forgets its seed
        # slowly, though: the warm-up lets ten periods pass (first decision at row
        # 10 * window), after which the RSI agrees with a longer history to ~1e-4 points.
        return {self.timeframe: 10 * self.window + 1}

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
