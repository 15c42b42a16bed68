"""Backtest <-> paper parity: replay a period through the runner and the paper broker, run the
backtest of the same period, and compare the trades one by one.

Each difference gets a cause:

* ``rounding``: the same trade, prices or quantity apart by no more than the exchange's
  price tick / amount step (or 1e-9 relative without exchange rules);
* ``equity carried``: only the quantity differs, after an earlier difference changed the
  equity that sizes later orders (the earlier difference carries the cause);
* ``min notional rejection``: a trade on one side only whose notional is below the
  exchange's minimum cost (the other side refused to place it);
* ``missing candle``: a trade on one side only, and the other side has no candle of that
  symbol at its decision bar, entry or exit;
* ``changed decision``: anything else: the strategy decided differently. Not explained:
  the command exits 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strategies import window as live_window

EXPLAINED = {"rounding", "equity carried", "min notional rejection", "missing candle"}


@dataclass
class TradeDiff:
    symbol: str
    entry_time: Any
    side: str
    what: str  # "both", "backtest only", "paper only"
    fields: dict[str, tuple[Any, Any]]
    cause: str

    @property
    def explained(self) -> bool:
        return self.cause in EXPLAINED


@dataclass
class ParityReport:
    n_backtest: int
    n_paper: int
    matched: int
    diffs: list[TradeDiff] = field(default_factory=list)

    @property
    def unexplained(self) -> list[TradeDiff]:
        return [d for d in self.diffs if not d.explained]

    @property
    def ok(self) -> bool:
        return not self.unexplained


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol + 1e-9 * max(abs(a), abs(b))


def compare_trades(
    backtest: Any,
    paper: Any,
    *,
    rules: dict[str, Any] | None = None,
    backtest_bars: Any = None,
    paper_bars: Any = None,
    tf_ms: int = 0,
    window: int = 0,
) -> ParityReport:
    """Compare two trade tables (``BacktestResult.trades`` columns).

    ``window`` (the strategy's ``warmup + 1``) lets a changed decision name a missing candle
    inside the trailing window it was taken on (a strategy whose indicators skip missing
    candles needs more rows than its warm-up then).

    ``rules`` maps symbols to ``adapters.broker.MarketRules``; ``backtest_bars`` and
    ``paper_bars`` (``datasets.bars.Bars``) are the candles each side saw, to name a
    missing candle.
    """
    rules = rules or {}
    key = ["symbol", "entry_time", "direction"]
    bt = backtest.reset_index(drop=True)
    pp = paper.reset_index(drop=True)
    bt_keys = {tuple(r): i for i, r in enumerate(bt[key].itertuples(index=False, name=None))}
    pp_keys = {tuple(r): i for i, r in enumerate(pp[key].itertuples(index=False, name=None))}
    report = ParityReport(len(bt), len(pp), 0)
    carried = False
    rows: list[tuple[Any, TradeDiff | None]] = []
    for k in sorted(set(bt_keys) | set(pp_keys), key=lambda x: (x[1], x[0])):
        sym = k[0]
        r = rules.get(sym)
        tick = getattr(r, "price_tick", 0.0) or 0.0
        step = getattr(r, "amount_step", 0.0) or 0.0
        if k in bt_keys and k in pp_keys:
            a, b = bt.loc[bt_keys[k]], pp.loc[pp_keys[k]]
            fields: dict[str, tuple[Any, Any]] = {}
            for f in ("exit_time", "exit_reason"):
                if a[f] != b[f]:
                    fields[f] = (a[f], b[f])
            for f in ("entry_price", "exit_price", "size"):
                if not _close(float(a[f]), float(b[f]), 0.0):
                    fields[f] = (float(a[f]), float(b[f]))
            if not fields:
                report.matched += 1
                continue
            if set(fields) <= {"entry_price", "exit_price", "size"}:
                ok = all(
                    _close(*fields[f], tick) for f in ("entry_price", "exit_price") if f in fields
                ) and ("size" not in fields or _close(*fields["size"], step))
                if ok:
                    cause = "rounding"
                elif set(fields) == {"size"} and carried:
                    cause = "equity carried"
                else:
                    cause = "changed decision"
            else:
                cause = "changed decision"
            d = TradeDiff(sym, k[1], k[2], "both", fields, cause)
        else:
            lone_bt = k in bt_keys
            t = bt.loc[bt_keys[k]] if lone_bt else pp.loc[pp_keys[k]]
            other = paper_bars if lone_bt else backtest_bars
            cause = "changed decision"
            min_cost = getattr(r, "min_cost", 0.0) or 0.0
            if float(t["size"]) * float(t["entry_price"]) < min_cost:
                cause = "min notional rejection"
            elif other is not None and _missing_candle(other, sym, t, tf_ms):
                cause = "missing candle"
            d = TradeDiff(
                sym,
                k[1],
                k[2],
                "backtest only" if lone_bt else "paper only",
                {"entry_price": (float(t["entry_price"]), math.nan)},
                cause,
            )
        if d.cause == "changed decision" and window and backtest_bars is not None:
            # the decision that changed: the earlier exit when the exits differ, else the entry
            when = min(d.fields["exit_time"]) if "exit_time" in d.fields else k[1]
            note = _gap_in_window(backtest_bars, sym, when, tf_ms, window)
            if note:
                d.cause = f"changed decision ({note})"
        carried = True  # later sizes follow from the equity this difference changed
        report.diffs.append(d)
        rows.append((k, d))
    return report


def _gap_in_window(bars: Any, symbol: str, fill_time: Any, tf_ms: int, window: int) -> str:
    """'a missing candle in its window' when the live trailing window of the decision bar
    before ``fill_time`` (``strategies.window``: it reaches back over missing candles, up to
    a limit) still holds fewer than ``window`` candles of ``symbol``, else ''."""
    import pandas as pd

    if symbol not in bars.symbols or not tf_ms:
        return ""
    j = bars.symbols.index(symbol)
    decided = int(pd.Timestamp(fill_time).value // 1_000_000) - tf_ms
    i = int(np.searchsorted(bars.time, decided, side="right")) - 1
    if i < 0:
        return ""
    lo = live_window.window_start(bars.close[: i + 1], window)
    if np.count_nonzero(~np.isnan(bars.close[lo : i + 1, j])) < window:
        return f"a missing {symbol} candle in its {window}-bar window"
    return ""


def _missing_candle(bars: Any, symbol: str, trade: Any, tf_ms: int) -> bool:
    import pandas as pd

    if symbol not in bars.symbols:
        return True
    j = bars.symbols.index(symbol)
    times = []
    for f in ("entry_time", "exit_time"):
        v = trade[f]
        ms = int(pd.Timestamp(v).value // 1_000_000)
        times.extend([ms, ms - tf_ms])  # the fill bar and the decision bar before it
    for ms in times:
        i = int(np.searchsorted(bars.time, ms))
        if i >= bars.n or int(bars.time[i]) != ms or not math.isfinite(float(bars.close[i, j])):
            return True
    return False


def format_report(report: ParityReport) -> list[str]:
    lines = [
        f"trades: backtest {report.n_backtest}, paper {report.n_paper}, identical "
        f"{report.matched}, different {len(report.diffs)} "
        f"({len(report.unexplained)} unexplained)"
    ]
    for d in report.diffs:
        what = "; ".join(f"{k} {a} vs {b}" for k, (a, b) in d.fields.items())
        lines.append(f"  {d.entry_time} {d.symbol} {d.side} [{d.what}] {what} -> cause: {d.cause}")
    if any(d.cause.startswith("changed decision") for d in report.diffs):
        lines.append(
            "a changed decision means the strategy decided differently on the live trailing "
            "window than on the whole history: its warm-up is too short for this timeframe "
            "or it looks ahead; run 'python cli.py check-lookahead' on it."
        )
    return lines


# -- running both sides ----------------------------------------------------------------------


@dataclass
class ReplayOutput:
    record: Any
    broker: Any
    result: Any  # BacktestResult of the paper run
    data: Any  # MultiBars loaded (warm-up included)
    start: int  # first bar the feed delivered


def replay(
    strategy: Any,
    data: Any,
    start: int,
    config: Any,
    *,
    rules: dict[str, Any] | None = None,
    speed: float = 0.0,
    max_bars: int | None = None,
    on_status: Any = None,
) -> ReplayOutput:
    """Replay ``data`` from ``start`` through the runner and a paper broker, its orders
    through the live order manager to the paper venue (a temporary journal, no kill switch
    limits)."""
    import tempfile

    from adapters.broker import PaperBroker
    from adapters.feeds import ReplayFeed
    from adapters.journal import Journal
    from adapters.paper_venue import PaperOrderBroker
    from gogo2.config import LiveConfig
    from runner.live import Runner, to_result
    from runner.live_session import run_id_of

    _NO_LIMITS = LiveConfig(
        max_drawdown=None, max_daily_loss=None, max_orders_per_minute=None, reconcile_every=60
    )

    base = data.bars
    cut = int(np.searchsorted(base.time, start, side="left"))
    first_open = int(base.time[cut]) if cut < base.n else int(start)
    history = data.until(first_open)  # every timeframe cut at the first bar's open
    paper = PaperBroker(tuple(base.symbols), config, base.tf_ms, rules)
    with tempfile.TemporaryDirectory(prefix="gogo2-replay-") as tmp:
        # the orders go through the live order manager and journal, to the paper venue
        journal = Journal(tmp, durable=False)
        try:
            broker = PaperOrderBroker.open(
                paper, journal, _NO_LIMITS, run_id_of(journal), say=lambda s: None
            )
            runner = Runner(
                strategy, history, ReplayFeed(data, first_open, speed), broker, on_status=on_status
            )
            rec = runner.run(max_bars=max_bars)
        finally:
            journal.close()
    broker = paper
    result = to_result(
        rec,
        broker,
        config,
        base.timeframe,
        base.tf_ms,
        synthetic=bool(base.synthetic),
        exchange=base.exchange,
    )
    return ReplayOutput(rec, broker, result, data, first_open)


# -- the command's two forms -------------------------------------------------------------------


def check_period(
    settings: Any,
    *,
    strategy: str | None,
    params: list[str],
    start: str,
    end: str | None,
    symbols: str | None,
    timeframe: str | None,
    exchange: str | None,
) -> ParityReport:
    """``python cli.py backtest`` on the period, and the same period replayed through the
    runner and the paper broker; the trades compared."""
    from runner.backtest import run_backtest

    bt = run_backtest(
        settings,
        start=start,
        end=end,
        symbols=symbols,
        timeframe=timeframe,
        strategy=strategy,
        params=params,
        exchange=exchange,
        report=False,
        save=False,
    )
    req = bt.request
    strat = type(_strategy(req))(timeframe=req.timeframe, **req.params)
    data = bt.data  # the candles the backtest ran on, warm-up included
    rp = replay(strat, data, req.start, bt.result.config)
    return compare_trades(
        bt.result.trades,
        rp.result.trades,
        backtest_bars=data.bars,
        paper_bars=data.bars,
        tf_ms=int(bt.bars.tf_ms),
        window=int(strat.warmup) + 1,
    )


def _strategy(req: Any) -> Any:
    from strategies.registry import get

    return get(req.strategy)(timeframe=req.timeframe, **req.params)


def check_run(settings: Any, run_dir: str) -> ParityReport:
    """A finished paper run (its ``paper.json``, ``trades.csv`` and ``candles.parquet``)
    against a backtest of its period from the catalog."""
    import json
    from pathlib import Path

    import pandas as pd

    from datasets.bars import Bars
    from gogo2.errors import UserInputError
    from gogo2.timeframes import format_time, timeframe_ms
    from runner.backtest import run_backtest

    folder = Path(run_dir).expanduser()
    if folder.is_file():
        folder = folder.parent
    if (folder / "latest.txt").is_file() and not (folder / "paper.json").is_file():
        folder = Path((folder / "latest.txt").read_text(encoding="utf-8").strip())
    doc_path = folder / "paper.json"
    if not doc_path.is_file():
        raise UserInputError(
            f"--run {run_dir}: no paper.json there; give the folder of a finished paper run "
            "(its path is printed as 'run:' at the end of 'python cli.py paper')."
        )
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    tf_ms = timeframe_ms(doc["timeframe"])
    params = [f"{k}={v}" for k, v in doc["params"].items()]
    bt = run_backtest(
        settings,
        start=format_time(int(doc["first_bar"])),
        end=format_time(int(doc["last_bar"]) + tf_ms),
        symbols=",".join(doc["symbols"]),
        timeframe=doc["timeframe"],
        strategy=doc["strategy"],
        params=params,
        cash=doc["cash"],
        fee=doc["fee"],
        slippage=doc["slippage_bps"],
        exchange=doc["exchange"],
        report=False,
        save=False,
    )
    paper = pd.read_csv(folder / "trades.csv")
    for f in ("entry_time", "exit_time"):
        paper[f] = pd.to_datetime(paper[f], utc=True)
    candles = pd.read_parquet(folder / "candles.parquet")
    syms = tuple(doc["symbols"])
    times = np.sort(candles["time"].unique()).astype(np.int64)
    cols = {}
    for f in ("open", "high", "low", "close", "volume"):
        wide = candles.pivot(index="time", columns="symbol", values=f).reindex(
            index=times, columns=list(syms)
        )
        cols[f] = np.ascontiguousarray(wide.to_numpy(np.float64))
    paper_bars = Bars(doc["timeframe"], syms, times, *(cols[f] for f in cols))
    strat = _strategy(bt.request)
    return compare_trades(
        bt.result.trades,
        paper,
        backtest_bars=bt.bars,
        paper_bars=paper_bars,
        tf_ms=tf_ms,
        window=int(strat.warmup) + 1,
    )
