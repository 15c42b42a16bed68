"""Stop-losses resting on the exchange (``live.stop_on_exchange: true``) on the fake exchange
(real ccxt client, live runner, fake clock).

An entry carrying a stop-loss fraction ``sl`` that has filled at the price P gets a Binance
spot ``STOP_LOSS_LIMIT`` SELL of the run's position (rounded down to the 1e-5 lot step),
``stopPrice`` = P * (1 - sl) and ``price`` = that stop lowered by ``live.stop_limit_offset``,
both on the 0.01 tick. The fake triggers it on the first candle whose low reaches the stop
(in the candle it arrived in, only the part after its arrival counts) and fills it there at
min(open, stop) as a taker when that is not below its limit. Every expectation below is
computed here from the fake's candles (``kline_row``) and the exchange's own records (the
entry's trades, the stop's arrival time), not read from the code under test."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from datasets.bars import MultiBars
from engine.signals import LIMIT, MARKET, Signals
from strategies.base import Param, Strategy
from tests.fake_account import FakeAccount
from tests.fake_exchange import FakeBinance, kline_row
from tests.test_live_faults import check_exchange_matches, env  # noqa: F401
from tests.test_live_protect import first_exit
from tests.test_live_run import START, journal_of, run, settings_for

MIN = 60_000
T0 = START // MIN * MIN  # the open of the first live bar (bar 0)
STEP = 1e-5
FEE = 0.001  # the fake's fee, taken in the asset received
OFFSET = 0.002  # live.stop_limit_offset's default
CONFIG = "backtest:\n  size_type: cash\n  size: 100\nlive:\n  stop_on_exchange: true\n"


class SlEntries(Strategy):
    """A long entry carrying ``sl`` (and ``tp`` when > 0) on the bar ``at`` (minutes from
    ``origin``), at market or, with ``below`` > 0, as a limit at ``close * (1 - below)``;
    an exit signal on the bar ``exit_at``; nothing else."""

    name = "sl_entries_probe"
    base_timeframe = "1m"
    origin = Param(0, doc="epoch minute of bar 0")
    at = Param(-1, doc="bar deciding the entry, minutes from origin")
    exit_at = Param(-1, doc="bar deciding an exit, minutes from origin")
    sl = Param(0.01, min=0.0, max=1.0, doc="stop-loss fraction")
    tp = Param(0.0, min=0.0, max=1.0, doc="take-profit fraction (0: none)")
    below = Param(0.0, min=0.0, max=0.5, doc="limit distance below the close (0: market)")

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: 2}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close
        k = data.bars.time // MIN - int(self.origin)
        if close.ndim > 1:
            k = k[:, None] * np.ones(close.shape, np.int64)
        full = np.ones(close.shape)
        return Signals(
            entries=((k == int(self.at)) & (int(self.at) >= 0)).astype(np.int8),
            exits=(k == int(self.exit_at)) & (int(self.exit_at) >= 0),
            order_type=np.full(close.shape, LIMIT if self.below > 0 else MARKET, np.int8),
            price=close * (1.0 - self.below),
            sl=full * float(self.sl),
            tp=full * (float(self.tp) if self.tp > 0 else np.nan),
        )


@pytest.fixture
def probe(monkeypatch):
    from strategies import registry

    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    registry.register(SlEntries)
    return SlEntries.name


def run_probe(tmp_path, fake, bars, at, sl, exit_at=-1, tp=0.0, below=0.0, config=CONFIG):
    settings = settings_for(tmp_path, config)
    params = (
        f"origin={T0 // MIN}",
        f"at={at}",
        f"exit_at={exit_at}",
        f"sl={sl}",
        f"tp={tp}",
        f"below={below}",
    )
    return run(settings, fake, tmp_path / "run", bars, [], params=params, strategy=SlEntries.name)


def candle(market, t: int) -> tuple[float, float, float, float]:
    row = kline_row(market, t, MIN, t + 10 * MIN)
    return float(row[1]), float(row[2]), float(row[3]), float(row[4])


def floor_step(q: float) -> float:
    return math.floor(q / STEP + 1e-9) * STEP


def entry_of(fake):
    """(entry order, volume-weighted price of its trades, base it left on the account)."""
    acct = fake.account
    (buy,) = [o for o in acct.orders.values() if o.side == "BUY"]
    trades = [t for t in acct.trades if t["orderId"] == buy.id]
    qty = sum(float(t["qty"]) for t in trades)
    price = sum(float(t["qty"]) * float(t["price"]) for t in trades) / qty
    return buy, price, qty * (1 - FEE)


def stops(fake):
    return [o for o in fake.account.orders.values() if o.type == "STOP_LOSS_LIMIT"]


def stop_fill_by_hand(market, stop_order, stop, limit):
    """(candle open time, price) at which the fake fills the resting sell stop, by hand."""
    t = stop_order.time // MIN * MIN
    while True:
        op, _hi, lo, cl = candle(market, t)
        if t <= stop_order.time:  # the candle it arrived in: only the part after arrival
            op = round(market.level(stop_order.time), 2)
            lo = round(min(op, cl) * 0.9995, 2)
        if lo <= stop:
            at = min(op, stop)
            assert at >= limit  # fills at once as a taker (no gap past the limit here)
            return t, at
        t += MIN


def check_stop_request(fake, price, held, sl):
    """The exchange got one well-formed STOP_LOSS_LIMIT SELL for the position, at the
    level by hand; returns (stop, limit)."""
    stop = round(price * (1 - sl), 2)
    limit = round(price * (1 - sl) * (1 - OFFSET), 2)  # from the level before its rounding
    reqs = [
        q
        for m, p, q in fake.private_log
        if m == "POST" and p == "/api/v3/order" and q.get("side") == "SELL"
    ]
    req = reqs[0]
    assert (req["type"], req["timeInForce"]) == ("STOP_LOSS_LIMIT", "GTC")
    assert float(req["stopPrice"]) == pytest.approx(stop, abs=1e-6)
    assert float(req["price"]) == pytest.approx(limit, abs=1e-6)
    assert float(req["quantity"]) == pytest.approx(floor_step(held), abs=1e-9)
    assert req["newClientOrderId"].startswith("g2")
    return stop, limit


K = 25  # the entry's deciding bar


def test_the_stop_rests_after_the_entry_and_fills_on_the_first_bar_reaching_it(
    env,  # noqa: F811
    tmp_path,
    probe,
):
    sl = 0.003
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        market = fake.markets["BTCUSDT"]
        run_probe(tmp_path, fake, K + 3, at=K, sl=sl)
        buy, price, held = entry_of(fake)
        stop, limit = check_stop_request(fake, price, held, sl)
        (o,) = stops(fake)
        # placed right after the market entry filled, in the same bar
        assert o.time // MIN == buy.time // MIN == (T0 + (K + 1) * MIN) // MIN
        t_hit, px = stop_fill_by_hand(market, o, stop, limit)
        if t_hit < fake.now_ms - MIN:
            pytest.fail("choose a later trigger for this check")
        assert o.status == "NEW" and o.executed == 0.0  # resting, not triggered yet
        run_probe(tmp_path, fake, (t_hit - fake.now_ms) // MIN + 3, at=K, sl=sl)
        assert o.status == "FILLED"
        (sold,) = [t for t in fake.account.trades if t["orderId"] == o.id]
        # filled inside the candle computed by hand, at its price: between two bar closes
        assert t_hit <= sold["time"] < t_hit + MIN
        assert float(sold["price"]) == pytest.approx(px, abs=1e-6)
        assert float(sold["qty"]) == pytest.approx(floor_step(held), abs=1e-9)
        # nothing else was sold
        assert [x.type for x in fake.account.orders.values() if x.side == "SELL"] == [
            "STOP_LOSS_LIMIT"
        ]
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    (row,) = [r for r in orders if r.side == "sell"]
    assert row.intent == "stop_loss (exchange) #1" and row.status == "closed"
    (ev,) = [d for _, k, d in events if k == "protective_exit"]
    assert ev["exchange"] and ev["bar"] == t_hit and not ev["late"]


def test_a_strategy_exit_cancels_the_stop_then_sells_the_position_once(env, tmp_path, probe):  # noqa: F811
    sl = 0.05  # far: never reached
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        run_probe(tmp_path, fake, K + 6, at=K, sl=sl, exit_at=K + 4)
        _buy, price, held = entry_of(fake)
        check_stop_request(fake, price, held, sl)
        (o,) = stops(fake)
        assert o.status == "CANCELED" and o.executed == 0.0
        sells = [x for x in fake.account.orders.values() if x.side == "SELL" and x is not o]
        (sell,) = sells
        assert (sell.type, sell.status) == ("MARKET", "FILLED")
        assert sell.qty == pytest.approx(floor_step(held), abs=1e-9)
        assert sell.time > o.time
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    (exit_row,) = [r for r in orders if r.intent == "exit"]
    assert exit_row.bar_time == T0 + (K + 4) * MIN
    kinds = [k for _, k, d in events if k in ("cancel", "submit")]
    assert kinds[-2:] == ["cancel", "submit"]  # canceled before the exit was sent
    assert not [d for _, k, d in events if k == "protective_exit"]


def test_a_take_profit_cancels_the_stop_then_sells_once(env, tmp_path, probe):  # noqa: F811
    sl, tp = 0.05, 0.001
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        market = fake.markets["BTCUSDT"]
        run_probe(tmp_path, fake, K + 40, at=K, sl=sl, tp=tp)
        buy, price, held = entry_of(fake)
        check_stop_request(fake, price, held, sl)
        hit = first_exit(market, buy.time // MIN * MIN, price, sl=sl, tp=tp)
        assert hit is not None and hit[1] == "take_profit" and hit[0] < T0 + (K + 38) * MIN
        (o,) = stops(fake)
        assert o.status == "CANCELED" and o.executed == 0.0
        (sell,) = [x for x in fake.account.orders.values() if x.side == "SELL" and x is not o]
        assert (sell.type, sell.status) == ("MARKET", "FILLED")
        assert sell.qty == pytest.approx(floor_step(held), abs=1e-9)
        orders, _ = check_exchange_matches(fake, tmp_path / "run")
    (row,) = [r for r in orders if r.side == "sell" and r.type == "market"]
    assert (row.intent, row.bar_time) == ("take_profit", hit[0])
    rejected = [r for r in orders if r.status == "rejected"]
    assert not rejected  # never a sell refused for insufficient balance


def test_a_stop_filling_while_being_canceled_sells_nothing_more(env, tmp_path, probe):  # noqa: F811
    sl = 0.05
    with FakeBinance(now_ms=START) as fake:
        acct = FakeAccount(fake, {"USDT": 10_000.0})
        handle = acct.handle

        def fill_then_handle(method, path, q):
            # the stop triggers and fills just before the cancel reaches the exchange
            if method == "DELETE" and path == "/api/v3/order":
                with fake._lock:
                    o = acct._find(q)
                    if o is not None and o.type == "STOP_LOSS_LIMIT" and o.status == "NEW":
                        acct._fill(o, o.qty, o.price, fake.now(), maker=False)
            return handle(method, path, q)

        acct.handle = fill_then_handle
        run_probe(tmp_path, fake, K + 6, at=K, sl=sl, exit_at=K + 4)
        _buy, _price, held = entry_of(fake)
        (o,) = stops(fake)
        assert o.status == "FILLED"
        # the stop sold the position: no other sell was sent
        assert [x.side for x in fake.account.orders.values()] == ["BUY", "SELL"]
        assert fake.account.total("BTC") == pytest.approx(held - floor_step(held), abs=1e-9)
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    assert not [r for r in orders if r.intent == "exit"]
    (stop_row,) = [r for r in orders if r.side == "sell"]
    assert stop_row.status == "closed"
    assert [d["client_id"] for _, k, d in events if k == "cancel"] == [stop_row.client_id]
    (ev,) = [d for _, k, d in events if k == "protective_exit"]
    assert ev["exchange"] and ev["status"] == "closed"


def test_a_partial_entry_fill_then_more_replaces_the_stop_for_the_new_amount(
    env,  # noqa: F811
    tmp_path,
    probe,
):
    sl, below = 0.05, 0.0002
    with FakeBinance(now_ms=START) as fake:
        acct = FakeAccount(fake, {"USDT": 10_000.0})
        acct.partial_next(0.5)
        run_probe(tmp_path, fake, K + 30, at=K, sl=sl, below=below)
        buy, price, held = entry_of(fake)
        assert buy.status == "FILLED"
        trades = [t for t in acct.trades if t["orderId"] == buy.id]
        assert len(trades) == 2 and trades[0]["time"] // MIN < trades[1]["time"] // MIN
        first = float(trades[0]["qty"]) * (1 - FEE)
        first_px = float(trades[0]["price"])
        o1, o2 = stops(fake)
        # the first for the first part, at its price; replaced once the rest filled
        assert o1.qty == pytest.approx(floor_step(first), abs=1e-9)
        assert o1.stop == pytest.approx(round(first_px * (1 - sl), 2), abs=1e-6)
        assert o1.status == "CANCELED" and o1.executed == 0.0
        assert o2.qty == pytest.approx(floor_step(held), abs=1e-9)
        assert o2.stop == pytest.approx(round(price * (1 - sl), 2), abs=1e-6)
        assert o2.price == pytest.approx(round(price * (1 - sl) * (1 - OFFSET), 2), abs=1e-6)
        assert o2.status == "NEW"
        # each placed at the first bar close after its fill
        for o, t in ((o1, trades[0]), (o2, trades[1])):
            assert o.time // MIN == t["time"] // MIN + 1
        check_exchange_matches(fake, tmp_path / "run")


def test_off_by_default_no_stop_rests_on_the_exchange(env, tmp_path, probe):  # noqa: F811
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        config = "backtest:\n  size_type: cash\n  size: 100\n"
        run_probe(tmp_path, fake, K + 6, at=K, sl=0.05, exit_at=K + 4, config=config)
        assert not stops(fake)
        assert [(x.side, x.type) for x in fake.account.orders.values()] == [
            ("BUY", "MARKET"),
            ("SELL", "MARKET"),
        ]
        check_exchange_matches(fake, tmp_path / "run")


def test_the_stop_fills_while_the_bot_is_down_and_is_recorded_as_missed(env, tmp_path):  # noqa: F811
    """``kill -9`` of a live process three bars after its entry (the stop resting), the
    fake's clock moved past the bar the stop triggers on, then a restart of the same
    ``--run``: the stop's fill is a missed fill, the watch is over, nothing more is sold."""
    import subprocess
    import sys

    from tests.test_live_protect_restart import BETWEEN_BARS, ROOT

    sl = 0.003
    params = ("fast=3", "slow=8", "band=0", f"sl={sl}")
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        market = fake.markets["BTCUSDT"]
        settings = settings_for(tmp_path, CONFIG)

        fake.serve_clock()
        code = BETWEEN_BARS.format(
            root=str(ROOT),
            url=fake.base_url,
            cfg=str(tmp_path / "c.yaml"),
            run=str(tmp_path / "run"),
            params=list(params),
            kill_after=3,
        )
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
        assert p.returncode == -9, p.stdout + p.stderr
        _buy, price, held = entry_of(fake)
        stop, limit = check_stop_request(fake, price, held, sl)
        (o,) = stops(fake)
        assert o.status == "NEW"  # resting when the process died
        t_hit, px = stop_fill_by_hand(market, o, stop, limit)
        assert t_hit > fake.now_ms  # not reached before the kill
        fake.now_ms = t_hit + 5 * MIN + 3_000  # down across the trigger
        lines: list[str] = []
        run(settings, fake, tmp_path / "run", 3, lines, params)
        assert o.status == "FILLED"
        (sold,) = [t for t in fake.account.trades if t["orderId"] == o.id]
        assert t_hit <= sold["time"] < t_hit + MIN
        assert float(sold["price"]) == pytest.approx(px, abs=1e-6)
        # nothing sold but the stop
        assert [(x.side, x.type) for x in fake.account.orders.values()] == [
            ("BUY", "MARKET"),
            ("SELL", "STOP_LOSS_LIMIT"),
        ]
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    j = journal_of(tmp_path / "run")
    (row,) = [r for r in orders if r.side == "sell"]
    (fill,) = [f for f in j.fills() if f["client_id"] == row.client_id]
    j.close()
    assert fill["missed"]
    (ev,) = [d for _, k, d in events if k == "protective_exit"]
    assert ev["exchange"] and ev["late"] and ev["bar"] == t_hit
    assert "(continued)" in lines[0]


