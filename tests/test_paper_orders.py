"""Paper orders take the live path: order manager, client ids, journal, reconciliation and
kill switch, with the paper venue (``adapters.paper_venue``) as the only difference."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import make_bars

import cli
from gogo2.timeframes import parse_time

COMMON = [
    "--replay",
    "--from",
    "2024-01-01 02:00",
    "--to",
    "2024-01-01 06:00",
    "--symbols",
    "BTC/USDT",
    "--timeframe",
    "1m",
    "--strategy",
    "sma_cross",
    "--param",
    "fast=3",
    "--param",
    "slow=12",
    "--param",
    "band=0",
    "--exchange",
    "binance",
    "--no-report",
]


def write_config(tmp_path: Path, live: str) -> Path:
    from datasets.catalog import Catalog

    bars = make_bars(600, ("BTC/USDT",), "1m", seed=5, start=parse_time("2024-01-01"))
    cat = Catalog(tmp_path / "data")
    cols = {f: getattr(bars, f)[:, 0] for f in ("open", "high", "low", "close", "volume")}
    cat.write(pd.DataFrame({"time": bars.time, **cols}), "binance", "BTC/USDT", "1m")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\nbacktest:\n  report_dir: {tmp_path / 'reports'}\n"
        f"live:\n{live}"
    )
    return path


NO_LOSS_LIMITS = "  max_drawdown: null\n  max_daily_loss: null\n  reconcile_every: 7\n"


@pytest.fixture(name="cfg")
def fixture_cfg(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_config(tmp_path, NO_LOSS_LIMITS)


def read(run: Path):
    from adapters.journal import Journal

    j = Journal(run)
    try:
        return j.meta("run_id"), j.orders(), j.fills(), j.events(), j.state()
    finally:
        j.close()


def cid(run_id: str, bar_time: int, symbol: str, intent: str) -> str:
    """The client id by its definition: g2 + 8 hex of the run id's hash + 22 hex of the
    decision's hash."""
    run = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    dec = hashlib.sha256(f"{bar_time}|{symbol}|{intent}".encode()).hexdigest()[:22]
    return f"g2{run}{dec}"


def venue_of(state: bytes) -> dict:
    with np.load(io.BytesIO(state), allow_pickle=False) as z:
        return json.loads(z["venue"].tobytes().decode())


def test_a_paper_run_journals_orders_and_fills_as_a_live_run_does(cfg, tmp_path):
    run = tmp_path / "run"
    assert cli.main(["paper", *COMMON, "--config", str(cfg), "--run", str(run)]) == 0
    run_id, orders, fills, events, state = read(run)
    assert run_id and len(orders) >= 4
    kinds = [k for _, k, _ in events]
    for o in orders:
        # the id is the decision's: run, bar time (a minute boundary), symbol, intent
        assert o.bar_time % 60_000 == 0
        assert o.client_id == cid(run_id, o.bar_time, o.symbol, o.intent)
        assert o.intent in ("entry long", "entry short", "exit")
        assert o.status in ("closed", "canceled", "open")
        assert o.exchange_id  # the venue answered and the answer is journaled
        mine = [f for f in fills if f["client_id"] == o.client_id]
        if o.status == "closed":
            # a market order fills at the open of the bar after its decision
            assert mine and all(f["time"] == o.bar_time + 60_000 for f in mine)
            assert o.filled == pytest.approx(sum(f["qty"] for f in mine))
        else:
            assert not mine
    # each order was journaled ("submit") before it went out, once
    submits = [d["client_id"] for _, k, d in events if k == "submit"]
    assert sorted(submits) == sorted(o.client_id for o in orders)
    assert len(set(submits)) == len(submits)
    # every fill is an order's (sma_cross places no stop, target or trailing exit) and
    # the fills net to the venue's position: the order manager's view is the exchange's
    assert all(f["client_id"] for f in fills)
    assert "start" in kinds and "reconciled" in kinds
    # the venue accepted each order once, ids counting 1, 2, ... in the order sent
    assert [int(o.exchange_id) for o in orders] == list(range(1, len(orders) + 1))
    venue = venue_of(state)
    assert (venue["n_orders"], venue["n_trades"]) == (len(orders), len(fills))
    # it keeps only what the order manager can still ask for: the orders the journal holds
    # open (every other one's final status is journaled) ...
    still_open = {o.client_id for o in orders if o.status == "open"}
    assert {o["clientOrderId"] for o in venue["orders"].values()} == still_open
    for o in orders:
        v = venue["orders"].get(o.exchange_id)
        if v is not None:
            assert (v["status"], v["filled"]) == (o.status, pytest.approx(o.filled))
    # ... and the trades from the last one's time on, where the next trade query starts
    last = max(f["time"] for f in fills)
    assert sorted(t["id"] for t in venue["trades"]) == sorted(
        f["trade_id"] for f in fills if f["time"] == last
    )


