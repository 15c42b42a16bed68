"""Catalog: write/merge/load round trips, multi-symbol index, coverage, errors, atomicity."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.catalog import Catalog, SeriesInfo, WriteReport
from gogo2.errors import (
    CandleValidationError,
    DataError,
    NoDataError,
    UnknownNameError,
    UserInputError,
)

MIN = 60_000
HOUR = 3_600_000
T0 = 1_672_531_200_000  # 2023-01-01 00:00 UTC


def candles(n: int, start: int = T0, step: int = MIN, seed: int = 0, price: float = 100.0):
    """A valid seeded random-walk candle frame."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.r_[price, close[:-1]][:n]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, n))
    return pd.DataFrame(
        {
            "time": start + np.arange(n, dtype=np.int64) * step,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(1.0, 5.0, n),
        }
    )


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root (lock files excluded)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(name="cat")
def fixture_cat(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "data")


def test_write_then_load_frame_round_trip(cat: Catalog) -> None:
    df = candles(500)
    report = cat.write(df, "binance", "BTC/USDT", "1m", origin="test.csv")
    assert isinstance(report, WriteReport)
    assert report.rows_written == 500 and report.rows_new == 500
    assert report.first == T0 and report.last == T0 + 499 * MIN
    assert report.changes == [] and report.gaps == []
    out = cat.load_frame("binance", "BTC/USDT", "1m")
    assert list(out.columns) == ["time", "open", "high", "low", "close", "volume"]
    assert out["time"].dtype == np.int64
    pd.testing.assert_frame_equal(out, df)


def test_layout_is_partitioned_by_year(cat: Catalog) -> None:
    # two days around new year: one file per calendar year, plus series metadata
    start = T0 - 12 * HOUR
    cat.write(candles(24, start=start, step=HOUR), "binance", "BTC/USDT", "1h")
    d = cat.root / "exchange=binance" / "symbol=BTC-USDT" / "timeframe=1h"
    assert sorted(p.name for p in d.glob("*.parquet")) == ["year=2022.parquet", "year=2023.parquet"]
    meta = json.loads((d / "_series.json").read_text())
    assert meta["source"] == "real" and meta["symbol"] == "BTC/USDT"
    assert meta["base_timeframe"] == "1h" and meta["rows"] == 24
    assert meta["files"]["year=2022.parquet"]["rows"] == 12


def test_extra_columns_are_ignored(cat: Catalog) -> None:
    df = candles(10)
    df["trades"] = 7
    cat.write(df, "binance", "BTC/USDT", "1m")
    assert list(cat.load_frame("binance", "BTC/USDT", "1m").columns) == [
        "time",
        "open",
        "high",
        "low",
        "close",
        "volume",
    ]


def test_merge_replaces_rows_at_same_time_and_counts_new(cat: Catalog) -> None:
    df = candles(100)
    cat.write(df, "binance", "BTC/USDT", "1m")
    upd = df.iloc[90:].copy()
    upd = pd.concat(
        [upd, candles(20, start=T0 + 100 * MIN, seed=5, price=float(df.close.iloc[-1]))]
    )
    upd.loc[upd.index[0], "volume"] = 999.0  # row 90 revised by the exchange
    report = cat.write(upd, "binance", "BTC/USDT", "1m")
    assert report.rows_written == 30 and report.rows_new == 20
    out = cat.load_frame("binance", "BTC/USDT", "1m")
    assert len(out) == 120
    assert out["time"].is_monotonic_increasing and out["time"].is_unique
    assert out.loc[out.time == T0 + 90 * MIN, "volume"].item() == 999.0
    assert cat.last_time("binance", "BTC/USDT", "1m") == T0 + 119 * MIN


def test_last_time_none_when_nothing_stored(cat: Catalog) -> None:
    assert cat.last_time("binance", "BTC/USDT", "1m") is None
    cat.write(candles(5), "binance", "BTC/USDT", "1m")
    assert cat.last_time("binance", "BTC/USDT", "5m") is None
    assert cat.last_time("binance", "BTC/USDT", "1m") == T0 + 4 * MIN