def test_a_stop_the_exchange_refuses_as_crossed_sells_at_market(env, tmp_path, probe):  # noqa: F811
    """The price is through the level when the stop arrives (Binance answers -2010 "Stop
    price would trigger immediately."): the position is sold at market at once, once."""
    sl = 0.05
    with FakeBinance(now_ms=START) as fake:
        acct = FakeAccount(fake, {"USDT": 10_000.0})
        handle = acct.handle

        def refuse_sell_stops(method, path, q):
            if q.get("type") == "STOP_LOSS_LIMIT" and q.get("side") == "SELL":
                return 400, {"code": -2010, "msg": "Stop price would trigger immediately."}, None
            return handle(method, path, q)

        acct.handle = refuse_sell_stops
        run_probe(tmp_path, fake, K + 4, at=K, sl=sl)
        buy, _price, held = entry_of(fake)
        assert not stops(fake)
        (sell,) = [x for x in fake.account.orders.values() if x.side == "SELL"]
        assert (sell.type, sell.status) == ("MARKET", "FILLED")
        assert sell.qty == pytest.approx(floor_step(held), abs=1e-9)
        assert sell.time // MIN == buy.time // MIN  # right after the entry's fill
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    refused, sold = [r for r in orders if r.side == "sell"]
    assert (refused.intent, refused.status) == ("stop_loss (exchange) #1", "rejected")
    assert (sold.intent, sold.status) == ("stop_loss (exchange) #1 crossed", "closed")
    (ev,) = [d for _, k, d in events if k == "protective_exit"]
    assert ev["exchange"] and ev["crossed"]


