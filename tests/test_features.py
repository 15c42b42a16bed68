"""Feature matrix over every timeframe and float32 window tensors, without look-ahead."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_multibars

from datasets import indicators as ind
from datasets.bars import MultiBars
from datasets.features import (
    FEATURE_NAMES,
    FeatureSpec,
    feature_matrix,
    timeframe_features,
    window_tensor,
)
from gogo2.errors import UnknownNameError, UserInputError

HOUR = 3_600_000


@pytest.fixture(name="data")
def fixture_data() -> MultiBars:
    return make_multibars(
        2_400, base="5m", informative=("1h", "4h"), seed=31, vol=0.003, gaps=0.002
    )


def test_matrix_covers_every_timeframe(data: MultiBars) -> None:
    fm = feature_matrix(data, "ETH/USDT")
    k = len(FEATURE_NAMES)
    assert fm.values.shape == (data.bars.n, 3 * k)
    assert fm.names[:k] == tuple(f"5m:{f}" for f in FEATURE_NAMES)
    assert fm.names[k] == "1h:logret" and fm.names[2 * k] == "4h:logret"
    np.testing.assert_array_equal(fm.time, data.bars.time)
    np.testing.assert_array_equal(fm.close_time, data.bars.close_time)
    # each timeframe block becomes fully defined once its warm-up has passed
    late = fm.values[-200:][~np.isnan(data.bars.close[-200:, 1])]
    assert np.isfinite(late).all()


def test_base_block_values(data: MultiBars) -> None:
    fm = feature_matrix(data, "BTC/USDT", timeframes=("5m",))
    close = data.bars.close[:, 0]
    col = {n.split(":")[1]: fm.values[:, i] for i, n in enumerate(fm.names)}
    np.testing.assert_allclose(col["logret"], ind.log_returns(close))
    np.testing.assert_allclose(col["sma_dev"], close / ind.sma(close, 20) - 1)
    np.testing.assert_allclose(col["rsi"], ind.rsi(close, 14) / 100 - 0.5)
    rng = (data.bars.high[:, 0] - data.bars.low[:, 0]) / close
    np.testing.assert_allclose(col["range"], rng)
    assert np.nanmax(np.abs(col["rsi"])) <= 0.5


def test_coarse_features_come_from_the_last_closed_candle(data: MultiBars) -> None:
    fm = feature_matrix(data, "BTC/USDT")
    hourly = data["1h"]
    h_feats = timeframe_features(hourly, "BTC/USDT")
    k = len(FEATURE_NAMES)
    block = fm.values[:, k : 2 * k]
    for row in (11, 12, 23, 24, 500, 1_001):
        ct = int(data.bars.close_time[row])
        if np.isnan(data.bars.close[row, 0]):
            continue
        closed = np.flatnonzero((hourly.close_time <= ct) & ~np.isnan(hourly.close[:, 0]))
        if closed.size == 0:
            assert np.isnan(block[row]).all()
            continue
        np.testing.assert_array_equal(block[row], h_feats[closed[-1]])
        assert hourly.close_time[closed[-1]] <= ct < hourly.close_time[closed[-1]] + HOUR


def test_coarse_row_missing_for_the_symbol_uses_its_previous_candle() -> None:
    data = make_multibars(600, base="5m", informative=("1h",), seed=2)
    hourly = data["1h"]
    hourly.close[30, 0] = np.nan  # BTC has no 1h candle 30; ETH has
    fm = feature_matrix(data, "BTC/USDT")
    k = len(FEATURE_NAMES)
    after = np.flatnonzero(
        (data.bars.close_time >= hourly.close_time[30])
        & (data.bars.close_time < hourly.close_time[31])
    )
    h_feats = timeframe_features(hourly, "BTC/USDT")
    np.testing.assert_array_equal(fm.values[after, k : 2 * k], np.repeat(h_feats[29:30], 12, 0))
    assert after.size == 12


def test_window_tensor_shape_and_content(data: MultiBars) -> None:
    fm = feature_matrix(data, "BTC/USDT")
    win = window_tensor(fm, window=20)
    assert win.x.dtype == np.float32 and win.x.flags.c_contiguous
    assert win.x.shape == (len(win), 20, fm.values.shape[1])
    assert len(win) > 100 and not np.isnan(win.x).any()
    for i in (0, len(win) // 2, len(win) - 1):
        t = int(win.index[i])
        np.testing.assert_array_equal(win.x[i], fm.values[t - 19 : t + 1].astype(np.float32))
        assert win.time[i] == fm.time[t] and win.close_time[i] == fm.close_time[t]
    # windows with a missing candle or in warm-up are dropped, the others kept
    bad = np.isnan(fm.values).any(axis=1)
    clean_ends = [t for t in range(19, fm.n) if not bad[t - 19 : t + 1].any()]
    assert win.index.tolist() == clean_ends


def test_window_tensor_options(data: MultiBars) -> None:
    fm = feature_matrix(data, "BTC/USDT", timeframes=("5m",))
    every = window_tensor(fm, 8, dropna=False)
    assert len(every) == fm.n - 7 and np.isnan(every.x[0]).any()
    stepped = window_tensor(fm, 8, step=4)
    assert (stepped.index % 4 == 0).all()
    assert set(stepped.index) <= set(window_tensor(fm, 8).index)
    norm = window_tensor(fm, 8, normalize=True)
    np.testing.assert_allclose(norm.x.mean(axis=1), 0.0, atol=1e-5)
    raw = window_tensor(fm, 8)
    i = len(raw) // 2
    w = raw.x[i].astype(np.float64)
    sd = w.std(axis=0)
    expected = np.where(sd > 0, (w - w.mean(axis=0)) / np.where(sd > 0, sd, 1), 0.0)
    np.testing.assert_allclose(norm.x[i], expected, atol=1e-5)
    some = window_tensor(fm, 8, rows=np.array([900, 3, 500, 500, 1_200, 1_201]))
    full = window_tensor(fm, 8)
    picked = np.isin(full.index, [500, 900, 1_200, 1_201])
    assert 2 <= picked.sum() and some.index.tolist() == full.index[picked].tolist()
    np.testing.assert_array_equal(some.x, full.x[picked])
    with pytest.raises(UserInputError, match="rows must index"):
        window_tensor(fm, 8, rows=np.array([fm.n]))
    short = window_tensor(fm.__class__(**{**fm.__dict__, "values": fm.values[:5]}), 8)
    assert short.x.shape == (0, 8, len(FEATURE_NAMES))


@pytest.mark.parametrize("t", [700, 705, 719, 1_000, 1_438, 2_000])
def test_no_lookahead_when_the_future_is_cut(data: MultiBars, t: int) -> None:
    """Dropping every candle after base bar t changes no feature or window up to t.

    Rows 705 and 1438 close inside an hour (and inside a 4h candle); row 719 closes
    exactly when an hour and a 4h candle close.
    """
    full_fm = feature_matrix(data, "BTC/USDT")
    full_w = window_tensor(full_fm, 20, normalize=True)
    cut = data.until(int(data.bars.close_time[t]))
    assert cut.bars.n == t + 1
    cut_fm = feature_matrix(cut, "BTC/USDT")
    np.testing.assert_array_equal(cut_fm.values, full_fm.values[: t + 1])
    cut_w = window_tensor(cut_fm, 20, normalize=True)
    upto = full_w.index <= t
    np.testing.assert_array_equal(cut_w.index, full_w.index[upto])
    np.testing.assert_array_equal(cut_w.x, full_w.x[upto])
    np.testing.assert_array_equal(cut_w.close_time, full_w.close_time[upto])


def test_a_leaky_alignment_would_be_detected(data: MultiBars) -> None:
    """The no-look-ahead test above can fail: aligning 1h by open time leaks."""
    hourly = data["1h"]
    wrong = np.searchsorted(hourly.time, data.bars.time, side="right") - 1
    t = 705  # closes at 58:50, inside the hour opened at 58:00
    full = timeframe_features(hourly, "BTC/USDT")[wrong[t]]
    cut = data.until(int(data.bars.close_time[t]))
    cut_h = cut["1h"]
    idx = np.searchsorted(cut_h.time, cut.bars.time, side="right") - 1
    cut_val = timeframe_features(cut_h, "BTC/USDT")[idx[t]]
    assert not np.array_equal(full, cut_val, equal_nan=True)


def test_bad_input() -> None:
    data = make_multibars(300, base="5m", informative=("1h",))
    with pytest.raises(UnknownNameError, match="Did you mean 'BTC/USDT'"):
        feature_matrix(data, "BTC/USD")
    with pytest.raises(UnknownNameError, match="timeframe"):
        feature_matrix(data, "BTC/USDT", timeframes=("15m",))
    fm = feature_matrix(data, "BTC/USDT")
    with pytest.raises(UserInputError, match="window 0"):
        window_tensor(fm, 0)
    with pytest.raises(UserInputError, match="step"):
        window_tensor(fm, 5, step=0)
    with pytest.raises(UserInputError, match="macd_fast"):
        FeatureSpec(macd_fast=30)
    with pytest.raises(UserInputError, match="sma=1"):
        FeatureSpec(sma=1)
    assert FeatureSpec().warmup == 26 + 9 - 1


def test_to_frame_is_indexed_by_decision_time(data: MultiBars) -> None:
    fm = feature_matrix(data, "BTC/USDT", timeframes=("5m", "1h"))
    df = fm.to_frame()
    assert list(df.columns) == list(fm.names)
    assert df.index[0].value // 1_000_000 == data.bars.close_time[0]
    assert str(df.index.tz) == "UTC"
    np.testing.assert_array_equal(df.to_numpy(), fm.values)
