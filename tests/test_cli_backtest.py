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
    code = f"import sys, runner.backtest_cli\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
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
    # the tests pin 1m candles: they do not depend on the demonstration's default timeframe
    cfg.write_text(f"data:\n  dir: {data}\n  exchange: synthetic\nbacktest:\n  timeframe: 1m\n")
    return cfg


class _NullConsole:
    def print(self, *args: object, **kwargs: object) -> None:
        pass


DATA_ERRORS = [
    (["--from", "2030-01-01"], ["2030-01-01", "2022-12-01 00:00 .. 2024-12-31 23:59"]),
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
        "2023-01-02",
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
    # one folder per run: strategy, timeframe, symbols, actual period, short hash
    (run_dir,) = [
        p
        for p in (workdir / "reports").iterdir()
        if p.name != "latest" and not p.name.startswith("runs.duckdb")
    ]
    assert re.fullmatch(
        r"sma_cross_1m_BTC-USDT\+ETH-USDT_2023-01-02_2023-01-15_[0-9a-f]{8}", run_dir.name
    )
    assert (workdir / "reports" / "latest").resolve() == run_dir.resolve()
    report = run_dir / "report.html"
    trades = run_dir / "trades.csv"
    equity = run_dir / "equity.parquet"
    metrics = run_dir / "metrics.json"
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        ["report.html", "trades.csv", "equity.parquet", "metrics.json"]
    )
    # the summary says where
    assert f"run: {run_dir.relative_to(workdir)}" in out
    assert "files: report.html trades.csv equity.parquet metrics.json" in out
    assert "warning" not in out  # the warm-up was stored before --from
    assert "data: SYNTHETIC (generated sample, not market data)" in out
    for label in (
        "sma_cross",
        "BTC/USDT, ETH/USDT",
        "Sharpe",
        "max drawdown",
        "trades",
        "fees paid",
        "2023-01-02 00:00",
        "2023-01-15 00:00",
        "18,720",
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
    t0, t1 = 1_672_617_600_000, 1_673_740_800_000  # 2023-01-02, 2023-01-15
    growth = [
        (f["close"].iloc[-1] / f["close"].iloc[0])
        for f in (cat.load_frame("synthetic", s, "1m", t0, t1) for s in ("BTC/USDT", "ETH/USDT"))
    ]
    assert doc["metrics"]["buy_and_hold_return"] == pytest.approx(sum(growth) / 2 - 1)
    assert "buy & hold return" in out
    assert doc["metrics"]["fees_paid"] == pytest.approx(tr["fees"].sum())
    eq = pd.read_parquet(equity)
    assert len(eq) == 13 * 1440
    assert eq.index.min() == pd.Timestamp("2023-01-02 00:01", tz="UTC")  # close of the first bar
    assert eq.index.max() == pd.Timestamp("2023-01-15 00:00", tz="UTC")
    # the fee flag reached the engine: each trade pays 0.05 % of both legs' notional
    legs = tr["size"] * (tr["entry_price"] + tr["exit_price"])
    # (the CSV keeps 10 significant digits of prices and 1e-8 of money)
    assert tr["fees"].to_numpy() == pytest.approx(0.0005 * legs.to_numpy(), rel=1e-9, abs=2e-8)
    assert (pd.to_datetime(tr["entry_time"]) >= pd.Timestamp("2023-01-02", tz="UTC")).all()
    assert (pd.to_datetime(tr["exit_time"]) <= pd.Timestamp("2023-01-15", tz="UTC")).all()
    # equity closes where cash + trades' pnl put it (all positions are closed at the end)
    assert eq["equity"].iloc[-1] == pytest.approx(10_000 + tr["pnl"].sum(), rel=1e-9)
    # the report's max drawdown is the summary's (QuantStats starts from the initial capital)
    html_dd = re.search(r"<tr><td>Max Drawdown</td><td>[^<]*</td><td>([-0-9.]+)%</td>", html)
    assert html_dd is not None
    assert float(html_dd.group(1)) == pytest.approx(doc["metrics"]["max_drawdown"] * 100, abs=0.006)
    assert "(Compounded)" not in html and "\ufe6a" not in html and "<td>CAGR%</td>" in html
    # 13 days: the annualised figures are withheld everywhere
    assert doc["metrics"]["short_period"] is True
    for key in ("cagr", "volatility", "sharpe", "sortino", "calmar"):
        assert doc["metrics"][key] is None
    assert out.count("n/a (period < 30 days)") == 5
    assert "Period shorter than 30 days" in html
    assert "<tr><td>Sharpe</td><td>n/a (period &lt; 30 days)</td>" in html


def test_run_backtest_warms_up_before_from_and_reports_from_from(sample_config: Path) -> None:
    from gogo2.config import load_settings
    from runner.backtest import run_backtest

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


# The README's default runs, on each bundled strategy's default timeframe: the sample starts
# 2022-12-01, so every warm-up comes from December 2022 and the run starts at --from.
# Warm-ups by hand: sma_cross slow=50 decides first on row 50 (50 bars before); rsi_reversion
# window=14 on row 14 + 646 + 1 = 661 (the seed, 646 Wilder updates, the bar before the
# decision: tests/test_rsi_warmup.py); mtf_trend needs 4 * 50 + 2 = 202 closed hours of 1h trend,
# i.e. at least 202 * 12 = 2,424 5m bars before its first decision.
DEFAULT_RUNS = [
    (["--timeframe", "1h"], "sma_cross", "1h", 50),
    (["--strategy", "rsi_reversion"], "rsi_reversion", "15m", 661),
    (["--strategy", "mtf_trend"], "mtf_trend", "5m", 202 * 12),
]


@pytest.mark.parametrize(
    ("extra", "strategy", "timeframe", "min_warmup"), DEFAULT_RUNS, ids=[r[1] for r in DEFAULT_RUNS]
)
def test_default_runs_from_2023_start_warm_on_the_sample(
    extra: list[str],
    strategy: str,
    timeframe: str,
    min_warmup: int,
    sample_config: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--from", "2023-01-01", "--to", "2023-01-08", "--no-report", *extra]
    code, out, err = run_cli([*args, "--config", str(sample_config)], capsys)
    assert code == 0, err
    assert "warning" not in out
    assert re.search(rf"strategy\s+│\s+{strategy}", out)
    assert re.search(rf"timeframe\s+│\s+{timeframe}", out)
    assert re.search(r"period\s+│\s+2023-01-01 00:00 -> 2023-01-08 00:00", out)
    warm = re.search(r"\(\+([\d,]+) warm-up before\)", out)
    assert warm is not None
    n_warm = int(warm.group(1).replace(",", ""))
    assert n_warm >= min_warmup and (n_warm == min_warmup or strategy == "mtf_trend")
    run_dir = (workdir / "reports" / "latest").resolve()
    doc = json.loads((run_dir / "metrics.json").read_text())
    assert doc["run"]["period"] == ["2023-01-01 00:00", "2023-01-08 00:00"]
    assert doc["run"]["warnings"] == []


def test_cost_flags_reach_the_engine(sample_config: Path) -> None:
    from gogo2.config import load_settings
    from runner.backtest import run_backtest

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
    run_dir = (workdir / "reports" / "latest").resolve()
    assert run_dir.name.startswith("sma_cross_1m_ETH-USDT_2023-01-02_2023-01-03T1200_")
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "equity.parquet",
        "metrics.json",
        "trades.csv",
    ]
    assert "report:" not in out
    assert "ETH/USDT" in out and "BTC/USDT" not in out
    assert sorted(p.name for p in workdir.iterdir()) == ["reports"]


def test_report_flag_puts_every_file_beside_the_given_path(
    sample_config: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--from", "2023-01-02", "--to", "2023-01-04", "--report", "out/my.html"]
    code, out, err = run_cli([*args, "--config", str(sample_config)], capsys)
    assert code == 0, err
    names = ["my.html", "my_equity.parquet", "my_metrics.json", "my_trades.csv"]
    assert sorted(p.name for p in (workdir / "out").iterdir()) == names
    for name in names:
        assert f"out/{name}" in out
    # the reports folder holds only the run store (every backtest is recorded there)
    assert sorted(p.name for p in (workdir / "reports").iterdir()) == [
        "runs.duckdb",
        "runs.duckdb.lock",
    ]


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


def test_timeframe_defaults() -> None:
    from gogo2.config import load_settings
    from runner.backtest import validate_request

    # the repository's config: the demonstration runs sma_cross on hourly candles
    settings = load_settings(ROOT / "config.yaml", environ={})
    assert settings.backtest.strategy == "sma_cross"
    req, _ = validate_request(settings, start="2023-01-01")
    assert req.timeframe == settings.backtest.timeframe == "1h"
    # another strategy runs on its own declared base timeframe unless told otherwise
    req, cls = validate_request(settings, start="2023-01-01", strategy="rsi_reversion")
    assert req.timeframe == cls.base_timeframe != "1h"
    req, _ = validate_request(
        settings, start="2023-01-01", strategy="rsi_reversion", timeframe="60m"
    )
    assert req.timeframe == "1h"


# -- output targets: checked before anything is computed -----------------------------------------


def _refused(
    args: list[str], sample_config: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[str, str]:
    code, out, err = run_cli([*args, "--config", str(sample_config)], capsys)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err
    assert "Backtest summary" not in out  # refused before the run, not after it
    return out, err


def test_a_fifo_or_a_directory_is_never_replaced(
    sample_config: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    fifo = workdir / "pipe.html"
    os.mkfifo(fifo)
    _out, err = _refused(["--from", "2023-01-02", "--report", str(fifo)], sample_config, capsys)
    assert str(fifo) in err and "named pipe" in err and "not a regular file" in err
    assert fifo.is_fifo()
    folder = workdir / "folder.html"
    folder.mkdir()
    _out, err = _refused(["--from", "2023-01-02", "--report", "folder.html"], sample_config, capsys)
    assert "folder.html" in err and "directory" in err
    assert folder.is_dir() and not any(folder.iterdir())
    # a derived file that is special is refused too, before the HTML is written
    (workdir / "out").mkdir()
    os.mkfifo(workdir / "out" / "r_trades.csv")
    _out, err = _refused(["--from", "2023-01-02", "--report", "out/r.html"], sample_config, capsys)
    assert "r_trades.csv" in err and "named pipe" in err
    assert sorted(p.name for p in (workdir / "out").iterdir()) == ["r_trades.csv"]
    assert not (workdir / "reports").exists()


def test_dev_null_is_refused_before_anything_is_written(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import stat

    from engine import outputs

    def no_write(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("nothing may be written for a refused target")

    monkeypatch.setattr(outputs, "write_all", no_write)
    monkeypatch.setattr(os, "replace", no_write)
    # refused at the check, before the catalog is even opened: no config with data needed
    code, out, err = run_cli(["--from", "2023-01-02", "--report", "/dev/null"], capsys)
    assert code == 2, (out, err)
    assert err.startswith("error: --report /dev/null") and "character device" in err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not (workdir / "data").exists()


def test_unwritable_targets_fail_at_once_with_one_line(
    sample_config: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "afile").write_text("x")
    _out, err = _refused(
        ["--from", "2023-01-02", "--report", "afile/sub/r.html"], sample_config, capsys
    )
    assert "afile" in err and "is a file, not a directory" in err
    assert (workdir / "afile").read_text() == "x"
    # the report folder of the config is checked as well
    bad = workdir / "bad.yaml"
    bad.write_text(
        f"data:\n  dir: {load_data_dir(sample_config)}\nbacktest:\n  report_dir: afile\n"
    )
    code, _out, err = run_cli(["--from", "2023-01-02", "--config", str(bad)], capsys)
    assert code == 2 and "backtest.report_dir" in err and "not a directory" in err


def load_data_dir(config: Path) -> str:
    from gogo2.config import load_settings

    return str(load_settings(config).data.path)


def test_read_only_directory_is_refused(
    sample_config: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    ro = workdir / "ro"
    ro.mkdir()
    real_access = os.access

    def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
        if Path(str(path)) == ro and mode & os.W_OK:
            return False  # what a read-only directory answers (root would be let through)
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    _out, err = _refused(["--from", "2023-01-02", "--report", "ro/r.html"], sample_config, capsys)
    assert "ro" in err and "not writable" in err
    _out, err = _refused(
        ["--from", "2023-01-02", "--report", "ro/new/r.html"], sample_config, capsys
    )
    assert "is missing" in err and "not writable" in err
    assert list(ro.iterdir()) == []


def test_read_only_directory_for_real(
    sample_config: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories; the patched case covers it")
    ro = workdir / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _out, err = _refused(
            ["--from", "2023-01-02", "--report", "ro/r.html"], sample_config, capsys
        )
        assert "not writable" in err
    finally:
        ro.chmod(0o755)


def test_runs_never_share_file_names(
    sample_config: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--from", "2023-01-02", "--to", "2023-01-03", "--config", str(sample_config)]
    base += ["--param", "fast=5", "--param", "slow=30"]
    reports = workdir / "reports"
    code, _o, err = run_cli([*base, "--symbols", "BTC/USDT"], capsys)
    assert code == 0, err
    first = (reports / "latest").resolve()
    code, _o, err = run_cli([*base, "--symbols", "ETH/USDT", "--timeframe", "5m"], capsys)
    assert code == 0, err
    second = (reports / "latest").resolve()
    assert first != second and first.is_dir() and second.is_dir()
    for folder, symbol, tf in ((first, "BTC/USDT", "1m"), (second, "ETH/USDT", "5m")):
        doc = json.loads((folder / "metrics.json").read_text())
        assert doc["run"]["symbols"] == [symbol] and doc["run"]["timeframe"] == tf
        html = (folder / "report.html").read_text(encoding="utf-8")
        assert f"sma_cross on {symbol} {tf}," in html
        assert len(pd.read_csv(folder / "trades.csv")) == doc["metrics"]["trades"]
    # another cost setting is another run, even on the same symbols and period
    code, _o, err = run_cli([*base, "--symbols", "BTC/USDT", "--fee", "0.0005"], capsys)
    assert code == 0, err
    third = (reports / "latest").resolve()
    assert third not in (first, second)
    assert third.name.rsplit("_", 1)[0] == first.name.rsplit("_", 1)[0]  # only the hash differs
    # the same run again without HTML: the old HTML does not stay beside the new files
    code, _o, err = run_cli([*base, "--symbols", "BTC/USDT", "--no-report"], capsys)
    assert code == 0, err
    assert (reports / "latest").resolve() == first
    assert sorted(p.name for p in first.iterdir()) == [
        "equity.parquet",
        "metrics.json",
        "trades.csv",
    ]
    assert not [p for p in reports.rglob("*") if p.name.endswith(".tmp")]


# -- honest short or truncated runs ----------------------------------------------------------------


def test_a_warm_up_longer_than_the_data_is_an_error(
    sample_config: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from strategies.registry import create

    warmup = create("mtf_trend", {}, "5m").warmup
    # 5 days and one bar of 5m candles at the very start of the data (the sample starts
    # 2022-12-01 00:00): nothing before --from
    args = ["--from", "2022-12-01", "--to", "2022-12-06T00:05", "--strategy", "mtf_trend"]
    code, out, err = run_cli([*args, "--config", str(sample_config)], capsys)
    assert 5 * 288 + 1 < warmup
    assert code == 2, (out, err)
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert f"{warmup:,} 5m bars of warm-up" in err
    assert "only 1,441 5m bars" in err
    assert "earlier --from" in err and "more data" in err
    assert not (workdir / "reports").exists()


def test_from_before_the_data_shows_requested_and_actual_range(
    sample_config: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    args = ["--from", "2022-11-20", "--to", "2022-12-03", "--symbols", "BTC/USDT"]
    args += ["--param", "fast=5", "--param", "slow=30"]
    code, out, err = run_cli([*args, "--config", str(sample_config)], capsys)
    assert code == 0, err
    # the data starts 2022-12-01 00:00; sma_cross(slow=30) has a warm-up of 30 rows: its
    # first decision is row 30, the 1m bar opened at 00:30
    assert re.search(r"requested\s+│\s+2022-11-20 00:00 -> 2022-12-03 00:00", out)
    assert re.search(r"period\s+│\s+2022-12-01 00:30 -> 2022-12-03 00:00", out)
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1
    assert "2022-11-20" in warnings[0] and "2022-12-01 00:30" in warnings[0]
    assert "first stored candle opens at 2022-12-01 00:00" in warnings[0]
    run_dir = (workdir / "reports" / "latest").resolve()
    assert "_2022-12-01T0030_2022-12-03_" in run_dir.name
    assert "2022-11-20" not in run_dir.name
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    title = re.search(r"<title>(.*?)</title>", html)
    assert title is not None
    assert "2022-12-01 00:30 to 2022-12-03" in title.group(1)
    assert "T0030" not in title.group(1) and "(Compounded)" not in html
    doc = json.loads((run_dir / "metrics.json").read_text())
    assert doc["run"]["requested"] == ["2022-11-20 00:00", "2022-12-03 00:00"]
    assert doc["run"]["period"] == ["2022-12-01 00:30", "2022-12-03 00:00"]
    assert doc["run"]["warnings"] == [w.removeprefix("warning: ") for w in warnings]
    # at 80 columns: no line is wider, none ends in spaces, parameters are k=v words
    table = [line for line in out.splitlines() if line[:1] in "┌│├└B"]
    assert len(table) > 30
    for line in table:
        assert len(line) <= 80, line
        assert line == line.rstrip(), repr(line)
    assert "fast=5 slow=30 band=0.005" in out


def test_python_api_and_cli_exclude_the_warm_up_alike(sample_config: Path) -> None:
    from engine.metrics import from_result
    from gogo2.config import load_settings
    from runner.backtest import run_backtest

    settings = load_settings(sample_config)
    # --from at the start of the data (2022-12-01 00:00): the 30 warm-up bars lie inside
    # the requested range
    out = run_backtest(
        settings,
        start="2022-12-01",
        end="2022-12-02",
        symbols="BTC/USDT",
        params=["fast=5", "slow=30", "band=0.001"],
        report=False,
        save=False,
    )
    result = out.result
    assert result.warmup == out.warmup == 30
    pos = result.positions.to_numpy()[:, 0]
    # the saved positions show the end-of-data close on the last bar; the position was
    # held through that bar, so it counts as exposed when the bar before held one
    exposed = int((pos[30:-1] != 0).sum()) + int(pos[-2] != 0)
    assert exposed > 0 and (pos[:30] == 0).all()
    assert result.exposure == pytest.approx(exposed / (1440 - 30))
    api = from_result(result)
    assert api.exposure == out.metrics.exposure == result.exposure
    assert api.start == out.metrics.start == pd.Timestamp("2022-12-01 00:30", tz="UTC")
    assert api.final_equity == out.metrics.final_equity
    assert api.max_drawdown_bar == out.metrics.max_drawdown_bar
