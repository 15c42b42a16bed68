"""Fast/slow simple-moving-average crossover on the close."""

from __future__ import annotations

import numpy as np
from numba import njit

from datasets.bars import MultiBars
from datasets.indicators import sma
from engine.signals import Signals
from strategies.base import Param, Strategy


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
        # the crosses of ``strategies.base.crossed_above(fast, slow * (1 + band))`` and
        # ``crossed_below(fast, slow * (1 - band))`` in one compiled pass (a sweep runs this
        # once per parameter set on the same SMAs)
        f2 = fast if fast.ndim == 2 else fast[:, None]
        s2 = slow if slow.ndim == 2 else slow[:, None]
        entries = np.zeros(f2.shape, dtype=np.int8)
        exits = np.zeros(f2.shape, dtype=np.bool_)
        _cross_nb(f2, s2, 1.0 + self.band, 1.0 - self.band, bool(self.short), entries, exits)
        if fast.ndim == 1:
            entries, exits = entries[:, 0], exits[:, 0]
        return Signals(
            entries=entries,
            exits=exits,
            sl=self.stop_array(self.sl, entries),
            tp=self.stop_array(self.tp, entries),
            trail=self.stop_array(self.trail, entries),
        )


@njit(cache=True, nogil=True)
def _cross_nb(fast, slow, up_mult, down_mult, short, entries, exits):
    """Cross up of ``fast`` over ``slow * up_mult`` -> +1; cross down under ``slow * down_mult``
    -> -1 (``short``) or an exit. A cross compares with the previous row where the
    difference exists, so a cross across missing rows counts at the first row after them
    (the rules of ``strategies.base.crossed_above`` / ``crossed_below``)."""
    n, m = fast.shape
    for j in range(m):
        prev_up = np.nan
        prev_down = np.nan
        for t in range(n):
            du = fast[t, j] - slow[t, j] * up_mult
            dd = fast[t, j] - slow[t, j] * down_mult
            up = du > 0.0 and prev_up <= 0.0
            down = dd < 0.0 and prev_down >= 0.0
            if up:
                entries[t, j] = 1
            if down:
                if short:
                    entries[t, j] = -1
                else:
                    exits[t, j] = True
            if du == du:
                prev_up = du
            if dd == dd:
                prev_down = dd
