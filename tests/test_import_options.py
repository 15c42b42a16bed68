"""``data import`` options and names: --force, freqtrade candle types, delimiters, --max-jump."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_import import assert_same_candles, binance_rows, candles, freqtrade_frame

import cli
from datasets.catalog import Catalog
from datasets.importers import import_files, infer_from_name, parse_file, read_candles
from gogo2.errors import CandleValidationError, DataError
from gogo2.timeframes import format_time, parse_time

T0 = parse_time("2023-01-01")
MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000


def _config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data:\n  dir: {tmp_path / 'data'}\n{extra}")
    return cfg


def _stored(tmp_path: Path) -> list[Path]:
    root = tmp_path / "data"
    return sorted(root.rglob("*.parquet")) if root.exists() else []


# --------------------------------------------------------------------------- --symbol / --force
def test_symbol_contradicting_the_file_name_is_refused_without_force(tmp_path, capsys) -> None:
    path = tmp_path / "BTCUSDT-1h-2023-01.csv"
    binance_rows(candles(48, step=HOUR)).to_csv(path, header=False, index=False)
    base = ["data", "import", str(path), "--config", str(_config(tmp_path))]
    assert cli.main([*base, "--symbol", "ETH/USDT"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: --symbol ETH/USDT contradicts the file name, ")
    assert "which says BTC/USDT" in err and "Drop --symbol" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _stored(tmp_path) == []
    # --force stores it as asked, and says so
    assert cli.main([*base, "--symbol", "ETH/USDT", "--force"]) == 0
    out = capsys.readouterr().out
    assert "binance ETH/USDT 1h: 48 candles imported" in out
    note = "note: BTCUSDT-1h-2023-01.csv: --symbol ETH/USDT overrides BTC/USDT of the file name"
    assert f"{note} (--force)" in out
    cat = Catalog(tmp_path / "data")
    assert cat.symbols("binance") == ["ETH/USDT"]


def test_agreeing_options_need_no_force(tmp_path) -> None:
    path = tmp_path / "BTCUSDT-1h-2023-01.csv"
    binance_rows(candles(10, step=HOUR)).to_csv(path, header=False, index=False)
    pf = parse_file(path, symbol="btc/usdt", timeframe="60m")  # same symbol and length
    assert (pf.symbol, pf.timeframe, pf.notes) == ("btc/usdt", "1h", [])
    # Binance futures dumps carry the same name as spot ones: a settle currency is no conflict
    assert parse_file(path, symbol="BTC/USDT:USDT").symbol == "BTC/USDT:USDT"
    # but a freqtrade futures name does say futures
    fut = tmp_path / "BTC_USDT_USDT-1h-futures.feather"
    freqtrade_frame(candles(10, step=HOUR)).to_feather(fut)
    with pytest.raises(DataError, match="which says BTC/USDT:USDT"):
        parse_file(fut, symbol="BTC/USDT", exchange="binance")
    # an unknown quote currency: the raw pair of the name is compared
    odd = tmp_path / "ABCXYZ-1h-2023-01.csv"
    binance_rows(candles(10, step=HOUR)).to_csv(odd, header=False, index=False)
    assert parse_file(odd, symbol="ABC/XYZ").symbol == "ABC/XYZ"
    with pytest.raises(
        DataError, match=r"--symbol ETH/USDT contradicts the file name, which says ABCXYZ"
    ):
        parse_file(odd, symbol="ETH/USDT")


def test_timeframe_contradicting_a_freqtrade_name_is_refused(tmp_path) -> None:
    path = tmp_path / "BTC_USDT-1h.feather"
    freqtrade_frame(candles(12, step=HOUR)).to_feather(path)
    with pytest.raises(DataError) as err:
        parse_file(path, timeframe="4h", exchange="binance")
    msg = str(err.value)
    assert msg.startswith(f"{path}: --timeframe 4h contradicts the file name, which says 1h.")
    assert "The candles are mostly 1h apart" in msg and "--force" in msg


# --------------------------------------------------------------------------- candle types
def test_a_third_name_part_that_is_no_candle_type_is_part_of_the_name(tmp_path) -> None:
    assert infer_from_name(Path("BTC_USDT-1h-missingcols.csv")) == {
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "kind": "freqtrade",
    }
    assert infer_from_name(Path("ETH_USDT-5m-2023-backup.parquet"))["symbol"] == "ETH/USDT"
    # the file's real problem is reported, not a candle type
    path = tmp_path / "BTC_USDT-1h-missingcols.csv"
    candles(5, step=HOUR).drop(columns="volume").to_csv(path, index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) volume"):
        parse_file(path, exchange="binance")


@pytest.mark.parametrize("kind", ["mark", "index", "premiumIndex", "funding_rate"])
def test_freqtrade_non_price_candle_types_are_refused(kind: str) -> None:
    with pytest.raises(DataError, match=rf"freqtrade '{kind}' candles .* not traded prices"):
        infer_from_name(Path(f"BTC_USDT_USDT-8h-{kind}.feather"))


def test_futures_names_keep_the_settle_currency_and_three_parts_alone_are_no_pair() -> None:
    fut = infer_from_name(Path("futures") / "ETH_USDT_USDT-4h-futures.feather")
    assert (fut["symbol"], fut["timeframe"]) == ("ETH/USDT:USDT", "4h")
    # not freqtrade's futures naming: the symbol must come from --symbol
    other = infer_from_name(Path("coinbase_BTC_USD-1d.parquet"))
    assert "symbol" not in other and other["timeframe"] == "1d"


# --------------------------------------------------------------------------- delimiters
def _write_delimited(path: Path, df: pd.DataFrame, sep: str, decimal: str = ".") -> None:
    df.rename(columns={"time": "timestamp"}).to_csv(path, sep=sep, decimal=decimal, index=False)


@pytest.mark.parametrize(
    ("sep", "decimal", "note"),
    [
        (";", ".", "the file uses ';' as delimiter; read as such"),
        (";", ",", "the file uses ';' as delimiter and a decimal comma; read as such"),
        ("\t", ".", "the file uses tab as delimiter; read as such"),
    ],
)
def test_delimiter_is_sniffed_and_named(tmp_path, sep, decimal, note) -> None:
    want = candles(30, step=HOUR, seed=9)
    path = tmp_path / "BTC_USDT-1h.csv"
    _write_delimited(path, want, sep, decimal)
    got, fmt = read_candles(path)
    assert fmt == "csv"
    assert_same_candles(got, want)
    pf = parse_file(path, exchange="kraken")
    assert pf.notes == [note]


def test_semicolon_csv_through_the_cli_says_so(tmp_path, capsys) -> None:
    path = tmp_path / "candles.csv"
    _write_delimited(path, candles(20, step=HOUR, seed=10), ";")
    argv = [
        "data", "import", str(path), "--symbol", "BTC/USD", "--exchange", "kraken",
        "--config", str(_config(tmp_path)),
    ]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "kraken BTC/USD 1h: 20 candles imported" in out
    assert "note: candles.csv: the file uses ';' as delimiter; read as such" in out
    assert out.rstrip().splitlines()[-1] == f"stored in {(tmp_path / 'data').resolve()}"


def test_semicolon_csv_without_header(tmp_path) -> None:
    want = candles(10, seed=11)
    path = tmp_path / "BTCUSDT-1m-2023-01.csv"
    binance_rows(want).to_csv(path, sep=";", header=False, index=False)
    pf = parse_file(path)
    assert pf.fmt == "binance-csv" and (pf.symbol, pf.timeframe) == ("BTC/USDT", "1m")
    assert_same_candles(pf.frame, want)


# --------------------------------------------------------------------------- --max-jump
def _daily_with_jump(move: float, n: int = 6) -> pd.DataFrame:
    """Daily candles with one close-to-close move of ``move`` at row 3 that persists."""
    df = candles(n, step=DAY, seed=12)
    c2 = df.close[2]
    new_close = c2 * (1 + move)
    df.loc[3, ["open", "high", "low", "close"]] = [
        c2,
        max(c2, new_close),
        min(c2, new_close),
        new_close,
    ]
    for i in range(4, n):  # the level stays: flat candles at the new price
        df.loc[i, ["open", "high", "low", "close"]] = [new_close] * 4
    return df


def test_a_57_percent_day_is_accepted_by_the_daily_default(tmp_path) -> None:
    df = _daily_with_jump(0.57)
    path = tmp_path / "BTC_USD-1d.parquet"
    freqtrade_frame(df).to_parquet(path)
    cat = Catalog(tmp_path / "data")
    [(s, report)] = import_files(cat, [path], exchange="coinbase")
    assert s.timeframe == "1d" and report.rows_written == 6
    # the same move in an hour is refused at the 1h default (0.5), naming both fixes
    hourly = df.assign(time=T0 + HOUR * np.arange(6))
    hpath = tmp_path / "BTC_USD-1h.parquet"
    freqtrade_frame(hourly).to_parquet(hpath)
    with pytest.raises(CandleValidationError) as err:
        import_files(cat, [hpath], exchange="coinbase")
    msg = str(err.value)
    assert "extreme close-to-close jumps: 1 row(s)" in msg
    assert f"The largest move is +57.0% (at {format_time(T0 + 3 * HOUR)} UTC)" in msg
    assert "now 0.5 for 1h" in msg and "--max-jump 0.60" in msg and "data.max_jump" in msg
    [(_, report)] = import_files(cat, [hpath], exchange="coinbase", max_jump=0.6)
    assert report.rows_written == 6


def test_cli_max_jump_flag_and_explicit_config_override_the_default(tmp_path, capsys) -> None:
    path = tmp_path / "BTC_USD-1d.parquet"
    freqtrade_frame(_daily_with_jump(0.57)).to_parquet(path)
    base = ["data", "import", str(path), "--exchange", "coinbase"]
    # an explicit data.max_jump replaces the 1d default (1.0): refused
    strict = _config(tmp_path, "  max_jump: 0.5\n")
    assert cli.main([*base, "--config", str(strict)]) == 2
    err = capsys.readouterr().err
    assert "extreme close-to-close jumps" in err and "--max-jump 0.60" in err
    assert _stored(tmp_path) == []
    # the flag wins over the config
    assert cli.main([*base, "--config", str(strict), "--max-jump", "0.6"]) == 0
    assert "coinbase BTC/USD 1d: 6 candles imported" in capsys.readouterr().out
    assert cli.main([*base, "--config", str(strict), "--max-jump", "0"]) == 2
    assert "--max-jump" in capsys.readouterr().err


def test_shared_coinbase_daily_history_imports_with_its_real_jumps(
    shared_datasets, tmp_path
) -> None:
    path = shared_datasets / "lean" / "coinbase_BTC_USD-1d.parquet"
    if not path.is_file():
        pytest.skip("shared coinbase_BTC_USD-1d.parquet not present")
    raw = pd.read_parquet(path)
    cat = Catalog(tmp_path / "data")
    with pytest.raises(CandleValidationError) as err:  # the old flat 50 % threshold
        import_files(cat, [path], symbol="BTC/USD", exchange="coinbase", max_jump=0.5)
    # 2015-01-14 close 120.00 -> 2015-01-15 close 188.51 (+57.1 %), a real move
    assert "The largest move is +57.1% (at 2015-01-15 00:00 UTC)" in str(err.value)
    assert "--max-jump 0.60" in str(err.value)
    [(s, report)] = import_files(cat, [path], symbol="BTC/USD", exchange="coinbase")
    assert s.timeframe == "1d" and report.rows_written == len(raw) == 1318


def test_cli_without_max_jump_uses_the_timeframe_default(tmp_path, capsys) -> None:
    daily = tmp_path / "BTC_USD-1d.parquet"
    freqtrade_frame(_daily_with_jump(0.57)).to_parquet(daily)
    hourly = tmp_path / "BTC_USD-1h.parquet"
    freqtrade_frame(_daily_with_jump(0.57).assign(time=T0 + HOUR * np.arange(6))).to_parquet(hourly)
    cfg = str(_config(tmp_path))
    assert cli.main(["data", "import", str(daily), "--exchange", "coinbase", "--config", cfg]) == 0
    assert "coinbase BTC/USD 1d: 6 candles imported" in capsys.readouterr().out
    assert cli.main(["data", "import", str(hourly), "--exchange", "coinbase", "--config", cfg]) == 2
    assert "now 0.5 for 1h" in capsys.readouterr().err
