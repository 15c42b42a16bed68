"""Order manager and journal against the fake exchange's private endpoints (real ccxt
client, loopback server): every fault leaves one order per decision and the journal equal
to the exchange."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ccxt")

from tests.fake_account import FakeAccount
from tests.fake_exchange import FakeBinance

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "KEY-live-test-4f1a", "SECRET-live-test-9c2b"
T0 = 1_700_000_040_000  # a minute boundary
SYM = "BTC/USDT"


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("GOGO2_API_KEY", KEY)
    monkeypatch.setenv("GOGO2_API_SECRET", SECRET)


@pytest.fixture
def fake(env):
    with FakeBinance(now_ms=T0, timeout_delay=0.5) as f:
        FakeAccount(f, {"USDT": 10_000.0, "BTC": 0.0})
        yield f


def client(fake):
    from adapters.exchange import private_client
    from gogo2.config import ExchangeConfig

    ex = private_client("binance", ExchangeConfig(timeout_ms=250), fake.base_url)
    ex.enableRateLimit = False
    ex.load_markets()
    return ex


def manager(fake, run_dir, **kw):
    from adapters.journal import Journal
    from adapters.orders import OrderManager, RetryPolicy

    waits: list[float] = []
    pol = RetryPolicy(retries=6, base_s=0.1, sleep=waits.append)
    om = OrderManager(client(fake), Journal(run_dir), "run-a", pol, clock_ms=fake.now, **kw)
    om.waits = waits
    return om


def assert_journal_equals_exchange(om, fake):
    """Every exchange order is in the journal with the same status and filled amount, and
    the journal's fills are the exchange's trades."""
    acct = fake.account
    rows = {r.exchange_id: r for r in om.journal.orders() if r.exchange_id}
    status = {"NEW": "open", "PARTIALLY_FILLED": "open", "FILLED": "closed", "CANCELED": "canceled"}
    for o in acct.orders.values():
        r = rows[str(o.id)]
        assert r.status == status[o.status]
        assert r.filled == pytest.approx(o.executed)
    assert len(rows) == len(acct.orders)
    trades = {str(t["id"]): float(t["qty"]) for t in acct.trades}
    got = {f["trade_id"]: f["qty"] for f in om.journal.fills()}
    assert got == pytest.approx(trades)


def test_retry_policy_backoff_bounds():
    import random

    from adapters.orders import RetryPolicy

    pol = RetryPolicy(retries=5, base_s=1.0, cap_s=4.0, max_wait_s=100.0, rng=random.Random(3))
    d = list(pol.delays())
    # d_i = min(4, 2**(i-1)) = 1, 2, 4, 4, 4; each drawn in [d/2, d]
    for got, cap in zip(d, [1, 2, 4, 4, 4], strict=True):
        assert cap / 2 <= got <= cap
    short = RetryPolicy(retries=5, base_s=1.0, cap_s=4.0, max_wait_s=2.0, rng=random.Random(3))
    assert sum(short.delays()) <= 2.0


def test_client_order_id_is_a_pure_function_of_the_decision():
    from adapters.orders import client_order_id

    a = client_order_id("run-a", T0, SYM, "entry long")
    assert a == client_order_id("run-a", T0, SYM, "entry long")
    assert a != client_order_id("run-a", T0 + 60_000, SYM, "entry long")
    assert a != client_order_id("run-b", T0, SYM, "entry long")
    assert len(a) <= 36 and a.isalnum()


def test_timeout_on_submit_after_the_exchange_accepted_places_one_order(fake, tmp_path):
    om = manager(fake, tmp_path)
    fake.account.fault_next(1, "accept_timeout")
    row = om.submit(SYM, "buy", "market", 0.01, None, T0, "entry long", 16_000.0)
    assert fake.account.creates() == 1  # asked by client id, never resent
    assert len(fake.account.orders) == 1
    assert row.status == "closed" and row.filled == pytest.approx(0.01)
    assert om.stats.resolved_by_query == 1
    om.sync()
    assert_journal_equals_exchange(om, fake)
    # the same decision again (a restarted bar) sends nothing
    assert om.submit(SYM, "buy", "market", 0.01, None, T0, "entry long", 16_000.0) is None
    assert fake.account.creates() == 1


@pytest.mark.parametrize("kind", ["503", "429"])
def test_5xx_and_429_storm_are_retried_without_duplicates(fake, tmp_path, kind):
    om = manager(fake, tmp_path)
    fake.account.fault_next(3, kind)
    row = om.submit(SYM, "buy", "market", 0.01, None, T0, "entry long", 16_000.0)
    assert fake.account.creates() == 4  # 3 refused + 1 accepted
    assert len(fake.account.orders) == 1 and row.status == "closed"
    assert len(om.waits) == 3 and all(w > 0 for w in om.waits)
    om.sync()
    assert_journal_equals_exchange(om, fake)


def test_retry_bound_leaves_the_order_pending_for_reconciliation(fake, tmp_path):
    from adapters.orders import ExchangeDownError

    om = manager(fake, tmp_path)
    fake.account.fault_next(50, "503")
    fake.account.fault_next(50, "503", "GET", "/api/v3/order")
    with pytest.raises(ExchangeDownError):
        om.submit(SYM, "buy", "market", 0.01, None, T0, "entry long", 16_000.0)
    assert om.journal.orders()[0].status == "pending"
    fake.account.faults.clear()
    om.reconcile((SYM,))  # not on the exchange: it never arrived
    assert om.journal.orders()[0].status == "rejected"
    assert len(fake.account.orders) == 0


def test_insufficient_funds_is_rejected_once_and_journaled(fake, tmp_path):
    om = manager(fake, tmp_path)
    said = []
    om.say = said.append
    row = om.submit(SYM, "buy", "market", 5.0, None, T0, "entry long", 16_000.0)
    assert fake.account.creates() == 1 and not om.waits
    assert row.status == "rejected" and "InsufficientFunds" in row.reason
    assert om.journal.events("rejected") and "InsufficientFunds" in said[0]


def test_below_minimum_is_refused_before_sending_and_price_rounded_to_tick(fake, tmp_path):
    om = manager(fake, tmp_path)
    # 0.0002 BTC at ~16,000 is ~3.2 USDT < the 5 USDT minimum cost
    assert om.submit(SYM, "buy", "market", 0.0002, None, T0, "entry long", 16_000.0) is None
    assert fake.account.creates() == 0
    assert "below the minimum" in om.journal.events("skipped")[0][2]["reason"]
    # amount truncated to the 0.00001 step, price rounded to the 0.01 tick
    row = om.submit(SYM, "buy", "limit", 0.0123456, 10_000.004, T0, "entry long", 16_000.0)
    assert row.amount == pytest.approx(0.01234) and row.price == pytest.approx(10_000.0)
    assert fake.account.creates() == 1


def test_exchange_rejection_of_a_filter_is_not_retried(fake, tmp_path):
    om = manager(fake, tmp_path)
    # our own minimum check bypassed: the exchange's NOTIONAL filter answers -1013
    om.prepare = lambda s, a, p, r: (0.00002, None, "")
    row = om.submit(SYM, "buy", "market", 1.0, None, T0, "entry long", 16_000.0)
    assert row.status == "rejected" and "NOTIONAL" in row.reason
    assert fake.account.creates() == 1


def _limit_price(fake):
    # a buy limit 0.2 % under the current price: the wave reaches it within minutes
    return round(fake.account.price("BTCUSDT") * 0.999, 2)


def test_partial_fill_then_rest_fills(fake, tmp_path):
    om = manager(fake, tmp_path)
    fake.account.partial_next(0.4)
    px = 20_000.0  # above the market: fills on the next candle
    row = om.submit(SYM, "buy", "limit", 0.01, px, T0, "entry long", 16_000.0)
    assert row.status == "open"
    fake.now_ms = T0 + 60_000 + 1  # one candle closed: 40 % of 0.01
    om.sync()
    r = om.journal.orders()[0]
    assert r.status == "open" and r.filled == pytest.approx(0.004)
    assert_journal_equals_exchange(om, fake)
    fake.now_ms = T0 + 120_000 + 1
    om.sync()
    r = om.journal.orders()[0]
    assert r.status == "closed" and r.filled == pytest.approx(0.01)
    assert sum(f["qty"] for f in om.journal.fills()) == pytest.approx(0.01)
    assert_journal_equals_exchange(om, fake)
    # fee in BTC on a buy: position 0.01 - 0.1 % = 0.00999, as the exchange holds
    assert om.expected_base((SYM,))["BTC"] == pytest.approx(0.00999)
    assert fake.account.total("BTC") == pytest.approx(0.00999)


def test_order_filled_while_down_is_recorded_as_missed_fill(fake, tmp_path):
    om = manager(fake, tmp_path)
    om.reconcile((SYM,))
    om.submit(SYM, "buy", "limit", 0.01, 20_000.0, T0, "entry long", 16_000.0)
    om.journal.close()
    fake.now_ms = T0 + 5 * 60_000  # filled while no process ran
    om2 = manager(fake, tmp_path)
    notes = om2.reconcile((SYM,))
    assert notes == []
    r = om2.journal.orders()[0]
    assert r.status == "closed"
    fills = om2.journal.fills()
    assert len(fills) == 1 and fills[0]["missed"]
    assert om2.stats.missed_fills == 1
    assert_journal_equals_exchange(om2, fake)


def test_reconcile_adopts_own_orders_and_cancels_foreign_ones(fake, tmp_path):
    from adapters.orders import client_order_id

    om = manager(fake, tmp_path)
    om.reconcile((SYM,))
    ex = om.ex
    ours = client_order_id("run-a", T0, SYM, "lost")
    ex.create_order(SYM, "limit", "buy", 0.001, 10_000.0, {"clientOrderId": ours})
    ex.create_order(SYM, "limit", "buy", 0.001, 10_000.0, {"clientOrderId": "manual1"})
    notes = om.reconcile((SYM,))
    assert len(notes) == 2
    assert om.journal.order(ours).adopted
    foreign = next(o for o in fake.account.orders.values() if o.client_id == "manual1")
    assert foreign.status == "CANCELED"


def test_unexplained_balance_change_refuses_to_trade(fake, tmp_path):
    from adapters.orders import ReconcileError

    om = manager(fake, tmp_path)
    om.reconcile((SYM,))
    fake.account.balances["BTC"] += 0.5  # a deposit or a manual trade
    with pytest.raises(ReconcileError, match="BTC"):
        om.reconcile((SYM,))
    assert om.journal.events("unexplained")


CHILD = """
import os, sys
sys.path.insert(0, {root!r})
from adapters.exchange import private_client
from gogo2.config import ExchangeConfig
from adapters.journal import Journal
from adapters.orders import OrderManager, RetryPolicy
ex = private_client("binance", ExchangeConfig(timeout_ms=2000), {url!r})
ex.enableRateLimit = False
ex.load_markets()
def hook(point):
    if point == {point!r}:
        os.kill(os.getpid(), 9)
