"""``cli.py data list``: table contents, filters, empty catalog, bad filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from datasets.catalog import Catalog
from datasets.catalog_cli import list_cmd

MIN = 60_000
T0 = 1_672_531_200_000


def candles(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]][:n]
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


@pytest.fixture(name="workdir")
def fixture_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOGO2__DATA__DIR", str(tmp_path / "data"))
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(list_cmd, list(args), catch_exceptions=False)


def test_empty_catalog_says_how_to_get_data(workdir: Path) -> None:
    res = run()
    assert res.exit_code == 0
    assert "is empty" in res.output
    assert "data download" in res.output and "data import" in res.output
    assert "backtest" in res.output


def test_table_lists_series_with_gaps_and_source(workdir: Path) -> None:
    cat = Catalog(workdir / "data")
    df = candles(1500)
    df = df[~df.time.isin([T0 + 100 * MIN, T0 + 101 * MIN, T0 + 700 * MIN])]
    cat.write(df, "binance", "BTC/USDT", "1m")
    cat.write(candles(50, seed=3), "synthetic", "ETH/USDT", "1m", source="synthetic")
    res = run()
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    btc = next(line for line in lines if "BTC/USDT" in line)
    assert "binance" in btc and "1m" in btc and "1,497" in btc
    assert "2 / 3" in btc and "real" in btc
    assert "2023-01-01 00:00" in btc and "2023-01-02 00:59" in btc
    eth = next(line for line in lines if "ETH/USDT" in line)
    assert "synthetic" in eth and "50" in eth
    assert "generated sample data" in res.output


def test_filters(workdir: Path) -> None:
    cat = Catalog(workdir / "data")
    cat.write(candles(10), "binance", "BTC/USDT", "1m")
    cat.write(candles(10, seed=2), "binance", "ETH/USDT", "1m")
    cat.write(candles(10, seed=3), "kraken", "BTC/USDT", "1m")
    res = run("--exchange", "binance")
    assert "kraken" not in res.output and "ETH/USDT" in res.output
    res = run("--symbol", "BTC/USDT")
    assert "ETH/USDT" not in res.output and "kraken" in res.output
    # a ccxt exchange with nothing stored is no error
    res = run("--exchange", "okx")
    assert res.exit_code == 0
    assert "No stored series match the filters. No series of exchange 'okx' are stored." in (
        res.output
    )


def test_misspelt_exchange_exits_2_with_the_closest_name(
    workdir: Path, capsys, monkeypatch
) -> None:
    import cli

    cat = Catalog(workdir / "data")
    cat.write(candles(10), "binance", "BTC/USDT", "1m")
    assert cli.main(["data", "list", "--exchange", "binanse"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --exchange 'binanse' is not an exchange")
    assert "Did you mean 'binance'?" in err and "Stored exchanges: binance." in err
    assert len(err.strip().splitlines()) == 1
    # a close ccxt id is found even when the catalog is empty
    monkeypatch.setenv("GOGO2__DATA__DIR", str(workdir / "empty"))
    assert cli.main(["data", "list", "--exchange", "krakn"]) == 2
    assert "Did you mean 'kraken'?" in capsys.readouterr().err


def test_stored_exchange_filter_does_not_import_ccxt(workdir: Path, monkeypatch) -> None:
    import sys

    Catalog(workdir / "data").write(candles(10), "binance", "BTC/USDT", "1m")
    monkeypatch.setitem(sys.modules, "ccxt", None)  # any `import ccxt` now fails
    res = run("--exchange", "binance")
    assert res.exit_code == 0 and "BTC/USDT" in res.output
    assert run("--exchange", "synthetic").exit_code == 0


def test_list_prints_the_resolved_catalog_path(tmp_path: Path, monkeypatch) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOGO2__DATA__DIR", str(link))
    assert f"The catalog at {real} is empty." in run().output
    Catalog(real).write(candles(10), "binance", "BTC/USDT", "1m")
    out = run().output
    assert f"catalog: {real}" in out.splitlines()
    assert str(link) not in out


def test_derived_rows_only_on_request(workdir: Path) -> None:
    cat = Catalog(workdir / "data")
    cat.write(candles(180), "binance", "BTC/USDT", "1m")
    cat.load(["BTC/USDT"], "1h", exchange="binance")
    assert "(derived)" not in run().output
    out = run("--derived").output
    assert "real (derived)" in out and " 1h " in out


def test_through_root_cli_bad_timeframe_is_exit_2(workdir: Path, capsys) -> None:
    import cli

    code = cli.main(["data", "list", "--timeframe", "1M"])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: bad timeframe")
