"""Speed of indicators, strategy signals, the look-ahead check and model features.

Run with ``pytest benchmarks/bench_features.py --benchmark-enable`` (the test suite's
addopts disable benchmarks). Sizes follow the default backtest: two symbols, two years
of 1m candles (~1.05 M rows), or the same span at 5m. Data is a seeded random walk
built here; numba kernels are compiled (or loaded from cache) before timing starts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets import indicators as ind
from datasets.bars import Bars, MultiBars
from datasets.features import feature_matrix, window_tensor
from strategies import registry
from strategies.lookahead import check_lookahead

T0 = 1_672_531_200_000  # 2023-01-01 UTC
TWO_YEARS_1M = 2 * 365 * 24 * 60


def walk_bars(n: int, timeframe: str, step_ms: int, seed: int) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 8e-4, (n, 2)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]])
    wick = rng.uniform(0.0, 5e-4, (2, n, 2))
    return Bars(
        timeframe,
        ("BTC/USDT", "ETH/USDT"),
        T0 + np.arange(n, dtype=np.int64) * step_ms,
        np.ascontiguousarray(open_),
        np.maximum(open_, close) * (1 + wick[0]),
        np.minimum(open_, close) * (1 - wick[1]),
        close,
        rng.uniform(1.0, 10.0, (n, 2)),
    )


def resample(bars: Bars, timeframe: str, step_ms: int) -> Bars:
    key = bars.time - bars.time % step_ms
    keep_last = key + step_ms <= bars.close_time[-1]
    frames = {}
    for name, how in (("open", "first"), ("high", "max"), ("low", "min"), ("close", "last")):
        frames[name] = pd.DataFrame(getattr(bars, name)).groupby(key).agg(how)
    frames["volume"] = pd.DataFrame(bars.volume).groupby(key).sum()
    idx = frames["close"].index.to_numpy(np.int64)
    ok = np.isin(idx, key[keep_last])
    return Bars(
        timeframe,
        bars.symbols,
        idx[ok],
        *(np.ascontiguousarray(frames[f].to_numpy()[ok]) for f in frames),
    )


@pytest.fixture(scope="module", name="m1")
def fixture_m1() -> MultiBars:
    return MultiBars("1m", {"1m": walk_bars(TWO_YEARS_1M, "1m", 60_000, seed=1)})


@pytest.fixture(scope="module", name="m5")
def fixture_m5() -> MultiBars:
    base = walk_bars(TWO_YEARS_1M // 5, "5m", 300_000, seed=2)
    return MultiBars(
        "5m",
        {
            "5m": base,
            "1h": resample(base, "1h", 3_600_000),
            "4h": resample(base, "4h", 14_400_000),
        },
    )


@pytest.fixture(scope="module", autouse=True)
def fixture_compile() -> None:
    x = np.linspace(1.0, 2.0, 64).reshape(32, 2)
    ind.sma(x, 3), ind.ema(x, 3), ind.rsi(x, 3), ind.atr(x, x, x, 3), ind.bollinger(x, 3)
    ind.volume_zscore(x, 3)


def test_indicators_two_years_1m(benchmark, m1: MultiBars) -> None:
    b = m1.bars

    def run() -> None:
        ind.sma(b.close, 50)
        ind.ema(b.close, 50)
        ind.rsi(b.close, 14)
        ind.atr(b.high, b.low, b.close, 14)

    benchmark(run)


def test_sma_cross_signals_two_years_1m(benchmark, m1: MultiBars) -> None:
    s = registry.create("sma_cross")
    sig = benchmark(s.signals, m1)
    assert sig.entries.shape == m1.bars.close.shape


def test_mtf_trend_signals_two_years_5m(benchmark, m5: MultiBars) -> None:
    s = registry.create("mtf_trend")
    data = MultiBars("5m", {"5m": m5.bars, "1h": m5["1h"]})
    benchmark(s.signals, data)


def test_lookahead_sampled_30_days_1m(benchmark, m1: MultiBars) -> None:
    month = m1.until(int(m1.bars.time[0]) + 30 * 86_400_000)
    s = registry.create("sma_cross")
    report = benchmark(check_lookahead, s, month, 20, 0, exhaustive=False)
    assert report.ok


def test_lookahead_exhaustive_30_days_1m(benchmark, m1: MultiBars) -> None:
    month = m1.until(int(m1.bars.time[0]) + 30 * 86_400_000)
    s = registry.create("sma_cross")
    report = benchmark.pedantic(check_lookahead, (s, month), {"exhaustive": True}, rounds=3)
    assert report.ok and report.rows_checked == month.bars.n - s.warmup


def test_lookahead_exhaustive_30_days_5m_mtf(benchmark, m5: MultiBars) -> None:
    """mtf_trend (1h trend, 5m entries): every one of ~8,640 rows of 2 symbols re-decided
    from its 2,436-bar trailing window."""
    end = int(m5.bars.time[0]) + 30 * 86_400_000
    month = MultiBars("5m", {"5m": m5.bars.until(end), "1h": m5["1h"].until(end)})
    s = registry.create("mtf_trend")
    report = benchmark.pedantic(check_lookahead, (s, month), {"exhaustive": True}, rounds=3)
    assert report.ok and report.rows_checked == month.bars.n - s.warmup


def test_feature_matrix_two_years_5m_1h_4h(benchmark, m5: MultiBars) -> None:
    fm = benchmark(feature_matrix, m5, "BTC/USDT")
    assert fm.values.shape[1] == 24


def test_window_tensor_two_years_5m(benchmark, m5: MultiBars) -> None:
    fm = feature_matrix(m5, "BTC/USDT")
    win = benchmark(window_tensor, fm, 20)
    assert win.x.dtype == np.float32 and win.x.shape[1:] == (20, 24)
