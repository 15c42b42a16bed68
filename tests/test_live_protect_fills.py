"""The watch of a live protective exit follows the entry's real fills: a partial fill, a
fill in pieces at different prices (volume-weighted), an entry filled while the run was
down (a missed fill found by reconciliation), and a strategy exit decided at the close a
protective exit fired at. The exchange broker is driven bar by bar on the fake exchange
(real ccxt client); trigger bars come from :func:`tests.test_live_protect.first_exit`,
by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from tests.fake_account import FakeAccount
from tests.fake_exchange import FakeBinance
from tests.test_live_faults import NoisyMarket, check_exchange_matches
from tests.test_live_orders import env, manager  # noqa: F401
from tests.test_live_protect import MIN, candle, check_exit_order, first_exit
from tests.test_live_run import START

SYM = "BTC/USDT"
T0 = START // MIN * MIN + 30 * MIN
QTY = 0.01


class Desk:
    """One run's order manager and exchange broker on the fake, and its bars."""

    def __init__(self, fake, market, run_dir) -> None:
        from adapters.ccxt_broker import CcxtBroker
        from adapters.killswitch import KillSwitch
        from engine.backtest import SimConfig
        from gogo2.config import LiveConfig

        self.fake, self.market = fake, market
        self.om = manager(fake, run_dir)
        self.om.reconcile((SYM,))
        limits = LiveConfig(max_drawdown=None, max_daily_loss=None)
        cfg = SimConfig(size_type="units", size=QTY)
        self.broker = CcxtBroker(self.om, (SYM,), cfg, KillSwitch(limits, self.om.journal))
        self.broker.balances = self.om.balances()

    def bar(self, t: int) -> None:
        """The bar opened at ``t`` has closed: the broker sees it (2 s after its close)."""
        from adapters.broker import BarRow

        self.fake.now_ms = t + MIN + 2_000
        o, h, lo, c = (np.array([x]) for x in candle(self.market, t))
        self.broker.on_bar(BarRow(t, o, h, lo, c, np.array([1.0])))

    def decide(self, t: int, entry=0, exit=False, limit=math.nan, **fracs) -> None:
        """The strategy's decision at the close of ``t`` (after :meth:`bar`)."""
        from adapters.broker import Intents
        from engine import enums

        it = Intents.empty(1)
        it.entries[0, 0] = entry
        it.exits[0, 0] = exit
        if math.isfinite(limit):
            it.order_type[0, 0] = enums.LIMIT
            it.price[0, 0] = limit
            it.flags[enums.F_ORDER_TYPE] = it.flags[enums.F_PRICE] = 1
        for name, flag in (("sl", enums.F_SL), ("tp", enums.F_TP), ("trail", enums.F_TRAIL)):
            if name in fracs:
                getattr(it, name)[0, 0] = fracs[name]
                it.flags[flag] = 1
        self.broker.submit(t, it)

    def watch(self) -> dict:
        return self.broker.protect.levels(0)

    def fills(self):
        return self.om.journal.fills()

    def orders(self):
        return self.om.journal.orders()


@pytest.fixture
def desk(env, tmp_path):  # noqa: F811
    market = NoisyMarket("BTC", "USDT", 16_500.0)
    with FakeBinance([market], T0) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        d = Desk(fake, market, tmp_path / "run")
        yield d
        d.om.journal.close()


def entry_of(desk):
    return next(o for o in desk.orders() if o.intent == "entry long")


def test_a_strategy_exit_at_the_close_a_take_profit_fired_sells_nothing_more(desk):
    tp = 0.002
    desk.bar(T0)
    desk.decide(T0, entry=1, tp=tp)  # a market entry: it fills at once, in the next bar
    desk.om.sync()
    (f,) = desk.fills()
    start = f["time"] // MIN * MIN
    assert start == T0 + MIN
    hit = first_exit(desk.market, start, f["price"], tp=tp, end=start + 60 * MIN)
    assert hit is not None and hit[1] == "take_profit"
    for t in range(T0 + MIN, hit[0] + MIN, MIN):
        desk.bar(t)
        assert desk.broker.protect.armed(0) == (t < hit[0])
    desk.decide(hit[0], exit=True)  # the strategy leaves at the same close
    sells = [o for o in desk.orders() if o.side == "sell"]
    assert [(o.intent, o.bar_time, o.status) for o in sells] == [("take_profit", hit[0], "closed")]
    check_exit_order(sells[0], desk.fills())
    check_exchange_matches(desk.fake, desk.om.journal.dir)


