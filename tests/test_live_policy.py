"""The retry policy walks ccxt's exception tree (retried or not, and how often), and the kill
switch's triggers and latch, on a journal with a fake clock (no exchange)."""

from __future__ import annotations

import pytest

ccxt = pytest.importorskip("ccxt")

from adapters.journal import Journal  # noqa: E402
from adapters.killswitch import KilledRunError, KillSwitch, KillSwitchTripped  # noqa: E402
from adapters.orders import ExchangeDownError, RetryPolicy  # noqa: E402
from gogo2.config import LiveConfig  # noqa: E402

RETRIED = ["NetworkError", "RequestTimeout", "ExchangeNotAvailable", "DDoSProtection"]
RETRIED += ["RateLimitExceeded"]
NEVER = ["InsufficientFunds", "InvalidOrder", "AuthenticationError", "PermissionDenied"]
NEVER += ["OrderNotFound", "BadRequest", "ExchangeError"]


def failing(exc: type, times: int):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= times:
            raise exc("boom")
        return "ok"

    return fn, calls


@pytest.mark.parametrize("name", RETRIED)
def test_network_errors_are_retried_within_the_bound(name):
    waits: list[float] = []
    pol = RetryPolicy(retries=3, base_s=1.0, cap_s=10.0, sleep=waits.append)
    fn, calls = failing(getattr(ccxt, name), 2)
    assert pol.call(fn, "x") == "ok"
    assert len(calls) == 3 and len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0  # d = 1, 2; drawn in [d/2, d]
    fn, calls = failing(getattr(ccxt, name), 10)
    with pytest.raises(ExchangeDownError, match="retry bound"):
        pol.call(fn, "x")
    assert len(calls) == 4  # 1 + 3 retries


@pytest.mark.parametrize("name", NEVER)
def test_exchange_errors_are_never_retried(name):
    waits: list[float] = []
    pol = RetryPolicy(retries=3, sleep=waits.append)
    fn, calls = failing(getattr(ccxt, name), 1)
    with pytest.raises(getattr(ccxt, name)):
        pol.call(fn, "x")
    assert len(calls) == 1 and waits == []


def test_the_tree_is_what_the_policy_assumes():
    # an HTTP 429 reaches the client as DDoSProtection, a NetworkError like RateLimitExceeded
    assert issubclass(ccxt.DDoSProtection, ccxt.NetworkError)
    assert issubclass(ccxt.RateLimitExceeded, ccxt.NetworkError)
    for name in NEVER:
        assert not issubclass(getattr(ccxt, name), ccxt.NetworkError), name


def kill_switch(tmp_path, **limits):
    off = dict(max_drawdown=None, max_daily_loss=None, max_orders_per_minute=None)
    off.update(limits)
    j = Journal(tmp_path)
    return KillSwitch(LiveConfig(**off), j), j


DAY = 86_400_000
T = 20_000 * DAY  # a UTC midnight


def test_drawdown_from_the_peak(tmp_path):
    k, _ = kill_switch(tmp_path, max_drawdown=0.1)
    k.check_equity(T, 1000.0)
    k.check_equity(T + 1, 1200.0)  # new peak
    k.check_equity(T + 2, 1081.0)  # 9.9 % below 1200
    with pytest.raises(KillSwitchTripped, match=r"drawdown 10\.08%"):
        k.check_equity(T + 3, 1079.0)  # 1 - 1079/1200 = 10.08 %


def test_daily_loss_from_the_days_first_equity(tmp_path):
    k, _ = kill_switch(tmp_path, max_daily_loss=0.05)
    k.check_equity(T + 10, 1000.0)
    k.check_equity(T + 20, 951.0)  # -4.9 %
    k.check_equity(T + DAY, 940.0)  # a new day starts at 940
    with pytest.raises(KillSwitchTripped, match=r"daily loss 5\.32%"):
        k.check_equity(T + DAY + 5, 890.0)  # 1 - 890/940 = 5.32 %


def test_orders_per_minute(tmp_path):
    k, j = kill_switch(tmp_path, max_orders_per_minute=3)
    for i in range(3):
        k.check_order(T + i, "BTC/USDT", 100.0)
        j.event(T + i, "submit")
    # at T + 60,001 the window [T + 1, T + 60,001] holds 2 orders: a third is allowed
    k.check_order(T + 60_001, "BTC/USDT", 100.0)
    # at T + 30,000 it holds all 3: a fourth would pass the limit
    with pytest.raises(KillSwitchTripped, match="4 orders within 60 s"):
        k.check_order(T + 30_000, "BTC/USDT", 100.0)


def test_position_notional_and_the_latch(tmp_path):
    k, j = kill_switch(tmp_path, max_position_notional=500.0)
    k.check_order(T, "BTC/USDT", 500.0)
    with pytest.raises(KillSwitchTripped, match=r"BTC/USDT position of 500\.01"):
        k.check_order(T, "BTC/USDT", 500.01)
    j.close()
    k2, j2 = kill_switch(tmp_path)  # a restart reads the latch from the journal
    with pytest.raises(KilledRunError, match="--clear-kill"):
        k2.assert_clear()
    assert "500.01" in k2.clear(T + 1)
    k2.assert_clear()
    assert j2.events("kill_cleared")


def test_fails_closed_on_an_equity_it_cannot_compute(tmp_path):
    k, _ = kill_switch(tmp_path)
    with pytest.raises(KillSwitchTripped, match="cannot be computed"):
        k.check_equity(T, float("nan"))
