"""Live stop entries on the fake exchange (real ccxt client, live runner, fake clock).

A long stop entry is a Binance spot ``STOP_LOSS_LIMIT`` BUY: ``stopPrice`` = the intent's
price, ``price`` = the stop raised by ``live.stop_limit_offset``. The fake models the
trigger from its own candles (``tests/fake_account.py``); every expectation below is
computed here from those candles (``kline_row``), not read from the code under test."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from datasets.bars import MultiBars
from engine.signals import STOP, Signals
from strategies.base import Param, Strategy
from tests.fake_account import FakeAccount
from tests.fake_exchange import FakeBinance, kline_row
from tests.test_live_faults import check_exchange_matches, env  # noqa: F401
from tests.test_live_run import START, journal_of, run, settings_for

MIN = 60_000
OFFSET = 0.002  # live.stop_limit_offset's default
SIZE = "backtest:\n  size_type: cash\n  size: 100\n"


class StopEntries(Strategy):
    """A long stop entry at ``close * (1 + above)`` on the bars opened at the minutes
    ``at``, an exit signal on those of ``exit_at`` (epoch minutes); nothing else."""

    name = "stop_entries_probe"
    base_timeframe = "1m"
    at = Param("", doc="epoch minutes of the deciding bars, comma separated")
    above = Param(0.01, min=-0.5, max=0.5, doc="stop distance above the close, fraction")
    exit_at = Param("", doc="epoch minutes of the bars deciding an exit, comma separated")

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: 2}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close

        def on(listed: str) -> np.ndarray:
            minutes = [int(x) for x in listed.split(",") if x]
            hit = np.isin(data.bars.time // MIN, minutes)
            return hit if close.ndim == 1 else hit[:, None] & np.ones(close.shape, bool)

        return Signals(
            entries=on(self.at).astype(np.int8),
            exits=on(self.exit_at),
            order_type=np.full(close.shape, STOP, np.int8),
            price=close * (1.0 + self.above),
        )


@pytest.fixture
def probe(monkeypatch):
    from strategies import registry

    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    registry.register(StopEntries)
    return StopEntries.name


def candle(market, t: int) -> tuple[float, float, float, float]:
    """(open, high, low, close) of the fake's closed 1m candle opened at ``t``."""
    row = kline_row(market, t, MIN, t + 10 * MIN)
    return float(row[1]), float(row[2]), float(row[3]), float(row[4])


def probe_params(at: list[int], above: float, exit_at: tuple[int, ...] = ()) -> tuple:
    """The probe's parameters deciding on the bars ``at`` (entries) and ``exit_at``
    (exits), given in minutes from START's minute (the first live bar's open)."""
    t0 = START // MIN
    entries = ",".join(str(t0 + k) for k in at)
    exits = ",".join(str(t0 + k) for k in exit_at)
    return (f"at={entries}", f"above={above}", f"exit_at={exits}")


def run_probe(tmp_path, fake, bars: int, at: list[int], above: float, exit_at=()):
    """The probe strategy under the live runner (``--run tmp_path/run``)."""
    settings = settings_for(tmp_path, SIZE)
    params = probe_params(at, above, exit_at)
    return run(settings, fake, tmp_path / "run", bars, [], params=params, strategy=StopEntries.name)


