"""``cli.py paper`` and ``cli.py parity``: bad input exits 2 before anything starts, an
unreachable exchange stops in one line, parity passes on the bundled strategy and fails
(exit 1) on a strategy that looks ahead, ``--run`` checks a finished paper run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_exchange import FakeBinance, FakeMarket
from helpers import make_bars

import cli
from engine.signals import Signals
from gogo2.timeframes import parse_time
from strategies import registry
from strategies.base import Param, Strategy


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


@pytest.fixture(name="cfg")
def fixture_cfg(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GOGO2_EXCHANGE_API_URL", raising=False)
    bars = make_bars(900, ("BTC/USDT", "ETH/USDT"), "1m", seed=5, start=parse_time("2024-01-01"))
    from datasets.catalog import Catalog

    cat = Catalog(tmp_path / "data")
    for j, s in enumerate(bars.symbols):
        df = pd.DataFrame(
            {
                "time": bars.time,
                "open": bars.open[:, j],
                "high": bars.high[:, j],
                "low": bars.low[:, j],
                "close": bars.close[:, j],
                "volume": bars.volume[:, j],
            }
        )
        cat.write(df, "binance", s, "1m")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\nbacktest:\n  report_dir: {tmp_path / 'reports'}\n"
        # a paper run obeys the live kill switch; these runs compare whole periods with a
        # backtest, so its loss limits are off here (tests/test_paper_orders.py trips them)
        "live:\n  max_drawdown: null\n  max_daily_loss: null\n"
    )
    return path


BAD = [
    (["--exchange", "binanse"], "binance"),
    (["--duration", "5x"], "--duration"),
    (["--max-bars", "0"], "--max-bars"),
    (["--replay"], "--from"),
    (["--from", "2024-01-01"], "--replay"),
    (["--replay", "--from", "2024-01-01", "--speed", "-1"], "--speed"),
    (["--exchange", "synthetic"], "synthetic"),
    (["--strategy", "nope"], "nope"),
    (["--param", "fast=0"], "fast"),
    (
        ["--replay", "--from", "2024-01-01", "--to", "2024-01-01 00:30", "--exchange", "binance"],
        "warm-up",
    ),
]


@pytest.mark.parametrize(("args", "needle"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_paper_bad_input_exits_2_before_anything_starts(args, needle, cfg, capsys):
    assert cli.main(["paper", *args, "--config", str(cfg)]) == 2
    line = one_error_line(capsys)
    assert needle in line
    assert not (cfg.parent / "reports").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--symbols", "DOGE/XYZ"], "DOGE/XYZ"),
        (["--symbols", "BTC/USDT", "--timeframe", "7m"], "7m"),
        (["--symbols", "NEW/USDT", "--timeframe", "1m"], "warm-up"),
    ],
    ids=["unknown symbol", "timeframe the exchange lacks", "warm-up not met"],
)
def test_paper_refuses_what_the_exchange_lacks(args, needle, cfg, capsys):
    now = parse_time("2024-01-10")
    markets = [FakeMarket("BTC", "USDT", 16_500.0), FakeMarket("NEW", "USDT", 2.0, now - 600_000)]
    with FakeBinance(markets, now_ms=now) as fake:
        code = cli.main(
            ["paper", *args, "--max-bars", "1", "--api-url", fake.base_url, "--config", str(cfg)]
        )
        paths = {p for p, _ in fake.requests}
    assert code == 2
    assert needle in one_error_line(capsys)
    assert not (cfg.parent / "reports").exists()
    assert paths <= {
        "/api/v3/exchangeInfo",
        "/api/v3/klines",
        "/fapi/v1/exchangeInfo",
        "/dapi/v1/exchangeInfo",
    }


def test_paper_without_a_reachable_exchange_fails_in_one_line(cfg, capsys):
    assert cli.main(["paper", "--api-url", "http://127.0.0.1:9", "--config", str(cfg)]) == 1
    line = one_error_line(capsys)
    assert "cannot reach 127.0.0.1:9" in line and "--replay" in line


def test_replay_paper_run_then_parity_of_the_run_and_of_the_period(cfg, capsys):
    common = [
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
        "--exchange",
        "binance",
    ]
    code = cli.main(
        [
            "paper",
            "--replay",
            "--from",
            "2024-01-01 02:00",
            *common,
            "--config",
            str(cfg),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    run = out.strip().splitlines()[-1].split("run: ")[1]
    assert "stopped by end of feed" in out
    trades = pd.read_csv(Path(run) / "trades.csv")
    assert len(trades) > 3
    # the run folder holds what a backtest's does, the QuantStats report included
    names = {p.name for p in Path(run).iterdir()}
    assert {
        "report.html",
        "trades.csv",
        "equity.parquet",
        "metrics.json",
        "paper.json",
        "candles.parquet",
    } <= names
    assert cli.main(["parity", "--run", run, "--config", str(cfg)]) == 0
    assert "parity: ok" in capsys.readouterr().out
    code = cli.main(
        ["parity", "--from", "2024-01-01 02:00", *[a for a in common], "--config", str(cfg)]
    )
    out = capsys.readouterr().out
    assert code == 0 and "different 0" in out and "parity: ok" in out


class PeeksAhead(Strategy):
    """Looks one bar ahead (what parity must catch): long when the next close is higher."""

    name = "test_peeks_ahead"
    base_timeframe = "1m"
    n = Param(5, min=1, max=100)

    def lookback(self):
        return {self.timeframe: self.n + 1}

    def generate(self, data):
        c = data.bars.close
        nxt = np.vstack([c[1:], np.full((1, c.shape[1]), np.nan)])
        up = np.nan_to_num(nxt) > c
        entries = np.where(up, 1, 0).astype(np.int8)
        entries[: self.n] = 0
        return Signals(entries=entries, exits=~up)


def test_parity_exits_1_on_a_strategy_that_looks_ahead(cfg, capsys):
    registry.register(PeeksAhead)
    try:
        code = cli.main(
            [
                "parity",
                "--strategy",
                "test_peeks_ahead",
                "--from",
                "2024-01-01 02:00",
                "--symbols",
                "BTC/USDT",
                "--exchange",
                "binance",
                "--config",
                str(cfg),
            ]
        )
    finally:
        registry._REGISTERED.pop("test_peeks_ahead", None)
    captured = capsys.readouterr()
    assert code == 1
    assert "cause: changed decision" in captured.out
    assert "unexplained" in captured.err
