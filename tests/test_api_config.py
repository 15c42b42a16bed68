"""SimConfig.frictionless: the preset for comparing engines."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.bars import Bars
from engine.backtest import SimConfig, simulate
from engine.signals import Signals
from gogo2.errors import ConfigError, UnknownNameError


def test_frictionless_has_no_costs_all_in_long_only() -> None:
    c = SimConfig.frictionless()
    assert (c.fee_taker, c.fee_maker, c.slippage_bps) == (0.0, 0.0, 0.0)
    assert (c.min_notional, c.lot_size) == (0.0, 0.0)
    assert (c.size_type, c.size, c.allow_short) == ("percent", 1.0, False)
    assert c.cash == SimConfig().cash and c.leverage == 1.0


def test_frictionless_overrides_are_checked() -> None:
    assert SimConfig.frictionless(cash=1.0, fee_taker=0.001).fee_taker == 0.001
    with pytest.raises(UnknownNameError, match="Did you mean 'slippage_bps'"):
        SimConfig.frictionless(slipage_bps=1.0)
    with pytest.raises(ConfigError, match="fee_taker"):
        SimConfig.frictionless(fee_taker=-1.0)


def _two_bar_trade() -> tuple[Bars, Signals]:
    o = np.array([[100.0], [100.0], [125.0], [125.0]])
    b = Bars("1h", ("BTC/USDT",), np.arange(4, dtype=np.int64) * 3_600_000, o, o, o, o, o)
    e = np.array([[1], [0], [0], [0]], dtype=np.int8)
    x = np.array([[False], [True], [False], [False]])
    return b, Signals(e, x)


def test_all_in_with_and_without_fees() -> None:
    b, s = _two_bar_trade()
    # frictionless: 10,000 buys 100 units at 100, sold at 125
    assert simulate(b, s, SimConfig.frictionless()).final_equity == pytest.approx(12_500.0)
    # size=1.0 with a 1 % taker fee: the order is reduced so quantity + fee fit the cash:
    # q * 100 * 1.01 = 10,000 -> q = 99.0099...; sale 125 q minus 1 % fee
    res = simulate(b, s, SimConfig.frictionless(fee_taker=0.01))
    q = 10_000 / (100 * 1.01)
    assert res.trades["size"].iloc[0] == pytest.approx(q, rel=1e-12)
    assert res.final_equity == pytest.approx(q * 125 * 0.99, rel=1e-12)
    # long-only: a short entry only closes the long
    s.entries[1, 0], s.exits[1, 0] = -1, False
    res = simulate(b, s, SimConfig.frictionless())
    assert res.trades["direction"].tolist() == ["long"]
    assert res.final_equity == pytest.approx(12_500.0)
