"""Paper trading through the live order path: a simulated exchange behind the order manager.

:class:`PaperVenue` answers the calls the order manager (``adapters.orders``) makes of a
ccxt exchange (``create_order`` with a client id, ``fetch_order`` by id or client id,
``fetch_open_orders``, ``fetch_my_trades``, ``fetch_balance``, ``cancel_order``, market
precision) from the paper broker's kernel state (``adapters.broker.PaperBroker``):

* an order sent at bar t's close is accepted as ``open`` and its decision is registered in
  the kernel (``step_intents_nb``, that symbol's row only);
* when bar t+1 closes the kernel steps it (``step_bar_nb``) and fills what the backtest's
  rules fill; each kernel fill becomes a trade (id ``paper-<n>``, the fill's running number)
  of the order it executes: ``market``/``limit``/``stop`` fills of the symbol's entry order,
  ``exit`` fills of its exit order; stop-loss, take-profit and trailing fills are the
  venue's own (no client order, as an exchange-side stop would be);
* an order the kernel did not fill is ``open`` while the kernel still holds it (a resting
  limit or stop), else ``canceled`` (expired, dropped, below the minimum notional, or
  replaced by a newer entry).

The venue keeps only what its caller can still ask for (:meth:`PaperVenue.forget`, called by
:class:`PaperOrderBroker` each bar once the journal has recorded it): open orders, finished
orders until the journal holds their final status, and the trades of each symbol from the
order manager's watermark on (``fetch_my_trades(since)`` never reaches further back). What is
forgotten is in the journal already, so the state saved every bar stays as small as the
account's open business however long the run; order and trade ids keep counting from the
saved counters. Like an exchange that has archived old orders, it then no longer refuses a
forgotten client id: the order manager never sends one again (its journal refuses a known
client id before anything is sent).

The fills are the kernel's only: the order's amount is the estimate at the decision's close,
and the filled quantity is what the kernel sized at the fill, so paper and backtest cannot
drift apart. Fees are in the quote currency, the base balance is the kernel's position.

:class:`PaperOrderBroker` is the runner's broker seam on top: ``submit`` turns each symbol's
decision into orders through the order manager (client ids, journal before send, kill
switch), ``on_bar`` steps the venue, syncs the journal with it, reconciles every
``reconcile_every`` bars, lets the venue forget what the journal has recorded and checks the
kill switch's equity limits.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from adapters.broker import Account, BarRow, Fill, Intents
from engine import enums

_ENTRY_KINDS = ("market", "limit", "stop")


class PaperVenue:
    """A ccxt-like exchange over a :class:`adapters.broker.PaperBroker` (module docstring)."""

    id = "paper"
    precisionMode = 4  # ccxt.TICK_SIZE

    def __init__(self, broker: Any, persist: Any = None) -> None:
        self.broker = broker
        self.symbols = tuple(broker.symbols)
        self.persist = persist or (lambda: None)
        self.orders: dict[str, dict] = {}
        self.by_cid: dict[str, dict] = {}
        self.trades: list[dict] = []  # in time order
        self.n_orders = 0  # orders accepted so far (the last id), forgotten ones included
        self.n_trades = 0  # trades made so far (the next trade's number)

    # -- markets -------------------------------------------------------------------------

    def market(self, symbol: str) -> dict:
        base, _, quote = symbol.partition("/")
        return {
            "symbol": symbol,
            "base": base,
            "quote": quote or "USD",
            "precision": {"amount": None, "price": None},
            "limits": {"amount": {"min": None}, "cost": {"min": None}},
        }

    def amount_to_precision(self, symbol: str, amount: float) -> str:
        return repr(float(amount))  # the kernel applies the lot and the minimum notional

    def price_to_precision(self, symbol: str, price: float) -> str:
        return repr(float(price))

    # -- orders --------------------------------------------------------------------------

    def create_order(self, symbol, type_, side, amount, price=None, params=None) -> dict:
        import ccxt

        params = dict(params or {})
        cid = params.get("clientOrderId") or ""
        if cid and cid in self.by_cid:
            raise ccxt.InvalidOrder(f"duplicate clientOrderId {cid}")
        row = params["g2row"]
        j = self.symbols.index(symbol)
        kind = "exit" if row["exit"] else "entry"
        if kind == "entry":
            for o in self.open_orders(symbol):
                if o["g2kind"] == "entry":
                    o["status"] = "canceled"  # the kernel holds one entry per symbol
        self.broker.register(j, row)
        self.n_orders += 1
        oid = str(self.n_orders)
        order = {
            "id": oid,
            "clientOrderId": cid,
            "symbol": symbol,
            "type": type_,
            "side": side,
            "amount": float(amount),
            "price": price,
            "status": "open",
            "filled": 0.0,
            "timestamp": int(self.broker.last_time + self.broker.tf_ms),
            "g2kind": kind,
        }
        self.orders[oid] = order
        if cid:
            self.by_cid[cid] = order
        self.persist()
        return dict(order)

    def fetch_order(self, id_, symbol=None, params=None) -> dict:
        import ccxt

        cid = (params or {}).get("origClientOrderId")
        o = self.orders.get(str(id_)) if id_ is not None else self.by_cid.get(cid or "")
        if o is not None:
            return dict(o)
        raise ccxt.OrderNotFound(f"order {id_ or cid} not found")

    def open_orders(self, symbol: str) -> list[dict]:
        return [o for o in self.orders.values() if o["symbol"] == symbol and o["status"] == "open"]

    def fetch_open_orders(self, symbol=None, since=None, limit=None, params=None) -> list[dict]:
        return [dict(o) for o in self.open_orders(symbol)]

    def cancel_order(self, id_, symbol=None, params=None) -> dict:
        import ccxt

        o = self.orders.get(str(id_))
        if o is None or o["status"] != "open":
            raise ccxt.OrderNotFound(f"order {id_} is not open")
        self.broker.cancel(self.symbols.index(o["symbol"]), o["g2kind"])
        o["status"] = "canceled"
        self.persist()
        return dict(o)

    def fetch_my_trades(self, symbol=None, since=None, limit=None, params=None) -> list[dict]:
        out = []
        for t in reversed(self.trades):  # in time order: the recent ones from the end
            if since is not None and t["timestamp"] < since:
                break
            if t["symbol"] == symbol:
                out.append(dict(t))
        return out[::-1]

    def fetch_balance(self, params=None) -> dict:
        from engine import nb

        b = self.broker
        total = {self.market(self.symbols[0])["quote"]: float(b.gs[nb.G_CASH])}
        for j, s in enumerate(self.symbols):
            base = self.market(s)["base"]
            total[base] = total.get(base, 0.0) + float(b.fs[j, nb.S_POS])
        return {"total": total}

    # -- the simulation ------------------------------------------------------------------

    def on_bar(self, bar: BarRow) -> list[Fill]:
        """Step the kernel over a closed bar; its fills become trades of the open orders."""
        from engine import nb

        fills = self.broker.on_bar(bar)
        got: dict[str, float] = {}
        for f in fills:
            order = None
            want = "exit" if f.kind == "exit" else "entry" if f.kind in _ENTRY_KINDS else None
            for o in self.open_orders(f.symbol):
                if o["g2kind"] == want:
                    order = o
            if order is not None:
                got[order["id"]] = got.get(order["id"], 0.0) + f.qty
            self.trades.append(
                {
                    "id": f"paper-{self.n_trades}",
                    "order": None if order is None else order["id"],
                    "symbol": f.symbol,
                    "side": "buy" if f.side > 0 else "sell",
                    "price": f.price,
                    "amount": f.qty,
                    "fee": {"cost": f.fee, "currency": self.market(f.symbol)["quote"]},
                    "timestamp": int(f.time),
                    "takerOrMaker": f.kind,
                }
            )
            self.n_trades += 1
        ist = self.broker.ist
        for o in self.orders.values():
            if o["status"] != "open":
                continue
            j = self.symbols.index(o["symbol"])
            if o["id"] in got:
                o["filled"] = got[o["id"]]
                o["status"] = "closed"
            elif o["g2kind"] == "exit" and ist[j, nb.I_P_EXIT] == 0:
                o["status"] = "canceled"  # nothing left to close
            elif o["g2kind"] == "entry" and ist[j, nb.I_P_DIR] == 0:
                o["status"] = "canceled"  # expired, dropped or refused by the kernel
        return fills

    def forget(self, orders: Any = (), since: dict[str, int] | None = None) -> None:
        """Drop the finished orders of ids ``orders`` (an open one stays) and, per symbol in
        ``since``, its trades older than ``since[symbol]``: what the caller will not ask for
        again (see the module docstring)."""
        for oid in orders:
            o = self.orders.get(str(oid))
            if o is None or o["status"] == "open":
                continue
            del self.orders[o["id"]]
            if self.by_cid.get(o["clientOrderId"]) is o:
                del self.by_cid[o["clientOrderId"]]
        if since:
            self.trades = [
                t
                for t in self.trades
                if since.get(t["symbol"]) is None or t["timestamp"] >= since[t["symbol"]]
            ]

    def state(self) -> dict:
        return {
            "orders": self.orders,
            "trades": self.trades,
            "n_orders": self.n_orders,
            "n_trades": self.n_trades,
        }

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state` (a state saved before the counters were kept held every
        order and trade: its counts are the counters)."""
        self.orders = {str(k): v for k, v in state.get("orders", {}).items()}
        self.by_cid = {o["clientOrderId"]: o for o in self.orders.values() if o["clientOrderId"]}
        self.trades = list(state.get("trades", []))
        self.n_orders = int(state.get("n_orders", len(self.orders)))
        self.n_trades = int(state.get("n_trades", len(self.trades)))


