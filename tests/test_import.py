"""Importing Binance dumps, freqtrade files and plain tables into the catalog."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cli
from datasets.catalog import Catalog
from datasets.importers import (
    _to_ms_numeric,
    import_files,
    infer_from_name,
    infer_timeframe,
    parse_file,
    prepare_import,
    read_candles,
    split_pair,
)
from gogo2.errors import CandleValidationError, DataError
from gogo2.timeframes import parse_time

T0 = parse_time("2023-01-01")
MIN = 60_000


def candles(n: int, start: int = T0, step: int = MIN, seed: int = 0) -> pd.DataFrame:
    """Consistent seeded candles (rounded to cents, as exchanges send them)."""
    rng = np.random.default_rng(seed)
    close = np.round(16_500 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), 2)
    open_ = np.r_[16_500.0, close[:-1]]
    high = np.round(np.maximum(open_, close) + rng.uniform(0, 5, n), 2)
    low = np.round(np.minimum(open_, close) - rng.uniform(0, 5, n), 2)
    volume = np.round(rng.uniform(1, 50, n), 5)
    return pd.DataFrame(
        {
            "time": start + step * np.arange(n, dtype=np.int64),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def binance_rows(df: pd.DataFrame, time_factor: int = 1) -> pd.DataFrame:
    """The 12 columns of a Binance kline dump."""
    return pd.DataFrame(
        {
            "open_time": df["time"] * time_factor,
            "open": df["open"].map("{:.8f}".format),
            "high": df["high"].map("{:.8f}".format),
            "low": df["low"].map("{:.8f}".format),
            "close": df["close"].map("{:.8f}".format),
            "volume": df["volume"].map("{:.8f}".format),
            "close_time": (df["time"] + MIN - 1) * time_factor,
            "quote_volume": (df["volume"] * df["close"]).round(4),
            "count": 100,
            "taker_buy_volume": (df["volume"] / 2).round(5),
            "taker_buy_quote_volume": (df["volume"] * df["close"] / 2).round(4),
            "ignore": 0,
        }
    )


def freqtrade_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.drop(columns="time").copy()
    out.insert(0, "date", pd.to_datetime(df["time"], unit="ms", utc=True))
    return out


def assert_same_candles(got: pd.DataFrame, want: pd.DataFrame) -> None:
    np.testing.assert_array_equal(got["time"].to_numpy(), want["time"].to_numpy())
    for c in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(got[c].to_numpy(), want[c].to_numpy(), rtol=0, atol=1e-9)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "data")


# --------------------------------------------------------------------------- Binance dumps
@pytest.mark.parametrize("factor", [1, 1000], ids=["ms", "us"])
def test_binance_dump_ms_and_us(tmp_path, catalog, factor) -> None:
    want = candles(300)
    path = tmp_path / "BTCUSDT-1m-2023-01.csv"
    binance_rows(want, factor).to_csv(path, header=False, index=False)
    got, fmt = read_candles(path)
    assert fmt == "binance-csv"
    assert_same_candles(got, want)
    [(s, report)] = import_files(catalog, [path])
    assert (s.exchange, s.symbol, s.timeframe) == ("binance", "BTC/USDT", "1m")
    assert report.rows_written == 300
    assert_same_candles(catalog.load_frame("binance", "BTC/USDT", "1m"), want)
    assert catalog.series_source("binance", "BTC/USDT") == "real"


def test_binance_dump_with_header_and_zip(tmp_path) -> None:
    want = candles(50, seed=1)
    with_header = tmp_path / "ETHUSDT-1m-2023-01-01.csv"
    binance_rows(want).to_csv(with_header, index=False)
    got, fmt = read_candles(with_header)
    assert fmt == "binance-csv"
    assert_same_candles(got, want)
    zpath = tmp_path / "ETHUSDT-1m-2023-01.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("ETHUSDT-1m-2023-01.csv", binance_rows(want).to_csv(header=False, index=False))
    pf = parse_file(zpath)
    assert (pf.exchange, pf.symbol, pf.timeframe) == ("binance", "ETH/USDT", "1m")
    assert_same_candles(pf.frame, want)


def test_name_inference() -> None:
    assert infer_from_name(Path("BTCUSDT-1h-2024-02.csv"))["symbol"] == "BTC/USDT"
    assert infer_from_name(Path("ETHBTC-5m-2024-02-03.zip"))["symbol"] == "ETH/BTC"
    assert infer_from_name(Path("SOLFDUSD-1m-2024-02.csv"))["symbol"] == "SOL/FDUSD"
    ft = infer_from_name(Path("BTC_USDT_USDT-1h-futures.feather"))
    assert (ft["symbol"], ft["timeframe"]) == ("BTC/USDT:USDT", "1h")
    assert infer_from_name(Path("binance") / "ETH_USDT-4h.json.gz")["exchange"] == "binance"
    assert infer_from_name(Path("prices.csv")) == {}
    assert split_pair("USDT") is None
    with pytest.raises(DataError, match="mark"):
        infer_from_name(Path("BTC_USDT_USDT-8h-mark.feather"))


# --------------------------------------------------------------------------- freqtrade files
@pytest.mark.parametrize("ext", ["feather", "parquet"])
def test_freqtrade_feather_and_parquet(tmp_path, catalog, ext) -> None:
    want = candles(240, step=5 * MIN, seed=2)
    folder = tmp_path / "user_data" / "data" / "binance"
    folder.mkdir(parents=True)
    path = folder / f"ETH_USDT-5m.{ext}"
    frame = freqtrade_frame(want)
    frame.to_feather(path) if ext == "feather" else frame.to_parquet(path)
    [(s, report)] = import_files(catalog, [path])
    assert (s.exchange, s.symbol, s.timeframe) == ("binance", "ETH/USDT", "5m")
    assert report.rows_written == 240
    assert_same_candles(catalog.load_frame("binance", "ETH/USDT", "5m"), want)


def test_freqtrade_date_in_another_zone_and_unit(tmp_path) -> None:
    want = candles(10, step=3_600_000, seed=3)
    frame = freqtrade_frame(want)
    frame["date"] = frame["date"].dt.tz_convert("Asia/Tokyo").dt.as_unit("ns")
    path = tmp_path / "BTC_USDT-1h.feather"
    frame.to_feather(path)
    got, _ = read_candles(path)
    assert_same_candles(got, want)


@pytest.mark.parametrize("gz", [False, True])
def test_freqtrade_json(tmp_path, gz) -> None:
    want = candles(30, step=3_600_000, seed=4)
    rows = want[["time", "open", "high", "low", "close", "volume"]].to_numpy().tolist()
    rows = [[int(r[0]), *r[1:]] for r in rows]
    path = tmp_path / ("BTC_USDT-1h.json.gz" if gz else "BTC_USDT-1h.json")
    text = json.dumps(rows)
    path.write_bytes(gzip.compress(text.encode())) if gz else path.write_text(text)
    pf = parse_file(path, exchange="binance")
    assert pf.fmt == "freqtrade-json" and (pf.symbol, pf.timeframe) == ("BTC/USDT", "1h")
    assert_same_candles(pf.frame, want)


# --------------------------------------------------------------------------- plain tables
@pytest.mark.parametrize("unit", ["s", "ms", "iso", "date"])
def test_plain_csv_time_variants(tmp_path, unit) -> None:
    want = candles(20, step=3_600_000, seed=5)
    df = want.rename(columns=str.capitalize)  # Open, High, ... (case-insensitive)
    if unit == "s":
        df = df.rename(columns={"Time": "Timestamp"})
        df["Timestamp"] = df["Timestamp"] // 1000
    elif unit == "ms":
        df = df.rename(columns={"Time": "TIMESTAMP"})
    elif unit == "iso":
        df = df.rename(columns={"Time": "timestamp"})
        df["timestamp"] = pd.to_datetime(df["timestamp"], unit="ms", utc=True).map(
            lambda t: t.isoformat()
        )
    else:
        df = df.rename(columns={"Time": "date"})
        df["date"] = pd.to_datetime(df["date"], unit="ms").dt.strftime("%Y-%m-%d %H:%M:%S")
    df["extra"] = "ignored"
    path = tmp_path / "prices.csv"
    df.to_csv(path, index=False)
    pf = parse_file(path, symbol="BTC/USDT", exchange="kraken")
    assert pf.fmt == "csv"
    assert pf.timeframe == "1h" and any("inferred" in n for n in pf.notes)
    assert_same_candles(pf.frame, want)


def test_plain_parquet_with_epoch_ms(tmp_path) -> None:
    want = candles(15, seed=6)
    path = tmp_path / "BTC_USDT-1m.parquet"
    want.rename(columns={"time": "timestamp"}).to_parquet(path)
    got, fmt = read_candles(path)
    assert fmt == "parquet"
    assert_same_candles(got, want)


@given(st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000))
def test_time_unit_detected_by_magnitude(ms: int) -> None:
    p = Path("x.csv")
    assert _to_ms_numeric([ms], p, "t")[0] == ms
    assert _to_ms_numeric([ms * 1000], p, "t")[0] == ms
    assert _to_ms_numeric([ms * 1_000_000], p, "t")[0] == ms
    assert _to_ms_numeric([ms // 1000], p, "t")[0] == (ms // 1000) * 1000


def test_infer_timeframe_ignores_gaps() -> None:
    t = T0 + 5 * MIN * np.r_[np.arange(10), np.arange(20, 30)]
    assert infer_timeframe(t) == "5m"
    assert infer_timeframe(t[:1]) is None


# --------------------------------------------------------------------------- bad input
def test_missing_column_names_file_and_fix(tmp_path) -> None:
    path = tmp_path / "BTC_USDT-1m.csv"
    candles(5).drop(columns="volume").to_csv(path, index=False)
    with pytest.raises(DataError, match=r"BTC_USDT-1m\.csv: missing column\(s\) volume"):
        read_candles(path)


def test_unreadable_and_unknown_files(tmp_path) -> None:
    bad = tmp_path / "BTC_USDT-1m.parquet"
    bad.write_bytes(b"not a parquet file")
    with pytest.raises(DataError, match=r"BTC_USDT-1m\.parquet: cannot be read as parquet"):
        read_candles(bad)
    with pytest.raises(DataError, match="no such file"):
        read_candles(tmp_path / "nope.csv")
    other = tmp_path / "BTC_USDT-1m.xlsx"
    other.write_bytes(b"x")
    with pytest.raises(DataError, match="unknown file type"):
        read_candles(other)
    empty = tmp_path / "BTC_USDT-1m.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_candles(empty)
    text_values = tmp_path / "p.csv"
    text_values.write_text("timestamp,open,high,low,close,volume\n1672531200000,1,2,0.5,abc,3\n")
    with pytest.raises(DataError, match=r"column 'close' value 'abc'"):
        read_candles(text_values)


def test_timeframe_contradicting_the_data_is_refused(tmp_path) -> None:
    path = tmp_path / "BTCUSDT-1m-2023-01.csv"
    binance_rows(candles(30, step=3_600_000)).to_csv(path, header=False, index=False)
    with pytest.raises(
        DataError,
        match=r"file name says 1m but the candles are mostly 1h apart\. Give --timeframe 1h --force",
    ):
        parse_file(path)
    # the option contradicts the name: refused without --force, with the spacing named
    with pytest.raises(DataError, match=r"says 1m\. The candles are mostly 1h apart\. Drop"):
        parse_file(path, timeframe="1h")
    pf = parse_file(path, timeframe="1h", force=True)
    assert pf.timeframe == "1h" and any("--timeframe 1h overrides 1m" in n for n in pf.notes)
    with pytest.raises(DataError, match="monthly"):
        infer_from_name(Path("BTCUSDT-1mo-2023-01.csv"))


def test_symbol_and_exchange_must_be_inferable(tmp_path) -> None:
    path = tmp_path / "prices.csv"
    candles(5).to_csv(path, index=False)
    with pytest.raises(DataError, match="--symbol"):
        parse_file(path, exchange="binance")
    with pytest.raises(DataError, match="--exchange"):
        parse_file(path, symbol="BTC/USDT")


def test_bad_file_leaves_catalog_untouched(tmp_path, catalog) -> None:
    good = tmp_path / "BTCUSDT-1m-2023-01.csv"
    binance_rows(candles(100)).to_csv(good, header=False, index=False)
    broken = candles(100, seed=7)
    broken.loc[40, "high"] = broken.loc[40, "low"] - 1.0  # high below low
    bad = tmp_path / "ETHUSDT-1m-2023-01.csv"
    binance_rows(broken).to_csv(bad, header=False, index=False)
    with pytest.raises(CandleValidationError, match=r"ETHUSDT-1m-2023-01\.csv.*--repair"):
        import_files(catalog, [good, bad])
    assert catalog.coverage() == []  # the good file was not written either
    # with repair both go in and the dropped row is reported
    results = import_files(catalog, [good, bad], repair=True)
    eth = next(s for s, _ in results if s.symbol == "ETH/USDT")
    assert eth.changes and len(catalog.load_frame("binance", "ETH/USDT", "1m")) == 99


def test_monthly_files_merge_and_later_file_wins(tmp_path, catalog) -> None:
    full = candles(200)
    jan = tmp_path / "BTCUSDT-1m-2023-01.csv"
    feb = tmp_path / "BTCUSDT-1m-2023-02.csv"
    binance_rows(full.iloc[:120]).to_csv(jan, header=False, index=False)
    second = full.iloc[100:].copy()
    second.loc[second.index[0], "volume"] = 999.0  # row 100 appears in both files
    binance_rows(second).to_csv(feb, header=False, index=False)
    [(s, report)] = import_files(catalog, [feb, jan][::-1])
    assert len(s.files) == 2 and report.rows_written == 200
    stored = catalog.load_frame("binance", "BTC/USDT", "1m")
    assert len(stored) == 200 and stored["volume"].iloc[100] == 999.0


def test_jump_between_files_is_caught_before_writing(tmp_path, catalog) -> None:
    a = candles(50)
    b = candles(50, start=T0 + 50 * MIN, seed=8)
    b[["open", "high", "low", "close"]] *= 10  # another instrument's prices
    pa, pb = tmp_path / "BTCUSDT-1m-2023-01.csv", tmp_path / "BTCUSDT-1m-2023-02.csv"
    binance_rows(a).to_csv(pa, header=False, index=False)
    binance_rows(b).to_csv(pb, header=False, index=False)
    with pytest.raises(CandleValidationError):
        prepare_import([pa, pb])
    assert catalog.coverage() == []


# --------------------------------------------------------------------------- CLI
def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data:\n  dir: {tmp_path / 'data'}\n")
    return cfg


def test_cli_import_end_to_end(tmp_path, capsys) -> None:
    path = tmp_path / "BTCUSDT-1m-2023-01.csv"
    binance_rows(candles(90)).to_csv(path, header=False, index=False)
    argv = ["data", "import", str(path), "--config", str(_config(tmp_path))]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "binance BTC/USDT 1m: 90 candles imported (90 new) from 1 file(s)" in out
    assert Catalog(tmp_path / "data").last_time("binance", "BTC/USDT", "1m") == T0 + 89 * MIN


def test_cli_import_bad_file_exits_2(tmp_path, capsys) -> None:
    path = tmp_path / "prices.csv"
    candles(5).drop(columns="open").to_csv(path, index=False)
    argv = [
        "data", "import", str(path), "--symbol", "BTC/USDT", "--exchange", "binance",
        "--config", str(_config(tmp_path)),
    ]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing column(s) open" in err
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.parquet"))


def test_shared_real_parquet_imports(shared_datasets, catalog) -> None:
    path = shared_datasets / "nic_tradingstrategyga" / "BTC_USDT-1m.parquet"
    if not path.is_file():
        pytest.skip("shared BTC_USDT-1m.parquet not present")
    raw = pd.read_parquet(path)
    pf = parse_file(path, exchange="binance")
    assert (pf.symbol, pf.timeframe, pf.fmt) == ("BTC/USDT", "1m", "parquet")
    [(_, report)] = import_files(catalog, [path], exchange="binance")
    stored = catalog.load_frame("binance", "BTC/USDT", "1m")
    assert len(stored) == report.rows_written == len(raw)
    np.testing.assert_array_equal(stored["time"].to_numpy(), raw["timestamp"].to_numpy())
    np.testing.assert_array_equal(stored["close"].to_numpy(), raw["close"].to_numpy())
