"""RSI mean reversion: buy oversold, sell when the RSI has recovered."""

from __future__ import annotations

import numpy as np

from datasets.bars import MultiBars
from datasets.indicators import rsi
from engine.signals import LIMIT, MARKET, Signals
from strategies.base import Param, Strategy, crossed_above, crossed_below, ffill, first_since


class RsiReversion(Strategy):
    """Wilder RSI mean reversion.

    * Long when the RSI crosses below ``lower`` (oversold); the long is closed when the
      RSI crosses above ``exit_level``.
    * With ``short=true``, short when the RSI crosses above ``upper`` (overbought); the
      short is closed when the RSI crosses below ``100 - exit_level``.

    Entries are market orders, or with ``entry=limit`` limit orders ``offset`` below
    (long) / above (short) the decision bar's close, which collect the maker fee but may
    not fill. Exits only close a position of the side the last entry opened, so the long
    exit never closes a short. Any base timeframe works.
    """

    name = "rsi_reversion"
    description = "Wilder RSI mean reversion: long oversold, optional short overbought."
    base_timeframe = "15m"

    window = Param(14, min=2, max=500, doc="RSI period, bars")
    lower = Param(30.0, min=0.0, max=100.0, doc="oversold level: long on the cross below")
    upper = Param(70.0, min=0.0, max=100.0, doc="overbought level: short on the cross above")
    exit_level = Param(50.0, min=0.0, max=100.0, doc="long exits on the cross above this")
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
        # Wilder smoothing forgets its seed slowly: three periods bring it within ~1 %.
        return {self.timeframe: 3 * self.window + 1}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close
        r = rsi(close, self.window)
        go_long = crossed_below(r, self.lower)
        go_short = crossed_above(r, self.upper) if self.short else np.zeros_like(go_long)
        entries = np.zeros(close.shape, dtype=np.int8)
        entries[go_long] = 1
        entries[go_short] = -1
        side = ffill(np.where(entries != 0, entries.astype(np.float64), np.nan))
        exits = (crossed_above(r, self.exit_level) & (side == 1.0)) | (
            crossed_below(r, 100.0 - self.exit_level) & (side == -1.0)
        )
        exits = first_since(exits, entries != 0)
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
