"""Leaks confined to a few rows: each class is caught in both modes of the checker, and
the rows where such leaks hide are among the sampled mode's boundary rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import make_multibars

from datasets.align import asof_index, take_asof
from datasets.bars import MultiBars
from datasets.indicators import sma
from engine.signals import Signals
from strategies.base import Strategy, crossed_above, crossed_below, trailing_window
from strategies.lookahead import (
    TrailingWindows,
    boundary_rows,
    check_lookahead,
    check_warmup,
)

HOUR = 3_600_000
DAY = 86_400_000


def _next_close(close: np.ndarray) -> np.ndarray:
    nxt = np.full_like(close, np.nan)
    nxt[:-1] = close[1:]
    return nxt


def _last_of_day(data: MultiBars) -> np.ndarray:
    return (data.bars.close_time % DAY == 0)[:, None]


class DailyPeek(Strategy):
    """Biased on purpose, at one row a day: at the day's last bar, buys when the next
    bar (the first of the next day) closes higher."""

    name = "biased_daily_peek"
    base_timeframe = "5m"

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: 2}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close
        with np.errstate(invalid="ignore"):
            buy = _last_of_day(data) & (_next_close(close) > close)
        return Signals(buy.astype(np.int8), np.zeros(close.shape, bool))


class DailyVeto(Strategy):
    """Biased on purpose, and only by removing entries: buys every up bar, except at a
    day's last bar when the next bar closes lower."""

    name = "biased_daily_veto"
    base_timeframe = "5m"

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: 2}

    def generate(self, data: MultiBars) -> Signals:
        b = data.bars
        with np.errstate(invalid="ignore"):
            buy = b.close > b.open
            buy &= ~(_last_of_day(data) & (_next_close(b.close) < b.close))
        return Signals(buy.astype(np.int8), np.zeros(buy.shape, bool))


class BfillHoles(Strategy):
    """Biased on purpose, only inside candle holes: fills a missing close backwards (with
    the next candle's close), then buys when the close rose."""

    name = "biased_bfill_holes"
    base_timeframe = "5m"

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: 2}

    def generate(self, data: MultiBars) -> Signals:
        filled = pd.DataFrame(data.bars.close).bfill().to_numpy()
        prev = np.vstack([np.full((1, filled.shape[1]), np.nan), filled[:-1]])
        with np.errstate(invalid="ignore"):
            buy = filled > prev
        return Signals(buy.astype(np.int8), np.zeros(buy.shape, bool))


class EarlyHourly(Strategy):
    """Biased on purpose, one row an hour: the 1h candle is aligned one base bar early
    (the bar closing at 10:55 already sees the 10:00-11:00 candle)."""

    name = "biased_early_hourly"
    base_timeframe = "5m"
    informative = ("1h",)

    def lookback(self) -> dict[str, int]:
        return {"1h": 2}

    def generate(self, data: MultiBars) -> Signals:
        hourly = data["1h"]
        base = data.bars
        idx = asof_index(base.close_time + base.tf_ms, hourly.close_time)
        h_close = take_asof(hourly.close, idx)
        buy = crossed_above(base.close, h_close)
        sell = crossed_below(base.close, h_close)
        entries = np.where(buy, 1, np.where(sell, -1, 0)).astype(np.int8)
        return Signals(entries, np.zeros(entries.shape, bool))


@pytest.fixture(scope="module", name="data")
def fixture_data() -> MultiBars:
    # ~10 days of 5m candles with 1 % of candles missing per symbol
    return make_multibars(3_000, base="5m", informative=("1h",), seed=21, vol=0.003, gaps=0.01)


def _leaking_rows(strategy: Strategy, data: MultiBars) -> set[int]:
    """Rows whose decision with all data differs from the one with data cut at the row
    (computed the slow, obvious way), for checking the checker."""
    full = strategy.signals(data)
    close = data.bars.close_time
    rows = set()
    for t in range(strategy.warmup, data.bars.n):
        cut = strategy.signals(data.until(int(close[t])))
        if not np.array_equal(cut.entries[t], full.entries[t]):
            rows.add(t)
    return rows


@pytest.mark.parametrize("exhaustive", [True, False], ids=["exhaustive", "sampled"])
@pytest.mark.parametrize("biased", [DailyPeek, DailyVeto, BfillHoles, EarlyHourly])
def test_sparse_leaks_are_caught(data: MultiBars, biased: type[Strategy], exhaustive: bool) -> None:
    s = biased()
    truth = _leaking_rows(s, data)
    # the leak is sparse: at most one row an hour (one in twelve)...
    assert 0 < len(truth) <= data.bars.n // 12
    report = check_lookahead(s, data, cuts=3, seed=0, exhaustive=exhaustive)
    assert not report.ok
    t_of = {int(t): i for i, t in enumerate(data.bars.time)}
    found = {t_of[i.bar_time] for i in report.issues}
    # ...and each reported row really leaks
    assert found <= truth
    if exhaustive:
        # every leaking row is found: listed (up to 20) or counted as not yet classified
        assert len(report.issues) == min(20, len(truth))
        assert report.unverified == len(truth) - len(report.issues)
    issue = report.issues[0]
    assert issue.field == "entries" and issue.full_value != issue.cut_value


def test_veto_is_reported_as_a_removed_entry(data: MultiBars) -> None:
    report = check_lookahead(DailyVeto(), data, exhaustive=True)
    assert report.issues
    for issue in report.issues:
        assert issue.bar_time + data.bars.tf_ms == issue.cut_time
        assert issue.cut_time % DAY == 0  # the day's last bar
        assert (issue.full_value, issue.cut_value) == (0, 1)


