"""The embedded synthetic sample: determinism, candle consistency and stylised facts."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets.synthetic import PROFILES, generate_sample
from gogo2.errors import UnknownNameError, UserInputError
from gogo2.timeframes import parse_time

SEED = 11


@pytest.fixture(scope="module")
def sixty_days() -> dict[str, pd.DataFrame]:
    return generate_sample(SEED, start="2023-01-01", end="2023-03-02")


def _log_returns(df: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(df["close"].to_numpy()))


def test_grid_and_columns(sixty_days: dict[str, pd.DataFrame]) -> None:
    t0, t1 = parse_time("2023-01-01"), parse_time("2023-03-02")
    assert set(sixty_days) == {"BTC/USDT", "ETH/USDT"}
    for df in sixty_days.values():
        assert list(df.columns) == ["time", "open", "high", "low", "close", "volume"]
        assert df["time"].dtype == np.int64
        for c in ("open", "high", "low", "close", "volume"):
            assert df[c].dtype == np.float64
        t = df["time"].to_numpy()
        assert t[0] == t0 and t[-1] == t1 - 60_000
        assert np.all(np.diff(t) == 60_000)
        assert len(df) == 60 * 1440


def test_full_default_span_row_count() -> None:
    # December 2022 (31 days) + 2023 (365) + 2024 (366) of minutes; only the grid is
    # checked, on one symbol.
    df = generate_sample(SEED, symbols=("BTC/USDT",))["BTC/USDT"]
    assert len(df) == (31 + 365 + 366) * 1440 == 762 * 1440 == 1_097_280
    assert df["time"].iloc[0] == parse_time("2022-12-01") == 1_669_852_800_000
    assert df["time"].iloc[-1] == parse_time("2024-12-31T23:59")
    assert np.all(np.diff(df["time"].to_numpy()) == 60_000)


def test_ohlc_consistent(sixty_days: dict[str, pd.DataFrame]) -> None:
    for df in sixty_days.values():
        o, h, lo, c, v = (df[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
        assert np.all(np.isfinite(df[["open", "high", "low", "close", "volume"]].to_numpy()))
        assert np.all(h >= np.maximum(o, c))
        assert np.all(lo <= np.minimum(o, c))
        assert np.all(lo > 0)
        assert np.all(v > 0)
        np.testing.assert_array_equal(o[1:], c[:-1])  # open = previous close
        assert np.any(h > np.maximum(o, c)) and np.any(lo < np.minimum(o, c))  # wicks exist


def test_same_seed_identical_other_seed_different() -> None:
    a = generate_sample(3, end="2023-01-08")
    b = generate_sample(3, end="2023-01-08")
    c = generate_sample(4, end="2023-01-08")
    for sym in a:
        for col in a[sym].columns:
            np.testing.assert_array_equal(a[sym][col].to_numpy(), b[sym][col].to_numpy())
        assert not np.array_equal(a[sym]["close"].to_numpy(), c[sym]["close"].to_numpy())


def test_same_seed_identical_parquet_bytes() -> None:
    def to_bytes(df: pd.DataFrame) -> bytes:
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
        return buf.getvalue()

    a = generate_sample(5, end="2023-01-03")
    b = generate_sample(5, end="2023-01-03")
    for sym in a:
        assert to_bytes(a[sym]) == to_bytes(b[sym])


def test_fat_tails(sixty_days: dict[str, pd.DataFrame]) -> None:
    for df in sixty_days.values():
        kurt = pd.Series(_log_returns(df)).kurt() + 3.0  # pandas gives excess kurtosis
        assert kurt > 6.0, kurt


def test_volatility_clustering(sixty_days: dict[str, pd.DataFrame]) -> None:
    for df in sixty_days.values():
        a = pd.Series(np.abs(_log_returns(df)))
        for lag in (1, 5, 30, 60):
            assert a.autocorr(lag) > 0.05, (lag, a.autocorr(lag))
    # a shuffled copy has no clustering: the check above is not an artefact
    shuffled = np.random.default_rng(0).permutation(np.abs(_log_returns(sixty_days["BTC/USDT"])))
    assert abs(pd.Series(shuffled).autocorr(5)) < 0.02


def test_btc_eth_correlation(sixty_days: dict[str, pd.DataFrame]) -> None:
    rho = np.corrcoef(_log_returns(sixty_days["BTC/USDT"]), _log_returns(sixty_days["ETH/USDT"]))
    assert 0.7 <= rho[0, 1] <= 0.9


def test_intraday_volume_seasonality(sixty_days: dict[str, pd.DataFrame]) -> None:
    for df in sixty_days.values():
        hour = (df["time"] // 3_600_000) % 24
        hourly = df["volume"].groupby(hour).mean()
        assert len(hourly) == 24
        assert hourly.max() / hourly.min() > 1.5
        # the US session (13-17 UTC) is busier than the early Asian morning (3-7 UTC)
        assert hourly.loc[13:17].mean() > 1.3 * hourly.loc[3:7].mean()


def test_weekends_are_quieter(sixty_days: dict[str, pd.DataFrame]) -> None:
    df = sixty_days["ETH/USDT"]
    weekday = (df["time"] // 86_400_000 + 3) % 7  # 0 = Monday
    weekend = weekday >= 5
    assert df["volume"][weekend].mean() < 0.85 * df["volume"][~weekend].mean()


def test_volume_rises_with_move(sixty_days: dict[str, pd.DataFrame]) -> None:
    df = sixty_days["BTC/USDT"]
    move = np.abs(_log_returns(df))
    vol = df["volume"].to_numpy()[1:]
    big = move > np.quantile(move, 0.9)
    small = move < np.quantile(move, 0.5)
    assert vol[big].mean() > 1.5 * vol[small].mean()


def test_levels_near_2023(sixty_days: dict[str, pd.DataFrame]) -> None:
    btc, eth = sixty_days["BTC/USDT"], sixty_days["ETH/USDT"]
    assert btc["open"].iloc[0] == pytest.approx(16_500, rel=0.01)
    assert eth["open"].iloc[0] == pytest.approx(1_200, rel=0.01)
    assert 10_000 < btc["low"].min() and btc["high"].max() < 35_000
    assert 700 < eth["low"].min() and eth["high"].max() < 2_500
    # annualised volatility of 1m returns in the range of real BTC/ETH
    for df in (btc, eth):
        ann = _log_returns(df).std() * np.sqrt(525_600)
        assert 0.3 < ann < 1.0


def test_december_2022_levels() -> None:
    # The month before 2023 (the warm-up of a backtest from 2023-01-01) starts on the
    # level path's first knot, BTC 17,000 and ETH 1,280, and stays near the path
    # (17,000 -> 16,500 and 1,280 -> 1,200 over the month).
    dec = generate_sample(SEED, start="2022-12-01", end="2023-01-01")
    btc, eth = dec["BTC/USDT"], dec["ETH/USDT"]
    assert len(btc) == len(eth) == 31 * 1440
    assert btc["open"].iloc[0] == pytest.approx(17_000.0, abs=0.01)
    assert eth["open"].iloc[0] == pytest.approx(1_280.0, abs=0.01)
    # one month of ~50 % (BTC) and ~62 % (ETH) annual volatility: a few standard
    # deviations of 0.5 * sqrt(1 / 12) ~ 14 % and 18 % either side of the path
    assert 17_000 / 1.8 < btc["low"].min() and btc["high"].max() < 17_000 * 1.8
    assert 1_280 / 2.0 < eth["low"].min() and eth["high"].max() < 1_280 * 2.0


def test_bad_arguments() -> None:
    with pytest.raises(UnknownNameError, match="DOGE/USDT"):
        generate_sample(1, symbols=("DOGE/USDT",))
    with pytest.raises(UserInputError, match="not after start"):
        generate_sample(1, start="2023-02-01", end="2023-01-01")
    with pytest.raises(UserInputError, match="1m grid"):
        generate_sample(1, start=parse_time("2023-01-01") + 1, end="2023-01-02")
    assert set(PROFILES) >= {"BTC/USDT", "ETH/USDT"}
