"""The warm-up suppresses exactly the rows that cannot decide yet, no more."""

from __future__ import annotations

import numpy as np

from datasets.bars import Bars, MultiBars
from engine.backtest import SimConfig, simulate
from engine.signals import Signals
from strategies.base import Param, Strategy
from strategies.mtf_trend import MtfTrend
from strategies.rsi_reversion import RsiReversion
from strategies.sma_cross import SmaCross

T0 = 1_672_531_200_000  # 2023-01-01 00:00 UTC
MIN = 60_000
HOUR = 60 * MIN


def _bars(close, timeframe: str = "1m", start: int = T0, step: int = MIN) -> Bars:
    c = np.asarray(close, dtype=np.float64).reshape(-1, 1)
    time = start + np.arange(c.shape[0], dtype=np.int64) * step
    return Bars(timeframe, ("BTC/USDT",), time, c.copy(), c * 1.001, c * 0.999, c.copy(), c * 0 + 1)


def test_sma_cross_acts_at_row_slow_the_first_computable_cross() -> None:
    s = SmaCross(fast=2, slow=4, band=0.0, short=False)
    assert s.warmup == 4
    # SMA4 first exists at row 3 (10 = SMA2); at row 4 SMA2 = 15 > SMA4 = 12.5: a cross up
    close = [10.0, 10.0, 10.0, 10.0, 20.0, 21.0, 22.0]
    data = MultiBars("1m", {"1m": _bars(close)})
    sig = s.signals(data)
    assert sig.entries[:, 0].tolist() == [0, 0, 0, 0, 1, 0, 0]
    res = simulate(data, sig, SimConfig.frictionless(), warmup=s.warmup)
    tr = res.trades
    assert len(tr) == 1
    assert tr["entry_bar"].iloc[0] == 5  # decided at row 4 = slow, filled at the next open
    assert tr["entry_price"].iloc[0] == 21.0
    # one row more of warm-up (the old rule) would have thrown the only signal away
    assert len(simulate(data, sig, SimConfig.frictionless(), warmup=s.warmup + 1).trades) == 0


def test_single_timeframe_warmups_are_the_need_minus_the_decision_bar() -> None:
    # 14 + 646 + 2 candles (the seed, 646 Wilder updates, the decision): rows 0 .. 661
    assert RsiReversion(window=14).warmup == 14 + 646 + 1
    # base 10 * 14 + 1 candles -> row 140; 1h 4 * 50 + 2 candles on 5m -> 11 + 202 * 12 - 1
    assert MtfTrend().warmup == max(140, 11 + 202 * 12 - 1)


class _HoursSeen(Strategy):
    """Long from the first base bar that sees ``hours`` closed 1h candles."""

    name = ""
    base_timeframe = "5m"
    informative = ("1h",)
    hours = Param(3, min=1)

    def lookback(self) -> dict[str, int]:
        return {"1h": self.hours}

    def generate(self, data: MultiBars) -> Signals:
        hourly = self.frame(data, "1h")
        count = np.arange(1, hourly.n + 1, dtype=np.float64).reshape(-1, 1)
        seen = self.asof(data, "1h", count)
        entries = (seen >= self.hours).astype(np.int8)
        return Signals(entries, np.zeros(entries.shape, dtype=np.bool_))


def _mtf(start: int, n: int) -> MultiBars:
    base = _bars(np.full(n, 100.0), "5m", start, 5 * MIN)
    first_hour = -(-start // HOUR) * HOUR  # the first hour that starts inside the history
    n_h = (start + n * 5 * MIN - first_hour) // HOUR
    hourly = _bars(np.full(n_h, 100.0), "1h", first_hour, HOUR)
    return MultiBars("5m", {"5m": base, "1h": hourly})


def test_informative_warmup_is_tight_for_the_worst_start() -> None:
    s = _HoursSeen(hours=3)
    assert s.warmup == 3 * 12 + 12 - 2
    # worst start: one 5m bar into an hour whose candle is therefore missing; hours
    # 01:00, 02:00, 03:00 are complete, the third closes at 04:00 = close of row 46
    worst = _mtf(T0 + 5 * MIN, 60)
    rows = np.flatnonzero(s.signals(worst).entries[:, 0])
    assert rows[0] == s.warmup == 46
    # any other start decides no later
    for k in range(12):
        data = _mtf(T0 + k * 5 * MIN, 60)
        first = int(np.flatnonzero(s.signals(data).entries[:, 0])[0])
        assert first <= s.warmup