def venue_bytes(venue: PaperVenue) -> np.ndarray:
    return np.frombuffer(json.dumps(venue.state()).encode(), dtype=np.uint8)


class PaperOrderBroker:
    """The runner's broker seam for paper: the paper venue behind the order manager."""

    def __init__(
        self,
        paper: Any,
        venue: PaperVenue,
        om: Any,
        kill: Any,
        *,
        reconcile_every: int = 60,
    ) -> None:
        self.paper = paper
        self.venue = venue
        self.om = om
        self.kill = kill
        self.symbols = tuple(paper.symbols)
        self.reconcile_every = int(reconcile_every)
        self.bars = 0
        self.now = 0
        self.notes: list[str] = []

    @classmethod
    def open(
        cls,
        paper: Any,
        journal: Any,
        limits: Any,
        run_id: str,
        *,
        say: Any = print,
        persist: Any = None,
        venue_state: dict | None = None,
        restarted: bool = False,
    ) -> PaperOrderBroker:
        """The paper broker ``paper`` (restored already when a run continues, its venue's
        orders and trades in ``venue_state``) behind a venue, an order manager on ``journal``
        (``run_id``: the journal's, ``runner.live_session.run_id_of``) and the kill switch of ``limits`` (``live``
        config); then the live start-up: the kill switch's latch checked and a
        reconciliation (its notes in ``.notes``)."""
        from adapters.killswitch import KillSwitch
        from adapters.orders import OrderManager, RetryPolicy

        venue = PaperVenue(paper, persist)
        kill = KillSwitch(limits, journal)
        holder: list[PaperOrderBroker] = []
        om = OrderManager(
            venue,
            journal,
            run_id,
            RetryPolicy(retries=0),  # the venue answers every call
            clock_ms=lambda: holder[0].now,
            say=say,
            unknown_orders=limits.unknown_orders,
        )
        broker = cls(paper, venue, om, kill, reconcile_every=limits.reconcile_every)
        holder.append(broker)
        if paper.last_time is not None:
            broker.now = int(paper.last_time) + int(paper.tf_ms)
        venue.restore(venue_state or {})
        kill.assert_clear()
        journal.event(broker.now, "start", restarted=restarted, mode="paper")
        broker.notes = om.reconcile(broker.symbols)
        broker.forget()
        return broker

    def __getattr__(self, name: str) -> Any:  # records for the run's result
        return getattr(self.__dict__["paper"], name)

    def on_bar(self, bar: BarRow) -> list[Fill]:
        from adapters.killswitch import KillSwitchTripped

        self.now = int(bar.time) + self.paper.tf_ms
        resting = [o for o in self.venue.orders.values() if _resting_entry(o)]
        fills = self.venue.on_bar(bar)
        self.bars += 1
        self.om.sync()
        for s in self.symbols:  # the venue's own fills (stops, targets) too
            self.om.fetch_trades(s)
        self._expired(resting)
        if self.bars % self.reconcile_every == 0:
            self.om.reconcile(self.symbols, say_all=True)
        self.forget()
        try:
            self.kill.check_equity(self.now, self.paper.equity)
        except KillSwitchTripped:
            self._on_kill()
            raise
        return fills

    def _expired(self, resting: list[dict]) -> None:
        """Journal the entries the kernel dropped at this bar's close for having rested
        ``order_ttl`` bars unfilled, as the exchange broker journals its expiry cancels
        (event ``expired``, the order's reason)."""
        from engine import nb

        ttl = int(self.paper.params[nb.P_ORDER_TTL])
        if ttl <= 0:
            return
        ist = self.paper.ist
        for o in resting:
            j = self.symbols.index(o["symbol"])
            if o["status"] != "canceled" or ist[j, nb.I_P_DIR] != 0 or ist[j, nb.I_P_AGE] < ttl:
                continue
            s = o["symbol"]
            why = f"expired: unfilled after {ttl} bars of {s} (backtest.order_ttl {ttl})"
            cid = o["clientOrderId"]
            self.om.journal.event(self.now, "expired", client_id=cid, symbol=s, bars=ttl, ttl=ttl)
            self.om.journal.update_order(cid, self.now, reason=why)

    def forget(self) -> None:
        """Let the venue drop what the journal holds for good: finished orders whose journal
        row is final (the order manager asks the venue only about orders its journal holds
        open or pending), and trades older than the order manager's watermark of their
        symbol. Both only move forward in the journal, so a state saved after this, restored
        with the journal as a kill -9 leaves it, still answers every question asked."""
        journal = self.om.journal
        done = []
        for o in self.venue.orders.values():
            if o["status"] == "open":
                continue
            row = journal.order(o["clientOrderId"]) if o["clientOrderId"] else None
            if not o["clientOrderId"] or (row is not None and row.terminal):
                done.append(o["id"])
        since = {s: self.om.trades_since(s) for s in self.symbols}
        self.venue.forget(done, since)

    def submit(self, time: int, intents: Intents) -> None:
        from adapters.killswitch import KillSwitchTripped

        if self.paper.last_time is None or int(time) != self.paper.last_time:
            self.paper.submit(time, intents)  # the broker's own error
        if not intents.any():
            return
        try:
            for j, s in enumerate(self.symbols):
                self._symbol(int(time), j, s, intents)
        except KillSwitchTripped:
            self._on_kill()
            raise

    def account(self) -> Account:
        return self.paper.account()

    def finish(self, time: int | None = None) -> list[Fill]:
        return self.paper.finish(time)

    def _symbol(self, time: int, j: int, s: str, it: Intents) -> None:
        from engine import nb

        p = self.paper
        e = int(it.entries[0, j])
        x = bool(it.exits[0, j])
        if e == 0 and not x:
            return
        if e < 0 and p.params[nb.P_ALLOW_SHORT] == 0.0:
            e, x = 0, True  # the kernel's rule: a short entry without shorting is an exit
        pos = float(p.fs[j, nb.S_POS])
        mark = float(p.fs[j, nb.S_MARK])
        if x:
            resting = [o for o in self.venue.open_orders(s) if o["g2kind"] == "entry"]
            for row in self.om.journal.orders(live_only=True):
                if row.symbol == s and row.intent.startswith("entry") and resting:
                    self.om.cancel(row, "an exit cancels a resting entry")
            if pos != 0.0:
                self.kill.check_order(self.now, s, 0.0)
                self.om.submit(
                    s,
                    "sell" if pos > 0 else "buy",
                    "market",
                    abs(pos),
                    None,
                    time,
                    "exit",
                    mark,
                    params={"g2row": _row(it, j, 0, True)},
                )
        if e == 0:
            return
        flags = it.flags
        otype = int(it.order_type[0, j]) if flags[enums.F_ORDER_TYPE] else enums.MARKET
        px = float(it.price[0, j]) if flags[enums.F_PRICE] else math.nan
        size = float(it.size[0, j]) if flags[enums.F_SIZE] else math.nan
        if not math.isfinite(size):
            size = float(p.config.size)
        ref = px if otype != enums.MARKET and math.isfinite(px) else mark
        if not (math.isfinite(ref) and ref > 0):
            ref = 1.0
        kind = p.config.size_type
        amount = size if kind == "units" else (size if kind == "cash" else size * p.equity) / ref
        self.kill.check_order(self.now, s, abs(pos) * ref + amount * ref)
        type_ = {enums.LIMIT: "limit", enums.STOP: "stop"}.get(otype, "market")
        self.om.submit(
            s,
            "buy" if e > 0 else "sell",
            type_,
            max(amount, 1e-12),
            px if type_ != "market" and math.isfinite(px) else None,
            time,
            "entry long" if e > 0 else "entry short",
            ref,
            params={"g2row": _row(it, j, e, False)},
        )

    def _on_kill(self) -> None:
        for row in self.om.journal.orders(live_only=True):
            if row.status != "pending":
                self.om.cancel(row, "kill switch")


def _resting_entry(o: dict) -> bool:
    return o["status"] == "open" and o["g2kind"] == "entry" and o["type"] in ("limit", "stop")


def _row(it: Intents, j: int, entry: int, exit_: bool) -> dict:
    def v(a: np.ndarray, flag: int) -> float:
        return float(a[0, j]) if it.flags[flag] else math.nan

    return {
        "entry": int(entry),
        "exit": bool(exit_),
        "order_type": int(it.order_type[0, j]) if it.flags[enums.F_ORDER_TYPE] else 0,
        "price": v(it.price, enums.F_PRICE),
        "size": v(it.size, enums.F_SIZE),
        "sl": v(it.sl, enums.F_SL),
        "tp": v(it.tp, enums.F_TP),
        "trail": v(it.trail, enums.F_TRAIL),
        "flags": [int(f) for f in it.flags],
    }
