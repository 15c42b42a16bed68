"""One runner for replay, paper and live: feed in, strategy on the trailing window, broker out.

    runner = Runner(strategy, history, feed, broker)
    record = runner.run(max_bars=100)

On each closed base bar the runner:

1. appends the bar (and the coarser candles closing with it) to its memory of candles;
2. hands the bar to the broker (``on_bar``), which reports the fills made during it;
3. calls the *same* ``Strategy.signals`` the backtest calls, on the trailing window of
   ``strategy.warmup + 1`` base bars (``strategies.window.trailing_window``'s cut), takes the
   last row's intents and hands them to the broker (``submit``), to execute from the next
   bar;
4. records equity, cash, positions and the latency from the bar's arrival to the order,
   and reports a status line.

No decision is taken before the memory holds ``strategy.warmup`` bars before the deciding
bar, the same first decision as a backtest of the same candles. The loop ends after
``max_bars`` bars, after ``duration_s`` seconds, when the feed ends, or on Ctrl-C (the bar in
progress is finished first); the broker then closes what is open at the last close, as a
backtest does at the end of its data. The clock is injected (tests run on a fake one).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.broker import Broker, Fill, Intents
from runner.window import CandleBook


@dataclass
class BarStatus:
    """What the status line shows for one bar."""

    time: int  # bar open time, ms UTC
    close_time: int
    equity: float
    positions: dict[str, float]
    signal: str  # last non-empty decision, e.g. "BTC/USDT long", or "-"
    fills: list[Fill]
    latency_ms: float  # bar arrival -> order handed to the broker (processing only)
    delay_ms: float | None  # wall clock at the order minus the bar's close (live feeds)
    intents: Intents | None = None  # the decision handed to the broker (None in warm-up)


@dataclass
class RunRecord:
    """Per-bar records of a run, ready to become a ``BacktestResult``."""

    symbols: tuple[str, ...]
    time: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    candles: list[Any] = field(default_factory=list)  # the base BarRow of every bar run
    end_fills: list[Fill] = field(default_factory=list)  # the broker's closing fills
    decisions: int = 0
    interrupted: bool = False
    stopped_by: str = ""
    equity_before_close: float = float("nan")


def last_intents(strategy: Any, window: Any) -> Intents:
    """The strategy's decisions at the window's last bar.

    ``Strategy.signals`` returns its output checked by the backtest's own rules
    (``engine.checks``) and in the kernel's dtypes; only the last row is handed on.
    """
    from engine import checks

    sig = strategy.signals(window)
    fields = {
        name: getattr(sig, name)
        for name in ("entries", "exits", "order_type", "price", "size", "sl", "tp", "trail")
    }
    return Intents.from_signals(checks.kernel_signals(fields), window.bars.n - 1)


def describe_intents(intents: Intents, symbols: tuple[str, ...]) -> str:
    parts = []
    for j, s in enumerate(symbols):
        e = int(intents.entries[0, j])
        if e:
            parts.append(f"{s} {'long' if e > 0 else 'short'}")
        elif bool(intents.exits[0, j]):
            parts.append(f"{s} exit")
    return ", ".join(parts)


class Runner:
    """See the module docstring.

    Parameters
    ----------
    strategy : strategies.base.Strategy
    history : datasets.bars.MultiBars
        Candles before the first bar the feed delivers (the warm-up), every timeframe the
        strategy reads; may be empty of rows.
    feed : object with ``steps()`` (adapters.feeds)
    broker : adapters.broker.Broker
    clock : callable returning seconds, optional
        Wall clock (``time.time``); the latency uses ``time.perf_counter``.
    on_status : callable taking a BarStatus, optional
    """

    def __init__(
        self,
        strategy: Any,
        history: Any,
        feed: Any,
        broker: Broker,
        *,
        clock: Callable[[], float] | None = None,
        on_status: Callable[[BarStatus], None] | None = None,
        live: bool = False,
    ) -> None:
        self.strategy = strategy
        self.feed = feed
        self.broker = broker
        self.symbols = tuple(broker.symbols)
        self.warmup = int(getattr(strategy, "warmup", 0) or 0)
        self.book = CandleBook(history, self.warmup + 1)
        self.clock = clock or _time.time
        self.on_status = on_status
        self.live = live
        self.tf_ms = int(history.bars.tf_ms)

    def run(
        self, max_bars: int | None = None, duration_s: float | None = None, finish: bool = True
    ) -> RunRecord:
        """Run until a stop condition (see the module docstring). ``finish=False`` leaves the
        broker's positions and resting orders open (a run to be continued from the broker's
        state, e.g. ``PaperBroker.snapshot``)."""
        rec = RunRecord(self.symbols)
        started = self.clock()
        last_signal = "-"
        steps = self.feed.steps()
        guard = _InterruptGuard()
        try:
            for step in guard.each(steps):
                t0 = _time.perf_counter()
                for tf, rows in step.informative.items():
                    for row in rows:
                        self.book.append(tf, row)
                self.book.append(self.book.base, step.base)
                fills = self.broker.on_bar(step.base)
                intents = None
                if self.book.n_base > self.warmup:
                    intents = last_intents(self.strategy, self.book.window())
                    self.broker.submit(step.base.time, intents)
                    rec.decisions += 1
                    said = describe_intents(intents, self.symbols)
                    if said:
                        last_signal = said
                latency = (_time.perf_counter() - t0) * 1000.0
                acct = self.broker.account()
                rec.time.append(int(step.base.time))
                rec.equity.append(acct.equity)
                rec.cash.append(acct.cash)
                rec.positions.append(np.array([acct.positions[s] for s in self.symbols]))
                rec.latency_ms.append(latency)
                rec.candles.append(step.base)
                if self.on_status is not None:
                    close = int(step.base.time) + self.tf_ms
                    delay = self.clock() * 1000.0 - close if self.live else None
                    self.on_status(
                        BarStatus(
                            int(step.base.time),
                            close,
                            acct.equity,
                            dict(acct.positions),
                            last_signal,
                            fills,
                            latency,
                            delay,
                            intents,
                        )
                    )
                if max_bars is not None and len(rec.time) >= max_bars:
                    rec.stopped_by = f"--max-bars {max_bars}"
                    break
                if duration_s is not None and self.clock() - started >= duration_s:
                    rec.stopped_by = "--duration"
                    break
            else:
                rec.stopped_by = "end of feed"
        except KeyboardInterrupt:
            rec.interrupted = True
            rec.stopped_by = "interrupt"
        finally:
            guard.restore()
            close = getattr(steps, "close", None)
            if close is not None:
                close()
            self.feed.close()
        if guard.pending:
            rec.interrupted = True
            rec.stopped_by = "interrupt"
        if rec.time:
            rec.equity_before_close = rec.equity[-1]
        if rec.time and finish:
            end_fills = self.broker.finish(None)
            rec.end_fills = list(end_fills)
            if end_fills:
                acct = self.broker.account()
                rec.equity[-1] = acct.equity
                rec.cash[-1] = acct.cash
                rec.positions[-1] = np.zeros(len(self.symbols))
        return rec


class _InterruptGuard:
    """Ctrl-C while a bar is processed is held until the bar is recorded (the broker and the
    record never disagree about the last bar); while the runner waits for the feed it stops
    at once. Only in the main thread (elsewhere signals cannot be handled)."""

    def __init__(self) -> None:
        import signal
        import threading

        self.pending = False
        self.in_bar = False
        self._old: Any = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.in_bar:
            self.pending = True
            return
        raise KeyboardInterrupt

    def each(self, steps: Any) -> Any:
        for step in steps:
            self.in_bar = True
            try:
                yield step
            finally:
                self.in_bar = False
            if self.pending:
                return

    def restore(self) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None


def record_bars(rec: RunRecord, timeframe: str, exchange: str = "", synthetic: bool = False):
    """The base candles of the bars a run went through, as ``datasets.bars.Bars``."""
    from datasets.bars import Bars

    m = len(rec.symbols)

    def stack(name: str) -> np.ndarray:
        if not rec.candles:
            return np.zeros((0, m))
        return np.ascontiguousarray(np.vstack([getattr(c, name) for c in rec.candles]))

    return Bars(
        timeframe,
        rec.symbols,
        np.asarray(rec.time, dtype=np.int64),
        stack("open"),
        stack("high"),
        stack("low"),
        stack("close"),
        stack("volume"),
        exchange=exchange,
        synthetic=synthetic,
    )


def to_result(rec: RunRecord, broker: Any, config: Any, timeframe: str, tf_ms: int, **meta: Any):
    """A ``engine.backtest.BacktestResult`` of a finished run (what the writers take)."""
    from engine.backtest import BacktestResult, SimRecords

    n = len(rec.time)
    m = len(rec.symbols)
    positions = np.vstack(rec.positions) if n else np.zeros((0, m))
    return BacktestResult(
        records=SimRecords(
            broker.fills_array(),
            broker.trades_array(),
            np.asarray(rec.equity, dtype=np.float64),
            np.asarray(rec.cash, dtype=np.float64),
            positions,
        ),
        config=config,
        symbols=rec.symbols,
        timeframe=timeframe,
        time=np.asarray(rec.time, dtype=np.int64),
        tf_ms=int(tf_ms),
        warmup=0,
        rejected=broker.rejected,
        exposed_bars=broker.exposed_bars,
        halted_bar=broker.halted_bar,
        expired=broker.expired,
        equity_before_close=rec.equity_before_close,
        **meta,
    )
