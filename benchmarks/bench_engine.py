"""Speed of the event engine.

    .venv/bin/pytest benchmarks/bench_engine.py --benchmark-enable
    # on a shared, busy machine CPU time is the steadier figure:
    .venv/bin/pytest benchmarks/bench_engine.py --benchmark-enable \
        --benchmark-timer=time.process_time

Figures, not assertions (the project's pytest config disables benchmarks by default):

* ``test_simulate_1m_bars_*``: one symbol, 1,000,000 seeded synthetic 1m bars, signals of a
  moving-average cross (a few thousand reversals) through ``engine.backtest.simulate``
  (input checks + kernel + result records; pandas views are built lazily and not timed).
  Budget: >= 30 M bars/s, i.e. <= 33 ms per run, steady state.
* ``test_kernel_only_*``: the same without input checks, for the kernel's own share.
* ``test_first_call_warm_cache``: a fresh interpreter imports the engine and runs
  ``simulate`` on a small input with the numba cache already filled. Budget: <= 1 s from the
  first import to the result (printed; the benchmark's own time adds interpreter start-up).
  Most of it is numba's own first-use set-up (its import, its target registries and their
  SciPy BLAS probe), paid once per process by any numba code; loading the engine's cached
  kernels is a small part.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets.bars import Bars
from engine import nb
from engine.backtest import SimConfig, _prepare_signals, allocate_outputs, simulate
from engine.signals import LIMIT, Signals

ROOT = Path(__file__).resolve().parents[1]
N = 1_000_000


def _rolling_mean(x: np.ndarray, w: int) -> np.ndarray:
    c = np.cumsum(np.r_[0.0, x])
    out = np.full(x.shape, np.nan)
    out[w - 1 :] = (c[w:] - c[:-w]) / w
    return out


@pytest.fixture(name="market", scope="module")
def fixture_market() -> Bars:
    rng = np.random.default_rng(7)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 8e-4, N)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 3e-4, N)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 3e-4, N)))

    def col(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.reshape(-1, 1))

    time_ = 1_577_836_800_000 + np.arange(N, dtype=np.int64) * 60_000
    return Bars(
        "1m",
        ("BTC/USDT",),
        time_,
        col(open_),
        col(high),
        col(low),
        col(close),
        col(np.ones(N)),
        synthetic=True,
    )


def _cross_entries(close: np.ndarray) -> np.ndarray:
    fast, slow = _rolling_mean(close, 60), _rolling_mean(close, 240)
    up = fast > slow
    e = np.zeros(close.shape[0], dtype=np.int8)
    e[1:][up[1:] & ~up[:-1]] = 1
    e[1:][~up[1:] & up[:-1]] = -1
    return e.reshape(-1, 1)


@pytest.fixture(name="cross", scope="module")
def fixture_cross(market: Bars) -> Signals:
    e = _cross_entries(market.close[:, 0])
    return Signals(e, np.zeros_like(e, dtype=bool))


@pytest.fixture(name="cross_exits", scope="module")
def fixture_cross_exits(market: Bars) -> Signals:
    """The same cross with limit entries 0.1 % inside the close and 1 % stop / 2 % target."""
    e = _cross_entries(market.close[:, 0])
    c = market.close
    shape = e.shape
    return Signals(
        e,
        np.zeros(shape, dtype=bool),
        order_type=np.full(shape, LIMIT, dtype=np.int8),
        price=np.where(e > 0, c * 0.999, c * 1.001),
        sl=np.full(shape, 0.01),
        tp=np.full(shape, 0.02),
        trail=np.full(shape, 0.015),
    )


CFG = SimConfig(fee_taker=0.0004, fee_maker=0.0002, slippage_bps=1.0)


def test_simulate_1m_bars_market(benchmark, market, cross):
    simulate(market, cross, CFG)  # compile / load the cache outside the timing
    res = benchmark(simulate, market, cross, CFG)
    benchmark.extra_info["bars_per_s"] = N / benchmark.stats.stats.median
    benchmark.extra_info["trades"] = len(res.records.trades)


def test_simulate_1m_bars_limit_with_exits(benchmark, market, cross_exits):
    simulate(market, cross_exits, CFG)
    res = benchmark(simulate, market, cross_exits, CFG)
    benchmark.extra_info["bars_per_s"] = N / benchmark.stats.stats.median
    benchmark.extra_info["trades"] = len(res.records.trades)


def test_kernel_only_market(benchmark, market, cross):
    sig = _prepare_signals(cross, N, 1)
    fills, trades, eq, cash, pos, counters = allocate_outputs(N, 1, sig["entries"])
    args = (
        market.time,
        market.open,
        market.high,
        market.low,
        market.close,
        sig["entries"],
        sig["exits"],
        sig["order_type"],
        sig["price"],
        sig["size"],
        sig["sl"],
        sig["tp"],
        sig["trail"],
        sig["flags"],
        CFG.to_params(0, 60_000),
        fills,
        trades,
        eq,
        cash,
        pos,
        counters,
    )
    nb.simulate_nb(*args)
    benchmark(nb.simulate_nb, *args)
    benchmark.extra_info["bars_per_s"] = N / benchmark.stats.stats.median


_FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np
from datasets.bars import Bars
from engine.backtest import SimConfig, simulate
from engine.signals import Signals
t1 = time.perf_counter()
n = 500
rng = np.random.default_rng(1)
c = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))).reshape(-1, 1)
b = Bars("1m", ("BTC/USDT",), np.arange(n, dtype=np.int64) * 60_000, c, c * 1.01, c * 0.99, c, c)
e = np.zeros((n, 1), np.int8)
e[::50] = 1
e[25::50] = -1
r = simulate(b, Signals(e, np.zeros((n, 1), bool)), SimConfig())
assert len(r.records.trades) > 0
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def test_first_call_warm_cache(benchmark):
    def fresh() -> tuple[float, float]:
        out = subprocess.run(
            [sys.executable, "-c", _FIRST_CALL],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        imports, first = out.stdout.split()
        return float(imports), float(first)

    seen: list[tuple[float, float]] = []

    def run() -> None:
        seen.append(fresh())

    # the warm-up round fills the numba cache if it is cold; timed rounds are fresh processes
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    timed = sorted(seen[1:], key=sum)
    imports, first = timed[len(timed) // 2]
    benchmark.extra_info["import_s"] = imports
    benchmark.extra_info["first_simulate_s"] = first
    print(
        f"\nfirst call with a warm cache (median process): imports {imports:.3f} s "
        f"+ first simulate {first:.3f} s = {imports + first:.3f} s"
    )


def test_simulate_1m_bars_two_symbols(benchmark, market, cross):
    """Two symbols sharing cash (the second a scaled copy shifted by 1000 bars)."""

    def two(a: np.ndarray, k: float) -> np.ndarray:
        return np.ascontiguousarray(np.column_stack([a[:, 0], np.roll(a[:, 0], 1000) * k]))

    bars = Bars(
        "1m",
        ("BTC/USDT", "ETH/USDT"),
        market.time,
        two(market.open, 0.05),
        two(market.high, 0.05),
        two(market.low, 0.05),
        two(market.close, 0.05),
        two(market.volume, 1.0),
        synthetic=True,
    )
    e = np.ascontiguousarray(
        np.column_stack([cross.entries[:, 0], np.roll(cross.entries[:, 0], 1000)])
    )
    sig = Signals(e, np.zeros(e.shape, dtype=bool))
    cfg = SimConfig(fee_taker=0.0004, fee_maker=0.0002, slippage_bps=1.0, size=0.45)
    simulate(bars, sig, cfg)
    res = benchmark(simulate, bars, sig, cfg)
    benchmark.extra_info["bars_per_s"] = N / benchmark.stats.stats.median
    benchmark.extra_info["trades"] = len(res.records.trades)


@pytest.mark.parametrize("detail", ["market", "limit_sl_tp_trail"])
def test_input_checks_1m_bars(benchmark, market, detail):
    """``engine.checks.prepare_inputs`` alone: candle and signal validation, 1,000,000 bars.

    ``market``: entries and exits only; ``limit_sl_tp_trail``: every optional field given.
    One numba pass screens the candles, entries and exits branch-free in blocks and reads
    the entry details only at entry cells.
    """
    from engine.checks import prepare_inputs

    close = market.close[:, 0]
    fast, slow = _rolling_mean(close, 60), _rolling_mean(close, 240)
    up = fast > slow
    e = np.zeros(close.shape[0], dtype=np.int8)
    e[1:][up[1:] & ~up[:-1]] = 1
    e[1:][~up[1:] & up[:-1]] = -1
    e = e.reshape(-1, 1)
    sig = Signals(e, np.zeros(e.shape, dtype=np.bool_))
    if detail != "market":
        stop = np.where(e != 0, 0.02, np.nan)
        sig.order_type = np.where(e != 0, LIMIT, 0).astype(np.int8)
        sig.price = np.where(e != 0, market.close, np.nan)
        sig.size, sig.sl, sig.tp, sig.trail = stop, stop, stop, stop
    prepare_inputs(market, sig)
    benchmark(prepare_inputs, market, sig)
    benchmark.extra_info["bars_per_s"] = N / benchmark.stats.stats.median
