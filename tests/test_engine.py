"""Hand-computed cases of the event engine: every order type, exit, cost and sizing mode.

Each test builds a few bars, works the expected numbers out by arithmetic written in the
test, and compares the engine's records with them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets.bars import Bars
from engine import enums
from engine.backtest import SimConfig, simulate
from engine.signals import LIMIT, MARKET, STOP, Signals
from gogo2.errors import ConfigError, DataError, UnknownNameError, UserInputError

MIN = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % MIN

# frictionless account trading one unit unless a test says otherwise
BASE = dict(
    cash=1000.0,
    fee_taker=0.0,
    fee_maker=0.0,
    slippage_bps=0.0,
    size_type="units",
    size=1.0,
    min_notional=0.0,
    lot_size=0.0,
)


def cfg(**kw) -> SimConfig:
    return SimConfig(**{**BASE, **kw})


def bars_from(rows, symbols=("BTC/USDT",)) -> Bars:
    """``rows``: list of (open, high, low, close) per bar, or per symbol a list of such lists."""
    a = np.asarray(rows, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, None, :]
    else:
        a = a.transpose(1, 0, 2)  # (symbols, bars, 4) -> (bars, symbols, 4)
    n = a.shape[0]
    o, h, lo, c = (np.ascontiguousarray(a[:, :, k]) for k in range(4))
    return Bars("1m", tuple(symbols), T0 + np.arange(n, dtype=np.int64) * MIN, o, h, lo, c, o * 0)


def signals(n: int, m: int = 1, **arrays) -> Signals:
    entries = np.zeros((n, m), dtype=np.int8)
    exits = np.zeros((n, m), dtype=bool)
    s = Signals(entries, exits)
    for name in ("order_type", "price", "size", "sl", "tp", "trail"):
        if arrays.pop(name, False):
            fill = 0 if name == "order_type" else np.nan
            setattr(s, name, np.full((n, m), fill, dtype=np.int8 if fill == 0 else np.float64))
    assert not arrays
    return s


def flat(price: float) -> tuple[float, float, float, float]:
    return (price, price, price, price)


def one_fill(res, i=0):
    return res.records.fills[i]


# --------------------------------------------------------------------------- market orders
def test_market_entry_fills_next_open_and_exit_next_open():
    """Rules "timing", "market fills" and "accounting": decided at a close, filled at the
    next open; equity = cash + qty x close."""
    rows = [
        (100, 101, 99, 100),
        (100, 102, 99, 101),  # entry decided at this close
        (103, 106, 102, 105),  # filled at this open: 103
        (105, 107, 104, 106),  # exit decided at this close
        (108, 109, 107, 108),  # exit filled at 108
        (110, 111, 109, 110),
    ]
    s = signals(6)
    s.entries[1, 0] = 1
    s.exits[3, 0] = True
    res = simulate(bars_from(rows), s, cfg())
    f = res.records.fills
    assert list(f["bar"]) == [2, 4]
    assert list(f["price"]) == [103.0, 108.0]
    assert list(f["side"]) == [1, -1]
    assert list(f["kind"]) == [enums.KIND_MARKET, enums.KIND_EXIT]
    # equity: cash 1000 - 103 = 897 while holding 1 unit
    expected = [1000, 1000, 897 + 105, 897 + 106, 897 + 108, 897 + 108]
    np.testing.assert_allclose(res.records.equity, expected)
    np.testing.assert_allclose(res.records.positions[:, 0], [0, 0, 1, 1, 0, 0])
    t = res.trades.iloc[0]
    assert t["direction"] == "long" and t["exit_reason"] == "signal"
    assert t["pnl"] == pytest.approx(108 - 103)
    assert t["return"] == pytest.approx(5 / 103)
    assert t["entry_time"] == pd.Timestamp(T0 + 2 * MIN, unit="ms", tz="UTC")


def test_market_entry_expires_when_its_symbol_skips_the_next_bar():
    """Rule "market orders across an outage": an entry is good for the next bar only."""
    nan = np.nan
    rows = [(100, 101, 99, 100), (100, 101, 99, 100), (nan, nan, nan, nan), (104, 105, 103, 104)]
    s = signals(4)
    s.entries[1, 0] = 1  # due at bar 2, which has no candle: expires, never fills at 104
    res = simulate(bars_from(rows), s, cfg())
    assert len(res.records.fills) == 0 and res.expired == 1 and res.rejected == 0
    np.testing.assert_allclose(res.records.equity, [1000.0] * 4)


def test_market_exit_waits_for_the_next_candle_of_its_symbol():
    """Rule "market orders across an outage": an exit is not dropped, it fills after it."""
    nan = np.nan
    rows = [flat(100), (100, 101, 99, 100), (nan,) * 4, (104, 105, 103, 104), flat(104)]
    s = signals(5)
    s.entries[0, 0] = 1  # long 1 unit at the open of bar 1: 100
    s.exits[1, 0] = True  # bar 2 has no candle: the exit fills at bar 3's open, 104
    res = simulate(bars_from(rows), s, cfg())
    f = res.records.fills
    assert list(f["bar"]) == [1, 3] and list(f["kind"]) == [enums.KIND_MARKET, enums.KIND_EXIT]
    assert f["price"][1] == 104.0 and res.expired == 0
    assert res.trades["pnl"].iloc[0] == pytest.approx(104 - 100)


def test_warmup_rows_place_no_orders():
    """Rule "timing": rows before the warm-up place no orders."""
    rows = [flat(100 + i) for i in range(5)]
    s = signals(5)
    s.entries[0, 0] = 1  # inside warm-up: ignored
    s.entries[2, 0] = -1  # first row after warm-up
    res = simulate(bars_from(rows), s, cfg(), warmup=2)
    f = res.records.fills
    assert f["bar"][0] == 3 and f["side"][0] == -1 and f["price"][0] == 103.0


def test_entry_in_held_direction_is_ignored():
    """Rule "positions": one position per symbol, no pyramiding."""
    rows = [flat(100)] * 2 + [flat(101), flat(102), flat(103)]
    s = signals(5)
    s.entries[0:3, 0] = 1  # repeated long entries
    res = simulate(bars_from(rows), s, cfg())
    # one entry fill at bar 1 and the end-of-data close
    assert list(res.records.fills["kind"]) == [enums.KIND_MARKET, enums.KIND_END]


def test_reverse_closes_and_opens_at_the_same_fill():
    """Rule "reversal": an opposite entry closes and opens at the same fill."""
    rows = [flat(100), flat(100), (102, 103, 101, 102), (104, 105, 103, 104), flat(98)]
    s = signals(5)
    s.entries[1, 0] = 1  # long at 102
    s.entries[2, 0] = -1  # reverse at 104
    res = simulate(bars_from(rows), s, cfg())
    f = res.records.fills
    assert list(f["price"][:3]) == [102.0, 104.0, 104.0]
    assert list(f["side"][:3]) == [1, -1, -1]
    tr = res.trades
    assert list(tr["exit_reason"]) == ["reverse", "end"]
    assert tr["pnl"].iloc[0] == pytest.approx(104 - 102)
    # short from 104 closed at the last close 98
    assert tr["direction"].iloc[1] == "short" and tr["pnl"].iloc[1] == pytest.approx(104 - 98)
    assert res.records.equity[-1] == pytest.approx(1000 + 2 + 6)


def test_exit_and_same_direction_entry_on_one_row_close_and_reopen():
    """Rule "exit before entry": a row with both does the exit first."""
    rows = [flat(100), flat(100), flat(101), flat(102), flat(103)]
    s = signals(5)
    s.entries[0, 0] = 1
    s.exits[2, 0] = True
    s.entries[2, 0] = 1
    res = simulate(bars_from(rows), s, cfg())
    f = res.records.fills
    assert list(f["kind"]) == [
        enums.KIND_MARKET,
        enums.KIND_EXIT,
        enums.KIND_MARKET,
        enums.KIND_END,
    ]
    assert list(f["bar"]) == [1, 3, 3, 4]


def test_end_of_data_close_uses_last_close_and_taker_fee():
    """Rule "end close": last close, taker fee, no slippage, reason "end"."""
    rows = [flat(100), (100, 101, 99, 100), (110, 115, 108, 112)]
    s = signals(3)
    s.entries[0, 0] = 1
    res = simulate(bars_from(rows), s, cfg(fee_taker=0.01, slippage_bps=50))
    f = res.records.fills
    # entry at the open of bar 1 with 50 bps slippage: 100.5, clipped to high 101 -> 100.5
    assert f["price"][0] == pytest.approx(100 * 1.005)
    # end close: last close 112, no slippage, taker fee 1 %
    assert f["kind"][1] == enums.KIND_END and f["price"][1] == 112.0
    assert f["time"][1] == T0 + 3 * MIN  # close time of the last bar
    pnl = (112 - 100.5) - 100.5 * 0.01 - 112 * 0.01
    assert res.trades["pnl"].iloc[0] == pytest.approx(pnl)
    assert res.records.equity[-1] == pytest.approx(1000 + pnl)
    assert res.trades["exit_reason"].iloc[0] == "end"


# --------------------------------------------------------------------------- limit / stop
def limit_case(rows, direction, kind, price, **kw):
    s = signals(len(rows), order_type=True, price=True)
    s.entries[0, 0] = direction
    s.order_type[0, 0] = kind
    s.price[0, 0] = price
    return simulate(bars_from(rows), s, cfg(**kw))


def test_limit_buy_fills_at_limit_when_low_touches():
    """Rule "limit in bar": the low reaching the limit fills at the limit, maker."""
    res = limit_case([flat(100), (100, 101, 97, 99), flat(99)], 1, LIMIT, 98.0)
    f = one_fill(res)
    assert f["bar"] == 1 and f["price"] == 98.0 and f["kind"] == enums.KIND_LIMIT


def test_limit_buy_not_touched_does_not_fill():
    res = limit_case([flat(100), (100, 101, 98.5, 99), (99, 100, 98.01, 99)], 1, LIMIT, 98.0)
    assert len(res.records.fills) == 0 and res.trades.empty
    np.testing.assert_allclose(res.records.equity, 1000.0)


def test_limit_buy_gap_fills_at_open():
    """Rule "limit at open": an open below a buy limit fills at the open."""
    res = limit_case([flat(100), (96, 97, 95, 96), flat(96)], 1, LIMIT, 98.0)
    assert one_fill(res)["price"] == 96.0


def test_limit_sell_short_fill_and_gap():
    """Rule "limit in bar / at open", sell side."""
    res = limit_case([flat(100), (100, 103, 99, 101), flat(101)], -1, LIMIT, 102.0)
    f = one_fill(res)
    assert f["side"] == -1 and f["price"] == 102.0
    res = limit_case([flat(100), (104, 105, 103, 104), flat(104)], -1, LIMIT, 102.0)
    assert one_fill(res)["price"] == 104.0


def test_stop_buy_fills_at_stop_and_gap_at_open():
    """Rule "stop in bar / at open": high reaching the stop fills at it; a gap at the open."""
    res = limit_case([flat(100), (100, 104, 99, 103), flat(103)], 1, STOP, 103.0)
    f = one_fill(res)
    assert f["price"] == 103.0 and f["kind"] == enums.KIND_STOP
    res = limit_case([flat(100), (105, 106, 104, 105), flat(105)], 1, STOP, 103.0)
    assert one_fill(res)["price"] == 105.0
    res = limit_case([flat(100), (100, 102.9, 99, 101), flat(101)], 1, STOP, 103.0)
    assert len(res.records.fills) == 0


def test_stop_sell_fills_at_stop_and_gap_at_open():
    """Rule "stop in bar / at open", sell side."""
    res = limit_case([flat(100), (100, 101, 96, 97), flat(97)], -1, STOP, 97.0)
    assert one_fill(res)["price"] == 97.0 and one_fill(res)["side"] == -1
    res = limit_case([flat(100), (95, 96, 94, 95), flat(95)], -1, STOP, 97.0)
    assert one_fill(res)["price"] == 95.0


def test_resting_order_is_not_active_on_its_own_signal_bar():
    """Rule "timing": a resting order is active from the next bar."""
    # bar 0 touches 98, but the order is only placed at its close
    res = limit_case([(100, 101, 97, 100), (100, 101, 99, 100)], 1, LIMIT, 98.0)
    assert len(res.records.fills) == 0


def test_order_ttl_cancels_an_unfilled_limit():
    """Rule "limit/stop entries": order_ttl bars, then cancelled."""
    rows = [flat(100), (100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 97, 100)]
    res = limit_case(rows, 1, LIMIT, 98.0, order_ttl=2)  # active on bars 1 and 2 only
    assert len(res.records.fills) == 0
    res = limit_case(rows, 1, LIMIT, 98.0, order_ttl=3)
    assert one_fill(res)["bar"] == 3


def test_exit_signal_cancels_a_resting_limit():
    rows = [flat(100), (100, 101, 99, 100), (100, 101, 97, 100)]
    s = signals(3, order_type=True, price=True)
    s.entries[0, 0] = 1
    s.order_type[0, 0] = LIMIT
    s.price[0, 0] = 98.0
    s.exits[1, 0] = True
    res = simulate(bars_from(rows), s, cfg())
    assert len(res.records.fills) == 0


def test_limit_reversal_closes_with_maker_fee():
    rows = [flat(100), flat(100), (100, 106, 99, 104), flat(104)]
    s = signals(4, order_type=True, price=True)
    s.entries[0, 0] = 1  # long at 100 (market, taker 0.2 %)
    s.entries[1, 0] = -1
    s.order_type[1, 0] = LIMIT
    s.price[1, 0] = 105.0
    res = simulate(bars_from(rows), s, cfg(fee_taker=0.002, fee_maker=0.001))
    f = res.records.fills
    assert list(f["price"][:3]) == [100.0, 105.0, 105.0]
    np.testing.assert_allclose(f["fee"][:3], [100 * 0.002, 105 * 0.001, 105 * 0.001])
    assert res.trades["exit_reason"].iloc[0] == "reverse"


# --------------------------------------------------------------------------- attached exits
def exit_case(rows, direction=1, **levels):
    s = signals(len(rows), sl=True, tp=True, trail=True)
    s.entries[0, 0] = direction
    for k, v in levels.items():
        getattr(s, k)[0, 0] = v
    return simulate(bars_from(rows), s, cfg())


def test_stop_loss_touched_fills_at_level():
    """Rule "stop-loss": a touch fills at the level."""
    res = exit_case([flat(100), (100, 101, 97, 98), (98, 99, 94, 95)], sl=0.05)
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "stop_loss" and t["exit_price"] == pytest.approx(95.0)
    assert t["exit_bar"] == 2


def test_stop_loss_gap_fills_at_open():
    """Rule "stop-loss": a gap through the level fills at the open."""
    res = exit_case([flat(100), (100, 101, 97, 98), (93, 94, 92, 93)], sl=0.05)
    assert res.trades["exit_price"].iloc[0] == 93.0


def test_stop_loss_checked_on_entry_bar_after_open_fill():
    res = exit_case([flat(100), (100, 101, 94, 96)], sl=0.05)
    t = res.trades.iloc[0]
    assert t["exit_bar"] == 1 and t["exit_price"] == pytest.approx(95.0)


def test_take_profit_fills_at_level_with_maker_fee():
    """Rules "take-profit" and "costs": a touch fills at the target, maker fee."""
    rows = [flat(100), (100, 105, 99, 104), (104, 111, 103, 109)]
    s = signals(3, tp=True)
    s.entries[0, 0] = 1
    s.tp[0, 0] = 0.1
    res = simulate(bars_from(rows), s, cfg(fee_taker=0.002, fee_maker=0.001))
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "take_profit" and t["exit_price"] == pytest.approx(110.0)
    assert res.records.fills["fee"][1] == pytest.approx(110 * 0.001)
    assert t["pnl"] == pytest.approx(10 - 100 * 0.002 - 110 * 0.001)


def test_take_profit_gap_fills_at_open():
    res = exit_case([flat(100), (100, 105, 99, 104), (113, 114, 112, 113)], tp=0.1)
    assert res.trades["exit_price"].iloc[0] == 113.0


def test_bar_touching_stop_and_target_takes_the_stop():
    """Pessimistic rule: stop and target in one bar -> the stop."""
    res = exit_case([flat(100), (100, 101, 99, 100), (100, 112, 94, 100)], sl=0.05, tp=0.1)
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "stop_loss" and t["exit_price"] == pytest.approx(95.0)


def test_short_stop_loss_and_take_profit():
    res = exit_case([flat(100), (100, 101, 99, 100), (100, 106, 99, 105)], direction=-1, sl=0.05)
    t = res.trades.iloc[0]
    assert t["direction"] == "short" and t["exit_price"] == pytest.approx(105.0)
    assert t["pnl"] == pytest.approx(100 - 105)
    res = exit_case([flat(100), (100, 101, 99, 100), (95, 96, 89, 90)], direction=-1, tp=0.1)
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "take_profit" and t["exit_price"] == pytest.approx(90.0)


def test_trailing_stop_follows_high_after_the_check():
    """Rule "trailing stop": the reference follows highs after the check."""
    rows = [
        flat(100),
        (100, 120, 95, 118),  # entry at 100; 10 % trail of this high would be 108 > low 95
        (118, 119, 107, 110),  # level = 120 * 0.9 = 108 -> stopped at 108
        flat(110),
    ]
    res = exit_case(rows, trail=0.1)
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "trailing_stop" and t["exit_bar"] == 2
    assert t["exit_price"] == pytest.approx(120 * 0.9)


def test_tighter_of_stop_loss_and_trailing_stop_applies():
    rows = [flat(100), (100, 110, 99, 109), (109, 109, 98, 99)]
    # sl at 95; trailing 5 % of 110 = 104.5 is tighter -> trailing stop
    res = exit_case(rows, sl=0.05, trail=0.05)
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "trailing_stop" and t["exit_price"] == pytest.approx(110 * 0.95)


def test_position_filled_inside_bar_checks_only_stop_on_that_bar():
    """Rule "position opened inside a bar": only its stop is checked on that bar."""
    # limit buy at 98 fills inside bar 1; its 1 % target 98.98 is below that bar's high
    # (which may have printed before the fill), so no take-profit on bar 1
    rows = [flat(100), (100, 101, 97.5, 99), (98.5, 100, 98.2, 99.5)]
    s = signals(3, order_type=True, price=True, tp=True, sl=True)
    s.entries[0, 0] = 1
    s.order_type[0, 0] = LIMIT
    s.price[0, 0] = 98.0
    s.tp[0, 0] = 0.01
    res = simulate(bars_from(rows), s, cfg())
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "take_profit" and t["exit_bar"] == 2
    assert t["exit_price"] == pytest.approx(98 * 1.01)
    # a 0.25 % stop (97.755) is touched by that bar's low 97.5: pessimistically taken
    s.tp[0, 0] = np.nan
    s.sl[0, 0] = 0.0025
    res = simulate(bars_from(rows), s, cfg())
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "stop_loss" and t["exit_bar"] == 1
    assert t["exit_price"] == pytest.approx(98 * 0.9975)


# --------------------------------------------------------------------------- costs
def test_taker_and_maker_fee_rates():
    """Rule "costs": taker for market entries and exits, maker for limits filled in the bar."""
    rows = [flat(100), flat(100), flat(100), (100, 101, 97, 100), flat(100)]
    s = signals(5, order_type=True, price=True)
    s.entries[0, 0] = 1  # market: taker
    s.exits[1, 0] = True  # exit: taker
    s.entries[2, 0] = 1
    s.order_type[2, 0] = LIMIT
    s.price[2, 0] = 98.0  # limit: maker
    res = simulate(bars_from(rows), s, cfg(fee_taker=0.004, fee_maker=0.001))
    f = res.records.fills
    np.testing.assert_allclose(f["fee"], [100 * 0.004, 100 * 0.004, 98 * 0.001, 100 * 0.004])
    assert res.fees_paid == pytest.approx(0.4 + 0.4 + 0.098 + 0.4)
    assert res.records.equity[-1] == pytest.approx(1000 + (100 - 98) - res.fees_paid)


def test_slippage_is_adverse_and_clipped_into_the_bar():
    """Rule "slippage clipping": adverse slippage, clipped into [low, high]."""
    rows = [flat(100), (100, 100.05, 99, 100), (100, 101, 99.97, 100)]
    s = signals(3)
    s.entries[0, 0] = 1
    s.exits[1, 0] = True
    res = simulate(bars_from(rows), s, cfg(slippage_bps=10))
    f = res.records.fills
    # buy: 100 * 1.001 = 100.1 > high 100.05 -> 100.05; sell: 100 * 0.999 = 99.9 < low 99.97
    assert f["price"][0] == pytest.approx(100.05)
    assert f["price"][1] == pytest.approx(99.97)
    rows[1] = (100, 101, 99, 100)
    rows[2] = (100, 101, 99, 100)
    res = simulate(bars_from(rows), s, cfg(slippage_bps=10))
    np.testing.assert_allclose(res.records.fills["price"], [100.1, 99.9])


def test_maker_fills_get_no_slippage():
    res = limit_case([flat(100), (100, 101, 97, 99), flat(99)], 1, LIMIT, 98.0, slippage_bps=10)
    assert one_fill(res)["price"] == 98.0


def test_min_notional_rejects_and_counts():
    """Rule "min notional": below it the order is not placed and counted as rejected."""
    rows = [flat(100)] * 3
    s = signals(3)
    s.entries[0, 0] = 1
    res = simulate(bars_from(rows), s, cfg(size=0.05, min_notional=10.0))  # 5 quote < 10
    assert len(res.records.fills) == 0 and res.rejected == 1
    res = simulate(bars_from(rows), s, cfg(size=0.1, min_notional=10.0))  # exactly 10: placed
    assert len(res.records.fills) == 2 and res.rejected == 0


def test_lot_size_rounds_down():
    """Rule "lot rounding": quantities rounded down to the lot size."""
    rows = [flat(300)] * 3
    s = signals(3)
    s.entries[0, 0] = 1
    res = simulate(bars_from(rows), s, cfg(size_type="cash", size=1000.0, lot_size=0.01))
    # 1000 / 300 = 3.333.. -> 3.33
    assert one_fill(res)["qty"] == pytest.approx(3.33)
    res = simulate(bars_from(rows), s, cfg(size_type="units", size=0.3, lot_size=0.1))
    assert one_fill(res)["qty"] == pytest.approx(0.3)  # 0.3 / 0.1 is not floored to 2 lots


# --------------------------------------------------------------------------- sizing
@pytest.mark.parametrize(
    ("size_type", "size", "qty"),
    [("percent", 0.5, 0.5 * 1000 / 100), ("cash", 250.0, 250 / 100), ("units", 3.0, 3.0)],
)
def test_size_types(size_type, size, qty):
    """Rule "sizing": percent of equity, cash amount, units."""
    rows = [flat(100)] * 3
    s = signals(3)
    s.entries[0, 0] = 1
    res = simulate(bars_from(rows), s, cfg(size_type=size_type, size=size))
    assert one_fill(res)["qty"] == pytest.approx(qty)


def test_percent_sizing_uses_equity_after_previous_trades():
    """Rule "sizing": equity at the previous close, realised trades included."""
    rows = [flat(100), flat(100), flat(150), flat(150), flat(150)]
    s = signals(5)
    s.entries[0, 0] = 1  # 5 units at 100 (50 % of 1000)
    s.exits[1, 0] = True  # sold at 150: equity 1250
    s.entries[2, 0] = 1  # 50 % of 1250 at 150
    res = simulate(bars_from(rows), s, cfg(size_type="percent", size=0.5))
    q = res.records.fills["qty"]
    assert q[0] == pytest.approx(5.0) and q[2] == pytest.approx(0.5 * 1250 / 150)


def test_per_row_size_overrides_default():
    rows = [flat(100)] * 4
    s = signals(4, size=True)
    s.entries[0, 0] = 1
    s.size[0, 0] = 2.0
    s.entries[1, 0] = -1  # NaN size: default 1 unit
    res = simulate(bars_from(rows), s, cfg())
    assert list(res.records.fills["qty"][:3]) == [2.0, 2.0, 1.0]


def test_order_reduced_to_buying_power_including_fee():
    """Rule "buying power": an order is reduced to fit, fee included."""
    rows = [flat(100)] * 3
    s = signals(3)
    s.entries[0, 0] = 1
    res = simulate(bars_from(rows), s, cfg(size_type="percent", size=1.0, fee_taker=0.001))
    assert one_fill(res)["qty"] == pytest.approx(1000 / (100 * 1.001))
    assert res.records.cash[1] == pytest.approx(0.0, abs=1e-9)


def test_leverage_raises_buying_power():
    """Rule "buying power": equity x leverage."""
    rows = [flat(100)] * 3
    s = signals(3)
    s.entries[0, 0] = 1
    res = simulate(bars_from(rows), s, cfg(size_type="percent", size=2.0, leverage=2.0))
    assert one_fill(res)["qty"] == pytest.approx(2 * 1000 / 100)
    assert res.records.cash[1] == pytest.approx(1000 - 2000)
    res = simulate(bars_from(rows), s, cfg(size_type="units", size=30.0, leverage=2.0))
    assert one_fill(res)["qty"] == pytest.approx(20.0)  # 30 units reduced to 2 x equity


def test_short_sale_credits_cash_and_allow_short_false_only_flattens():
    """Rules "accounting" (short sales credit cash) and "allow_short"."""
    rows = [flat(100), flat(100), flat(90), flat(90)]
    s = signals(4)
    s.entries[0, 0] = -1
    res = simulate(bars_from(rows), s, cfg(size=2.0))
    assert res.records.cash[1] == pytest.approx(1000 + 200)
    assert res.records.positions[1, 0] == -2.0
    assert res.records.equity[2] == pytest.approx(1200 - 2 * 90)
    assert res.trades["pnl"].iloc[0] == pytest.approx(2 * 10)

    res = simulate(bars_from(rows), s, cfg(size=2.0, allow_short=False))
    assert len(res.records.fills) == 0
    s.entries[0, 0] = 1
    s.entries[1, 0] = -1  # with shorts off: close the long, open nothing
    res = simulate(bars_from(rows), s, cfg(allow_short=False))
    assert list(res.records.fills["kind"]) == [enums.KIND_MARKET, enums.KIND_EXIT]
    assert res.trades["exit_reason"].iloc[0] == "signal"
    assert res.records.positions[2, 0] == 0.0


def test_symbols_share_one_cash_balance():
    """Rule "positions": symbols share one cash balance, column order within a bar."""
    a = [flat(100)] * 4
    b = [flat(50)] * 4
    s = signals(4, 2)
    s.entries[0, :] = 1
    res = simulate(bars_from([a, b], ("A/USDT", "B/USDT")), s, cfg(size_type="percent", size=0.6))
    q = res.records.fills["qty"]
    # A takes 60 % of 1000 = 600 -> 6 units; B wants 600 but only 400 cash is left -> 8 units
    assert q[0] == pytest.approx(6.0) and q[1] == pytest.approx(400 / 50)
    assert res.records.cash[1] == pytest.approx(0.0, abs=1e-9)
    assert list(res.positions.columns) == ["A/USDT", "B/USDT"]


def test_trading_stops_when_equity_is_exhausted():
    """Rule "ruin": equity <= 0 at a close closes everything and stops trading."""
    rows = [flat(100), flat(100), flat(150), flat(210), flat(50), flat(50)]
    s = signals(6)
    s.entries[0, 0] = -1  # short 10 units: cash 2000
    s.entries[4, 0] = 1
    res = simulate(bars_from(rows), s, cfg(size=10.0))
    # at 210 equity = 2000 - 2100 = -100 <= 0: closed at that close, no more trading
    assert res.halted_bar == 3
    np.testing.assert_allclose(res.records.equity, [1000, 1000, 500, -100, -100, -100])
    assert list(res.trades["exit_reason"]) == ["end"]
    assert len(res.records.fills) == 2


# --------------------------------------------------------------------------- result and inputs
def test_result_frames_follow_the_contract():
    rows = [flat(100), flat(101), flat(102)]
    s = signals(3)
    s.entries[0, 0] = 1
    b = bars_from(rows)
    res = simulate(b, s, cfg())
    assert isinstance(res.equity.index, pd.DatetimeIndex)
    assert str(res.equity.index.tz) == "UTC"
    assert res.equity.index[0] == pd.Timestamp(T0 + MIN, unit="ms", tz="UTC")  # close of bar 0
    assert res.cash.index.equals(res.equity.index)
    assert list(res.trades.columns[:11]) == [
        "symbol",
        "direction",
        "entry_time",
        "exit_time",
        "entry_price",
        "exit_price",
        "size",
        "pnl",
        "return",
        "fees",
        "exit_reason",
    ]
    assert list(res.fills.columns[:8]) == [
        "time",
        "symbol",
        "side",
        "kind",
        "price",
        "qty",
        "notional",
        "fee",
    ]
    assert res.exposure == pytest.approx(2 / 3)
    assert res.symbols == ("BTC/USDT",) and res.synthetic is False


def test_config_from_settings_and_validation():
    from gogo2.config import BacktestConfig

    c = SimConfig.from_settings(BacktestConfig(cash=5000.0), size=None, slippage_bps=0.0)
    assert c.cash == 5000.0 and c.size == 0.95 and c.slippage_bps == 0.0
    with pytest.raises(UnknownNameError, match="slipage"):
        SimConfig.from_settings(BacktestConfig(), slipage_bps=1.0)
    with pytest.raises(ConfigError, match="fee_taker"):
        SimConfig(fee_taker=-0.1)
    with pytest.raises(UnknownNameError, match="Did you mean 'percent'"):
        SimConfig(size_type="percnt")
    with pytest.raises(ConfigError, match="leverage"):
        SimConfig(size=1.5)


def test_bad_inputs_raise_user_errors():
    rows = [flat(100)] * 3
    b = bars_from(rows)
    with pytest.raises(UserInputError, match="shape"):
        simulate(b, signals(2), cfg())
    s = signals(3, order_type=True, price=True)
    s.entries[0, 0] = 1
    s.order_type[0, 0] = LIMIT
    with pytest.raises(UserInputError, match="price"):
        simulate(b, s, cfg())
    s = signals(3)
    s.entries[0, 0] = 2
    with pytest.raises(UserInputError, match="entries"):
        simulate(b, s, cfg())
    s = signals(3, sl=True)
    s.entries[0, 0] = 1
    s.sl[0, 0] = -0.1
    with pytest.raises(UserInputError, match="sl"):
        simulate(b, s, cfg())
    bad = bars_from([flat(100), (100, 99, 98, 100), flat(100)])  # high below open
    with pytest.raises(DataError, match="row 1"):
        simulate(bad, signals(3), cfg())
    with pytest.raises(UserInputError, match="warmup"):
        simulate(b, signals(3), cfg(), warmup=-1)


def test_market_order_type_ignores_price():
    rows = [flat(100), (101, 102, 100, 101), flat(101)]
    s = signals(3, order_type=True, price=True)
    s.entries[0, 0] = 1
    s.order_type[0, 0] = MARKET
    res = simulate(bars_from(rows), s, cfg())
    assert one_fill(res)["price"] == 101.0


def test_rejected_reversal_leg_leaves_the_account_flat():
    """Rule "reversal": a rejected new leg leaves the account flat."""
    rows = [flat(100), flat(100), flat(100), flat(100)]
    s = signals(4, size=True)
    s.entries[0, 0] = 1
    s.entries[1, 0] = -1
    s.size[1, 0] = 0.01  # 1 quote of notional: below min_notional 10
    res = simulate(bars_from(rows), s, cfg(min_notional=10.0))
    assert res.rejected == 1
    assert list(res.trades["exit_reason"]) == ["reverse"]
    np.testing.assert_allclose(res.records.positions[:, 0], [0, 1, 0, 0])


def test_short_stop_loss_gap_fills_at_open_with_slippage_clipped():
    rows = [flat(100), (100, 101, 99, 100), (108, 109, 107.5, 108)]
    s = signals(3, sl=True)
    s.entries[0, 0] = -1
    s.sl[0, 0] = 0.05  # stop at 105, the bar opens at 108
    res = simulate(bars_from(rows), s, cfg(slippage_bps=100))
    t = res.trades.iloc[0]
    # buy back at 108 * 1.01 = 109.08, clipped to the bar's high 109; entry sold at 100 * 0.99
    assert t["exit_reason"] == "stop_loss" and t["exit_price"] == pytest.approx(109.0)
    assert t["entry_price"] == pytest.approx(99.0)
    assert t["pnl"] == pytest.approx(99.0 - 109.0)


def test_boolean_entries_and_missing_exits_are_accepted():
    rows = [flat(100), flat(101), flat(102)]
    e = np.zeros((3, 1), dtype=bool)
    e[0, 0] = True
    res = simulate(bars_from(rows), Signals(e, None), cfg())  # type: ignore[arg-type]
    assert one_fill(res)["side"] == 1 and one_fill(res)["price"] == 101.0


def test_stop_entry_pays_taker_fee_and_slippage():
    rows = [flat(100), (100, 104, 99, 103), flat(103)]
    res = limit_case(rows, 1, STOP, 102.0, fee_taker=0.002, fee_maker=0.0, slippage_bps=10)
    f = one_fill(res)
    assert f["price"] == pytest.approx(102 * 1.001)
    assert f["fee"] == pytest.approx(102 * 1.001 * 0.002)


def test_new_entry_signal_replaces_a_resting_limit():
    rows = [flat(100), (100, 101, 99, 100), (100, 101, 97, 100), (100, 101, 94, 100)]
    s = signals(4, order_type=True, price=True)
    s.entries[0:2, 0] = 1
    s.order_type[0:2, 0] = LIMIT
    s.price[0, 0] = 98.0
    s.price[1, 0] = 95.0  # replaces the 98 limit before bar 2 touches 98
    res = simulate(bars_from(rows), s, cfg())
    f = one_fill(res)
    assert f["bar"] == 3 and f["price"] == 95.0


def test_resting_entry_in_held_direction_is_dropped():
    rows = [flat(100), flat(100), (100, 101, 99, 100), (100, 101, 99, 100), (99, 100, 96, 98)]
    s = signals(5, order_type=True, price=True)
    s.entries[0, 0] = 1  # long at the open of bar 1 (market)
    s.entries[1, 0] = 1
    s.order_type[1, 0] = LIMIT
    s.price[1, 0] = 97.0  # resting buy while already long: dropped on bar 2
    s.exits[2, 0] = True  # flat at the open of bar 3
    res = simulate(bars_from(rows), s, cfg())
    # bar 4 touches 97, but the limit was dropped: no new position
    assert list(res.records.fills["kind"]) == [enums.KIND_MARKET, enums.KIND_EXIT]


def test_multibars_use_their_base_timeframe_and_other_objects_are_refused():
    from datasets.bars import MultiBars

    rows = [flat(100), flat(101), flat(102)]
    s = signals(3)
    s.entries[0, 0] = 1
    b = bars_from(rows)
    res = simulate(MultiBars("1m", {"1m": b}), s, cfg())
    assert one_fill(res)["price"] == 101.0
    with pytest.raises(UserInputError, match="Bars"):
        simulate(b.close, s, cfg())  # type: ignore[arg-type]


def test_open_beyond_target_takes_profit_even_if_the_bar_later_touches_the_stop():
    # the open (113) is already beyond the 10 % target: it fills first, before the low of 94
    res = exit_case([flat(100), (100, 101, 99, 100), (113, 114, 94, 100)], sl=0.05, tp=0.1)
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "take_profit" and t["exit_price"] == 113.0