def test_reconciliation_runs_in_paper_and_finds_nothing_to_fix(cfg, tmp_path):
    run = tmp_path / "run"
    assert cli.main(["paper", *COMMON, "--config", str(cfg), "--run", str(run)]) == 0
    *_, events, _ = read(run)
    bars = sum(1 for _, k, _ in events if k == "bar")
    rec = [d for _, k, d in events if k == "reconciled"]
    # once at the start, then every 7 bars (reconcile_every in the config)
    assert bars == 240 and len(rec) == 1 + bars // 7
    assert all(d["differences"] == 0 for d in rec)
    assert not [k for _, k, _ in events if k in ("reconcile", "unexplained", "missed_fill")]


CHILD = """
import os, sys
sys.path.insert(0, {root!r})
os.chdir({cwd!r})
import adapters.paper_venue as pv
calls = [0]
create = pv.PaperVenue.create_order
def create_then_die(self, *a, **k):
    out = create(self, *a, **k)  # the venue holds the order, the journal not its answer
    calls[0] += 1
    if calls[0] == {kill_at}:
        os.kill(os.getpid(), 9)
    return out
pv.PaperVenue.create_order = create_then_die
import cli
cli.main(["paper", *{args!r}])
print("not killed")
"""


def test_kill_9_of_a_paper_run_then_restart_sends_no_order_twice(cfg, tmp_path):
    import subprocess
    import sys

    whole, split = tmp_path / "whole", tmp_path / "split"
    args = [*COMMON, "--config", str(cfg)]
    assert cli.main(["paper", *args, "--run", str(whole)]) == 0
    code = CHILD.format(
        root=str(Path(__file__).resolve().parents[1]),
        cwd=str(tmp_path),
        kill_at=3,
        args=[*args, "--run", str(split)],
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, p.stdout + p.stderr
    _, orders, *_ = read(split)
    assert len(orders) == 3
    assert orders[-1].status == "pending"  # journaled and sent; its answer was never written
    assert cli.main(["paper", *args, "--run", str(split)]) == 0
    rid_w, orders_w, fills_w, _, _ = read(whole)
    rid_s, orders_s, fills_s, events_s, state_s = read(split)
    assert rid_w != rid_s  # two runs never share client ids
    # the same decisions with the same client ids (each run's prefix, the decision's hash)
    assert [o.client_id[10:] for o in orders_s] == [o.client_id[10:] for o in orders_w]
    assert all(o.client_id == cid(rid_s, o.bar_time, o.symbol, o.intent) for o in orders_s)
    assert [(o.status, o.filled) for o in orders_s] == [(o.status, o.filled) for o in orders_w]
    assert not [o for o in orders_s if o.status == "pending"]
    # the venue accepted one order per journaled one (ids 1, 2, ...): nothing was sent twice
    assert venue_of(state_s)["n_orders"] == len(orders_s)
    assert [int(o.exchange_id) for o in orders_s] == list(range(1, len(orders_s) + 1))
    assert [(f["trade_id"], f["qty"], f["price"]) for f in fills_s] == [
        (f["trade_id"], f["qty"], f["price"]) for f in fills_w
    ]
    assert any(k == "start" and d["restarted"] for _, k, d in events_s)


def run_folder(out: str) -> Path:
    return Path(out.strip().splitlines()[-1].split("run: ")[1])


def test_a_run_killed_after_the_venue_forgot_settled_orders_restarts_exactly(cfg, tmp_path, capsys):
    import subprocess
    import sys

    from gogo2.clikit import load
    from runner.backtest import run_backtest
    from runner.parity import compare_trades

    whole, split = tmp_path / "whole", tmp_path / "split"
    args = [*COMMON, "--config", str(cfg)]
    assert cli.main(["paper", *args, "--run", str(whole)]) == 0
    trades_w = pd.read_csv(run_folder(capsys.readouterr().out) / "trades.csv")
    code = CHILD.format(
        root=str(Path(__file__).resolve().parents[1]),
        cwd=str(tmp_path),
        kill_at=12,
        args=[*args, "--run", str(split)],
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, p.stdout + p.stderr
    _, orders, fills, _, state = read(split)
    assert len(orders) == 12 and orders[-1].status == "pending"
    # the state saved at the kill had forgotten what the journal had settled: of the 12
    # orders it holds the one just accepted and any still open, of the trades only the
    # latest; its counters still count them all
    venue = venue_of(state)
    assert (venue["n_orders"], venue["n_trades"]) == (12, len(fills))
    kept = {o["clientOrderId"] for o in venue["orders"].values()}
    assert kept == {o.client_id for o in orders if o.status in ("open", "pending")}
    assert orders[-1].client_id in kept and len(kept) <= 2
    assert 0 < len(venue["trades"]) < len(fills)
    assert cli.main(["paper", *args, "--run", str(split)]) == 0
    trades_s = pd.read_csv(run_folder(capsys.readouterr().out) / "trades.csv")
    _, orders_w, fills_w, _, _ = read(whole)
    _, orders_s, fills_s, _, state_s = read(split)
    assert [o.client_id[10:] for o in orders_s] == [o.client_id[10:] for o in orders_w]
    assert [(o.status, o.filled) for o in orders_s] == [(o.status, o.filled) for o in orders_w]
    # one venue order per journaled order, one trade id per fill: nothing sent or filled twice
    assert [int(o.exchange_id) for o in orders_s] == list(range(1, len(orders_s) + 1))
    assert venue_of(state_s)["n_orders"] == len(orders_s)
    assert [(f["trade_id"], f["qty"], f["price"]) for f in fills_s] == [
        (f["trade_id"], f["qty"], f["price"]) for f in fills_w
    ]
    # the run's trades, those closed before the kill read back from the journal's records,
    # are the uninterrupted run's ...
    assert len(trades_s) == len(trades_w) >= 8
    pd.testing.assert_frame_equal(trades_s, trades_w)
    # ... and the backtest's of the period, but for the position a continued run leaves
    # open (the backtest closes it at the end of its data)
    bt = run_backtest(
        load(str(cfg)),
        start="2024-01-01 02:00",
        end="2024-01-01 06:00",
        symbols="BTC/USDT",
        timeframe="1m",
        strategy="sma_cross",
        params=["fast=3", "slow=12", "band=0"],
        exchange="binance",
        report=False,
        save=False,
    ).result.trades
    closed = bt[bt["exit_reason"] != "end"]
    assert len(closed) == len(bt) - 1
    for f in ("entry_time", "exit_time"):
        trades_s[f] = pd.to_datetime(trades_s[f], utc=True)
    parity = compare_trades(closed, trades_s)
    assert parity.matched == len(closed) == len(trades_s) and not parity.diffs


def test_the_kill_switch_fires_in_paper_and_the_run_refuses_to_restart(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    # any position worth more than 100 USDT trips it: the first entry (all of 10,000 cash)
    cfg = write_config(tmp_path, NO_LOSS_LIMITS + "  max_position_notional: 100\n")
    run = tmp_path / "run"
    args = ["paper", *COMMON, "--config", str(cfg), "--run", str(run)]
    assert cli.main(args) == 5
    err = capsys.readouterr().err
    assert "kill switch" in err and "max_position_notional 100.00" in err
    _, orders, fills, events, _ = read(run)
    assert not orders and not fills  # it stopped the order before it was journaled or sent
    kill = [d for _, k, d in events if k == "kill"]
    assert len(kill) == 1 and "BTC/USDT position" in kill[0]["reason"]
    assert cli.main(args) == 2
    line = capsys.readouterr().err.strip()
    assert "stopped by the kill switch" in line and "--clear-kill" in line
