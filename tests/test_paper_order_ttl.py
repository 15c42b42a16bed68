"""Paper and live expire a resting entry on the same bar: the paper venue's kernel drops it
after ``backtest.order_ttl`` bars of its symbol (``engine/nb.py``; the rule is written out
in ``tests/test_live_order_ttl.py``), and the paper broker journals it as the exchange
broker journals its expiry cancel (event ``expired`` between the same two ``bar`` events,
the same reason on the order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import make_bars

import cli
from gogo2.timeframes import parse_time
from tests.test_live_order_ttl import TTL, K, LimitEntries, expired_between, probe  # noqa: F401

MIN = 60_000
DAY0 = parse_time("2024-01-01")
T0 = parse_time("2024-01-01 02:00")  # the replay's first bar (bar 0)


def write_config(tmp_path: Path, bars) -> Path:
    from datasets.catalog import Catalog

    cat = Catalog(tmp_path / "data")
    cols = {f: getattr(bars, f)[:, 0] for f in ("open", "high", "low", "close", "volume")}
    cat.write(pd.DataFrame({"time": bars.time, **cols}), "binance", "BTC/USDT", "1m")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\n"
        f"backtest:\n  report_dir: {tmp_path / 'reports'}\n  order_ttl: {TTL}\n"
        "  size_type: cash\n  size: 100\n"
        "live:\n  max_drawdown: null\n  max_daily_loss: null\n"
    )
    return path


def paper(cfg: Path, run: Path, price: float) -> None:
    args = ["paper", "--replay", "--from", "2024-01-01 02:00", "--to", "2024-01-01 02:30"]
    args += ["--symbols", "BTC/USDT", "--timeframe", "1m", "--exchange", "binance"]
    args += ["--strategy", LimitEntries.name, "--param", f"origin={T0 // MIN}"]
    args += ["--param", f"at={K}", "--param", f"price={price:.2f}", "--no-report"]
    assert cli.main([*args, "--config", str(cfg), "--run", str(run)]) == 0


def read(run: Path):
    from adapters.journal import Journal

    j = Journal(run)
    try:
        return j.orders(), j.fills(), j.events()
    finally:
        j.close()


def test_paper_expires_a_resting_limit_entry_on_the_bar_live_does(tmp_path, probe, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    bars = make_bars(600, ("BTC/USDT",), "1m", seed=5, start=DAY0)
    low = {int(t): float(lo) for t, lo in zip(bars.time, bars.low[:, 0], strict=True)}
    # by hand: 5 % under the lowest low of the bars it could fill on, so it never fills
    price = round(min(low[T0 + k * MIN] for k in range(K + 1, K + 8)) * 0.95, 2)
    run = tmp_path / "run"
    paper(write_config(tmp_path, bars), run, price)
    orders, fills, events = read(run)
    (row,) = orders
    assert (row.intent, row.type, row.status) == ("entry long", "limit", "canceled")
    assert row.bar_time == T0 + K * MIN and fills == []
    # bars K+1, K+2, K+3 counted: dropped at the close of bar K+3, as live cancels it
    got = expired_between(events, K + 2, K + 3, T0)
    assert (got["bars"], got["ttl"], got["client_id"]) == (3, 3, row.client_id)
    assert row.reason == "expired: unfilled after 3 bars of BTC/USDT (backtest.order_ttl 3)"


def test_paper_fills_on_the_last_allowed_bar_and_journals_no_expiry(tmp_path, probe, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    bars = make_bars(600, ("BTC/USDT",), "1m", seed=5, start=DAY0)
    t = {int(x): i for i, x in enumerate(bars.time)}
    lo = bars.low[:, 0]
    op = bars.open[:, 0]
    # by hand: a bar k whose bars k+1, k+2 stay above a limit that bar k+3 reaches inside
    # (its open above the limit, so it is a limit fill at the price, not a gap)
    for k in range(3, 25):
        r = [t[T0 + (k + i) * MIN] for i in (1, 2, 3)]
        price = round(float(lo[r[2]]) + 0.01, 2)
        if lo[r[0]] > price and lo[r[1]] > price and op[r[2]] > price:
            break
    else:
        pytest.fail("no such bar in the sample")
    cfg = write_config(tmp_path, bars)
    run = tmp_path / "run"
    args = ["paper", "--replay", "--from", "2024-01-01 02:00", "--to", "2024-01-01 02:40"]
    args += ["--symbols", "BTC/USDT", "--timeframe", "1m", "--exchange", "binance"]
    args += ["--strategy", LimitEntries.name, "--param", f"origin={T0 // MIN}"]
    args += ["--param", f"at={k}", "--param", f"price={price:.2f}", "--no-report"]
    assert cli.main([*args, "--config", str(cfg), "--run", str(run)]) == 0
    orders, fills, events = read(run)
    (row,) = orders
    assert row.status == "closed" and row.reason == ""
    (f,) = fills
    assert f["time"] == T0 + (k + 3) * MIN  # the fill of bar k+3 (the kernel stamps its open)
    assert f["price"] == pytest.approx(price)
    assert not [e for e in events if e[1] == "expired"]
    assert np.isfinite(price)
