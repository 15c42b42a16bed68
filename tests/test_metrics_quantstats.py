"""Our return metrics agree with QuantStats on the same daily returns.

QuantStats defaults to 252 periods a year; crypto trades every day, so every call
passes ``periods=365``. Its CAGR measures years as ``count / periods`` (not calendar
time) — ours does the same. Its Sortino divides the downside sum of squares by the
count of *all* returns (Red Rock definition) — ours too. Its max drawdown adds a
baseline of 1.0 before the first return, like our initial-cash peak.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from engine import metrics as M

qs_stats = pytest.importorskip("quantstats.stats")

N = 400
IDX = pd.date_range("2023-01-01", periods=N, freq="D")


def _cases() -> dict[str, pd.Series]:
    rng = np.random.default_rng(20230101)
    crash = np.r_[
        rng.normal(0.002, 0.01, 100),
        -0.55,
        rng.normal(-0.01, 0.03, 100),
        rng.normal(0.01, 0.01, 199),
    ]
    sparse = np.where(rng.random(N) < 0.1, rng.normal(0.0, 0.05, N), 0.0)
    return {
        "gaussian": pd.Series(rng.normal(0.001, 0.02, N), IDX),
        "fat_tails": pd.Series(rng.standard_t(3, N) * 0.01, IDX),
        "big_drawdown": pd.Series(crash, IDX),
        "mostly_flat": pd.Series(sparse, IDX),
        "losing": pd.Series(rng.normal(-0.003, 0.015, N), IDX),
    }


CASES = _cases()


def _same(a: float, b: float) -> None:
    if math.isnan(b):
        assert math.isnan(a)
    else:
        assert a == pytest.approx(float(b), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_agrees_with_quantstats(name: str) -> None:
    r = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _same(M.sharpe(r), qs_stats.sharpe(r, rf=0.0, periods=365))
        _same(M.sortino(r), qs_stats.sortino(r, rf=0.0, periods=365))
        _same(M.cagr(r), qs_stats.cagr(r, periods=365))
        _same(M.volatility(r), qs_stats.volatility(r, periods=365))
        _same(M.max_drawdown(r).depth, qs_stats.max_drawdown(r))
        _same(M.calmar(r), qs_stats.calmar(r, periods=365))
        _same(M.total_return(r), qs_stats.comp(r))


def test_flat_series_agrees_with_quantstats() -> None:
    r = pd.Series(np.zeros(N), IDX)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert M.max_drawdown(r).depth == qs_stats.max_drawdown(r) == 0.0
        assert M.cagr(r) == qs_stats.cagr(r, periods=365) == 0.0
        assert M.volatility(r) == qs_stats.volatility(r, periods=365) == 0.0
        # zero dispersion: both give no ratio at all
        assert math.isnan(M.sharpe(r)) and not math.isfinite(qs_stats.sharpe(r, periods=365))
        assert math.isnan(M.sortino(r)) and math.isnan(qs_stats.sortino(r, periods=365))


def test_big_drawdown_dates_agree_with_quantstats_details() -> None:
    r = CASES["big_drawdown"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        details = qs_stats.drawdown_details(qs_stats.to_drawdown_series(r))
    worst = details.sort_values("max drawdown").iloc[0]
    dd = M.max_drawdown(r)
    assert dd.depth * 100 == pytest.approx(worst["max drawdown"], rel=1e-9)
    # quantstats' "start" is the first day under water: the day after our peak day
    assert pd.Timestamp(worst["start"]) == dd.peak + pd.Timedelta(days=1)
    assert pd.Timestamp(worst["valley"]) == dd.trough
    # quantstats' "end" is the last day under water; our recovery is the first day back
    assert dd.recovery is not None
    assert pd.Timestamp(worst["end"]) == dd.recovery - pd.Timedelta(days=1)


def test_daily_returns_of_an_equity_curve_feed_quantstats_identically() -> None:
    # minute equity -> daily returns -> both libraries: Sharpe from the curve matches
    rng = np.random.default_rng(7)
    n = 30 * 1440
    idx = pd.date_range("2023-01-01 00:01", periods=n, freq="1min", tz="UTC")
    eq = pd.Series(10_000 * np.cumprod(1 + rng.normal(0, 5e-4, n)), idx)
    m = M.compute_metrics(eq, None, initial=10_000.0)
    rets = M.daily_returns(eq, 10_000.0)
    assert len(rets) == 30
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _same(m.sharpe, qs_stats.sharpe(rets, periods=365))
        _same(m.max_drawdown.depth, qs_stats.max_drawdown(rets))
        _same(m.total_return, qs_stats.comp(rets))