@pytest.mark.parametrize("known", ["journal", "adopted"])
def test_after_a_restart_the_stop_is_known_and_an_exit_cancels_it_first(
    env,  # noqa: F811
    tmp_path,
    probe,
    known,
):
    """Stopped with the stop resting, started again with the same ``--run`` (``adopted``:
    the journal lost its row, so reconciliation adopts it by the run's client-id prefix):
    the exit decided after the restart cancels it, then sells the position once."""
    sl = 0.05
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        run_probe(tmp_path, fake, K + 3, at=K, sl=sl, exit_at=K + 6)
        (o,) = stops(fake)
        assert o.status == "NEW"
        if known == "adopted":
            j = journal_of(tmp_path / "run")
            with j.db:
                j.db.execute("DELETE FROM orders WHERE client_id = ?", (o.client_id,))
            j.close()
        run_probe(tmp_path, fake, 5, at=K, sl=sl, exit_at=K + 6)
        _buy, _price, held = entry_of(fake)
        assert o.status == "CANCELED" and o.executed == 0.0
        (sell,) = [x for x in fake.account.orders.values() if x.side == "SELL" and x is not o]
        assert (sell.type, sell.status) == ("MARKET", "FILLED")
        assert sell.qty == pytest.approx(floor_step(held), abs=1e-9)
        orders, _events = check_exchange_matches(fake, tmp_path / "run")
    (stop_row,) = [r for r in orders if r.client_id == o.client_id]
    assert stop_row.adopted == (known == "adopted")
    (exit_row,) = [r for r in orders if r.intent == "exit"]
    assert exit_row.bar_time == T0 + (K + 6) * MIN
    assert not [r for r in orders if r.status == "rejected"]


