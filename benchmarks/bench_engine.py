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
* ``test_fused_loop_long_only_*`` / ``test_simulate_long_only``: the yardstick for the
  engine's overhead. ``fused_long_only_nb`` below is one hand-written numba loop doing only
  what a market-order, long-only account needs (the entry signal, a fill at the next open
  with slippage clipped to the bar, percent sizing, buying power with the fee, lot
  rounding, minimum notional, fill and trade records, equity / cash / position per bar,
  end close), fresh output arrays allocated per call as ``simulate`` must (first touches
  of 24 MB of new pages cost a few ms). ``_signals_included`` computes the moving-average cross inside the loop too;
  ``_precomputed`` reads the same precomputed entries as ``simulate``. ``simulate`` runs
  the precomputed signals with ``allow_short=False``; all give the same fills and equity
  (checked in the benchmark). Target: simulate <= 2x the signals-included loop;
  ``test_simulate_vs_fused_side_by_side`` times the two interleaved in one process and
  prints the ratio of the mins (run with ``-s`` to see it).
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
from numba import njit

from datasets.bars import Bars
from engine import enums, nb
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


@njit(cache=True, nogil=True)
def fused_long_only_nb(
    open_, high, low, close, entries, windows, p, fills, trades, equity, cash, pos
):
    """Market orders, long only, one symbol: the least work ``simulate`` can do for them.

    With ``windows`` = (fast, slow) > 0 the loop also computes the signals itself: the
    moving-average cross of ``_cross_entries`` from running cumulative sums (the same
    arithmetic as ``_rolling_mean``, so the same decisions); with (0, 0) it reads
    ``entries``. ``p`` = (cash, fee, slippage fraction, size fraction, lot, min notional).
    ``fills`` columns: bar, side, price, qty, fee; ``trades``: entry bar, exit bar, pnl.
    Returns (n_fills, n_trades).
    """
    n = open_.shape[0]
    c = p[0]
    fee, slip, size, lot, min_notional = p[1], p[2], p[3], p[4], p[5]
    wf, ws = windows[0], windows[1]
    inline = ws > 0
    ring = np.zeros(max(ws, 1) + 1)  # the last ws + 1 cumulative sums
    cs = 0.0
    was_up = False
    q = 0.0
    mark = 0.0
    entry_px = 0.0
    entry_fee = 0.0
    entry_bar = 0
    nf = 0
    nt = 0
    want = 0
    for t in range(n):
        if want != 0:
            o = open_[t, 0]
            if want > 0 and q == 0.0:
                px = min(max(o * (1.0 + slip), low[t, 0]), high[t, 0])
                eq = c
                qty = size * eq / px
                qmax = eq / (px * (1.0 + fee))
                if qty > qmax:
                    qty = qmax
                k = np.floor(qty / lot)
                if qty / lot - k > 1.0 - 1e-9:
                    k += 1.0
                qty = k * lot
                if qty > 0.0 and qty * px >= min_notional:
                    f = qty * px * fee
                    c -= qty * px + f
                    if c < 0.0 and c > -1e-9 * qty * px:
                        c = 0.0
                    q = qty
                    entry_px, entry_fee, entry_bar = px, f, t
                    fills[nf, 0], fills[nf, 1], fills[nf, 2] = t, 1.0, px
                    fills[nf, 3], fills[nf, 4] = qty, f
                    nf += 1
            elif want < 0 and q > 0.0:
                px = min(max(o * (1.0 - slip), low[t, 0]), high[t, 0])
                f = q * px * fee
                c += q * px - f
                fills[nf, 0], fills[nf, 1], fills[nf, 2] = t, -1.0, px
                fills[nf, 3], fills[nf, 4] = q, f
                nf += 1
                trades[nt, 0], trades[nt, 1] = entry_bar, t
                trades[nt, 2] = q * (px - entry_px) - entry_fee - f
                nt += 1
                q = 0.0
            want = 0
        mark = close[t, 0]
        pos[t, 0] = q
        equity[t] = c + q * mark
        cash[t] = c
        if inline:
            cs += mark
            ring[(t + 1) % (ws + 1)] = cs
            up = False
            if t >= ws - 1:
                fast = (cs - ring[(t + 1 - wf) % (ws + 1)]) / wf
                slow = (cs - ring[(t + 1 - ws) % (ws + 1)]) / ws
                up = fast > slow
            if t > 0 and up != was_up:
                want = 1 if up else -1
            was_up = up
        else:
            want = entries[t, 0]
    if q > 0.0:
        f = q * mark * fee
        c += q * mark - f
        fills[nf, 0], fills[nf, 1], fills[nf, 2] = n - 1, -1.0, mark
        fills[nf, 3], fills[nf, 4] = q, f
        nf += 1
        trades[nt, 0], trades[nt, 1] = entry_bar, n - 1
        trades[nt, 2] = q * (mark - entry_px) - entry_fee - f
        nt += 1
        pos[n - 1, 0] = 0.0
        equity[n - 1] = c
        cash[n - 1] = c
    return nf, nt