def test_load_range_end_is_exclusive(cat: Catalog) -> None:
    cat.write(candles(100), "binance", "BTC/USDT", "1m")
    bars = cat.load(["BTC/USDT"], "1m", start=T0 + 10 * MIN, end=T0 + 20 * MIN, exchange="binance")
    assert bars.n == 10
    assert bars.time[0] == T0 + 10 * MIN and bars.time[-1] == T0 + 19 * MIN
    frame = cat.load_frame("binance", "BTC/USDT", "1m", start=T0 + 95 * MIN)
    assert len(frame) == 5


def test_empty_range_is_refused(cat: Catalog) -> None:
    cat.write(candles(10), "binance", "BTC/USDT", "1m")
    with pytest.raises(DataError, match="not before end"):
        cat.load(["BTC/USDT"], "1m", start=T0 + 5 * MIN, end=T0 + 5 * MIN, exchange="binance")


def test_load_two_symbols_on_union_index(cat: Catalog) -> None:
    a = candles(60, seed=1)
    b = candles(40, start=T0 + 30 * MIN, seed=2, price=10.0)
    b = b[b.time != T0 + 50 * MIN]  # a gap in b
    cat.write(a, "binance", "BTC/USDT", "1m")
    cat.write(b, "binance", "ETH/USDT", "1m")
    bars = cat.load(["BTC/USDT", "ETH/USDT"], "1m", exchange="binance")
    assert bars.symbols == ("BTC/USDT", "ETH/USDT")
    assert bars.n == 70  # union of 0..59 and 30..69
    assert np.all(np.diff(bars.time) == MIN)
    assert bars.close.shape == (70, 2) and bars.close.flags["C_CONTIGUOUS"]
    assert np.isnan(bars.close[:30, 1]).all() and np.isnan(bars.close[60:, 0]).all()
    gap_row = int(np.searchsorted(bars.time, T0 + 50 * MIN))
    assert np.isnan(bars.close[gap_row, 1]) and not np.isnan(bars.close[gap_row, 0])
    np.testing.assert_array_equal(bars.close[:60, 0], a.close.to_numpy())
    eth_rows = np.isin(bars.time, b.time.to_numpy())
    np.testing.assert_array_equal(bars.volume[eth_rows, 1], b.volume.to_numpy())
    assert bars.exchange == "binance" and not bars.synthetic


def test_load_resolves_single_exchange_and_marks_synthetic(cat: Catalog) -> None:
    cat.write(candles(30), "synthetic", "BTC/USDT", "1m", source="synthetic")
    bars = cat.load(["BTC/USDT"], "1m")
    assert bars.exchange == "synthetic" and bars.synthetic
    assert cat.series_source("synthetic", "BTC/USDT") == "synthetic"
    assert cat.series_source("binance", "BTC/USDT") is None


def test_real_and_synthetic_do_not_mix(cat: Catalog) -> None:
    cat.write(candles(30), "binance", "BTC/USDT", "1m", source="real")
    with pytest.raises(DataError, match="real candles"):
        cat.write(candles(30, seed=3), "binance", "BTC/USDT", "1m", source="synthetic")
    with pytest.raises(DataError, match="source"):
        cat.write(candles(30), "binance", "ETH/USDT", "1m", source="fake")


def test_unknown_symbol_and_exchange_have_hints(cat: Catalog) -> None:
    cat.write(candles(30), "binance", "BTC/USDT", "1m")
    with pytest.raises(UnknownNameError, match="Did you mean 'BTC/USDT'"):
        cat.load(["BTC/USDC"], "1m", exchange="binance")
    with pytest.raises(UnknownNameError, match="Did you mean 'binance'"):
        cat.load(["BTC/USDT"], "1m", exchange="binanse")
    with pytest.raises(UnknownNameError):
        cat.load_frame("binance", "ETH/USDT", "1m")


def test_no_data_error_names_stored_range(cat: Catalog) -> None:
    cat.write(candles(30), "binance", "BTC/USDT", "1m")
    with pytest.raises(NoDataError, match=r"Stored: 1m 2023-01-01 00:00 \.\. 2023-01-01 00:29"):
        cat.load(["BTC/USDT"], "1m", start=T0 + HOUR, exchange="binance")
    empty = Catalog(cat.root.parent / "empty")
    with pytest.raises(NoDataError, match="data download"):
        empty.load(["BTC/USDT"], "1m")