def test_the_watch_sends_no_second_sell_while_the_exchange_stop_is_open(
    env,  # noqa: F811
    tmp_path,
    probe,
    monkeypatch,
):
    """The exchange does not trigger the stop (its trigger switched off in the fake): the
    watch's own stop-loss fires on the bar computed by hand, fetches the exchange's stop
    and sends no sell of its own."""
    sl = 0.003
    with FakeBinance(now_ms=START) as fake:
        acct = FakeAccount(fake, {"USDT": 10_000.0})
        monkeypatch.setattr(acct, "_trigger", lambda o, t, row: None)
        market = fake.markets["BTCUSDT"]
        run_probe(tmp_path, fake, K + 3, at=K, sl=sl)
        buy, price, _held = entry_of(fake)
        hit = first_exit(market, buy.time // MIN * MIN, price, sl=sl)
        assert hit is not None and hit[1] == "stop_loss"
        run_probe(tmp_path, fake, (hit[0] - fake.now_ms) // MIN + 4, at=K, sl=sl)
        assert fake.now_ms > hit[0] + 2 * MIN
        (o,) = stops(fake)
        assert o.status == "NEW"  # still resting: the exchange did not trigger it
        assert [x.side for x in fake.account.orders.values()] == ["BUY", "SELL"]
        _orders, events = check_exchange_matches(fake, tmp_path / "run")
    kinds = [(k, d) for _, k, d in events if k in ("bar", "exchange_stop_checked")]
    (i,) = [n for n, (k, _) in enumerate(kinds) if k == "exchange_stop_checked"]
    # checked at the close of the bar the level was reached in, before its bar event
    assert kinds[i + 1][1]["time"] == hit[0]
    assert kinds[i][1]["status"] == "open"
    assert not [d for _, k, d in events if k == "protective_exit"]


@pytest.mark.parametrize("case", ["no flatten", "flatten", "flatten, stop filled meanwhile"])
def test_the_kill_switch_keeps_the_stop_or_cancels_it_before_flattening(env, tmp_path, case):  # noqa: F811
    from adapters.broker import BarRow
    from adapters.ccxt_broker import CcxtBroker
    from adapters.journal import Journal
    from adapters.killswitch import KillSwitch, KillSwitchTripped
    from adapters.orders import OrderManager, RetryPolicy
    from gogo2.config import LiveConfig
    from tests.test_live_orders import client

    with FakeBinance(now_ms=START) as fake:
        acct = FakeAccount(fake, {"USDT": 10_000.0})
        j = Journal(tmp_path)
        om = OrderManager(
            client(fake), j, "r", RetryPolicy(sleep=lambda s: None), clock_ms=fake.now
        )
        om.reconcile(("BTC/USDT",))
        s = "BTC/USDT"
        px = acct.price("BTCUSDT")
        om.submit(s, "buy", "market", 0.01, None, START - MIN, "entry long", px)
        stop = round(px * 0.95, 2)
        row = om.submit(
            s, "sell", "limit", 0.00999, round(stop * 0.998, 2), START - MIN,
            "stop_loss (exchange) #1", px, stop_price=stop,
        )  # fmt: skip
        j.set_meta(f"exstop.{s}", row.client_id)
        if case.endswith("meanwhile"):
            handle = acct.handle

            def fill_then_handle(method, path, q):
                if method == "DELETE":
                    with fake._lock:
                        o = acct._find(q)
                        if o is not None and o.status == "NEW":
                            acct._fill(o, o.qty, o.price, fake.now(), maker=False)
                return handle(method, path, q)

            acct.handle = fill_then_handle
        kill = KillSwitch(LiveConfig(max_drawdown=0.01), j)
        broker = CcxtBroker(
            om, (s,), None, kill, flatten_on_kill=case != "no flatten", stop_on_exchange=True
        )
        kill.check_equity(START, 10_000.0)  # the peak
        acct.balances["USDT"] -= 500.0  # a 5 % loss
        bar = BarRow(START, *(np.array([px]) for _ in range(4)), np.array([1.0]))
        with pytest.raises(KillSwitchTripped, match="drawdown"):
            broker.on_bar(bar)
        om.sync()  # the flatten's fills (a run stores them at its next start)
        j.close()
        _buy, stop_o, *rest = sorted(acct.orders.values(), key=lambda o: o.id)
        if case == "no flatten":  # it goes on protecting the position
            assert stop_o.status == "NEW" and not rest
        elif case == "flatten":  # canceled, then the whole position sold once
            assert stop_o.status == "CANCELED"
            (sell,) = rest
            assert (sell.type, sell.qty) == ("MARKET", pytest.approx(0.00999))
        else:  # the stop sold it: nothing more
            assert stop_o.status == "FILLED" and not rest
        assert acct.total("BTC") == pytest.approx(0.0 if rest or stop_o.executed else 0.00999)
        check_exchange_matches(fake, tmp_path)
