"""Fault injection on whole live runs (real ccxt client, fake exchange, fake clock): a
dropped websocket, and a soak of random faults. Afterwards no order is doubled or lost and
the journal equals the exchange."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from tests.fake_account import FakeAccount
from tests.fake_exchange import FakeBinance, FakeKlineStream, FakeMarket
from tests.test_live_orders import KEY, SECRET, assert_journal_equals_exchange
from tests.test_live_run import START, _View, journal_of, settings_for


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("GOGO2_API_KEY", KEY)
    monkeypatch.setenv("GOGO2_API_SECRET", SECRET)


def check_exchange_matches(fake, run_dir):
    j = journal_of(run_dir)
    try:
        assert_journal_equals_exchange(_View(j), fake)
        ids = Counter(o.client_id for o in fake.account.orders.values())
        assert max(ids.values(), default=1) == 1  # no client id placed twice
        journal_ids = {r.client_id for r in j.orders() if r.exchange_id}
        assert journal_ids == set(ids)  # none lost
        # the run's positions equal what the exchange holds (the account started with none)
        held: Counter = Counter({"BTC": 0.0})
        for f in j.fills():
            base = f["symbol"].split("/")[0]
            held[base] += (f["qty"] if f["side"] == "buy" else -f["qty"]) - (
                f["fee"] if f["fee_currency"] == base else 0.0
            )
        for base, qty in held.items():
            assert fake.account.total(base) == pytest.approx(qty, abs=1e-9), base
        return j.orders(), j.events()
    finally:
        j.close()


def test_dropped_websocket_during_a_live_run(env, tmp_path):
    from runner import paper as session
    from runner.live_session import LiveOptions, run_live

    settings = settings_for(tmp_path)
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        stream = FakeKlineStream(fake).start()
        try:

            def clock() -> float:
                return fake.now_ms / 1000.0

            def sleep(s: float) -> None:
                if not stream.refuse:
                    stream.wait_subscribed(1)
                fake.now_ms += int(s * 1000)
                stream.publish()
                time.sleep(0.02)

            req, cls = session.validate(
                settings,
                mode="ws",
                exchange="binance",
                symbols="BTC/USDT",
                timeframe="1m",
                strategy="sma_cross",
                params=["fast=3", "slow=8", "band=0"],
                max_bars=40,
                api_url=stream.base_url,
            )
            lines: list[str] = []
            bars = 0

            def say(text: str) -> None:
                nonlocal bars
                lines.append(text)
                if " equity " in text:
                    bars += 1
                    if bars == 15:  # the socket drops across the entry (~bar 20)
                        stream.refuse = True
                        stream.drop()
                    if bars == 25:
                        stream.refuse = False

            out = run_live(
                settings,
                req,
                cls,
                LiveOptions(tmp_path / "run"),
                say=say,
                clock=clock,
                sleep=sleep,
                feed_options={"grace_s": 5.0, "backoff_s": 0.05, "backoff_max_s": 0.2},
                retry_sleep=lambda s: None,
            )
        finally:
            stream.stop()
        assert out["bars"] == 40
        assert any("polling REST" in t for t in lines)
        assert out["orders_sent"] >= 1
        status = [t for t in lines if " equity " in t]
        times = [t[:16] for t in status]
        assert len(set(times)) == 40  # no bar lost or doubled across the outage
        check_exchange_matches(fake, tmp_path / "run")


class NoisyMarket(FakeMarket):
    """The fake's wave plus a deterministic per-minute wiggle: many crossings."""

    def level(self, t: int) -> float:
        k = t // 60_000
        h = ((k * 2_654_435_761) % 2**32) / 2**32 - 0.5
        return super().level(t) * (1.0 + 0.004 * h)


FAULTS = [
    ("503", "POST", "/api/v3/order"),
    ("429", "POST", "/api/v3/order"),
    ("accept_timeout", "POST", "/api/v3/order"),
    ("503", "GET", "/api/v3/order"),
    ("429", "GET", "/api/v3/account"),
    ("timeout", "GET", "/api/v3/myTrades"),
    ("503", "GET", "/api/v3/openOrders"),
    ("klines", "", ""),
]


class HardStop(BaseException):
    """Raised out of a hook or the screen callback to stop a live run at that point, as a
    crash would: nothing of the product catches it (only its ``finally`` blocks run)."""


SOAK_CONFIG = (
    "backtest:\n  size_type: cash\n  size: 100\n"
    "live:\n  max_drawdown: null\n  max_daily_loss: null\n  max_orders_per_minute: null\n"
    "  reconcile_every: 50\n"
)