def test_bad_keys_are_refused(cat: Catalog) -> None:
    with pytest.raises(DataError, match="BASE/QUOTE"):
        cat.write(candles(5), "binance", "BTCUSDT", "1m")
    with pytest.raises(DataError, match="exchange name"):
        cat.write(candles(5), "Bin ance", "BTC/USDT", "1m")
    with pytest.raises(UserInputError, match="bad timeframe"):
        cat.write(candles(5), "binance", "BTC/USDT", "1M")
    assert not cat.root.exists() or not any(cat.root.rglob("*.parquet"))


def test_perpetual_symbol_round_trip(cat: Catalog) -> None:
    cat.write(candles(5), "binanceusdm", "BTC/USDT:USDT", "1m")
    assert cat.symbols("binanceusdm") == ["BTC/USDT:USDT"]
    assert len(cat.load_frame("binanceusdm", "BTC/USDT:USDT", "1m")) == 5


def test_coverage_and_gaps(cat: Catalog) -> None:
    df = candles(100)
    df = df[~df.time.isin([T0 + 10 * MIN, T0 + 11 * MIN, T0 + 50 * MIN])]
    report = cat.write(df, "binance", "BTC/USDT", "1m")
    assert report.gaps == [(T0 + 9 * MIN, T0 + 12 * MIN, 2), (T0 + 49 * MIN, T0 + 51 * MIN, 1)]
    assert cat.gaps("binance", "BTC/USDT", "1m") == report.gaps
    cat.write(candles(10, seed=4), "synthetic", "ETH/USDT", "1m", source="synthetic")
    cov = cat.coverage()
    assert [(c.exchange, c.symbol) for c in cov] == [
        ("binance", "BTC/USDT"),
        ("synthetic", "ETH/USDT"),
    ]
    info = cov[0]
    assert isinstance(info, SeriesInfo)
    assert (info.first, info.last, info.rows) == (T0, T0 + 99 * MIN, 97)
    assert (info.gap_events, info.missing_bars, info.source, info.derived) == (
        2,
        3,
        "real",
        False,
    )
    assert cov[1].source == "synthetic"
    assert [c.symbol for c in cat.coverage(exchange="synthetic")] == ["ETH/USDT"]
    assert cat.coverage(symbol="XRP/USDT") == []


def test_gap_across_year_boundary_is_counted(cat: Catalog) -> None:
    a = candles(3, start=T0 - 5 * HOUR, step=HOUR)
    b = candles(3, start=T0 + 2 * HOUR, step=HOUR, price=float(a.close.iloc[-1]))
    cat.write(pd.concat([a, b]), "binance", "BTC/USDT", "1h")
    assert cat.gaps("binance", "BTC/USDT", "1h") == [(T0 - 3 * HOUR, T0 + 2 * HOUR, 4)]


def test_refused_validation_stores_nothing(cat: Catalog) -> None:
    cat.write(candles(50), "binance", "BTC/USDT", "1m")
    before = tree_digest(cat.root)
    bad = candles(20, start=T0 + 50 * MIN, seed=9)
    bad.loc[3, "volume"] = 0.0
    bad.loc[7, "high"] = bad.loc[7, "low"] / 2
    with pytest.raises(CandleValidationError) as err:
        cat.write(bad, "binance", "BTC/USDT", "1m", origin="dl/BTC.csv")
    msg = str(err.value)
    assert "dl/BTC.csv" in msg and "2 bad candle row(s)" in msg
    assert "2023-01-01 00:53" in msg and "--repair" in msg
    assert tree_digest(cat.root) == before
    # a new series refused: no directory with data appears
    with pytest.raises(CandleValidationError):
        cat.write(bad, "binance", "ETH/USDT", "1m")
    assert not list(cat.root.glob("exchange=binance/symbol=ETH-USDT/**/*.parquet"))


def test_repair_drops_and_reports(cat: Catalog) -> None:
    bad = candles(30)
    bad.loc[5, "volume"] = 0.0
    bad = pd.concat([bad, bad.iloc[[10]]])  # a duplicate
    report = cat.write(bad, "binance", "BTC/USDT", "1m", repair=True)
    assert report.rows_written == 29
    assert any("zero-volume" in c for c in report.changes)
    assert any("duplicate" in c for c in report.changes)
    assert report.gaps == [(T0 + 4 * MIN, T0 + 6 * MIN, 1)]


