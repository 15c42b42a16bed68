"""What a journaled paper run saves per bar is bounded by the account's open business, not by
the run's length: the venue forgets what the journal has settled, and the kernel's fill and
trade records are appended once each instead of being saved again every bar."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from helpers import make_multibars

from engine import enums
from engine.backtest import SimConfig

SYMBOLS = ("BTC/USDT", "ETH/USDT")


def _venue(state: bytes) -> dict:
    with np.load(io.BytesIO(state), allow_pickle=False) as z:
        return json.loads(z["venue"].tobytes().decode())


PARAMS = {"fast": 2, "slow": 5, "band": 0.0}  # a cross every few bars: many trades


def _journal(run_dir: Path):
    """A journaled paper session on ``run_dir`` as ``paper --replay --run`` opens it."""
    from adapters.broker import PaperBroker
    from gogo2.config import LiveConfig
    from runner.paper import PaperRequest
    from runner.paper_journal import PaperJournal

    req = PaperRequest(
        "sma_cross", PARAMS, SYMBOLS, "1m", "binance", 10_000.0, None, None, "replay"
    )
    live = LiveConfig(max_drawdown=None, max_daily_loss=None, reconcile_every=50)
    broker = PaperBroker(SYMBOLS, SimConfig(), 60_000)
    return PaperJournal(
        run_dir, req, broker, SimpleNamespace(live=live), lambda s: None, durable=False
    )


def _run(journal, data, bars: int, on_status=None) -> None:
    """``bars`` bars of ``data`` through the session, after the last one its journal holds
    (the first 100 bars are the warm-up); what is open stays open."""
    from adapters.feeds import ReplayFeed
    from runner.live import Runner
    from strategies import registry

    strat = registry.create("sma_cross", PARAMS, "1m")
    last = journal.last_time
    k = 100 if last is None else int(np.searchsorted(data.bars.time, last, side="right"))
    t0 = int(data.bars.time[k])

    def status(st) -> None:
        journal.on_status(st)
        if on_status is not None:
            on_status(st)

    feed = ReplayFeed(data, t0)
    Runner(strat, data.until(t0), feed, journal.broker, on_status=status).run(
        max_bars=bars, finish=False
    )


def test_the_saved_state_does_not_grow_with_the_closed_trades(tmp_path):
    data = make_multibars(1_600, SYMBOLS, base="1m", informative=(), seed=3, vol=0.004)
    journal = _journal(tmp_path / "run")
    broker = journal.paper
    seen: dict[int, tuple[int, dict, int]] = {}  # bar -> (state bytes, venue, fills)
    bars = [0]

    def on_status(st) -> None:
        bars[0] += 1
        if bars[0] in (150, 1_500):
            state = journal.journal.state()
            seen[bars[0]] = (len(state), _venue(state), len(journal.journal.fills()))

    try:
        _run(journal, data, 1_500, on_status)
        records = {k: journal.journal.records(k) for k in ("fills", "trades")}
        orders = journal.journal.orders()
    finally:
        journal.close()
    (size_a, _, fills_a), (size_b, venue_b, fills_b) = seen[150], seen[1_500]
    # a run that trades all along: ten times the bars, about ten times the fills
    assert fills_a >= 30 and fills_b >= 8 * fills_a
    assert venue_b["n_trades"] == fills_b and venue_b["n_orders"] == len(orders)
    # the venue keeps at most the open entry and exit of each symbol and the trades of its
    # last fill time (a reversal: two), so the saved state is the same size give or take a
    # few digits and one or two such entries (each under 400 bytes of JSON), where keeping
    # every order and trade would add some 300 bytes for each
    assert len(venue_b["orders"]) <= 2 * len(SYMBOLS)
    assert len(venue_b["trades"]) <= 2 * len(SYMBOLS)
    assert abs(size_b - size_a) <= 2 * 400 * len(SYMBOLS)
    # the kernel's records went into the journal once each, in order
    n_fills = sum(len(d) for _, d in records["fills"]) // np.dtype(enums.fill_dt).itemsize
    n_trades = sum(len(d) for _, d in records["trades"]) // np.dtype(enums.trade_dt).itemsize
    firsts = [f for f, _ in records["fills"]]
    assert firsts == sorted(firsts) and firsts[0] == 0
    assert n_fills == len(broker.fills_array()) == fills_b
    assert n_trades == len(broker.trades_array()) > 0


def _whole_state(journal) -> None:
    """Rewrite a journal's saved state as it was saved before the records were kept apart:
    every kernel record inline, every order and trade in the venue, no counters."""
    from runner.paper_journal import pack, read_records, unpack

    j = journal.journal
    snap = unpack(j.state())
    counts = snap.pop("records")
    for k in ("fills", "trades"):
        snap[k] = read_records(j, k, counts[k])
    venue = snap["venue"]
    for o in j.orders():
        venue["orders"].setdefault(
            o.exchange_id,
            {
                "id": o.exchange_id,
                "clientOrderId": o.client_id,
                "symbol": o.symbol,
                "type": o.type,
                "side": o.side,
                "amount": o.amount,
                "price": o.price,
                "status": o.status,
                "filled": o.filled,
                "timestamp": o.bar_time + 60_000,
                "g2kind": "exit" if o.intent == "exit" else "entry",
            },
        )
    eid = {o.client_id: o.exchange_id for o in j.orders()}
    venue["trades"] = [
        {
            "id": f["trade_id"],
            "order": eid.get(f["client_id"]),
            "symbol": f["symbol"],
            "side": f["side"],
            "price": f["price"],
            "amount": f["qty"],
            "fee": {"cost": f["fee"], "currency": f["fee_currency"]},
            "timestamp": f["time"],
            "takerOrMaker": "market",
        }
        for f in j.fills()
    ]
    assert int(venue.pop("n_orders")) == len(venue["orders"])
    assert int(venue.pop("n_trades")) == len(venue["trades"])
    snap["venue"] = np.frombuffer(json.dumps(venue).encode(), dtype=np.uint8)
    with j.db:
        j.db.execute("DELETE FROM records")
    j.save_state(pack(snap))


def test_a_journal_saved_whole_by_an_earlier_version_continues_exactly(tmp_path):
    from adapters.journal import Journal
    from runner.paper_journal import unpack

    data = make_multibars(500, SYMBOLS, base="1m", informative=(), seed=4, vol=0.004)
    whole = _journal(tmp_path / "whole")
    try:
        _run(whole, data, 300)
        fills_w, orders_w = whole.journal.fills(), whole.journal.orders()
    finally:
        whole.close()
    first = _journal(tmp_path / "split")
    try:
        _run(first, data, 120)
        n_orders, n_fills = len(first.journal.orders()), len(first.journal.fills())
        _whole_state(first)
    finally:
        first.close()
    second = _journal(tmp_path / "split")
    try:
        # the counters are the whole state's counts; the start-up forgot the settled orders
        assert (second.venue.n_orders, second.venue.n_trades) == (n_orders, n_fills)
        assert n_orders > 4
        assert len(second.venue.orders) <= 2 * len(SYMBOLS)
        _run(second, data, 180)
    finally:
        second.close()
    # the same orders with the same venue ids, the same fills, the same trades
    j = Journal(tmp_path / "split")
    try:
        orders_s, fills_s = j.orders(), j.fills()
        snap = unpack(j.state())
        records = j.records("trades")
    finally:
        j.close()
    assert [(o.exchange_id, o.status, o.filled) for o in orders_s] == [
        (o.exchange_id, o.status, o.filled) for o in orders_w
    ]
    assert [(f["trade_id"], f["qty"]) for f in fills_s] == [
        (f["trade_id"], f["qty"]) for f in fills_w
    ]
    np.testing.assert_array_equal(second.paper.trades_array(), whole.paper.trades_array())
    # the first save moved the inline records to the journal's records: none are inline now
    assert "trades" not in snap and snap["records"]["trades"] == len(whole.paper.trades_array())
    assert records[0][0] == 0 and len(second.venue.orders) <= 2 * len(SYMBOLS)


def test_a_journal_missing_records_its_state_counts_is_refused_in_one_line(tmp_path):
    import pytest

    from runner.paper_journal import DamagedJournalError

    data = make_multibars(300, SYMBOLS, base="1m", informative=(), seed=4, vol=0.004)
    journal = _journal(tmp_path / "run")
    try:
        _run(journal, data, 60)
        n = len(journal.paper.fills_array())
        with journal.journal.db:
            journal.journal.db.execute("DELETE FROM records WHERE kind='fills' AND first > 0")
    finally:
        journal.close()
    assert n > 2
    with pytest.raises(DamagedJournalError) as e:
        _journal(tmp_path / "run")
    text = str(e.value)
    assert f"--run {tmp_path / 'run'}" in text and f"counts {n} kernel fills" in text
    assert "new --run" in text and "\n" not in text
