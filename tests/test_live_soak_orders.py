"""A soak of every live order path at once, under seeded random faults and restarts (real
ccxt client, fake exchange, fake clock): market, limit and stop-limit entries (crossed
stops sent as market buys), resting entries expiring after ``backtest.order_ttl`` bars,
client-side stop-loss, take-profit and trailing exits, and the run stopped hard several
times (in-process at a random point, once by a real ``kill -9``) and started again on the
same ``--run`` with the exchange clock moved on while it was down.

At the end, besides :func:`tests.test_live_faults.check_exchange_matches` (the journal
equals the exchange, nothing doubled or lost), every rule below is checked by hand from the
exchange's own records and the journal's bar times:

* one exchange order per client id, and every exchange order in the journal under its id;
* no order rejected for insufficient balance (with 100 USDT entries on a 10,000 USDT
  account, that would be a sell of more than the run holds: a double sell);
* the account's base balance, replayed trade by trade in the exchange's order, never goes
  below zero, and every sell was sent for at most the position its fills had bought;
* once a position is sold, the entry that bought it fills no more (the exchange fills some
  limit entries in parts, the rest on a later candle: an exit cancels that rest);
* no resting entry traded after the close of the ``order_ttl``-th bar of its symbol the run
  saw after the bar that decided it (bars closed while the run was down do not count, as in
  the backtest), and none is still open after it.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from datasets.bars import MultiBars
from engine.signals import LIMIT, MARKET, STOP, Signals
from strategies.base import Param, Strategy
from tests.test_live_faults import SOAK_CONFIG, env, soak  # noqa: F401

MIN = 60_000
STEP = 1e-5  # the fake's lot step
TTL = 5
CONFIG = SOAK_CONFIG.replace("size: 100\n", f"size: 100\n  order_ttl: {TTL}\n")
EXITS = ("stop_loss", "take_profit", "trailing_stop")


class MixedEntries(Strategy):
    """Seeded pseudo-random decisions from each bar's open time alone (no price is looked
    ahead at): on about ``rate`` of the bars a long entry, a third each at market, as a limit
    up to 0.3 % below the close, or as a stop from 0.2 % below the close (already crossed)
    to 0.3 % above it; each entry carries a stop-loss, a take-profit and a trailing stop of
    0.2-0.8 % with chances 0.6, 0.5 and 0.4; on about ``exit_rate`` of the other bars an
    exit signal."""

    name = "mixed_entries_soak"
    base_timeframe = "1m"
    seed = Param(1, min=0, doc="seed of the decisions")
    rate = Param(0.2, min=0.0, max=1.0, doc="share of bars deciding an entry")
    exit_rate = Param(0.06, min=0.0, max=1.0, doc="share of bars deciding an exit")

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: 2}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close
        t = (data.bars.time // MIN).astype(np.uint64)
        if close.ndim > 1:
            cols = np.arange(close.shape[1], dtype=np.uint64)
            t = t[:, None] * np.uint64(64) + cols[None, :]

        def u(salt: int) -> np.ndarray:
            # splitmix64 of (time, seed, salt): uniform in [0, 1)
            x = t * np.uint64(0x9E3779B97F4A7C15) + np.uint64(
                (int(self.seed) * 1_000_003 + salt) & 0xFFFFFFFF
            )
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            x = x ^ (x >> np.uint64(31))
            return (x >> np.uint64(11)).astype(np.float64) / float(2**53)

        entries = u(0) < float(self.rate)
        exits = (u(1) < float(self.exit_rate)) & ~entries
        kind = u(2)
        otype = np.where(kind < 1 / 3, MARKET, np.where(kind < 2 / 3, LIMIT, STOP))
        d = u(3)
        price = np.where(
            otype == LIMIT,
            close * (1.0 - 0.003 * d),
            np.where(otype == STOP, close * (1.0 - 0.002 + 0.005 * d), close),
        )

        def frac(salt: int, chance: float) -> np.ndarray:
            return np.where(u(salt) < chance, 0.002 + 0.006 * u(salt + 1), np.nan)

        return Signals(
            entries=entries.astype(np.int8),
            exits=exits,
            order_type=otype.astype(np.int8),
            price=price,
            sl=frac(4, 0.6),
            tp=frac(6, 0.5),
            trail=frac(8, 0.4),
        )


@pytest.fixture
def mixed(monkeypatch):
    from strategies import registry

    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    registry.register(MixedEntries)
    return MixedEntries.name


CHILD_SETUP = (
    "from strategies import registry\n"
    "from tests.test_live_soak_orders import MixedEntries\n"
    "registry.register(MixedEntries)"
)


def check_orders(fake, run_dir, orders, events) -> dict:
    """The end rules of the module docstring, by hand; returns the soak's figures."""
    acct = fake.account
    by_cid = {r.client_id: r for r in orders}
    # one exchange order per client id, each in the journal under its exchange id
    per_cid = Counter(o.client_id for o in acct.orders.values())
    assert max(per_cid.values()) == 1
    for o in acct.orders.values():
        assert by_cid[o.client_id].exchange_id == str(o.id)
    # no rejection for insufficient balance
    rejected = [d for _, k, d in events if k == "rejected"]
    assert not [d for d in rejected if "insufficient balance" in d["error"]], rejected
    # the account's base balance, trade by trade in the exchange's order, never below zero
    # and an entry buys only while flat (no second entry on top of a position: a sell
    # rounds its amount down to the lot step, so less than a step of dust may stay)
    side = {o.id: o.side for o in acct.orders.values()}
    base = {m.id: m.base for m in fake.markets.values()}
    held: Counter = Counter()  # per market
    bought: Counter = Counter()  # base bought by each order so far
    for tr in sorted(acct.trades, key=lambda tr: tr["id"]):
        qty = float(tr["qty"])
        m = tr["symbol"]
        fee = float(tr["commission"]) if tr["commissionAsset"] == base[m] else 0.0
        if side[tr["orderId"]] == "BUY":
            assert held[m] - bought[tr["orderId"]] < STEP, (tr, held)
            bought[tr["orderId"]] += qty - fee
        held[m] += (qty if side[tr["orderId"]] == "BUY" else -qty) - fee
        assert held[m] >= -1e-9
    # once a position is sold, the entry that bought it fills no more (a partly filled
    # entry's rest does not reopen it: the backtest's position is closed)
    sold_after: dict[int, bool] = {}  # entry order id -> a sell of its symbol traded since
    sym = {o.id: o.symbol for o in acct.orders.values()}
    for tr in sorted(acct.trades, key=lambda tr: tr["id"]):
        oid = tr["orderId"]
        if side[oid] == "BUY":
            assert not sold_after.get(oid), (tr, "an entry filled again after its exit")
            sold_after.setdefault(oid, False)
        else:
            for x in sold_after:
                if sym[x] == tr["symbol"]:
                    sold_after[x] = True
    # every sell that traded was sent for at most what the journal's fills had bought by
    # then (a resting stop-loss canceled unfilled sold nothing: in the same millisecond as
    # its cancel the sell replacing it may have traded, which these times cannot order)
    fills = _journal_fills(run_dir)
    sent_at = {d["client_id"]: t for t, k, d in events if k == "submit"}
    sells = [r for r in orders if r.side == "sell" and r.client_id in sent_at]
    for r in sells:
        if r.filled <= 0:
            continue
        pos = sum(
            (f["qty"] if f["side"] == "buy" else -f["qty"])
            - (f["fee"] if f["fee_currency"] == r.symbol.split("/")[0] else 0.0)
            for f in fills
            if f["symbol"] == r.symbol
            and f["time"] <= sent_at[r.client_id]
            and f["client_id"] != r.client_id
        )
        assert r.amount <= pos + 1e-9, (r, pos)
    # no resting entry traded after order_ttl bars the run saw after its deciding bar (an
    # upper bound: bars closed while it was stopped count too, but a fill on the exchange
    # then is kept)
    seen = sorted({d["time"] for _, k, d in events if k == "bar"})
    trades_of: dict[str, list[int]] = {}
    for tr in acct.trades:
        trades_of.setdefault(str(tr["orderId"]), []).append(int(tr["time"]))
    expired_by_hand = 0
    resting = [r for r in orders if r.type == "limit" and r.intent.startswith("entry")]
    for r in resting:
        after = [t for t in seen if t > r.bar_time]
        if len(after) < TTL:
            continue
        deadline = after[TTL - 1] + MIN  # the close of its TTL-th bar
        for t in trades_of.get(str(r.exchange_id), []):
            assert t < deadline, (r, t, deadline)
        assert r.status in ("closed", "canceled", "rejected", "expired"), r
        if r.status == "canceled" and "expired" in r.reason:
            expired_by_hand += 1
    # and none expired before its bars: bars closed while the run was stopped count too
    # (the soak's markets have a candle every minute), so the TTL-th bar after the deciding
    # bar k, bar k + TTL, had closed when its ``expired`` event was written
    for t, k, d in events:
        if k == "expired":
            r = by_cid[d["client_id"]]
            assert t >= r.bar_time + (TTL + 1) * MIN, (r, t)
    kinds = Counter(k for _, k, _ in events)
    exits = Counter(d["exit"] for _, k, d in events if k == "protective_exit")
    stops = [o for o in acct.orders.values() if o.type == "STOP_LOSS_LIMIT"]
    return {
        "exchange_order_types": dict(Counter(o.type for o in acct.orders.values())),
        "limit_fills": sum(1 for o in acct.orders.values() if o.type == "LIMIT" and o.executed),
        "stops_triggered": sum(1 for o in stops if o.working),
        "filled_in_parts": sum(1 for ts in trades_of.values() if len(ts) > 1),
        "stops_crossed": kinds["stop_crossed"],
        "expiries": kinds["expired"],
        "expiries_by_hand": expired_by_hand,
        "protective_exits": dict(exits),
        "late_exits": sum(1 for _, k, d in events if k == "protective_exit" and d["late"]),
        "sells": len(sells),
        "never_sent": kinds["never_sent"],
    }


