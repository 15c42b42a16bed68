"""Paper trading: the paper broker on the kernel, the runner, replay parity, feeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import make_multibars

from adapters.broker import BarRow, Intents, MarketRules, PaperBroker
from adapters.feeds import CandleAssembler, FeedStats
from engine import enums
from engine.backtest import SimConfig, simulate
from engine.signals import Signals
from runner.parity import compare_trades, replay
from strategies import registry
from strategies.base import Param, Strategy
from strategies.mtf_trend import MtfTrend

H = 3_600_000


def _row(t, o, h, lo, c):
    a = lambda v: np.array([float(v)])  # noqa: E731
    return BarRow(t, a(o), a(h), a(lo), a(c), a(1.0))


def test_paper_market_entry_fills_at_the_next_open_with_costs_by_hand():
    cfg = SimConfig(cash=1000.0, fee_taker=0.001, slippage_bps=10.0, size_type="cash", size=500.0)
    b = PaperBroker(("BTC/USDT",), cfg, H)
    assert b.on_bar(_row(0, 100, 101, 99, 100)) == []
    it = Intents.empty(1)
    it.entries[0, 0] = 1
    b.submit(0, it)
    fills = b.on_bar(_row(H, 110, 112, 108, 111))
    # open 110 moved 10 bps against the buyer: 110.11; 500 / 110.11 rounded down to 1e-5
    px = 110 * 1.001
    qty = math.floor(500 / px / 1e-5) * 1e-5
    assert len(fills) == 1 and fills[0].side == 1 and fills[0].kind == "market"
    assert fills[0].price == pytest.approx(px, rel=1e-12)
    assert fills[0].qty == pytest.approx(qty, rel=1e-9)
    assert fills[0].fee == pytest.approx(qty * px * 0.001, rel=1e-9)
    acct = b.account()
    assert acct.cash == pytest.approx(1000 - qty * px - qty * px * 0.001, rel=1e-12)
    assert acct.equity == pytest.approx(acct.cash + qty * 111, rel=1e-12)
    # the end of the run closes at the last close, taker fee, no slippage
    end = b.finish()
    assert [f.kind for f in end] == ["end"] and end[0].price == 111
    assert b.trades_array()["exit_reason"][0] == enums.EXIT_END


def test_exchange_rules_round_the_amount_and_refuse_below_the_minimum_cost():
    cfg = SimConfig(cash=1000.0, fee_taker=0.0, slippage_bps=0.0, size_type="cash", size=55.0)
    rules = {"BTC/USDT": MarketRules(amount_step=0.1, price_tick=0.01, min_cost=60.0)}
    b = PaperBroker(("BTC/USDT",), cfg, H, rules)
    b.on_bar(_row(0, 10, 10, 10, 10))
    it = Intents.empty(1)
    it.entries[0, 0] = 1
    b.submit(0, it)
    # 55 / 10 = 5.5 units = 55 USDT: below the exchange's 60 minimum: not placed
    assert b.on_bar(_row(H, 10, 10, 10, 10)) == [] and b.rejected == 1
    b2 = PaperBroker(
        ("BTC/USDT",),
        SimConfig(cash=1000.0, fee_taker=0.0, slippage_bps=0.0, size_type="cash", size=77.0),
        H,
        rules,
    )
    b2.on_bar(_row(0, 10, 10, 10, 10))
    b2.submit(0, it)
    (f,) = b2.on_bar(_row(H, 10, 10, 10, 10))
    assert f.qty == pytest.approx(7.7)  # 7.7 on the 0.1 step (the default lot would give the same)
    b3 = PaperBroker(
        ("BTC/USDT",),
        SimConfig(cash=1000.0, fee_taker=0.0, slippage_bps=0.0, size_type="cash", size=77.77),
        H,
        rules,
    )
    b3.on_bar(_row(0, 10, 10, 10, 10))
    b3.submit(0, it)
    (f,) = b3.on_bar(_row(H, 10, 10, 10, 10))
    assert f.qty == pytest.approx(7.7)  # 7.777 rounded down to the exchange's 0.1 step
    assert MarketRules(price_tick=0.01).round_price(101.2345) == pytest.approx(101.23)


class LimitBracket(Strategy):
    """Test strategy: limit entries below/above the close with SL, TP and a trailing stop."""

    name = "limit_bracket"
    base_timeframe = "5m"
    fast = Param(5, min=2, max=100)
    slow = Param(20, min=3, max=500)
    entry = Param("limit", choices=("limit", "market"))

    def lookback(self):
        return {self.timeframe: self.slow + 1}

    def generate(self, data):
        c = data.bars.close
        n, m = c.shape
        fast = np.full_like(c, np.nan)
        slow = np.full_like(c, np.nan)
        for t in range(self.slow - 1, n):
            fast[t] = c[t - self.fast + 1 : t + 1].mean(axis=0)
            slow[t] = c[t - self.slow + 1 : t + 1].mean(axis=0)
        above = fast > slow
        prev = np.vstack([np.zeros((1, m), bool), above[:-1]])
        entries = np.zeros((n, m), np.int8)
        entries[above & ~prev] = 1
        entries[~above & prev & ~np.isnan(slow)] = -1
        price = np.where(entries > 0, c * 0.999, np.where(entries < 0, c * 1.001, np.nan))
        kind = enums.LIMIT if self.entry == "limit" else enums.MARKET
        return Signals(
            entries=entries,
            exits=np.zeros((n, m), bool),
            order_type=np.where(entries != 0, kind, 0).astype(np.int8),
            price=price,
            sl=np.where(entries != 0, 0.01, np.nan),
            tp=np.where(entries != 0, 0.02, np.nan),
            trail=np.where(entries != 0, 0.008, np.nan),
        )


CASES = [
    ("sma_cross", {"fast": 5, "slow": 20}, "5m"),
    ("rsi_reversion", {"short": True}, "5m"),
    ("rsi_reversion", {"entry": "limit", "short": True}, "5m"),
    ("mtf_trend", {"trend": 10, "trail": 0.01}, "5m"),
    ("limit_bracket", {}, "5m"),
]


@pytest.mark.parametrize(
    ("name", "params", "tf"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_replay_through_the_paper_broker_gives_the_backtest_trades(name, params, tf):
    strat = LimitBracket(tf) if name == "limit_bracket" else registry.create(name, params, tf)
    data = make_multibars(3000, base=tf, informative=("1h",), seed=7, vol=0.004)
    cfg = SimConfig(cash=10_000.0, fee_taker=0.001, fee_maker=0.0005, slippage_bps=2.0)
    base = data.bars
    start = int(base.time[400])  # history before it warms the strategy up
    act_from = max(400, strat.warmup)
    bt = simulate(data, strat.signals(data), cfg, warmup=act_from)
    rp = replay(strat, data, start, cfg)
    a, b = bt.trades, rp.result.trades
    assert len(a) > 3, "the case must trade to prove anything"
    cols = [
        "symbol",
        "direction",
        "entry_time",
        "exit_time",
        "entry_price",
        "exit_price",
        "size",
        "fees",
        "exit_reason",
    ]
    assert a[cols].reset_index(drop=True).equals(b[cols].reset_index(drop=True))
    assert rp.result.final_equity == bt.final_equity
    assert compare_trades(a, b).ok
    if name in ("limit_bracket", "mtf_trend"):
        assert set(a["exit_reason"]) & {"stop_loss", "take_profit", "trailing_stop"}
    if name == "limit_bracket" or params.get("entry") == "limit":
        assert (bt.fills["kind"] == "limit").any()
    # the curve of the replayed bars is the backtest's curve from the first replayed bar on
    np.testing.assert_array_equal(rp.result.records.equity, bt.records.equity[400:])


def test_parity_names_the_cause_of_each_difference():
    import pandas as pd

    t0 = pd.Timestamp("2024-01-01 00:00", tz="UTC")
    row = dict(
        symbol="BTC/USDT",
        direction="long",
        entry_time=t0,
        exit_time=t0 + pd.Timedelta("1h"),
        entry_price=100.0,
        exit_price=101.0,
        size=1.0,
        exit_reason="signal",
    )
    bt = pd.DataFrame(
        [
            row,
            {**row, "entry_time": t0 + pd.Timedelta("2h"), "size": 0.05},
            {**row, "entry_time": t0 + pd.Timedelta("5h")},
        ]
    )
    pp = pd.DataFrame(
        [{**row, "entry_price": 100.004}, {**row, "entry_time": t0 + pd.Timedelta("9h")}]
    )
    rules = {"BTC/USDT": MarketRules(amount_step=0.001, price_tick=0.01, min_cost=10.0)}
    rep = compare_trades(bt, pp, rules=rules)
    causes = [d.cause for d in rep.diffs]
    # price 0.004 apart on a 0.01 tick; a 5 USDT trade under the 10 USDT minimum; two trades
    # on one side only with no other explanation
    assert causes == ["rounding", "min notional rejection", "changed decision", "changed decision"]
    assert not rep.ok and len(rep.unexplained) == 2


def test_assembler_emits_closed_candles_once_in_order_and_reports_gaps():
    stats = FeedStats()
    m = 60_000
    asm = CandleAssembler(("A/B",), "1m", (), {"1m": 0}, grace_ms=5_000, stats=stats)
    c = lambda t, p: [t, p, p + 1, p - 1, p, 1.0]  # noqa: E731
    # the candle at 3m is still open at now = 3.5m: not emitted
    asm.offer("A/B", "1m", [c(m, 10), c(2 * m, 11), c(3 * m, 12)], now_ms=int(3.5 * m))
    steps = asm.ready(int(3.5 * m))
    assert [s.base.time for s in steps] == [m, 2 * m]
    # repeated and out-of-order candles are ignored
    asm.offer("A/B", "1m", [c(2 * m, 99), c(m, 98)], now_ms=4 * m)
    assert stats.duplicates == 2
    # a jump from 3m to 6m: 4m and 5m missing, reported, never invented
    asm.offer("A/B", "1m", [c(3 * m, 12), c(6 * m, 15)], now_ms=7 * m)
    steps = asm.ready(7 * m)
    assert [s.base.time for s in steps] == [3 * m, 6 * m]
    assert steps[1].base.close[0] == 15
    assert len(stats.gaps) == 1 and "2 candles missing" in stats.gaps[0]


def test_informative_candle_waits_for_its_close():
    stats = FeedStats()
    m = 60_000
    asm = CandleAssembler(("A/B",), "1m", ("5m",), {"1m": 3 * m, "5m": -5 * m}, 10_000, stats)
    c = lambda t, p: [t, p, p, p, p, 1.0]  # noqa: E731
    asm.offer("A/B", "1m", [c(4 * m, 1)], now_ms=5 * m)
    # the 1m bar closing at 5m must carry the 5m candle closing at 5m: held until it comes
    assert asm.ready(5 * m) == []
    asm.offer("A/B", "5m", [c(0, 2)], now_ms=5 * m)
    (step,) = asm.ready(5 * m)
    assert step.base.time == 4 * m and [r.time for r in step.informative["5m"]] == [0]


def test_mtf_trend_is_registered_as_used_here():
    assert isinstance(registry.create("mtf_trend", {}, "5m"), MtfTrend)


def test_runner_stops_after_duration_and_max_bars_on_its_clock():
    from adapters.feeds import ReplayFeed
    from runner.live import Runner

    data = make_multibars(300, base="5m", informative=(), seed=3)
    strat = registry.create("sma_cross", {"fast": 3, "slow": 10}, "5m")
    start = int(data.bars.time[50])
    ticks = iter(range(0, 10_000, 7))  # the wall clock advances 7 s per reading

    def run(**kw):
        broker = PaperBroker(data.bars.symbols, SimConfig(), data.bars.tf_ms)
        runner = Runner(
            strat,
            data.until(start),
            ReplayFeed(data, start),
            broker,
            clock=lambda: float(next(ticks)),
        )
        return runner.run(**kw)

    rec = run(max_bars=20)
    assert len(rec.time) == 20 and rec.stopped_by == "--max-bars 20"
    # started at one reading, each bar reads the clock once more: 7 s per bar, 60 s -> 9 bars
    rec = run(duration_s=60)
    assert rec.stopped_by == "--duration" and len(rec.time) == 9
    rec = run()
    assert rec.stopped_by == "end of feed" and len(rec.time) == 250
    # the candles of every bar run are kept for the run folder, though the runner's own
    # memory holds only the trailing windows (it was trimmed many times over 250 bars)
    from runner.live import record_bars

    bars = record_bars(rec, "5m")
    np.testing.assert_array_equal(bars.time, data.bars.time[50:])
    np.testing.assert_array_equal(bars.close, data.bars.close[50:])


def test_ctrl_c_inside_a_bar_is_held_until_the_bar_is_recorded():
    import os
    import signal

    from adapters.feeds import ReplayFeed
    from runner.live import Runner

    data = make_multibars(200, base="5m", informative=(), seed=4)
    strat = registry.create("sma_cross", {"fast": 3, "slow": 10}, "5m")
    start = int(data.bars.time[50])
    broker = PaperBroker(data.bars.symbols, SimConfig(), data.bars.tf_ms)
    seen = []

    def on_status(st):
        seen.append(st.time)
        if len(seen) == 5:
            os.kill(os.getpid(), signal.SIGINT)  # lands inside the 5th bar

    before = signal.getsignal(signal.SIGINT)
    rec = Runner(
        strat, data.until(start), ReplayFeed(data, start), broker, on_status=on_status
    ).run()
    assert rec.stopped_by == "interrupt" and rec.interrupted
    # the 5th bar was finished and recorded, no later bar started; the broker agrees
    assert rec.time == seen == [int(t) for t in data.bars.time[50:55]]
    assert broker.last_time == rec.time[-1]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back


def test_replay_speed_paces_bars_in_real_time_divided_by_speed():
    from adapters.feeds import ReplayFeed

    data = make_multibars(30, base="1m", informative=("5m",), seed=1)
    waits: list[float] = []
    feed = ReplayFeed(data, int(data.bars.time[10]), speed=30.0, sleep=waits.append)
    steps = list(feed.steps())
    assert len(steps) == 20 and waits == [2.0] * 20  # a 60 s bar every 60 / 30 s
    # each coarser candle comes with the base bar that closes with it, once
    five = [r.time for s in steps for r in s.informative.get("5m", [])]
    closes = [s.base.time + 60_000 for s in steps if "5m" in s.informative]
    assert five == [t - 300_000 for t in closes] and len(set(five)) == len(five)
    # --speed 0: as fast as possible, never waits
    assert len(list(ReplayFeed(data, 0, speed=0.0, sleep=waits.append).steps())) == 30
    assert len(waits) == 20


def test_a_paper_account_restored_from_a_snapshot_continues_as_if_never_stopped():
    from adapters.feeds import ReplayFeed
    from runner.live import Runner

    data = make_multibars(1500, base="5m", informative=(), seed=11, vol=0.004)
    strat = LimitBracket("5m")
    cfg = SimConfig(order_ttl=3)
    t0 = int(data.bars.time[100])
    whole = PaperBroker(data.bars.symbols, cfg, data.bars.tf_ms)
    rec = Runner(strat, data.until(t0), ReplayFeed(data, t0), whole).run()
    # stop where a position is open (with its stop, target and trail), then resume
    held = np.flatnonzero(np.abs(np.vstack(rec.positions)).sum(axis=1) > 0)
    k = int(held[held > 300][0])
    first = PaperBroker(data.bars.symbols, cfg, data.bars.tf_ms)
    Runner(strat, data.until(t0), ReplayFeed(data, t0), first).run(max_bars=k + 1, finish=False)
    snap = first.snapshot()
    assert (snap["fs"][:, 0] != 0).any()
    second = PaperBroker(data.bars.symbols, cfg, data.bars.tf_ms)
    second.restore(snap)
    t1 = int(data.bars.time[100 + k + 1])
    Runner(strat, data.until(t1), ReplayFeed(data, t1), second).run()
    np.testing.assert_array_equal(second.trades_array(), whole.trades_array())
    assert second.account().cash == whole.account().cash


@pytest.mark.parametrize("entry", ["limit", "market"])
def test_replay_parity_holds_across_missing_candles(entry):
    """Candles missing for one symbol (outages): pending orders wait for its next candle,
    market entries expire, exactly as in the backtest."""
    data = make_multibars(3000, base="5m", informative=(), seed=9, vol=0.004, gaps=0.03)
    assert np.isnan(data.bars.close).any()
    strat = LimitBracket("5m", entry=entry)
    cfg = SimConfig(cash=10_000.0, order_ttl=4)
    bt = simulate(data, strat.signals(data), cfg, warmup=400)
    rp = replay(strat, data, int(data.bars.time[400]), cfg)
    assert len(bt.trades) > 10
    cols = [
        "symbol",
        "direction",
        "entry_time",
        "exit_time",
        "entry_price",
        "exit_price",
        "size",
        "exit_reason",
    ]
    assert bt.trades[cols].equals(rp.result.trades[cols])
    assert rp.result.final_equity == bt.final_equity
    assert rp.broker.expired == bt.expired and rp.broker.rejected == bt.rejected
    if entry == "market":
        assert bt.expired > 0  # some market entries met a missing candle and expired


def _gappy_sma_cross():
    data = make_multibars(3000, base="5m", informative=(), seed=7, vol=0.004, gaps=0.01)
    strat = registry.create("sma_cross", {"fast": 5, "slow": 20}, "5m")
    return data, strat


def _replay_parity(data, strat):
    cfg = SimConfig()
    bt = simulate(data, strat.signals(data), cfg, warmup=400)
    rp = replay(strat, data, int(data.bars.time[400]), cfg)
    return compare_trades(
        bt.trades,
        rp.result.trades,
        backtest_bars=data.bars,
        tf_ms=data.bars.tf_ms,
        window=strat.warmup + 1,
    )


def test_parity_holds_across_missing_candles_inside_the_window():
    """sma_cross's SMA averages the last existing candles: the runner's window reaches back
    until each symbol has warmup + 1 candles, so a hole inside it changes nothing."""
    data, strat = _gappy_sma_cross()
    assert np.isnan(data.bars.close).any()
    rep = _replay_parity(data, strat)
    assert rep.ok, rep.diffs[:3]
    assert rep.matched > 10


def test_parity_names_a_missing_candle_inside_the_decision_window(monkeypatch):
    """With a window of exactly warmup + 1 rows (no reach-back), a hole inside it changes
    the decision, and parity says where."""
    import strategies.window

    monkeypatch.setattr(
        strategies.window, "window_start", lambda close, length: max(0, len(close) - length)
    )
    data, strat = _gappy_sma_cross()
    rep = _replay_parity(data, strat)
    assert not rep.ok
    first = rep.diffs[0]
    assert first.cause.startswith("changed decision (a missing ") and "21-bar window" in first.cause
