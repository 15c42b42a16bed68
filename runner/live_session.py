"""``cli.py live``: the paper runner's loop on a real account (README, "Live trading").

Start-up is a fixed sequence, and any step that fails stops before an order is sent:

1. the confirmation flag and the keys (checked by the command before this module runs);
   the effective ``backtest.allow_short`` must be false (:func:`check_long_only`), before
   any request;
2. the exchange: markets (an unknown symbol stops here) and, for a new run, the order size
   against the market's minimum amount and cost (nothing is written before these pass);
3. the journal of ``--run DIR`` (created, or continued: it must hold the same strategy,
   parameters, exchange, symbols and timeframe) and the kill switch's latch;
4. reconciliation (``adapters.orders.OrderManager.reconcile``);
5. balances and limits printed; with ``--dry-check``, the decision the strategy would take
   on the last closed bar, then exit;
6. the protective exits of the positions held, stepped over the bars closed while the run
   was down (:meth:`adapters.ccxt_broker.CcxtBroker.resume`: a level crossed then sells);
7. the loop: ``runner.live.Runner`` with a :class:`adapters.ccxt_broker.CcxtBroker`.
"""

from __future__ import annotations

import json
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gogo2.errors import UserInputError
from gogo2.timeframes import format_time, timeframe_ms


@dataclass
class LiveOptions:
    run_dir: Path
    dry_check: bool = False
    flatten_on_kill: bool = False

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)


def identity(req: Any) -> dict[str, str]:
    return {
        "strategy": req.strategy,
        "params": json.dumps(req.params, sort_keys=True, default=str),
        "exchange": req.exchange,
        "symbols": ",".join(req.symbols),
        "timeframe": req.timeframe,
    }


def run_id_of(journal: Any) -> str:
    """The run's id: drawn once when its journal is created and kept there, so a restarted
    run derives the same client order ids and two runs never share one."""
    import uuid

    rid = journal.meta("run_id")
    if rid is None:
        rid = uuid.uuid4().hex
        journal.set_meta("run_id", rid)
    return rid


def check_size(ex: Any, req: Any, cfg: Any, quote_balance: float) -> None:
    """The configured order size must clear every symbol's minimum amount and cost."""
    for s in req.symbols:
        m = ex.market(s)
        limits = m.get("limits") or {}
        min_cost = float((limits.get("cost") or {}).get("min") or 0.0)
        min_amt = float((limits.get("amount") or {}).get("min") or 0.0)
        if cfg.size_type == "percent":
            cost = quote_balance * cfg.size
            what = f"{cfg.size:g} of the {quote_balance:,.2f} {m['quote']} balance"
        elif cfg.size_type == "cash":
            cost = cfg.size
            what = f"{cfg.size:g} {m['quote']}"
        else:
            cost, what = None, f"{cfg.size:g} {m['base']}"
            if cfg.size < min_amt:
                raise UserInputError(
                    f"order size {what} is below {ex.id}'s minimum amount {min_amt:g} for {s}; "
                    "raise backtest.size."
                )
        if cost is not None and min_cost and cost < min_cost:
            raise UserInputError(
                f"order size {what} = {cost:,.4g} {m['quote']} is below {ex.id}'s minimum "
                f"order cost {min_cost:g} for {s}; raise backtest.size or fund the account."
            )


def check_long_only(cfg: Any, sources: tuple[str, ...] = ()) -> None:
    """A spot account cannot sell short, so a live run trades what a backtest with
    ``backtest.allow_short: false`` trades; with shorting allowed the two would differ
    silently (the backtest opening shorts the account cannot hold). ``sources``: the
    configuration's layers, named in the message."""
    if cfg.allow_short:
        where = f" (settings from {' + '.join(sources)})" if sources else ""
        raise UserInputError(
            f"backtest.allow_short is {str(cfg.allow_short).lower()}{where}, but a spot "
            "account cannot sell short, so this live run would trade differently from its "
            "backtest; set `backtest.allow_short: false` in the config (a short signal then "
            "exits the long, as the backtest does with it) and re-check the strategy with a "
            "backtest under that setting."
        )


