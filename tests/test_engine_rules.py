"""Hand-computed cases of the engine rules on same-bar sizing, ruin, marketable limits,
outages, long-only accounts, stop distances, cash dust and the end-of-data close.

Every expected number is worked out in the test from the bars and the settings.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_engine import MIN, T0, bars_from, cfg, flat, signals

from datasets.bars import Bars
from engine import enums
from engine.backtest import SimConfig, simulate
from engine.reference import simulate_reference
from engine.signals import LIMIT, STOP, Signals

NAN4 = (np.nan,) * 4


# --------------------------------------------------------------------------- same-bar sizing
def test_same_bar_sizing_values_a_first_candle_short_at_its_fill_price():
    """Rule "sizing": a short opened earlier in the bar counts at its fill price, not at 0."""
    a = [NAN4, NAN4, flat(100), flat(100)]  # A lists at bar 2
    b = [flat(10)] * 4
    s = signals(4, 2)
    s.entries[1, 0] = -1  # A: short at bar 2's open, 100
    s.entries[1, 1] = 1  # B: long at bar 2's open, 10
    c = cfg(size_type="percent", size=0.95, leverage=1.0)
    res = simulate(bars_from([a, b], ("A/USDT", "B/USDT")), s, c)
    f = res.records.fills
    # A (column 0) first: equity 1000 -> 0.95 * 1000 / 100 = 9.5 short; cash 1000 + 950 = 1950
    assert f["symbol"][0] == 0 and f["qty"][0] == pytest.approx(9.5)
    # B: equity = 1950 - 9.5 * 100 = 1000 (not 1950); it wants 0.95 * 1000 / 10 = 95 units,
    # buying power 1000 * 1 - 950 = 50 -> 5 units (valuing A at 0 gave 185.25)
    assert f["symbol"][1] == 1 and f["qty"][1] == pytest.approx(5.0)
    gross = 9.5 * 100 + 5.0 * 10
    assert gross == pytest.approx(1.0 * res.records.equity[2])  # 1x on a 1x account
    assert res.records.cash[2] == pytest.approx(1950 - 50)
    assert res.records.equity[2] == pytest.approx(1900 - 950 + 50)


def test_same_bar_sizing_values_a_reversal_after_an_outage_at_its_fill_price():
    """Rule "sizing": after a gap, a reversed position counts at its fill, not the old close."""
    a = [flat(100), flat(100), NAN4, NAN4, (120, 121, 119, 120), flat(120)]
    b = [flat(50)] * 6
    s = signals(6, 2)
    s.entries[0, 0] = 1  # A long at bar 1: 1.0 * 1000 / 100 = 10 units, cash 0
    s.entries[3, 0] = -1  # A reverses at bar 4's open, 120 (20 % above its last close 100)
    s.entries[3, 1] = 1  # B long at bar 4's open, 50
    c = cfg(size_type="percent", size=1.0, leverage=2.0)
    res = simulate(bars_from([a, b], ("A/USDT", "B/USDT")), s, c)
    f = res.records.fills
    assert list(f["qty"][:4]) == pytest.approx([10.0, 10.0, 10.0, 24.0])
    # bar 4: close 10 at 120 -> cash 1200; short 1200 / 120 = 10 (power 2400) -> cash 2400.
    # B: equity = 2400 - 10 * 120 = 1200 (the old close 100 would give 1400); it wants
    # 1200 / 50 = 24 units, power 2 * 1200 - 10 * 120 = 1200 -> cap 24 (stale: 28 units)
    assert res.records.cash[4] == pytest.approx(2400 - 24 * 50)
    assert res.records.equity[4] == pytest.approx(1200 - 10 * 120 + 24 * 50)
    gross = 10 * 120 + 24 * 50
    assert gross == pytest.approx(2.0 * res.records.equity[4])  # 2x on a 2x account


def _continuous_market(rng: np.random.Generator, n: int, m: int) -> Bars:
    """Each symbol's open equals its previous valid close; late listings and holes."""
    o = np.full((n, m), np.nan)
    h, lo, c = o.copy(), o.copy(), o.copy()
    for j in range(m):
        start = int(rng.integers(0, n // 2)) if j else 0
        price = 100.0 * (1 + j)
        for t in range(start, n):
            if t > start and rng.random() < 0.1:
                continue  # a hole: the next candle opens at the last close
            cl = price * (1 + rng.normal(0, 0.02))
            o[t, j], c[t, j] = price, cl
            h[t, j] = max(price, cl) * 1.003
            lo[t, j] = min(price, cl) * 0.997
            price = cl
    time = T0 + np.arange(n, dtype=np.int64) * MIN
    syms = tuple(f"S{j}/USDT" for j in range(m))
    return Bars("1m", syms, time, o, h, lo, c, np.ones((n, m)))


def _permuted(bars: Bars, sig: Signals, perm: list[int]) -> tuple[Bars, Signals]:
    cols = lambda a: np.ascontiguousarray(a[:, perm])  # noqa: E731
    b = Bars(
        "1m",
        tuple(bars.symbols[k] for k in perm),
        bars.time,
        cols(bars.open),
        cols(bars.high),
        cols(bars.low),
        cols(bars.close),
        cols(bars.volume),
    )
    return b, Signals(cols(sig.entries), cols(sig.exits))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(2, 3), st.integers(5, 60))
def test_column_order_does_not_change_per_symbol_trades(seed, m, n):
    """Rule "sizing": with zero fees, no slippage and ample leverage, sizes do not depend on
    the column order. Opens equal the previous close and orders are at market, so a fill
    earlier in the bar realises nothing against the marks (a realised gain or loss is known
    cash and may legitimately change a later column's size)."""
    rng = np.random.default_rng(seed)
    bars = _continuous_market(rng, n, m)
    u = rng.random((n, m))
    entries = np.where(u < 0.15, 1, np.where(u < 0.3, -1, 0)).astype(np.int8)
    sig = Signals(entries, rng.random((n, m)) < 0.08)
    c = SimConfig(
        cash=1000.0,
        fee_taker=0.0,
        fee_maker=0.0,
        slippage_bps=0.0,
        size=0.3,
        leverage=10.0,
        min_notional=0.0,
        lot_size=0.0,
    )
    base = simulate(bars, sig, c)
    perm = list(rng.permutation(m))
    res = simulate(*_permuted(bars, sig, perm), c)
    for new_col, old_col in enumerate(perm):
        f0 = base.records.fills[base.records.fills["symbol"] == old_col]
        f1 = res.records.fills[res.records.fills["symbol"] == new_col]
        for name in ("bar", "side", "kind"):
            np.testing.assert_array_equal(f0[name], f1[name])
        for name in ("price", "qty", "fee"):
            np.testing.assert_allclose(f0[name], f1[name], rtol=1e-9)
    np.testing.assert_allclose(base.records.equity, res.records.equity, rtol=1e-9)


# --------------------------------------------------------------------------- ruin
def test_ruin_realised_at_a_fill_with_nothing_open_halts_trading():
    """Rule "ruin": a short stopped out at a gap that leaves equity < 0 halts trading."""
    rows = [flat(100), (100, 101, 99, 100), (210, 211, 209, 210), flat(210), flat(210)]
    s = signals(5, sl=True)
    s.entries[0, 0] = -1  # short 10 units at 100: cash 1000 + 1000 = 2000
    s.sl[0, 0] = 0.05  # stop at 105; bar 2 gaps to 210: bought back at 210
    s.entries[2, 0] = 1  # decided after the ruin: must place nothing
    res = simulate(bars_from(rows), s, cfg(size=10.0))
    # cash 2000 - 10 * 210 = -100 with no position left at bar 2's close
    assert res.halted_bar == 2
    np.testing.assert_allclose(res.records.equity, [1000, 1000, -100, -100, -100])
    assert res.rejected == 0 and len(res.records.fills) == 2
    assert list(res.trades["exit_reason"]) == ["stop_loss"]
    ref = simulate_reference(bars_from(rows), s, cfg(size=10.0))
    assert ref["halted_bar"] == 2 and ref["rejected"] == 0


def test_equity_of_exactly_zero_at_a_close_halts():
    """Rule "ruin": equity <= 0 halts, exactly 0 included."""
    rows = [flat(100), (100, 101, 99, 100), (100, 200, 99, 200), flat(50), flat(50)]
    s = signals(5)
    s.entries[0, 0] = -1  # short 10 at 100: cash 2000
    s.entries[3, 0] = 1
    res = simulate(bars_from(rows), s, cfg(size=10.0))
    # close 200: equity 2000 - 10 * 200 = 0 -> closed at 200 and stopped
    assert res.halted_bar == 2
    np.testing.assert_allclose(res.records.equity, [1000, 1000, 0, 0, 0])
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "end" and t["exit_price"] == 200.0
    assert t["pnl"] == pytest.approx(10 * (100 - 200))
    assert len(res.records.fills) == 2  # the long decided at bar 3 is never placed


def test_run_summary_shows_the_halt_realised_at_a_fill():
    """Rule "ruin": the run summary carries a "halted" row with the close time."""
    from gogo2.timeframes import format_time
    from runner.backtest import RunOutput, RunRequest

    rows = [flat(100), (100, 101, 99, 100), (210, 211, 209, 210), flat(210)]
    s = signals(4, sl=True)
    s.entries[0, 0] = -1
    s.sl[0, 0] = 0.05
    bars = bars_from(rows)
    res = simulate(bars, s, cfg(size=10.0))
    req = RunRequest("x", {}, ("BTC/USDT",), "1m", "test", T0, None, 1000.0, None, None)
    shown = dict(RunOutput(req, bars, res, None, False).header_rows())  # type: ignore[arg-type]
    assert shown["halted"] == f"equity fell to 0 at {format_time(T0 + 3 * MIN)}; trading stopped"
    assert "market entries expired" not in shown


def test_run_summary_counts_expired_market_entries():
    from runner.backtest import RunOutput, RunRequest

    rows = [flat(100), flat(100), NAN4, flat(104)]
    s = signals(4)
    s.entries[1, 0] = 1  # due at bar 2, which has no candle
    bars = bars_from(rows)
    res = simulate(bars, s, cfg())
    req = RunRequest("x", {}, ("BTC/USDT",), "1m", "test", T0, None, 1000.0, None, None)
    shown = dict(RunOutput(req, bars, res, None, False).header_rows())  # type: ignore[arg-type]
    assert shown["market entries expired"] == "1 (no candle of the symbol at the next bar)"


# --------------------------------------------------------------------------- marketable limits
def test_limit_marketable_at_the_open_is_a_taker_fill_with_slippage():
    """Rule "limit at open": a limit buy the open already meets pays taker fee and slippage."""
    rows = [flat(100), (96, 97, 95, 96), flat(96)]
    s = signals(3, order_type=True, price=True)
    s.entries[0, 0] = 1
    s.order_type[0, 0] = LIMIT
    s.price[0, 0] = 98.0
    c = cfg(fee_taker=0.002, fee_maker=0.0005, slippage_bps=10)
    f = simulate(bars_from(rows), s, c).records.fills[0]
    px = 96 * 1.001  # 96.096: inside [95, 97] and below the limit 98
    assert f["kind"] == enums.KIND_LIMIT
    assert f["price"] == pytest.approx(px) and f["fee"] == pytest.approx(px * 0.002)


def test_limit_marketable_at_the_open_never_fills_beyond_its_price():
    """Rule "limit at open": slippage stops at the limit price."""
    rows = [flat(100), (97.95, 99, 97, 98), flat(98)]
    s = signals(3, order_type=True, price=True)
    s.entries[0, 0] = 1
    s.order_type[0, 0] = LIMIT
    s.price[0, 0] = 98.0
    f = simulate(bars_from(rows), s, cfg(slippage_bps=10)).records.fills[0]
    assert 97.95 * 1.001 > 98.0  # 98.04795 would be beyond the limit
    assert f["price"] == 98.0
    # a limit sell at 102 meeting an open of 104: 104 * (1 - 0.001) = 103.896 >= 102
    rows = [flat(100), (104, 105, 103, 104), flat(104)]
    s.entries[0, 0] = -1
    s.price[0, 0] = 102.0
    f = simulate(bars_from(rows), s, cfg(slippage_bps=10)).records.fills[0]
    assert f["side"] == -1 and f["price"] == pytest.approx(104 * 0.999)


def test_take_profit_gapped_through_at_the_open_is_a_taker_fill():
    """Rule "take-profit at open": marketable, taker fee and slippage, not worse than target."""
    rows = [flat(100), (100, 105, 99, 104), (113, 114, 112, 113)]
    s = signals(3, tp=True)
    s.entries[0, 0] = 1
    s.tp[0, 0] = 0.1  # target 110 from the open 100 (no slippage on the entry here)
    c = cfg(fee_taker=0.002, fee_maker=0.0005)
    t = simulate(bars_from(rows), s, c).trades.iloc[0]
    assert t["exit_reason"] == "take_profit" and t["exit_price"] == 113.0
    assert t["fees"] == pytest.approx(100 * 0.002 + 113 * 0.002)
    c = cfg(slippage_bps=100)  # entry 100 * 1.01 = 101, target from the open: 110
    t = simulate(bars_from(rows), s, c).trades.iloc[0]
    # sell at 113 * 0.99 = 111.87, inside [112, 114]? no: clipped up to the low 112
    assert t["entry_price"] == pytest.approx(101.0) and t["exit_price"] == pytest.approx(112.0)


# --------------------------------------------------------------------------- long-only
def test_long_only_limit_short_entry_is_a_market_exit_ignoring_its_price():
    """Rule "allow_short": a LIMIT short on a long-only account exits at the next open."""
    rows = [flat(100), (100, 101, 99, 100), (101, 102, 100, 101), flat(101), flat(101)]
    s = signals(5, order_type=True, price=True)
    s.entries[0, 0] = 1  # long 1 at 100
    s.entries[1, 0] = -1
    s.order_type[1, 0] = LIMIT
    s.price[1, 0] = 150.0  # never reached; ignored on a long-only account
    res = simulate(bars_from(rows), s, cfg(allow_short=False))
    f = res.records.fills
    assert list(f["kind"]) == [enums.KIND_MARKET, enums.KIND_EXIT]
    assert f["bar"][1] == 2 and f["price"][1] == 101.0
    assert res.trades["pnl"].iloc[0] == pytest.approx(1.0)
    np.testing.assert_allclose(res.records.positions[:, 0], [0, 1, 0, 0, 0])
    # flat: the same STOP short does nothing at all
    s.entries[0, 0] = 0
    s.order_type[1, 0] = STOP
    res = simulate(bars_from(rows), s, cfg(allow_short=False))
    assert len(res.records.fills) == 0 and res.rejected == 0


# --------------------------------------------------------------------------- stop distances
def test_stop_distance_is_measured_from_the_price_before_slippage():
    """Rule "stop-loss": levels come from the reference price, not the slipped fill."""
    rows = [flat(100), (100, 101, 99.9, 100.5), (100, 100.2, 99.0, 99.5)]
    s = signals(3, sl=True)
    s.entries[0, 0] = 1
    s.sl[0, 0] = 0.002
    res = simulate(bars_from(rows), s, cfg(slippage_bps=50))
    t = res.trades.iloc[0]
    # fill 100 * 1.005 = 100.5; stop 100 * 0.998 = 99.8 (from the slipped fill it would be
    # 100.2999, above bar 1's low 99.9: stopped by the entry's own slippage)
    assert t["entry_price"] == pytest.approx(100.5)
    assert t["exit_bar"] == 2 and t["exit_reason"] == "stop_loss"
    assert t["exit_price"] == pytest.approx(99.8 * 0.995)  # 99.301, inside [99.0, 100.2]


def test_take_profit_and_trailing_reference_start_at_the_price_before_slippage():
    """Rule "take-profit / trailing stop": both measured from the reference price."""
    rows = [flat(100), (100, 100.6, 99.9, 100.5), (100.5, 101.2, 100.4, 101), flat(101)]
    s = signals(4, tp=True)
    s.entries[0, 0] = 1
    s.tp[0, 0] = 0.01  # target 101 from 100 (101.505 from the slipped fill 100.5)
    t = simulate(bars_from(rows), s, cfg(slippage_bps=50)).trades.iloc[0]
    assert t["exit_reason"] == "take_profit" and t["exit_bar"] == 2
    assert t["exit_price"] == pytest.approx(101.0)


# --------------------------------------------------------------------------- cash dust
def test_all_in_entry_leaves_no_negative_cash_dust():
    """Rule "cash dust": a residue within 1e-9 of the notional is set to 0."""
    px, fee = 97.3, 0.001
    q = 1000 / (px * (1 + fee))
    naive = 1000 - (q * px + q * px * fee)
    assert naive < 0  # the plain float arithmetic leaves about -2e-13
    rows = [flat(px)] * 3
    s = signals(3)
    s.entries[0, 0] = 1
    c = cfg(size_type="percent", size=1.0, fee_taker=fee)
    res = simulate(bars_from(rows), s, c)
    assert res.records.fills["qty"][0] == pytest.approx(q)
    assert res.records.cash[1] == 0.0
    assert (res.records.cash >= 0).all()


# --------------------------------------------------------------------------- end of data
def test_close_at_end_and_equity_before_the_close():
    """Rule "end close": default closes at the last close; False leaves the position open."""
    rows = [flat(100), (100, 101, 99, 100), (110, 115, 108, 112)]
    s = signals(3)
    s.entries[0, 0] = 1
    c = cfg(fee_taker=0.01)
    res = simulate(bars_from(rows), s, c)
    marked = 1000 - 100 - 100 * 0.01 + 112  # 1011 before the close-out
    assert res.equity_before_close == pytest.approx(marked)
    assert res.records.equity[-1] == pytest.approx(marked - 112 * 0.01)
    assert list(res.trades["exit_reason"]) == ["end"]

    res = simulate(bars_from(rows), s, cfg(fee_taker=0.01, close_at_end=False))
    assert res.trades.empty and len(res.records.fills) == 1
    assert res.records.positions[-1, 0] == 1.0
    assert res.records.equity[-1] == pytest.approx(marked)
    assert res.equity_before_close == pytest.approx(marked)
    assert res.records.cash[-1] == pytest.approx(1000 - 100 - 1.0)
    ref = simulate_reference(bars_from(rows), s, cfg(fee_taker=0.01, close_at_end=False))
    assert len(ref["fills"]) == 1 and ref["equity"][-1] == pytest.approx(marked)


def test_close_at_end_must_be_a_bool():
    from gogo2.errors import ConfigError

    with pytest.raises(ConfigError, match="close_at_end"):
        SimConfig(close_at_end="no")  # type: ignore[arg-type]
