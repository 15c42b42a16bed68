"""Metrics from an equity curve and a trades frame: conventions and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import metrics as M


def minute_equity(values: list[float], start: str = "2023-01-01") -> pd.Series:
    """Equity after each 1m bar; index = close times (open + 1 minute)."""
    idx = pd.date_range(start, periods=len(values), freq="1min", tz="UTC") + pd.Timedelta("1min")
    return pd.Series(values, index=idx, dtype="float64")


def test_bar_closing_at_midnight_belongs_to_the_day_before() -> None:
    # two days of 1m bars: equity steps up on the last bar of day 1 (closing at 00:00 of day 2)
    n = 2 * 1440
    values = np.full(n, 100.0)
    values[1439:] = 110.0  # the bar opened 23:59 on day 1 closes at 00:00 on day 2
    values[-1] = 121.0
    eq = minute_equity(list(values))
    days = M.daily_equity(eq)
    assert list(days.index.strftime("%Y-%m-%d")) == ["2023-01-01", "2023-01-02"]
    assert days.tolist() == [110.0, 121.0]
    rets = M.daily_returns(eq, initial=100.0)
    np.testing.assert_allclose(rets.to_numpy(), [0.10, 0.10])


def test_first_day_return_is_against_initial_cash() -> None:
    eq = minute_equity([90.0, 95.0])
    rets = M.daily_returns(eq, initial=100.0)
    assert rets.iloc[0] == pytest.approx(-0.05)


def test_day_without_bars_has_zero_return() -> None:
    idx = pd.DatetimeIndex(
        ["2023-01-01 12:00", "2023-01-03 12:00"], tz="UTC"
    )  # 2023-01-02 has no bar at all
    eq = pd.Series([110.0, 121.0], index=idx)
    rets = M.daily_returns(eq, initial=100.0)
    assert len(rets) == 3
    np.testing.assert_allclose(rets.to_numpy(), [0.1, 0.0, 0.1])


def test_drawdown_dates_and_recovery() -> None:
    idx = pd.date_range("2023-01-01", periods=6, freq="D", tz="UTC")
    # wealth: 1.1, 1.21, 0.968, 1.0648, 1.2100.., 1.3
    r = pd.Series([0.1, 0.1, -0.2, 0.1, 0.1364, 0.05], index=idx)
    dd = M.max_drawdown(r)
    assert dd.depth == pytest.approx(-0.2)
    assert dd.peak == idx[1]
    assert dd.trough == idx[2]
    assert dd.recovery == idx[4]
    assert dd.duration_days == 3


def test_drawdown_from_the_start_and_not_recovered() -> None:
    idx = pd.date_range("2023-01-01", periods=3, freq="D", tz="UTC")
    r = pd.Series([-0.1, -0.1, 0.05], index=idx)
    start = pd.Timestamp("2023-01-01", tz="UTC")
    dd = M.max_drawdown(r, start=start)
    assert dd.depth == pytest.approx(0.9 * 0.9 - 1)
    assert dd.peak == start
    assert dd.trough == idx[1]
    assert dd.recovery is None
    assert dd.duration_days is None


def test_flat_equity_has_no_ratios() -> None:
    eq = minute_equity([100.0] * 3000)
    # three days: min_days=1 lets the annualised figures through to test their zero cases
    m = M.compute_metrics(eq, None, initial=100.0, exposure=0.0, fees_paid=0.0, min_days=1)
    assert m.total_return == 0.0
    assert m.max_drawdown.depth == 0.0 and m.max_drawdown.peak is None
    assert math.isnan(m.sharpe) and math.isnan(m.sortino) and math.isnan(m.calmar)
    assert m.volatility == 0.0
    assert m.trades == 0 and math.isnan(m.win_rate) and math.isnan(m.profit_factor)


def test_trade_statistics() -> None:
    trades = pd.DataFrame(
        {
            "pnl": [30.0, -10.0, 20.0, -20.0],
            "return": [0.03, -0.01, 0.02, -0.02],
            "fees": [1.0, 1.0, 1.0, 1.0],
        }
    )
    s = M.trade_stats(trades)
    assert s["trades"] == 4
    assert s["win_rate"] == 0.5
    assert s["profit_factor"] == pytest.approx(50.0 / 30.0)
    assert s["expectancy"] == pytest.approx(5.0)
    assert s["expectancy_pct"] == pytest.approx(0.005)
    assert s["avg_win"] == 25.0 and s["avg_loss"] == -15.0
    assert s["best_trade"] == 0.03 and s["worst_trade"] == -0.02


def test_profit_factor_without_losses_is_infinite() -> None:
    s = M.trade_stats(pd.DataFrame({"pnl": [1.0, 2.0], "return": [0.01, 0.02]}))
    assert s["profit_factor"] == math.inf
    assert s["win_rate"] == 1.0


def test_compute_metrics_fees_default_to_trades_and_bar_drawdown_is_deeper() -> None:
    # intraday dip to 80 that recovers by the end of the day: daily DD misses it, per-bar sees it
    eq = minute_equity([100.0, 80.0, 100.0, 105.0])
    trades = pd.DataFrame({"pnl": [5.0], "return": [0.05], "fees": [0.7]})
    m = M.compute_metrics(eq, trades, initial=100.0, exposure=0.5)
    assert m.fees_paid == pytest.approx(0.7)
    assert m.max_drawdown.depth == 0.0
    assert m.max_drawdown_bar == pytest.approx(-0.2)
    assert m.total_return == pytest.approx(0.05)
    assert m.exposure == 0.5


def test_summary_table_renders_every_metric() -> None:
    from rich.console import Console

    rng = np.random.default_rng(3)
    eq = minute_equity(list(100 * np.cumprod(1 + rng.normal(0, 1e-3, 5000))))
    m = M.compute_metrics(eq, pd.DataFrame({"pnl": [1.0, -2.0], "return": [0.01, -0.02]}))
    console = Console(record=True, width=120)
    M.print_summary(m, header=[("strategy", "sma_cross")], console=console, quote="USDT")
    text = console.export_text()
    for label in (
        "strategy",
        "sma_cross",
        "Sharpe",
        "Sortino",
        "Calmar",
        "CAGR",
        "max drawdown",
        "win rate",
        "profit factor",
        "mean P&L per trade",
        "mean return per trade",
        "exposure",
        "fees paid",
    ):
        assert label in text
    assert "n/a" in text  # exposure was not given


def test_equity_needs_a_datetime_index() -> None:
    with pytest.raises(TypeError):
        M.daily_returns(pd.Series([1.0, 2.0]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=2, max_size=60))
def test_properties_of_daily_metrics(rs: list[float]) -> None:
    idx = pd.date_range("2023-01-01", periods=len(rs), freq="D", tz="UTC")
    r = pd.Series(rs, index=idx)
    dd = M.max_drawdown(r)
    wealth = np.cumprod(1 + np.asarray(rs))
    assert -1.0 <= dd.depth <= 0.0
    # the drawdown is never deeper than the worst point relative to the start
    assert dd.depth <= min(0.0, wealth.min() - 1.0) + 1e-12
    assert M.total_return(r) == pytest.approx(wealth[-1] - 1.0, abs=1e-12)
    if dd.depth < 0:
        assert dd.peak <= dd.trough
        if dd.recovery is not None:
            assert dd.recovery > dd.trough
    s = M.sortino(r)
    sh = M.sharpe(r)
    if math.isfinite(s) and math.isfinite(sh):
        assert np.sign(s) == np.sign(sh) or abs(np.mean(rs)) < 1e-15


def test_returns_after_ruin_are_zero_and_drawdown_is_total() -> None:
    eq = minute_equity([100.0] * 1440 + [0.0] * 2880)
    rets = M.daily_returns(eq, initial=100.0)
    assert rets.tolist() == [0.0, -1.0, 0.0]
    m = M.compute_metrics(eq, None, initial=100.0)
    assert m.total_return == -1.0
    assert m.max_drawdown.depth == -1.0
    assert m.max_drawdown.recovery is None


def test_a_1h_bar_closing_at_midnight_belongs_to_the_day_it_opened_in() -> None:
    # 1h bars opened 22:00 and 23:00 on Jan 1 close at 23:00 and 00:00: both belong to Jan 1;
    # the bar opened 00:00 on Jan 2 closes at 01:00 and starts Jan 2
    idx = pd.DatetimeIndex(["2023-01-01 23:00", "2023-01-02 00:00", "2023-01-02 01:00"], tz="UTC")
    eq = pd.Series([100.0, 105.0, 110.0], index=idx)
    days = M.daily_equity(eq)
    assert list(days.index.strftime("%Y-%m-%d")) == ["2023-01-01", "2023-01-02"]
    assert days.tolist() == [105.0, 110.0]


def test_short_periods_withhold_annualised_figures() -> None:
    from rich.console import Console

    rng = np.random.default_rng(9)
    n = 29 * 1440
    eq = minute_equity(list(100 * np.cumprod(1 + rng.normal(2e-5, 5e-4, n))))
    m = M.compute_metrics(eq, None, initial=100.0)
    assert m.days == 29 and m.short_period
    for name in ("cagr", "volatility", "sharpe", "sortino", "calmar"):
        assert math.isnan(getattr(m, name)), name
    assert m.as_dict()["short_period"] is True
    assert m.total_return == pytest.approx(eq.iloc[-1] / 100.0 - 1)  # not annualised: kept
    assert m.max_drawdown.depth <= 0.0
    console = Console(record=True, width=80)
    M.print_summary(m, console=console)
    text = console.export_text()
    assert text.count("n/a (period < 30 days)") == 5
    longer = minute_equity(list(100 * np.cumprod(1 + rng.normal(2e-5, 5e-4, 30 * 1440))))
    m30 = M.compute_metrics(longer, None, initial=100.0)
    assert m30.days == 30 and not m30.short_period
    assert math.isfinite(m30.sharpe) and math.isfinite(m30.cagr)


def test_summary_wording_of_drawdown_and_trade_means() -> None:
    from rich.console import Console

    idx = pd.date_range("2023-01-01 00:01", periods=3, freq="1D", tz="UTC")
    eq = pd.Series([90.0, 80.0, 85.0], index=idx)
    # a small winner and a large loser: mean P&L negative, mean return positive
    trades = pd.DataFrame({"pnl": [10.0, -50.0], "return": [0.05, -0.01], "fees": [0.0, 0.0]})
    m = M.compute_metrics(eq, trades, initial=100.0)
    rows = dict(M.summary_rows(m, quote="USDT"))
    assert rows["max DD recovered"] == "no (not yet recovered)"
    assert rows["max DD peak -> trough"] == "2023-01-01 -> 2023-01-02"
    assert rows["mean P&L per trade"] == "-20.00 USDT"
    assert rows["mean return per trade"] == "2.000 %"
    console = Console(record=True, width=80)
    M.print_summary(m, console=console, title=None)
    assert all(line == line.rstrip() for line in console.export_text().splitlines())


def test_break_even_trades_are_not_wins() -> None:
    """Rule: a win is a trade with P&L > 0. PnL [10, 0, -5]: one win in three trades."""
    s = M.trade_stats(pd.DataFrame({"pnl": [10.0, 0.0, -5.0], "return": [0.01, 0.0, -0.005]}))
    assert s["win_rate"] == pytest.approx(1 / 3)
    assert s["avg_win"] == 10.0 and s["avg_loss"] == -5.0
    assert s["profit_factor"] == pytest.approx(10.0 / 5.0)


def test_per_bar_drawdown_counts_from_the_initial_cash() -> None:
    """Equity [90, 95, 99] on 100 cash: the peak is the initial 100, so the deepest fall
    is 90 / 100 - 1 = -10 % (measured from the first bar it would be 0)."""
    eq = minute_equity([90.0, 95.0, 99.0])
    assert M.bar_max_drawdown(eq, initial=100.0) == pytest.approx(-0.10)
    m = M.compute_metrics(eq, initial=100.0)
    assert m.max_drawdown_bar == pytest.approx(-0.10)