def test_direct_write_uses_the_timeframe_jump_threshold(cat: Catalog) -> None:
    """Catalog.write without a threshold applies the per-timeframe default, like the CLI:
    a +60 % day is accepted on 1d (threshold 1.0) and refused on 1h (threshold 0.5)."""
    day = 86_400_000
    for tf, step, ok in (("1d", day, True), ("1h", 3_600_000, False)):
        df = candles(4, step=step, price=100.0)
        df.loc[2, ["open", "close"]] = [df.close[1], df.close[1] * 1.6]
        df.loc[2, "high"] = df.close[2] * 1.001
        df.loc[2, "low"] = df.open[2] * 0.999
        df.loc[3, ["open", "close"]] = [df.close[2], df.close[2]]
        df.loc[3, "high"] = df.close[2] * 1.001
        df.loc[3, "low"] = df.close[2] * 0.999
        if ok:
            assert cat.write(df, "binance", "BTC/USDT", tf).rows_written == 4
        else:
            with pytest.raises(DataError, match="--max-jump"):
                cat.write(df, "binance", "BTC/USDT", tf)


def test_seam_jump_message_says_how_to_accept_a_real_move(cat: Catalog) -> None:
    cat.write(candles(20, price=100.0), "binance", "BTC/USDT", "1m")
    other = candles(20, start=T0 + 20 * MIN, price=3000.0)
    with pytest.raises(DataError, match=r"pass --max-jump \d+\.\d\d \(or set data\.max_jump\)"):
        cat.write(other, "binance", "BTC/USDT", "1m")


def test_seam_jump_against_stored_data_is_refused(cat: Catalog) -> None:
    cat.write(candles(20, price=100.0), "binance", "BTC/USDT", "1m")
    other = candles(20, start=T0 + 20 * MIN, price=3000.0)  # ETH candles by mistake
    before = tree_digest(cat.root)
    with pytest.raises(DataError, match="differs by"):
        cat.write(other, "binance", "BTC/USDT", "1m")
    assert tree_digest(cat.root) == before
    # the neighbour after the new rows, in the next year's file, is checked too
    cat.write(candles(3, start=T0 + 365 * 86_400_000, price=100.0), "binance", "BTC/USDT", "1m")
    before = tree_digest(cat.root)
    last_2023 = candles(1, start=T0 + 365 * 86_400_000 - MIN, price=10.0)
    with pytest.raises(DataError, match="stored candle next to it at 2024-01-01 00:00"):
        cat.write(last_2023, "binance", "BTC/USDT", "1m")
    assert tree_digest(cat.root) == before


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])  # journal, 2 year files, metadata
def test_failed_swap_leaves_catalog_byte_identical(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    # stored: 2022 and 2023 files; the update touches both years plus metadata (3 swaps,
    # after the journal is written)
    cat.write(candles(48, start=T0 - 24 * HOUR, step=HOUR), "binance", "BTC/USDT", "1h")
    before = tree_digest(cat.root)
    upd = cat.load_frame("binance", "BTC/USDT", "1h").iloc[20:30].copy()
    upd["volume"] = upd["volume"] + 1.0
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="No space"):
        cat.write(upd, "binance", "BTC/USDT", "1h")
    monkeypatch.setattr(os, "replace", real_replace)
    assert tree_digest(cat.root) == before
    assert not [p for p in cat.root.rglob("*") if ".tmp-" in p.name or ".bak-" in p.name]


