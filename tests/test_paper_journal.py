"""``paper --run DIR``: a paper run journaled bar by bar in the live command's journal, and a
run stopped and started again with the same DIR ends exactly where one uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import make_bars

import cli
from gogo2.timeframes import parse_time

COMMON = [
    "--replay",
    "--from",
    "2024-01-01 02:00",
    "--symbols",
    "BTC/USDT,ETH/USDT",
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


@pytest.fixture(name="cfg")
def fixture_cfg(tmp_path: Path, monkeypatch) -> Path:
    from datasets.catalog import Catalog

    monkeypatch.chdir(tmp_path)
    bars = make_bars(600, ("BTC/USDT", "ETH/USDT"), "1m", seed=5, start=parse_time("2024-01-01"))
    cat = Catalog(tmp_path / "data")
    for j, s in enumerate(bars.symbols):
        cols = {f: getattr(bars, f)[:, j] for f in ("open", "high", "low", "close", "volume")}
        cat.write(pd.DataFrame({"time": bars.time, **cols}), "binance", s, "1m")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\nbacktest:\n  report_dir: {tmp_path / 'reports'}\n"
        # these runs pin resumption, not the kill switch's loss limits (tested on their own)
        "live:\n  max_drawdown: null\n  max_daily_loss: null\n"
    )
    return path


def journal(run: Path):
    from adapters.journal import Journal

    j = Journal(run)
    try:
        bars = [d for _, _, d in j.events("bar")]
        return bars, j.fills()
    finally:
        j.close()


def test_a_stopped_paper_run_continues_as_if_never_stopped(cfg, tmp_path, capsys):
    whole, split = tmp_path / "whole", tmp_path / "split"
    base = [*COMMON, "--config", str(cfg)]
    assert cli.main(["paper", *base, "--run", str(whole), "--max-bars", "300"]) == 0
    assert cli.main(["paper", *base, "--run", str(split), "--max-bars", "130"]) == 0
    capsys.readouterr()
    assert cli.main(["paper", *base, "--run", str(split), "--max-bars", "170"]) == 0
    assert "continued after" in capsys.readouterr().out
    bars_w, fills_w = journal(whole)
    bars_s, fills_s = journal(split)
    assert len(bars_w) == len(bars_s) == 300
    # bar by bar the same times, equity and positions; the same fills with the same ids
    assert [b["time"] for b in bars_s] == [b["time"] for b in bars_w]
    assert [b["equity"] for b in bars_s] == pytest.approx([b["equity"] for b in bars_w])
    assert [b["positions"] for b in bars_s] == [b["positions"] for b in bars_w]
    assert len(fills_w) >= 4
    assert [f["trade_id"] for f in fills_s] == [f["trade_id"] for f in fills_w]
    # each fill's cash effect is in the journal: qty x price and the fee, signed by side
    assert all(f["qty"] > 0 and f["price"] > 0 and f["fee"] >= 0 for f in fills_w)


def test_a_paper_journal_of_another_strategy_is_refused(cfg, tmp_path, capsys):
    run = tmp_path / "r"
    base = [*COMMON, "--config", str(cfg)]
    assert cli.main(["paper", *base, "--run", str(run), "--max-bars", "5"]) == 0
    capsys.readouterr()
    other = [a if a != "sma_cross" else "rsi_reversion" for a in base]
    other = [a for a in other if a not in ("--param", "fast=3", "slow=12", "band=0")]
    other += ["--param", "window=5"]  # a warm-up the 600 stored bars hold
    assert cli.main(["paper", *other, "--run", str(run), "--max-bars", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sma_cross" in err[0]
