"""Randomised checks of the event engine: a differential test against the plain-Python
reference loop (``engine.reference``) and hypothesis properties of the kernel's output."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.bars import Bars
from engine import enums
from engine.backtest import SimConfig, simulate
from engine.reference import simulate_reference
from engine.signals import LIMIT, Signals

MIN = 60_000


def random_market(
    rng: np.random.Generator, n: int, m: int, gaps: bool = True, tick: float = 0.0
) -> Bars:
    """Random-walk candles with gapped opens; later symbols list late and have holes.

    With ``tick`` > 0 every price is rounded to a multiple of it, so equal highs and lows,
    flat bars and exact touches of (tick-rounded) order prices are common.
    """
    o = np.empty((n, m))
    h = np.empty((n, m))
    lo = np.empty((n, m))
    c = np.empty((n, m))
    for j in range(m):
        price = 100.0 * (1 + j)
        for t in range(n):
            op = price * (1 + rng.normal(0, 0.004))
            cl = op * (1 + rng.normal(0, 0.01))
            o[t, j], c[t, j] = op, cl
            h[t, j] = max(op, cl) * (1 + abs(rng.normal(0, 0.006)))
            lo[t, j] = min(op, cl) * (1 - abs(rng.normal(0, 0.006)))
            price = cl
    if tick > 0:
        o, c = (np.maximum(np.round(a / tick), 1.0) * tick for a in (o, c))
        h = np.maximum(np.round(h / tick) * tick, np.maximum(o, c))
        lo = np.minimum(np.maximum(np.round(lo / tick), 1.0) * tick, np.minimum(o, c))
    if gaps and m > 1:
        start = int(rng.integers(0, max(1, n // 5)))
        for a in (o, h, lo, c):
            a[:start, m - 1] = np.nan
        holes = rng.random(n) < 0.05
        for a in (o, h, lo, c):
            a[holes, 0] = np.nan
    time = 1_600_000_000_000 + np.arange(n, dtype=np.int64) * MIN
    symbols = tuple(f"S{j}/USDT" for j in range(m))
    return Bars("1m", symbols, time, o, h, lo, c, np.ones((n, m)), synthetic=True)


def random_signals(
    rng: np.random.Generator, bars: Bars, density: float = 0.08, tick: float = 0.0
) -> Signals:
    n, m = bars.close.shape
    u = rng.random((n, m))
    entries = np.where(u < density, 1, np.where(u < 2 * density, -1, 0)).astype(np.int8)
    exits = rng.random((n, m)) < density / 2
    order_type = rng.integers(0, 3, size=(n, m)).astype(np.int8)
    ref = np.where(np.isnan(bars.close), 100.0, bars.close)
    offset = rng.uniform(0.0, 0.02, size=(n, m))
    # limits below (buys) / above (sells) the close, stops the other way
    side = np.where(entries >= 0, 1.0, -1.0)
    sign = np.where(order_type == LIMIT, -side, side)
    price = ref * (1 + sign * offset)
    if tick > 0:
        price = np.maximum(np.round(price / tick), 1.0) * tick

    def maybe(lo_: float, hi_: float, p_nan: float) -> np.ndarray:
        v = rng.uniform(lo_, hi_, size=(n, m))
        v[rng.random((n, m)) < p_nan] = np.nan
        return v

    return Signals(
        entries=entries,
        exits=exits,
        order_type=order_type,
        price=price,
        size=maybe(0.1, 0.6, 0.7),
        sl=maybe(0.003, 0.03, 0.4),
        tp=maybe(0.003, 0.04, 0.4),
        trail=maybe(0.003, 0.03, 0.6),
    )


def random_config(rng: np.random.Generator) -> SimConfig:
    size_type = ["percent", "cash", "units"][int(rng.integers(0, 3))]
    size = {"percent": 0.5, "cash": 3000.0, "units": 5.0}[size_type]
    return SimConfig(
        cash=10_000.0,
        fee_taker=float(rng.choice([0.0, 0.001, 0.0025])),
        fee_maker=float(rng.choice([0.0, 0.0002, 0.001])),
        slippage_bps=float(rng.choice([0.0, 2.0, 15.0])),
        size_type=size_type,
        size=size,
        allow_short=bool(rng.random() < 0.7),
        leverage=float(rng.choice([1.0, 1.0, 3.0])),
        min_notional=float(rng.choice([0.0, 10.0, 500.0])),
        lot_size=float(rng.choice([0.0, 1e-3, 0.01])),
        order_ttl=int(rng.choice([0, 0, 3])),
    )


def assert_records_equal(a: np.ndarray, b: np.ndarray, tol: float = 1e-9) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    for name in a.dtype.names:
        if a.dtype[name].kind == "f":
            np.testing.assert_allclose(a[name], b[name], rtol=tol, atol=tol, err_msg=name)
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# --------------------------------------------------------------------------- differential
DIFF_CASES = [(seed, 2, tick) for tick in (0.0, 0.5, 2.0) for seed in range(12)] + [
    (seed, m, tick) for m, tick in ((1, 0.0), (3, 0.5)) for seed in range(6)
]


@pytest.mark.parametrize(("seed", "m", "tick"), DIFF_CASES)
def test_kernel_matches_reference_loop(seed, m, tick):
    """Differential test; ``tick`` > 0 rounds prices so ties and exact touches are common;
    one symbol and three symbols take different fast paths through the kernel."""
    rng = np.random.default_rng(seed)
    bars = random_market(rng, 300, m, tick=tick)
    sig = random_signals(rng, bars, tick=tick)
    cfg = random_config(rng)
    warmup = int(rng.integers(0, 20))
    res = simulate(bars, sig, cfg, warmup=warmup)
    ref = simulate_reference(bars, sig, cfg, warmup=warmup)
    assert len(ref["fills"]) > 10  # the comparison exercises real trading
    assert_records_equal(res.records.fills, ref["fills"])
    assert_records_equal(res.records.trades, ref["trades"])
    np.testing.assert_allclose(res.records.equity, ref["equity"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res.records.cash, ref["cash"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res.records.positions, ref["positions"], rtol=1e-9, atol=1e-9)
    assert res.rejected == ref["rejected"]
    assert res.exposed_bars == ref["exposed_bars"]
    assert (res.halted_bar if res.halted_bar is not None else -1) == ref["halted_bar"]


def test_reference_covers_every_fill_kind_and_exit_reason():
    """The differential seeds together exercise every kind of fill and every exit reason."""
    kinds: set[int] = set()
    reasons: set[int] = set()
    for seed in range(12):
        rng = np.random.default_rng(seed)
        bars = random_market(rng, 300, 2)
        sig = random_signals(rng, bars)
        cfg = random_config(rng)
        ref = simulate_reference(bars, sig, cfg, warmup=int(rng.integers(0, 20)))
        kinds |= set(ref["fills"]["kind"].tolist())
        reasons |= set(ref["trades"]["exit_reason"].tolist())
    assert {
        enums.KIND_MARKET,
        enums.KIND_LIMIT,
        enums.KIND_STOP,
        enums.KIND_EXIT,
        enums.KIND_STOP_LOSS,
        enums.KIND_TAKE_PROFIT,
        enums.KIND_TRAILING_STOP,
    } <= kinds
    assert {
        enums.EXIT_SIGNAL,
        enums.EXIT_REVERSE,
        enums.EXIT_STOP_LOSS,
        enums.EXIT_TAKE_PROFIT,
        enums.EXIT_TRAILING_STOP,
    } <= reasons


# --------------------------------------------------------------------------- properties
case = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "n": st.integers(2, 80),
        "m": st.integers(1, 3),
        "warmup": st.integers(0, 10),
        "density": st.sampled_from([0.02, 0.1, 0.3]),
        "tick": st.sampled_from([0.0, 0.0, 0.5, 2.0]),
    }
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_case(c):
    rng = np.random.default_rng(c["seed"])
    bars = random_market(rng, c["n"], c["m"], tick=c["tick"])
    sig = random_signals(rng, bars, c["density"], tick=c["tick"])
    cfg = random_config(rng)
    return bars, sig, cfg, simulate(bars, sig, cfg, warmup=c["warmup"])


def last_valid_close(bars: Bars) -> np.ndarray:
    c = bars.close.copy()
    for t in range(1, c.shape[0]):
        holes = np.isnan(c[t])
        c[t, holes] = c[t - 1, holes]
    return np.nan_to_num(c, nan=0.0)


@FAST
@given(case)
def test_equity_is_cash_plus_marked_positions(c):
    bars, _, _, res = run_case(c)
    marks = last_valid_close(bars)
    value = res.records.cash + (res.records.positions * marks).sum(axis=1)
    np.testing.assert_allclose(res.records.equity, value, rtol=1e-9, atol=1e-6)


@FAST
@given(case)
def test_fees_non_negative_and_trades_add_up_to_equity(c):
    _, _, cfg, res = run_case(c)
    f = res.records.fills
    assert (f["fee"] >= 0).all() and (f["qty"] > 0).all()
    np.testing.assert_allclose(f["notional"], f["price"] * f["qty"])
    t = res.records.trades
    assert (t["size"] > 0).all() and (t["fees"] >= 0).all()
    # every position is closed at the end, so realised pnl explains the whole equity change
    assert t["pnl"].sum() == pytest.approx(res.records.equity[-1] - cfg.cash, abs=1e-6)
    np.testing.assert_allclose(t["fees"].sum(), f["fee"].sum(), atol=1e-9)
    assert res.records.positions[-1].tolist() == [0.0] * len(res.symbols)


@FAST
@given(case)
def test_fill_prices_inside_their_bar(c):
    bars, _, _, res = run_case(c)
    f = res.records.fills
    marks = last_valid_close(bars)
    for r in f:
        b, j = int(r["bar"]), int(r["symbol"])
        if r["kind"] == enums.KIND_END:
            assert r["price"] == marks[b, j]
            continue
        lo, hi, op = bars.low[b, j], bars.high[b, j], bars.open[b, j]
        assert (lo <= r["price"] <= hi) or r["price"] == op
        assert r["time"] == bars.time[b]


@FAST
@given(case)
def test_no_fill_before_warmup_or_at_its_signal_bar(c):
    _, sig, cfg, res = run_case(c)
    f = res.records.fills
    assert (f["bar"] >= c["warmup"] + 1).all()
    w = c["warmup"]
    for i, r in enumerate(f):
        b, j = int(r["bar"]), int(r["symbol"])
        if r["kind"] in (enums.KIND_MARKET, enums.KIND_LIMIT, enums.KIND_STOP):
            # an order fill at bar b needs an entry signal at a row in [warmup, b)
            assert (sig.entries[w:b, j] != 0).any()
        elif r["kind"] == enums.KIND_EXIT:
            asked = sig.exits[w:b, j]
            if not cfg.allow_short:
                asked = asked | (sig.entries[w:b, j] < 0)
            assert asked.any()
        elif r["kind"] != enums.KIND_END:
            # a stop-loss / take-profit / trailing fill closes the position opened by the
            # previous fill of that symbol, on the opposite side, no later than this bar
            before = f[:i][f[:i]["symbol"] == j]
            assert len(before) > 0
            assert before[-1]["side"] == -r["side"] and before[-1]["bar"] <= b


@FAST
@given(case, st.integers(0, 79))
def test_fills_up_to_a_bar_ignore_later_signals(c, cut):
    """Rewriting every signal row from ``cut`` on leaves the fills of bars <= cut unchanged."""
    bars, sig, cfg, res = run_case(c)
    cut = min(cut, bars.n - 1)
    rng = np.random.default_rng(c["seed"] + 1)
    other = random_signals(rng, bars, 0.3)
    for name in ("entries", "exits", "order_type", "price", "size", "sl", "tp", "trail"):
        a = getattr(sig, name).copy()
        a[cut:] = getattr(other, name)[cut:]
        setattr(other, name, a)
    res2 = simulate(bars, other, cfg, warmup=c["warmup"])
    keep = lambda f: f[(f["bar"] <= cut) & (f["kind"] != enums.KIND_END)]  # noqa: E731
    assert_records_equal(keep(res.records.fills), keep(res2.records.fills), tol=0.0)
    np.testing.assert_array_equal(res.records.equity[:cut], res2.records.equity[:cut])


@settings(max_examples=15, deadline=None)
@given(case)
def test_same_inputs_same_outputs(c):
    bars, sig, cfg, res = run_case(c)
    again = simulate(bars, sig, cfg, warmup=c["warmup"])
    assert_records_equal(res.records.fills, again.records.fills, tol=0.0)
    assert_records_equal(res.records.trades, again.records.trades, tol=0.0)
    np.testing.assert_array_equal(res.records.equity, again.records.equity)
    np.testing.assert_array_equal(res.records.positions, again.records.positions)


def test_tick_rounded_markets_produce_exact_touches():
    """The tick-rounded differential cases do exercise ties: resting and attached orders
    filled inside the bar at exactly its low or high, and flat bars."""
    exact = flat_bars = 0
    inside_kinds = (
        enums.KIND_LIMIT,
        enums.KIND_STOP,
        enums.KIND_STOP_LOSS,
        enums.KIND_TAKE_PROFIT,
        enums.KIND_TRAILING_STOP,
    )
    for seed in range(12):
        rng = np.random.default_rng(seed)
        bars = random_market(rng, 300, 2, tick=2.0)
        sig = random_signals(rng, bars, tick=2.0)
        res = simulate(bars, sig, random_config(rng), warmup=int(rng.integers(0, 20)))
        f = res.records.fills
        f = f[np.isin(f["kind"], inside_kinds)]
        b, j = f["bar"], f["symbol"]
        touched = (f["price"] == bars.low[b, j]) | (f["price"] == bars.high[b, j])
        exact += int((touched & (f["price"] != bars.open[b, j])).sum())
        flat_bars += int(np.sum(bars.high == bars.low))
    assert exact > 10 and flat_bars > 10
