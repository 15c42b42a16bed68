"""Resting live entries expire after ``backtest.order_ttl`` bars, counted as the backtest
counts them (fake exchange, real ccxt client, live runner, fake clock).

The backtest's rule (``engine/nb.py``, ``run_bars_nb``): a limit or stop entry decided at
the close of bar k rests from bar k+1. Each later bar *of its symbol that has a candle*
first tries to fill it; when it does not fill on that bar its age grows by one, and when
the age reaches ``order_ttl`` it is dropped at that bar's close. A bar with no candle of
the symbol is skipped whole (no fill, no age). So with ``order_ttl = 3`` and no missing
candle the order can fill on bars k+1, k+2 and k+3 (the last allowed bar included) and is
gone from bar k+4 on; a missing candle among them moves the end one bar later.

Live, the runner sees bar k+3 after its close: its on_bar finds the order still open and
cancels it (event ``expired``), before the bar's ``bar`` event is journaled. Every
expectation below is computed here from the fake's candles (``kline_row``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ccxt")

from datasets.bars import MultiBars
from engine.signals import LIMIT, Signals
from strategies.base import Param, Strategy
from tests.fake_account import FakeAccount
from tests.fake_exchange import FakeBinance, kline_row
from tests.test_live_faults import check_exchange_matches, env  # noqa: F401
from tests.test_live_run import START, journal_of, run, settings_for

MIN = 60_000
T0 = START // MIN * MIN  # the first live bar's open (bar 0)
TTL = 3
CONFIG = f"backtest:\n  size_type: cash\n  size: 100\n  order_ttl: {TTL}\n"


class LimitEntries(Strategy):
    """A long limit entry at the fixed price ``price`` on the bar opened at bar index ``at``
    (minutes from ``origin``, epoch minutes); nothing else."""

    name = "limit_ttl_probe"
    base_timeframe = "1m"
    origin = Param(0, doc="epoch minute of bar 0")
    at = Param(-1, doc="bar deciding the entry, minutes from origin")
    price = Param(1.0, min=0.0, doc="the limit price")
    prices = Param("", doc="the limit price of each symbol, comma separated (else price)")

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: 2}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close
        hit = data.bars.time // MIN == int(self.origin) + int(self.at)
        if close.ndim > 1:
            hit = hit[:, None] & np.ones(close.shape, bool)
        return Signals(
            entries=hit.astype(np.int8),
            exits=np.zeros(close.shape, bool),
            order_type=np.full(close.shape, LIMIT, np.int8),
            price=self._prices(close.shape),
        )

    def _prices(self, shape: tuple) -> np.ndarray:
        if not self.prices:
            return np.full(shape, float(self.price))
        return np.broadcast_to([float(x) for x in self.prices.split(",")], shape).copy()


@pytest.fixture
def probe(monkeypatch):
    from strategies import registry

    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    registry.register(LimitEntries)
    return LimitEntries.name


def low(fake, k: int, market: str = "BTCUSDT") -> float:
    """The low of the fake's closed 1m candle of bar k."""
    return float(kline_row(fake.markets[market], T0 + k * MIN, MIN, T0 + (k + 10) * MIN)[3])


def run_probe(tmp_path, fake, bars: int, at: int, price: float, lines=None):
    settings = settings_for(tmp_path, CONFIG)
    params = (f"origin={T0 // MIN}", f"at={at}", f"price={price:.2f}")
    return run(
        settings,
        fake,
        tmp_path / "run",
        bars,
        [] if lines is None else lines,
        params=params,
        strategy=LimitEntries.name,
    )


def bar_event_index(events, k: int, t0: int = T0) -> int:
    """Position in the journal's events of the ``bar`` event of bar k (bar 0 opens at t0)."""
    (i,) = [
        i for i, (_, kind, d) in enumerate(events) if kind == "bar" and d["time"] == t0 + k * MIN
    ]
    return i


def expired_between(events, k0: int, k1: int, t0: int = T0) -> dict:
    """The one ``expired`` event, asserted to lie between the bar events of k0 and k1."""
    (i,) = [i for i, (_, kind, _) in enumerate(events) if kind == "expired"]
    assert bar_event_index(events, k0, t0) < i < bar_event_index(events, k1, t0)
    return events[i][2]


K = 5  # the deciding bar


