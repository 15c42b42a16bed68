"""Live protective exits, client-side at bar resolution, on the fake exchange: an entry that
carries a stop-loss is sent, and the first closed bar whose range reaches the stop level
(entry fill price x (1 - sl)) sells the position at market at that bar's close."""

from __future__ import annotations

import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from tests.fake_account import FakeAccount
from tests.fake_exchange import FakeBinance, kline_row
from tests.test_live_faults import NoisyMarket, check_exchange_matches, env  # noqa: F401
from tests.test_live_run import START, journal_of, run, settings_for

SL = 0.002
MIN = 60_000


def low_of(market, t: int) -> float:
    return float(kline_row(market, t, MIN, t + 10 * MIN)[3])


def test_a_stop_loss_sells_at_the_close_of_the_first_bar_reaching_its_level(env, tmp_path):  # noqa: F811
    settings = settings_for(tmp_path, "backtest:\n  size_type: cash\n  size: 100\n")
    market = NoisyMarket("BTC", "USDT", 16_500.0)
    with FakeBinance([market], START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        lines: list[str] = []
        run(
            settings,
            fake,
            tmp_path / "run",
            120,
            lines,
            params=("fast=3", "slow=8", "band=0", f"sl={SL}"),
        )
        orders, events = check_exchange_matches(fake, tmp_path / "run")
    j = journal_of(tmp_path / "run")
    fills = j.fills()
    j.close()
    assert not [d for _, k, d in events if k == "skipped" and "stop-loss" in str(d)]
    entries = [o for o in orders if o.intent == "entry long" and o.status == "closed"]
    stops = [o for o in orders if o.intent == "stop_loss"]
    assert entries and stops, [o.intent for o in orders]
    for stop in stops:
        entry = max((o for o in entries if o.bar_time < stop.bar_time), key=lambda o: o.bar_time)
        mine = [f for f in fills if f["client_id"] == entry.client_id]
        qty = sum(f["qty"] for f in mine)
        price = sum(f["qty"] * f["price"] for f in mine) / qty
        level = price * (1 - SL)
        first = min(f["time"] for f in mine) // MIN * MIN  # the bar the entry filled in
        # by hand: the first bar from the fill on whose low reaches the level
        t = first
        while low_of(market, t) > level:
            t += MIN
        assert stop.bar_time == t
        assert (stop.side, stop.type, stop.status) == ("sell", "market", "closed")
        # all the run holds then (its net fills less the fees taken in BTC, dust of earlier
        # rounds included), rounded down to the market's amount step
        sold_at = min(f["time"] for f in fills if f["client_id"] == stop.client_id)
        held = sum(
            (f["qty"] if f["side"] == "buy" else -f["qty"])
            - (f["fee"] if f["fee_currency"] == "BTC" else 0.0)
            for f in fills
            if f["time"] < sold_at
        )
        step = 1e-5  # the fake market's LOT_SIZE stepSize
        assert held - step < stop.amount <= held + 1e-12
        assert held > qty / 2  # the position is this entry's
    # the strategy's own exit never sells a second time what the stop sold
    sells = [o for o in orders if o.side == "sell"]
    assert len({o.bar_time for o in sells}) == len(sells)
