"""Multi-timeframe trend following: 1h trend filter, 5m RSI pullback entries."""

from __future__ import annotations

import numpy as np

from datasets.bars import MultiBars
from datasets.indicators import ema, rsi
from engine.signals import Signals
from strategies.base import Param, Strategy, crossed_above, crossed_below, ffill


class MtfTrend(Strategy):
    """Trade pullbacks in the direction of the hourly trend.

    * Trend (1h, closed candles only): up when the 1h close is above its ``trend``-EMA
      and the EMA rises; down when the close is below a falling EMA; otherwise none.
    * Entry (base, 5m by default): in an up-trend, long when the base RSI crosses back
      above ``pullback`` after dipping under it; in a down-trend (with ``short=true``),
      short when the RSI crosses back below ``100 - pullback``.
    * Exit: whenever the trend state changes (a long is only opened in an up-trend and a
      short in a down-trend, so the first change after an entry is the one that ends
      its reason), and through the ``sl`` / ``tp`` / ``trail`` distances of each entry.

    The 1h candle opened at 10:00 steers the base bars from the one closing at 11:00 on.
    No rule remembers a position, so a live trailing window of ``warmup + 1`` bars
    reproduces the backtest's decisions.
    """

    name = "mtf_trend"
    description = "1h EMA trend filter with 5m RSI pullback entries, stop-loss and take-profit."
    base_timeframe = "5m"
    informative = ("1h",)

    trend = Param(50, min=2, max=1000, doc="EMA length on 1h candles")
    window = Param(14, min=2, max=500, doc="RSI period on base candles")
    pullback = Param(40.0, min=1.0, max=49.0, doc="long when the RSI crosses back above this")
    short = Param(True, doc="also trade down-trends")
    sl = Param(0.02, min=0.0, max=1.0, doc="stop-loss distance, fraction of entry; 0 = none")
    tp = Param(0.04, min=0.0, doc="take-profit distance, fraction of entry; 0 = none")
    trail = Param(0.0, min=0.0, max=1.0, doc="trailing-stop distance, fraction; 0 = none")

    def lookback(self) -> dict[str, int]:
        # EMA and Wilder RSI forget their seeds geometrically: after 4 EMA lengths the
        # seed's weight is (1 - 2 / (trend + 1)) ** (3 * trend) ~ e^-6; after 10 RSI
        # periods (1 - 1 / window) ** (9 * window) ~ e^-9.
        return {self.timeframe: 10 * self.window + 1, "1h": 4 * self.trend + 2}

    def generate(self, data: MultiBars) -> Signals:
        hourly = self.frame(data, "1h")
        h_close = hourly.close
        h_ema = ema(h_close, self.trend)
        h_prev = ffill(np.vstack([np.full((1, h_ema.shape[1]), np.nan), h_ema[:-1]]))
        with np.errstate(invalid="ignore"):
            up = (h_close > h_ema) & (h_ema > h_prev)
            down = (h_close < h_ema) & (h_ema < h_prev)
        h_trend = np.where(up, 1.0, np.where(down, -1.0, 0.0))
        h_trend[np.isnan(h_ema) | np.isnan(h_prev)] = np.nan
        h_trend = ffill(h_trend)  # an hour missing for a symbol keeps the last trend
        trend = self.asof(data, "1h", h_trend)

        close = data.bars.close
        r = rsi(close, self.window)
        entries = np.zeros(close.shape, dtype=np.int8)
        entries[crossed_above(r, self.pullback) & (trend == 1.0)] = 1
        if self.short:
            entries[crossed_below(r, 100.0 - self.pullback) & (trend == -1.0)] = -1
        before = np.full_like(trend, np.nan)
        before[1:] = trend[:-1]
        with np.errstate(invalid="ignore"):
            changed = (trend != before) & ~np.isnan(trend) & ~np.isnan(before)
        exits = changed & ~np.isnan(close) & (entries == 0)
        return Signals(
            entries=entries,
            exits=exits,
            sl=self.stop_array(self.sl, entries),
            tp=self.stop_array(self.tp, entries),
            trail=self.stop_array(self.trail, entries),
        )