def soak(
    tmp_path,
    n_bars: int,
    seed: int,
    *,
    strategy: str = "sma_cross",
    params: tuple[str, ...] = ("fast=2", "slow=5", "band=0"),
    config: str = SOAK_CONFIG,
    segments: int = 1,
    kill_9: dict | None = None,
    check=None,
    symbols: str = "BTC/USDT",
    partials: float = 0.0,
) -> dict:
    """A live run of ``n_bars`` bars of ``strategy`` on the fake's noisy market with seeded
    random faults (a fifth of the waits bring one), then :func:`check_exchange_matches`.

    ``segments`` > 1 splits the run into that many ``run_live`` calls on the same ``--run``:
    each but the last is stopped hard at a random point (raising :class:`HardStop` out of
    the order manager's hook right after an order was journaled, or right after the
    exchange answered, or out of a bar's status line), and the exchange clock runs on one
    to ten bars (plus a few seconds) before the next start. ``kill_9``: the keyword
    arguments of :func:`kill_9_after_send` (a real process killed with SIGKILL), run once
    in place of the second segment's in-process stop. ``symbols``: one or more of BTC/USDT
    and ETH/USDT, comma separated (each a noisy market). ``partials``: the chance a wait
    makes the exchange's next limit fill a partial one (30-70 %, the rest on a later
    candle). ``check(fake, run_dir, orders,
    events)``: more assertions at the end; the dict it returns joins the figures."""
    from adapters.orders import ExchangeDownError
    from runner import paper as session
    from runner.live_session import LiveOptions, run_live

    settings = settings_for(tmp_path, config)
    settings.exchange.__dict__["timeout_ms"] = 150
    rng = random.Random(seed)
    injected: Counter = Counter()
    stops: Counter = Counter()
    run_dir = tmp_path / "run"
    price = {"BTC": 16_500.0, "ETH": 1_200.0}
    markets = [
        NoisyMarket(s.split("/")[0], "USDT", price[s.split("/")[0]]) for s in symbols.split(",")
    ]
    with FakeBinance(markets, START, timeout_delay=0.25) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})

        def clock() -> float:
            return fake.now_ms / 1000.0

        def sleep(s: float) -> None:
            fake.now_ms += int(s * 1000)
            if partials and rng.random() < partials:
                fake.account.partial_next(rng.choice((0.3, 0.5, 0.7)))
            if rng.random() < 0.2:  # a fifth of the waits bring a fault
                kind, method, path = FAULTS[rng.randrange(len(FAULTS))]
                if kind in ("timeout", "accept_timeout") and rng.random() < 0.7:
                    kind = "503"  # stalls cost real time (the client's timeout): fewer of them
                if kind == "klines":
                    fake.fail_next(1, rng.choice(["503", "429"]))
                else:
                    fake.account.fault_next(1, kind, method, path)
                injected[f"{kind} {method} {path}".strip()] += 1

        def bars_done() -> int:
            if not (run_dir / "journal.sqlite").is_file():
                return 0
            j = journal_of(run_dir)
            try:
                return len({d["time"] for _, _, d in j.events("bar")})
            finally:
                j.close()

        out: dict = {}
        totals: Counter = Counter()
        per = max(n_bars // max(segments, 1), 1)
        seg = starts = 0
        while (left := n_bars - bars_done()) > 0:
            starts += 1
            assert starts <= segments + 50, "the soak keeps stopping"
            if starts > 1:  # down for one to ten bars and a few seconds
                fake.now_ms += rng.randint(1, 10) * 60_000 + rng.randint(0, 59) * 1000
            last = seg >= segments - 1
            if kill_9 is not None and seg == 1:
                seg += 1
                fake.account.faults.clear()  # the child injects none: it must reach its kill
                fake.clear_failures()
                kill_9_after_send(fake, tmp_path / "c.yaml", run_dir, **kill_9)
                stops["kill -9"] += 1
                continue
            # where this segment stops: after a random bar, at the next such point
            at_bar = rng.randint(max(per // 2, 1), max(per + per // 2, 2))
            point = rng.choice(["journaled", "sent", "bar"])
            seen = [0]

            def hook(p: str, point=point, at_bar=at_bar, last=last, seen=seen) -> None:
                if not last and p == point and seen[0] >= at_bar:
                    raise HardStop(point)

            def say(text: str, point=point, at_bar=at_bar, last=last, seen=seen) -> None:
                if " equity " in text:
                    seen[0] += 1
                    hook("bar")

            req, cls = session.validate(
                settings,
                mode="rest",
                exchange="binance",
                symbols=symbols,
                timeframe="1m",
                strategy=strategy,
                params=list(params),
                max_bars=left if last else min(left, per * 2),
                api_url=fake.base_url,
            )
            try:
                got = run_live(
                    settings,
                    req,
                    cls,
                    LiveOptions(run_dir),
                    say=say,
                    clock=clock,
                    sleep=sleep,
                    feed_options={"grace_s": 5.0},
                    retry_sleep=lambda s: None,
                    hook=hook,
                )
                out["stopped_by"] = got.get("stopped_by")
                seg += 1
            except HardStop as e:
                stops[f"stop at {e.args[0]}"] += 1
                seg += 1
            except ExchangeDownError:
                # queued faults outlasted the retry bound: the run stops (exit 3) and is
                # started again, as its message says; not a planned stop
                if segments == 1:
                    raise
                stops["exchange down"] += 1
        fake.account.faults.clear()
        fake.clear_failures()
        orders, events = check_exchange_matches(fake, run_dir)
        if check is not None:
            out.update(check(fake, run_dir, orders, events))
        out["bars"] = bars_done()
        # each start's summary (its ``stop`` event, written on a hard stop too)
        for _, kind, d in events:
            if kind == "stop":
                totals.update({k: v for k, v in d.items() if isinstance(v, int)})
        out.update(totals)
        out["create_requests"] = sum(
            1 for m, p, _ in fake.private_log if m == "POST" and p == "/api/v3/order"
        )
    out["faults_injected"] = sum(injected.values())
    out["faults"] = dict(injected)
    out["restarts"] = dict(stops)
    out["exchange_orders"] = sum(1 for r in orders if r.exchange_id)
    out["unknown_outcomes"] = sum(1 for _, k, _ in events if k == "unknown_outcome")
    out["orders"], out["events"] = orders, events
    return out


def test_soak_300_bars_random_faults(env, tmp_path):
    out = soak(tmp_path, 300, seed=7)
    assert out["bars"] == 300
    assert out["exchange_orders"] >= 20  # the noisy market crosses often
    assert out["faults_injected"] >= 30
    assert out["orders_sent"] >= out["exchange_orders"]


@pytest.mark.slow
@pytest.mark.skipif(
    not __import__("os").environ.get("GOGO2_SOAK"),
    reason="the 2,000-bar soak (25-60 s) runs with GOGO2_SOAK=1; the suite runs 300 bars",
)
def test_soak_2000_bars_random_faults(env, tmp_path):
    t0 = time.perf_counter()
    out = soak(tmp_path, 2000, seed=11)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print("soak:", {k: v for k, v in out.items() if k not in ("orders", "events")})
    assert out["bars"] == 2000
    assert out["exchange_orders"] >= 100


# a child process's clock and sleep on the fake's time (``FakeBinance.serve_clock``)
CLOCK_CLIENT = """
BASE = {url!r}
def now():
    with urllib.request.urlopen(BASE + "/fake/now") as r:
        return json.loads(r.read())["now"] / 1000.0
def sleep(s):
    urllib.request.urlopen(BASE + "/fake/advance?ms=" + str(int(s * 1000))).read()
"""

CHILD = (
    """
import json, os, sys, urllib.request
sys.path.insert(0, {root!r})
from gogo2.config import load_settings
from runner import paper as session
from runner.live_session import LiveOptions, run_live
{setup}
"""
    + CLOCK_CLIENT
    + """sent = [0]
def hook(point):
    if point == {point!r}:
        sent[0] += 1
        if sent[0] == {kill_at}:
            os.kill(os.getpid(), 9)  # the exchange has the order, the journal does not know
settings = load_settings({cfg!r})
req, cls = session.validate(settings, mode="rest", exchange="binance", symbols={symbols!r},
    timeframe="1m", strategy={strategy!r}, params={params!r},
    max_bars=200, api_url=BASE)
run_live(settings, req, cls, LiveOptions({run!r}), say=lambda t: None, clock=now,
    sleep=sleep, feed_options={{"grace_s": 5.0}}, retry_sleep=lambda s: None, hook=hook)
print("not killed")
"""
)


def kill_9_after_send(
    fake,
    cfg,
    run_dir,
    kill_at,
    strategy="sma_cross",
    params=("fast=2", "slow=5", "band=0"),
    setup="",
    point="sent",
    symbols="BTC/USDT",
):
    """Run ``cli.py live``'s session in a child process on the fake's clock (served by the
    fake: ``/fake/now``, ``/fake/advance``); it kills itself with signal 9 right after its
    ``kill_at``-th order reached the exchange, before the answer is journaled (``point``
    "journaled": after it was journaled, before it was sent). ``setup`` is
    code run in the child first (e.g. registering a strategy); ``symbols`` the run's."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    fake.serve_clock()
    code = CHILD.format(
        root=str(Path(__file__).resolve().parents[1]),
        url=fake.base_url,
        kill_at=kill_at,
        cfg=str(cfg),
        run=str(run_dir),
        strategy=strategy,
        params=list(params),
        setup=setup,
        point=point,
        symbols=symbols,
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert p.returncode == -9, p.stdout + p.stderr


def test_kill_9_of_a_live_process_after_a_send_then_restart(env, tmp_path):
    settings = settings_for(tmp_path, "backtest:\n  size_type: cash\n  size: 100\n")
    with FakeBinance([NoisyMarket("BTC", "USDT", 16_500.0)], START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        kill_9_after_send(fake, tmp_path / "c.yaml", tmp_path / "run", kill_at=3)
        j = journal_of(tmp_path / "run")
        pending = [r for r in j.orders() if r.status == "pending"]
        assert len(pending) == 1  # journaled before the send, its answer never written
        j.close()
        assert len(fake.account.orders) == 3
        # restart: reconciliation finds the order by its client id; nothing is sent twice
        lines: list[str] = []
        from tests.test_live_run import run as run_again

        run_again(settings, fake, tmp_path / "run", 3, lines, params=("fast=2", "slow=5", "band=0"))
        orders, _ = check_exchange_matches(fake, tmp_path / "run")
        assert not [r for r in orders if r.status == "pending"]
        assert pending[0].client_id in {o.client_id for o in fake.account.orders.values()}
