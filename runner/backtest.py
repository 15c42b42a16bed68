"""The Python API behind ``cli.py backtest``: one call from settings to report.

    from gogo2.config import load_settings
    from runner.backtest import run_backtest

    out = run_backtest(load_settings(), start="2023-01-01", end="2023-02-01",
                       strategy="sma_cross", params=["fast=10", "slow=50"])
    out.metrics.sharpe, out.report_path, out.timings

Steps (each timed in ``RunOutput.timings``):

1. **validate** every input before touching data: dates (``--from`` before
   ``--to``), numbers (cash > 0, 0 <= fee < 0.1, 0 <= slippage < 1000 bps),
   timeframe, symbols, strategy name and parameters. Bad input raises a
   :class:`~gogo2.errors.UserInputError` naming the flag, the value and the fix.
2. **load**: the embedded synthetic sample is generated into the catalog when
   the exchange is ``"synthetic"`` and it is missing; then the strategy loader
   reads the base timeframe and the strategy's informative timeframes.
3. **signals**: ``strategy.signals(multibars)``.
4. **simulate**: :func:`engine.backtest.simulate` with the configured costs.
5. **metrics**: :func:`engine.metrics.compute_metrics` on the curve from ``--from`` on.
6. **report**: QuantStats tearsheet against equal-weight buy-and-hold
   (:mod:`engine.report`).
7. **save**: the trades (CSV), the equity curve (Parquet) and the metrics with
   the run's inputs (JSON), with the report, in a folder of the run's own (see
   :mod:`engine.outputs`). Output paths are checked before step 2, so a path that
   cannot be written fails at once; every file is written to a temporary name
   and moved into place, so an interrupted run never leaves a half-written file.

Warm-up: the loader also reads the strategy's warm-up bars *before* ``--from``
(when stored), the engine places no order on them, and the metrics, report and
saved curve start at the first bar whose decision can act: ``--from`` when
enough history is stored before it, else the bar after the warm-up (the summary
then shows the requested and the actual period, with a warning). A warm-up that
leaves no bar to trade on is an error.

``--to`` is exclusive on candle open time (``--to 2023-01-15`` ends with the
candle opened at 2023-01-14 23:59 on 1m). Without ``--to`` the run goes to the
end of the stored data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gogo2.clikit import parse_symbols
from gogo2.errors import UserInputError
from gogo2.timeframes import normalize, parse_time

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from datasets.bars import Bars, MultiBars
    from engine.metrics import Metrics
    from gogo2.config import Settings

SAMPLE_EXCHANGE = "synthetic"
MAX_FEE = 0.1
MAX_SLIPPAGE_BPS = 1000.0


@dataclass
class RunRequest:
    """The validated inputs of one run (what the user asked for, resolved against settings)."""

    strategy: str
    params: dict[str, Any]
    symbols: tuple[str, ...]
    timeframe: str
    exchange: str
    start: int
    end: int | None
    cash: float
    fee: float | None
    slippage_bps: float | None


@dataclass
class RunOutput:
    """Everything a backtest run produced.

    Attributes
    ----------
    request : RunRequest
        The validated inputs.
    bars : datasets.bars.Bars
        The base-timeframe bars from ``--from`` on (the reported period).
    result : engine.backtest.BacktestResult
        Equity, trades, fills, positions, config.
    metrics : engine.metrics.Metrics
    synthetic : bool
        True when any of the data is the generated sample (not market data).
    sample_generated : bool
        True when this run had to generate the embedded sample first.
    report_path, trades_path, equity_path, metrics_path : Path or None
        Files written (None when not asked for).
    warmup : int
        Bars before the reported period (loaded before ``--from``, plus any warm-up the
        strategy still needed after it); no order is placed on them.
    strategy_warmup : int
        Bars the strategy needs before its first decision (``strategy.warmup``).
    strategy_params : dict
        Every parameter of the strategy as run, defaults included.
    equity, positions : pandas objects
        The engine's equity curve and positions from ``--from`` on (what the metrics,
        the report and the saved files use).
    timings : dict[str, float]
        Seconds spent per phase: load, signals, simulate, metrics, report, save.
    data_start : int or None
        Open time (UTC ms) of the first candle loaded, warm-up included.
    run_id : str
        Short hash of everything that shapes the result (part of the output folder's name).
    warnings : list of str
        Differences between the period asked for and the period run, with their cause.
    run_dir : Path or None
        The run's output folder (None with an explicit ``--report FILE`` or no files).
    data : datasets.bars.MultiBars or None
        Every timeframe as loaded, warm-up included (what the strategy saw).
    """

    request: RunRequest
    bars: Bars
    result: Any
    metrics: Metrics
    synthetic: bool
    sample_generated: bool = False
    report_path: Path | None = None
    trades_path: Path | None = None
    equity_path: Path | None = None
    metrics_path: Path | None = None
    warmup: int = 0
    strategy_warmup: int = 0
    strategy_params: dict[str, Any] = field(default_factory=dict)
    equity: pd.Series | None = None
    positions: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)
    data_start: int | None = None
    run_id: str = ""
    warnings: list[str] = field(default_factory=list)
    run_dir: Path | None = None
    strategy_report: dict[str, Any] = field(default_factory=dict)
    data: MultiBars | None = None

    @property
    def actual_range(self) -> tuple[int, int]:
        """First reported candle's open and last candle's close, UTC ms."""
        if self.bars.n == 0:
            return (self.request.start, self.request.start)
        return int(self.bars.time[0]), int(self.bars.close_time[-1])

    @property
    def period(self) -> tuple[str, str]:
        """First candle's open and last candle's close, as UTC text."""
        from gogo2.timeframes import format_time

        if self.bars.n == 0:
            return ("-", "-")
        return format_time(int(self.bars.time[0])), format_time(int(self.bars.close_time[-1]))

    def header_rows(self) -> list[tuple[str, str]]:
        """Rows describing the run, shown above the metrics in the summary table."""
        from gogo2.timeframes import format_time

        r = self.request
        params = " ".join(f"{k}={_param_text(v)}" for k, v in self.params_shown().items())
        first, last = self.period
        asked_end = format_time(r.end) if r.end is not None else "end of data"
        rows = [
            ("strategy", r.strategy),
            *([("parameters", params)] if params else []),
            ("symbols", ", ".join(r.symbols)),
            ("exchange", r.exchange + (" (SYNTHETIC)" if self.synthetic else "")),
            ("timeframe", r.timeframe),
            ("requested", f"{format_time(r.start)} -> {asked_end}"),
            ("period", f"{first} -> {last}"),
            (
                "bars",
                f"{self.bars.n:,}" + (f" (+{self.warmup:,} warm-up before)" if self.warmup else ""),
            ),
            (
                "costs",
                f"fee {self.result.config.fee_taker * 100:g} % taker, "
                f"{self.result.config.fee_maker * 100:g} % maker; "
                f"slippage {self.result.config.slippage_bps:g} bps",
            ),
        ]
        rejected = int(getattr(self.result, "rejected", 0) or 0)
        if rejected:
            rows.append(
                ("orders not placed", f"{rejected:,} (below min notional or no buying power)")
            )
        expired = int(getattr(self.result, "expired", 0) or 0)
        if expired:
            rows.append(
                ("market entries expired", f"{expired:,} (no candle of the symbol at the next bar)")
            )
        halted = getattr(self.result, "halted_bar", None)
        if halted is not None:
            from gogo2.timeframes import format_time

            when = format_time(int(self.result.time[halted]) + int(self.result.tf_ms))
            rows.append(("halted", f"equity fell to 0 at {when}; trading stopped"))
        return rows

    def params_shown(self) -> dict[str, Any]:
        """Every parameter of the strategy as run (defaults included)."""
        return dict(self.strategy_params or self.request.params)


def _param_text(v: Any) -> str:
    """``0.005`` -> ``0.005``, ``0.0`` -> ``0``, ``True`` -> ``True``: short and exact."""
    if isinstance(v, float):
        return f"{v:g}" if float(f"{v:g}") == v else repr(v)
    return str(v)


# -- validation ----------------------------------------------------------------------------------


def _check_range(name: str, value: float, lo: float, hi: float | None, fix: str) -> float:
    if not math.isfinite(value) or value < lo or (hi is not None and value >= hi):
        upper = f" and below {hi:g}" if hi is not None else ""
        raise UserInputError(
            f"{name} {value:g} is out of range: it must be >= {lo:g}{upper}. {fix}"
        )
    return value


def validate_request(
    settings: Settings,
    *,
    start: str | int | None,
    end: str | int | None = None,
    symbols: str | Sequence[str] | None = None,
    timeframe: str | None = None,
    strategy: str | None = None,
    params: Sequence[str] | dict[str, Any] | None = None,
    cash: float | str | None = None,
    fee: float | str | None = None,
    slippage: float | str | None = None,
    exchange: str | None = None,
) -> tuple[RunRequest, Any]:
    """Check and resolve every input; return the request and the strategy class.

    Raises
    ------
    UserInputError
        (or a subclass) naming the flag, the value and the fix.
    """
    from gogo2.clikit import parse_number

    bt = settings.backtest
    if start is None:
        raise UserInputError("--from is required: give the first day to test, like 2023-01-01.")
    t0 = parse_time(start, "--from")
    t1 = parse_time(end, "--to")
    assert t0 is not None
    if t1 is not None and t0 >= t1:
        raise UserInputError(
            f"--from {start} is not before --to {end}. Give a start earlier than the end "
            "(--to is exclusive)."
        )
    tf = normalize(timeframe) if timeframe is not None else None
    syms = parse_symbols(symbols, bt.symbols)
    exch = (exchange or settings.data.exchange).strip()
    if not exch:
        raise UserInputError(
            "--exchange is empty. Give an exchange name, like binance or synthetic."
        )

    cash_v = parse_number("--cash", cash) if isinstance(cash, str) else cash
    cash_v = bt.cash if cash_v is None else float(cash_v)
    if not math.isfinite(cash_v) or cash_v <= 0:
        raise UserInputError(f"--cash {cash_v:g} must be a positive amount, like 10000.")
    fee_v = parse_number("--fee", fee) if isinstance(fee, str) else fee
    if fee_v is not None:
        fee_v = _check_range(
            "--fee", float(fee_v), 0.0, MAX_FEE, "It is a fraction: 0.001 means 0.1 %."
        )
    slip_v = parse_number("--slippage", slippage) if isinstance(slippage, str) else slippage
    if slip_v is not None:
        slip_v = _check_range(
            "--slippage",
            float(slip_v),
            0.0,
            MAX_SLIPPAGE_BPS,
            "It is in basis points: 2 means 0.02 %.",
        )

    from strategies.base import parse_params
    from strategies.registry import get as get_strategy

    name = strategy or bt.strategy
    cls = get_strategy(name)
    if tf is None:
        # the config's timeframe belongs to the config's strategy; another strategy picked
        # with --strategy runs on its own declared base timeframe
        tf = bt.timeframe if name == bt.strategy else normalize(cls.base_timeframe)
    if isinstance(params, dict):
        param_values = dict(params)
    else:
        param_values = parse_params(cls, list(params or []))
    req = RunRequest(
        strategy=name,
        params=param_values,
        symbols=syms,
        timeframe=tf,
        exchange=exch,
        start=t0,
        end=t1,
        cash=cash_v,
        fee=fee_v,
        slippage_bps=slip_v,
    )
    return req, cls


# -- the run -------------------------------------------------------------------------------------


def load_run_data(
    settings: Settings, req: RunRequest, strategy: Any, console: Any = None
) -> tuple[MultiBars, bool]:
    """The candles of ``req`` for ``strategy``, with its warm-up before ``req.start`` when the
    catalog holds it (else from ``req.start``, so a no-data error names the range asked for).

    The embedded sample is generated first when ``req`` reads it; the flag says whether it was.
    """
    from datasets.catalog import Catalog
    from gogo2.errors import NoDataError
    from strategies.loader import load_strategy_data

    catalog = Catalog(settings.data.path)
    generated = False
    if req.exchange == SAMPLE_EXCHANGE:
        from datasets.synthetic import ensure_sample

        generated = bool(ensure_sample(catalog, settings.data.sample_seed, console=console))

    def load(warmup: bool) -> MultiBars:
        return load_strategy_data(
            catalog,
            strategy,
            list(req.symbols),
            req.start,
            req.end,
            req.exchange,
            base_timeframe=req.timeframe,
            warmup=warmup,
        )

    try:
        return load(True), generated
    except NoDataError:
        return load(False), generated


def run_backtest(
    settings: Settings,
    *,
    start: str | int | None,
    end: str | int | None = None,
    symbols: str | Sequence[str] | None = None,
    timeframe: str | None = None,
    strategy: str | None = None,
    params: Sequence[str] | dict[str, Any] | None = None,
    cash: float | str | None = None,
    fee: float | str | None = None,
    slippage: float | str | None = None,
    exchange: str | None = None,
    report: str | Path | bool | None = None,
    save: bool = True,
    console: Console | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunOutput:
    """Run one backtest from settings and flags; write the report and the result files.

    Parameters
    ----------
    settings : gogo2.config.Settings
        Defaults for every flag (``settings.backtest``) and the catalog root (``settings.data``).
    start, end : str or int
        ``--from`` (inclusive) and ``--to`` (exclusive) as dates or UTC ms; ``end=None``
        runs to the end of the stored data.
    symbols : str or sequence of str, optional
        ``"BTC/USDT,ETH/USDT"`` or a list; default ``settings.backtest.symbols``.
    timeframe, strategy, exchange : str, optional
        Base timeframe, strategy name, catalog exchange; defaults from settings. Without
        ``timeframe``, the config's timeframe is used for the config's strategy and a
        strategy's own ``base_timeframe`` for any other strategy.
    params : list of "k=v" or dict, optional
        Strategy parameters (checked by the strategy).
    cash, fee, slippage : float or str, optional
        Initial cash; fee rate applied to maker and taker fills (fraction); slippage in bps.
    report : str, Path, bool or None
        HTML path (the other files go beside it, see :mod:`engine.outputs`); None or True =
        a folder of its own under ``backtest.report_dir``; False = no HTML.
    save : bool
        Write trades (CSV), equity (Parquet) and metrics (JSON) with the report.
    console : rich.console.Console, optional
        Where the sample-generation notice goes.
    progress : callable, optional
        Called with a short text before each phase.

    Returns
    -------
    RunOutput

    Raises
    ------
    UserInputError
        Bad flags, unknown strategy/parameter/symbol/exchange, an output path that cannot
        or must not be written (checked before any data is read), no data in the range, or
        a warm-up that covers all the data.
    """
    from engine import outputs

    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    req, cls = validate_request(
        settings,
        start=start,
        end=end,
        symbols=symbols,
        timeframe=timeframe,
        strategy=strategy,
        params=params,
        cash=cash,
        fee=fee,
        slippage=slippage,
        exchange=exchange,
    )
    strat = cls(timeframe=req.timeframe, **req.params)
    if hasattr(strat, "settings"):  # a strategy that reads the config (ml: models.dir)
        strat.settings = settings
    if hasattr(strat, "log_warnings"):  # its warnings are shown with the run's own, once
        strat.log_warnings = False

    # the outputs are checked before anything is computed: a bad path fails in a second,
    # not after the whole run
    want_html = report is not False
    explicit: Path | None = None
    report_dir = _report_dir(settings)
    if want_html or save:
        if report is None or isinstance(report, bool):
            outputs.check_dir_target(report_dir, "backtest.report_dir")
        else:
            explicit = _absolute(Path(report))
            outputs.check_plan(outputs.explicit_plan(explicit, html=want_html, save=save))

    say("loading data")
    import numpy as np

    from gogo2.errors import DataError, NoDataError

    t = time.perf_counter()
    multibars, generated = load_run_data(settings, req, strat, console=console)
    full = multibars.bars
    # history loaded before --from only warms the indicators up: no order is placed on it
    before = int(np.searchsorted(full.time, req.start, side="left"))
    if before >= full.n:
        raise NoDataError(
            f"no {req.timeframe} candles of {', '.join(req.symbols)} on {req.exchange} "
            f"from --from {_date_text(req.start)}; the data loaded ends before it."
        )
    strategy_warmup = int(getattr(strat, "warmup", 0) or 0)
    # the first bar whose decision can act: after --from and after the strategy's warm-up;
    # the reported curve, the metrics and the files start there
    act_from = max(before, strategy_warmup)
    if strategy_warmup > before and act_from >= full.n - 1:
        from gogo2.timeframes import format_time

        held = f"{before:,} of them before --from, " if before else ""
        raise DataError(
            f"strategy {req.strategy} needs {strategy_warmup:,} {req.timeframe} bars of warm-up "
            f"before its first decision, but only {full.n:,} {req.timeframe} bars are available "
            f"({held}{format_time(int(full.time[0]))} -> "
            f"{format_time(int(full.close_time[-1]))}), which leaves no bar to trade on. "
            "Give an earlier --from (or a later --to), or load more data."
        )
    timings["load"] = time.perf_counter() - t

    say("computing signals")
    t = time.perf_counter()
    signals = strat.signals(multibars)
    timings["signals"] = time.perf_counter() - t

    say("simulating")
    from engine.backtest import SimConfig, simulate

    t = time.perf_counter()
    cfg = SimConfig.from_settings(
        settings.backtest,
        cash=req.cash,
        fee_taker=req.fee,
        fee_maker=req.fee,
        slippage_bps=req.slippage_bps,
    )
    result = simulate(full, signals, cfg, warmup=act_from)
    timings["simulate"] = time.perf_counter() - t

    from engine.metrics import from_result
    from engine.report import buy_and_hold_equity

    t = time.perf_counter()
    bars = full.slice(act_from, full.n) if act_from else full
    metrics = from_result(
        result,
        extra={"buy_and_hold_return": float(buy_and_hold_equity(bars, 1.0).iloc[-1] - 1.0)},
    )
    timings["metrics"] = time.perf_counter() - t

    synthetic = bool(getattr(bars, "synthetic", False) or getattr(result, "synthetic", False))
    out = RunOutput(
        request=req,
        bars=bars,
        result=result,
        metrics=metrics,
        synthetic=synthetic,
        sample_generated=generated,
        warmup=act_from,
        strategy_warmup=strategy_warmup,
        strategy_params=dict(strat.params),
        equity=result.equity.iloc[act_from:],
        positions=result.positions.iloc[act_from:],
        timings=timings,
        data_start=int(full.time[0]),
        data=multibars,
    )
    out.run_id = outputs.fingerprint(_run_inputs(out))
    out.warnings = _range_warnings(out, before)
    # what a strategy has to say about its own run (ml: in-sample models, weights, hit rates)
    out.warnings += [str(w) for w in getattr(strat, "warnings", None) or []]
    out.strategy_report = dict(getattr(strat, "report", None) or {})

    if want_html or save:
        write_run_outputs(out, report_dir, explicit, html=want_html, save=save, progress=say)
    return out


def write_run_outputs(
    out: RunOutput,
    report_dir: Path,
    explicit: Path | None,
    *,
    html: bool,
    save: bool,
    progress: Callable[[str], None] | None = None,
    prefix: str = "",
    extra: dict[Path, Callable[[Path], None]] | None = None,
) -> None:
    """Write the report, trades, equity and metrics of a finished run (backtest or paper).

    ``explicit`` is an HTML path (the others beside it), else a folder of the run's own under
    ``report_dir`` named from ``prefix + strategy``; ``extra`` maps more file names (inside
    the run folder) to writers. Every file goes through :func:`engine.outputs.write_all`
    (temporary name, then moved into place).
    """
    from engine import outputs

    say = progress or (lambda _msg: None)
    req = out.request
    timings = out.timings
    want_html = html
    if explicit is not None:
        plan = outputs.explicit_plan(explicit, html=want_html, save=save)
    else:
        first, last = out.actual_range
        name = outputs.run_dir_name(
            prefix + req.strategy,
            req.timeframe,
            req.symbols,
            _date_text(first),
            _date_text(last),
            out.run_id,
        )
        plan = outputs.run_dir_plan(report_dir, name, html=want_html, save=save)
    outputs.check_plan(plan)
    writers: dict[Path, Callable[[Path], None]] = {}
    if plan.html is not None:
        say("writing the report")
        writers[plan.html] = _timed(timings, "report", lambda p: _write_report(out, p))
    if save:
        assert plan.trades and plan.equity and plan.metrics
        writers[plan.trades] = _timed(timings, "save", lambda p: _write_trades(out, p))
        writers[plan.equity] = _timed(timings, "save", lambda p: _write_equity(out, p))
        writers[plan.metrics] = _timed(timings, "save", lambda p: _write_metrics(out, p))
    if extra:
        folder = plan.run_dir if plan.run_dir is not None else (plan.trades or plan.html).parent
        for name, write in extra.items():
            writers[folder / name] = write
    outputs.write_all(plan, writers)
    out.report_path, out.trades_path = plan.html, plan.trades
    out.equity_path, out.metrics_path = plan.equity, plan.metrics
    out.run_dir = plan.run_dir


def _timed(
    timings: dict[str, float], phase: str, write: Callable[[Path], Any]
) -> Callable[[Path], None]:
    def run(path: Path) -> None:
        t = time.perf_counter()
        try:
            write(path)
        finally:
            timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - t

    return run


# -- outputs -------------------------------------------------------------------------------------


def _date_text(ms: int) -> str:
    """``2023-01-01`` at midnight, else ``2023-01-03T0300`` (for file names)."""
    import pandas as pd

    ts = pd.Timestamp(int(ms), unit="ms", tz="UTC")
    if ts == ts.normalize():
        return ts.strftime("%Y-%m-%d")
    return ts.strftime("%Y-%m-%dT%H%M")


def _title_time(ms: int) -> str:
    """``2023-01-01`` at midnight, else ``2023-01-03 03:00`` (for titles)."""
    from gogo2.timeframes import format_time

    text = format_time(int(ms))
    return text[:10] if text.endswith(" 00:00") else text


def _absolute(path: Path) -> Path:
    return path if path.is_absolute() else Path.cwd() / path


def _report_dir(settings: Settings) -> Path:
    return _absolute(Path(settings.backtest.report_dir))


def _run_inputs(out: RunOutput) -> dict[str, Any]:
    """Everything that shapes the result, for the run's short hash."""
    from dataclasses import asdict, is_dataclass

    r = out.request
    cfg = out.result.config
    first, last = out.actual_range
    return {
        "strategy": r.strategy,
        "params": out.params_shown(),
        "symbols": list(r.symbols),
        "timeframe": r.timeframe,
        "exchange": r.exchange,
        "first": first,
        "last": last,
        "config": asdict(cfg) if is_dataclass(cfg) else repr(cfg),
    }


def _range_warnings(out: RunOutput, before: int) -> list[str]:
    """Say when the period run differs from the one asked for, and why."""
    from gogo2.timeframes import format_time

    r = out.request
    first, last = out.actual_range
    notes: list[str] = []
    if first != r.start:
        why = []
        if out.data_start is not None and out.data_start > r.start:
            why.append(f"the first stored candle opens at {format_time(out.data_start)}")
        if out.warmup > before:
            why.append(
                f"{r.strategy} needs {out.strategy_warmup:,} bars of warm-up before its first "
                "decision"
            )
        because = "; ".join(why) or "no candle opens at --from"
        notes.append(
            f"--from {format_time(r.start)} was asked for, but the run starts at "
            f"{format_time(first)}: {because}. Give an earlier --from to cover the period."
        )
    if r.end is not None and last < r.end:
        notes.append(
            f"--to {format_time(r.end)} was asked for, but the data ends at "
            f"{format_time(last)} (the close of the last stored candle)."
        )
    return notes


def _write_report(out: RunOutput, path: Path) -> Path:
    from engine.report import report_title, tearsheet_for_result

    req = out.request
    first, last = out.actual_range
    title = report_title(
        req.strategy,
        req.symbols,
        _title_time(first),
        _title_time(last),
        out.synthetic,
        timeframe=req.timeframe,
    )
    cfg = out.result.config
    parameters: dict[str, Any] = {
        "Strategy": req.strategy,
        **out.params_shown(),
        "Fee": f"{cfg.fee_taker:.4%}",
        "Slippage": f"{cfg.slippage_bps:g} bps",
    }
    if out.synthetic:
        parameters["Data"] = "SYNTHETIC (generated sample, not market data)"
    for i, w in enumerate(out.warnings, 1):
        parameters[f"WARNING {i}" if len(out.warnings) > 1 else "WARNING"] = w
    parameters.update(_model_lines(out.strategy_report))
    return tearsheet_for_result(
        out.result,
        out.bars,
        path,
        title,
        parameters=parameters,
        equity=out.equity,
        metrics=out.metrics,
    )


def _model_lines(report: dict[str, Any]) -> dict[str, str]:
    """Per model of an ``ml`` run: its out-of-sample hit rate and final weight per symbol."""
    lines = {}
    finals = report.get("symbols") or {}
    for name, m in (report.get("models") or {}).items():
        hr = m.get("out_of_sample_hit_rate")
        hit = (
            f"{hr:.3f} over {m.get('scored', 0):,} bars"
            if hr is not None
            else "n/a (no bar after its training data)"
        )
        weights = ", ".join(
            f"{sym} {w.get('final_weights', {}).get(name, float('nan')):.3f}"
            for sym, w in finals.items()
        )
        lines[f"Model {name}"] = f"out-of-sample hit rate {hit}; final weight {weights}"
    return lines


def _write_trades(out: RunOutput, path: Path) -> None:
    from engine.outputs import rounded_trades

    rounded_trades(out.result.trades, out.result.config.lot_size).to_csv(path, index=False)


def _write_equity(out: RunOutput, path: Path) -> None:
    """Per bar close time (UTC): equity, cash and each symbol's signed position."""
    import pandas as pd

    from engine.outputs import write_equity_parquet

    equity = out.equity if out.equity is not None else out.result.equity
    cash = out.result.cash.loc[equity.index]
    frame = pd.DataFrame({"equity": equity, "cash": cash})
    positions = out.positions if out.positions is not None else out.result.positions
    if positions is not None and len(positions.columns):
        frame = frame.join(positions.add_prefix("position "))
    frame.index.name = "time"
    write_equity_parquet(frame, path)


def _write_metrics(out: RunOutput, path: Path) -> None:
    """The summary figures and the run's inputs (NaN written as null)."""
    import json

    from gogo2.timeframes import format_time

    r = out.request
    first, last = out.actual_range
    doc = {
        "run": {
            "id": out.run_id,
            "strategy": r.strategy,
            "params": out.params_shown(),
            "symbols": list(r.symbols),
            "exchange": r.exchange,
            "timeframe": r.timeframe,
            "requested": [format_time(r.start), format_time(r.end) if r.end else None],
            "period": [format_time(first), format_time(last)],
            "bars": out.bars.n,
            "warmup_bars": out.warmup,
            "synthetic": out.synthetic,
            "fee_taker": out.result.config.fee_taker,
            "fee_maker": out.result.config.fee_maker,
            "slippage_bps": out.result.config.slippage_bps,
            "warnings": list(out.warnings),
        },
        "metrics": {k: _json_value(v) for k, v in out.metrics.as_dict().items()},
    }
    if out.strategy_report:
        doc["strategy"] = json.loads(json.dumps(out.strategy_report, default=_json_value))
    text = json.dumps(doc, indent=1, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def _json_value(v: Any) -> Any:
    import pandas as pd

    if v is None:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v]
    if hasattr(v, "item"):
        return _json_value(v.item())
    return v