om = OrderManager(ex, Journal({run!r}), "run-a", RetryPolicy(sleep=lambda d: None),
                  clock_ms=lambda: {t0}, hook=hook)
om.reconcile(("BTC/USDT",))
om.submit("BTC/USDT", "buy", "market", 0.01, None, {t0}, "entry long", 16000.0)
print("not killed")
"""


@pytest.mark.parametrize("point", ["journaled", "sent"])
def test_kill_9_between_submit_and_journal_then_restart(fake, tmp_path, point):
    code = CHILD.format(root=str(ROOT), url=fake.base_url, point=point, run=str(tmp_path), t0=T0)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == -9, p.stderr
    om = manager(fake, tmp_path)
    before = om.journal.orders()
    assert len(before) == 1 and before[0].status == "pending"  # written before sending
    om.reconcile((SYM,))
    after = om.journal.orders()[0]
    if point == "sent":  # the exchange has it: the journal learns it, nothing is resent
        assert len(fake.account.orders) == 1 and after.status == "closed"
    else:  # never sent: settled as such, the decision is not placed twice
        assert len(fake.account.orders) == 0 and after.status == "rejected"
    assert om.submit(SYM, "buy", "market", 0.01, None, T0, "entry long", 16_000.0) is None
    assert fake.account.creates() == (1 if point == "sent" else 0)
    assert_journal_equals_exchange(om, fake)
    # restart twice: nothing changes
    om.journal.close()
    om3 = manager(fake, tmp_path)
    om3.reconcile((SYM,))
    assert_journal_equals_exchange(om3, fake)
    assert len(om3.journal.fills()) == len(fake.account.trades)


def test_keys_never_reach_the_journal(fake, tmp_path):
    om = manager(fake, tmp_path)
    om.reconcile((SYM,))
    om.submit(SYM, "buy", "market", 5.0, None, T0, "entry long", 16_000.0)  # rejected
    om.submit(SYM, "buy", "market", 0.01, None, T0 + 60_000, "entry long", 16_000.0)
    om.journal.close()
    assert KEY in fake.account.api_keys  # the key was used, in the request header only
    for f in tmp_path.iterdir():
        data = f.read_bytes()
        assert KEY.encode() not in data and SECRET.encode() not in data
    assert os.environ["GOGO2_API_KEY"] == KEY


def test_an_order_that_arrives_late_is_not_doubled(fake, tmp_path):
    """The create times out and the first look-up does not find the order (it reaches the
    exchange only after that); the resend with the same client id is refused as a duplicate,
    and a second look-up finds the one order."""
    om = manager(fake, tmp_path)
    real_fetch = om.fetch_by_client_id
    calls = []

    def late(cid, symbol):
        calls.append(cid)
        return None if len(calls) == 1 else real_fetch(cid, symbol)

    om.fetch_by_client_id = late
    fake.account.fault_next(1, "accept_timeout")
    row = om.submit(SYM, "buy", "market", 0.01, None, T0, "entry long", 16_000.0)
    assert fake.account.creates() == 2  # the resend, refused as "Duplicate order sent."
    assert len(fake.account.orders) == 1
    assert row.status == "closed" and len(calls) == 2
    om.sync()
    assert_journal_equals_exchange(om, fake)


def test_sandbox_uses_the_testnet_and_keys_come_from_the_environment(env, monkeypatch):
    from adapters.exchange import private_client
    from gogo2.config import ExchangeConfig
    from gogo2.errors import UserInputError

    ex = private_client("binance", ExchangeConfig(sandbox=True))
    assert "testnet" in ex.urls["api"]["public"]
    assert ex.apiKey == KEY and ex.secret == SECRET
    live = private_client("binance", ExchangeConfig())
    assert "testnet" not in live.urls["api"]["public"]
    monkeypatch.delenv("GOGO2_API_SECRET")
    with pytest.raises(UserInputError, match="GOGO2_API_SECRET"):
        private_client("binance", ExchangeConfig())


def test_journal_is_wal_and_refuses_another_run(tmp_path):
    from adapters.journal import Journal, JournalMismatchError

    j = Journal(tmp_path)
    assert j.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ident = {"strategy": "sma_cross", "exchange": "binance", "symbols": "BTC/USDT"}
    assert j.bind(ident) is False  # new
    assert j.bind(ident) is True  # the same run again
    with pytest.raises(JournalMismatchError, match="exchange 'binance', not 'kraken'"):
        j.bind({**ident, "exchange": "kraken"})
    with pytest.raises(JournalMismatchError, match="strategy 'sma_cross'"):
        j.bind({**ident, "strategy": "rsi_reversion"})
    # an order id is stored once: the same decision twice is one row
    assert j.add_order("c1", "BTC/USDT", "buy", "market", 0.1, None, 1, "entry long", 1)
    assert not j.add_order("c1", "BTC/USDT", "buy", "market", 0.1, None, 1, "entry long", 2)
    assert len(j.orders()) == 1
    # a trade id is stored once
    f = {"trade_id": "9", "symbol": "BTC/USDT", "side": "buy", "price": 1.0, "qty": 2.0, "time": 1}
    assert len(j.add_fills([f, f])) == 1 and len(j.add_fills([f])) == 0
