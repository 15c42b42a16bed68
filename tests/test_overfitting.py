"""Deflated Sharpe ratio and probability of backtest overfitting on constructed cases."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from runner.stats import deflated_sharpe, expected_max_sharpe, pbo


def test_expected_max_sharpe_of_ten_trials_by_hand() -> None:
    # Z(0.9) = 1.281552, Z(1 - 1/(10 e)) = Z(0.963212) = 1.789242 (normal tables)
    # (1 - 0.577216) * 1.281552 + 0.577216 * 1.789242 = 0.541820 + 1.032778 = 1.574598
    assert abs(expected_max_sharpe(1.0, 10) - 1.574598) < 1e-4
    # scales with the standard deviation of the trials' Sharpe ratios
    assert abs(expected_max_sharpe(0.25, 10) - 0.5 * 1.574598) < 1e-4
    assert expected_max_sharpe(1.0, 1) == 0.0


def test_deflated_sharpe_small_case_by_hand() -> None:
    r = [0.02, -0.01, 0.03, 0.0, 0.01, -0.02, 0.04, 0.01]
    t = len(r)
    mean = sum(r) / t  # 0.01
    var1 = sum((x - mean) ** 2 for x in r) / (t - 1)
    sr = mean / math.sqrt(var1)
    m2 = sum((x - mean) ** 2 for x in r) / t
    skew = sum((x - mean) ** 3 for x in r) / t / m2**1.5
    kurt = sum((x - mean) ** 4 for x in r) / t / m2**2
    trials = [0.1, 0.2, 0.35]
    tm = sum(trials) / 3
    v = sum((s - tm) ** 2 for s in trials) / 2
    nd = NormalDist()
    g = 0.5772156649015329
    sr0 = math.sqrt(v) * ((1 - g) * nd.inv_cdf(1 - 1 / 3) + g * nd.inv_cdf(1 - 1 / (3 * math.e)))
    z = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    expected = nd.cdf(z)
    got = deflated_sharpe(np.array(r), np.array(trials))
    assert got.trials == 3 and got.observations == 8
    assert abs(got.sharpe - sr) < 1e-12
    assert abs(got.benchmark - sr0) < 1e-12
    assert abs(got.dsr - expected) < 1e-12
    # mean 0.01, sample sd 0.0195959 -> SR 0.5103; with SR0 about 0.13 the DSR is high but < 1
    assert 0.5 < got.dsr < 1.0


def test_more_trials_deflate_more() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.01, 500)
    few = deflated_sharpe(r, rng.normal(0, 0.05, 5))
    many = deflated_sharpe(r, np.concatenate([rng.normal(0, 0.05, 999), [0.0]]))
    assert many.benchmark > few.benchmark
    assert many.dsr < few.dsr


def test_best_of_noise_is_not_significant_but_a_real_edge_is() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(0.0, 0.01, size=(700, 200))
    srs = noise.mean(axis=0) / noise.std(axis=0, ddof=1)
    best = int(np.argmax(srs))
    assert deflated_sharpe(noise[:, best], srs).dsr < 0.5
    edge = rng.normal(0.003, 0.01, 700)  # per-period Sharpe about 0.3 over 700 days
    with_edge = np.column_stack([noise, edge])
    srs2 = with_edge.mean(axis=0) / with_edge.std(axis=0, ddof=1)
    assert deflated_sharpe(edge, srs2).dsr > 0.99


def test_pbo_two_strategies_that_swap_places_by_hand() -> None:
    # two blocks; A wins block 1 and loses block 2, B the opposite: whichever half is in
    # sample, its winner is the worst out of sample -> both splits overfit -> PBO = 1
    a = [0.01, 0.02, 0.01, 0.03, -0.01, -0.02, -0.01, -0.03]
    b = [-0.01, -0.02, -0.01, -0.03, 0.01, 0.02, 0.01, 0.03]
    res = pbo(np.column_stack([a, b]), blocks=2)
    assert res.splits == 2
    assert res.pbo == 1.0
    # winner OOS rank 1 of 2 -> w = 1/3 -> logit ln(1/2)
    assert np.allclose(res.logits, math.log(0.5))


def test_pbo_consistent_winner_by_hand() -> None:
    a = [0.01, 0.02, 0.01, 0.03, 0.01, 0.02, 0.01, 0.03]
    b = [-0.01, -0.02, -0.01, -0.03, 0.01, -0.02, -0.01, 0.0]
    res = pbo(np.column_stack([a, b]), blocks=2)
    assert res.pbo == 0.0
    assert np.allclose(res.logits, math.log(2.0))  # rank 2 of 2 -> w = 2/3


def test_pure_noise_strategies_show_a_high_pbo() -> None:
    # for noise the in-sample winner is a coin toss out of sample: PBO is 0.5 on average
    # (one data set varies widely, its splits share data), so average over seeds
    values = []
    for seed in range(8):
        noise = np.random.default_rng(seed).normal(0.0, 0.01, size=(400, 40))
        res = pbo(noise)
        assert res.blocks == 16 and res.splits == 12870
        values.append(res.pbo)
    assert 0.35 < float(np.mean(values)) < 0.65


def test_planted_edge_shows_a_low_pbo() -> None:
    rng = np.random.default_rng(4)
    m = rng.normal(0.0, 0.01, size=(800, 60))
    m[:, 17] += 0.004  # one strategy with a persistent edge
    res = pbo(m)
    assert res.pbo < 0.05
