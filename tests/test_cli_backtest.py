"""``cli.py backtest``: fast help, one clear message per bad input, end-to-end on the sample."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numba", "quantstats", "torch", "duckdb", "pandas", "matplotlib", "ccxt", "pyarrow")


def test_help_imports_no_heavy_library() -> None:
    code = f"import sys, engine.cli\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_help_through_the_root_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "cli.py", "backtest", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    for flag in (
        "--from",
        "--to",
        "--symbols",
        "--timeframe",
        "--strategy",
        "--param",
        "--cash",
        "--fee",
        "--slippage",
        "--report",
        "--config",
        "--exchange",
    ):
        assert flag in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), imported & set(HEAVY)


@pytest.fixture(name="workdir")
def fixture_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project and working directory: data/ and reports/ resolve inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("gogo2.config.PROJECT_ROOT", tmp_path)
    for name in [k for k in __import__("os").environ if k.startswith("GOGO2__")]:
        monkeypatch.delenv(name)
    return tmp_path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["backtest", *args])
    out, err = capsys.readouterr()
    return code, out, err


BAD_INPUT = [
    (["--from", "2023-02-01", "--to", "2023-01-01"], ["--from 2023-02-01", "not before"]),
    (["--from", "first of may"], ["--from", "first of may", "2023-01-01"]),
    (["--from", "2023-01-01", "--to", "soon"], ["--to", "soon"]),
    (["--from", "2023-01-01", "--cash", "abc"], ["--cash", "'abc'", "not a number"]),
    (["--from", "2023-01-01", "--cash", "-5"], ["--cash", "-5", "positive"]),
    (["--from", "2023-01-01", "--cash", "nan"], ["--cash", "positive"]),
    (["--from", "2023-01-01", "--fee", "0.1"], ["--fee", "0.1", "fraction"]),
    (["--from", "2023-01-01", "--fee", "-0.001"], ["--fee", "-0.001"]),
    (["--from", "2023-01-01", "--slippage", "x"], ["--slippage", "not a number"]),
    (["--from", "2023-01-01", "--slippage", "-2"], ["--slippage", "basis points"]),
    (["--from", "2023-01-01", "--timeframe", "7x"], ["bad timeframe", "'7x'"]),
    (["--from", "2023-01-01", "--symbols", "BTCUSDT"], ["'BTCUSDT'", "BASE/QUOTE"]),
    (["--from", "2023-01-01", "--symbols", " , "], ["--symbols", "names no symbol"]),
    (
        ["--from", "2023-01-01", "--strategy", "sma_crosss"],
        ["sma_crosss", "Did you mean 'sma_cross'"],
    ),
    (["--from", "2023-01-01", "--param", "fasst=5"], ["fasst", "Did you mean 'fast'"]),
    (["--from", "2023-01-01", "--param", "fast=abc"], ["fast", "abc", "integer"]),
    (["--from", "2023-01-01", "--param", "fast"], ["--param 'fast'", "name=value"]),
    (["--from", "2023-01-01", "--param", "fast=60", "--param", "slow=50"], ["fast", "slow"]),
    (["--from", "2023-01-01", "--report", "r.html", "--no-report"], ["--no-report"]),
    (
        ["--from", "2023-01-01", "--config", "missing.yaml"],
        ["--config missing.yaml", "no such file"],
    ),
]


@pytest.mark.parametrize(
    ("args", "needles"), BAD_INPUT, ids=[" ".join(a[2:]) or a[1] for a, _ in BAD_INPUT]
)
def test_bad_input_exits_2_with_one_clear_message(
    args: list[str], needles: list[str], workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(args, capsys)
    assert code == 2, (out, err)
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
    for needle in needles:
        assert needle in err
    assert "Traceback" not in err + out
    # validation happens before any data is touched
    assert not (workdir / "data").exists()
    assert not (workdir / "reports").exists()


def test_missing_from_is_a_usage_error(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_cli([], capsys)
    assert code == 2
    assert "--from" in err
    assert "Traceback" not in err


# -- on the embedded sample ------------------------------------------------------------------------


@pytest.fixture(name="sample_config", scope="session")
def fixture_sample_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config whose catalog holds the embedded sample (generated once per test session)."""
    from datasets.catalog import Catalog
    from datasets.synthetic import ensure_sample
    from gogo2.config import Settings

    root = tmp_path_factory.mktemp("sample")
    data = root / "data"
    ensure_sample(Catalog(data), Settings().data.sample_seed, console=_NullConsole())
    cfg = root / "sample.yaml"
    cfg.write_text(f"data:\n  dir: {data}\n  exchange: synthetic\n")
    return cfg


class _NullConsole:
    def print(self, *args: object, **kwargs: object) -> None:
        pass


