"""Commands use the project's catalog and report folder wherever they are run from."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cli
from datasets.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gogo2", "datasets", "engine", "strategies", "models", "adapters", "runner")
MIN = 60_000
T0 = 1_672_531_200_000  # 2023-01-01 00:00 UTC


def candles(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]]
    return pd.DataFrame(
        {
            "time": T0 + np.arange(n, dtype=np.int64) * MIN,
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": rng.uniform(1.0, 5.0, n),
        }
    )


@pytest.fixture(name="elsewhere")
def fixture_elsewhere(tmp_path: Path) -> Path:
    """An empty directory outside the project, used as the working directory."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


@pytest.fixture(name="project")
def fixture_project(tmp_path: Path) -> Path:
    """A copy of the code with the repository's config.yaml and a catalog of one series."""
    project = tmp_path / "project"
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, project / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "cli.py", project / "cli.py")
    shutil.copy2(ROOT / "config.yaml", project / "config.yaml")
    Catalog(project / "data").write(candles(120), "binance", "BTC/USDT", "1m")
    return project


def run(project: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOGO2")}
    return subprocess.run(
        [sys.executable, str(project / "cli.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_data_list_from_another_directory_reads_the_project_catalog(
    project: Path, elsewhere: Path
) -> None:
    proc = run(project, elsewhere, "data", "list")
    assert proc.returncode == 0, proc.stderr
    assert str(project / "data") in proc.stdout
    assert "binance" in proc.stdout and "BTC/USDT" in proc.stdout and "120" in proc.stdout
    assert list(elsewhere.iterdir()) == []


def test_overlay_in_another_directory_sets_the_catalog_beside_it(
    project: Path, elsewhere: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other" / "dir"
    other.mkdir(parents=True)
    (other / "x.yaml").write_text("data:\n  dir: cat\n")
    Catalog(other / "cat").write(candles(77, seed=2), "kraken", "ETH/USDT", "1m")
    proc = run(project, elsewhere, "data", "list", "--config", "../other/dir/x.yaml")
    assert proc.returncode == 0, proc.stderr
    assert str(other / "cat") in proc.stdout
    assert "kraken" in proc.stdout and "77" in proc.stdout
    assert "binance" not in proc.stdout  # the project's catalog is not read
    assert list(elsewhere.iterdir()) == []


def test_backtest_from_another_directory_uses_project_data_and_reports(
    tmp_path: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy2(ROOT / "config.yaml", project / "config.yaml")
    Catalog(project / "data").write(candles(600, seed=5), "binance", "BTC/USDT", "1m")
    monkeypatch.setattr("gogo2.config.PROJECT_ROOT", project)
    for name in [k for k in os.environ if k.startswith("GOGO2__")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(elsewhere)
    args = ["backtest", "--from", "2023-01-01", "--exchange", "binance", "--symbols", "BTC/USDT"]
    args += ["--timeframe", "1m", "--param", "fast=5", "--param", "slow=20", "--no-report"]
    code = cli.main(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert str(project / "reports") in out  # the summary says where, absolute
    runs = [p for p in (project / "reports").iterdir() if p.name != "latest"]
    assert len(runs) == 1 and runs[0].name.startswith("sma_cross_1m_BTC-USDT_")
    assert sorted(p.name for p in runs[0].iterdir()) == [
        "equity.parquet",
        "metrics.json",
        "trades.csv",
    ]
    assert list(elsewhere.iterdir()) == []  # no sample generated here, no reports/
    assert not (project / "data" / "exchange=synthetic").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--exchange", "kraken", "--from", "2023-01-01"], "unknown exchange 'kraken'"),
        (["--exchange", "binance", "--from", "2024-01-01"], "no 1m candles of binance BTC/USDT"),
    ],
    ids=["exchange", "range"],
)
def test_no_data_errors_name_the_catalog(
    project: Path, elsewhere: Path, args: list[str], needle: str
) -> None:
    proc = run(
        project,
        elsewhere,
        "backtest",
        "--symbols",
        "BTC/USDT",
        "--timeframe",
        "1m",
        "--no-report",
        *args,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert needle in lines[0] and str(project / "data") in lines[0]
    assert list(elsewhere.iterdir()) == []
