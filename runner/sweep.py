"""Parameter sweeps: many backtests of one strategy, one load of the data, chunked and parallel.

    from gogo2.config import load_settings
    from runner.sweep import run_sweep

    out = run_sweep(load_settings(), strategy="sma_cross", grid=["fast=5:50:5", "slow=20:200:10"],
                    start="2023-01-01")
    out.table.head(), out.dsr, out.pbo

Steps: check every input (grid values against the strategy's Params, ``--trials``,
``--metric``) before loading anything; load the candles once with the longest warm-up any
combination needs; run the combinations in chunks (:mod:`runner.engine_many`) on an
executor (local numba threads, or Ray); compute each combination's metrics with the
backtest's formulas; rank by ``--metric``; compute the deflated Sharpe ratio and the
probability of backtest overfitting (:mod:`runner.stats`); write the results table, a
heatmap and a summary into a folder of the run's own, and a manifest into the run store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gogo2.errors import UserInputError
from runner.grid import GridError, Space, check_trials, parse_grid, random_trials

if TYPE_CHECKING:
    import pandas as pd

    from gogo2.config import Settings

METRICS = ("sharpe", "sortino", "total_return", "cagr", "calmar", "max_drawdown")
SEARCHES = ("grid", "random", "optuna")
EXECUTORS = ("local", "ray")


@dataclass
class SweepOutput:
    table: pd.DataFrame  # one row per combination run: parameters, then metrics; best first
    metric: str
    skipped: int
    skipped_examples: list[str]
    dsr: Any
    pbo: Any
    returns: np.ndarray  # (days, combinations) daily returns on the common days, table order
    request: Any
    data: Any
    timings: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    run_id: str = ""
    synthetic: bool = False
    search: str = "grid"
    seed: int | None = None


def check_choice(flag: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        from gogo2.errors import did_you_mean

        raise UserInputError(
            f"{flag} {value!r} is not one of {', '.join(choices)}.{did_you_mean(value, choices)}"
        )
    return value


def valid_combos(cls: Any, timeframe: str, candidates: list[dict[str, Any]]) -> tuple[list, list]:
    """Split candidate parameter sets into the valid ones and (params, reason) of the rest."""
    ok, skipped = [], []
    for c in candidates:
        try:
            cls(timeframe=timeframe, **c)
        except UserInputError as e:
            skipped.append((c, str(e)))
            continue
        ok.append(c)
    return ok, skipped


def prepare(settings: Settings, req: Any, cls: Any, warmup_strategy: Any) -> Any:
    """Load the candles once (with the longest warm-up) and lay them out for the kernel."""
    from engine import checks
    from engine.backtest import SimConfig
    from gogo2.errors import NoDataError
    from runner.backtest import load_run_data
    from runner.engine_many import SweepData, day_index

    multibars, _ = load_run_data(settings, req, warmup_strategy)
    bars = multibars.bars
    before = int(np.searchsorted(bars.time, req.start, side="left"))
    if before >= bars.n:
        raise NoDataError(
            f"no {req.timeframe} candles of {', '.join(req.symbols)} on {req.exchange} from "
            "--from; the data loaded ends before it. Give an earlier --from."
        )
    ohlc = tuple(checks.check_bars(bars))
    cfg = SimConfig.from_settings(
        settings.backtest,
        cash=req.cash,
        fee_taker=req.fee,
        fee_maker=req.fee,
        slippage_bps=req.slippage_bps,
    )
    day_end, day_of_bar, labels = day_index(bars.close_time)
    return SweepData(
        strategy=req.strategy,
        timeframe=req.timeframe,
        multibars=multibars,
        time=np.ascontiguousarray(bars.time, dtype=np.int64),
        ohlc=ohlc,  # type: ignore[arg-type]
        before=before,
        cash=float(cfg.cash),
        sim_params=cfg.to_params(0, int(bars.tf_ms)),
        day_end=day_end,
        day_of_bar=day_of_bar,
        day_labels=labels,
    )


def run_sweep(
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
    search: str = "grid",
    trials: int | None = None,
    seed: int | None = None,
    executor: str = "local",
    jobs: int | None = None,
    ray_address: str | None = None,
    write: bool = True,
    progress: Callable[[int, int], None] | None = None,
    data: Any = None,
    heatmap: Sequence[str] | None = None,
) -> SweepOutput:
    """Run a sweep; see the module docstring. Raises UserInputError on bad input."""
    from runner.backtest import validate_request

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    check_choice("--metric", metric, METRICS)
    check_choice("--search", search, SEARCHES)
    check_choice("--executor", executor, EXECUTORS)
    if jobs is not None and jobs < 1:
        raise UserInputError(f"--jobs {jobs} must be at least 1, like --jobs 2.")
    if search != "grid":
        trials = check_trials(trials, search)
    elif trials is not None:
        check_trials(trials, "random")  # a --trials 0 is refused whatever the search
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
    if not grid and search != "grid":
        from runner.grid import declared_space

        space: Any = declared_space(cls)  # draw from the strategy's declared bounds
    else:
        space = parse_grid(cls, list(grid))
    if heatmap:
        _check_heatmap(cls, space, heatmap)
    if executor == "ray":
        from runner.executors import require_ray

        require_ray()
    seed_v = 0 if seed is None else int(seed)
    if search == "grid":
        candidates = space.grid()
    elif search == "random" and isinstance(space, Space):
        candidates = random_trials(space, int(trials or 0), seed_v)
    elif search == "random":
        rng = np.random.default_rng(seed_v)
        candidates = [space.draw(rng) for _ in range(int(trials or 0))]
    else:
        candidates = []  # asked for batch by batch below
        from runner.executors import require_optuna

        require_optuna()
    if search != "optuna":
        combos, skipped = valid_combos(cls, req.timeframe, candidates)
        if not combos:
            raise GridError(_none_valid(skipped))
        warm = max(combos, key=lambda c: cls(timeframe=req.timeframe, **c).warmup)
    else:
        combos, skipped = [], []
        warm = _max_warmup_combo(cls, req.timeframe, space)
    timings["plan"] = time.perf_counter() - t0

    t = time.perf_counter()
    if data is None:
        data = prepare(settings, req, cls, cls(timeframe=req.timeframe, **warm))
    _check_warmup_fits(data, cls, req, warm)
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    from runner.executors import make_executor

    ex = make_executor(executor, data, jobs=jobs, address=ray_address)
    try:
        if search == "optuna":
            results, combos, skipped = _optuna(
                ex, data, cls, req, space, trials, seed_v, metric, progress
            )
        else:
            results = ex.run(combos, progress=progress)
    finally:
        ex.close()
    timings["simulate"] = time.perf_counter() - t

    t = time.perf_counter()
    out = summarise(results, combos, data, metric)
    out.skipped = len(skipped)
    out.skipped_examples = [_short_reason(r) for _, r in skipped[:3]]
    out.request = req
    out.search = search
    out.seed = seed if search != "grid" else None
    out.synthetic = bool(getattr(data.multibars.bars, "synthetic", False))
    timings["metrics"] = time.perf_counter() - t
    out.timings = timings
    if write:
        from runner.sweep_outputs import write_sweep

        t = time.perf_counter()
        write_sweep(settings, out, space, executor=executor, jobs=jobs, heatmap_axes=heatmap)
        timings["save"] = time.perf_counter() - t
    return out


def _check_heatmap(cls: Any, space: Any, names: Sequence[str]) -> None:
    names = list(names)
    if len(names) != 2 or names[0] == names[1]:
        raise GridError(
            f"--heatmap {','.join(names)} must name two different parameters, like "
            "--heatmap fast,slow."
        )
    for name in names:
        if name not in space.axes:
            from gogo2.errors import did_you_mean

            raise GridError(
                f"--heatmap parameter {name!r} is not searched in this sweep (searched: "
                f"{', '.join(space.axes)}).{did_you_mean(name, list(space.axes))}"
            )


def _none_valid(skipped: list) -> str:
    why = _short_reason(skipped[0][1]) if skipped else "the grid is empty"
    return (
        f"every combination of the grid breaks a rule of the strategy ({len(skipped)} skipped; "
        f"for example {why}). Change the --grid ranges."
    )


def _short_reason(text: str) -> str:
    return text.split("): ", 1)[-1]


def _max_warmup_combo(cls: Any, timeframe: str, space: Any) -> dict[str, Any]:
    """For a search drawing from ``space``: a valid set with the largest warm-up (every
    grid combination; for declared bounds, the corners where warm-ups grow)."""
    best: dict[str, Any] | None = None
    best_w = -1
    combos = space.grid() if isinstance(space, Space) else space.candidates_for_warmup()
    for combo in combos:
        try:
            w = cls(timeframe=timeframe, **combo).warmup
        except UserInputError:
            continue
        if w > best_w:
            best, best_w = combo, w
    if best is None:
        raise GridError(_none_valid([]))
    return best


def _check_warmup_fits(data: Any, cls: Any, req: Any, warm: dict[str, Any]) -> None:
    w = cls(timeframe=req.timeframe, **warm).warmup
    n = data.time.shape[0]
    if max(data.before, w) >= n - 1:
        raise GridError(
            f"the largest warm-up of the grid ({w:,} {req.timeframe} bars, for "
            f"{', '.join(f'{k}={v}' for k, v in warm.items())}) leaves no bar to trade on in "
            f"the {n:,} bars loaded. Give an earlier --from, a later --to, or smaller values."
        )


def summarise(results: list, combos: list[dict[str, Any]], data: Any, metric: str) -> SweepOutput:
    """Metrics of every combination, ranked by ``metric``; DSR and PBO over the sweep."""
    import pandas as pd

    from runner import stats
    from runner.engine_many import combo_metrics

    rows = []
    series = []
    firsts = []
    for res in results:
        for i in range(res.daily.shape[0]):
            mets, rets = combo_metrics(
                res.daily[i], float(res.final[i]), res.counters[i], int(res.act_from[i]), data
            )
            rows.append({**res.params[i], **mets})
            series.append(rets)
            firsts.append(int(data.day_of_bar[int(res.act_from[i])]))
    table = pd.DataFrame(rows)
    # the common days of every combination (they start on the day of their first bar)
    start = max(firsts) if firsts else 0
    total = data.day_end.shape[0]
    mat = np.empty((total - start, len(series)))
    for j, (rets, first) in enumerate(zip(series, firsts, strict=True)):
        mat[:, j] = rets[start - first :]
    key = table[metric].to_numpy(dtype=np.float64)
    order = np.lexsort((np.arange(len(key)), -np.where(np.isnan(key), -np.inf, key)))
    table = table.iloc[order].reset_index(drop=True)
    mat = mat[:, order]
    srs = stats.per_period_sharpe(mat)
    if len(srs):
        best = int(np.nanargmax(srs)) if np.isfinite(srs).any() else 0
        dsr = stats.deflated_sharpe(mat[:, best], srs, trials=len(srs))
        overfit = stats.pbo(mat)
    else:  # pragma: no cover - a sweep has at least one combination
        dsr = overfit = None
    return SweepOutput(
        table=table,
        metric=metric,
        skipped=0,
        skipped_examples=[],
        dsr=dsr,
        pbo=overfit,
        returns=mat,
        request=None,
        data=data,
    )


def _optuna(ex, data, cls, req, space, trials, seed, metric, progress):
    """TPE over the grid's axes, in batches the executor runs in parallel."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    batch = max(1, 4 * max(1, ex.workers))
    results, combos, skipped = [], [], []
    done = 0
    total = int(trials)
    while done < total:
        asked = []
        for _ in range(min(batch, total - done)):
            tr = study.ask()
            asked.append((tr, _suggest(tr, space)))
        done += len(asked)
        good = []
        for tr, c in asked:
            try:
                cls(timeframe=req.timeframe, **c)
            except UserInputError as e:
                skipped.append((c, str(e)))
                study.tell(tr, state=optuna.trial.TrialState.PRUNED)
                continue
            good.append((tr, c))
        if good:
            res = ex.run([c for _, c in good])
            results.extend(res)
            from runner.engine_many import combo_metrics

            flat = [(r, i) for r in res for i in range(r.daily.shape[0])]
            for (tr, c), (r, i) in zip(good, flat, strict=True):
                mets, _ = combo_metrics(
                    r.daily[i], float(r.final[i]), r.counters[i], int(r.act_from[i]), data
                )
                v = mets[metric]
                study.tell(tr, v if math.isfinite(v) else -1e18)
                combos.append(c)
        if progress is not None:
            progress(done, total)
    if not combos:
        raise GridError(_none_valid(skipped))
    return results, combos, skipped


def _suggest(trial: Any, space: Any) -> dict[str, Any]:
    if not isinstance(space, Space):
        return space.suggest(trial)
    out = {}
    for name, values in space.axes.items():
        step = _arithmetic_step(values)
        if step is not None and isinstance(values[0], int) and not isinstance(values[0], bool):
            out[name] = trial.suggest_int(name, values[0], values[-1], step=int(step))
        elif step is not None and isinstance(values[0], float):
            idx = trial.suggest_int(f"{name}#", 0, len(values) - 1)
            out[name] = values[idx]
        else:
            idx = trial.suggest_categorical(f"{name}#", list(range(len(values))))
            out[name] = values[idx]
    return out


def _arithmetic_step(values: list[Any]) -> float | None:
    if len(values) < 2 or isinstance(values[0], bool | str):
        return None
    diffs = np.diff(np.asarray(values, dtype=np.float64))
    if diffs[0] > 0 and np.allclose(diffs, diffs[0]):
        return float(diffs[0])
    return None
