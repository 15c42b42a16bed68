"""Walk-forward optimisation: choose on a train window, trade on the next test window, repeat.

    out = run_walk_forward(settings, strategy="sma_cross", grid=["fast=5:50:5", "slow=20:200:10"],
                           start="2023-01-01", train="180d", test="30d")

Windows are cut on the base bars from ``--from``: the first test window starts ``--train``
after ``--from``; each next one starts where the previous test window ended, and its train
window is the ``--train`` span just before it (``--anchored``: from ``--from`` to it). A
last test window shorter than ``--test`` is kept.

On each train window every combination of the grid runs (the sweep machinery, any
executor) and the best by ``--metric`` is chosen. It is then traded on the test window:
the run starts flat at the window's first bar and its warm-up bars are the bars just
before the window (inside the train window, never inside the test window); open
positions are closed at the window's end. The test windows' equity curves are chained
(each starts from the previous one's final equity) into one out-of-sample curve, with
its metrics and QuantStats report.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gogo2.errors import UserInputError
from runner.grid import GridError, parse_grid
from runner.sweep import EXECUTORS, METRICS, check_choice, valid_combos

if TYPE_CHECKING:
    import pandas as pd

    from gogo2.config import Settings

_SPAN = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


class WindowError(UserInputError):
    """Walk-forward windows that cannot be cut from the data."""


def parse_span(flag: str, text: str) -> int:
    """``180d`` -> milliseconds (units m, h, d, w)."""
    m = _SPAN.match(str(text))
    if not m or int(m.group(1)) == 0:
        raise WindowError(
            f"{flag} {text!r} is not a length of time: write a whole number and a unit "
            "(m, h, d or w), like 180d or 12w."
        )
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


@dataclass
class Window:
    index: int
    train: tuple[int, int]  # bar indices [a, b) of the loaded data
    test: tuple[int, int]
    warmup_from: int = 0  # first bar index the test run loads (its warm-up comes before test[0])
    params: dict[str, Any] = field(default_factory=dict)
    in_sample: dict[str, Any] = field(default_factory=dict)
    out_of_sample: dict[str, Any] = field(default_factory=dict)
    combos: int = 0


@dataclass
class WalkForwardOutput:
    windows: list[Window]
    equity: pd.Series  # stitched out-of-sample equity, by bar close time
    metrics: Any
    stability: dict[str, Any]
    request: Any
    data: Any
    metric: str
    skipped: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    run_id: str = ""
    synthetic: bool = False


def cut_windows(
    close_time: np.ndarray,
    time_: np.ndarray,
    first: int,
    train_ms: int,
    test_ms: int,
    anchored: bool,
) -> list[Window]:
    """Train/test windows over bars ``first..``; see the module docstring."""
    t0 = int(time_[first])
    t_end = int(close_time[-1])
    out = []
    test_start = t0 + train_ms
    while test_start < t_end:
        test_stop = min(test_start + test_ms, t_end)
        a = int(np.searchsorted(time_, test_start, side="left"))
        b = int(np.searchsorted(time_, test_stop, side="left"))
        train_from = t0 if anchored else test_start - train_ms
        ta = int(np.searchsorted(time_, train_from, side="left"))
        if b > a and a > ta:
            out.append(Window(len(out), (ta, a), (a, b)))
        test_start = test_stop
    return out


def _sub(data: Any, lo: int, hi: int, first: int) -> Any:
    """The sweep data restricted to bars ``[lo, hi)``, trading from bar ``first``."""
    from dataclasses import replace

    from datasets.bars import MultiBars
    from runner.engine_many import day_index

    mb = data.multibars
    base = mb.bars.slice(lo, hi)
    frames = {mb.base: base}
    for tf, b in mb.frames.items():
        if tf == mb.base:
            continue
        step = b.tf_ms
        start = int(base.time[0]) - int(base.time[0]) % step
        a = int(np.searchsorted(b.time, start, side="left"))
        z = int(np.searchsorted(b.close_time, base.close_time[-1], side="right"))
        frames[tf] = b.slice(a, max(a, z))
    sub_mb = MultiBars(mb.base, frames)
    day_end, day_of_bar, labels = day_index(base.close_time)
    return replace(
        data,
        multibars=sub_mb,
        time=data.time[lo:hi].copy(),
        ohlc=tuple(np.ascontiguousarray(a[lo:hi]) for a in data.ohlc),
        before=first - lo,
        day_end=day_end,
        day_of_bar=day_of_bar,
        day_labels=labels,
    )


def run_walk_forward(
    settings: Settings,
    *,
    strategy: str | None,
    grid: Sequence[str],
    start: str | int | None,
    end: str | int | None = None,
    symbols: str | Sequence[str] | None = None,
    timeframe: str | None = None,
    exchange: str | None = None,
    cash: Any = None,
    fee: Any = None,
    slippage: Any = None,
    metric: str = "sharpe",
    train: str = "180d",
    test: str = "30d",
    anchored: bool = False,
    executor: str = "local",
    jobs: int | None = None,
    ray_address: str | None = None,
    report: bool = True,
    write: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> WalkForwardOutput:
    from runner.backtest import validate_request
    from runner.executors import make_executor
    from runner.sweep import _check_warmup_fits, prepare, summarise

    timings: dict[str, float] = {}
    t = time.perf_counter()
    check_choice("--metric", metric, METRICS)
    check_choice("--executor", executor, EXECUTORS)
    if jobs is not None and jobs < 1:
        raise UserInputError(f"--jobs {jobs} must be at least 1, like --jobs 2.")
    train_ms = parse_span("--train", train)
    test_ms = parse_span("--test", test)
    req, cls = validate_request(
        settings,
        start=start,
        end=end,
        symbols=symbols,
        timeframe=timeframe,
        strategy=strategy,
        params={},
        cash=cash,
        fee=fee,
        slippage=slippage,
        exchange=exchange,
    )
    space = parse_grid(cls, list(grid))
    if executor == "ray":
        from runner.executors import require_ray

        require_ray()
    combos, skipped = valid_combos(cls, req.timeframe, space.grid())
    if not combos:
        from runner.sweep import _none_valid

        raise GridError(_none_valid(skipped))
    warmups = {i: cls(timeframe=req.timeframe, **c).warmup for i, c in enumerate(combos)}
    widest = combos[max(warmups, key=warmups.__getitem__)]
    max_warm = max(warmups.values())
    from gogo2.timeframes import timeframe_ms

    tf_ms = timeframe_ms(req.timeframe)
    if train_ms // tf_ms <= max_warm:
        raise WindowError(
            f"--train {train} holds {train_ms // tf_ms:,} {req.timeframe} bars, not more than "
            f"the warm-up of the grid ({max_warm:,} bars, for "
            f"{', '.join(f'{k}={v}' for k, v in widest.items())}): the test windows' warm-up "
            "would reach back past their train windows. Give a longer --train or a smaller grid."
        )
    timings["plan"] = time.perf_counter() - t

    t = time.perf_counter()
    data = prepare(settings, req, cls, cls(timeframe=req.timeframe, **widest))
    _check_warmup_fits(data, cls, req, widest)
    bars = data.multibars.bars
    span = int(bars.close_time[-1]) - int(bars.time[data.before])
    if test_ms > span or train_ms + test_ms > span:
        days = span / 86_400_000
        what = f"--test {test}" if test_ms > span else f"--train {train} plus --test {test}"
        raise WindowError(
            f"{what} is longer than the data: {days:.1f} days of {req.timeframe} candles from "
            "--from. Give shorter windows, an earlier --from or a later --to."
        )
    windows = cut_windows(bars.close_time, bars.time, data.before, train_ms, test_ms, anchored)
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    ex = make_executor(executor, None, jobs=jobs, address=ray_address)
    pieces = []
    try:
        for w in windows:
            ta, tb = w.train
            lo = max(0, ta - max_warm)
            train_data = _sub(data, lo, tb, ta)
            ex.set_data(train_data)
            ins = summarise(ex.run(combos), combos, train_data, metric)
            w.params = {k: _plain(ins.table[k].iloc[0]) for k in space.axes}
            w.in_sample = {
                k: _plain(ins.table[k].iloc[0]) for k in ins.table.columns if k not in space.axes
            }
            w.combos = len(ins.table)
            piece = _trade_window(settings, req, cls, data, w)
            w.out_of_sample = piece[1]
            pieces.append(piece)
            if progress is not None:
                progress(w.index + 1, len(windows))
    finally:
        ex.close()
    timings["windows"] = time.perf_counter() - t

    t = time.perf_counter()
    equity, trades, exposed, fees = _stitch(pieces, data.cash)
    from engine.metrics import compute_metrics

    first_time = int(bars.time[windows[0].test[0]])
    import pandas as pd

    metrics = compute_metrics(
        equity,
        trades,
        initial=data.cash,
        exposure=exposed / len(equity) if len(equity) else math.nan,
        fees_paid=fees,
        start=pd.Timestamp(first_time, unit="ms", tz="UTC"),
    )
    out = WalkForwardOutput(
        windows=windows,
        equity=equity,
        metrics=metrics,
        stability=stability(windows, list(space.axes)),
        request=req,
        data=data,
        metric=metric,
        skipped=len(skipped),
        synthetic=bool(getattr(bars, "synthetic", False)),
    )
    timings["metrics"] = time.perf_counter() - t
    out.timings = timings
    if write:
        from runner.walkforward_outputs import write_walk_forward

        t = time.perf_counter()
        write_walk_forward(
            settings, out, space, report=report, anchored=anchored, train=train, test=test
        )
        timings["save"] = time.perf_counter() - t
    return out


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _trade_window(settings: Any, req: Any, cls: Any, data: Any, w: Window) -> tuple:
    """Run the chosen parameters on the test window; warm-up from the bars before it."""
    from engine.backtest import SimConfig, simulate
    from engine.metrics import from_result

    strat = cls(timeframe=req.timeframe, **w.params)
    a, b = w.test
    lo = max(0, a - int(strat.warmup))
    w.warmup_from = lo
    sub = _sub(data, lo, b, a)
    cfg = SimConfig.from_settings(
        settings.backtest,
        cash=req.cash,
        fee_taker=req.fee,
        fee_maker=req.fee,
        slippage_bps=req.slippage_bps,
    )
    result = simulate(sub.multibars, strat.signals(sub.multibars), cfg, warmup=a - lo)
    m = from_result(result)
    eq = result.equity.iloc[a - lo :]
    keep = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "trades", "exposure")
    d = m.as_dict()
    return eq, {k: _plain(d[k]) for k in keep}, result


def _stitch(pieces: list, cash: float) -> tuple:
    """Chain the windows' equity: each starts from the previous window's final equity.

    Returns the stitched equity, the trades (money columns scaled like the equity),
    the bars with a position and the fees, all in the stitched curve's money.
    """
    import pandas as pd

    curves, trades = [], []
    capital = cash
    exposed = 0
    fees = 0.0
    for eq, _, result in pieces:
        factor = capital / cash
        curves.append(eq * factor)
        tr = result.trades.copy()
        for col in ("pnl", "fees", "size"):
            if col in tr:
                tr[col] = tr[col] * factor
        trades.append(tr)
        exposed += int(result.exposed_bars)
        fees += float(result.fees_paid) * factor
        capital = float(curves[-1].iloc[-1])
    equity = pd.concat(curves) if curves else pd.Series(dtype="float64")
    return equity, (pd.concat(trades, ignore_index=True) if trades else None), exposed, fees


def stability(windows: list[Window], names: list[str]) -> dict[str, Any]:
    """How steady the choice is: share of windows keeping the previous choice, and per
    parameter the distinct values chosen and (numeric) their relative spread."""
    if not windows:
        return {}
    kept = sum(1 for p, q in itertools.pairwise(windows) if p.params == q.params)
    out: dict[str, Any] = {
        "same_as_previous": kept / (len(windows) - 1) if len(windows) > 1 else math.nan
    }
    for name in names:
        vals = [w.params[name] for w in windows]
        entry: dict[str, Any] = {"distinct": len(set(vals))}
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            arr = np.asarray(vals, dtype=float)
            mean = float(arr.mean())
            entry["spread"] = float(arr.std() / abs(mean)) if mean else math.nan
        out[name] = entry
    return out


def print_walk_forward(console: Any, out: WalkForwardOutput) -> None:
    from rich.table import Table

    from engine.metrics import fmt_num, fmt_pct, summary_table
    from gogo2.timeframes import format_time

    req = out.request
    bars = out.data.multibars.bars
    title = f"Walk-forward of {req.strategy} on {', '.join(req.symbols)} {req.timeframe}"
    if out.synthetic:
        title += " - SYNTHETIC DATA"
    table = Table(title=title)
    for c in (
        "window",
        "test period",
        "parameters",
        f"IS {out.metric}",
        f"OOS {out.metric}",
        "OOS return",
        "trades",
    ):
        table.add_column(c)
    for w in out.windows:
        a, b = w.test
        table.add_row(
            str(w.index + 1),
            f"{format_time(int(bars.time[a]))[:10]} -> {format_time(int(bars.close_time[b - 1]))[:10]}",
            " ".join(f"{k}={v}" for k, v in w.params.items()),
            fmt_num(w.in_sample.get(out.metric, math.nan)),
            fmt_num(w.out_of_sample.get(out.metric, math.nan)),
            fmt_pct(w.out_of_sample["total_return"]),
            str(w.out_of_sample["trades"]),
        )
    console.print(table)
    st = out.stability
    parts = [
        f"same choice as the window before: {fmt_pct(st.get('same_as_previous', math.nan), 0)}"
    ]
    for k, v in st.items():
        if isinstance(v, dict):
            spread = f", spread {fmt_pct(v['spread'], 0)}" if "spread" in v else ""
            parts.append(f"{k}: {v['distinct']} distinct{spread}")
    console.print("stability: " + "; ".join(parts), markup=False, soft_wrap=True)
    console.print(summary_table(out.metrics, [("curve", "out of sample, stitched")], title=None))
    if out.synthetic:
        console.print("data: SYNTHETIC (generated sample, not market data)", markup=False)
    if out.run_dir is not None:
        console.print(f"run: {out.run_dir}", markup=False, soft_wrap=True)
        console.print(
            f"files: {' '.join(p.name for p in out.files.values())}", markup=False, soft_wrap=True
        )
    if out.run_id:
        console.print(f"run store id: {out.run_id}", markup=False)
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in out.timings.items())
    console.print(f"time: {phases}", markup=False, soft_wrap=True)
