"""Bars.from_frame and MultiBars.from_frames: pandas OHLCV frames in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets.bars import Bars, MultiBars
from gogo2.errors import UserInputError

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
H = 3_600_000


def frame(n: int = 4, start: str = "2024-01-01", freq: str = "1h", **kw) -> pd.DataFrame:
    close = 100.0 + np.arange(n, dtype=np.float64)
    df = pd.DataFrame(
        {
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.full(n, 2.0),
        },
        index=pd.date_range(start, periods=n, freq=freq, **kw),
    )
    return df


def test_datetime_index_naive_is_utc_and_timeframe_is_inferred() -> None:
    b = Bars.from_frame(frame(), symbol="BTC/USDT")
    assert b.timeframe == "1h" and b.symbols == ("BTC/USDT",)
    assert b.time.tolist() == [T0, T0 + H, T0 + 2 * H, T0 + 3 * H]
    assert b.close[:, 0].tolist() == [100.0, 101.0, 102.0, 103.0]
    assert b.open.shape == (4, 1) and b.open.flags.c_contiguous
    assert b.volume[:, 0].tolist() == [2.0] * 4


def test_aware_times_are_converted_to_utc() -> None:
    b = Bars.from_frame(frame(tz="Europe/Berlin"), symbol="X")
    assert b.time[0] == T0 - H  # Berlin midnight is 23:00 UTC in winter


@pytest.mark.parametrize(
    "times",
    [
        [T0, T0 + H, T0 + 2 * H, T0 + 3 * H],  # ms ints
        ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", "2024-01-01 02:00", "2024-01-01T03:00"],
        [
            "2024-01-01T01:00:00+01:00",
            "2024-01-01T02:00+01:00",
            "2024-01-01T02:00Z",
            "2024-01-01T03:00Z",
        ],
        list(pd.date_range("2024-01-01", periods=4, freq="1h")),  # datetime column, naive
    ],
)
def test_time_column_in_every_form_and_case_insensitive_columns(times) -> None:
    df = frame().reset_index(drop=True)
    df.columns = ["Open", "HIGH", "Low", "Close", "Volume"]
    df.insert(0, "Timestamp", times)
    b = Bars.from_frame(df, "ETH/USDT")
    assert b.time.tolist() == [T0, T0 + H, T0 + 2 * H, T0 + 3 * H]
    assert b.high[:, 0].tolist() == [101.0, 102.0, 103.0, 104.0]


def test_time_named_index_of_ms_and_missing_volume() -> None:
    df = frame().drop(columns="volume")
    df.index = pd.Index(df.index.as_unit("ms").asi8, name="open_time")
    b = Bars.from_frame(df, "X", timeframe="60m")
    assert b.timeframe == "1h" and b.time[0] == T0
    assert np.isnan(b.volume).all()


def test_inferred_timeframe_is_the_smallest_spacing_and_gaps_stay() -> None:
    df = frame(6, freq="15min").iloc[[0, 1, 3, 5]]  # holes at 00:30 and 01:00
    b = Bars.from_frame(df, "X")
    assert b.timeframe == "15m"
    assert b.time.tolist() == [T0, T0 + H // 4, T0 + 3 * H // 4, T0 + 5 * H // 4]


def test_from_frames_joins_symbols_on_the_union_index_with_nan_holes() -> None:
    a = frame(4)
    b = frame(3, start="2024-01-01 02:00")
    b["close"] = [200.0, 201.0, 202.0]
    data = MultiBars.from_frames({"AAA": a, "BBB": b})
    assert data.base == "1h" and data.bars.symbols == ("AAA", "BBB")
    assert data.bars.time.tolist() == [T0 + k * H for k in range(5)]
    close = data.bars.close
    np.testing.assert_array_equal(close[:, 0], [100.0, 101.0, 102.0, 103.0, np.nan])
    np.testing.assert_array_equal(close[:, 1], [np.nan, np.nan, 200.0, 201.0, 202.0])
    assert np.isnan(data.bars.open[:2, 1]).all() and np.isnan(data.bars.high[4, 0])


@pytest.mark.parametrize(
    ("df", "match"),
    [
        (frame().drop(columns="low"), "lacks column.*low"),
        (frame().iloc[[0, 2, 1, 3]], r"not sorted.*row 2 .*comes before row 1"),
        (frame().iloc[[0, 1, 1, 2]], r"row 2 .*repeats row 1"),
        (frame().reset_index(drop=True), "no times"),
        (frame().iloc[:0], "no rows"),
        (frame().iloc[:1], "single candle"),
        (frame().assign(close="x"), "column 'close'.*give numbers"),
        (frame().set_axis(pd.Index([1, 2, 3, 4], name="time")), "not a time in milliseconds"),
        (frame().rename(columns={"Open": "open"}).assign(Open=1.0), "two columns named 'open'"),
        (
            frame(3).set_axis(
                pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:20", "2024-01-01 00:50"])
            ),
            r"do not fit timeframe 20m \(inferred.*row 2 .* 1800 s after",
        ),
    ],
)
def test_bad_frames_are_refused_clearly(df: pd.DataFrame, match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        Bars.from_frame(df, symbol="BTC/USDT")


def test_spacing_must_fit_a_given_timeframe_and_symbols_must_agree() -> None:
    with pytest.raises(UserInputError, match=r"do not fit timeframe 1h \(given\)"):
        Bars.from_frame(frame(freq="30min"), "X", timeframe="1h")
    with pytest.raises(UserInputError, match="do not fit timeframe 15m"):
        # 15m is inferred from A; B's 20 min step is not a multiple of it
        MultiBars.from_frames({"A": frame(freq="15min"), "B": frame(freq="20min")})
    with pytest.raises(UserInputError, match="DataFrame"):
        Bars.from_frame({"open": [1.0]}, "X")
    with pytest.raises(UserInputError, match="bad timeframe"):
        Bars.from_frame(frame(), "X", timeframe="1x")


def test_symbols_on_offset_grids_are_refused() -> None:
    a = frame(4)
    b = frame(4, start="2024-01-01 00:30")  # hourly too, but half an hour off
    with pytest.raises(UserInputError, match=r"not on one grid: 2024-01-01 00:00 and .*00:30"):
        MultiBars.from_frames({"A": a, "B": b})