def expected_stop(market, k: int, above: float) -> tuple[float, float, float]:
    """(close of the deciding bar k, stop, limit) by hand: the stop is the close raised by
    ``above``, the limit the stop raised by the offset, both on the 0.01 tick."""
    close = candle(market, (START // MIN + k) * MIN)[3]
    stop = close * (1 + above)
    return close, round(stop, 2), round(stop * (1 + OFFSET), 2)


def creates(fake, type_: str | None = None) -> list[dict]:
    """The order requests the exchange received (of one type when given)."""
    return [
        q
        for m, p, q in fake.private_log
        if m == "POST" and p == "/api/v3/order" and (type_ is None or q.get("type") == type_)
    ]


def test_an_untriggered_stop_rests_on_the_exchange_and_fills_nothing(env, tmp_path, probe):  # noqa: F811
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        market = fake.markets["BTCUSDT"]
        run_probe(tmp_path, fake, 12, at=[3], above=0.01)
        _, stop, limit = expected_stop(market, 3, 0.01)
        # the request: a well-formed Binance STOP_LOSS_LIMIT, sized at its limit price
        (req,) = creates(fake)
        qty = int(100 / limit / 1e-5) * 1e-5  # 100 USDT at the limit, down to the lot step
        assert req["type"] == "STOP_LOSS_LIMIT" and req["side"] == "BUY"
        assert req["timeInForce"] == "GTC"
        assert float(req["stopPrice"]) == pytest.approx(stop, abs=0.006)
        assert float(req["price"]) == pytest.approx(limit, abs=0.006)
        assert float(req["quantity"]) == pytest.approx(qty, abs=1e-9)
        # by hand: no candle from the order's arrival to now reaches the stop
        (o,) = fake.account.orders.values()
        assert (START // MIN + 4) * MIN < o.time < (START // MIN + 5) * MIN  # the next bar
        t = o.time // MIN * MIN
        while t + MIN <= fake.now_ms:
            assert candle(market, t)[1] < stop
            t += MIN
        assert o.status == "NEW" and not o.body()["isWorking"] and o.executed == 0.0
        assert fake.account.trades == []
        # its funds are held at the limit price, nothing is spent
        assert fake.account.total("USDT") == pytest.approx(10_000.0)
        assert fake.account.balances["USDT"] == pytest.approx(10_000.0 - o.qty * o.price)
        orders, _ = check_exchange_matches(fake, tmp_path / "run")
    (row,) = orders
    assert (row.intent, row.type, row.status, row.filled) == ("entry long", "limit", "open", 0.0)


def test_a_stop_triggers_on_the_first_bar_reaching_it_and_fills_within_its_limit(
    env,  # noqa: F811
    tmp_path,
    probe,
):
    k, above = 20, 0.001
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        market = fake.markets["BTCUSDT"]
        run_probe(tmp_path, fake, 40, at=[k], above=above)
        _, stop, limit = expected_stop(market, k, above)
        (o,) = fake.account.orders.values()
        # by hand: the first candle from the order's arrival whose high reaches the stop;
        # in the candle it arrived in only the part after that counts (the price then to
        # the close, the candle formula's high of that part)
        t = o.time // MIN * MIN
        op, hi, _, cl = candle(market, t)
        op = round(market.level(o.time), 2)
        hi = round(max(op, cl) * 1.0005, 2)
        while hi < stop:
            t += MIN
            op, hi, _, _ = candle(market, t)
            assert t + MIN <= fake.now_ms, "the stop never triggered in the run"
        assert t > o.time // MIN * MIN + 3 * MIN  # it rested a few bars first
        price = max(op, stop)  # a marketable limit fills at the trigger price
        assert price <= limit
        (trade,) = fake.account.trades
        assert trade["time"] == t + MIN - 1  # filled in that bar
        assert float(trade["price"]) == pytest.approx(price, abs=0.006)
        assert trade["isMaker"] is False  # taker, as the backtest charges a stop entry
        assert o.status == "FILLED" and o.body()["isWorking"]
        # the limit's hold is released: paid the fill price, not the limit
        assert fake.account.total("USDT") == pytest.approx(10_000.0 - o.qty * float(trade["price"]))
        assert fake.account.total("BTC") == pytest.approx(o.qty * (1 - 0.001))
        orders, _ = check_exchange_matches(fake, tmp_path / "run")
    (row,) = orders
    assert (row.status, row.filled) == ("closed", pytest.approx(o.qty))


@pytest.mark.parametrize("above", [-0.001, 0.0])
def test_a_stop_already_crossed_at_the_close_is_sent_as_a_market_buy(env, tmp_path, probe, above):  # noqa: F811
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        market = fake.markets["BTCUSDT"]
        run_probe(tmp_path, fake, 6, at=[3], above=above)
        close, stop, _ = expected_stop(market, 3, above)
        assert stop <= close
        assert creates(fake, "STOP_LOSS_LIMIT") == []  # never sent as a stop
        (o,) = fake.account.orders.values()
        assert (o.type, o.side, o.status) == ("MARKET", "BUY", "FILLED")
        assert o.qty == pytest.approx(
            int(100 / close / 1e-5) * 1e-5, abs=1e-9
        )  # sized at the close
        (trade,) = fake.account.trades
        assert float(trade["price"]) == pytest.approx(round(market.level(o.time), 2))
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    (row,) = orders
    assert (row.intent, row.type, row.status) == ("entry long", "market", "closed")
    (why,) = [d["reason"] for _, kind, d in events if kind == "stop_crossed"]
    assert "at or below the last close" in why and "market buy" in why


def test_a_stop_the_exchange_refuses_as_triggering_immediately_becomes_a_market_buy(env, tmp_path):  # noqa: F811
    """The price passed the stop between the bar's close and the order: Binance answers
    -2010 "Stop price would trigger immediately." (ccxt: OrderImmediatelyFillable); the
    broker buys at market once, under its own client id, and never resends the stop."""
    from adapters.broker import Intents
    from adapters.ccxt_broker import CROSSED, CcxtBroker
    from adapters.journal import Journal
    from adapters.killswitch import KillSwitch
    from adapters.orders import OrderManager, RetryPolicy
    from engine import enums
    from engine.backtest import SimConfig
    from gogo2.config import LiveConfig
    from tests.test_live_orders import client

    sizing = SimConfig(size_type="cash", size=100.0)
    said: list[str] = []
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        j = Journal(tmp_path / "run")
        om = OrderManager(
            client(fake),
            j,
            "r",
            RetryPolicy(sleep=lambda s: None),
            clock_ms=fake.now,
            say=said.append,
        )
        om.reconcile(("BTC/USDT",))
        broker = CcxtBroker(om, ("BTC/USDT",), sizing, KillSwitch(LiveConfig(), j))
        last = fake.account.price("BTCUSDT")
        broker.close["BTC/USDT"] = last - 5.0  # the bar closed below the stop ...
        stop = last - 1.0  # ... the exchange's price is above it now
        it = Intents.empty(1)
        it.entries[0, 0] = 1
        it.order_type[0, 0] = enums.STOP
        it.price[0, 0] = stop
        it.flags[enums.F_ORDER_TYPE] = it.flags[enums.F_PRICE] = 1
        broker.submit(START, it)
        refused, sent = creates(fake)
        assert refused["type"] == "STOP_LOSS_LIMIT" and sent["type"] == "MARKET"
        (o,) = fake.account.orders.values()  # the refused stop never existed there
        assert (o.type, o.status) == ("MARKET", "FILLED")
        # sized for the stop-limit's limit price, the budget the decision was given
        limit = stop * (1 + OFFSET)
        assert o.qty == pytest.approx(int(100 / round(limit, 2) / 1e-5) * 1e-5, abs=1e-9)
        rows = {r.intent: r for r in j.orders()}
        assert rows["entry long"].status == "rejected"
        assert "OrderImmediatelyFillable" in rows["entry long"].reason
        assert rows[CROSSED].status == "closed" and rows[CROSSED].exchange_id == str(o.id)
        (why,) = [d["reason"] for _, kind, d in j.events() if kind == "stop_crossed"]
        assert "would trigger immediately" in why and why in said  # journaled and shown
        # the same decision again (a restarted bar): nothing is sent
        broker.submit(START, it)
        assert len(creates(fake)) == 2
        om.sync()
        j.close()
        check_exchange_matches(fake, tmp_path / "run")


def test_a_new_entry_cancels_and_replaces_an_untriggered_stop(env, tmp_path, probe):  # noqa: F811
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        market = fake.markets["BTCUSDT"]
        run_probe(tmp_path, fake, 10, at=[3, 6], above=0.01)
        first, second = sorted(fake.account.orders.values(), key=lambda o: o.id)
        assert (first.status, second.status) == ("CANCELED", "NEW")
        assert first.executed == second.executed == 0.0 and fake.account.trades == []
        for k, o in ((3, first), (6, second)):
            _, stop, limit = expected_stop(market, k, 0.01)
            assert (o.stop, o.price) == (
                pytest.approx(stop, abs=0.006),
                pytest.approx(limit, abs=0.006),
            )
        # the canceled stop's hold is released; only the new one's remains
        assert fake.account.balances["USDT"] == pytest.approx(10_000.0 - second.qty * second.price)
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    assert [(r.status, r.intent) for r in orders] == [
        ("canceled", "entry long"),
        ("open", "entry long"),
    ]
    cancels = [d for _, kind, d in events if kind == "cancel"]
    assert cancels == [{"client_id": first.client_id, "reason": "replaced by a new entry"}]


def test_an_exit_signal_cancels_an_untriggered_stop(env, tmp_path, probe):  # noqa: F811
    """As in the backtest, an exit signal of the symbol cancels its resting entry."""
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        run_probe(tmp_path, fake, 10, at=[3], above=0.01, exit_at=(6,))
        (o,) = fake.account.orders.values()
        assert (o.type, o.status, o.executed) == ("STOP_LOSS_LIMIT", "CANCELED", 0.0)
        assert fake.account.balances["USDT"] == pytest.approx(10_000.0)  # nothing held
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    assert [(r.status, r.intent) for r in orders] == [("canceled", "entry long")]
    cancels = [d for _, kind, d in events if kind == "cancel"]
    assert cancels == [{"client_id": o.client_id, "reason": "canceled by an exit signal"}]


def test_kill_9_with_an_untriggered_stop_then_restart_adopts_it_and_fills_it_once(
    env,  # noqa: F811
    tmp_path,
    probe,
):
    from tests.test_live_faults import kill_9_after_send

    k, above = 20, 0.001
    settings_for(tmp_path, SIZE)  # writes the child's config
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        market = fake.markets["BTCUSDT"]
        kill_9_after_send(
            fake,
            tmp_path / "c.yaml",
            tmp_path / "run",
            kill_at=1,
            strategy=StopEntries.name,
            params=probe_params([k], above),
            setup="from strategies import registry\n"
            "from tests.test_live_stop_entries import StopEntries\n"
            "registry.register(StopEntries)",
        )
        (o,) = fake.account.orders.values()
        assert (o.type, o.status) == ("STOP_LOSS_LIMIT", "NEW")  # on the exchange, resting
        j = journal_of(tmp_path / "run")
        (row,) = j.orders()
        assert row.status == "pending" and row.client_id == o.client_id  # answer never written
        j.close()
        # restart: the pending stop is found by its client id and taken as it stands
        run_probe(tmp_path, fake, 3, at=[k], above=above)
        assert len(creates(fake)) == 1 and o.status == "NEW"
        orders, _ = check_exchange_matches(fake, tmp_path / "run")
        assert [(r.status, r.exchange_id) for r in orders] == [("open", str(o.id))]
        # on, until it triggers: one fill, at the price the candles give
        run_probe(tmp_path, fake, 20, at=[k], above=above)
        _, stop, limit = expected_stop(market, k, above)
        assert len(creates(fake)) == 1 and o.status == "FILLED"
        (trade,) = fake.account.trades
        assert stop - 0.006 <= float(trade["price"]) <= limit  # at the stop, or a gap's open
        orders, _ = check_exchange_matches(fake, tmp_path / "run")
    assert [r.status for r in orders] == ["closed"]


@pytest.mark.parametrize("gap_min, through_limit", [(2, False), (20, True)])
def test_a_stop_gapped_through_by_an_outage_fills_at_the_open_within_its_limit_else_rests(
    env,  # noqa: F811
    tmp_path,
    gap_min,
    through_limit,
):
    """After an outage the first candle opens above the stop: the stop triggers there; at
    or below the limit it fills at that open (a taker, as the backtest fills a gapped
    stop), beyond the limit the order rests as a limit buy and fills nothing (where the
    backtest would still fill at the open)."""
    from tests.test_live_orders import SYM, T0, assert_journal_equals_exchange, manager

    now = T0 + 12 * 3_600_000 + 30_000  # mid-candle, the fake's wave rising
    with FakeBinance(now_ms=now) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        market = fake.markets["BTCUSDT"]
        om = manager(fake, tmp_path)
        om.reconcile((SYM,))
        here = now // MIN * MIN
        # above what the rest of this candle reaches (the price now to its close)
        rest_high = round(max(round(market.level(now), 2), candle(market, here)[3]) * 1.0005, 2)
        stop = round(rest_high + 1.0, 2)
        limit = round(stop * (1 + OFFSET), 2)
        om.submit(SYM, "buy", "limit", 0.01, limit, here, "entry long", limit, stop_price=stop)
        fake.add_gap(SYM, here + MIN, here + MIN + gap_min * MIN)
        first = here + MIN + gap_min * MIN  # the first candle after the outage
        fake.now_ms = first + 5 * MIN
        om.sync()
        (o,) = fake.account.orders.values()
        op = candle(market, first)[0]
        assert op > stop and (op > limit) == through_limit  # the outage gapped through
        assert o.body()["isWorking"]  # triggered
        if not through_limit:
            (trade,) = fake.account.trades
            assert float(trade["price"]) == op and trade["time"] == first + MIN - 1
            assert trade["isMaker"] is False
            assert o.status == "FILLED"
        else:
            assert fake.account.trades == [] and o.status == "NEW"
            for t in range(first + MIN, fake.now_ms - MIN + 1, MIN):
                assert candle(market, t)[2] > limit  # no later low came back to the limit
            om.cancel(om.journal.order(o.client_id), "test")
            assert fake.account.balances["USDT"] == pytest.approx(10_000.0)  # hold released
        assert_journal_equals_exchange(om, fake)
        om.journal.close()
