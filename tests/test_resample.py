"""Derived timeframes: aggregation rule, incomplete buckets, cache and invalidation, as-of join."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import datasets.catalog as catalog_mod
from datasets.bars import Bars
from datasets.catalog import Catalog
from datasets.resample import asof_join, resample_arrays, resample_bars, union_sorted
from gogo2.errors import DataError

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
T0 = 1_672_531_200_000  # 2023-01-01 00:00 UTC (a Sunday)


def candles(n: int, start: int = T0, step: int = MIN, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]][:n]
    return pd.DataFrame(
        {
            "time": start + np.arange(n, dtype=np.int64) * step,
            "open": open_,
            "high": np.maximum(open_, close) * (1 + rng.uniform(0, 0.003, n)),
            "low": np.minimum(open_, close) * (1 - rng.uniform(0, 0.003, n)),
            "close": close,
            "volume": rng.uniform(1.0, 5.0, n),
        }
    )


def pandas_reference(df: pd.DataFrame, tf_ms: int) -> pd.DataFrame:
    """Independent aggregation with pandas groupby (the rule written out)."""
    g = df.groupby(df.time // tf_ms * tf_ms)
    return pd.DataFrame(
        {
            "open": g.open.first(),
            "high": g.high.max(),
            "low": g.low.min(),
            "close": g.close.last(),
            "volume": g.volume.sum(),
            "n": g.size(),
        }
    )


@pytest.fixture(name="cat")
def fixture_cat(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "data")


def test_hand_example_5m_from_1m(cat: Catalog) -> None:
    rows = [
        # time, open, high, low, close, volume
        (0, 10.0, 12.0, 9.0, 11.0, 1.0),
        (1, 11.0, 15.0, 10.5, 14.0, 2.0),
        (2, 14.0, 14.5, 8.0, 9.0, 3.0),
        (3, 9.0, 10.0, 8.5, 9.5, 4.0),
        (4, 9.5, 9.8, 9.1, 9.6, 5.0),
        (5, 9.6, 9.9, 9.4, 9.7, 6.0),
        (6, 9.7, 9.9, 9.5, 9.8, 7.0),  # bucket 2 incomplete at the end: dropped
    ]
    df = pd.DataFrame(rows, columns=["time", "open", "high", "low", "close", "volume"])
    df["time"] = T0 + df["time"].astype(np.int64) * MIN
    cat.write(df, "binance", "BTC/USDT", "1m")
    out = cat.load_frame("binance", "BTC/USDT", "5m")
    assert out.to_dict("records") == [
        {"time": T0, "open": 10.0, "high": 15.0, "low": 8.0, "close": 9.6, "volume": 15.0}
    ]


def test_derived_equals_pandas_groupby_on_random_data(cat: Catalog) -> None:
    df = candles(3 * 24 * 60 + 17, seed=3)
    df = df.drop(index=np.random.default_rng(1).choice(len(df), 40, replace=False))
    cat.write(df, "binance", "BTC/USDT", "1m")
    for tf, tf_ms in (("5m", 5 * MIN), ("15m", 15 * MIN), ("1h", HOUR), ("4h", 4 * HOUR)):
        got = cat.load_frame("binance", "BTC/USDT", tf).set_index("time")
        ref = pandas_reference(df, tf_ms)
        last = ref.index[-1]
        if df.time.iloc[-1] + MIN < last + tf_ms:  # the reference keeps the forming bucket
            ref = ref.drop(index=last)
        assert got.index.tolist() == ref.index.tolist(), tf
        for c in ("open", "high", "low", "close"):
            np.testing.assert_array_equal(got[c].to_numpy(), ref[c].to_numpy())
        np.testing.assert_allclose(got.volume.to_numpy(), ref.volume.to_numpy(), rtol=1e-12)


def test_incomplete_inner_bucket_is_emitted_with_fill(cat: Catalog) -> None:
    df = candles(180)  # three full hours
    df = df[(df.time < T0 + 70 * MIN) | (df.time >= T0 + 100 * MIN)]  # 30 minutes missing
    cat.write(df, "binance", "BTC/USDT", "1m")
    bars = cat.load(["BTC/USDT"], "1h", exchange="binance")
    assert bars.time.tolist() == [T0, T0 + HOUR, T0 + 2 * HOUR]
    np.testing.assert_allclose(bars.meta["fill"][:, 0], [1.0, 0.5, 1.0])
    assert bars.meta["base_timeframe"] == {"BTC/USDT": "1m"}


def test_last_partial_bucket_is_not_emitted_until_closed(cat: Catalog) -> None:
    cat.write(candles(119), "binance", "BTC/USDT", "1m")  # 00:00 .. 01:58
    assert cat.load_frame("binance", "BTC/USDT", "1h").time.tolist() == [T0]
    df = cat.load_frame("binance", "BTC/USDT", "1m")
    nxt = candles(2, start=T0 + 119 * MIN, seed=8)
    nxt[["open", "high", "low", "close"]] *= df.close.iloc[-1] / nxt.open.iloc[0]
    cat.write(nxt.iloc[:1], "binance", "BTC/USDT", "1m")  # 01:59 closes the second hour
    assert cat.load_frame("binance", "BTC/USDT", "1h").time.tolist() == [T0, T0 + HOUR]


def test_cache_is_reused_and_invalidated_by_writes(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = catalog_mod.derive_files

    def counting(*a, **kw):
        calls["n"] += 1
        return real(*a, **kw)

    monkeypatch.setattr(catalog_mod, "derive_files", counting)
    df = candles(240)
    cat.write(df.iloc[:120], "binance", "BTC/USDT", "1m")
    first = cat.load_frame("binance", "BTC/USDT", "1h")
    again = cat.load_frame("binance", "BTC/USDT", "1h")
    assert calls["n"] == 1
    pd.testing.assert_frame_equal(first, again)
    assert (cat.root / "_derived").is_dir()
    cat.write(df.iloc[120:], "binance", "BTC/USDT", "1m")
    after = cat.load_frame("binance", "BTC/USDT", "1h")
    assert calls["n"] == 2 and len(after) == 4
    # a base file changed behind the catalog's back: fingerprint differs, cache rebuilt
    year_file = next(cat.series_dir("binance", "BTC/USDT", "1m").glob("year=*.parquet"))
    st = year_file.stat()
    os.utime(year_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    cat.load_frame("binance", "BTC/USDT", "1h")
    assert calls["n"] == 3


def test_revised_base_candle_reaches_derived_timeframe(cat: Catalog) -> None:
    df = candles(120)
    cat.write(df, "binance", "BTC/USDT", "1m")
    before = cat.load_frame("binance", "BTC/USDT", "1h")
    fix = df.iloc[[30]].copy()
    fix["volume"] = 1000.0
    cat.write(fix, "binance", "BTC/USDT", "1m")
    after = cat.load_frame("binance", "BTC/USDT", "1h")
    assert after.volume[0] == pytest.approx(before.volume[0] - df.volume[30] + 1000.0)


def test_not_a_multiple_and_finer_than_stored_are_clear_errors(cat: Catalog) -> None:
    cat.write(candles(48, step=HOUR), "binance", "BTC/USDT", "1h")
    with pytest.raises(DataError, match="not a whole multiple"):
        cat.load(["BTC/USDT"], "90m", exchange="binance")
    with pytest.raises(DataError, match="finer"):
        cat.load(["BTC/USDT"], "1m", exchange="binance")
    with pytest.raises(DataError, match="multiple"):
        resample_arrays(np.array([0]), *[np.ones(1)] * 5, base="1h", timeframe="90m")


def test_stored_timeframe_is_read_as_stored(cat: Catalog) -> None:
    hourly = candles(24, step=HOUR, seed=4)
    minute = candles(120, seed=5)
    cat.write(hourly, "binance", "BTC/USDT", "1h")
    cat.write(minute, "binance", "BTC/USDT", "1m", max_jump=10.0)
    got = cat.load_frame("binance", "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(got, hourly)
    # 4h: the 1h series covers the day, the 1m series only two hours
    assert cat.load(["BTC/USDT"], "4h", exchange="binance").meta["base_timeframe"] == {
        "BTC/USDT": "1h"
    }
    # 2h over the first two hours: both cover it, the finer one is used
    two = cat.load(["BTC/USDT"], "2h", start=T0, end=T0 + 2 * HOUR, exchange="binance")
    assert two.meta["base_timeframe"] == {"BTC/USDT": "1m"}
    assert two.close[0, 0] == minute.close.iloc[119]


def test_weekly_buckets_open_on_monday(cat: Catalog) -> None:
    cat.write(candles(22, step=DAY), "binance", "BTC/USDT", "1d")  # Sun 2023-01-01 .. 01-22
    weeks = cat.load_frame("binance", "BTC/USDT", "1w")
    monday = T0 + DAY
    # Sunday Jan 1 is the last day of the week opened Mon Dec 26; Jan 22 closes week 3
    assert weeks.time.tolist() == [monday - 7 * DAY, monday, monday + 7 * DAY, monday + 14 * DAY]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=400),
    per=st.sampled_from([2, 3, 5, 15, 60]),
    seed=st.integers(min_value=0, max_value=2**16),
    holes=st.lists(st.integers(min_value=0, max_value=399), max_size=30),
)
def test_numpy_resample_matches_groupby(n, per, seed, holes) -> None:
    df = candles(n, seed=seed)
    df = df[~df.index.isin(holes)]
    if df.empty:
        return
    out = resample_arrays(
        df.time.to_numpy(),
        df.open.to_numpy(),
        df.high.to_numpy(),
        df.low.to_numpy(),
        df.close.to_numpy(),
        df.volume.to_numpy(),
        "1m",
        f"{per}m",
    )
    ref = pandas_reference(df, per * MIN)
    if df.time.iloc[-1] + MIN < ref.index[-1] + per * MIN:
        ref = ref.iloc[:-1]
    assert out["time"].tolist() == ref.index.tolist()
    np.testing.assert_array_equal(out["high"], ref.high.to_numpy())
    np.testing.assert_array_equal(out["close"], ref.close.to_numpy())
    np.testing.assert_allclose(out["fill"], ref.n.to_numpy() / per)
    assert (out["high"] >= np.maximum(out["open"], out["close"])).all()


def test_resample_bars_matches_catalog_derivation(cat: Catalog) -> None:
    cat.write(candles(300, seed=1), "binance", "BTC/USDT", "1m")
    cat.write(candles(250, start=T0 + 20 * MIN, seed=2), "binance", "ETH/USDT", "1m")
    fine = cat.load(["BTC/USDT", "ETH/USDT"], "1m", exchange="binance")
    mem = resample_bars(fine, "15m")
    disk = cat.load(["BTC/USDT", "ETH/USDT"], "15m", exchange="binance")
    np.testing.assert_array_equal(mem.time, disk.time)
    np.testing.assert_array_equal(mem.close, disk.close)
    np.testing.assert_array_equal(mem.open, disk.open)
    np.testing.assert_allclose(mem.volume, disk.volume, rtol=1e-12)


def _bars(tf: str, time: np.ndarray, close: np.ndarray) -> Bars:
    c = close.reshape(-1, 1).astype(float)
    return Bars(tf, ("BTC/USDT",), time.astype(np.int64), c, c, c, c, np.ones_like(c))


def test_asof_join_hour_visible_exactly_at_its_close() -> None:
    fine_t = T0 + np.arange(180, dtype=np.int64) * MIN
    fine = _bars("1m", fine_t, np.arange(180.0))
    coarse = _bars("1h", T0 + np.arange(3, dtype=np.int64) * HOUR, np.array([10.0, 20.0, 30.0]))
    j = asof_join(fine, coarse)
    # the 1m bar opened 00:58 closes 00:59: no hour closed yet
    assert np.isnan(j["close"][58, 0]) and j["index"][58] == -1
    # the 1m bar opened 00:59 closes 01:00, together with the 00:00 hour
    assert j["close"][59, 0] == 10.0 and j["time"][59] == T0
    assert j["close"][118, 0] == 10.0 and j["close"][119, 0] == 20.0
    # never a coarse candle that closes after the fine bar closes
    closes = np.where(j["index"] >= 0, j["time"] + HOUR, -1)
    assert (closes <= fine.close_time).all()


def test_asof_join_on_catalog_data_never_sees_the_future(cat: Catalog) -> None:
    cat.write(candles(600, seed=6), "binance", "BTC/USDT", "1m")
    fine = cat.load(["BTC/USDT"], "1m", exchange="binance")
    coarse = cat.load(["BTC/USDT"], "1h", exchange="binance")
    j = asof_join(fine, coarse, fields=("close",))
    for i in range(fine.n):
        closed = fine.time[: i + 1]
        k = j["index"][i]
        if k < 0:
            assert fine.close_time[i] < coarse.close_time[0]
            continue
        # the visible 1h close equals the close of the last 1m candle of that hour
        last_minute = coarse.time[k] + HOUR - MIN
        assert last_minute in closed
        assert j["close"][i, 0] == fine.close[np.searchsorted(fine.time, last_minute), 0]


def test_asof_join_refuses_swapped_or_mismatched_inputs() -> None:
    t = T0 + np.arange(3, dtype=np.int64) * HOUR
    h = _bars("1h", t, np.ones(3))
    m = _bars("1m", T0 + np.arange(3, dtype=np.int64) * MIN, np.ones(3))
    with pytest.raises(DataError, match="coarser"):
        asof_join(h, m)
    other = Bars("1h", ("ETH/USDT",), h.time, h.open, h.high, h.low, h.close, h.volume)
    with pytest.raises(DataError, match="same symbols"):
        asof_join(m, other)


@pytest.mark.parametrize("coarse_tf", ["2h", "4h"])
def test_jesse_bars_equal_nic_1h_resampled(cat: Catalog, shared_datasets, coarse_tf) -> None:
    import pyarrow.parquet as pq

    nic = pq.read_table(shared_datasets / "nic_tradingstrategyga" / "BTC_USDT-1h.parquet")
    nic = nic.to_pandas().rename(columns={"timestamp": "time"})
    # the 4 zero-volume placeholder hours lie outside the jesse ranges; repair drops them
    report = cat.write(nic, "binance", "BTC/USDT", "1h", repair=True, origin="nic 1h")
    assert report.rows_written == len(nic) - 4
    jesse = pq.read_table(shared_datasets / "jesse" / f"BTC_USDT-{coarse_tf}.parquet")
    jesse = jesse.to_pandas().rename(columns={"timestamp": "time"})
    got = cat.load_frame(
        "binance",
        "BTC/USDT",
        coarse_tf,
        start=int(jesse.time.iloc[0]),
        end=int(jesse.time.iloc[-1]) + 1,
    )
    assert len(got) == len(jesse) == {"2h": 240, "4h": 209}[coarse_tf]
    np.testing.assert_array_equal(got.time.to_numpy(), jesse.time.to_numpy())
    for c in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(got[c].to_numpy(), jesse[c].to_numpy(), rtol=1e-12, atol=0)


@settings(max_examples=50, deadline=None)
@given(
    per=st.sampled_from([5, 15, 60]),
    n=st.integers(min_value=1, max_value=300),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_asof_join_property_latest_closed_only(per, n, seed) -> None:
    rng = np.random.default_rng(seed)
    fine_t = T0 + np.sort(rng.choice(400, size=n, replace=False)).astype(np.int64) * MIN
    coarse_all = T0 + np.arange(400 // per + 1, dtype=np.int64) * per * MIN
    coarse_t = coarse_all[rng.random(coarse_all.size) < 0.7]
    fine = _bars("1m", fine_t, rng.random(n))
    coarse = _bars(f"{per}m", coarse_t, rng.random(coarse_t.size))
    j = asof_join(fine, coarse, fields=("close",))
    coarse_close = coarse_t + per * MIN
    for i in range(n):
        visible = coarse_close <= fine.close_time[i]
        if not visible.any():
            assert j["index"][i] == -1 and np.isnan(j["close"][i, 0])
        else:
            k = int(np.flatnonzero(visible)[-1])
            assert j["index"][i] == k and j["time"][i] == coarse_t[k]
            assert j["close"][i, 0] == coarse.close[k, 0]


@given(st.lists(st.lists(st.integers(-(2**40), 2**40), max_size=50), max_size=4))
def test_union_sorted_equals_unique(parts) -> None:
    arrays = [np.unique(np.array(p, dtype=np.int64)) for p in parts]
    expected = np.unique(np.concatenate(arrays)) if arrays else np.empty(0, np.int64)
    np.testing.assert_array_equal(union_sorted(arrays), expected)
