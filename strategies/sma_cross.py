"""Fast/slow simple-moving-average crossover on the close."""

from __future__ import annotations

import numpy as np

from datasets.bars import MultiBars
from datasets.indicators import sma
from engine.signals import Signals
from strategies.base import Param, Strategy, crossed_above, crossed_below


class SmaCross(Strategy):
    """Long when the fast SMA crosses above the slow one; short (or exit) on the cross down.

    With ``band > 0`` the crossing lines are moved apart: long when the fast SMA crosses
    above ``slow * (1 + band)``, short (or exit) when it crosses below
    ``slow * (1 - band)``. Wiggles of two nearly equal averages inside the band trigger
    nothing, which on 1m candles saves dozens of fee-paying trades a day. ``band=0`` is
    the textbook crossover.

    Every decision depends on the last ``slow + 1`` candles only (no remembered state),
    so a live trailing window of ``warmup + 1`` bars reproduces the backtest's decisions
    exactly. Works on any base timeframe (single-timeframe strategy).
    """

    name = "sma_cross"
    description = "SMA crossover with a no-trade band around the slow SMA; long/short or long-only."
    base_timeframe = "1m"

    fast = Param(20, min=1, doc="fast SMA length, bars")
    slow = Param(50, min=2, doc="slow SMA length, bars")
    band = Param(0.005, min=0.0, max=0.5, doc="fraction the fast SMA must clear the slow one by")
    short = Param(True, doc="go short on the cross down; false: only exit the long")
    sl = Param(0.0, min=0.0, max=1.0, doc="stop-loss distance, fraction of entry; 0 = none")
    tp = Param(0.0, min=0.0, doc="take-profit distance, fraction of entry; 0 = none")
    trail = Param(0.0, min=0.0, max=1.0, doc="trailing-stop distance, fraction; 0 = none")

    def validate(self) -> None:
        if self.fast >= self.slow:
            self.fail(
                f"fast ({self.fast}) must be smaller than slow ({self.slow}); "
                "swap them or lower fast."
            )

    def lookback(self) -> dict[str, int]:
        # the slow SMA on the decision bar and on the bar before: warm-up ``slow`` rows,
        # so row ``slow``, where a cross first becomes visible, can act
        return {self.timeframe: self.slow + 1}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close
        fast = sma(close, self.fast)
        slow = sma(close, self.slow)
        turned_up = crossed_above(fast, slow * (1.0 + self.band))
        turned_down = crossed_below(fast, slow * (1.0 - self.band))
        entries = np.zeros(close.shape, dtype=np.int8)
        entries[turned_up] = 1
        if self.short:
            entries[turned_down] = -1
            exits = np.zeros(close.shape, dtype=np.bool_)
        else:
            exits = turned_down
        return Signals(
            entries=entries,
            exits=exits,
            sl=self.stop_array(self.sl, entries),
            tp=self.stop_array(self.tp, entries),
            trail=self.stop_array(self.trail, entries),
        )
