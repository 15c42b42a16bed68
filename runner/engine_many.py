"""Many parameter sets of one strategy over the same candles, in chunks.

:func:`run_chunk` is the unit of work of every executor (the local numba threads, or one
Ray task): it turns a list of parameter sets into signals (indicators shared through
``datasets.indicators.memoized``) and runs them all through ``engine.nb.simulate_many_nb``,
parallel over the combinations. Only daily equity and the engine's counters come back,
so memory is ``O(chunk x bars)`` for the signals and ``O(combinations x days)`` for the
results, whatever the grid size.

Parity with ``cli.py backtest``: each combination is one complete run of the same kernel
on the same bars, with the same warm-up rule (the first bar that can act is the later of
``--from`` and the strategy's own warm-up), and its metrics are computed with the same
formulas on the same daily equity (``engine.metrics``), so they are equal, bit for bit,
to those of a single backtest with the same parameters. The candles are loaded once with
the longest warm-up any combination needs; for indicators that depend only on their
window (SMA, rolling std) that is exactly what a single backtest sees, while recursive
ones (EMA, RSI) seeded earlier can differ from a single run's in far decimals when the
grid varies the warm-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine import enums

#: bytes of signal arrays one chunk may hold (the kernel's per-thread buffers come on top)
CHUNK_BYTES = 64 * 2**20
METRIC_NAMES = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "trades",
    "exposure",
)


@dataclass
class SweepData:
    """Everything a chunk needs; picklable (Ray sends it once to the object store)."""

    strategy: str
    timeframe: str
    multibars: Any
    time: np.ndarray
    ohlc: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    before: int  # index of the first bar at or after --from
    cash: float
    sim_params: np.ndarray  # engine parameter vector (warm-up set per combination)
    day_end: np.ndarray  # int64 (d,): last bar of each day, days from the first bar's day
    day_of_bar: np.ndarray  # int64 (n,): index into day_end of each bar's day
    day_labels: np.ndarray  # datetime64[D] (d,)


@dataclass
class ChunkResult:
    daily: np.ndarray  # (k, d) equity after each day
    final: np.ndarray  # (k,)
    counters: np.ndarray  # (k, N_COUNTERS)
    act_from: np.ndarray  # (k,) first bar that can act
    params: list[dict[str, Any]] = field(default_factory=list)


def day_index(close_time_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Days of the bars (a bar closing at 00:00 ends the day before, as in engine.metrics).

    Returns ``(day_end, day_of_bar, labels)``: the last bar of each calendar day from the
    first bar's day to the last one's (a day without a bar repeats the previous day's last
    bar, like the forward fill of ``engine.metrics.daily_equity``), each bar's day number
    and the days as ``datetime64[D]``.
    """
    day = (np.asarray(close_time_ms, dtype=np.int64) - 1) // 86_400_000
    first = int(day[0])
    rel = day - first
    d = int(rel[-1]) + 1
    last_of = np.full(d, -1, dtype=np.int64)
    last_of[rel] = np.arange(len(rel), dtype=np.int64)  # later bars overwrite earlier ones
    last_of = np.maximum.accumulate(last_of)
    labels = (np.arange(d, dtype=np.int64) + first).astype("datetime64[D]")
    return last_of, rel.astype(np.int64), labels


