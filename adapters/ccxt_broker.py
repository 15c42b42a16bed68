"""The exchange broker: the runner's broker seam on a real spot account, through ccxt.

Same four calls as the paper broker (``adapters.broker``); every order goes through the
order manager (``adapters.orders``), so it is journaled before it is sent, has a client id
derived from (run, bar time, symbol, intent), and is never doubled by a retry.

* ``on_bar(bar)``: brings the journal's open orders up to date and stores the fills made
  since (every ``reconcile_every`` bars a full reconciliation after that), reads the
  balances, and checks the kill switch on the equity. A resting limit or stop-limit entry
  that has rested ``order_ttl`` bars of its symbol unfilled is canceled there, as the
  backtest expires it (:meth:`CcxtBroker._expire`).
* ``submit(time, intents)``: turns each symbol's decision into orders, on a spot account:

  - a long entry with no position buys ``size`` (the backtest's sizing: fraction of equity,
    quote amount or units) at market, or as a limit order at the intent's price;
  - a stop entry is a stop-limit: ccxt ``create_order(symbol, "limit", "buy", amount,
    limit, {"stopPrice": stop})``, which ccxt sends to Binance spot as ``STOP_LOSS_LIMIT``
    (``quantity``, ``price``, ``stopPrice``, ``timeInForce=GTC``). The exchange triggers it
    when the last price reaches the stop, then it is a limit buy at ``limit = stop * (1 +
    stop_limit_offset)`` (``live.stop_limit_offset``); the amount is sized at that limit,
    the most the funds held for it can pay. A stop already crossed cannot rest (Binance
    refuses a buy stop at or below the last price: -2010 "Stop price would trigger
    immediately.", ccxt ``OrderImmediatelyFillable``); as the backtest fills a crossed stop
    at the next open, a stop at or below the last close is sent as a market buy, and a stop
    the exchange refuses that way is followed once by a market buy under its own client id
    (intent :data:`CROSSED`); the refused stop is journaled as rejected and never resent.
    Both are journaled as ``stop_crossed`` events with the reason;
  - an exit, or a short entry while long, sells the position this run holds at market; a
    spot account cannot be short, and ``run_live`` starts only with ``allow_short`` false,
    under which the backtest too turns a short entry into an exit (nothing while flat);
  - a new entry first cancels the symbol's entry orders still resting; an exit signal (or a
    short entry) cancels them too, as in the backtest; a fill that raced such a cancel is
    stored first (reported at the next ``on_bar``): an exit sells it too, and a new entry
    is not sent on top of the position it opened;
  - stop-loss, take-profit and trailing exits are kept client-side
    (:class:`adapters.protect.ProtectiveExits`): the entry's fractions are journaled before
    it is sent; once it fills, the kernel checks each closed bar's range against the levels,
    from the bar of its first fill and at its volume-weighted price, and a triggered exit
    sells the position at market at that bar's close (bar resolution, not an exchange-side
    stop order), its fills stored at once; ``resume()`` (at start) and each bar first step
    the watches over the closed bars they missed, fetched from the exchange; an exit
    first cancels the rest of a partly filled entry (once the exit sold the position, that
    rest would reopen it) and sells a fill that raced the cancel with the rest;
  - with ``live.stop_on_exchange`` the stop-loss also rests on the exchange as a
    ``STOP_LOSS_LIMIT`` sell (:mod:`adapters.exchange_stop`), canceled before any other
    sell of the symbol;
  - no second sell is sent for a symbol while one of the run's sells is still open.

* ``account()``: cash = the quote balance, positions = the run's net fills, equity = quote
  plus the traded base assets at the last close.
* ``finish()``: nothing is closed (a stopped live run leaves its orders and positions to the
  next start of the same ``--run``); returns no fills.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adapters.broker import Account, BarRow, Fill, Intents
from engine import enums
from gogo2.timeframes import timeframe_ms

#: intent of the market buy sent when the exchange refuses a stop entry as already crossed
CROSSED = "entry long (stop crossed)"


class CcxtBroker:
    def __init__(
        self,
        om: Any,
        symbols: tuple[str, ...],
        config: Any,
        kill: Any,
        *,
        reconcile_every: int = 60,
        flatten_on_kill: bool = False,
        timeframe: str = "1m",
        stop_limit_offset: float = 0.002,
        stop_on_exchange: bool = False,
    ) -> None:
        from adapters.exchange_stop import ExchangeStops
        from adapters.protect import ProtectiveExits

        self.om = om
        self.ex = om.ex
        self.symbols = tuple(symbols)
        self.config = config
        self.kill = kill
        self.reconcile_every = int(reconcile_every)
        self.flatten_on_kill = flatten_on_kill
        self.stop_limit_offset = float(stop_limit_offset)
        self.quote = self.ex.market(self.symbols[0])["quote"]
        self.bases = {s: self.ex.market(s)["base"] for s in self.symbols}
        self.close = {s: math.nan for s in self.symbols}
        self.balances: dict[str, float] = {}
        self.bars = 0
        self.last_time: int | None = None
        self.said: set[str] = set()
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self.protect = ProtectiveExits(self.symbols, config, self.tf_ms)
        saved = om.journal.state("protect")
        if saved is not None:
            self.protect.unpack(saved)
        # the stop-losses resting on the exchange, placed when live.stop_on_exchange is on
        # (one left by an earlier start with it on is still canceled before another sell)
        self.stops = ExchangeStops(self, stop_limit_offset)
        self.stop_on_exchange = bool(stop_on_exchange)
        self.queued: list[dict] = []  # fills stored outside on_bar, reported by the next one

    # -- the seam ----------------------------------------------------------------------------

    def on_bar(self, bar: BarRow) -> list[Fill]:
        now = self.om.clock_ms()
        self.bars += 1
        self.last_time = int(bar.time)
        for j, s in enumerate(self.symbols):
            c = float(bar.close[j])
            if math.isfinite(c):
                self.close[s] = c
        new, self.queued = self.queued + self.om.sync(), []
        if self.bars % self.reconcile_every == 0:
            before = {f["trade_id"] for f in self.om.journal.fills()}
            self.om.reconcile(self.symbols, say_all=True)
            new += [f for f in self.om.journal.fills() if f["trade_id"] not in before]
        new += self._expire(bar)
        new += self._protect(bar)
        self.balances = self.om.balances()
        acct = self.account()
        self.om.journal.event(now, "bar", time=int(bar.time), equity=acct.equity, cash=acct.cash)
        try:
            self.kill.check_equity(now, acct.equity)
        except Exception:
            self._on_kill()
            raise
        return [
            Fill(
                int(f["time"]),
                f["symbol"],
                1 if f["side"] == "buy" else -1,
                "fill",
                float(f["price"]),
                float(f["qty"]),
                float(f.get("fee") or 0.0),
            )
            for f in new
        ]

    def submit(self, time: int, intents: Intents) -> None:
        if not intents.any():
            return
        try:
            for j, s in enumerate(self.symbols):
                self._symbol(int(time), j, s, intents)
        except Exception as e:
            from adapters.killswitch import KillSwitchTripped

            if isinstance(e, KillSwitchTripped):
                self._on_kill()
            raise

    def account(self) -> Account:
        pos = self.positions()
        quote = self.balances.get(self.quote, math.nan)
        equity = quote
        for s in self.symbols:
            equity += self.balances.get(self.bases[s], 0.0) * self.close[s]
        return Account(cash=quote, equity=equity, positions=pos)

    def finish(self, time: int | None = None) -> list[Fill]:
        return []

    # -- protective exits (adapters.protect) --------------------------------------------------

    def resume(self) -> None:
        """At start: watch the positions held (their entries may have filled while the run
        was down) and step the watches over the bars that closed while it was down, fetched
        from the exchange; a level crossed then sells at once."""
        now = self.om.clock_ms()
        self._watch()
        self.queued += self._protect_until(now // self.tf_ms * self.tf_ms)
        if self.stop_on_exchange:
            self.queued += self.stops.arrange(late=True)
        self.om.journal.save_state(self.protect.pack(), key="protect")

    def _protect(self, bar: BarRow) -> list[dict]:
        """The watches over the bar just closed (and any bar before it they missed); the
        fills of the exits sent, stored at once so the strategy's decision at this close
        sees the position sold."""
        self._watch()
        new = self._protect_until(int(bar.time))
        new += self._exits(int(bar.time), self.protect.step(bar.time, *_ohlc(bar)), bar.close)
        if self.stop_on_exchange:  # after the bar's own check: a level it crossed sold above
            new += self.stops.arrange()
        self.om.journal.save_state(self.protect.pack(), key="protect")
        return new

    def _watch(self) -> None:
        """Arm (or follow) the watch of each position from the journal: the last entry that
        bought it, its fractions journaled before it was sent, its fills so far."""
        pos = self.positions()
        fills: list[dict] | None = None
        for j, s in enumerate(self.symbols):
            if pos[s] < self.om.amount_step(s):
                self.protect.disarm(j)
                continue
            fills = self.om.journal.fills() if fills is None else fills
            buys = [f for f in fills if f["symbol"] == s and f["side"] == "buy"]
            if not buys:
                continue
            cid = max(buys, key=lambda f: f["time"])["client_id"]
            spec = self.om.journal.meta(f"protect.{cid}") if cid else None
            if not spec:
                self.protect.disarm(j)  # the position's last entry carried no exits
                continue
            mine = [f for f in buys if f["client_id"] == cid]
            qty = sum(f["qty"] for f in mine)
            price = sum(f["qty"] * f["price"] for f in mine) / qty
            if self.protect.watching(j) == cid:
                if not self.protect.fired[j]:
                    self.protect.refill(j, qty, price, pos[s])
                continue
            first = min(f["time"] for f in mine)
            row = self.om.journal.order(cid)
            inside = row is not None and row.type != "market"
            fracs = tuple(float(x) for x in spec.split(","))
            since = first // self.tf_ms * self.tf_ms
            self.protect.arm(j, cid, pos[s], qty, price, fracs, since, inside)
            self.om.journal.event(
                self.om.clock_ms(), "protect_armed", symbol=s, entry=cid, qty=pos[s], price=price
            )

    def _protect_until(self, until: int) -> list[dict]:
        """Step the watches over the closed bars before ``until`` they have not seen."""
        behind = [j for j in range(len(self.symbols)) if self.protect.behind(j, until)]
        if not behind:
            return []
        now = self.om.clock_ms()
        candles: dict[int, dict[int, np.ndarray]] = {}
        for j in behind:
            start = int(self.protect.last[j]) + self.tf_ms
            for row in self._candles(self.symbols[j], start, min(until, now - self.tf_ms + 1)):
                candles.setdefault(int(row[0]), {})[j] = row
        new: list[dict] = []
        m = len(self.symbols)
        for t in sorted(candles):
            ohlc = np.full((4, m), np.nan)
            for j, row in candles[t].items():
                ohlc[:, j] = row[1:5]
            new += self._exits(t, self.protect.step(t, *ohlc), ohlc[3], late=True)
        return new

    def _candles(self, s: str, start: int, end: int) -> list[np.ndarray]:
        """The exchange's candles of ``s`` opened in [start, end), oldest first."""
        out: list[np.ndarray] = []
        since = start
        while since < end:
            raw = self.om.policy.call(
                lambda since=since: self.ex.fetch_ohlcv(s, self.timeframe, since),
                f"candles of {s}",
            )
            rows = [np.asarray(r[:6], dtype=np.float64) for r in raw or []]
            rows = [r for r in rows if since <= r[0] < end]
            if not rows:
                break
            out += rows
            since = int(rows[-1][0]) + self.tf_ms
        return out

    def _exits(self, time: int, fired: list[tuple[int, str]], close: Any, late=False) -> list:
        new: list[dict] = []
        pos = self.positions() if fired else {}
        for j, kind in fired:
            s = self.symbols[j]
            if pos[s] < self.om.amount_step(s) or self._selling(s):
                continue
            # the exit closes the position: the rest of a partly filled entry must not
            # reopen it (the backtest's entry filled whole, then closed); a fill that
            # raced the cancel is sold with the rest
            if self._cancel_entries(s, f"canceled by the {kind.replace('_', ' ')} exit"):
                new += self.om.fetch_trades(s)
                pos = self.positions()
            if self.stops.current(s) is not None:
                if kind == "stop_loss":  # the exchange's stop is selling it: no second sell
                    new += self.stops.refresh(s)
                    continue
                new += self.stops.clear(s, f"replaced by a {kind} sell")
                pos = self.positions()
                if pos[s] < self.om.amount_step(s):
                    continue
            now = self.om.clock_ms()
            self.om.journal.event(
                now, "protective_exit", symbol=s, exit=kind, bar=int(time), late=late
            )
            self.kill.check_order(now, s, 0.0)
            ref = float(close[j]) if math.isfinite(float(close[j])) else self.close[s]
            row = self.om.submit(s, "sell", "market", pos[s], None, int(time), kind, ref)
            if row is None and self._never_sent(int(time), s, kind):
                # journaled, then the process died before the exchange had it: the exit is
                # still due, as a decision of the bar open now (another client id)
                bar = now // self.tf_ms * self.tf_ms
                row = self.om.submit(s, "sell", "market", pos[s], None, bar, kind, ref)
            if row is not None:
                new += self.om.fetch_trades(s)
        return new

    def _never_sent(self, time: int, s: str, kind: str) -> bool:
        from adapters.orders import client_order_id

        cid = client_order_id(self.om.run_id, time, s, kind)
        return any(d.get("client_id") == cid for _, _, d in self.om.journal.events("never_sent"))

    def _selling(self, s: str) -> bool:
        """A sell of ``s`` is on its way (the resting exchange stop-loss does not count:
        it is canceled before another sell)."""
        from adapters.exchange_stop import is_stop

        return any(
            r.symbol == s and r.side == "sell" and not is_stop(r)
            for r in self.om.journal.orders(live_only=True)
        )

    # -- decisions ---------------------------------------------------------------------------

    def positions(self) -> dict[str, float]:
        base = self.om.expected_base(self.symbols)
        return {s: base.get(self.bases[s], 0.0) for s in self.symbols}

    def _note(self, now: int, key: str, text: str) -> None:
        self.om.journal.event(now, "skipped", reason=text)
        if key not in self.said:
            self.said.add(key)
            self.om.say(text)

    def _symbol(self, time: int, j: int, s: str, it: Intents) -> None:
        now = self.om.clock_ms()
        entry = int(it.entries[0, j])
        exit_ = bool(it.exits[0, j])
        pos = self.positions()[s]
        price = self.close[s]
        step = self.om.amount_step(s)
        long = pos >= step
        # as in the backtest, an exit signal cancels a resting entry, and so does a new one;
        # a fill that raced the cancel is stored first: the exit sells it too, and a new
        # entry is not sent on top of it
        why = "canceled by an exit signal" if exit_ or entry < 0 else "replaced by a new entry"
        if (exit_ or entry < 0 or (entry > 0 and not long)) and self._cancel_entries(s, why):
            self.queued += self.om.fetch_trades(s)
            pos = self.positions()[s]
            long = pos >= step
        if (exit_ or entry < 0) and long and not self._selling(s):
            if self.stops.current(s) is not None:  # cancel the exchange stop first
                self.queued += self.stops.clear(s, "replaced by an exit")
                pos = self.positions()[s]
                long = pos >= step
        if (exit_ or entry < 0) and long and not self._selling(s):
            self.kill.check_order(now, s, 0.0)
            self.om.submit(s, "sell", "market", pos, None, time, "exit", price)
        if entry < 0 and not long and self.config.allow_short:  # not through run_live
            self._note(now, f"short:{s}", f"{s}: short entry skipped (a spot account is long only)")
        if entry <= 0 or long:
            return
        flags = it.flags
        fracs = [float(a[0, j]) if flags[f] else math.nan for f, a in _protective(it)]
        otype = int(it.order_type[0, j]) if flags[enums.F_ORDER_TYPE] else enums.MARKET
        px = float(it.price[0, j]) if flags[enums.F_PRICE] else math.nan
        size = float(it.size[0, j]) if flags[enums.F_SIZE] else math.nan
        if not math.isfinite(size):
            size = float(self.config.size)
        if otype != enums.MARKET and not math.isfinite(px):
            otype = enums.MARKET
        if otype == enums.STOP and not px > price:
            # already crossed: the exchange would refuse the stop ("would trigger
            # immediately"); the backtest fills such a stop at the next open, as a taker
            self._crossed(now, s, f"stop {px:,.8g} is at or below the last close {price:,.8g}")
            otype = enums.MARKET
        limit = px * (1.0 + self.stop_limit_offset) if otype == enums.STOP else px
        ref = limit if otype != enums.MARKET else price
        amount = self._amount(size, ref)
        self.kill.check_order(now, s, amount * ref)
        self._arm(time, s, "entry long", fracs)
        if otype == enums.LIMIT:
            self.om.submit(s, "buy", "limit", amount, px, time, "entry long", ref)
        elif otype == enums.STOP:
            row = self.om.submit(
                s, "buy", "limit", amount, limit, time, "entry long", ref, stop_price=px
            )
            if row is not None and row.status == "rejected" and self._immediate():
                # the price passed the stop between the bar's close and the order
                self._crossed(
                    now,
                    s,
                    "the exchange refused the stop-limit: its stop would trigger immediately",
                )
                self.kill.check_order(now, s, amount * ref)
                self._arm(time, s, CROSSED, fracs)
                self.om.submit(s, "buy", "market", amount, None, time, CROSSED, price)
        else:
            row = self.om.submit(s, "buy", "market", amount, None, time, "entry long", ref)
            if self.stop_on_exchange and row is not None and row.filled > 0:
                # the fill is known now: put its stop on the exchange at once
                self.queued += self.om.fetch_trades(s)
                self._watch()
                self.queued += self.stops.arrange()
                self.om.journal.save_state(self.protect.pack(), key="protect")

    def _expire(self, bar: BarRow) -> list[dict]:
        """Cancel the resting limit and stop-limit entries that have rested ``order_ttl`` bars
        of their symbol unfilled, as the backtest expires them; returns the fills found.

        The count is the backtest's: a bar counts when its symbol has a candle in it (a
        missing candle does not), the order can still fill on the bar that brings its age to
        ``order_ttl`` and expires at that bar's close. Bars that closed while the run was
        stopped count too (their candles fetched from the exchange): an order whose age
        reached ``order_ttl`` then is canceled at the first bar after the restart. The age is
        kept in the journal (meta ``ttl.<client id>``: age and the last bar counted) and is
        advanced once per bar, so a restarted run carries it on. The cancel is checked against the exchange: an order
        that filled before the cancel reached it keeps its fill."""
        ttl = int(getattr(self.config, "order_ttl", 0) or 0)
        if ttl <= 0:
            return []
        new: list[dict] = []
        for row in self.om.journal.orders(live_only=True):
            if row.status == "pending" or row.type != "limit" or not row.intent.startswith("entry"):
                continue
            j = self.symbols.index(row.symbol) if row.symbol in self.symbols else -1
            key = f"ttl.{row.client_id}"
            saved = self.om.journal.meta(key)
            age, last = (0, row.bar_time) if saved is None else (int(x) for x in saved.split(","))
            t = int(bar.time)
            if age < ttl and j >= 0 and t > last:
                # the closed bars since the last one counted that this run did not see (it
                # was stopped) count when the exchange has a candle of the symbol in them
                missed = (
                    self._candles(row.symbol, last + self.tf_ms, t) if t - last > self.tf_ms else []
                )
                seen = math.isfinite(float(bar.high[j]))
                age, last = min(ttl, age + len(missed) + int(seen)), t
                self.om.journal.set_meta(key, f"{age},{last}")
            if age < ttl:
                continue
            now = self.om.clock_ms()
            why = f"expired: unfilled after {age} bars of {row.symbol} (backtest.order_ttl {ttl})"
            self.om.journal.event(
                now, "expired", client_id=row.client_id, symbol=row.symbol, bars=age, ttl=ttl
            )
            self.om.cancel(row, why)
            got = self.om.journal.order(row.client_id)
            if got is None:
                continue
            if got.filled > self.om.journal.filled_qty(row.client_id) + 1e-12:
                new += self.om.fetch_trades(row.symbol)  # it filled before the cancel arrived
            if got.status == "canceled":
                self.om.journal.update_order(row.client_id, self.om.clock_ms(), reason=why)
                self.om.say(f"{row.symbol}: entry {why}; canceled")
            elif got.terminal:
                self.om.journal.event(
                    self.om.clock_ms(),
                    "expiry_raced",
                    client_id=row.client_id,
                    status=got.status,
                    filled=got.filled,
                )
        return new

    def _cancel_entries(self, s: str, why: str) -> int:
        """Cancel the symbol's entries still open on the exchange; how many were asked."""
        rows = [
            row
            for row in self.om.journal.orders(live_only=True)
            if row.symbol == s and row.intent.startswith("entry") and row.status != "pending"
        ]
        for row in rows:
            self.om.cancel(row, why)
        return len(rows)

    def _arm(self, time: int, s: str, intent: str, fracs: list[float]) -> None:
        """Journal the entry's protective fractions under its client id, before it is sent."""
        if any(math.isfinite(x) for x in fracs):
            from adapters.orders import client_order_id

            cid = client_order_id(self.om.run_id, time, s, intent)
            self.om.journal.set_meta(f"protect.{cid}", ",".join(repr(x) for x in fracs))

    def _crossed(self, now: int, s: str, why: str) -> None:
        text = f"{s}: stop entry sent as a market buy: {why}"
        self.om.journal.event(now, "stop_crossed", symbol=s, reason=text)
        self.om.say(text)

    def _immediate(self) -> bool:
        """The last rejection was the exchange's "stop price would trigger immediately"."""
        import ccxt

        return isinstance(self.om.last_rejection, ccxt.OrderImmediatelyFillable)

    def _amount(self, size: float, ref: float) -> float:
        kind = self.config.size_type
        if kind == "units":
            return size
        if kind == "cash":
            return size / ref
        equity = self.account().equity
        return equity * size / ref

    def _on_kill(self) -> None:
        """Cancel every open order of the run; flatten when asked. The latch is already in
        the journal."""
        from adapters.exchange_stop import is_stop

        for row in self.om.journal.orders(live_only=True):
            if row.status == "pending":
                continue
            if is_stop(row):
                if self.flatten_on_kill:  # canceled, then fetched: sell only what it left
                    self.queued += self.stops.clear(row.symbol, "kill switch")
                continue  # otherwise it keeps protecting the position
            self.om.cancel(row, "kill switch")
        if self.flatten_on_kill and self.last_time is not None:
            for s, q in self.positions().items():
                if q >= self.om.amount_step(s):
                    self.om.submit(
                        s, "sell", "market", q, None, self.last_time, "flatten", self.close[s]
                    )


def _protective(it: Intents):
    return ((enums.F_SL, it.sl), (enums.F_TP, it.tp), (enums.F_TRAIL, it.trail))


def _ohlc(bar: BarRow):
    return (np.asarray(x, dtype=np.float64) for x in (bar.open, bar.high, bar.low, bar.close))