def test_early_hourly_is_caught_one_bar_before_the_hour_closes(data: MultiBars) -> None:
    report = check_lookahead(EarlyHourly(), data, exhaustive=True)
    assert report.issues
    for issue in report.issues:
        assert issue.cut_time % HOUR == HOUR - data.bars.tf_ms


# ------------------------------------------------------------------ boundary rows


def test_boundary_rows_hold_hour_day_gap_and_acting_rows() -> None:
    data = make_multibars(600, base="5m", informative=("1h",), seed=3)
    b = data.bars
    # a hole for symbol 0 at rows 100..102 and a row missing from the index at 400
    close = b.close.copy()
    close[100:103, 0] = np.nan
    keep = np.arange(b.n) != 400
    from datasets.bars import Bars

    holed = Bars(
        b.timeframe,
        b.symbols,
        b.time[keep],
        b.open[keep],
        b.high[keep],
        b.low[keep],
        close[keep],
        b.volume[keep],
    )
    d = MultiBars("5m", {"5m": holed, "1h": data["1h"]})
    entries = np.zeros((holed.n, 2), dtype=np.int8)
    entries[250, 1] = 1
    sig = Signals(entries, np.zeros(entries.shape, bool))
    rows = set(boundary_rows(d, sig).tolist())
    # 5m bars: the one opened at hh:55 is the hour's last (row 11, 23, ...), the one at
    # hh:50 comes just before it
    for r in (10, 11, 22, 23, 286, 287):
        assert r in rows
    assert 287 in rows  # the day's last bar (00:00 + 288 bars)
    # hole edges: last row before, first and last missing, first after
    for r in (99, 100, 102, 103):
        assert r in rows
    # the index jumps after row 399 (old row 400 is gone)
    for r in (399, 400):
        assert r in rows
    # the acting row and the row just before it
    assert {249, 250} <= rows
    # and not every row: ordinary rows inside an hour are left to the random cuts
    assert 5 not in rows and 245 not in rows


def test_sampled_cuts_include_the_row_before_each_acting_row() -> None:
    data = make_multibars(1_500, base="5m", informative=("1h",), seed=8, vol=0.003)
    s = DailyPeek()
    full = s.signals(data)
    acting = np.flatnonzero(full.entries.any(axis=1))
    assert acting.size > 0
    rows = set(boundary_rows(data, full).tolist())
    for a in acting.tolist():
        assert a in rows and a - 1 in rows


# ------------------------------------------------------------------ warm-up


class Sma30Cross(Strategy):
    """Honest: a cross of the close over its 30-bar SMA, which needs 31 bars. The warm-up
    it declares is set per test."""

    name = "sma30_cross"
    base_timeframe = "5m"
    declared = 31

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: self.declared}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close
        mean = sma(close, 30)
        entries = np.where(crossed_above(close, mean), 1, 0).astype(np.int8)
        entries[crossed_below(close, mean)] = -1
        return Signals(entries, np.zeros(close.shape, bool))


@pytest.mark.parametrize(("declared", "ok"), [(29, False), (30, False), (31, True)])
def test_check_warmup_catches_a_warmup_one_or_two_bars_short(declared: int, ok: bool) -> None:
    cls = type("Declared", (Sma30Cross,), {"declared": declared})
    data = make_multibars(1_000, base="5m", informative=(), seed=2, vol=0.003)
    report = check_warmup(cls(), data, starts=1, seed=0)
    assert report.ok is ok, report.summary()
    assert report.rows_checked == 1_000 - (declared - 1)  # rows warm-up .. 999
    if not ok:
        assert report.window_rows > 0
        issue = report.issues[-1]
        # a window of `declared` bars ends at the differing bar and starts at cut_time
        assert issue.bar_time - issue.cut_time == (declared - 1) * data.bars.tf_ms
        # the full run acts there; the short window cannot see the cross
        assert issue.full_value != 0 and issue.cut_value == 0
    # look-ahead it is not
    assert check_lookahead(cls(), data, exhaustive=True).ok


# ------------------------------------------------------------------ trailing windows


def test_window_starting_on_the_hour_sees_the_same_hourly_candles() -> None:
    data = make_multibars(1_200, base="5m", informative=("1h",), seed=4)
    b = data.bars
    hourly = data["1h"]
    full_idx = asof_index(b.close_time, hourly.close_time)
    # windows of 300 bars whose first bar opens exactly at hh:00, after the first hour
    ends = [t for t in range(299 + 12, b.n) if b.time[t - 299] % HOUR == 0]
    assert len(ends) >= 50
    for t in ends:
        win = trailing_window(data.until(int(b.close_time[t])), 300)
        assert win.bars.time[0] % HOUR == 0
        wh = win["1h"]
        idx = asof_index(win.bars.close_time, wh.close_time)
        # every row sees a candle, the very one the full history shows it
        assert (idx >= 0).all()
        np.testing.assert_array_equal(wh.time[idx], hourly.time[full_idx[t - 299 : t + 1]])


def test_trailing_windows_match_trailing_window_of_the_cut_history(data: MultiBars) -> None:
    windows = TrailingWindows(data, 150)
    # 161 and 1_229: windows starting on an hour (rows 12 and 1_080), where the 1h candle
    # closing exactly at the window's first open belongs to the window
    starts_on_hour = [t for t in (161, 1_229) if data.bars.time[t - 149] % HOUR == 0]
    assert len(starts_on_hour) == 2
    for t in (0, 7, 149, 150, 151, 1_234, data.bars.n - 1, *starts_on_hour):
        a = windows.at(t)
        b = trailing_window(data.until(int(data.bars.close_time[t])), 150)
        assert list(a.frames) == list(b.frames)
        for tf in a.frames:
            np.testing.assert_array_equal(a[tf].time, b[tf].time)
            np.testing.assert_array_equal(a[tf].close, b[tf].close)
