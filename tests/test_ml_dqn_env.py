"""The DQN's environment charges the engine's market-order rules: next open, taker slippage
clipped into the bar, taker fee on each leg. Expected values are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from models.dqn import DQNAgent, step_reward_nb


def test_flat_to_long_pays_slippage_and_fee():
    # buy at open 101 with 2 bps: 101.0202 (inside [100, 103]); equity 1 buys 1/101 units
    r = step_reward_nb(0.0, 1.0, 100.0, 101.0, 103.0, 100.0, 102.0, 0.001, 0.0002)
    u = 1.0 / 101.0
    e = 1.0 - u * (101.0202 - 101.0) - 0.001 * 101.0202 * u + u * (102.0 - 101.0)
    assert r == pytest.approx(math.log(e), abs=1e-12)


def test_fill_is_clipped_into_the_bar_and_reversal_pays_both_legs():
    # long 1/100 units from close 100; open 101 gains 0.01; sell 2 bps below 101 = 100.9798,
    # but the bar's low is 100.99: the fill is clipped to 100.99
    r = step_reward_nb(1.0, -1.0, 100.0, 101.0, 101.5, 100.99, 100.0, 0.001, 0.0002)
    u = 1.0 / 100.0
    e = 1.0 + u * (101.0 - 100.0)
    u_new = -e / 101.0
    e += u * (100.99 - 101.0) - u_new * (100.99 - 101.0)
    e -= 0.001 * 100.99 * (abs(u) + abs(u_new))
    e += u_new * (100.0 - 101.0)
    assert r == pytest.approx(math.log(e), abs=1e-12)


def test_hold_costs_nothing_and_sell_without_shorts_goes_flat():
    r = step_reward_nb(1.0, 1.0, 100.0, 101.0, 103.0, 100.0, 102.0, 0.001, 0.0002)
    assert r == pytest.approx(math.log(1.02), abs=1e-12)
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
