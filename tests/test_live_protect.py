"""Live protective exits, client-side at bar resolution, on the fake exchange (real ccxt
client, loopback server, fake clock): an entry that carries a stop-loss, take-profit or
trailing stop is sent, and the first closed bar whose range reaches a level sells the
run's position at market at that bar's close. The trigger bar of every entry is computed
here by hand from the fake market's candles (:func:`first_exit`)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from tests.fake_account import FakeAccount
from tests.fake_exchange import FakeBinance, kline_row
from tests.test_live_faults import NoisyMarket, check_exchange_matches, env  # noqa: F401
from tests.test_live_run import START, journal_of, run, settings_for

MIN = 60_000
STEP = 1e-5  # the fake market's LOT_SIZE stepSize
KINDS = ("stop_loss", "take_profit", "trailing_stop")
SIZE = "backtest:\n  size_type: cash\n  size: 100\n"


def candle(market, t: int) -> tuple[float, float, float, float]:
    """(open, high, low, close) of the closed 1m candle opened at ``t``, as the exchange
    serves it."""
    row = kline_row(market, t, MIN, t + 10 * MIN)
    return float(row[1]), float(row[2]), float(row[3]), float(row[4])


def first_exit(market, start, price, sl=0.0, tp=0.0, trail=0.0, inside=False, end=None):
    """By hand, README "Simulation assumptions" for a long filled at ``price`` in the bar
    opened at ``start``: (bar, kind) of the first bar from ``start`` on whose range reaches
    a level, or None before ``end``.

    * stop-loss level price * (1 - sl); trailing level peak * (1 - trail), where the peak
      is the best price *before* the bar: the fill price, raised by each earlier bar's high
      (a bar's own high counts only after its stop check); the higher of the two is the
      stop, reached when the bar's low is at or below it (an open below it has such a low);
    * take-profit price * (1 + tp), reached when the bar's high is at or above it, checked
      after the stop: a bar reaching both is a stop (the pessimistic rule);
    * ``inside`` (a limit entry filled inside its bar): on that bar only the stop is
      checked, and the peak after it is that bar's close.
    """
    peak = price
    t = start
    while end is None or t < end:
        _open, h, lo, c = candle(market, t)
        stop, kind = -math.inf, ""
        if sl:
            stop, kind = price * (1 - sl), "stop_loss"
        if trail and peak * (1 - trail) > stop:
            stop, kind = peak * (1 - trail), "trailing_stop"
        if lo <= stop:
            return t, kind
        fresh = inside and t == start
        if tp and not fresh and h >= price * (1 + tp):
            return t, "take_profit"
        peak = max(peak, c if fresh else h)
        t += MIN
    return None


def entry_fill(fills, client_id):
    """(first fill's bar, filled quantity, volume-weighted price) of one order."""
    mine = [f for f in fills if f["client_id"] == client_id]
    qty = sum(f["qty"] for f in mine)
    price = sum(f["qty"] * f["price"] for f in mine) / qty
    return min(f["time"] for f in mine) // MIN * MIN, qty, price


def held_before(fills, when: int) -> float:
    """The run's position just before ``when``: its net fills less the fees taken in BTC
    (dust of earlier rounds included), as the exchange holds it."""
    return sum(
        (f["qty"] if f["side"] == "buy" else -f["qty"])
        - (f["fee"] if f["fee_currency"] == "BTC" else 0.0)
        for f in fills
        if f["time"] < when
    )


def check_exit_order(order, fills) -> None:
    """A protective sell: at market, filled, of all the run held, rounded down to the step."""
    assert (order.side, order.type, order.status) == ("sell", "market", "closed")
    held = held_before(fills, min(f["time"] for f in fills if f["client_id"] == order.client_id))
    assert held - STEP < order.amount <= held + 1e-12


def check_every_entry(market, orders, fills, fracs) -> list[tuple[int, str]]:
    """For each filled entry, the first sell after it is the protective exit computed by
    hand, on its bar, or the strategy's own exit decided before any level was reached.
    Returns the (bar, kind) of the protective exits."""
    entries = [o for o in orders if o.intent == "entry long" and o.status == "closed"]
    sells = sorted((o for o in orders if o.side == "sell"), key=lambda o: o.bar_time)
    seen = []
    for e in entries:
        start, _qty, price = entry_fill(fills, e.client_id)
        after = [o for o in sells if o.bar_time >= start]
        if not after:
            continue
        first = after[0]
        hit = first_exit(market, start, price, **fracs, end=first.bar_time + MIN)
        if first.intent in KINDS:
            assert hit == (first.bar_time, first.intent), (e.client_id, hit, first)
            check_exit_order(first, fills)
            seen.append(hit)
        else:  # the strategy left first: no level was reached up to its decision
            assert first.intent == "exit" and hit is None, (e.client_id, hit, first)
    return seen


@pytest.mark.parametrize(
    "fracs, kinds",
    [
        ({"sl": 0.002}, {"stop_loss"}),
        ({"tp": 0.0015}, {"take_profit"}),
        ({"trail": 0.002}, {"trailing_stop"}),
        # both levels so near the entry that a bar often reaches both: the stop wins
        ({"sl": 0.0005, "tp": 0.0005}, {"stop_loss"}),
    ],
    ids=["stop-loss", "take-profit", "trailing", "stop-and-target"],
)
def test_a_protective_exit_sells_at_the_close_of_the_first_bar_reaching_its_level(
    env,  # noqa: F811
    tmp_path,
    fracs,
    kinds,
):
    settings = settings_for(tmp_path, SIZE)
    market = NoisyMarket("BTC", "USDT", 16_500.0)
    params = ("fast=3", "slow=8", "band=0", *(f"{k}={v}" for k, v in fracs.items()))
    with FakeBinance([market], START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        run(settings, fake, tmp_path / "run", 120, [], params=params)
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    j = journal_of(tmp_path / "run")
    fills = j.fills()
    j.close()
    assert not [o for o in orders if o.status == "rejected"]
    assert not [d for _, k, d in events if k == "skipped" and "client_id" in d]
    seen = check_every_entry(market, orders, fills, fracs)
    assert {k for _, k in seen} == kinds, seen
    # the strategy's own exit never sells a second time what a protective exit sold
    sells = [o for o in orders if o.side == "sell"]
    assert len({o.bar_time for o in sells}) == len(sells)
    if "tp" in fracs and "sl" in fracs:
        # at least one of the stops was on a bar whose high also reached the target
        both = []
        for t, _ in seen:
            e = max(
                (o for o in orders if o.intent == "entry long" and o.bar_time < t),
                key=lambda o: o.bar_time,
            )
            price = entry_fill(fills, e.client_id)[2]
            if candle(market, t)[1] >= price * (1 + fracs["tp"]):
                both.append(t)
        assert both
