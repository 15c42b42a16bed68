"""Candle validation: each defect, refuse vs repair, gaps, and the real NIC defects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.schema import (
    DEFECTS,
    check_candles,
    configured_max_jump,
    default_max_jump,
    find_gaps,
    resolve_max_jump,
    to_frame,
    validate,
)
from gogo2.errors import CandleValidationError, DataError
from gogo2.timeframes import format_time

MIN = 60_000
HOUR = 3_600_000
T0 = 1_672_531_200_000  # 2023-01-01 00:00 UTC


def candles(n: int, start: int = T0, step: int = MIN, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]][:n]
    return pd.DataFrame(
        {
            "time": start + np.arange(n, dtype=np.int64) * step,
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": rng.uniform(1.0, 5.0, n),
        }
    )


def test_clean_candles_pass_unchanged() -> None:
    df = candles(200)
    out, changes, report = check_candles(df, "1m")
    assert report.ok and changes == []
    pd.testing.assert_frame_equal(out, df)


@pytest.mark.parametrize("field", ["open", "high", "low", "close"])
def test_a_price_of_exactly_zero_is_non_positive(field: str) -> None:
    """Rule "prices > 0": a zero in any price field (the others untouched) is counted as a
    non-positive price at its row, whatever body rule it also breaks."""
    df = candles(20)
    df.loc[5, field] = 0.0
    report = validate(to_frame(df), "1m")
    assert report.count("non_positive_price") == 1
    assert report.masks["non_positive_price"][5]


@pytest.mark.parametrize(
    ("defect", "mutate"),
    [
        ("nan", lambda d: d.__setitem__("close", d.close.where(d.index != 5, np.nan))),
        ("non_positive_price", lambda d: d.__setitem__("low", d.low.where(d.index != 5, 0.0))),
        ("negative_volume", lambda d: d.__setitem__("volume", d.volume.where(d.index != 5, -1.0))),
        (
            "high_below_body",
            lambda d: d.__setitem__("high", d.high.where(d.index != 5, d.low * 0.999)),
        ),
        ("low_above_body", lambda d: d.__setitem__("low", d.low.where(d.index != 5, d.high))),
        ("zero_volume", lambda d: d.__setitem__("volume", d.volume.where(d.index != 5, 0.0))),
        ("off_grid", lambda d: d.__setitem__("time", d.time.where(d.index != 5, d.time + 1_000))),
    ],
)
def test_each_row_defect_is_found_at_its_row(defect: str, mutate) -> None:
    df = candles(20)
    mutate(df)
    report = validate(to_frame(df), "1m")
    assert report.count(defect) == 1
    assert report.masks[defect][5]
    assert report.first_bad_time() == int(df.time.iloc[5])
    others = [d for d in DEFECTS if d not in (defect, "extreme_jump")]
    assert all(report.count(d) == 0 for d in others if d != defect)


def test_refusal_message_names_origin_count_first_time_and_fix() -> None:
    df = candles(30)
    df.loc[[7, 12], "volume"] = 0.0
    with pytest.raises(CandleValidationError) as err:
        check_candles(df, "1m", origin="downloads/BTC_USDT-1m.csv")
    msg = str(err.value)
    assert "downloads/BTC_USDT-1m.csv" in msg
    assert "2 bad candle row(s) out of 30" in msg
    assert f"first bad timestamp {format_time(T0 + 7 * MIN)} UTC" in msg
    assert "--repair" in msg and "zero-volume" in msg


def test_duplicates_keep_last_and_unsorted_are_sorted_not_dropped() -> None:
    df = candles(10)
    revised = df.iloc[[3]].copy()
    revised["volume"] = 42.0
    shuffled = pd.concat([df.iloc[5:], df.iloc[:5], revised], ignore_index=True)
    report = validate(to_frame(shuffled), "1m")
    # 9 -> 0 and 4 -> 3 step back in time; the first 3 loses to the later revised 3
    assert report.count("duplicate") == 1 and report.count("unsorted") == 2
    with pytest.raises(CandleValidationError, match="duplicate"):
        check_candles(shuffled, "1m")
    out, changes, _ = check_candles(shuffled, "1m", repair=True)
    assert out.time.tolist() == df.time.tolist()
    assert out.loc[3, "volume"] == 42.0  # the later row won
    assert any(c.startswith("sorted") for c in changes)
    assert any("duplicate" in c and "kept the last" in c for c in changes)


def test_isolated_spike_is_flagged_and_repair_drops_only_it() -> None:
    df = candles(20)
    df.loc[10, ["open", "high", "low", "close"]] = [df.close[9], 300.0, df.close[9], 300.0]
    df.loc[11, "open"] = 300.0
    df.loc[11, "high"] = 300.0
    report = validate(to_frame(df), "1m")
    assert report.count("extreme_jump") == 1 and report.masks["extreme_jump"][10]
    out, changes, _ = check_candles(df, "1m", repair=True)
    assert len(out) == 19 and T0 + 10 * MIN not in out.time.to_numpy()
    assert any("extreme close-to-close jumps" in c for c in changes)


def test_jump_threshold_is_a_parameter() -> None:
    df = candles(20)
    df.loc[10:, ["open", "high", "low", "close"]] *= 1.3  # a persistent +30 % level shift
    df.loc[10, "open"] = df.close[9]
    df.loc[10, "low"] = min(df.low[10], df.open[10])
    assert validate(to_frame(df), "1m").ok
    strict = validate(to_frame(df), "1m", max_jump=0.2)
    assert strict.count("extreme_jump") == 1
    # persistent: refused even with repair, with the fix named
    with pytest.raises(CandleValidationError, match="max_jump"):
        check_candles(df, "1m", repair=True, max_jump=0.2)


def test_move_across_a_gap_is_not_a_jump() -> None:
    df = candles(20, step=HOUR)
    df = df[(df.index < 5) | (df.index > 14)].copy()  # ten hours missing
    df.loc[df.index >= 15, ["open", "high", "low", "close"]] *= 2.0
    report = validate(to_frame(df), "1h")
    assert report.ok
    assert report.gaps == [(T0 + 4 * HOUR, T0 + 15 * HOUR, 10)]


def test_gaps_are_reported_not_filled() -> None:
    df = candles(10, step=HOUR).drop(index=[3, 4, 8])
    out, changes, report = check_candles(df, "1h")
    assert len(out) == 7 and changes == []
    assert report.gaps == [(T0 + 2 * HOUR, T0 + 5 * HOUR, 2), (T0 + 7 * HOUR, T0 + 9 * HOUR, 1)]
    assert report.missing_bars == 3


def test_weekly_grid_is_monday_aligned() -> None:
    monday = 1_672_617_600_000  # 2023-01-02 00:00 UTC, a Monday
    df = candles(4, start=monday, step=7 * 86_400_000)
    assert validate(to_frame(df), "1w").ok
    thursday = candles(4, start=monday + 3 * 86_400_000, step=7 * 86_400_000)
    assert validate(to_frame(thursday), "1w").count("off_grid") == 4


def test_missing_column_and_bad_types_raise_data_error() -> None:
    with pytest.raises(DataError, match="missing column"):
        to_frame(candles(3).drop(columns=["volume"]), "x.csv")
    df = candles(3)
    df["time"] = pd.to_datetime(df["time"], unit="ms")
    with pytest.raises(DataError, match="milliseconds"):
        to_frame(df, "x.csv")
    bad = candles(3).astype({"close": object})
    bad.loc[1, "close"] = "abc"
    with pytest.raises(DataError, match="numbers"):
        to_frame(bad, "x.csv")
    with pytest.raises(DataError, match="DataFrame"):
        to_frame([1, 2, 3], "x.csv")


@pytest.mark.parametrize(
    ("scale", "word"), [(1 / 1000, "seconds"), (1000, "microseconds"), (1_000_000, "nanoseconds")]
)
def test_time_in_wrong_unit_is_named(scale: float, word: str) -> None:
    df = candles(3)
    df["time"] = (df["time"] * scale).astype(np.int64)
    with pytest.raises(DataError, match=f"looks like {word}"):
        to_frame(df, "x.csv")


def test_find_gaps_simple() -> None:
    t = np.array([0, 1, 2, 5, 6, 10], dtype=np.int64) * MIN
    assert find_gaps(t, MIN) == [(2 * MIN, 5 * MIN, 2), (6 * MIN, 10 * MIN, 3)]
    assert find_gaps(t[:1], MIN) == []


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=60),
    drops=st.lists(st.integers(min_value=0, max_value=59), max_size=10),
    zero=st.lists(st.integers(min_value=0, max_value=59), max_size=5),
    dup=st.lists(st.integers(min_value=0, max_value=59), max_size=5),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_repair_output_is_always_valid_and_a_subset(n, drops, zero, dup, seed) -> None:
    rng = np.random.default_rng(seed)
    df = candles(n, seed=seed)
    df = df.drop(index=[d for d in set(drops) if d < n])
    for z in zero:
        if z in df.index:
            df.loc[z, "volume"] = 0.0
    extra = df.loc[[d for d in dup if d in df.index]]
    df = pd.concat([df, extra]).sample(frac=1.0, random_state=rng.integers(0, 2**31))
    out, _, _ = check_candles(df, "1m", repair=True)
    again = validate(out, "1m")
    assert again.ok
    assert set(out.time) <= set(df.time)
    assert (out.volume > 0).all()
    # every time of a clean input row survives
    clean_times = set(df.time[df.volume > 0])
    assert set(out.time) == clean_times


def test_nic_btc_1h_real_defects(shared_datasets) -> None:
    import pyarrow.parquet as pq

    path = shared_datasets / "nic_tradingstrategyga" / "BTC_USDT-1h.parquet"
    df = pq.read_table(path).to_pandas().rename(columns={"timestamp": "time"})
    report = validate(to_frame(df, str(path)), "1h")
    assert (len(report.gaps), report.missing_bars) == (28, 128)
    assert report.count("zero_volume") == 4
    assert report.n_bad == 4
    zero_times = {format_time(int(t)) for t in report.time[report.masks["zero_volume"]]}
    assert zero_times == {
        "2017-09-06 16:00",
        "2019-06-07 21:00",
        "2021-02-11 03:00",
        "2023-03-24 12:00",
    }
    largest = max(report.gaps, key=lambda g: g[2])
    assert format_time(largest[0]) == "2018-02-08 00:00" and largest[2] == 33
    with pytest.raises(CandleValidationError, match="4 bad candle row"):
        check_candles(df, "1h", origin=str(path))
    out, changes, _ = check_candles(df, "1h", origin=str(path), repair=True)
    assert len(out) == len(df) - 4
    assert len(changes) == 1 and "4 row(s) with zero-volume" in changes[0]


# --------------------------------------------------------------------------- body boundaries
def _one_candle(o: float, h: float, lo: float, c: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"time": [T0], "open": [o], "high": [h], "low": [lo], "close": [c], "volume": [1.0]}
    )


def test_high_inside_the_range_but_below_the_body_is_refused_by_name() -> None:
    # high 101 is above the low (99) but below the close (102): only the body rule can catch it
    df = _one_candle(100.0, 101.0, 99.0, 102.0)
    report = validate(to_frame(df), "1m")
    assert report.masks["high_below_body"].tolist() == [True]
    assert report.count("low_above_body") == 0 and report.n_bad == 1
    with pytest.raises(CandleValidationError) as err:
        check_candles(df, "1m", origin="x.csv")
    msg = str(err.value)
    assert (
        "high below the body (high < max(open, close)): 1 row(s), first at 2023-01-01 00:00" in msg
    )
    assert "low above" not in msg


def test_low_inside_the_range_but_above_the_body_is_refused_by_name() -> None:
    # low 101 is below the high (103) but above the open (100)
    df = _one_candle(100.0, 103.0, 101.0, 102.0)
    report = validate(to_frame(df), "1m")
    assert report.masks["low_above_body"].tolist() == [True]
    assert report.count("high_below_body") == 0 and report.n_bad == 1
    with pytest.raises(CandleValidationError) as err:
        check_candles(df, "1m", origin="x.csv")
    msg = str(err.value)
    assert "low above the body (low > min(open, close)): 1 row(s), first at 2023-01-01 00:00" in msg
    assert "high below" not in msg


@pytest.mark.parametrize(
    ("o", "h", "lo", "c"),
    [
        (100.0, 102.0, 100.0, 102.0),  # high = close, low = open: a full-body candle
        (102.0, 102.0, 100.0, 100.0),  # the falling mirror
        (100.0, 100.0, 100.0, 100.0),  # all four equal
    ],
)
def test_extremes_equal_to_the_body_are_accepted(o, h, lo, c) -> None:
    assert validate(to_frame(_one_candle(o, h, lo, c)), "1m").ok


def test_cli_refusal_says_dash_dash_repair_not_the_python_keyword() -> None:
    df = candles(10)
    df.loc[3, "volume"] = 0.0
    with pytest.raises(CandleValidationError) as err:
        check_candles(df, "1m")
    assert "pass --repair" in str(err.value) and "repair=True" not in str(err.value)


# --------------------------------------------------------------------------- jump thresholds
@pytest.mark.parametrize(
    ("tf", "want"),
    [("1s", 0.5), ("1m", 0.5), ("1h", 0.5), ("2h", 0.75), ("4h", 0.75), ("12h", 1.0),
     ("1d", 1.0), ("3d", 2.0), ("1w", 2.0)],
)  # fmt: skip
def test_default_max_jump_by_timeframe(tf: str, want: float) -> None:
    assert default_max_jump(tf) == want
    assert resolve_max_jump(tf) == want
    assert resolve_max_jump(tf, 0.3) == 0.3  # a given threshold wins
    with pytest.raises(DataError, match="--max-jump"):
        resolve_max_jump(tf, 0.0)


def test_configured_max_jump_only_when_set_explicitly() -> None:
    from gogo2.config import DataConfig

    assert configured_max_jump(DataConfig()) is None
    assert configured_max_jump(DataConfig(max_jump=0.8)) == 0.8


def test_real_sized_daily_jump_passes_at_the_1d_default_and_the_hint_names_the_fix() -> None:
    # a +57 % day (as early exchange history has): 101 -> 158.57
    df = candles(5, step=86_400_000)
    df.loc[3, ["open", "close"]] = [df.close[2], df.close[2] * 1.57]
    df.loc[3, "high"] = df.loc[3, "close"]
    df.loc[4, ["open", "low"]] = [df.close[3], min(df.low[4], df.close[3])]
    df.loc[4, ["high", "close"]] = [df.close[3] * 1.001, df.close[3]]
    assert validate(to_frame(df), "1d", max_jump=default_max_jump("1d")).ok
    with pytest.raises(CandleValidationError) as err:
        check_candles(df, "1d", origin="coinbase.csv", max_jump=0.5)
    msg = str(err.value)
    assert "extreme close-to-close jumps: 1 row(s)" in msg
    assert f"The largest move is +57.0% (at {format_time(T0 + 3 * 86_400_000)} UTC)" in msg
    # the suggested threshold is the move rounded up to the next 0.05: 0.57 -> 0.60
    assert "pass --max-jump 0.60 to data import / data download" in msg
    assert "data.max_jump" in msg and "now 0.5 for 1d" in msg
    assert validate(to_frame(df), "1d", max_jump=0.6).ok
