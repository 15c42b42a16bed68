"""A live run's protective watch across a ``kill -9`` (a real process on the fake exchange,
real ccxt client, fake clock): the watch is rebuilt from the journal at the restart of the
same ``--run`` and stepped over the candles that closed while the process was down, fetched
from the exchange, so the exit fires on the bar an uninterrupted run would have fired it
at (at once at the restart when that bar passed while down), with the best price so far of
the trailing stop kept; nothing is sent twice and the journal equals the exchange. Trigger
bars are computed by hand (:func:`tests.test_live_protect.first_exit`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from tests.fake_account import FakeAccount
from tests.fake_exchange import FakeBinance, FakeMarket
from tests.test_live_faults import CHILD as KILL_AFTER_SEND
from tests.test_live_faults import CLOCK_CLIENT, check_exchange_matches, env  # noqa: F401
from tests.test_live_protect import (
    MIN,
    SIZE,
    candle,
    check_exit_order,
    entry_fill,
    first_exit,
)
from tests.test_live_run import START, journal_of, run, settings_for

ROOT = Path(__file__).resolve().parents[1]


def params(trail: float) -> tuple[str, ...]:
    return ("fast=3", "slow=8", "band=0", f"trail={trail}")


# the live process, killed with SIGKILL between two bars, the ``kill_after``-th bar after its
# first order was sent (the entry: by then it has filled and is watched)
BETWEEN_BARS = (
    """
import json, os, sys, urllib.request
sys.path.insert(0, {root!r})
from gogo2.config import load_settings
from runner import paper as session
from runner.live_session import LiveOptions, run_live
"""
    + CLOCK_CLIENT
    + """bars = []
def hook(point):
    if point == "sent" and not bars:
        bars.append(0)
def say(text):
    if bars and " equity " in text:
        bars[0] += 1
        if bars[0] == {kill_after}:
            os.kill(os.getpid(), 9)
settings = load_settings({cfg!r})
req, cls = session.validate(settings, mode="rest", exchange="binance", symbols="BTC/USDT",
    timeframe="1m", strategy="sma_cross", params={params!r}, max_bars=300, api_url=BASE)
run_live(settings, req, cls, LiveOptions({run!r}), say=say, clock=now, sleep=sleep,
    feed_options={{"grace_s": 5.0}}, retry_sleep=lambda s: None, hook=hook)
print("not killed")
"""
)


def killed_run(fake, tmp_path, code: str, trail: float, **fields) -> None:
    """Run ``code`` (formatted with the fake's url, the config and the run dir) as a live
    process on the fake's clock; it must die of SIGKILL."""
    settings_for(tmp_path, SIZE)  # writes the config file

    fake.serve_clock()
    code = code.format(
        root=str(ROOT),
        url=fake.base_url,
        cfg=str(tmp_path / "c.yaml"),
        run=str(tmp_path / "run"),
        params=list(params(trail)),
        kill_after=3,
        kill_at=2,
        **{"symbols": "BTC/USDT", **fields},
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, p.stdout + p.stderr


def state_at_kill(tmp_path):
    """(entry row, its fills, the open time of the last bar the process finished)."""
    j = journal_of(tmp_path / "run")
    try:
        (entry,) = [o for o in j.orders() if o.intent == "entry long"]
        last = max(d["time"] for _, k, d in j.events("bar"))
        return entry, j.fills(), last, [o for o in j.orders() if o.side == "sell"]
    finally:
        j.close()


@pytest.mark.parametrize("down", ["across the level", "before the level"])
def test_a_watch_killed_between_bars_is_rebuilt_and_fires_on_its_bar(env, tmp_path, down):  # noqa: F811
    trail = 0.002
    market = FakeMarket("BTC", "USDT", 16_500.0)  # the smooth wave: a cross up ~20 bars in
    with FakeBinance([market], START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        killed_run(fake, tmp_path, BETWEEN_BARS, trail)
        entry, fills, last, sells = state_at_kill(tmp_path)
        start, _, price = entry_fill(fills, entry.client_id)
        assert start <= last and not sells  # watched when killed, nothing sold yet
        # by hand, as if never stopped (the strategy's own exit, the cross down ~140 bars
        # in, is decided while the process is down, so it never comes)
        hit = first_exit(market, start, price, trail=trail, end=start + 240 * MIN)
        assert hit is not None and hit[0] > last + 60 * MIN
        if down == "across the level":
            restart = hit[0] + 4 * MIN + 3_000  # the level was crossed while down
        else:
            restart = hit[0] - MIN + 3_000  # down from `last` to the bar before the level
            # the best price of the bars missed while down raised the trailing level: a
            # watch that skipped them would not fire on that bar
            peak = max([price] + [candle(market, t)[1] for t in range(start, last + MIN, MIN)])
            skipped = first_exit(market, hit[0] - MIN, peak, trail=trail, end=hit[0] + MIN)
            assert skipped is None
        fake.now_ms = restart
        lines: list[str] = []
        run(settings_for(tmp_path, SIZE), fake, tmp_path / "run", 4, lines, params(trail))
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    (sell,) = [o for o in orders if o.side == "sell" and o.bar_time <= hit[0]]
    assert (sell.intent, sell.bar_time) == (hit[1], hit[0])
    j = journal_of(tmp_path / "run")
    check_exit_order(sell, j.fills())
    j.close()
    (ev,) = [d for _, k, d in events if k == "protective_exit" and d["bar"] == hit[0]]
    assert ev["late"] == (down == "across the level")
    assert "(continued)" in lines[0]


@pytest.mark.parametrize("point", ["sent", "journaled"])
def test_a_kill_as_the_protective_sell_goes_out_sells_once(env, tmp_path, point):  # noqa: F811
    trail = 0.001
    market = FakeMarket("BTC", "USDT", 16_500.0)
    with FakeBinance([market], START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        # killed when the 2nd order was journaled (not sent), or had reached the exchange
        killed_run(
            fake, tmp_path, KILL_AFTER_SEND, trail, strategy="sma_cross", setup="", point=point
        )
        entry, fills, _, sells = state_at_kill(tmp_path)
        (sell,) = sells
        assert sell.status == "pending"  # the journal never heard the exchange's answer
        start, _, price = entry_fill(fills, entry.client_id)
        assert (sell.bar_time, sell.intent) == first_exit(market, start, price, trail=trail)
        fake.now_ms += 5 * MIN
        restart = fake.now_ms
        run(settings_for(tmp_path, SIZE), fake, tmp_path / "run", 3, [], params(trail))
        orders, _ = check_exchange_matches(fake, tmp_path / "run")
        assert len(fake.account.orders) == 2  # the entry and one sell
    after = [o for o in orders if o.side == "sell" and o.bar_time <= sell.bar_time]
    if point == "sent":  # the exchange had it: found by its client id, not sent again
        assert [(o.client_id, o.status) for o in after] == [(sell.client_id, "closed")]
    else:  # it never reached the exchange: sent at the restart, under the restart's bar
        assert [(o.client_id, o.status) for o in after] == [(sell.client_id, "rejected")]
        (late,) = [o for o in orders if o.side == "sell" and o.status == "closed"]
        assert (late.intent, late.bar_time) == (sell.intent, restart // MIN * MIN)
        j = journal_of(tmp_path / "run")
        check_exit_order(late, j.fills())
        j.close()