def test_failed_parquet_write_leaves_catalog_byte_identical(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    cat.write(candles(48, start=T0 - 24 * HOUR, step=HOUR), "binance", "BTC/USDT", "1h")
    before = tree_digest(cat.root)
    real_write = pq.write_table
    calls = {"n": 0}

    def flaky_write(table, where, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the first year file is already written as a temp
            raise OSError(5, "I/O error")
        return real_write(table, where, **kw)

    monkeypatch.setattr(pq, "write_table", flaky_write)
    upd = cat.load_frame("binance", "BTC/USDT", "1h").iloc[20:30].copy()
    upd["volume"] += 1.0
    with pytest.raises(OSError, match="I/O"):
        cat.write(upd, "binance", "BTC/USDT", "1h")
    assert tree_digest(cat.root) == before


def test_failed_first_write_leaves_no_series_behind(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    cat.write(candles(5), "binance", "BTC/USDT", "1m")
    before = tree_digest(cat.root)

    def broken(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError):
        cat.write(candles(5), "kraken", "ETH/USDT", "1m")
    assert tree_digest(cat.root) == before
    assert not (cat.root / "exchange=kraken").exists()
    assert cat.exchanges() == ["binance"]


def test_coverage_survives_lost_metadata(cat: Catalog) -> None:
    cat.write(candles(5), "binanceusdm", "BTC/USDT:USDT", "1m")
    cat.write(candles(5), "synthetic", "ETH/USDT", "1m", source="synthetic")
    (cat.series_dir("binanceusdm", "BTC/USDT:USDT", "1m") / "_series.json").unlink()
    (cat.series_dir("synthetic", "ETH/USDT", "1m") / "_series.json").unlink()
    cov = cat.coverage()
    assert [(c.symbol, c.rows, c.source) for c in cov] == [
        ("BTC/USDT:USDT", 5, "real"),
        ("ETH/USDT", 5, "synthetic"),
    ]
    # the sample still cannot be mixed with real candles
    with pytest.raises(DataError, match="synthetic candles"):
        cat.write(candles(5, start=T0 + 5 * MIN), "synthetic", "ETH/USDT", "1m")


def test_empty_input_is_a_no_op(cat: Catalog) -> None:
    report = cat.write(candles(0), "binance", "BTC/USDT", "1m")
    assert report.rows_written == 0 and report.first is None
    assert cat.last_time("binance", "BTC/USDT", "1m") is None


def test_metadata_rebuilt_when_json_missing(cat: Catalog) -> None:
    df = candles(30)
    df = df[df.time != T0 + 5 * MIN]
    cat.write(df, "binance", "BTC/USDT", "1m")
    (cat.series_dir("binance", "BTC/USDT", "1m") / "_series.json").unlink()
    assert cat.last_time("binance", "BTC/USDT", "1m") == T0 + 29 * MIN
    assert cat.gaps("binance", "BTC/USDT", "1m") == [(T0 + 4 * MIN, T0 + 6 * MIN, 1)]
    # the next write restores the metadata
    cat.write(
        candles(5, start=T0 + 30 * MIN, price=float(df.close.iloc[-1])), "binance", "BTC/USDT", "1m"
    )
    assert len(cat.coverage()) == 1 and cat.coverage()[0].rows == 34


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.tuples(st.integers(0, 299), st.integers(1, 120)), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_chunked_overlapping_writes_equal_one_write(cuts, seed) -> None:
    # 300 hourly candles across new year, written as overlapping chunks in any order
    full = candles(300, start=T0 - 150 * HOUR, step=HOUR, seed=seed)
    chunks = [full.iloc[a : a + n] for a, n in cuts] + [full]
    order = np.random.default_rng(seed).permutation(len(chunks))
    with tempfile.TemporaryDirectory() as d:
        cat = Catalog(Path(d))
        total_new = 0
        for i in order:
            total_new += cat.write(chunks[i], "binance", "BTC/USDT", "1h").rows_new
        assert total_new == 300
        out = cat.load_frame("binance", "BTC/USDT", "1h")
        pd.testing.assert_frame_equal(out, full.reset_index(drop=True))
        assert cat.coverage()[0].rows == 300 and cat.gaps("binance", "BTC/USDT", "1h") == []


def test_concurrent_writers_of_one_series_lose_nothing(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    full = candles(8 * 50, step=HOUR, seed=11)
    chunks = [full.iloc[i * 50 : (i + 1) * 50] for i in range(8)]

    def write(chunk: pd.DataFrame) -> int:
        # separate Catalog objects, as separate processes would have
        return Catalog(tmp_path / "data").write(chunk, "binance", "BTC/USDT", "1h").rows_new

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert sum(pool.map(write, chunks)) == len(full)
    out = Catalog(tmp_path / "data").load_frame("binance", "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(out, full.reset_index(drop=True))


def test_one_catalog_shared_by_reader_threads(cat: Catalog) -> None:
    from concurrent.futures import ThreadPoolExecutor

    df = candles(1920, seed=12)  # 32 whole hours
    cat.write(df, "binance", "BTC/USDT", "1m")

    def read(i: int) -> float:
        tf = ("1m", "5m", "15m", "1h")[i % 4]
        return float(cat.load(["BTC/USDT"], tf, exchange="binance").volume.sum())

    with ThreadPoolExecutor(max_workers=4) as pool:
        totals = list(pool.map(read, range(16)))
    # whole hours: every timeframe holds the same total volume
    assert totals == pytest.approx([df.volume.sum()] * 16, rel=1e-12)