def test_a_partial_fill_is_watched_with_the_quantity_held_then_all_of_it(desk):
    sl = 0.001
    desk.bar(T0)
    # a limit 0.1 % under the last close: it rests until a candle's low reaches it
    limit = round(candle(desk.market, T0)[3] * 0.999, 2)
    desk.fake.account.partial_next(0.4)
    desk.decide(T0, entry=1, limit=limit, sl=sl)
    t = T0 + MIN
    while not desk.fills():
        desk.bar(t)
        assert desk.broker.protect.armed(0) == bool(desk.fills())
        t += MIN
    (first,) = desk.fills()
    start = first["time"] // MIN * MIN  # the candle that reached the limit: 40 % filled
    assert start == t - MIN and first["price"] == limit
    assert candle(desk.market, start)[2] <= limit
    assert first["qty"] == pytest.approx(0.4 * QTY)
    w = desk.watch()
    assert w["qty"] == pytest.approx(first["qty"] * (1 - 0.001))  # the fee is taken in BTC
    assert w["price"] == limit and w["stop"] == pytest.approx(limit * (1 - sl))
    hit = first_exit(desk.market, start, limit, sl=sl, inside=True, end=start + 90 * MIN)
    assert hit is not None
    while len(desk.fills()) < 2:
        assert t < hit[0]
        desk.bar(t)
        t += MIN
    # the rest filled at the next candle reaching the limit: all of it is watched
    assert desk.watch()["qty"] == pytest.approx(QTY * (1 - 0.001))
    while t <= hit[0]:
        desk.bar(t)
        t += MIN
    (stop,) = [o for o in desk.orders() if o.side == "sell"]
    assert (stop.intent, stop.bar_time) == ("stop_loss", hit[0])
    check_exit_order(stop, desk.fills())
    check_exchange_matches(desk.fake, desk.om.journal.dir)


def partial_then_stop(market, sl: float):
    """By hand: a decision bar whose limit (0.1 % under its close) is reached by a candle
    that also reaches the stop under the fill (the fake's candle low is 0.05 % under the
    lower of its open and close), a later candle coming back to the limit. (decision bar,
    limit, the fill's bar, the first later bar reaching the limit.)"""
    for d in range(0, 300):
        t_dec = T0 + d * MIN
        limit = round(candle(market, t_dec)[3] * 0.999, 2)
        start = t_dec + MIN
        while candle(market, start)[2] > limit:
            start += MIN
        hit = first_exit(market, start, limit, sl=sl, inside=True, end=start + MIN)
        back = [
            t for t in range(start + MIN, start + 30 * MIN, MIN) if candle(market, t)[2] <= limit
        ]
        if hit is not None and back:
            assert hit == (start, "stop_loss")
            return t_dec, limit, start, back[0]
    pytest.fail("no such bar in the fake's first five hours")


def race_cancel(desk) -> None:
    """The exchange fills the rest of an order at its limit just before a cancel of it
    arrives (Binance then answers -2011 "Unknown order sent.")."""
    acct, fake = desk.fake.account, desk.fake
    handle = acct.handle

    def fill_then_handle(method, path, q):
        if method == "DELETE" and path == "/api/v3/order":
            with fake._lock:
                o = acct._find(q)
                if o is not None and o.status in ("NEW", "PARTIALLY_FILLED"):
                    acct._fill(o, o.qty - o.executed, o.price, fake.now(), maker=True)
        return handle(method, path, q)

    acct.handle = fill_then_handle


