"""The paper session behind ``cli.py paper``: validate, warm up, run, write the run folder.

Modes (one runner, the clock, feed and broker injected):

* ``replay``: catalog history from ``--from`` through :class:`adapters.feeds.ReplayFeed`,
  offline, at ``--speed``;
* ``rest``: closed candles polled from the exchange's public REST API;

both with the :class:`adapters.broker.PaperBroker` behind the paper venue and the live order
manager and journal (``adapters.paper_venue``; without ``--run`` a temporary journal). Warm start for the exchange modes:
the strategy's warm-up of every timeframe is fetched through the data layer's download
path (``datasets.download.iter_ohlcv_pages``, the still-open candle dropped) and kept in
``datasets.recent.RecentCandles``. The exchange client is public only: it is built
without keys, and the paper broker never sees it.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gogo2.errors import UserInputError
from gogo2.timeframes import format_time, normalize, parse_time, timeframe_ms

WS_FAIL_FAST_S = 10.0


@dataclass
class PaperRequest:
    strategy: str
    params: dict[str, Any]
    symbols: tuple[str, ...]
    timeframe: str
    exchange: str
    cash: float
    fee: float | None
    slippage_bps: float | None
    mode: str  # replay | rest | ws
    start: int | None = None
    end: int | None = None
    speed: float = 0.0
    max_bars: int | None = None
    duration_s: float | None = None
    api_url: str | None = None
    run_dir: Path | None = None  # journal directory (``--run``): the run continues from it


@dataclass
class PaperOutput:
    request: PaperRequest
    run: Any  # runner.backtest.RunOutput (what the writers take)
    record: Any
    feed_stats: Any = None
    lines: list[str] = field(default_factory=list)
    runner: Any = None


def parse_duration(text: str | None) -> float | None:
    """``2h`` / ``30m`` / ``90s`` / ``1d`` -> seconds."""
    if text is None:
        return None
    t = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if t and t[-1] in units:
            v = float(t[:-1]) * units[t[-1]]
        else:
            v = float(t)
    except ValueError:
        v = -1.0
    if not v > 0:
        raise UserInputError(
            f"--duration {text!r} is not a positive duration; write it like 90s, 30m or 2h."
        )
    return v


def validate(settings: Any, **kw: Any) -> tuple[PaperRequest, type]:
    """Every input checked before anything starts (bad input exits 2)."""
    from runner.backtest import validate_request

    mode = kw["mode"]
    if mode == "replay" and kw.get("start") is None:
        raise UserInputError("--replay needs --from DATE (the first day to replay).")
    if mode != "replay" and (kw.get("start") is not None or kw.get("end") is not None):
        raise UserInputError("--from/--to go with --replay; a live paper run starts now.")
    max_bars = kw.get("max_bars")
    if max_bars is not None and max_bars < 1:
        raise UserInputError(f"--max-bars {max_bars} must be >= 1.")
    speed = kw.get("speed") or 0.0
    if speed < 0:
        raise UserInputError(f"--speed {speed:g} must be >= 0 (0 = as fast as possible).")
    exchange = kw.get("exchange")
    if mode != "replay":
        exchange = exchange or settings.exchange.name
        if exchange == "synthetic":
            raise UserInputError(
                "--exchange synthetic is the generated sample: it has no live prices. Give a "
                "ccxt exchange id (binance), or replay it with --replay --from DATE."
            )
    req, cls = validate_request(
        settings,
        start=kw.get("start") or "2000-01-01",
        end=kw.get("end"),
        symbols=kw.get("symbols"),
        timeframe=kw.get("timeframe"),
        strategy=kw.get("strategy"),
        params=kw.get("params"),
        cash=kw.get("cash"),
        fee=kw.get("fee"),
        slippage=kw.get("slippage"),
        exchange=exchange,
    )
    return (
        PaperRequest(
            strategy=req.strategy,
            params=req.params,
            symbols=req.symbols,
            timeframe=req.timeframe,
            exchange=req.exchange,
            cash=req.cash,
            fee=req.fee,
            slippage_bps=req.slippage_bps,
            mode=mode,
            start=req.start if mode == "replay" else None,
            end=req.end if mode == "replay" else None,
            speed=float(speed),
            max_bars=max_bars,
            duration_s=parse_duration(kw.get("duration")),
            api_url=kw.get("api_url"),
            run_dir=kw.get("run_dir"),
        ),
        cls,
    )


def sim_config(settings: Any, req: PaperRequest):
    from engine.backtest import SimConfig

    return SimConfig.from_settings(
        settings.backtest,
        cash=req.cash,
        fee_taker=req.fee,
        fee_maker=req.fee,
        slippage_bps=req.slippage_bps,
    )


def status_text(st: Any, quote: str = "") -> str:
    pos = " ".join(f"{s}={q:+.8g}" for s, q in st.positions.items())
    delay = f" close->order {st.delay_ms:.0f} ms" if st.delay_ms is not None else ""
    fills = f" fills {len(st.fills)}" if st.fills else ""
    return (
        f"{format_time(st.close_time)} equity {st.equity:,.2f}{quote} {pos} "
        f"signal {st.signal}{fills} latency {st.latency_ms:.2f} ms{delay}"
    )


# -- the exchange side -------------------------------------------------------------------------


def load_markets(ex: Any, settings: Any) -> None:
    """The exchange's markets (public); an unreachable exchange stops here, in seconds."""
    from datasets.exchange_client import ExchangeUnreachableError, call_with_retry

    try:
        call_with_retry(
            ex.load_markets,
            exchange=ex,
            retries=min(settings.exchange.retries, 2),
            backoff_s=min(settings.exchange.backoff_s, 0.5),
        )
    except ExchangeUnreachableError as e:
        text = str(e).split(" Candles fetched before")[0]
        raise ExchangeUnreachableError(
            f"{text} Nothing was started; run again when the exchange can be reached, or "
            "replay stored candles offline with --replay --from DATE.",
            e.cause,
        ) from None