def run_live(
    settings: Any,
    req: Any,
    cls: type,
    opts: LiveOptions,
    *,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] = _time.sleep,
    feed_options: dict[str, Any] | None = None,
    hook: Callable[[str], None] | None = None,
    retry_sleep: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    from adapters.ccxt_broker import CcxtBroker
    from adapters.exchange import private_client
    from adapters.journal import FILE_NAME, Journal
    from adapters.killswitch import KillSwitch
    from adapters.orders import OrderManager, RetryPolicy
    from datasets.download import check_request
    from runner.live import Runner, describe_intents, last_intents
    from runner.paper import load_markets, sim_config, status_text, warm_history

    clock = clock or _time.time
    strat = cls(timeframe=req.timeframe, **req.params)
    cfg = sim_config(settings, req)
    check_long_only(cfg, tuple(settings.sources))  # before any request: a bad setting sends nothing
    ex = private_client(req.exchange, settings.exchange, req.api_url)
    load_markets(ex, settings)
    check_request(ex, list(req.symbols), list(strat.timeframes))  # an unknown symbol stops here
    quotes = {ex.market(s)["quote"] for s in req.symbols}
    if len(quotes) != 1:
        raise UserInputError(
            f"--symbols {','.join(req.symbols)} are quoted in {', '.join(sorted(quotes))}; a "
            "live run trades symbols of one quote currency."
        )
    quote = quotes.pop()
    lim = settings.exchange
    policy = RetryPolicy(
        retries=lim.retries,
        base_s=max(lim.backoff_s, 1e-3),
        cap_s=settings.live.retry_cap_s,
        max_wait_s=settings.live.retry_max_wait_s,
        sleep=retry_sleep or sleep,
    )
    if not (opts.run_dir / FILE_NAME).is_file():  # a new run: its order size must be sendable
        total = policy.call(ex.fetch_balance, "balances").get("total") or {}
        check_size(ex, req, cfg, float(total.get(quote) or 0.0))
    journal = Journal(opts.run_dir)
    restarted = journal.bind(identity(req))
    kill = KillSwitch(settings.live, journal)
    kill.assert_clear()
    om = OrderManager(
        ex,
        journal,
        run_id_of(journal),
        policy,
        clock_ms=lambda: int(clock() * 1000),
        say=say,
        hook=hook,
        unknown_orders=settings.live.unknown_orders,
    )
    now = om.clock_ms()
    journal.event(now, "start", restarted=restarted, dry_check=opts.dry_check)
    notes = om.reconcile(req.symbols)
    bal = om.balances()
    say(
        f"live on {req.exchange}{' (sandbox)' if settings.exchange.sandbox else ''}: "
        f"{', '.join(req.symbols)} {req.timeframe}, {req.strategy}; journal "
        f"{opts.run_dir} ({'continued' if restarted else 'new'}); reconciliation: "
        f"{len(notes)} difference(s) settled"
    )
    assets = [quote, *sorted({ex.market(s)["base"] for s in req.symbols})]
    say("balances: " + ", ".join(f"{a} {bal.get(a, 0.0):,.8g}" for a in assets))
    lv = settings.live

    def lim_text(v: Any, fmt: str) -> str:
        return "off" if v is None else format(v, fmt)

    say(
        f"limits: max drawdown {lim_text(lv.max_drawdown, '.1%')}, max daily loss "
        f"{lim_text(lv.max_daily_loss, '.1%')}, max position {lim_text(lv.max_position_notional, ',.2f')} "
        f"{quote}, max orders/min {lim_text(lv.max_orders_per_minute, 'd')}; order size "
        f"{cfg.size:g} ({cfg.size_type}); reconcile every {lv.reconcile_every} bars"
    )
    lookback = dict(strat.lookback())
    tfs = list(strat.timeframes)
    need = {tf: int(lookback.get(tf, strat.warmup)) + 2 for tf in tfs}
    need[req.timeframe] = max(need.get(req.timeframe, 0), strat.warmup + 2)
    from datasets.catalog import Catalog

    history, after = warm_history(
        ex, settings, req.symbols, need, om.clock_ms(), req.timeframe, Catalog(settings.data.path)
    )
    if history.bars.n < strat.warmup + 1:
        raise UserInputError(
            f"strategy {req.strategy} needs {strat.warmup:,} {req.timeframe} bars of warm-up; "
            f"{req.exchange} has {history.bars.n:,}. Pick a coarser --timeframe."
        )
    if opts.dry_check:
        from runner.window import CandleBook

        book = CandleBook(history, strat.warmup + 1)
        intents = last_intents(strat, book.window())
        said = describe_intents(intents, tuple(req.symbols)) or "no order"
        t = format_time(int(history.bars.time[-1]) + timeframe_ms(req.timeframe))
        say(f"dry check: at the close of {t} the strategy decides: {said}. Nothing was sent.")
        journal.event(om.clock_ms(), "dry_check", decision=said)
        journal.close()
        return {"dry_check": said, "orders_sent": 0}
    broker = CcxtBroker(
        om,
        tuple(req.symbols),
        cfg,
        kill,
        reconcile_every=lv.reconcile_every,
        flatten_on_kill=opts.flatten_on_kill,
        timeframe=req.timeframe,
        stop_limit_offset=lv.stop_limit_offset,
        stop_on_exchange=lv.stop_on_exchange,
    )
    broker.balances = bal
    broker.resume()  # the protective exits over the bars closed while the run was down
    informative = tuple(tf for tf in tfs if tf != req.timeframe)
    fopts = dict(clock=lambda: int(clock() * 1000), sleep=sleep, **(feed_options or {}))
    if req.mode == "ws":
        from adapters.exchange import public_ws_client
        from adapters.feeds import WsFeed

        ws = public_ws_client(req.exchange, settings.exchange, req.api_url)
        feed = WsFeed(ws, ex, req.symbols, req.timeframe, informative, after, **fopts)
    else:
        from adapters.feeds import RestFeed

        feed = RestFeed(ex, req.symbols, req.timeframe, informative, after, **fopts)
    feed.notify = say

    def on_status(st: Any) -> None:
        say(status_text(st, " " + quote))

    runner = Runner(strat, history, feed, broker, clock=clock, on_status=on_status, live=True)
    try:
        rec = runner.run(max_bars=req.max_bars, duration_s=req.duration_s, finish=False)
        om.sync()  # the fills of the last bar's orders, before the journal closes
    finally:
        summary = {
            "orders_sent": om.stats.sent,
            "resolved_by_query": om.stats.resolved_by_query,
            "rejected": om.stats.rejected,
            "canceled": om.stats.canceled,
            "adopted": om.stats.adopted,
            "missed_fills": om.stats.missed_fills,
            "retries": policy.retried,
        }
        journal.event(om.clock_ms(), "stop", **summary)
        journal.close()
    summary["bars"] = len(rec.time)
    summary["stopped_by"] = rec.stopped_by
    return summary