def test_a_protective_exit_cancels_the_rest_of_a_partly_filled_entry(desk):
    """An entry filled in part, then its stop-loss: the exit sells what was bought and
    cancels the entry's rest, which would otherwise fill later and open a new position the
    backtest never holds (it has no partial fills: its entry is filled, then closed)."""
    sl = 0.0002
    t_dec, limit, start, back = partial_then_stop(desk.market, sl)
    desk.bar(t_dec)
    desk.fake.account.partial_next(0.4)
    desk.decide(t_dec, entry=1, limit=limit, sl=sl)
    for t in range(t_dec + MIN, back + 2 * MIN, MIN):
        desk.bar(t)
    entry = entry_of(desk)
    fills = desk.fills()
    buys = [f for f in fills if f["side"] == "buy"]
    assert [(f["time"] // MIN * MIN, f["qty"]) for f in buys] == [(start, pytest.approx(0.4 * QTY))]
    (sell,) = [o for o in desk.orders() if o.side == "sell"]
    assert (sell.intent, sell.bar_time) == ("stop_loss", start)
    check_exit_order(sell, fills)
    # the rest was canceled with the exit, before the candle that would have filled it
    assert (entry.status, entry.filled) == ("canceled", pytest.approx(0.4 * QTY))
    assert desk.fake.account.total("BTC") < 1e-5  # flat: less than a lot step of dust
    assert not desk.broker.protect.armed(0)
    check_exchange_matches(desk.fake, desk.om.journal.dir)


def test_a_fill_racing_the_protective_exits_cancel_is_sold_too(desk):
    sl = 0.0002
    t_dec, limit, start, _ = partial_then_stop(desk.market, sl)
    desk.bar(t_dec)
    desk.fake.account.partial_next(0.4)
    desk.decide(t_dec, entry=1, limit=limit, sl=sl)
    race_cancel(desk)
    for t in range(t_dec + MIN, start + MIN, MIN):
        desk.bar(t)
    entry = entry_of(desk)
    assert (entry.status, entry.filled) == ("closed", pytest.approx(QTY))  # filled whole
    (sell,) = [o for o in desk.orders() if o.side == "sell"]
    assert (sell.intent, sell.bar_time, sell.status) == ("stop_loss", start, "closed")
    assert sell.amount == pytest.approx(int(QTY * 0.999 / 1e-5) * 1e-5)  # all of it
    assert desk.fake.account.total("BTC") < 1e-5
    check_exchange_matches(desk.fake, desk.om.journal.dir)


def test_a_fill_racing_an_exit_signals_cancel_is_sold_too(desk):
    t_dec, limit, start, _ = partial_then_stop(desk.market, 0.0002)
    desk.bar(t_dec)
    desk.fake.account.partial_next(0.4)
    desk.decide(t_dec, entry=1, limit=limit)  # no protective exit
    for t in range(t_dec + MIN, start + MIN, MIN):
        desk.bar(t)
    assert entry_of(desk).filled == pytest.approx(0.4 * QTY)
    race_cancel(desk)
    desk.decide(start, exit=True)  # the strategy leaves: the rest fills as it is canceled
    (sell,) = [o for o in desk.orders() if o.side == "sell"]
    assert (sell.intent, sell.status) == ("exit", "closed")
    assert sell.amount == pytest.approx(int(QTY * 0.999 / 1e-5) * 1e-5)  # all of it
    assert desk.fake.account.total("BTC") < 1e-5
    # the racing fill is reported to the runner with the next bar's fills
    got = desk.broker.on_bar(_bar(desk, start + MIN))
    assert sorted((f.side, round(f.qty, 8)) for f in got) == [
        (-1, round(sell.amount, 8)),
        (1, round(0.6 * QTY, 8)),
    ]
    check_exchange_matches(desk.fake, desk.om.journal.dir)


def test_a_new_entry_is_not_sent_when_the_one_it_replaces_fills_as_it_is_canceled(desk):
    desk.bar(T0)
    limit = round(candle(desk.market, T0)[3] * 0.97, 2)  # 3 % under: rests
    desk.decide(T0, entry=1, limit=limit)
    desk.bar(T0 + MIN)
    assert not desk.fills()
    race_cancel(desk)
    desk.decide(T0 + MIN, entry=1)  # a new entry replaces it; the old one fills meanwhile
    (buy,) = [o for o in desk.fake.account.orders.values() if o.side == "BUY"]
    assert (buy.type, buy.status) == ("LIMIT", "FILLED")  # no second buy was sent
    assert [o.intent for o in desk.orders()] == ["entry long"]
    check_exchange_matches(desk.fake, desk.om.journal.dir)


def _bar(desk, t: int):
    from adapters.broker import BarRow

    desk.fake.now_ms = t + MIN + 2_000
    o, h, lo, c = (np.array([x]) for x in candle(desk.market, t))
    return BarRow(t, o, h, lo, c, np.array([1.0]))


def test_an_entry_filled_in_pieces_is_watched_from_its_volume_weighted_price(desk):
    tp, sl = 0.0002, 0.004
    desk.bar(T0)
    # a limit above the market: 30 % fills at once at the market price, the rest at the
    # limit when the candle comes back to it
    limit = round(desk.fake.account.price("BTCUSDT") * 1.0002, 2)
    desk.fake.account.taker_part_next(0.3)
    desk.decide(T0, entry=1, limit=limit, sl=sl, tp=tp)
    desk.bar(T0 + MIN)
    fills = desk.fills()
    assert len(fills) == 2 and fills[0]["price"] < limit == fills[1]["price"]
    assert limit <= candle(desk.market, T0 + MIN)[1]  # the rest filled inside the candle
    qty = sum(f["qty"] for f in fills)
    vwap = (fills[0]["qty"] * fills[0]["price"] + fills[1]["qty"] * fills[1]["price"]) / qty
    assert {f["time"] // MIN * MIN for f in fills} == {T0 + MIN}
    w = desk.watch()
    assert w["price"] == pytest.approx(vwap) and w["qty"] == pytest.approx(qty * 0.999)
    assert w["stop"] == pytest.approx(vwap * (1 - sl))
    assert w["target"] == pytest.approx(vwap * (1 + tp))
    # a limit fills inside its bar: on that bar only the stop counts (its high, which may
    # have come before the fill, reaches the target here)
    hit = first_exit(desk.market, T0 + MIN, vwap, sl=sl, tp=tp, inside=True, end=T0 + 90 * MIN)
    assert hit is not None and hit[0] > T0 + MIN
    assert candle(desk.market, T0 + MIN)[1] >= vwap * (1 + tp)
    for t in range(T0 + 2 * MIN, hit[0] + MIN, MIN):
        desk.bar(t)
    (sell,) = [o for o in desk.orders() if o.side == "sell"]
    assert (sell.intent, sell.bar_time) == (hit[1], hit[0])
    check_exit_order(sell, desk.fills())
    check_exchange_matches(desk.fake, desk.om.journal.dir)


def test_an_entry_filled_while_down_is_watched_from_its_fill_and_exits_at_restart(desk, tmp_path):
    sl = 0.0005
    desk.bar(T0)
    limit = round(candle(desk.market, T0)[3] * 0.998, 2)
    desk.decide(T0, entry=1, limit=limit, sl=sl)
    desk.om.journal.close()  # the process is gone; the market goes on
    # by hand: the candle that reaches the limit, then the stop from there
    start = T0 + MIN
    while candle(desk.market, start)[2] > limit:
        start += MIN
    hit = first_exit(desk.market, start, limit, sl=sl, inside=True, end=start + 240 * MIN)
    assert hit is not None and hit[0] > start + 60 * MIN  # three hours down
    restart = hit[0] + 5 * MIN + 7_000
    desk.fake.now_ms = restart
    again = Desk(desk.fake, desk.market, tmp_path / "run")  # reconciles at start
    (f,) = again.fills()
    assert f["missed"] and f["price"] == limit and f["time"] // MIN * MIN == start
    again.broker.resume()
    (sell,) = [o for o in again.orders() if o.side == "sell"]
    assert (sell.intent, sell.bar_time, sell.status) == ("stop_loss", hit[0], "closed")
    (ev,) = again.om.journal.events("protective_exit")
    assert ev[0] == restart and ev[2]["late"]  # sent at once, at the restart
    (armed,) = again.om.journal.events("protect_armed")
    assert armed[2]["price"] == limit
    assert armed[2]["qty"] == pytest.approx(QTY * 0.999)
    check_exit_order(sell, again.fills())
    again.broker.resume()  # again: nothing more
    assert len([o for o in again.orders() if o.side == "sell"]) == 1
    check_exchange_matches(again.fake, tmp_path / "run")
    again.om.journal.close()


def test_more_fills_of_the_watched_entry_move_its_levels_to_their_weighted_price():
    from adapters.protect import ProtectiveExits

    w = ProtectiveExits(("BTC/USDT",), None, MIN)
    # 0.004 filled at 100 inside the bar opened at T0; stop 2 %, target 3 %, trail 1 %
    w.arm(0, "e1", 0.004, 0.004, 100.0, (0.02, 0.03, 0.01), T0, True)
    assert w.levels(0)["stop"] == pytest.approx(99.0)  # the trailing level 100 * 0.99
    assert w.levels(0)["target"] == pytest.approx(103.0)
    # that bar: only its stop counts (its high 104 came before the fill); best price = close
    assert w.step(T0, *([x] for x in (100.0, 104.0, 99.5, 101.0))) == []
    assert w.levels(0)["peak"] == 101.0
    # 0.006 more at 105: 0.01 at (0.004 * 100 + 0.006 * 105) / 0.01 = 103
    w.refill(0, 0.01, 103.0, 0.00999)
    lv = w.levels(0)
    assert (lv["qty"], lv["price"], lv["peak"]) == (0.00999, 103.0, 103.0)
    assert lv["stop"] == pytest.approx(max(103.0 * 0.98, 103.0 * 0.99))
    assert lv["target"] == pytest.approx(103.0 * 1.03)
    # a bar stepped already is left alone, whatever its range
    assert w.step(T0, *([x] for x in (100.0, 104.0, 90.0, 101.0))) == []
    # the next bar: its low 102.5 stays above the stop 101.97, its high reaches 106.09
    assert w.step(T0 + MIN, *([x] for x in (103.5, 106.2, 102.5, 104.0))) == [(0, "take_profit")]
    assert not w.armed(0) and w.fired[0]