def market_rules(ex: Any, symbols: tuple[str, ...]) -> dict[str, Any]:
    from adapters.broker import MarketRules

    mode = int(getattr(ex, "precisionMode", 4) or 4)
    return {s: MarketRules.from_ccxt(ex.markets[s], mode) for s in symbols}


def _place(grid: np.ndarray, cols: dict, j: int, times: np.ndarray, values: dict) -> None:
    """Put candles at ``times`` into column ``j`` of the grid (times off the grid ignored)."""
    idx = np.searchsorted(grid, times)
    ok = (idx < grid.size) & (grid[np.minimum(idx, grid.size - 1)] == times)
    for f, a in cols.items():
        a[idx[ok], j] = values[f][ok]


def warm_history(
    ex: Any,
    settings: Any,
    symbols: tuple[str, ...],
    timeframes: dict[str, int],
    now_ms: int,
    base: str,
    catalog: Any = None,
    counts: dict[str, int] | None = None,
) -> tuple[Any, dict[str, int]]:
    """The last ``bars`` closed candles of each (symbol, timeframe): what the catalog holds
    (``catalog``, under the exchange's id), the rest fetched through the data layer's
    download path (``datasets.download.iter_ohlcv_pages``, the still-open candle dropped)
    and kept in the recent-candle cache. Returns (MultiBars, last open time per timeframe);
    ``counts`` receives how many candles came from each source."""
    import pandas as pd

    from datasets.bars import Bars, MultiBars
    from datasets.download import iter_ohlcv_pages
    from datasets.recent import RecentCandles
    from gogo2.errors import Gogo2Error

    counts = counts if counts is not None else {}
    cache = RecentCandles(ttl_seconds=float(settings.data.recent_cache_ttl))
    frames: dict[str, Bars] = {}
    last: dict[str, int] = {}
    fields = ("open", "high", "low", "close", "volume")
    for tf, bars in timeframes.items():
        step = timeframe_ms(tf)
        open_now = now_ms // step * step  # the candle still open now
        start = open_now - (bars + 1) * step
        grid = np.arange(start, open_now, step, dtype=np.int64)
        cols = {f: np.full((grid.size, len(symbols)), np.nan) for f in fields}

        for j, s in enumerate(symbols):
            fetch_from = start
            if catalog is not None:
                try:
                    stored = catalog.load_frame(ex.id, s, tf, start, open_now)
                except Gogo2Error:
                    stored = None
                if stored is not None and len(stored):
                    t = stored["time"].to_numpy(np.int64)
                    _place(grid, cols, j, t, {f: stored[f].to_numpy(np.float64) for f in fields})
                    counts["catalog"] = counts.get("catalog", 0) + len(stored)
                    fetch_from = int(t[-1]) + step
            if fetch_from >= open_now:
                continue
            pages = list(
                iter_ohlcv_pages(
                    ex,
                    s,
                    tf,
                    fetch_from,
                    open_now,
                    retries=min(settings.exchange.retries, 2),
                    backoff_s=settings.exchange.backoff_s,
                )
            )
            page = np.concatenate(pages) if pages else np.zeros((0, 6))
            page = page[page[:, 0] < open_now]  # never the open candle
            if not page.size:
                continue
            counts["fetched"] = counts.get("fetched", 0) + len(page)
            frame = pd.DataFrame(
                {
                    "time": page[:, 0].astype(np.int64),
                    **{f: page[:, k + 1] for k, f in enumerate(fields)},
                }
            )
            cache.put(ex.id, s, tf, frame)
            _place(
                grid,
                cols,
                j,
                frame["time"].to_numpy(np.int64),
                {f: frame[f].to_numpy() for f in fields},
            )
        keep = ~np.isnan(cols["close"]).all(axis=1)
        frames[tf] = Bars(
            tf,
            tuple(symbols),
            grid[keep],
            *(np.ascontiguousarray(cols[f][keep]) for f in fields[:4]),
            np.nan_to_num(cols["volume"][keep]),
            exchange=ex.id,
        )
        last[tf] = int(open_now - step)
    return MultiBars(base, frames), last