CFG_LONG = SimConfig(fee_taker=0.0004, fee_maker=0.0002, slippage_bps=1.0, allow_short=False)


def run_fused(market: Bars, cross: Signals, inline: bool):
    """Allocate fresh outputs (as ``simulate`` must) and run the fused loop.

    Returns (fills, trades, equity, cash, positions) trimmed to what was written.
    """
    e = cross.entries
    k = int(np.count_nonzero(e)) + 1
    p = np.array(
        [
            CFG_LONG.cash,
            CFG_LONG.fee_taker,
            CFG_LONG.slippage_bps / 1e4,
            CFG_LONG.size,
            CFG_LONG.lot_size,
            CFG_LONG.min_notional,
        ]
    )
    windows = np.array([60, 240] if inline else [0, 0], dtype=np.int64)
    n = market.n
    fills, trades = np.empty((2 * k, 5)), np.empty((k, 3))
    equity, cash, pos = np.empty(n), np.empty(n), np.empty((n, 1))
    nf, nt = fused_long_only_nb(
        market.open, market.high, market.low, market.close, e, windows, p,
        fills, trades, equity, cash, pos,
    )  # fmt: skip
    return fills[:nf], trades[:nt], equity, cash, pos


def _check_same_work(out, market: Bars, cross: Signals) -> None:
    """The yardstick does what simulate does: same fills, same equity curve."""
    fills, _, equity, _, _ = out
    res = simulate(market, cross, CFG_LONG)
    f = res.records.fills
    assert len(fills) == len(f) > 1000
    np.testing.assert_array_equal(fills[:, 0], f["bar"])
    np.testing.assert_allclose(fills[:, 2], f["price"], rtol=1e-12)
    np.testing.assert_allclose(fills[:, 3], f["qty"], rtol=1e-12)
    np.testing.assert_allclose(equity, res.records.equity, rtol=1e-9)
    assert set(f["kind"].tolist()) <= {enums.KIND_MARKET, enums.KIND_EXIT, enums.KIND_END}


def test_fused_loop_long_only_signals_included(benchmark, market, cross):
    """The yardstick of the speed target: signals computed inside the loop."""
    _check_same_work(run_fused(market, cross, True), market, cross)
    benchmark(run_fused, market, cross, True)
    benchmark.extra_info["bars_per_s"] = N / benchmark.stats.stats.median


def test_fused_loop_long_only_precomputed(benchmark, market, cross):
    """A lower bound: the same loop reading precomputed signals."""
    _check_same_work(run_fused(market, cross, False), market, cross)
    benchmark(run_fused, market, cross, False)
    benchmark.extra_info["bars_per_s"] = N / benchmark.stats.stats.median


def test_simulate_vs_fused_side_by_side(benchmark, market, cross):
    """The speed target, measured interleaved in one process so both see the same machine
    load and the same allocator state: each round runs the signals-included fused loop,
    then ``simulate`` on the precomputed signals. Reports the min of the rounds of each."""
    import time

    seen: dict[str, list[float]] = {"fused": [], "simulate": []}

    def pair() -> None:
        t0 = time.perf_counter()
        run_fused(market, cross, True)
        t1 = time.perf_counter()
        simulate(market, cross, CFG_LONG)
        t2 = time.perf_counter()
        seen["fused"].append(t1 - t0)
        seen["simulate"].append(t2 - t1)

    benchmark.pedantic(pair, rounds=60, iterations=1, warmup_rounds=2)
    # drop the warm-up rounds (with benchmarks disabled there is a single round)
    fused, sim = (min(v[2:] or v) for v in (seen["fused"], seen["simulate"]))
    benchmark.extra_info["fused_min_ms"] = fused * 1e3
    benchmark.extra_info["simulate_min_ms"] = sim * 1e3
    benchmark.extra_info["ratio"] = sim / fused
    print(
        f"\nside by side (min of 60 rounds): fused loop with signals {fused * 1e3:.2f} ms, "
        f"simulate {sim * 1e3:.2f} ms, ratio {sim / fused:.2f} (target <= 2)"
    )


def test_simulate_long_only(benchmark, market, cross):
    simulate(market, cross, CFG_LONG)
    res = benchmark(simulate, market, cross, CFG_LONG)
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
