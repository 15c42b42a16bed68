"""rsi_reversion's warm-up: long enough for Wilder's smoothing to forget its seed to the last
bit, so a live trailing window decides exactly as the whole history on any timeframe."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from helpers import aggregate

from datasets.bars import MultiBars
from datasets.indicators import rsi
from datasets.synthetic import generate_sample
from gogo2.config import Settings
from strategies import registry
from strategies.lookahead import TrailingWindows, check_lookahead, check_warmup
from strategies.rsi_reversion import RsiReversion, wilder_steps

DAY = 86_400_000
SAMPLE_START = 1_669_852_800_000  # 2022-12-01 00:00 UTC, the sample's first candle


def test_wilder_steps_by_hand() -> None:
    # the seed's weight after k updates is (1 - 1/window) ** k; it must be <= 2 ** -69
    # (53 bits of a float64 and 16 of margin) and not already one update earlier
    k = 646
    assert (13 / 14) ** k <= 2.0**-69 < (13 / 14) ** (k - 1)
    assert wilder_steps(14) == 646
    assert wilder_steps(2) == 69  # halves per update: exactly one bit each
    # first RSI at row 14, the bar before the decision at row 14 + 646, the decision next
    assert RsiReversion(window=14).warmup == 14 + 646 + 1 == 661
    assert RsiReversion(window=2).warmup == 2 + 69 + 1


@pytest.fixture(scope="module", name="sample")
def fixture_sample() -> dict[str, pd.DataFrame]:
    """The embedded synthetic sample (default seed), its first 16 days of 1m candles."""
    frames = generate_sample(Settings().data.sample_seed)
    return {
        s: df[df["time"] < SAMPLE_START + 16 * DAY].reset_index(drop=True)
        for s, df in frames.items()
    }


def _data(sample: dict[str, pd.DataFrame], timeframe: str, first_day: int, days: int) -> MultiBars:
    lo, hi = SAMPLE_START + first_day * DAY, SAMPLE_START + (first_day + days) * DAY
    cut = {s: df[(df["time"] >= lo) & (df["time"] < hi)] for s, df in sample.items()}
    bars = MultiBars.from_frames(cut, "1m").bars
    if timeframe != "1m":
        bars = aggregate(bars, timeframe)
    return MultiBars(timeframe, {timeframe: bars})


# 1m: 2022-12-13 and 14, where the old warm-up of ten periods flipped an ETH entry
# (2022-12-14 20:21); 15m: the first 16 days (1,536 bars, 875 decisions)
CASES = [("1m", 12, 2), ("15m", 0, 16)]


@pytest.mark.parametrize(("timeframe", "first_day", "days"), CASES, ids=[c[0] for c in CASES])
def test_checker_passes_rsi_reversion_on_the_sample(
    sample, timeframe: str, first_day: int, days: int
) -> None:
    data = _data(sample, timeframe, first_day, days)
    s = registry.create("rsi_reversion", ["short=true"], timeframe=timeframe)
    report = check_lookahead(s, data, exhaustive=True)
    assert report.ok, report.summary()
    assert report.warmup_rows == 0, report.warmup_issues[:3]
    assert report.rows_checked == data.bars.n - 661
    warm = check_warmup(s, data, starts=3, lookahead=report)
    assert warm.ok, warm.summary()
    # what the warm-up guarantees: the window's RSI of the decision bar and of the bar
    # before it is the whole history's, bit for bit, at every row
    full = rsi(data.bars.close, 14)
    windows = TrailingWindows(data, s.warmup + 1)
    for t in range(s.warmup, data.bars.n, 7):
        own = rsi(windows.at(t).bars.close, 14)
        np.testing.assert_array_equal(own[-2:], full[t - 1 : t + 1])


def test_the_derived_warmup_is_what_makes_the_check_pass(sample, monkeypatch) -> None:
    data = _data(sample, "1m", 12, 2)
    s = registry.create("rsi_reversion", [], timeframe="1m")
    assert check_lookahead(s, data, exhaustive=True).warmup_rows == 0
    # the old declaration, ten RSI periods: a trailing window decides differently
    monkeypatch.setattr(RsiReversion, "lookback", lambda self: {self.timeframe: 10 * 14 + 1})
    assert s.warmup == 140
    report = check_lookahead(s, data, exhaustive=True)
    assert report.ok  # not look-ahead...
    assert report.warmup_rows > 0  # ...but the warm-up is too short
    flagged = check_warmup(s, data, starts=1, lookahead=report)
    assert not flagged.ok and "too short" in flagged.summary()
    issue = report.warmup_issues[0]
    assert (issue.symbol, issue.field) == ("ETH/USDT", "entries")
    assert issue.bar_time == pd.Timestamp("2022-12-14 20:21", tz="UTC").value // 1_000_000


def test_float64_bits_alone_leave_some_windows_off_in_the_last_bits(sample) -> None:
    """Why 16 bits of margin: forgetting the seed to 2 ** -53 of the average (the float64
    rounding unit) is not enough for the two sequences to have met exactly everywhere."""
    data = _data(sample, "1m", 12, 2)
    close = data.bars.close
    full = rsi(close, 14)
    bare = math.ceil(53 * math.log(2.0) / -math.log1p(-1 / 14))  # 496 updates
    length = 14 + bare + 2
    off = 0
    for t in range(length - 1, data.bars.n):
        own = rsi(close[t + 1 - length : t + 1], 14)
        off += not np.array_equal(own[-2:], full[t - 1 : t + 1])
    assert off > 0
