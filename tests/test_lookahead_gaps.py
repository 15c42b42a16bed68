"""Gappy candles: the look-ahead checker re-decides each row from the very window the live
runner decides from (``strategies.window``), so missing candles raise no false alarm and
biased strategies are still caught."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers import aggregate, make_bars
from test_lookahead import FutureSize, OpenHourlyBar, PeekNextClose
from test_lookahead_sparse import BfillHoles, DailyPeek, DailyVeto, EarlyHourly

import strategies.lookahead as lookahead
from datasets.bars import Bars, MultiBars
from gogo2.errors import UserInputError
from runner.window import CandleBook
from strategies import registry
from strategies.lookahead import TrailingWindows, check_lookahead, check_warmup
from strategies.window import REACH, trailing_window, window_start, window_starts

HOUR = 3_600_000


def _rows(b: Bars, keep: np.ndarray) -> Bars:
    return Bars(
        b.timeframe,
        b.symbols,
        b.time[keep],
        b.open[keep],
        b.high[keep],
        b.low[keep],
        b.close[keep],
        b.volume[keep],
        b.exchange,
        b.synthetic,
    )


def _gappy(n: int, seed: int, informative: tuple[str, ...] = ("1h",)) -> MultiBars:
    """5m candles of two symbols with every kind of gap: 2 % of single candles missing per
    symbol, a 40-bar hole of one symbol (it trades, the other does not), and two outages
    where the row is missing for both (no timestamp in the index)."""
    b = make_bars(n, timeframe="5m", seed=seed, vol=0.003, gaps=0.02)
    for f in (b.open, b.high, b.low, b.close, b.volume):
        f[n // 2 : n // 2 + 40, 1] = np.nan
    keep = np.ones(n, dtype=bool)
    keep[n // 3 : n // 3 + 30] = False
    keep[3 * n // 4 : 3 * n // 4 + 7] = False
    base = _rows(b, keep)
    frames = {"5m": base}
    for tf in informative:
        frames[tf] = aggregate(base, tf)
    return MultiBars("5m", frames)


def _fixed_rows(close: np.ndarray, length: int) -> np.ndarray:
    """The checker's window before it shared the runner's: ``length`` rows, no reach."""
    rows = np.arange(np.shape(close)[0], dtype=np.int64)
    return np.maximum(0, rows + 1 - length)


# ------------------------------------------------------------------ the definition


def test_window_starts_reach_back_over_a_symbols_holes_by_hand() -> None:
    # 8 rows, 2 symbols, 3 candles per window; symbol 1 misses rows 4 and 5
    close = np.ones((8, 2))
    close[4:6, 1] = np.nan
    # symbol 1's candles: rows 0, 1, 2, 3, 6, 7. Row 4's window must hold rows 1, 2, 3 of
    # it, so it starts at 1; row 5 too; row 6 needs rows 2, 3, 6; row 7 rows 3, 6, 7.
    np.testing.assert_array_equal(window_starts(close, 3), [0, 0, 0, 1, 1, 1, 2, 3])
    # the single-row form used by the runner agrees at every row
    assert [window_start(close[: t + 1], 3) for t in range(8)] == [0, 0, 0, 1, 1, 1, 2, 3]
    # one symbol, no hole: plain trailing rows
    np.testing.assert_array_equal(window_starts(np.ones(5), 2), [0, 0, 1, 2, 3])


def test_window_reach_is_bounded() -> None:
    assert REACH == 4
    # 2 candles per window, so at most 8 rows back; symbol 1 misses rows 2..11
    close = np.ones((14, 2))
    close[2:12, 1] = np.nan
    starts = window_starts(close, 2)
    # row 5 reaches back to symbol 1's rows 0 and 1; row 11 may not go past row 4
    # (11 + 1 - 8); row 12 holds symbol 1's rows 1 and 12, bounded at 5; row 13 is whole
    assert starts[5] == 0 and starts[9] == 2
    assert (starts[11], starts[12], starts[13]) == (4, 5, 12)
    assert [window_start(close[: t + 1], 2) for t in range(14)] == starts.tolist()
    with pytest.raises(UserInputError, match="trailing window length 0"):
        window_starts(close, 0)


def test_runner_memory_and_checker_cut_the_same_windows() -> None:
    """Replayed bar by bar into the runner's memory (which drops old rows), every window
    the runner decides from is the one the checker re-decides that row from."""
    data = _gappy(900, seed=3)
    length = 21
    base, hourly = data.bars, data["1h"]
    start = 60
    history = data.until(int(base.close_time[start - 1]))
    book = CandleBook(history, length)
    windows = TrailingWindows(data, length)
    h_next = history["1h"].n
    reached = 0
    for t in range(start, base.n):
        close_t = int(base.close_time[t])
        while h_next < hourly.n and int(hourly.close_time[h_next]) <= close_t:
            book.append("1h", _row(hourly, h_next))
            h_next += 1
        book.append("5m", _row(base, t))
        live, check = book.window(), windows.at(t)
        for tf in ("5m", "1h"):
            np.testing.assert_array_equal(live[tf].time, check[tf].time)
            np.testing.assert_array_equal(live[tf].close, check[tf].close)
        reached += live.bars.n > length
    assert reached > 100  # the holes made many windows reach back
    assert book.frames["5m"].n < base.n  # and the runner's memory did drop old rows


def _row(b: Bars, i: int) -> SimpleNamespace:
    return SimpleNamespace(
        time=int(b.time[i]),
        open=b.open[i],
        high=b.high[i],
        low=b.low[i],
        close=b.close[i],
        volume=b.volume[i],
    )


def test_trailing_window_holds_length_candles_of_every_symbol() -> None:
    data = _gappy(900, seed=4, informative=())
    close = data.bars.close
    for t in (200, 450, 460, 489, 700):
        win = trailing_window(data.until(int(data.bars.close_time[t])), 30)
        counts = (~np.isnan(win.bars.close)).sum(axis=0)
        assert counts.min() == 30  # every symbol has its 30 candles...
        later = (~np.isnan(win.bars.close[1:])).sum(axis=0)
        assert later.min() == 29  # ...and one row less would leave a symbol short
        np.testing.assert_array_equal(win.bars.close, close[t + 1 - win.bars.n : t + 1])
    assert trailing_window(data.until(int(data.bars.close_time[460])), 30).bars.n > 30


# ------------------------------------------------------------------ no false alarm


BUNDLED = [
    ("sma_cross", ["band=0.001"]),
    ("rsi_reversion", ["short=true"]),
    ("mtf_trend", ["trend=12"]),
]


@pytest.fixture(scope="module", name="gappy")
def fixture_gappy() -> MultiBars:
    return _gappy(2_400, seed=5)


@pytest.mark.parametrize(("name", "params"), BUNDLED, ids=[b[0] for b in BUNDLED])
def test_bundled_strategies_pass_on_gappy_candles(
    gappy: MultiBars, name: str, params: list[str]
) -> None:
    s = registry.create(name, params, timeframe="5m")
    report = check_lookahead(s, gappy, exhaustive=True)
    assert report.ok, report.summary()
    # no warm-up difference either: the holes are reached over as the runner does
    assert report.warmup_rows == 0, report.warmup_issues[:3]
    warm = check_warmup(s, gappy, starts=2, lookahead=report)
    assert warm.ok, warm.summary()
    sampled = check_lookahead(s, gappy, cuts=4, exhaustive=False)
    assert sampled.ok and sampled.warmup_rows == 0, sampled.summary()


def test_a_window_of_fixed_rows_cried_wolf_on_the_same_candles(gappy, monkeypatch) -> None:
    """The defect the shared window fixes: with ``warmup + 1`` rows whatever the holes, the
    checker saw decisions differ that a live runner never takes differently."""
    s = registry.create("sma_cross", ["band=0.001"], timeframe="5m")
    monkeypatch.setattr(lookahead, "window_starts", _fixed_rows)
    report = check_lookahead(s, gappy, exhaustive=True)
    assert report.ok  # still no look-ahead...
    assert report.warmup_rows > 0  # ...but a false warning that the warm-up is short
    assert not check_warmup(s, gappy, starts=1, lookahead=report).ok


# ------------------------------------------------------------------ leaks still caught


@pytest.mark.parametrize("exhaustive", [True, False], ids=["exhaustive", "sampled"])
@pytest.mark.parametrize(
    "biased",
    [PeekNextClose, OpenHourlyBar, FutureSize, DailyPeek, DailyVeto, BfillHoles, EarlyHourly],
)
def test_biased_strategies_are_caught_on_gappy_candles(
    gappy: MultiBars, biased: type, exhaustive: bool
) -> None:
    s = biased()
    report = check_lookahead(s, gappy, cuts=4, seed=0, exhaustive=exhaustive)
    assert not report.ok, report.summary()
    assert report.issues
    full = s.signals(gappy)
    close = gappy.bars.close_time
    for issue in report.issues[:5]:
        # each reported row really changes when the data is cut at its close
        t = int(np.searchsorted(gappy.bars.time, issue.bar_time))
        cut = s.signals(gappy.until(int(close[t])))
        differs = False
        for name in ("entries", "size"):
            a, b = getattr(full, name), getattr(cut, name)
            if a is not None and not np.array_equal(a[t], b[t], equal_nan=True):
                differs = True
        assert differs, issue.describe()


# ------------------------------------------------------------------ real candles


def _frame(path, start: str, end: str) -> pd.DataFrame:
    df = pd.read_parquet(path)
    t0, t1 = (int(pd.Timestamp(x, tz="UTC").value // 1_000_000) for x in (start, end))
    return df[(df["timestamp"] >= t0) & (df["timestamp"] < t1)].reset_index(drop=True)


def test_real_coinbase_pair_with_holes(shared_datasets, monkeypatch) -> None:
    """Coinbase BTC-USD and BTC-EUR minutes of 2018-04-04..06: BTC-EUR skips illiquid
    minutes that BTC-USD trades, which leaves holes in the common index."""
    folder = shared_datasets / "lean"
    paths = [folder / f"coinbase_BTC_{q}-1m.parquet" for q in ("USD", "EUR")]
    if not all(p.exists() for p in paths):
        pytest.skip("shared coinbase BTC 1m files not present")
    frames = {
        f"BTC/{q}": _frame(p, "2018-04-04", "2018-04-07")
        for q, p in zip(("USD", "EUR"), paths, strict=True)
    }
    data = MultiBars.from_frames(frames, "1m")
    holes = np.isnan(data.bars.close).sum(axis=0)
    assert holes[1] > 100  # BTC/EUR misses minutes BTC/USD has
    for name, params in (("sma_cross", []), ("rsi_reversion", ["short=true"])):
        s = registry.create(name, params, timeframe="1m")
        report = check_lookahead(s, data, exhaustive=True)
        assert report.ok and report.warmup_rows == 0, report.summary()
    caught = check_lookahead(BfillHoles(timeframe="1m"), data, exhaustive=True)
    assert not caught.ok
    # the defect as first seen on these candles: sma_cross on a window of fixed rows
    monkeypatch.setattr(lookahead, "window_starts", _fixed_rows)
    old = check_lookahead(registry.create("sma_cross", [], timeframe="1m"), data)
    assert old.ok and old.warmup_rows > 0


def test_real_binance_hourly_outages(shared_datasets) -> None:
    """Binance BTC/USDT 1h of 2018-01..04, with the 34-hour outage of 2018-02-08: a row
    missing for every symbol needs no reach, so windows are plain trailing rows."""
    path = shared_datasets / "nic_tradingstrategyga" / "BTC_USDT-1h.parquet"
    if not path.exists():
        pytest.skip("shared BTC_USDT-1h.parquet not present")
    df = _frame(path, "2018-01-01", "2018-05-01")
    data = MultiBars.from_frames({"BTC/USDT": df}, "1h")
    jumps = np.diff(data.bars.time)
    assert (jumps > HOUR).sum() == 2 and jumps.max() == 34 * HOUR  # real gaps in the index
    for name, params in (("sma_cross", []), ("rsi_reversion", ["short=true"])):
        s = registry.create(name, params, timeframe="1h")
        windows = TrailingWindows(data, s.warmup + 1)
        np.testing.assert_array_equal(windows.start, _fixed_rows(data.bars.close, s.warmup + 1))
        report = check_lookahead(s, data, exhaustive=True)
        assert report.ok and report.warmup_rows == 0, report.summary()
    assert not check_lookahead(PeekNextClose(timeframe="1h"), data, exhaustive=True).ok