def _journal_fills(run_dir) -> list[dict]:
    from tests.test_live_run import journal_of

    j = journal_of(run_dir)
    try:
        return j.fills()
    finally:
        j.close()


def mixed_soak(
    tmp_path,
    n_bars: int,
    seed: int,
    segments: int,
    kill_9: bool,
    symbols: str = "BTC/USDT",
    partials: float = 0.05,
    stop_on_exchange: bool = False,
) -> dict:
    config = CONFIG + ("  stop_on_exchange: true\n" if stop_on_exchange else "")
    return soak(
        tmp_path,
        n_bars,
        seed,
        strategy=MixedEntries.name,
        params=(f"seed={seed}",),
        config=config,
        segments=segments,
        kill_9=(
            dict(
                kill_at=2,
                strategy=MixedEntries.name,
                params=(f"seed={seed}",),
                setup=CHILD_SETUP,
                symbols=symbols,
            )
            if kill_9
            else None
        ),
        check=check_orders,
        symbols=symbols,
        partials=partials,
    )


def assert_every_path_ran(out: dict, n_bars: int) -> None:
    assert out["bars"] >= n_bars
    types = out["exchange_order_types"]
    assert types.get("MARKET", 0) and types.get("LIMIT", 0) and types.get("STOP_LOSS_LIMIT", 0)
    assert out["limit_fills"] >= 1 and out["stops_triggered"] >= 1
    assert out["filled_in_parts"] >= 1
    assert out["stops_crossed"] >= 1
    assert out["expiries"] >= 1 and out["expiries_by_hand"] == out["expiries"]
    assert sum(out["protective_exits"].values()) >= 3
    assert out["unknown_outcomes"] >= 1 and out["faults_injected"] >= 30