DATA_ERRORS = [
    (["--from", "2030-01-01"], ["2030-01-01", "2023-01-01"]),
    (["--from", "2023-01-01", "--to", "2023-01-02", "--symbols", "DOGE/USDT"], ["DOGE/USDT"]),
    (["--from", "2023-01-01", "--to", "2023-01-02", "--exchange", "krakn"], ["krakn"]),
]


@pytest.mark.parametrize(("args", "needles"), DATA_ERRORS, ids=["no-data", "symbol", "exchange"])
def test_data_errors_exit_2(
    args: list[str],
    needles: list[str],
    sample_config: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli([*args, "--config", str(sample_config)], capsys)
    assert code == 2, (out, err)
    assert err.startswith("error: ")
    for needle in needles:
        assert needle in err
    assert "Traceback" not in err + out
    assert not (workdir / "reports").exists()


def test_end_to_end_on_the_sample(
    sample_config: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "--from",
        "2023-01-01",
        "--to",
        "2023-01-15",
        "--config",
        str(sample_config),
        "--param",
        "fast=10",
        "--param",
        "slow=40",
        "--fee",
        "0.0005",
        "--slippage",
        "1",
    ]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "Traceback" not in out + err
    report = workdir / "reports" / "sma_cross_2023-01-01_2023-01-15.html"
    trades = workdir / "reports" / "sma_cross_2023-01-01_2023-01-15_trades.csv"
    equity = workdir / "reports" / "sma_cross_2023-01-01_2023-01-15_equity.parquet"
    metrics = workdir / "reports" / "sma_cross_2023-01-01_2023-01-15_metrics.json"
    for path in (report, trades, equity, metrics):
        assert path.is_file(), path
        assert str(path.relative_to(workdir)) in out  # the summary says where
    assert "data: SYNTHETIC (generated sample, not market data)" in out
    for label in (
        "sma_cross",
        "BTC/USDT, ETH/USDT",
        "Sharpe",
        "max drawdown",
        "trades",
        "fees paid",
        "2023-01-01 00:00",
        "2023-01-15 00:00",
        "20,160",
    ):
        assert label in out, label
    html = report.read_text(encoding="utf-8")
    assert "synthetic data" in html
    assert "sma_cross on BTC/USDT, ETH/USDT" in html

    tr = pd.read_csv(trades)
    assert len(tr) > 0
    assert {"symbol", "direction", "entry_time", "exit_time", "pnl", "fees"} <= set(tr.columns)
    doc = json.loads(metrics.read_text())
    assert doc["run"]["synthetic"] is True
    assert doc["run"]["params"]["fast"] == 10 and doc["run"]["params"]["band"] == 0.005
    assert doc["run"]["fee_taker"] == doc["run"]["fee_maker"] == 0.0005
    assert doc["metrics"]["trades"] == len(tr)
    # buy & hold of the same closes over the same span, equal weight
    from datasets.catalog import Catalog
    from gogo2.config import load_settings

    cat = Catalog(load_settings(sample_config).data.path)
    t0, t1 = 1_672_531_200_000, 1_673_740_800_000  # 2023-01-01, 2023-01-15
    growth = [
        (f["close"].iloc[-1] / f["close"].iloc[0])
        for f in (cat.load_frame("synthetic", s, "1m", t0, t1) for s in ("BTC/USDT", "ETH/USDT"))
    ]
    assert doc["metrics"]["buy_and_hold_return"] == pytest.approx(sum(growth) / 2 - 1)
    assert "buy & hold return" in out
    assert doc["metrics"]["fees_paid"] == pytest.approx(tr["fees"].sum())
    eq = pd.read_parquet(equity)
    assert len(eq) == 14 * 1440
    assert eq.index.min() == pd.Timestamp("2023-01-01 00:01", tz="UTC")  # close of the first bar
    assert eq.index.max() == pd.Timestamp("2023-01-15 00:00", tz="UTC")
    # the fee flag reached the engine: each trade pays 0.05 % of both legs' notional
    legs = tr["size"] * (tr["entry_price"] + tr["exit_price"])
    assert tr["fees"].to_numpy() == pytest.approx(0.0005 * legs.to_numpy(), rel=1e-9)
    assert (pd.to_datetime(tr["entry_time"]) >= pd.Timestamp("2023-01-01", tz="UTC")).all()
    assert (pd.to_datetime(tr["exit_time"]) <= pd.Timestamp("2023-01-15", tz="UTC")).all()
    # equity closes where cash + trades' pnl put it (all positions are closed at the end)
    assert eq["equity"].iloc[-1] == pytest.approx(10_000 + tr["pnl"].sum(), rel=1e-9)


def test_run_backtest_warms_up_before_from_and_reports_from_from(sample_config: Path) -> None:
    from engine.run import run_backtest
    from gogo2.config import load_settings

    settings = load_settings(sample_config)
    kw = dict(end="2023-01-05", params=["fast=5", "slow=30", "band=0.001"], report=False)
    out = run_backtest(settings, start="2023-01-03", save=False, **kw)
    assert set(out.timings) == {"load", "signals", "simulate", "metrics"}
    assert out.synthetic
    assert out.strategy_warmup == 30  # slow=30: rows 0 .. 29, the first cross at row 30
    assert out.warmup == 30  # exactly the strategy's warm-up is loaded before --from
    assert out.bars.n == 2 * 1440
    assert out.equity is not None
    assert out.equity.index[0] == pd.Timestamp("2023-01-03 00:01", tz="UTC")
    assert out.metrics.days == 2
    trades = out.result.trades
    assert len(trades) > 0
    # the strategy could act at the first bar of --from: its SMAs were warm
    assert trades["entry_time"].min() < pd.Timestamp("2023-01-03 12:00", tz="UTC")
    assert (trades["entry_time"] >= pd.Timestamp("2023-01-03 00:01", tz="UTC")).all()
    # equity before --from is untouched cash: nothing traded during the warm-up
    before = out.result.equity.iloc[: out.warmup]
    assert (before == 10_000.0).all()
    assert out.metrics.total_return == pytest.approx(out.equity.iloc[-1] / 10_000.0 - 1)


def test_cost_flags_reach_the_engine(sample_config: Path) -> None:
    from engine.run import run_backtest
    from gogo2.config import load_settings

    settings = load_settings(sample_config)
    common = dict(
        start="2023-01-01",
        end="2023-01-03",
        symbols="BTC/USDT",
        params=["fast=5", "slow=30", "band=0.001"],
        report=False,
        save=False,
    )
    cheap = run_backtest(settings, fee="0", slippage="0", cash="5000", **common)
    dear = run_backtest(settings, fee="0.002", slippage="10", cash="5000", **common)
    assert cheap.result.config.fee_taker == cheap.result.config.fee_maker == 0.0
    assert dear.result.config.fee_maker == 0.002 and dear.result.config.slippage_bps == 10.0
    assert cheap.metrics.initial_equity == 5000.0
    assert cheap.metrics.fees_paid == 0.0 and dear.metrics.fees_paid > 0
    # same signals, same trades count; costs can only lower the result
    assert cheap.metrics.trades == dear.metrics.trades > 0
    assert dear.metrics.final_equity < cheap.metrics.final_equity


def test_no_report_still_saves_trades_and_equity_under_the_default_name(
    sample_config: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--from", "2023-01-02", "--to", "2023-01-03T12:00", "--symbols", "eth/usdt"]
    code, out, err = run_cli([*args, "--no-report", "--config", str(sample_config)], capsys)
    assert code == 0, err
    stem = workdir / "reports" / "sma_cross_2023-01-02_2023-01-03T1200"
    assert not stem.with_suffix(".html").exists()
    assert Path(f"{stem}_trades.csv").is_file()
    assert Path(f"{stem}_equity.parquet").is_file()
    assert "report:" not in out
    assert "ETH/USDT" in out and "BTC/USDT" not in out
    assert sorted(p.name for p in workdir.iterdir()) == ["reports"]


def test_report_flag_puts_every_file_beside_the_given_path(
    sample_config: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--from", "2023-01-02", "--to", "2023-01-04", "--report", "out/my.html"]
    code, out, err = run_cli([*args, "--config", str(sample_config)], capsys)
    assert code == 0, err
    for name in ("my.html", "my_trades.csv", "my_equity.parquet"):
        assert (workdir / "out" / name).is_file()
        assert f"out/{name}" in out
    assert not (workdir / "reports").exists()


def test_orders_below_min_notional_are_reported_not_traded(
    sample_config: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 5 USDT of cash can never reach the 10 USDT minimum order value
    args = ["--from", "2023-01-02", "--to", "2023-01-03", "--cash", "5", "--no-report"]
    args += ["--param", "fast=5", "--param", "slow=30", "--param", "band=0.001"]
    code, out, err = run_cli([*args, "--config", str(sample_config)], capsys)
    assert code == 0, err
    assert "orders not placed" in out
    assert re.search(r"│ trades\s+│\s+0 │", out)
    assert "5.00 USDT" in out  # final equity: untouched cash


def test_timeframe_defaults(sample_config: Path) -> None:
    from engine.run import validate_request
    from gogo2.config import load_settings

    settings = load_settings(sample_config)
    assert settings.backtest.strategy == "sma_cross"
    req, _ = validate_request(settings, start="2023-01-01")
    assert req.timeframe == settings.backtest.timeframe == "1m"
    # another strategy runs on its own declared base timeframe unless told otherwise
    req, cls = validate_request(settings, start="2023-01-01", strategy="rsi_reversion")
    assert req.timeframe == cls.base_timeframe != "1m"
    req, _ = validate_request(
        settings, start="2023-01-01", strategy="rsi_reversion", timeframe="60m"
    )
    assert req.timeframe == "1h"