# -- the session -------------------------------------------------------------------------------


def run_paper(
    settings: Any,
    req: PaperRequest,
    cls: type,
    *,
    report: bool = True,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] = _time.sleep,
    feed_options: dict[str, Any] | None = None,
) -> PaperOutput:
    from adapters.broker import PaperBroker
    from runner.live import Runner, record_bars, to_result

    strat = cls(timeframe=req.timeframe, **req.params)
    cfg = sim_config(settings, req)
    quote = ""
    quotes = {s.split("/")[-1] for s in req.symbols}
    if len(quotes) == 1:
        quote = " " + quotes.pop()

    def on_status(st: Any) -> None:
        say(status_text(st, quote))

    clock = clock or _time.time
    rules = None
    if req.mode == "replay":
        data, first = _replay_data(settings, req, strat)
        if req.run_dir is not None:
            from runner.paper_journal import last_bar

            last = last_bar(req.run_dir)
            if last is not None:  # continue after the last bar the journal holds
                k = int(np.searchsorted(data.bars.time, last, side="right"))
                if k >= data.bars.n:
                    raise UserInputError(
                        f"--run {req.run_dir} already holds every bar up to "
                        f"{format_time(last)}; give a later --to or a new --run."
                    )
                first = int(data.bars.time[k])
        from adapters.feeds import ReplayFeed

        feed = ReplayFeed(data, first, req.speed, sleep=sleep)
        history = data.until(first)
    else:
        from adapters.exchange import public_client
        from adapters.feeds import RestFeed
        from datasets.download import check_request

        ex = public_client(req.exchange, settings.exchange, req.api_url)
        load_markets(ex, settings)
        tfs = list(strat.timeframes)
        check_request(ex, list(req.symbols), tfs)
        rules = market_rules(ex, req.symbols)
        lookback = dict(strat.lookback())
        need = {tf: int(lookback.get(tf, strat.warmup)) + 2 for tf in tfs}
        need[req.timeframe] = max(need.get(req.timeframe, 0), strat.warmup + 2)
        from datasets.catalog import Catalog

        counts: dict[str, int] = {}
        history, after = warm_history(
            ex,
            settings,
            req.symbols,
            need,
            int(clock() * 1000),
            req.timeframe,
            catalog=Catalog(settings.data.path),
            counts=counts,
        )
        if history.bars.n < strat.warmup:
            raise UserInputError(
                f"strategy {req.strategy} needs {strat.warmup:,} {req.timeframe} bars of "
                f"warm-up, but {req.exchange} has only {history.bars.n:,} closed ones of "
                f"{', '.join(req.symbols)}; pick a market listed longer ago or a coarser "
                "--timeframe."
            )
        informative = tuple(tf for tf in tfs if tf != req.timeframe)
        opts = dict(clock=lambda: int(clock() * 1000), sleep=sleep, **(feed_options or {}))
        if req.mode == "ws":
            from adapters.exchange import public_ws_client
            from adapters.feeds import WsFeed

            ws = public_ws_client(req.exchange, settings.exchange, req.api_url)
            feed = WsFeed(ws, ex, req.symbols, req.timeframe, informative, after, **opts)
        else:
            feed = RestFeed(ex, req.symbols, req.timeframe, informative, after, **opts)
        feed.notify = say
        say(
            f"paper on {req.exchange} ({req.mode}): {', '.join(req.symbols)} {req.timeframe}, "
            f"{req.strategy}, warm-up from "
            f"{format_time(int(history.bars.time[0])) if history.bars.n else '-'} "
            f"({counts.get('catalog', 0)} candles from the catalog, "
            f"{counts.get('fetched', 0)} fetched)"
        )
    broker = PaperBroker(req.symbols, cfg, timeframe_ms(req.timeframe), rules)
    journal = None
    scratch = None
    if req.run_dir is None:
        # no --run: the same order manager and journal, in a journal dropped at the end
        import tempfile

        from adapters.journal import Journal
        from adapters.paper_venue import PaperOrderBroker
        from runner.live_session import run_id_of

        scratch = tempfile.TemporaryDirectory(prefix="gogo2-paper-")
        scratch_journal = Journal(scratch.name, durable=False)
        try:
            broker = PaperOrderBroker.open(
                broker, scratch_journal, settings.live, run_id_of(scratch_journal), say=say
            )
        except BaseException:
            scratch_journal.close()
            scratch.cleanup()
            raise
    else:
        from runner.paper_journal import PaperJournal

        journal = PaperJournal(req.run_dir, req, broker, settings, say)
        broker = journal.broker  # orders through the order manager to the paper venue
        if journal.restarted:
            say(f"journal {req.run_dir}: continued after {format_time(journal.last_time or 0)}")

        def on_status(st: Any) -> None:
            journal.on_status(st)  # the bar is in the journal before it is shown
            say(status_text(st, quote))

    runner = Runner(
        strat, history, feed, broker, clock=clock, on_status=on_status, live=req.mode != "replay"
    )
    t0 = _time.perf_counter()
    try:
        # a journaled run is continued later: what is open stays open
        rec = runner.run(max_bars=req.max_bars, duration_s=req.duration_s, finish=journal is None)
    finally:
        if journal is not None:
            journal.close()
        if scratch is not None:
            broker.om.journal.close()
            scratch.cleanup()
    elapsed = _time.perf_counter() - t0
    result = to_result(
        rec,
        broker,
        cfg,
        req.timeframe,
        timeframe_ms(req.timeframe),
        synthetic=bool(history.bars.synthetic),
        exchange=req.exchange,
    )
    out = PaperOutput(req, None, rec, getattr(feed, "stats", None), runner=runner)
    for gap in getattr(getattr(feed, "stats", None), "gaps", []):
        say(gap)
    if not rec.time:
        out.lines.append("no bar closed: nothing to write.")
        return out
    bars = record_bars(rec, req.timeframe, req.exchange, bool(history.bars.synthetic))
    out.run = _write(settings, req, strat, result, bars, rec, report, elapsed)
    return out


