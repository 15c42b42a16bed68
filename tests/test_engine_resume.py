"""The kernel is resumable: running the bars in chunks on carried state gives exactly what
one ``simulate_nb`` call gives (fills, trades, equity, counters)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import make_bars

from engine import checks, enums, nb
from engine.backtest import SimConfig, allocate_outputs, simulate
from engine.signals import Signals


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunks_of_run_nb_equal_one_simulate(seed):
    rng = np.random.default_rng(seed)
    bars = make_bars(600, seed=seed, vol=0.01, gaps=0.02)
    n, m = len(bars.time), len(bars.symbols)
    entries = np.zeros((n, m), np.int8)
    entries[rng.random((n, m)) < 0.04] = 1
    entries[rng.random((n, m)) < 0.04] = -1
    order_type = rng.integers(0, 3, (n, m)).astype(np.int8)
    price = np.where(entries > 0, 0.995, 1.005) * np.nan_to_num(bars.close, nan=100.0)
    price = np.where(
        order_type == enums.STOP, 2 * np.nan_to_num(bars.close, nan=100.0) - price, price
    )
    sig = Signals(
        entries=entries,
        exits=rng.random((n, m)) < 0.02,
        order_type=order_type,
        price=price,
        sl=np.where(rng.random((n, m)) < 0.5, 0.01, np.nan),
        tp=np.where(rng.random((n, m)) < 0.5, 0.02, np.nan),
        trail=np.where(rng.random((n, m)) < 0.3, 0.015, np.nan),
    )
    cfg = SimConfig(order_ttl=5)
    whole = simulate(bars, sig, cfg, warmup=10)

    ohlc, checked = checks.prepare_inputs(bars, sig)
    ks = checks.kernel_signals(checked)
    params = cfg.to_params(10, int(bars.tf_ms))
    fills, trades, equity, cash, positions, counters = allocate_outputs(n, m, ks["entries"])
    fs = np.zeros((m, nb.N_FSTATE))
    ist = np.zeros((m, nb.N_ISTATE), np.int64)
    gs = np.zeros(nb.N_GSTATE)
    nb.init_state_nb(params, fs, ist, gs, counters)
    cuts = [0, *sorted(rng.choice(np.arange(1, n), 7, replace=False).tolist()), n]
    time = np.ascontiguousarray(bars.time, np.int64)
    for a, b in itertools.pairwise(cuts):
        # each chunk sees only its own rows: arrays sliced, bar ids carried by bar0
        sl = slice(a, b)
        nb.run_nb(
            0,
            b - a,
            a,
            time[sl],
            *(x[sl] for x in ohlc),
            ks["entries"][sl],
            ks["exits"][sl],
            ks["order_type"][sl],
            ks["price"][sl],
            ks["size"],
            ks["sl"][sl],
            ks["tp"][sl],
            ks["trail"][sl],
            ks["flags"],
            params,
            fs,
            ist,
            gs,
            fills,
            trades,
            equity[sl],
            cash[sl],
            positions[sl],
            counters,
        )
    nb.close_all_nb(
        n - 1, int(time[-1]) + int(bars.tf_ms), params, fs, ist, gs, fills, trades, counters
    )
    nf, nt = int(counters[enums.C_FILLS]), int(counters[enums.C_TRADES])
    assert nt == len(whole.records.trades) and nt > 5
    np.testing.assert_array_equal(fills[:nf], whole.records.fills)
    np.testing.assert_array_equal(trades[:nt], whole.records.trades)
    np.testing.assert_array_equal(equity[:-1], whole.records.equity[:-1])
    assert float(gs[nb.G_CASH]) == whole.final_equity
    assert int(counters[enums.C_REJECTED]) == whole.rejected
    assert int(counters[enums.C_EXPIRED]) == whole.expired