def test_an_unfilled_limit_entry_is_canceled_at_the_close_of_its_ttl_th_bar(env, tmp_path, probe):  # noqa: F811
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        # by hand: a limit 5 % under the lowest low of the bars it could fill on
        price = round(min(low(fake, k) for k in range(K + 1, K + 8)) * 0.95, 2)
        lines: list[str] = []
        run_probe(tmp_path, fake, K + 7, at=K, price=price, lines=lines)
        (o,) = fake.account.orders.values()
        assert (o.type, o.side, o.status, o.executed) == ("LIMIT", "BUY", "CANCELED", 0.0)
        assert fake.account.total("USDT") == pytest.approx(10_000.0)  # its hold released
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    (row,) = orders
    assert row.bar_time == T0 + K * MIN and row.status == "canceled"
    assert row.reason.startswith("expired: unfilled after 3 bars of BTC/USDT")
    # bars K+1, K+2, K+3 counted: canceled while bar K+3 is processed
    got = expired_between(events, K + 2, K + 3)
    assert (got["bars"], got["ttl"]) == (3, 3)
    (cancel,) = [d for _, kind, d in events if kind == "cancel"]
    assert cancel["reason"] == row.reason
    assert any("expired" in t and "canceled" in t for t in lines)


def find_last_bar_fill(fake) -> tuple[int, float]:
    """(k, price): a deciding bar k and a limit that bars k+1 and k+2 do not reach and bar
    k+3 does (its low at or below), computed from the candles."""
    for k in range(3, 120):
        price = round(low(fake, k + 3) + 0.01, 2)
        if low(fake, k + 1) > price + 0.01 and low(fake, k + 2) > price + 0.01:
            return k, price
    raise AssertionError("no such bar in the fake's candles")


def test_a_limit_entry_filling_on_its_last_allowed_bar_is_not_canceled(env, tmp_path, probe):  # noqa: F811
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        k, price = find_last_bar_fill(fake)
        run_probe(tmp_path, fake, k + 6, at=k, price=price)
        (o,) = fake.account.orders.values()
        assert o.status == "FILLED"
        (trade,) = fake.account.trades
        assert trade["time"] == T0 + (k + 4) * MIN - 1  # inside bar k+3
        assert float(trade["price"]) == pytest.approx(price)
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    (row,) = orders
    assert row.status == "closed" and row.reason == ""
    assert not [e for e in events if e[1] in ("expired", "cancel")]


def test_the_count_survives_a_restart(env, tmp_path, probe):  # noqa: F811
    """Stopped after bar K+1 (age 1), started again: it still expires on bar K+3 (an age
    kept only in memory would start over and cancel on bar K+4)."""
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        price = round(min(low(fake, k) for k in range(K + 1, K + 8)) * 0.95, 2)
        run_probe(tmp_path, fake, K + 2, at=K, price=price)
        (o,) = fake.account.orders.values()
        assert o.status == "NEW"
        run_probe(tmp_path, fake, 4, at=K, price=price)  # bars K+2 .. K+5
        assert o.status == "CANCELED"
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    assert [e[1] for e in events].count("start") == 2
    got = expired_between(events, K + 2, K + 3)
    assert got["bars"] == 3
    (row,) = orders
    assert row.status == "canceled"


def test_bars_closed_while_stopped_count(env, tmp_path, probe):  # noqa: F811
    """Stopped after bar K+1 (age 1); bars K+2 .. K+5 close while the run is stopped, each
    with a BTC candle, so by the backtest's count the order expired at the close of bar K+3.
    Started again, the run counts the missed candles (fetched from the exchange) and cancels
    it before its first bar's decision, with the age capped at order_ttl; counting only the
    bars it saw would cancel it a bar later."""
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        price = round(min(low(fake, k) for k in range(K + 1, K + 10)) * 0.95, 2)
        run_probe(tmp_path, fake, K + 2, at=K, price=price)
        (o,) = fake.account.orders.values()
        assert o.status == "NEW"
        fake.now_ms += 4 * MIN  # down over bars K+2 .. K+5
        run_probe(tmp_path, fake, 2, at=K, price=price)
        assert o.status == "CANCELED"
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    starts = [i for i, (_, kind, _) in enumerate(events) if kind == "start"]
    assert len(starts) == 2
    (i,) = [i for i, (_, kind, _) in enumerate(events) if kind == "expired"]
    first_bar = min(j for j, (_, kind, _) in enumerate(events) if kind == "bar" and j > starts[1])
    assert starts[1] < i < first_bar  # at the restart's first bar, before its bar event
    assert events[i][2]["bars"] == TTL
    assert not [
        d for _, kind, d in events if kind == "bar" and K + 2 <= (d["time"] - T0) // MIN <= K + 5
    ]
    (row,) = orders
    assert row.status == "canceled" and row.filled == 0


def run_two(tmp_path, fake, bars: int, at: int, prices: str):
    """The probe on BTC/USDT and ETH/USDT (``prices``: the limit of each, comma separated)."""
    from runner import paper as session
    from runner.live_session import LiveOptions, run_live

    settings = settings_for(tmp_path, CONFIG)
    req, cls = session.validate(
        settings,
        mode="rest",
        exchange="binance",
        symbols="BTC/USDT,ETH/USDT",
        timeframe="1m",
        strategy=LimitEntries.name,
        params=[f"origin={T0 // MIN}", f"at={at}", f"prices={prices}"],
        max_bars=bars,
        api_url=fake.base_url,
    )

    return run_live(
        settings,
        req,
        cls,
        LiveOptions(tmp_path / "run"),
        say=lambda t: None,
        clock=fake.clock,
        sleep=fake.sleep,
        feed_options={"grace_s": 5.0},
        retry_sleep=lambda s: None,
    )