def chunk_size(n: int, m: int, n_fields: int = 2, cap: int = 256) -> int:
    """Combinations per chunk so their signal arrays stay within :data:`CHUNK_BYTES`."""
    per = max(1, n * m * (2 + 8 * max(0, n_fields - 2)))
    return int(max(1, min(cap, CHUNK_BYTES // per)))


def run_chunk(data: SweepData, combos: list[dict[str, Any]], threads: int = 1) -> ChunkResult:
    """Signals of every parameter set of ``combos`` (on ``threads`` threads), then one
    parallel kernel call. Indicators are shared through ``datasets.indicators.memoized``
    (the caller's memo when one is open, else one for this chunk)."""
    import numba

    from datasets.indicators import memoized_here
    from engine import checks, nb
    from strategies.registry import get

    cls = get(data.strategy)
    bars = data.multibars.bars
    n, m = data.ohlc[0].shape
    k = len(combos)
    entries = np.zeros((k, n, m), dtype=np.int8)
    exits = np.zeros((k, n, m), dtype=np.bool_)
    flags = np.zeros((k, enums.N_FLAGS), dtype=np.int8)
    params = np.empty((k, enums.N_PARAMS), dtype=np.float64)
    act_from = np.empty(k, dtype=np.int64)
    optional: dict[str, np.ndarray | None] = dict.fromkeys(
        ("order_type", "price", "size", "sl", "tp", "trail")
    )
    present_of: list[dict[str, np.ndarray]] = [{} for _ in range(k)]

    def one(i: int) -> None:
        strat = cls(timeframe=data.timeframe, **combos[i])
        sig = checks.prepare_signals(strat.signals(data.multibars), n, m, bars)
        entries[i] = sig["entries"]
        exits[i] = sig["exits"]
        flags[i] = sig["flags"]
        act = max(data.before, int(strat.warmup))
        act_from[i] = act
        params[i] = data.sim_params
        params[i, enums.P_WARMUP] = act
        present_of[i] = {
            name: sig[name] for name, flag in _FIELD_FLAGS.items() if sig["flags"][flag] != 0
        }

    with memoized_here():
        if threads > 1 and k > 1:
            # signal code is numpy and numba (nogil): threads overlap; every thread shares
            # the indicator memo through a copy of this context
            import contextvars
            from concurrent.futures import ThreadPoolExecutor

            ctx = contextvars.copy_context()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda i: ctx.copy().run(one, i), range(k)))
        else:
            for i in range(k):
                one(i)
    for i, present in enumerate(present_of):
        for name, a in present.items():
            if optional[name] is None:
                optional[name] = _filled(name, k, n, m)
            optional[name][i] = a  # type: ignore[index]
    arrays = {name: (a if a is not None else _placeholder(name, k)) for name, a in optional.items()}
    d = data.day_end.shape[0]
    daily = np.empty((k, d), dtype=np.float64)
    final = np.empty(k, dtype=np.float64)
    counters = np.zeros((k, enums.N_COUNTERS), dtype=np.int64)
    nb.simulate_many_nb(
        data.time,
        *data.ohlc,
        entries,
        exits,
        arrays["order_type"],
        arrays["price"],
        arrays["size"],
        arrays["sl"],
        arrays["tp"],
        arrays["trail"],
        flags,
        params,
        np.zeros(0, dtype=enums.fill_dt),
        np.zeros(0, dtype=enums.trade_dt),
        data.day_end,
        daily,
        final,
        counters,
        numba.get_num_threads(),
    )
    return ChunkResult(daily, final, counters, act_from, [dict(c) for c in combos])


_FIELD_FLAGS = {
    "order_type": enums.F_ORDER_TYPE,
    "price": enums.F_PRICE,
    "size": enums.F_SIZE,
    "sl": enums.F_SL,
    "tp": enums.F_TP,
    "trail": enums.F_TRAIL,
}


def _filled(name: str, k: int, n: int, m: int) -> np.ndarray:
    """A full (k, n, m) array of a field's neutral value (MARKET, or NaN = not given)."""
    if name == "order_type":
        return np.zeros((k, n, m), dtype=np.int8)
    return np.full((k, n, m), np.nan)


def _placeholder(name: str, k: int) -> np.ndarray:
    if name == "order_type":
        return np.zeros((k, 1, 1), dtype=np.int8)
    return np.zeros((k, 1, 1), dtype=np.float64)


# -- metrics ---------------------------------------------------------------------------------


def combo_metrics(
    daily: np.ndarray, final: float, counters: np.ndarray, act: int, data: SweepData
) -> tuple[dict[str, float], np.ndarray]:
    """The summary figures of one combination, with ``engine.metrics``' formulas.

    Returns the metrics and the daily returns from the combination's first day.
    """
    from engine import metrics as mt

    first_day = int(data.day_of_bar[act])
    eq = daily[first_day:]
    cash = data.cash
    prev = np.empty_like(eq)
    prev[0] = cash
    prev[1:] = eq[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = eq / prev - 1.0
    rets = np.where(prev != 0.0, rets, 0.0)
    short = len(rets) < mt.MIN_ANNUALISED_DAYS
    nan = math.nan
    depth = _max_drawdown_depth(rets)
    cagr = nan if short else mt.cagr(rets)
    calmar = nan
    if not short and depth != 0.0:
        calmar = cagr / abs(depth)
    n_bars = data.time.shape[0] - act
    out = {
        "total_return": (final / cash - 1.0) if cash else nan,
        "cagr": cagr,
        "volatility": nan if short else mt.volatility(rets),
        "sharpe": nan if short else mt.sharpe(rets),
        "sortino": nan if short else mt.sortino(rets),
        "calmar": calmar,
        "max_drawdown": depth,
        "trades": int(counters[enums.C_TRADES]),
        "exposure": int(counters[enums.C_EXPOSED_BARS]) / n_bars if n_bars else 0.0,
    }
    return out, rets


def _max_drawdown_depth(rets: np.ndarray) -> float:
    """``engine.metrics.max_drawdown(...).depth`` on a plain array (same operations)."""
    r = np.where(np.isnan(rets), 0.0, rets)
    if not len(r):
        return 0.0
    wealth = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    peaks = np.maximum.accumulate(wealth)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, wealth / peaks - 1.0, -1.0)
    depth = float(dd.min())
    return depth if depth < 0.0 else 0.0