def _replay_data(settings: Any, req: PaperRequest, strat: Any) -> tuple[Any, int]:
    from datasets.catalog import Catalog
    from strategies.loader import load_strategy_data

    catalog = Catalog(settings.data.path)
    if req.exchange == "synthetic":
        from datasets.synthetic import ensure_sample

        ensure_sample(catalog, settings.data.sample_seed)
    data = load_strategy_data(
        catalog,
        strat,
        list(req.symbols),
        req.start,
        req.end,
        req.exchange,
        base_timeframe=req.timeframe,
        warmup=True,
    )
    base = data.bars
    first = int(np.searchsorted(base.time, req.start, side="left"))
    if first >= base.n:
        from gogo2.errors import NoDataError

        raise NoDataError(
            f"no {req.timeframe} candles of {', '.join(req.symbols)} on {req.exchange} from "
            f"--from {format_time(req.start)}."
        )
    if max(first, strat.warmup) >= base.n - 1:
        raise UserInputError(
            f"strategy {req.strategy} needs {strat.warmup:,} {req.timeframe} bars of warm-up; "
            f"only {base.n:,} are stored up to --to. Give an earlier --from or a later --to."
        )
    return data, int(base.time[first])


def _write(settings, req, strat, result, bars, rec, report, elapsed) -> Any:
    import json

    from engine import outputs
    from engine.metrics import from_result
    from engine.report import buy_and_hold_equity
    from runner.backtest import (
        RunOutput,
        RunRequest,
        _report_dir,
        _run_inputs,
        write_run_outputs,
    )

    rreq = RunRequest(
        strategy=req.strategy,
        params=req.params,
        symbols=req.symbols,
        timeframe=req.timeframe,
        exchange=req.exchange,
        start=int(rec.time[0]),
        end=int(rec.time[-1]) + timeframe_ms(req.timeframe),
        cash=req.cash,
        fee=req.fee,
        slippage_bps=req.slippage_bps,
    )
    metrics = from_result(
        result,
        extra={"buy_and_hold_return": float(buy_and_hold_equity(bars, 1.0).iloc[-1] - 1.0)},
    )
    out = RunOutput(
        request=rreq,
        bars=bars,
        result=result,
        metrics=metrics,
        synthetic=bool(bars.synthetic),
        strategy_warmup=int(strat.warmup),
        strategy_params=dict(strat.params),
        equity=result.equity,
        positions=result.positions,
        timings={"run": elapsed},
    )
    inputs = _run_inputs(out)
    inputs["mode"] = req.mode
    out.run_id = outputs.fingerprint(inputs)
    lat = np.asarray(rec.latency_ms)
    doc = {
        "mode": req.mode,
        "strategy": req.strategy,
        "params": dict(strat.params),
        "symbols": list(req.symbols),
        "exchange": req.exchange,
        "timeframe": req.timeframe,
        "first_bar": int(rec.time[0]),
        "last_bar": int(rec.time[-1]),
        "bars": len(rec.time),
        "cash": req.cash,
        "fee": req.fee,
        "slippage_bps": req.slippage_bps,
        "stopped_by": rec.stopped_by,
        "latency_ms_median": float(np.median(lat)),
        "latency_ms_max": float(lat.max()),
        "rejected": int(result.rejected),
    }

    def write_doc(path: Path) -> None:
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")

    def write_candles(path: Path) -> None:
        import pandas as pd

        frame = pd.DataFrame({"time": np.repeat(bars.time, len(bars.symbols))})
        frame["symbol"] = np.tile(np.asarray(bars.symbols, dtype=object), bars.n)
        for f in ("open", "high", "low", "close", "volume"):
            frame[f] = getattr(bars, f).reshape(-1)
        frame.to_parquet(path, index=False)

    write_run_outputs(
        out,
        _report_dir(settings),
        None,
        html=report,
        save=True,
        prefix="paper_",
        extra={"paper.json": write_doc, "candles.parquet": write_candles},
    )
    return out


def normalize_tf(tf: str | None) -> str | None:
    return normalize(tf) if tf else None


def parse_when(text: str | None, flag: str) -> int | None:
    return parse_time(text, flag) if text else None
