"""Exact touches and trailing-stop timing, worked out by hand.

Every level here is exactly representable (100 * 0.75 = 75.0, 120 * 0.75 = 90.0, ...), so
"touched" means equal, not merely close. Bars after the entry bar of a position with
attached exits and no pending order go through the kernel's quiet-bar test first: an exact
touch there must not be skipped as quiet.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine import bars_from, cfg, flat, signals

from engine import enums
from engine.backtest import simulate
from engine.signals import LIMIT, STOP


def held(rows, direction=1, **levels):
    """Market entry decided at bar 0 (fills at bar 1's open) with attached exit fractions."""
    s = signals(len(rows), sl=True, tp=True, trail=True)
    s.entries[0, 0] = direction
    for k, v in levels.items():
        getattr(s, k)[0, 0] = v
    return simulate(bars_from(rows), s, cfg())


def resting(rows, direction, kind, price):
    s = signals(len(rows), order_type=True, price=True)
    s.entries[0, 0] = direction
    s.order_type[0, 0] = kind
    s.price[0, 0] = price
    return simulate(bars_from(rows), s, cfg())


# --------------------------------------------------------------------------- attached exits
def test_long_stop_loss_touched_exactly_by_the_low_exits_at_the_stop():
    """Rule "stop-loss", exact touch on a quiet-path bar: low == 100 * (1 - 0.25) = 75."""
    rows = [flat(100), (100, 101, 99, 100), (90, 91, 75.0, 80), flat(80)]
    t = held(rows, sl=0.25).trades.iloc[0]
    assert t["exit_reason"] == "stop_loss" and t["exit_bar"] == 2
    assert t["exit_price"] == 75.0 and t["pnl"] == pytest.approx(75 - 100)


def test_long_stop_loss_one_tick_away_is_not_hit():
    rows = [flat(100), (100, 101, 99, 100), (90, 91, 75.01, 80), flat(80)]
    t = held(rows, sl=0.25).trades.iloc[0]
    assert t["exit_reason"] == "end"


def test_long_stop_loss_equal_to_the_open_fills_at_the_open():
    """Rule "stop-loss at the open": open == level is a gap fill (at the same price)."""
    rows = [flat(100), (100, 101, 99, 100), (75.0, 76, 70, 71), flat(71)]
    t = held(rows, sl=0.25).trades.iloc[0]
    assert t["exit_bar"] == 2 and t["exit_price"] == 75.0


def test_short_stop_loss_touched_exactly_by_the_high():
    """Rule "stop-loss", short: high == 100 * (1 + 0.25) = 125."""
    rows = [flat(100), (100, 101, 99, 100), (110, 125.0, 109, 120), flat(120)]
    t = held(rows, direction=-1, sl=0.25).trades.iloc[0]
    assert t["exit_reason"] == "stop_loss" and t["exit_bar"] == 2
    assert t["exit_price"] == 125.0 and t["pnl"] == pytest.approx(100 - 125)


def test_take_profits_touched_exactly():
    """Rule "take-profit": long high == 125, short low == 75, filled at the target."""
    rows = [flat(100), (100, 101, 99, 100), (110, 125.0, 109, 120), flat(120)]
    t = held(rows, tp=0.25).trades.iloc[0]
    assert t["exit_reason"] == "take_profit" and t["exit_price"] == 125.0
    rows = [flat(100), (100, 101, 99, 100), (90, 91, 75.0, 80), flat(80)]
    t = held(rows, direction=-1, tp=0.25).trades.iloc[0]
    assert t["exit_reason"] == "take_profit" and t["exit_price"] == 75.0
    assert t["pnl"] == pytest.approx(100 - 75)


def test_exact_touch_of_stop_and_target_in_one_bar_takes_the_stop():
    """Pessimistic rule with both levels touched exactly: low == 75, high == 125."""
    rows = [flat(100), (100, 101, 99, 100), (100, 125.0, 75.0, 100), flat(100)]
    t = held(rows, sl=0.25, tp=0.25).trades.iloc[0]
    assert t["exit_reason"] == "stop_loss" and t["exit_price"] == 75.0


def test_trailing_stop_moves_only_with_later_extremes_after_each_check():
    """Rule "trailing stop": the reference is raised by a bar's high after its stop check.

    Long from 100, trail 25 %: level 75; bar 1 high 120 -> 90 for bar 2; bar 2 high 128
    -> 96 for bar 3; bar 3's low 100 is above 96 (raising first with its high 140 would give
    105 and stop it out); after it, level 140 * 0.75 = 105; bar 4's low touches 105 exactly.
    """
    rows = [
        flat(100),
        (100, 120, 99.5, 118),
        (118, 128, 97, 127),
        (130, 140, 100, 138),
        (137, 138, 105.0, 106),
        flat(106),
    ]
    t = held(rows, trail=0.25).trades.iloc[0]
    assert t["exit_reason"] == "trailing_stop" and t["exit_bar"] == 4
    assert t["exit_price"] == 105.0


def test_short_trailing_stop_moves_only_with_later_lows_after_each_check():
    """Rule "trailing stop", short from 100, trail 25 %: level 125; bar 1 low 80 -> 100;
    bar 2's high 99 stays below 100 (its own low 76 only counts afterwards: 95); bar 3's
    high touches 95 exactly."""
    rows = [flat(100), (100, 101, 80, 82), (84, 99, 76, 85), (90, 95.0, 89, 94), flat(94)]
    t = held(rows, direction=-1, trail=0.25).trades.iloc[0]
    assert t["exit_reason"] == "trailing_stop" and t["exit_bar"] == 3
    assert t["exit_price"] == 95.0 and t["pnl"] == pytest.approx(100 - 95)


def test_trailing_reference_of_a_position_opened_inside_a_bar_uses_that_bars_close():
    """Rule "trailing stop", position filled inside a bar: its best moves with the close.

    Limit buy 98 fills inside bar 1 (high 104, close 101), trail 25 %: after bar 1 the
    level is 101 * 0.75 = 75.75 (the high would give 78); bar 2's low 76 does not reach it;
    bar 3's low touches 75.75 exactly.
    """
    rows = [flat(100), (100, 104, 97, 101), (100, 101, 76, 77), (77, 78, 75.75, 76), flat(76)]
    s = signals(len(rows), order_type=True, price=True, trail=True)
    s.entries[0, 0] = 1
    s.order_type[0, 0] = LIMIT
    s.price[0, 0] = 98.0
    s.trail[0, 0] = 0.25
    t = simulate(bars_from(rows), s, cfg()).trades.iloc[0]
    assert t["entry_price"] == 98.0 and t["entry_bar"] == 1
    assert t["exit_reason"] == "trailing_stop" and t["exit_bar"] == 3
    assert t["exit_price"] == 75.75


# --------------------------------------------------------------------------- resting entries
def test_limit_buy_touched_exactly_by_the_low_fills_at_the_limit():
    """Rule "limit in bar": low == limit fills, maker, at the limit."""
    f = resting([flat(100), (100, 101, 98.0, 99), flat(99)], 1, LIMIT, 98.0).records.fills[0]
    assert f["bar"] == 1 and f["price"] == 98.0 and f["kind"] == enums.KIND_LIMIT


def test_limit_sell_touched_exactly_by_the_high_fills_at_the_limit():
    f = resting([flat(100), (100, 102.0, 99, 101), flat(101)], -1, LIMIT, 102.0).records.fills[0]
    assert f["side"] == -1 and f["price"] == 102.0


def test_stop_buy_touched_exactly_by_the_high_fills_at_the_stop():
    """Rule "stop in bar": high == stop fills at the stop."""
    f = resting([flat(100), (100, 103.0, 99, 102), flat(102)], 1, STOP, 103.0).records.fills[0]
    assert f["price"] == 103.0 and f["kind"] == enums.KIND_STOP


def test_stop_sell_touched_exactly_by_the_low_fills_at_the_stop():
    f = resting([flat(100), (100, 101, 97.0, 98), flat(98)], -1, STOP, 97.0).records.fills[0]
    assert f["side"] == -1 and f["price"] == 97.0


def test_resting_limit_touched_exactly_after_quiet_bars():
    """Rule "limit in bar": two quiet bars age the order, the third touches 98 exactly."""
    rows = [flat(100), (100, 101, 98.5, 99), (99, 100, 98.01, 99), (99, 99.5, 98.0, 99), flat(99)]
    f = resting(rows, 1, LIMIT, 98.0).records.fills[0]
    assert f["bar"] == 3 and f["price"] == 98.0


def test_limit_equal_to_the_open_fills_at_the_open():
    """Rule "limit at open": open == limit is marketable."""
    f = resting([flat(100), (98.0, 99, 97, 98.5), flat(98)], 1, LIMIT, 98.0).records.fills[0]
    assert f["bar"] == 1 and f["price"] == 98.0


def test_flat_bar_at_the_level_fills_resting_and_attached_orders():
    """A bar with open == high == low == close == level: limit fills; then a stop there."""
    rows = [flat(100), flat(98.0), flat(98.0), flat(73.5), flat(73.5)]
    s = signals(len(rows), order_type=True, price=True, sl=True)
    s.entries[0, 0] = 1
    s.order_type[0, 0] = LIMIT
    s.price[0, 0] = 98.0
    s.sl[0, 0] = 0.25  # 98 * 0.75 = 73.5
    res = simulate(bars_from(rows), s, cfg())
    f = res.records.fills
    assert list(f["price"][:2]) == [98.0, 73.5] and list(f["bar"][:2]) == [1, 3]
    assert res.trades["exit_reason"].iloc[0] == "stop_loss"
    np.testing.assert_allclose(res.records.equity, [1000, 1000, 1000, 1000 - 24.5, 1000 - 24.5])


def test_resting_limit_waits_across_an_outage_and_ttl_counts_its_symbols_bars():
    """Rule "timing": a symbol without a candle skips the bar; its resting order waits, and
    ``order_ttl`` counts only bars the symbol has (bar 2 is missing: 2 bars = bars 1 and 3)."""
    nan4 = (np.nan,) * 4
    rows = [flat(100), (100, 101, 99, 100), nan4, (99, 100, 97, 99), flat(99)]
    s = signals(len(rows), order_type=True, price=True)
    s.entries[0, 0] = 1
    s.order_type[0, 0] = LIMIT
    s.price[0, 0] = 98.0
    res = simulate(bars_from(rows), s, cfg(order_ttl=2))
    f = res.records.fills[0]
    assert f["bar"] == 3 and f["price"] == 98.0
    res = simulate(bars_from(rows), s, cfg(order_ttl=1))  # active on bar 1 only
    assert len(res.records.fills) == 0


# ---------------------------------------------------------- equality at the open, ttl ageing
def test_open_exactly_at_the_stop_is_a_gap_processed_before_resting_entries():
    """Rule "order of events": an open equal to a long's stop (100 * 0.75 = 75) is a gap
    through it, handled at the open before a resting short entry gapped at the same open.
    The long leaves as a stop-loss (taker), then the stop sell at 75 opens a short at the
    open. Were the open not a gap for the stop, the stop sell would reverse the long
    instead (exit reason "reverse")."""
    rows = [flat(100), (100, 101, 99, 100), flat(100), (75.0, 76, 74, 75), flat(75)]
    s = signals(len(rows), sl=True, order_type=True, price=True)
    s.entries[0, 0] = 1
    s.sl[0, 0] = 0.25
    s.entries[1, 0] = -1  # a stop sell (short entry) at 75, resting from bar 2
    s.order_type[1, 0] = STOP
    s.price[1, 0] = 75.0
    res = simulate(bars_from(rows), s, cfg())
    t = res.trades
    assert list(t["exit_reason"]) == ["stop_loss", "end"]
    assert t["exit_bar"].iloc[0] == 3 and t["exit_price"].iloc[0] == 75.0
    assert t["direction"].iloc[1] == "short" and t["entry_price"].iloc[1] == 75.0


def test_open_exactly_at_the_take_profit_is_a_taker_fill_at_the_open():
    """Rule "costs": a take-profit the open reaches (open == 100 * 1.25 = 125) is marketable
    at the open: taker fee (1 %), never filled below the target. A touch inside the bar
    would be a maker fill (0 % here)."""
    rows = [flat(100), (100, 101, 99, 100), (125.0, 126, 124, 125), flat(125)]
    s = signals(len(rows), tp=True)
    s.entries[0, 0] = 1
    s.tp[0, 0] = 0.25
    res = simulate(bars_from(rows), s, cfg(fee_taker=0.01, fee_maker=0.0))
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "take_profit" and t["exit_bar"] == 2
    assert t["exit_price"] == 125.0
    # entry at 100 (taker 1 % = 1.00) + exit at 125 (taker 1 % = 1.25)
    assert t["fees"] == pytest.approx(1.00 + 1.25)


def test_order_ttl_counts_a_bar_where_something_else_happened():
    """Rule "order_ttl": a resting entry ages on every bar of its symbol, also on a bar where
    a market exit filled at the open. Bar 2: the long exits at the open, the limit buy at 90
    (ttl 1) is not reached (low 95) and expires; bar 3's low of 85 must not fill it."""
    rows = [flat(100), (100, 101, 99, 100), (100, 101, 95, 100), (90, 91, 85, 88), flat(88)]
    s = signals(len(rows), order_type=True, price=True)
    s.entries[0, 0] = 1
    s.exits[1, 0] = True
    s.entries[1, 0] = 1  # after the exit: a new limit buy at 90
    s.order_type[1, 0] = LIMIT
    s.price[1, 0] = 90.0
    res = simulate(bars_from(rows), s, cfg(order_ttl=1))
    assert list(res.fills["bar"]) == [1, 2]
    assert list(res.trades["exit_reason"]) == ["signal"]
    res = simulate(bars_from(rows), s, cfg(order_ttl=2))  # active on bars 2 and 3
    # filled at 90 on bar 3, closed at the end of data (bar 4)
    assert list(res.fills["bar"]) == [1, 2, 3, 4] and res.fills["price"].iloc[2] == 90.0
