"""The DQN's environment trades like the engine's kernel: next open, taker slippage clipped
into the bar, taker fee on each leg, the quantity rounded down to the lot step and an entry
below the minimum notional not placed (exits never refused). Expected values by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from models.dqn import RUIN_REWARD, DQNAgent, Market, env_step_nb

FEE, SLIP = 0.001, 0.0002


def step(cash, qty, target, bar=(100.0, 101.0, 103.0, 100.0, 102.0), lot=0.01, min_notional=10.0):
    c0, o1, h1, l1, c1 = bar
    return env_step_nb(cash, qty, target, c0, o1, h1, l1, c1, FEE, SLIP, lot, min_notional)


def test_an_entry_is_rounded_down_to_the_lot_step_and_pays_slippage_and_fee():
    cash, qty, r = step(1000.0, 0.0, 1.0)
    # buy at open 101 + 2 bps = 101.0202 (inside [100, 103]); all-in at leverage 1:
    # 1000 / (101.0202 * 1.001) = 9.8891.. units, rounded down to the 0.01 step: 9.88
    assert qty == pytest.approx(9.88, abs=1e-12)
    notional = 9.88 * 101.0202  # 998.079576
    assert cash == pytest.approx(1000.0 - notional - 0.001 * notional, abs=1e-9)  # 0.922344..
    assert cash == pytest.approx(0.922344424, abs=1e-9)
    assert r == pytest.approx(math.log((0.922344424 + 9.88 * 102.0) / 1000.0), abs=1e-12)


def test_an_entry_below_the_minimum_notional_is_not_placed():
    # 9 USDT cannot buy 10 USDT's worth: nothing happens, the agent stays flat
    assert step(9.0, 0.0, 1.0) == (9.0, 0.0, 0.0)
    assert step(9.0, 0.0, -1.0) == (9.0, 0.0, 0.0)
    # 150 USDT at 101.0202 with a lot of 1: 1.48 units round down to 1, worth 101.0202:
    # refused under a 110 minimum, placed under a 100 one
    assert step(150.0, 0.0, 1.0, lot=1.0, min_notional=110.0) == (150.0, 0.0, 0.0)
    cash, qty, _ = step(150.0, 0.0, 1.0, lot=1.0, min_notional=100.0)
    assert qty == 1.0 and cash == pytest.approx(150.0 - 101.0202 * 1.001, abs=1e-12)


def test_an_exit_below_the_minimum_notional_is_still_done():
    # 0.05 units (about 5 USDT) are sold at 101 - 2 bps = 100.9798 with the fee
    cash, qty, r = step(3.0, 0.05, 0.0)
    assert qty == 0.0
    assert cash == pytest.approx(3.0 + 0.05 * 100.9798 * (1 - 0.001), abs=1e-12)
    assert r == pytest.approx(math.log(cash / (3.0 + 0.05 * 100.0)), abs=1e-12)


def test_a_reversal_closes_then_opens_at_the_same_clipped_fill():
    # long 2 units, 3 USDT cash; sell 2 bps below 101 = 100.9798, below the bar's low
    # 100.99: the fill is clipped to 100.99
    bar = (100.0, 101.0, 101.5, 100.99, 100.0)
    cash, qty, r = step(3.0, 2.0, -1.0, bar=bar)
    after_exit = 3.0 + 2 * 100.99 - 2 * 100.99 * 0.001  # 204.77802
    # short all-in: 204.77802 / (100.99 * 1.001) = 2.0256.. units -> 2.02
    assert qty == pytest.approx(-2.02, abs=1e-12)
    short_notional = 2.02 * 100.99  # 203.9998
    assert cash == pytest.approx(after_exit + short_notional - 0.001 * short_notional, abs=1e-9)
    assert cash == pytest.approx(408.5738202, abs=1e-9)
    # equity: 3 + 2 * 100 = 203 at the first close, 408.5738202 - 2.02 * 100 at the next
    assert r == pytest.approx(math.log(206.5738202 / 203.0), abs=1e-12)


def test_holding_keeps_the_quantity_and_costs_nothing():
    cash, qty, r = step(3.0, 2.0, 1.0)
    assert (cash, qty) == (3.0, 2.0)
    assert r == pytest.approx(math.log((3.0 + 2 * 102.0) / (3.0 + 2 * 100.0)), abs=1e-12)
    cash, qty, r = step(3.0, -2.0, -1.0)  # a short: cash 3 + proceeds already in it
    assert (cash, qty) == (3.0, -2.0)


def test_ruin_ends_with_the_ruin_reward():
    # short 2 units with 250 USDT: equity 50 at close 100, -56 at close 153
    bar = (100.0, 150.0, 155.0, 149.0, 153.0)
    assert step(250.0, -2.0, -1.0, bar=bar)[2] == RUIN_REWARD


def test_the_agent_uses_the_configured_market_and_its_real_position():
    agent = DQNAgent({"hidden": 4, "lot_size": 1.0, "min_notional": 110.0, "cash": 150.0})
    m = Market(
        close=np.array([100.0, 101.0]),
        next_open=np.array([101.0, 102.0]),
        next_high=np.array([103.0, 103.0]),
        next_low=np.array([100.0, 101.0]),
        next_close=np.array([102.0, 102.5]),
        segments=[(0, 2)],
    )
    # 150 USDT buys 1 unit worth 101.02 < 110: refused, so the agent is still flat
    assert agent.step(m, 0, 150.0, 0.0, 1) == (150.0, 0.0, 0.0)
    # whatever the greedy policy does on these two bars, every entry is refused: no change
    x = np.zeros((2, 20, 8), np.float32)
    assert agent.episode_return(x, m) == 0.0


def test_hold_and_sell_without_shorts_targets():
    agent = DQNAgent({"allow_short": False, "hidden": 4})
    assert (
        agent._target_of(0, 1) == 0
        and agent._target_of(2, 0) == 1
        and agent._target_of(1, -1) == -1
    )


def test_q_values_become_probabilities_by_softmax_at_the_temperature():
    agent = DQNAgent({"hidden": 4, "temperature": 0.5})
    x = np.random.default_rng(0).normal(size=(3, 20, 8)).astype(np.float32)
    q = agent.q_values(x, 0)
    p, conf = agent.predict(x)
    z = np.exp(q / 0.5)
    assert np.allclose(p, z / z.sum(axis=1, keepdims=True))
    assert np.allclose(conf, p.max(axis=1))


@pytest.mark.parametrize(
    ("cash", "lot", "min_notional", "direction"),
    [
        (1000.0, 0.01, 10.0, 1),
        (1000.0, 0.01, 10.0, -1),
        (150.0, 1.0, 110.0, 1),
        (9.0, 0.01, 10.0, -1),
    ],
)
def test_the_environment_trades_what_the_engine_trades(cash, lot, min_notional, direction):
    """The same all-in market entry through the engine's kernel: same quantity (or none),
    same equity at the next close."""
    from test_engine import bars_from, cfg, signals

    from engine.backtest import simulate

    rows = [(100.0, 100.0, 100.0, 100.0), (101.0, 103.0, 100.0, 102.0)]
    s = signals(2)
    s.entries[0, 0] = direction
    c = cfg(
        cash=cash,
        fee_taker=FEE,
        slippage_bps=SLIP * 1e4,
        size_type="percent",
        size=1.0,
        lot_size=lot,
        min_notional=min_notional,
        close_at_end=False,
    )
    res = simulate(bars_from(rows), s, c)
    env_cash, env_qty, _ = step(cash, 0.0, float(direction), lot=lot, min_notional=min_notional)
    fills = res.records.fills
    engine_qty = float(fills["qty"][0]) * direction if len(fills) else 0.0
    assert res.rejected == (1 if env_qty == 0.0 else 0)  # the engine refused it too
    assert env_qty == pytest.approx(engine_qty, abs=1e-12)
    assert env_cash + env_qty * 102.0 == pytest.approx(float(res.equity.iloc[-1]), abs=1e-9)
