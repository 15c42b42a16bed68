"""Market feeds: closed candles of every symbol, one step per base bar.

A feed yields :class:`Step` objects in time order: the base bar of every symbol (NaN where a
symbol has no candle) and the coarser (informative) candles that close at the same time, so
a strategy deciding at the base bar's close sees exactly the candles closed by then.

* :class:`ReplayFeed` plays stored history (``datasets.bars.MultiBars``) as if it were live,
  at ``speed`` times real time or as fast as possible (``speed=0``).
* :class:`RestFeed` polls ``fetch_ohlcv`` of a public ccxt client, aligned to bar closes.

Rules every live feed keeps (:class:`CandleAssembler`): a candle is emitted only once it
is closed (its close time has passed on the exchange clock), and never twice; a candle at
or before the last one emitted for its symbol (a duplicate, or out of order) is ignored and
counted; a jump over missing candles is reported as a gap and never filled in.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.broker import BarRow
from gogo2.errors import Gogo2Error
from gogo2.timeframes import format_time, timeframe_ms


@dataclass(frozen=True)
class Step:
    """One closed base bar and the coarser candles closing with it."""

    base: BarRow
    informative: dict[str, list[BarRow]] = field(default_factory=dict)


@dataclass
class FeedStats:
    duplicates: int = 0  # candles ignored: at or before the last emitted one
    gaps: list[str] = field(default_factory=list)
    fallbacks: int = 0  # times the websocket failed over to REST polling
    reconnects: int = 0


def _row(time: int, values: np.ndarray) -> BarRow:
    """``values`` (5, m): open, high, low, close, volume."""
    return BarRow(int(time), values[0], values[1], values[2], values[3], values[4])


class ReplayFeed:
    """Stored candles from ``start`` on, one step per base bar, as a live feed delivers them.

    Parameters
    ----------
    data : MultiBars
        Base and informative candles (the warm-up before ``start`` included or not: only
        bars from ``start`` are played).
    start : int
        Open time (ms) of the first base bar to play.
    speed : float
        0 = as fast as possible; N = N times real time (a 1m bar every 60 / N s).
    sleep : callable
        Injected for tests.
    """

    def __init__(
        self,
        data: Any,
        start: int,
        speed: float = 0.0,
        sleep: Callable[[float], None] = _time.sleep,
    ) -> None:
        self.data = data
        self.start = int(start)
        self.speed = float(speed)
        self.sleep = sleep
        self.stats = FeedStats()

    def steps(self) -> Iterator[Step]:
        base = self.data.bars
        first = int(np.searchsorted(base.time, self.start, side="left"))
        close = base.close_time
        others = {tf: b for tf, b in self.data.frames.items() if tf != self.data.base}
        # informative candles closing in (previous base close, this base close]
        pos = {
            tf: int(np.searchsorted(b.close_time, close[first - 1] if first else -(2**62), "right"))
            for tf, b in others.items()
        }
        wait = base.tf_ms / 1000.0 / self.speed if self.speed > 0 else 0.0
        for r in range(first, base.n):
            if wait:
                self.sleep(wait)
            info: dict[str, list[BarRow]] = {}
            for tf, b in others.items():
                stop = int(np.searchsorted(b.close_time, close[r], side="right"))
                rows = [
                    BarRow(int(b.time[k]), b.open[k], b.high[k], b.low[k], b.close[k], b.volume[k])
                    for k in range(pos[tf], stop)
                ]
                pos[tf] = stop
                if rows:
                    info[tf] = rows
            yield Step(
                BarRow(
                    int(base.time[r]),
                    base.open[r],
                    base.high[r],
                    base.low[r],
                    base.close[r],
                    base.volume[r],
                ),
                info,
            )

    def close(self) -> None:
        pass


class CandleAssembler:
    """Collect candles per (symbol, timeframe) and release complete, closed bars in order.

    ``offer`` takes raw ccxt candles ``[time, o, h, l, c, v]``; ``ready(now)`` returns the
    steps whose base bar is complete for every symbol, or whose wait (``grace_ms`` after its
    close) is over: then a symbol still without a candle gets NaN and a gap is reported.
    """

    def __init__(
        self,
        symbols: tuple[str, ...],
        base: str,
        informative: tuple[str, ...],
        after: dict[str, int],
        grace_ms: int,
        stats: FeedStats,
    ) -> None:
        self.symbols = tuple(symbols)
        self.col = {s: j for j, s in enumerate(self.symbols)}
        self.base = base
        self.timeframes = (base, *informative)
        self.tf_ms = {tf: timeframe_ms(tf) for tf in self.timeframes}
        # last open time emitted per timeframe (candles at or before it are ignored)
        self.last = {tf: int(after[tf]) for tf in self.timeframes}
        self.last_sym = {(s, tf): int(after[tf]) for s in self.symbols for tf in self.timeframes}
        self.pending: dict[str, dict[int, np.ndarray]] = {tf: {} for tf in self.timeframes}
        self.grace_ms = int(grace_ms)
        self.stats = stats

    def offer(self, symbol: str, timeframe: str, candles: list, now_ms: int) -> int:
        """Take the closed candles of ``candles``; returns how many were new."""
        step = self.tf_ms[timeframe]
        j = self.col[symbol]
        new = 0
        for c in candles:
            t = int(c[0])
            if t + step > now_ms:
                continue  # still open: never emitted
            if t <= self.last_sym[(symbol, timeframe)]:
                self.stats.duplicates += 1  # emitted before: a repeat or out of order
                continue
            row = self.pending[timeframe].get(t)
            if row is None:
                row = np.full((5, len(self.symbols)), np.nan)
                self.pending[timeframe][t] = row
            if row[0, j] == row[0, j]:
                continue  # already held, not released yet (fetched again while waiting)
            row[:, j] = [float(c[1]), float(c[2]), float(c[3]), float(c[4]), float(c[5] or 0.0)]
            new += 1
        return new

    def _complete(self, tf: int | str, t: int, now_ms: int) -> bool:
        row = self.pending[tf][t]
        if not np.isnan(row[0]).any():
            return True
        return now_ms >= t + self.tf_ms[tf] + self.grace_ms

    def due(self, now_ms: int) -> list[str]:
        """Timeframes with a bar closed by ``now_ms`` that has not been released yet."""
        out = []
        for tf in self.timeframes:
            step = self.tf_ms[tf]
            if self.last[tf] + 2 * step <= now_ms:
                out.append(tf)
        return out

    def ready(self, now_ms: int) -> list[Step]:
        steps: list[Step] = []
        base_tf = self.base
        for t in sorted(self.pending[base_tf]):
            if not self._complete(base_tf, t, now_ms):
                break
            close = t + self.tf_ms[base_tf]
            # the coarser candles closing by this close must be in first
            info: dict[str, list[BarRow]] = {}
            blocked = False
            for tf in self.timeframes[1:]:
                rows = []
                for ti in sorted(self.pending[tf]):
                    if ti + self.tf_ms[tf] > close:
                        break
                    if not self._complete(tf, ti, now_ms):
                        blocked = True
                        break
                    rows.append(ti)
                expect = close - self.tf_ms[tf]
                if (
                    not blocked
                    and close % self.tf_ms[tf] == 0
                    and expect > self.last[tf]
                    and expect not in rows
                    and now_ms < close + self.grace_ms
                ):
                    blocked = True  # its candle closing now has not arrived yet
                if blocked:
                    break
                out = []
                for ti in rows:
                    values = self.pending[tf].pop(ti)
                    self._release(tf, ti, values)
                    out.append(_row(ti, values))
                if out:
                    info[tf] = out
            if blocked:
                break
            values = self.pending[base_tf].pop(t)
            self._release(base_tf, t, values)
            steps.append(Step(_row(t, values), info))
        return steps

    def _release(self, tf: str, t: int, values: np.ndarray) -> None:
        step = self.tf_ms[tf]
        for s, j in self.col.items():
            if values[0, j] != values[0, j]:
                continue
            prev = self.last_sym[(s, tf)]
            if t - prev > step:
                missing = (t - prev) // step - 1
                self.stats.gaps.append(
                    f"gap: {s} {tf} has no candle from {format_time(prev + step)} to "
                    f"{format_time(t)} ({missing} candle{'s' if missing != 1 else ''} "
                    "missing; not filled in)"
                )
            self.last_sym[(s, tf)] = t
        self.last[tf] = max(self.last[tf], t)


class RestFeed:
    """Closed candles by ``fetch_ohlcv`` polling, aligned to the bar closes.

    Sleeps until a bar's close (plus ``delay_s``), fetches the candles after the last one
    emitted for every (symbol, timeframe), and repeats every ``poll_s`` until the bar is
    complete or ``grace_s`` has passed. ``clock`` (ms) and ``sleep`` are injectable, so a
    test runs bars of any length on a fake clock.
    """

    def __init__(
        self,
        exchange: Any,
        symbols: tuple[str, ...],
        base: str,
        informative: tuple[str, ...],
        after: dict[str, int],
        *,
        clock: Callable[[], int] | None = None,
        sleep: Callable[[float], None] = _time.sleep,
        delay_s: float = 0.5,
        poll_s: float = 1.0,
        grace_s: float = 10.0,
        fetch: Callable[..., list] | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbols = tuple(symbols)
        self.base = base
        self.informative = tuple(informative)
        self.clock = clock or (lambda: int(_time.time() * 1000))
        self.sleep = sleep
        self.delay_s = delay_s
        self.poll_s = poll_s
        self.stats = FeedStats()
        self.assembler = CandleAssembler(
            self.symbols, base, self.informative, after, int(grace_s * 1000), self.stats
        )
        self._fetch = fetch or self._fetch_ohlcv
        self.events: list[str] = []
        self.notify: Callable[[str], None] | None = None
        self._failing = False

    def _event(self, text: str) -> None:
        self.events.append(text)
        if self.notify is not None:
            self.notify(text)

    def _fetch_ohlcv(self, symbol: str, timeframe: str, since: int) -> list:
        from datasets.exchange_client import call_with_retry

        return call_with_retry(
            lambda: self.exchange.fetch_ohlcv(symbol, timeframe, since=since, limit=500),
            exchange=self.exchange,
            retries=3,
            backoff_s=0.5,
            sleep=self.sleep,
            symbol=symbol,
            timeframe=timeframe,
        )

    def poll(self) -> int:
        """Fetch what may have closed since the last emitted candles; returns new candles."""
        now = self.clock()
        new = 0
        for tf in self.assembler.timeframes:
            step = self.assembler.tf_ms[tf]
            for s in self.symbols:
                last = self.assembler.last_sym[(s, tf)]
                if last + 2 * step > now:
                    continue  # nothing closed since the last candle emitted
                try:
                    rows = self._fetch(s, tf, last + step)
                except Gogo2Error as e:
                    # the exchange is down or unreachable: keep going, the candles are asked
                    # for again at the next poll (from the last one emitted), and whatever
                    # never comes is reported as a gap, never invented
                    if not self._failing:
                        self._event(f"REST: {e} Polling again.")
                    self._failing = True
                    continue
                if self._failing:
                    self._event("REST: answering again")
                    self._failing = False
                new += self.assembler.offer(s, tf, rows, self.clock())
        return new

    def steps(self) -> Iterator[Step]:
        tf_ms = self.assembler.tf_ms[self.base]
        while True:
            self.poll()
            ready = self.assembler.ready(self.clock())
            yield from ready
            if ready:
                continue
            now = self.clock()
            nxt = self.assembler.last[self.base] + 2 * tf_ms  # close of the next bar
            wait = (nxt - now) / 1000.0 + self.delay_s if nxt > now else self.poll_s
            self.sleep(max(wait, 0.001))

    def close(self) -> None:
        pass


class WsFeed(RestFeed):
    """Closed candles from ``ccxt.pro``'s ``watch_ohlcv``, with REST polling as the fallback.

    One task per (symbol, timeframe) loops on ``watch_ohlcv`` in a background event loop and
    passes a copy of the candle cache to the feed. A candle taken from the socket counts as
    closed only once a later candle of the same series has arrived (Binance sends the
    final version of a candle before the next one opens), and its close time has passed.
    When the socket fails, drops or stays quiet past ``grace_s`` after a bar's close, the bar
    is fetched by REST polling (``RestFeed.poll``); the watch tasks reconnect with
    exponential backoff (``backoff_s`` doubling up to ``backoff_max_s``) and the feed
    returns to the socket when candles flow again. Both sources go through the same
    :class:`CandleAssembler`, so a candle is emitted once whichever source brought it.
    """

    def __init__(
        self,
        ws_exchange: Any,
        rest_exchange: Any,
        symbols: tuple[str, ...],
        base: str,
        informative: tuple[str, ...],
        after: dict[str, int],
        *,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        wait_s: float = 0.05,
        **kw: Any,
    ) -> None:
        super().__init__(rest_exchange, symbols, base, informative, after, **kw)
        import queue

        self.ws = ws_exchange
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.wait_s = wait_s
        self.queue: queue.Queue = queue.Queue()
        self.healthy = False
        self._series: dict[tuple[str, str], dict[int, list]] = {}
        self._loop: Any = None
        self._thread: Any = None
        self._stop = False

    # -- the socket side (background thread) --------------------------------------------------

    def _start(self) -> None:
        import asyncio
        import threading

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            tasks = [
                self._loop.create_task(self._watch(s, tf))
                for tf in self.assembler.timeframes
                for s in self.symbols
            ]
            try:
                self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            finally:
                try:
                    self._loop.run_until_complete(self.ws.close())
                except Exception:  # closing a socket that is already dead
                    pass
                self._loop.close()

        self._thread = threading.Thread(target=run, name="ws-feed", daemon=True)
        self._thread.start()

    async def _watch(self, symbol: str, timeframe: str) -> None:
        import asyncio

        delay = self.backoff_s
        while not self._stop:
            try:
                candles = await self.ws.watch_ohlcv(symbol, timeframe)
                self.queue.put(("candles", symbol, timeframe, [list(c) for c in candles]))
                delay = self.backoff_s
            except asyncio.CancelledError:
                raise
            except Exception as e:  # any socket failure means: fall back, reconnect
                self.queue.put(("error", symbol, timeframe, f"{type(e).__name__}: {e}"))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)

    # -- the consumer side ----------------------------------------------------------------------

    def _drain(self, block: bool) -> None:
        import queue

        try:
            item = self.queue.get(timeout=self.wait_s) if block else self.queue.get_nowait()
        except queue.Empty:
            return
        while True:
            kind, symbol, tf, payload = item
            if kind == "candles":
                if not self.healthy:
                    self.healthy = True
                    if self.events:
                        self.stats.reconnects += 1
                    self._event("websocket: streaming")
                # ccxt returns the candles updated since its last answer; a candle is final
                # once a later one of the same series has been seen
                held = self._series.setdefault((symbol, tf), {})
                for c in payload:
                    held[int(c[0])] = c
                newest = max(held)
                final = [held.pop(t) for t in sorted(held) if t < newest]
                self.assembler.offer(symbol, tf, final, self.clock())
            else:
                if self.healthy:
                    self.healthy = False
                    self.stats.fallbacks += 1
                    self._event(f"websocket: {payload}; polling REST until it is back")
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return

    def steps(self) -> Iterator[Step]:
        tf_ms = self.assembler.tf_ms[self.base]
        grace = self.assembler.grace_ms
        self._start()
        try:
            while True:
                self._drain(block=True)
                now = self.clock()
                nxt_close = self.assembler.last[self.base] + 2 * tf_ms
                late = now >= nxt_close + min(grace, tf_ms) // 2
                if not self.healthy or late:
                    if self.healthy and late:
                        self._event("websocket: quiet past the close; REST for this bar")
                    self.poll()
                ready = self.assembler.ready(self.clock())
                yield from ready
                if ready:
                    continue
                now = self.clock()
                nxt_close = self.assembler.last[self.base] + 2 * tf_ms
                if now < nxt_close:
                    self.sleep(max((nxt_close - now) / 1000.0 + self.delay_s, 0.001))
                elif not self.healthy:
                    self.sleep(self.poll_s)
                else:
                    self.sleep(0.05)
        finally:
            self.close()

    def close(self) -> None:
        import asyncio

        self._stop = True
        loop = self._loop
        if loop is not None and self._thread is not None and self._thread.is_alive():

            def cancel_all() -> None:
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            loop.call_soon_threadsafe(cancel_all)
            self._thread.join(5)