def test_soak_of_every_order_path_300_bars_with_restarts(env, tmp_path, mixed):  # noqa: F811
    out = mixed_soak(tmp_path, 300, seed=10, segments=4, kill_9=True)
    assert_every_path_ran(out, 300)
    assert out["restarts"]["kill -9"] == 1
    assert sum(out["restarts"].values()) >= 3
    assert out["late_exits"] >= 1  # an exit stepped over bars closed while the run was down


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("GOGO2_SOAK"),
    reason="the 2,000-bar soak of every order path runs with GOGO2_SOAK=1; the suite runs 300",
)
def test_soak_of_every_order_path_2000_bars_with_restarts(env, tmp_path, mixed):  # noqa: F811
    t0 = time.perf_counter()
    out = mixed_soak(tmp_path, 2000, seed=18, segments=12, kill_9=True, symbols="BTC/USDT,ETH/USDT")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print("soak:", {k: v for k, v in out.items() if k not in ("orders", "events")})
    assert_every_path_ran(out, 2000)
    assert sum(out["restarts"].values()) >= 8 and out["late_exits"] >= 1


@pytest.mark.parametrize(
    "n_bars, seed, symbols",
    [
        (300, 10, "BTC/USDT,ETH/USDT"),  # an exit, then the other symbol's entry, in one bar
        pytest.param(
            2000,
            18,
            "BTC/USDT,ETH/USDT",
            marks=pytest.mark.skipif(
                not os.environ.get("GOGO2_SOAK"), reason="the 2,000-bar soak: GOGO2_SOAK=1"
            ),
        ),
    ],
)
@pytest.mark.usefixtures("env", "mixed")
def test_soak_with_the_stop_loss_resting_on_the_exchange(tmp_path, n_bars, seed, symbols):
    # the same paths with live.stop_on_exchange: every stop-loss also rests on the exchange
    # as a stop-limit sell, canceled before any other sell; the end checks (one exchange
    # order per client id, no sell refused for want of balance, no balance below zero, no
    # sell above the position) hold, and stops did rest and fill on the exchange
    out = mixed_soak(
        tmp_path, n_bars, seed, segments=4, kill_9=True, symbols=symbols, stop_on_exchange=True
    )
    print("soak:", {k: v for k, v in out.items() if k not in ("orders", "events")})
    orders = [o for o in out["orders"] if o.intent.startswith("stop_loss (exchange)")]
    assert any(o.status == "closed" for o in orders)  # a stop filled on the exchange
    assert any(o.status == "canceled" for o in orders)  # one canceled before another sell
    assert out["restarts"]["kill -9"] == 1
