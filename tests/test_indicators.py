"""Indicators: hand-computed cases, agreement with plain pandas, NaN gaps and causality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from datasets import indicators as ind

NAN = np.nan


def _walk(n: int, m: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, size=(n, m)), axis=0))


def _on_valid(x: np.ndarray, fn) -> np.ndarray:
    """Reference wrapper: apply a pandas computation to the non-NaN rows, NaN elsewhere."""
    s = pd.Series(x)
    return fn(s.dropna()).reindex(s.index).to_numpy()


# ------------------------------------------------------------------ hand-computed cases


def test_sma_hand_computed() -> None:
    out = ind.sma([1.0, 2.0, 3.0, 4.0, 5.0], 3)
    np.testing.assert_allclose(out, [NAN, NAN, 2.0, 3.0, 4.0])


def test_sma_skips_missing_candles() -> None:
    # the window is the last 2 *existing* values; the gap row stays NaN
    out = ind.sma([1.0, 3.0, NAN, 5.0, 7.0], 2)
    np.testing.assert_allclose(out, [NAN, 2.0, NAN, 4.0, 6.0])


def test_ema_hand_computed() -> None:
    # window 3: alpha 0.5, seeded with mean(1, 2, 3) = 2 at the third row
    out = ind.ema([1.0, 2.0, 3.0, 4.0, 8.0], 3)
    np.testing.assert_allclose(out, [NAN, NAN, 2.0, 3.0, 5.5])


def test_rsi_hand_computed() -> None:
    # changes +1, -2, +3, +1 ; window 2: seed gain (1 + 0)/2 = 0.5, loss (0 + 2)/2 = 1
    x = [10.0, 11.0, 9.0, 12.0, 13.0]
    out = ind.rsi(x, 2)
    g2, l2 = 0.5, 1.0
    g3, l3 = (g2 * 1 + 3) / 2, (l2 * 1 + 0) / 2  # 1.75, 0.5
    g4, l4 = (g3 + 1) / 2, l3 / 2  # 1.375, 0.25
    expected = [NAN, NAN, 100 - 100 / (1 + g2 / l2), 100 - 100 / (1 + g3 / l3)]
    expected.append(100 - 100 / (1 + g4 / l4))
    np.testing.assert_allclose(out, expected)


def test_rsi_edge_cases() -> None:
    assert ind.rsi(np.arange(1.0, 20.0), 5)[-1] == 100.0
    assert ind.rsi(np.arange(20.0, 1.0, -1), 5)[-1] == 0.0
    assert ind.rsi(np.full(20, 7.0), 5)[-1] == 50.0


def test_true_range_and_atr_hand_computed() -> None:
    high = [10.0, 12.0, 11.0, 15.0]
    low = [8.0, 9.0, 7.0, 12.0]
    close = [9.0, 11.0, 8.0, 14.0]
    tr = ind.true_range(high, low, close)
    # row 2: max(11-7, |11-11|, |7-11|) = 4 ; row 3: max(3, |15-8|, |12-8|) = 7
    np.testing.assert_allclose(tr, [2.0, 3.0, 4.0, 7.0])
    atr = ind.atr(high, low, close, 2)
    # seed mean(2, 3) = 2.5; then (2.5 + 4)/2 = 3.25; (3.25 + 7)/2 = 5.125
    np.testing.assert_allclose(atr, [NAN, 2.5, 3.25, 5.125])


def test_returns_hand_computed() -> None:
    x = [100.0, 110.0, NAN, 99.0]
    np.testing.assert_allclose(ind.returns(x), [NAN, 0.1, NAN, -0.1])
    np.testing.assert_allclose(ind.log_returns(x), [NAN, np.log(1.1), NAN, np.log(0.9)])
    np.testing.assert_allclose(ind.returns([1.0, 2.0, 4.0, 8.0], 2), [NAN, NAN, 3.0, 3.0])


def test_bollinger_hand_computed() -> None:
    b = ind.bollinger([1.0, 2.0, 3.0, 3.0], 3, k=1.0)
    sd = np.sqrt(2.0 / 3.0)  # population std of (1, 2, 3)
    assert b.mid[2] == pytest.approx(2.0)
    assert b.upper[2] == pytest.approx(2.0 + sd)
    assert b.lower[2] == pytest.approx(2.0 - sd)
    assert b.percent_b[2] == pytest.approx((3.0 - (2.0 - sd)) / (2 * sd))
    assert b.width[2] == pytest.approx(2 * sd / 2.0)
    flat = ind.bollinger(np.full(5, 4.0), 3)
    assert np.isnan(flat.percent_b[4]) and flat.width[4] == 0.0


def test_volume_zscore_hand_computed() -> None:
    z = ind.volume_zscore([1.0, 2.0, 3.0, 3.0, 3.0, 3.0], 3)
    # window (1, 2, 3): mean 2, sample std 1 -> z = 1
    assert z[2] == pytest.approx(1.0)
    assert np.isnan(z[1])
    assert z[5] == 0.0  # flat window


def test_macd_hand_computed() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    m = ind.macd(x, 2, 3, 2)
    line = ind.ema(x, 2) - ind.ema(x, 3)
    # on a straight line both EMAs lag by a constant: line is constant from row 2 on
    np.testing.assert_allclose(m.line[2:], 0.5)
    np.testing.assert_allclose(m.line, line)
    np.testing.assert_allclose(m.signal[3:], 0.5)
    np.testing.assert_allclose(m.hist[3:], 0.0, atol=1e-12)
    assert np.isnan(m.signal[2])


# ------------------------------------------------------------------ agreement with pandas


@pytest.fixture(name="prices")
def fixture_prices() -> np.ndarray:
    x = _walk(400, 2, seed=3)
    x[50:55, 0] = NAN  # a gap
    x[:30, 1] = NAN  # a symbol listed later
    return x


def test_sma_and_std_match_pandas(prices: np.ndarray) -> None:
    for j in range(prices.shape[1]):
        col = prices[:, j]
        np.testing.assert_allclose(
            ind.sma(prices, 20)[:, j], _on_valid(col, lambda s: s.rolling(20).mean()), rtol=1e-12
        )
        np.testing.assert_allclose(
            ind.rolling_std(prices, 20)[:, j],
            _on_valid(col, lambda s: s.rolling(20).std()),
            rtol=1e-9,
        )


def test_ema_matches_pandas_ewm_seeded_with_sma(prices: np.ndarray) -> None:
    n = 10
    for j in range(prices.shape[1]):
        col = prices[:, j]

        def ref(s: pd.Series) -> pd.Series:
            seeded = s.copy()
            seeded.iloc[n - 1] = s.iloc[:n].mean()
            out = seeded.iloc[n - 1 :].ewm(span=n, adjust=False).mean()
            return out.reindex(s.index)

        np.testing.assert_allclose(ind.ema(prices, n)[:, j], _on_valid(col, ref), rtol=1e-12)


def test_rsi_matches_wilder_in_pandas(prices: np.ndarray) -> None:
    n = 14
    for j in range(prices.shape[1]):
        col = prices[:, j]

        def ref(s: pd.Series) -> pd.Series:
            d = s.diff()
            gain, loss = d.clip(lower=0), (-d).clip(lower=0)
            g, lo = gain.copy(), loss.copy()
            g.iloc[n] = gain.iloc[1 : n + 1].mean()
            lo.iloc[n] = loss.iloc[1 : n + 1].mean()
            ag = g.iloc[n:].ewm(alpha=1 / n, adjust=False).mean()
            al = lo.iloc[n:].ewm(alpha=1 / n, adjust=False).mean()
            return (100 - 100 / (1 + ag / al)).reindex(s.index)

        np.testing.assert_allclose(ind.rsi(prices, n)[:, j], _on_valid(col, ref), rtol=1e-9)


def test_atr_matches_pandas() -> None:
    rng = np.random.default_rng(7)
    close = _walk(300, 1, seed=7)[:, 0]
    high = close * (1 + rng.uniform(0, 0.01, 300))
    low = close * (1 - rng.uniform(0, 0.01, 300))
    df = pd.DataFrame({"h": high, "l": low, "c": close})
    pc = df.c.shift()
    tr = pd.concat([df.h - df.l, (df.h - pc).abs(), (df.l - pc).abs()], axis=1).max(axis=1)
    seeded = tr.copy()
    seeded.iloc[13] = tr.iloc[:14].mean()
    ref = seeded.iloc[13:].ewm(alpha=1 / 14, adjust=False).mean().reindex(df.index)
    np.testing.assert_allclose(ind.atr(high, low, close, 14), ref.to_numpy(), rtol=1e-12)


def test_bollinger_and_zscore_match_pandas(prices: np.ndarray) -> None:
    col = prices[:, 0]
    b = ind.bollinger(col, 20, 2.0)
    mid = _on_valid(col, lambda s: s.rolling(20).mean())
    sd = _on_valid(col, lambda s: s.rolling(20).std(ddof=0))
    np.testing.assert_allclose(b.upper, mid + 2 * sd, rtol=1e-12)
    np.testing.assert_allclose(b.lower, mid - 2 * sd, rtol=1e-12)
    np.testing.assert_allclose(b.percent_b, (col - (mid - 2 * sd)) / (4 * sd), rtol=1e-9)
    z = _on_valid(col, lambda s: (s - s.rolling(20).mean()) / s.rolling(20).std())
    np.testing.assert_allclose(ind.volume_zscore(col, 20), z, rtol=1e-9)


def test_macd_matches_pandas_composition(prices: np.ndarray) -> None:
    col = prices[:, 1]
    m = ind.macd(col)
    line = ind.ema(col, 12) - ind.ema(col, 26)
    np.testing.assert_allclose(m.line, line)
    np.testing.assert_allclose(m.signal, ind.ema(line, 9))
    np.testing.assert_allclose(m.hist, line - ind.ema(line, 9))
    first_signal = np.flatnonzero(~np.isnan(m.signal))[0]
    # listed at row 30: line valid 26 rows later, signal 9 - 1 rows after that
    assert first_signal == 30 + 26 - 1 + 9 - 1


# ------------------------------------------------------------------ shapes, NaN, causality


def test_two_d_equals_column_by_column(prices: np.ndarray) -> None:
    for fn in (lambda a: ind.sma(a, 7), lambda a: ind.ema(a, 7), lambda a: ind.rsi(a, 7)):
        both = fn(prices)
        assert both.shape == prices.shape and both.dtype == np.float64
        for j in range(prices.shape[1]):
            np.testing.assert_array_equal(both[:, j], fn(prices[:, j]))


def test_nan_in_output_exactly_at_nan_input(prices: np.ndarray) -> None:
    for out in (ind.sma(prices, 5), ind.ema(prices, 5), ind.rsi(prices, 5), ind.returns(prices)):
        assert np.isnan(out[np.isnan(prices)]).all()
        # after the warm-up, every existing candle has a value
        assert np.isfinite(out[60:][~np.isnan(prices[60:])]).all()


def test_bad_window_raises() -> None:
    with pytest.raises(ValueError, match="window"):
        ind.sma([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="fast"):
        ind.macd([1.0, 2.0], 26, 12)
    with pytest.raises(ValueError, match="1-D"):
        ind.sma(np.zeros((2, 2, 2)), 2)


@settings(max_examples=40, deadline=None)
@given(
    x=arrays(
        np.float64,
        st.integers(5, 60),
        elements=st.one_of(st.floats(1.0, 1000.0), st.just(np.nan)),
    ),
    cut=st.integers(1, 60),
    window=st.integers(1, 6),
)
def test_indicators_are_causal(x: np.ndarray, cut: int, window: int) -> None:
    """Cutting the input after row ``cut`` changes no output at or before it."""
    cut = min(cut, x.size)
    fns = [
        lambda a: ind.sma(a, window),
        lambda a: ind.ema(a, window),
        lambda a: ind.rsi(a, window + 1),
        lambda a: ind.returns(a, window),
        lambda a: ind.atr(a * 1.01, a * 0.99, a, window),
        lambda a: ind.bollinger(a, window + 1).percent_b,
        lambda a: ind.volume_zscore(a, window + 1),
        lambda a: ind.macd(a, window, window + 2, 2).hist,
    ]
    for fn in fns:
        np.testing.assert_array_equal(fn(x)[:cut], fn(x[:cut]))