def test_a_missing_candle_of_its_symbol_does_not_count(env, tmp_path, probe):  # noqa: F811
    """No BTC candle at bar K+2 (ETH has one, so the bar comes with BTC's NaN): BTC's order
    counts bars K+1, K+3, K+4 and expires on bar K+4; ETH's expires on bar K+3."""
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        fake.add_gap("BTC/USDT", T0 + (K + 2) * MIN, T0 + (K + 3) * MIN)
        prices = ",".join(
            f"{round(min(low(fake, k, m) for k in range(K + 1, K + 8)) * 0.95, 2):.2f}"
            for m in ("BTCUSDT", "ETHUSDT")
        )
        run_two(tmp_path, fake, K + 7, at=K, prices=prices)
        assert [o.status for o in fake.account.orders.values()] == ["CANCELED", "CANCELED"]
        j = journal_of(tmp_path / "run")
        orders, events = j.orders(), j.events()
        j.close()
    by_cid = {r.client_id: r.symbol for r in orders}
    bars = [i for i, (_, kind, _) in enumerate(events) if kind == "bar"]
    times = {events[i][2]["time"]: i for i in bars}
    assert T0 + (K + 2) * MIN in times  # the bar came (ETH's candle)
    expired = {
        by_cid[d["client_id"]]: i for i, (_, kind, d) in enumerate(events) if kind == "expired"
    }
    assert times[T0 + (K + 2) * MIN] < expired["ETH/USDT"] < times[T0 + (K + 3) * MIN]
    assert times[T0 + (K + 3) * MIN] < expired["BTC/USDT"] < times[T0 + (K + 4) * MIN]


def test_a_fill_racing_the_expiry_cancel_is_recorded(env, tmp_path, probe):  # noqa: F811
    """The order fills just before the cancel reaches the exchange (Binance answers -2011
    "Unknown order sent."): the fill is journaled, the order is closed, not expired."""
    with FakeBinance(now_ms=START) as fake:
        acct = FakeAccount(fake, {"USDT": 10_000.0})
        price = round(min(low(fake, k) for k in range(K + 1, K + 8)) * 0.95, 2)
        handle = acct.handle

        def fill_then_handle(method, path, q):
            if method == "DELETE" and path == "/api/v3/order":
                with fake._lock:
                    o = acct._find(q)
                    if o is not None and o.status == "NEW":
                        acct._fill(o, o.qty, o.price, fake.now(), maker=True)
            return handle(method, path, q)

        acct.handle = fill_then_handle
        run_probe(tmp_path, fake, K + 6, at=K, price=price)
        (o,) = fake.account.orders.values()
        assert o.status == "FILLED"
        orders, events = check_exchange_matches(fake, tmp_path / "run")  # the fill is there
    (row,) = orders
    assert row.status == "closed" and row.filled == pytest.approx(o.qty)
    expired_between(events, K + 2, K + 3)  # it was due
    (raced,) = [d for _, kind, d in events if kind == "expiry_raced"]
    assert raced["status"] == "closed"
    assert not row.reason.startswith("expired")


@pytest.fixture
def stop_probe(monkeypatch):
    from strategies import registry
    from tests.test_live_stop_entries import StopEntries

    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    registry.register(StopEntries)
    return StopEntries


def test_an_untriggered_stop_limit_entry_expires_the_same_way(env, tmp_path, stop_probe):  # noqa: F811
    from tests.test_live_stop_entries import expected_stop, probe_params

    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        market = fake.markets["BTCUSDT"]
        _, stop, _ = expected_stop(market, K, 0.05)
        # by hand: no candle it could trigger on reaches the stop
        for k in range(K + 1, K + 8):
            assert float(kline_row(market, T0 + k * MIN, MIN, T0 + (k + 10) * MIN)[2]) < stop
        settings = settings_for(tmp_path, CONFIG)
        params = probe_params([K], 0.05)
        run(settings, fake, tmp_path / "run", K + 7, [], params=params, strategy=stop_probe.name)
        (o,) = fake.account.orders.values()
        assert (o.type, o.status, o.executed) == ("STOP_LOSS_LIMIT", "CANCELED", 0.0)
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    (row,) = orders
    assert row.status == "canceled" and row.reason.startswith("expired: unfilled after 3 bars")
    assert expired_between(events, K + 2, K + 3)["bars"] == 3
