"""A paper run over REST with the real ccxt client against the loopback fake Binance, on a
fake clock (no real waiting), and a clean Ctrl-C of a replay run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from fake_exchange import FakeBinance

from gogo2.config import load_settings
from gogo2.timeframes import parse_time

ROOT = Path(__file__).resolve().parents[1]
PRIVATE = (
    "/api/v3/order",
    "/api/v3/account",
    "/api/v3/myTrades",
    "/api/v3/openOrders",
    "/api/v3/userDataStream",
    "/sapi/",
)


def test_paper_run_over_rest_on_a_fake_clock(tmp_path):
    from runner import paper as session

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\nbacktest:\n  report_dir: {tmp_path / 'reports'}\n"
    )
    settings = load_settings(cfg)
    start = parse_time("2024-01-10") + 30_000  # mid-minute
    with FakeBinance(now_ms=start) as fake:
        fake.add_gap("ETH/USDT", start + 3 * 60_000 - 30_000, start + 4 * 60_000 - 30_000)

        clock, sleep = fake.clock, fake.sleep  # the fake's time

        req, cls = session.validate(
            settings,
            mode="rest",
            exchange="binance",
            symbols="BTC/USDT,ETH/USDT",
            timeframe="1m",
            strategy="sma_cross",
            params=["fast=3", "slow=8"],
            max_bars=8,
            api_url=fake.base_url,
        )
        lines: list[str] = []
        out = session.run_paper(
            settings,
            req,
            cls,
            report=False,
            say=lines.append,
            clock=clock,
            sleep=sleep,
            feed_options={"grace_s": 5.0},
        )
        paths = [p for p, _ in fake.requests]
    rec = out.record
    assert len(rec.time) == 8 and rec.stopped_by == "--max-bars 8"
    # one bar per minute, each after the warm-up's last closed candle, in order
    assert all(b - a == 60_000 for a, b in zip(rec.time, rec.time[1:], strict=False))
    assert rec.time[0] == start - 30_000
    # ETH had no candle in the gap: reported, and its column is NaN there, never invented
    assert any("ETH/USDT 1m" in line and "missing" in line for line in lines)
    # status lines carry equity, positions, signal and latency
    status = [line for line in lines if "equity" in line]
    assert len(status) == 8 and all("latency" in s and "BTC/USDT=" in s for s in status)
    # only public market-data endpoints were called
    assert "/api/v3/klines" in paths and "/api/v3/exchangeInfo" in paths
    assert not [p for p in paths if p.startswith(PRIVATE)]
    # the paper broker applies the exchange's rules read from exchangeInfo by ccxt
    rules = out.runner.broker.rules["BTC/USDT"]
    assert (rules.amount_step, rules.price_tick, rules.min_cost) == (0.00001, 0.01, 5.0)
    assert not hasattr(out.runner.broker, "exchange")  # it holds no client at all
    doc = json.loads((out.run.run_dir / "paper.json").read_text())
    assert doc["mode"] == "rest" and doc["bars"] == 8


def test_ctrl_c_stops_a_replay_cleanly_and_writes_the_run(tmp_path):
    from helpers import make_bars

    from datasets.catalog import Catalog

    bars = make_bars(600, ("BTC/USDT",), "1m", seed=3, start=parse_time("2024-01-01"))
    import pandas as pd

    df = pd.DataFrame(
        {
            "time": bars.time,
            "open": bars.open[:, 0],
            "high": bars.high[:, 0],
            "low": bars.low[:, 0],
            "close": bars.close[:, 0],
            "volume": bars.volume[:, 0],
        }
    )
    Catalog(tmp_path / "data").write(df, "binance", "BTC/USDT", "1m")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\nbacktest:\n  report_dir: {tmp_path / 'reports'}\n"
    )
    cmd = [
        sys.executable,
        str(ROOT / "cli.py"),
        "paper",
        "--replay",
        "--exchange",
        "binance",
        "--symbols",
        "BTC/USDT",
        "--timeframe",
        "1m",
        "--strategy",
        "sma_cross",
        "--param",
        "fast=3",
        "--param",
        "slow=10",
        "--from",
        "2024-01-01 01:00",
        "--speed",
        "300",
        "--no-report",
        "--config",
        str(cfg),
    ]
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    first = p.stdout.readline()  # the first status line: the run is under way
    assert "equity" in first, first + p.stderr.read()
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "stopped by interrupt" in out and "Traceback" not in err
    runs = [d for d in (tmp_path / "reports").iterdir() if d.is_dir() and not d.is_symlink()]
    assert len(runs) == 1
    assert {"trades.csv", "equity.parquet", "metrics.json", "paper.json"} <= {
        f.name for f in runs[0].iterdir()
    }


def _rest_run(tmp_path, *, timeframe, strategy, params, max_bars, start):
    from runner import paper as session

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\nbacktest:\n  report_dir: {tmp_path / 'reports'}\n"
    )
    settings = load_settings(cfg)
    with FakeBinance(now_ms=start) as fake:

        def sleep(s: float) -> None:
            fake.now_ms += int(s * 1000)

        req, cls = session.validate(
            settings,
            mode="rest",
            exchange="binance",
            symbols="BTC/USDT,ETH/USDT",
            timeframe=timeframe,
            strategy=strategy,
            params=params,
            max_bars=max_bars,
            api_url=fake.base_url,
        )
        return session.run_paper(
            settings,
            req,
            cls,
            report=False,
            say=lambda _t: None,
            clock=lambda: fake.now_ms / 1000.0,
            sleep=sleep,
            feed_options={"grace_s": 0.5, "delay_s": 0.1, "poll_s": 0.2},
        )


def test_informative_candles_arrive_when_they_close(tmp_path):
    start = parse_time("2024-01-10 00:40") + 10_000
    out = _rest_run(
        tmp_path,
        timeframe="5m",
        strategy="mtf_trend",
        params=["trend=3", "window=3"],
        max_bars=10,
        start=start,
    )
    rec, book = out.record, out.runner.book
    assert len(rec.time) == 10
    hourly = book.frames["1h"]
    times = hourly.time[: hourly.n]
    # the run (00:40 -> 01:30) crossed the 01:00 close: the 1h candle opened at 00:00 was
    # appended when it closed; none still open is held
    last_close = rec.time[-1] + 300_000
    assert times[-1] + 3_600_000 <= last_close
    assert times[-1] == (last_close // 3_600_000 - 1) * 3_600_000
    assert np.all(np.diff(times) == 3_600_000)


def test_one_second_bars(tmp_path):
    start = parse_time("2024-01-10") + 300
    out = _rest_run(
        tmp_path,
        timeframe="1s",
        strategy="sma_cross",
        params=["fast=2", "slow=5"],
        max_bars=12,
        start=start,
    )
    t = out.record.time
    assert len(t) == 12 and bool(np.all(np.diff(t) == 1_000))


def test_warm_start_reads_the_catalog_and_fetches_only_the_rest(tmp_path):
    import pandas as pd

    from datasets.catalog import Catalog
    from runner import paper as session

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\nbacktest:\n  report_dir: {tmp_path / 'reports'}\n"
    )
    settings = load_settings(cfg)
    now = parse_time("2024-01-10") + 30_000
    with FakeBinance(now_ms=now) as fake:
        # the catalog holds BTC/USDT 1m 23:00 .. 23:55 (Binance's endTime is inclusive); sma_cross(8) reads 9 candles, the
        # runner asks 9 + 2 = 11 plus the one before: 12 closed candles, 23:48 .. 23:59
        rows = fake.klines(
            "BTCUSDT", "1m", parse_time("2024-01-09 23:00"), parse_time("2024-01-09 23:55"), 1000
        )
        df = pd.DataFrame(
            {
                "time": [r[0] for r in rows],
                **{
                    c: [float(r[k]) for r in rows]
                    for k, c in enumerate(("open", "high", "low", "close", "volume"), start=1)
                },
            }
        )
        Catalog(tmp_path / "data").write(df, "binance", "BTC/USDT", "1m")
        req, cls = session.validate(
            settings,
            mode="rest",
            exchange="binance",
            symbols="BTC/USDT,ETH/USDT",
            timeframe="1m",
            strategy="sma_cross",
            params=["fast=3", "slow=8"],
            max_bars=1,
            api_url=fake.base_url,
        )
        lines: list[str] = []

        def sleep(s: float) -> None:
            fake.now_ms += int(s * 1000)

        session.run_paper(
            settings,
            req,
            cls,
            report=False,
            say=lines.append,
            clock=lambda: fake.now_ms / 1000.0,
            sleep=sleep,
        )
        first = {}
        for path, q in fake.requests:
            if path == "/api/v3/klines":
                first.setdefault(q["symbol"], int(q["startTime"]))
    # BTC: 23:48 .. 23:55 (8) from the catalog, only 23:56 .. 23:59 (4) fetched; ETH: all 12
    assert first["BTCUSDT"] == parse_time("2024-01-09 23:56")
    assert first["ETHUSDT"] == parse_time("2024-01-09 23:48")
    assert "(8 candles from the catalog, 16 fetched)" in lines[0]


def test_an_exchange_failing_mid_run_is_waited_out_without_losing_a_bar(tmp_path):
    from runner import paper as session

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\nbacktest:\n  report_dir: {tmp_path / 'reports'}\n"
    )
    settings = load_settings(cfg)
    start = parse_time("2024-01-10") + 30_000
    with FakeBinance(now_ms=start) as fake:
        lines: list[str] = []

        def say(text: str) -> None:
            lines.append(text)
            if sum(" equity " in t for t in lines) == 2 and " equity " in text:
                fake.fail_next(25, "503")  # every kline request for a while answers 503

        def sleep(s: float) -> None:
            fake.now_ms += int(s * 1000)

        req, cls = session.validate(
            settings,
            mode="rest",
            exchange="binance",
            symbols="BTC/USDT,ETH/USDT",
            timeframe="1m",
            strategy="sma_cross",
            params=["fast=3", "slow=8"],
            max_bars=8,
            api_url=fake.base_url,
        )
        out = session.run_paper(
            settings,
            req,
            cls,
            report=False,
            say=say,
            clock=lambda: fake.now_ms / 1000.0,
            sleep=sleep,
            feed_options={"poll_s": 5.0},
        )
        failures_left = len(fake._failures)
    rec = out.record
    assert failures_left == 0  # the outage was really served
    assert len(rec.time) == 8 and bool(np.all(np.diff(rec.time) == 60_000))
    assert any(t.startswith("REST: ") and "Polling again" in t for t in lines)
    assert "REST: answering again" in lines
    assert not out.feed_stats.gaps  # late, but nothing missing: every candle came
