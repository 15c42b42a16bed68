"""An engine comparison end to end, the way a user writes it: a pandas frame in, a number out.

The expected final equity is computed here with plain pandas, not with the engine: with no
costs and all-in sizing, each round trip multiplies the equity by exit fill / entry fill,
and market orders decided at a bar's close fill at the next bar's open.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets.bars import Bars
from engine.backtest import SimConfig, simulate
from engine.signals import Signals


def _frame(n: int = 1_500, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0.0, 0.002, n))  # gaps at the open
    return pd.DataFrame(
        {
            "Open": open_,
            "High": np.maximum(open_, close) * 1.003,
            "Low": np.minimum(open_, close) * 0.997,
            "Close": close,
            "Volume": rng.lognormal(3.0, 0.5, n),
        },
        index=pd.date_range("2024-01-01", periods=n, freq="1h", name="time"),
    )


def test_sma_cross_through_from_frame_and_frictionless_matches_a_hand_product() -> None:
    df = _frame()

    # the comparison in a few lines
    bars = Bars.from_frame(df, symbol="BTC/USDT")
    long = df["Close"].rolling(10).mean() > df["Close"].rolling(40).mean()
    entries = long & ~long.shift(fill_value=False)
    exits = ~long & long.shift(fill_value=False)
    sig = Signals(entries.to_numpy(np.int8)[:, None], exits.to_numpy(bool)[:, None])
    result = simulate(bars, sig, SimConfig.frictionless())

    # by hand: fill at the next open; a position still open at the end is worth the last close
    next_open = df["Open"].shift(-1)
    buys = next_open[entries].to_numpy()
    sells = next_open[exits].fillna(df["Close"].iloc[-1]).to_numpy()
    buys = buys[~np.isnan(buys)]  # an entry on the last bar never fills
    if len(sells) < len(buys):
        sells = np.r_[sells, df["Close"].iloc[-1]]
    assert len(buys) == len(sells) >= 10
    expected = 10_000.0 * np.prod(sells / buys)

    assert result.final_equity == pytest.approx(expected, rel=1e-9)
    assert len(result.trades) == len(buys)
    np.testing.assert_allclose(result.trades["entry_price"], buys, rtol=1e-12)
    assert result.fees_paid == 0.0
