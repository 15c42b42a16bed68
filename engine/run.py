"""The Python API behind ``cli.py backtest``: one call from settings to report.

    from gogo2.config import load_settings
    from engine.run import run_backtest

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
   the run's inputs (JSON), next to the report. Every file is written to a
   temporary name and moved into place, so an interrupted run never leaves a
   half-written file.

Warm-up: the loader also reads the strategy's warm-up bars *before* ``--from``
(when stored), the engine places no order on them, and the metrics, report and
saved curve start at ``--from``; so a strategy can trade from the first bar of
the requested period, and its figures cover exactly that period.

``--to`` is exclusive on candle open time (``--to 2023-01-15`` ends with the
candle opened at 2023-01-14 23:59 on 1m). Without ``--to`` the run goes to the
end of the stored data.
"""

from __future__ import annotations

import math
import os
import tempfile
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
        Bars loaded before ``--from`` to warm the strategy up (no orders on them).
    strategy_warmup : int
        Bars the strategy needs before its first decision (``strategy.warmup``).
    strategy_params : dict
        Every parameter of the strategy as run, defaults included.
    equity, positions : pandas objects
        The engine's equity curve and positions from ``--from`` on (what the metrics,
        the report and the saved files use).
    timings : dict[str, float]
        Seconds spent per phase: load, signals, simulate, metrics, report, save.
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

    @property
    def period(self) -> tuple[str, str]:
        """First candle's open and last candle's close, as UTC text."""
        from gogo2.timeframes import format_time

        if self.bars.n == 0:
            return ("-", "-")
        return format_time(int(self.bars.time[0])), format_time(int(self.bars.close_time[-1]))

    def header_rows(self) -> list[tuple[str, str]]:
        """Rows describing the run, shown above the metrics in the summary table."""
        r = self.request
        params = ", ".join(f"{k}={v}" for k, v in self.params_shown().items())
        first, last = self.period
        rows = [
            ("strategy", f"{r.strategy}" + (f" ({params})" if params else "")),
            ("symbols", ", ".join(r.symbols)),
            ("exchange", r.exchange + (" (SYNTHETIC)" if self.synthetic else "")),
            ("timeframe", r.timeframe),
            ("period", f"{first} -> {last}"),
            (
                "bars",
                f"{self.bars.n:,}" + (f" (+{self.warmup:,} warm-up before)" if self.warmup else ""),
            ),
            (
                "costs",
                f"fee {self.result.config.fee_taker:.4%} taker / "
                f"{self.result.config.fee_maker:.4%} maker, "
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
        HTML path; None or True = ``<report_dir>/<strategy>_<from>_<to>.html``; False = none.
    save : bool
        Write trades (CSV) and equity (Parquet) next to the report.
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
        Bad flags, unknown strategy/parameter/symbol/exchange, or no data in the range.
    """
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

    from datasets.catalog import Catalog

    say("loading data")
    import numpy as np
    import pandas as pd

    t = time.perf_counter()
    catalog = Catalog(settings.data.path)
    generated = False
    if req.exchange == SAMPLE_EXCHANGE:
        from datasets.synthetic import ensure_sample

        generated = bool(ensure_sample(catalog, settings.data.sample_seed, console=console))
    from gogo2.errors import NoDataError
    from strategies.loader import load_strategy_data

    def load_data(warmup: bool) -> MultiBars:
        return load_strategy_data(
            catalog,
            strat,
            list(req.symbols),
            req.start,
            req.end,
            req.exchange,
            base_timeframe=req.timeframe,
            warmup=warmup,
        )

    try:
        multibars = load_data(warmup=True)
    except NoDataError:
        # say it about the range the user asked for, not the one widened for warm-up
        multibars = load_data(warmup=False)
    full = multibars.bars
    # history loaded before --from only warms the indicators up: no order is placed on it
    # and the reported curve starts at --from
    before = int(np.searchsorted(full.time, req.start, side="left"))
    if before >= full.n:
        raise NoDataError(
            f"no {req.timeframe} candles of {', '.join(req.symbols)} on {req.exchange} "
            f"from --from {_date_text(req.start)}; the data loaded ends before it."
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
    strategy_warmup = int(getattr(strat, "warmup", 0) or 0)
    result = simulate(full, signals, cfg, warmup=max(before, strategy_warmup))
    timings["simulate"] = time.perf_counter() - t

    from engine.metrics import compute_metrics
    from engine.report import buy_and_hold_equity

    t = time.perf_counter()
    bars = full.slice(before, full.n) if before else full
    equity = result.equity.iloc[before:]
    positions = result.positions.iloc[before:]
    exposure = float((positions.to_numpy() != 0).any(axis=1).mean()) if len(positions) else 0.0
    start_ts = pd.Timestamp(int(bars.time[0]), unit="ms", tz="UTC")
    metrics = compute_metrics(
        equity,
        result.trades,
        initial=cfg.cash,
        exposure=exposure,
        fees_paid=float(result.fees_paid),
        start=start_ts,
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
        warmup=before,
        strategy_warmup=strategy_warmup,
        strategy_params=dict(strat.params),
        equity=equity,
        positions=positions,
        timings=timings,
    )

    if report is not False or save:
        if report is None or isinstance(report, bool):
            html_path = default_report_path(settings, req, bars)
        else:
            html_path = Path(report)
            if not html_path.is_absolute():
                html_path = Path.cwd() / html_path
        if report is not False:
            say("writing the report")
            t = time.perf_counter()
            out.report_path = _write_report(out, html_path)
            timings["report"] = time.perf_counter() - t
        if save:
            t = time.perf_counter()
            out.trades_path, out.equity_path, out.metrics_path = save_results(out, html_path)
            timings["save"] = time.perf_counter() - t
    return out


# -- outputs -------------------------------------------------------------------------------------


def _date_text(ms: int) -> str:
    import pandas as pd

    ts = pd.Timestamp(int(ms), unit="ms", tz="UTC")
    if ts == ts.normalize():
        return ts.strftime("%Y-%m-%d")
    return ts.strftime("%Y-%m-%dT%H%M")


def default_report_path(settings: Settings, req: RunRequest, bars: Bars) -> Path:
    """``<report_dir>/<strategy>_<from>_<to>.html``; ``to`` is the data's end without ``--to``."""
    end = req.end if req.end is not None else int(bars.close_time[-1]) if bars.n else req.start
    root = settings.backtest.report_dir
    if not root.is_absolute():
        root = Path.cwd() / root
    return root / f"{req.strategy}_{_date_text(req.start)}_{_date_text(end)}.html"


def _write_report(out: RunOutput, path: Path) -> Path:
    from engine.report import report_title, tearsheet_for_result

    req = out.request
    end = req.end if req.end is not None else int(out.bars.close_time[-1])
    title = report_title(
        req.strategy,
        req.symbols,
        _date_text(req.start),
        _date_text(end),
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
    return tearsheet_for_result(
        out.result, out.bars, path, title, parameters=parameters, equity=out.equity
    )


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_results(out: RunOutput, html_path: Path) -> tuple[Path, Path, Path]:
    """Write ``<stem>_trades.csv``, ``<stem>_equity.parquet`` and ``<stem>_metrics.json``.

    The files go beside ``html_path``. The equity file holds, per bar close time (UTC):
    equity, cash and the signed position of each symbol, from ``--from`` on. The
    metrics file holds the summary figures and the run's inputs (NaN written as null).
    """
    import json

    import pandas as pd

    stem = html_path.with_suffix("")
    trades_path = stem.with_name(stem.name + "_trades.csv")
    equity_path = stem.with_name(stem.name + "_equity.parquet")
    metrics_path = stem.with_name(stem.name + "_metrics.json")
    trades: pd.DataFrame = out.result.trades
    _atomic(trades_path, lambda p: trades.to_csv(p, index=False))
    equity = out.equity if out.equity is not None else out.result.equity
    cash = out.result.cash.loc[equity.index]
    frame = pd.DataFrame({"equity": equity, "cash": cash})
    positions = out.positions if out.positions is not None else out.result.positions
    if positions is not None and len(positions.columns):
        frame = frame.join(positions.add_prefix("position "))
    frame.index.name = "time"
    _atomic(equity_path, lambda p: frame.to_parquet(p))
    doc = {
        "run": {
            "strategy": out.request.strategy,
            "params": out.params_shown(),
            "symbols": list(out.request.symbols),
            "exchange": out.request.exchange,
            "timeframe": out.request.timeframe,
            "period": list(out.period),
            "bars": out.bars.n,
            "synthetic": out.synthetic,
            "fee_taker": out.result.config.fee_taker,
            "fee_maker": out.result.config.fee_maker,
            "slippage_bps": out.result.config.slippage_bps,
        },
        "metrics": {k: _json_value(v) for k, v in out.metrics.as_dict().items()},
    }
    text = json.dumps(doc, indent=1, allow_nan=False)
    _atomic(metrics_path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    return trades_path, equity_path, metrics_path


def _json_value(v: Any) -> Any:
    import pandas as pd

    if v is None:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if hasattr(v, "item"):
        return _json_value(v.item())
    return v
