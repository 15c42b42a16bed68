"""The order manager: idempotent orders on an exchange account, journaled before each action.

Every order starts as a decision (bar time, symbol, intent) and gets a deterministic client
order id (:func:`client_order_id`). The order is written to the journal (status
``pending``) *before* it is sent; the exchange's answer is written before the next action.

A submit whose outcome is unknown (a timeout, a dropped connection, a 5xx) is never simply
resent: the manager first asks the exchange for the order by its client id. Found: it is
recorded as it stands. Not found: it never arrived, and it is sent again with the *same*
client id (an exchange holding an order of that id refuses the copy). So a submit retried
any number of times places at most one order.

The retry policy (:class:`RetryPolicy`) follows ccxt's exception tree:

* retried with exponential backoff and jitter, within ``retries`` attempts and
  ``max_wait_s`` seconds of waiting: ``NetworkError`` and its subclasses ``RequestTimeout``,
  ``ExchangeNotAvailable``, ``DDoSProtection`` (an HTTP 429) and ``RateLimitExceeded``;
* never retried: ``InsufficientFunds``, ``InvalidOrder``, ``AuthenticationError``,
  ``PermissionDenied`` and every other ``ExchangeError``: the order is journaled as
  ``rejected`` with the exchange's message and shown.

Reconciliation (:meth:`OrderManager.reconcile`) is documented in README's "Live trading".
"""

from __future__ import annotations

import hashlib
import random
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.journal import Journal, OrderRow, scrub
from gogo2.errors import Gogo2Error

RETRYABLE = ("NetworkError",)  # RequestTimeout, ExchangeNotAvailable, DDoSProtection, ...


class ExchangeDownError(Gogo2Error):
    """A retryable failure outlasted the retry policy's bound."""

    exit_code = 3


class ReconcileError(Gogo2Error):
    """The journal and the exchange differ in a way no policy explains: no trading."""

    exit_code = 4


def client_order_id(run_id: str, bar_time: int, symbol: str, intent: str) -> str:
    """A pure function of the decision: 32 characters from ``[0-9a-f]`` after ``g2``, within
    every exchange's client-id alphabet and length. Its first 10 characters are the run's
    prefix (:func:`run_prefix`), so orders of this run are recognised on the exchange."""
    h = hashlib.sha256(f"{bar_time}|{symbol}|{intent}".encode()).hexdigest()
    return run_prefix(run_id) + h[:22]


def run_prefix(run_id: str) -> str:
    return "g2" + hashlib.sha256(run_id.encode()).hexdigest()[:8]


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter: the wait before retry ``i`` (1-based) is drawn in
    ``[d/2, d]`` with ``d = min(cap_s, base_s * 2 ** (i - 1))``; at most ``retries`` retries
    and ``max_wait_s`` seconds of waiting in all. ``sleep`` and ``rng`` are injectable."""

    retries: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0
    max_wait_s: float = 120.0
    sleep: Callable[[float], None] = _time.sleep
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    retried: int = 0  # retries made so far (all calls)

    def delays(self):
        waited = 0.0
        for i in range(self.retries):
            d = min(self.cap_s, self.base_s * 2**i)
            d = d / 2 + self.rng.random() * d / 2
            if waited + d > self.max_wait_s:
                return
            waited += d
            yield d

    def call(self, fn: Callable[[], Any], what: str, on_retry: Callable | None = None) -> Any:
        """``fn()`` retried on ``ccxt.NetworkError``; other errors raise at once. Raises
        :class:`ExchangeDownError` when the bound is reached."""
        import ccxt

        delays = self.delays()
        while True:
            try:
                return fn()
            except ccxt.NetworkError as e:
                d = next(delays, None)
                if d is None:
                    raise ExchangeDownError(
                        f"{what}: the exchange still fails after the retry bound "
                        f"({type(e).__name__}: {scrub(str(e))[:160]}); the journal holds the "
                        "run: start it again with the same --run when the exchange answers."
                    ) from None
                self.retried += 1
                if on_retry is not None:
                    on_retry(e, d)
                self.sleep(d)


@dataclass
class Stats:
    sent: int = 0  # create-order requests made
    resolved_by_query: int = 0  # unknown outcomes settled by a fetch by client id
    rejected: int = 0
    canceled: int = 0
    adopted: int = 0
    missed_fills: int = 0


class OrderManager:
    """Orders of one run on one ccxt exchange (see the module docstring).

    Parameters
    ----------
    ex : ccxt exchange with keys and markets loaded
    journal : adapters.journal.Journal
    run_id : str
    policy : RetryPolicy
    clock_ms : callable returning ms UTC (injectable)
    say : callable taking a line (screen)
    hook : callable taking a point name, optional
        Called at ``"journaled"`` (order written, not sent) and ``"sent"`` (the exchange
        answered, answer not yet written): fault-injection tests stop the process there.
    unknown_orders : {"cancel", "adopt"}
        What reconciliation does with an open order on the exchange that the journal does not
        know and that was not placed by this run.
    """

    def __init__(
        self,
        ex: Any,
        journal: Journal,
        run_id: str,
        policy: RetryPolicy | None = None,
        *,
        clock_ms: Callable[[], int] | None = None,
        say: Callable[[str], None] = print,
        hook: Callable[[str], None] | None = None,
        unknown_orders: str = "cancel",
    ) -> None:
        self.ex = ex
        self.journal = journal
        self.run_id = run_id
        self.prefix = run_prefix(run_id)
        self.policy = policy or RetryPolicy()
        self.clock_ms = clock_ms or (lambda: int(_time.time() * 1000))
        self.say = say
        self.hook = hook or (lambda point: None)
        self.unknown_orders = unknown_orders
        self.stats = Stats()
        self.last_rejection: Exception | None = None  # the exchange error of the last rejection

    # -- helpers ----------------------------------------------------------------------------

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        def on_retry(e: Exception, d: float) -> None:
            self.journal.event(
                self.clock_ms(), "retry", what=what, error=type(e).__name__, wait_s=round(d, 3)
            )

        return self.policy.call(fn, what, on_retry)

    def prepare(self, symbol: str, amount: float, price: float | None, ref_price: float):
        """(amount, price) rounded to the market's precision, or a reason it cannot be sent
        (below the minimum amount or cost)."""
        m = self.ex.market(symbol)
        amt = float(self.ex.amount_to_precision(symbol, amount)) if amount > 0 else 0.0
        px = float(self.ex.price_to_precision(symbol, price)) if price else None
        limits = m.get("limits") or {}
        min_amt = (limits.get("amount") or {}).get("min") or 0.0
        min_cost = (limits.get("cost") or {}).get("min") or 0.0
        cost = amt * (px or ref_price)
        if amt <= 0 or amt < min_amt:
            return None, None, f"amount {amount:.8g} rounds to {amt:.8g}, below {min_amt:g}"
        if min_cost and cost < min_cost:
            return None, None, f"cost {cost:.8g} below the minimum {min_cost:g}"
        return amt, px, ""

    # -- submit -----------------------------------------------------------------------------

    def submit(
        self,
        symbol: str,
        side: str,
        type_: str,
        amount: float,
        price: float | None,
        bar_time: int,
        intent: str,
        ref_price: float,
        stop_price: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> OrderRow | None:
        """Place one order for a decision, at most once. Returns its journal row (None when
        the decision was already placed, or could not be sent)."""
        import ccxt

        now = self.clock_ms()
        cid = client_order_id(self.run_id, bar_time, symbol, intent)
        if self.journal.order(cid) is not None:
            return None  # this decision is already on its way
        self.last_rejection = None
        amt, px, why = self.prepare(symbol, amount, price, ref_price)
        if amt is None:
            self.journal.event(now, "skipped", client_id=cid, symbol=symbol, reason=why)
            self.say(f"order skipped: {symbol} {side} {intent}: {why}")
            return None
        self.journal.add_order(cid, symbol, side, type_, amt, px, bar_time, intent, now)
        self.journal.event(now, "submit", client_id=cid, symbol=symbol, side=side, amount=amt)
        self.hook("journaled")
        params = {**(params or {}), "clientOrderId": cid}
        if stop_price is not None:
            params["stopPrice"] = float(self.ex.price_to_precision(symbol, stop_price))
        order = None
        ambiguous = False  # an earlier attempt's outcome was unknown
        delays = self.policy.delays()
        while True:
            try:
                self.stats.sent += 1
                order = self.ex.create_order(symbol, type_, side, amt, px, params)
                break
            except ccxt.NetworkError as e:
                # unknown outcome: ask before any resend
                ambiguous = True
                self.journal.event(
                    self.clock_ms(), "unknown_outcome", client_id=cid, error=type(e).__name__
                )
                found = self.fetch_by_client_id(cid, symbol)
                if found is not None:
                    self.stats.resolved_by_query += 1
                    order = found
                    break
                d = next(delays, None)
                if d is None:
                    break
                self.policy.retried += 1
                self.policy.sleep(d)
            except ccxt.BaseError as e:
                if ambiguous:  # "duplicate order": the earlier attempt did arrive after all
                    found = self.fetch_by_client_id(cid, symbol)
                    if found is not None:
                        self.stats.resolved_by_query += 1
                        order = found
                        break
                return self._rejected(cid, symbol, e)
        if order is None:
            raise ExchangeDownError(
                f"order {cid} ({symbol} {side}) could not be placed within the retry bound; "
                "it is journaled as pending and settled by reconciliation at the next start."
            )
        self.hook("sent")
        self._record(cid, order)
        return self.journal.order(cid)

    def _rejected(self, cid: str, symbol: str, e: Exception) -> OrderRow | None:
        self.last_rejection = e
        msg = f"{type(e).__name__}: {scrub(str(e))[:300]}"
        self.journal.update_order(cid, self.clock_ms(), status="rejected", reason=msg)
        self.journal.event(self.clock_ms(), "rejected", client_id=cid, symbol=symbol, error=msg)
        self.stats.rejected += 1
        self.say(f"order rejected by the exchange: {symbol} {cid}: {msg}")
        return self.journal.order(cid)

    def fetch_by_client_id(self, cid: str, symbol: str) -> dict | None:
        import ccxt

        try:
            return self._call(
                lambda: self.ex.fetch_order(None, symbol, {"origClientOrderId": cid}),
                f"fetch order {cid}",
            )
        except ccxt.OrderNotFound:
            return None

    def _record(self, cid: str, order: dict) -> None:
        status = order.get("status") or "open"
        self.journal.update_order(
            cid,
            self.clock_ms(),
            status=status,
            exchange_id=str(order.get("id")),
            filled=float(order.get("filled") or 0.0),
        )

    # -- cancel -----------------------------------------------------------------------------

    def cancel(self, row: OrderRow, why: str) -> None:
        """Cancel an open order; it counts as canceled only once the exchange says so."""
        import ccxt

        self.journal.event(self.clock_ms(), "cancel", client_id=row.client_id, reason=why)
        try:
            self._call(
                lambda: self.ex.cancel_order(row.exchange_id, row.symbol),
                f"cancel {row.client_id}",
            )
        except ccxt.OrderNotFound:
            pass  # already closed: the fetch below says how
        got = self.fetch_by_client_id(row.client_id, row.symbol)
        if got is not None:
            self._record(row.client_id, got)
            if got.get("status") == "canceled":
                self.stats.canceled += 1

    # -- sync and reconciliation ------------------------------------------------------------

    def sync(self, missed: bool = False) -> list[dict]:
        """Bring every order the journal holds open up to date, and store the trades made
        since (``missed`` marks fills found by reconciliation). Returns the new fills."""
        new: list[dict] = []
        live = self.journal.orders(live_only=True)
        for row in live:
            got = self.fetch_by_client_id(row.client_id, row.symbol)
            if got is None:
                if row.status == "pending":
                    self.journal.update_order(
                        row.client_id,
                        self.clock_ms(),
                        status="rejected",
                        reason="never reached the exchange (not found by client id)",
                    )
                    self.journal.event(self.clock_ms(), "never_sent", client_id=row.client_id)
                continue
            self._record(row.client_id, got)
        for symbol in self.journal.unfilled_symbols():
            new += self._trades(symbol, missed)
        return new

    def fetch_trades(self, symbol: str) -> list[dict]:
        """Store the trades of ``symbol`` made since the last fetch; returns the new ones."""
        return self._trades(symbol, False)

    def trades_since(self, symbol: str) -> int | None:
        """The watermark of ``symbol``'s trades (ms): trade queries ask for trades from it on,
        never older ones (None: none stored yet)."""
        since = self.journal.meta(f"trades_since.{symbol}")
        return int(since) if since else None

    def _trades(self, symbol: str, missed: bool) -> list[dict]:
        key = f"trades_since.{symbol}"
        since = self.journal.meta(key)
        trades = self._call(
            lambda: self.ex.fetch_my_trades(symbol, int(since) if since else None),
            f"trades of {symbol}",
        )
        by_id = self.journal.client_ids({str(t.get("order")) for t in trades})
        rows = []
        last = int(since) if since else 0
        for t in trades:
            oid = str(t.get("order"))
            fee = t.get("fee") or {}
            rows.append(
                {
                    "trade_id": t["id"],
                    "client_id": by_id.get(oid),
                    "symbol": symbol,
                    "side": t["side"],
                    "price": float(t["price"]),
                    "qty": float(t["amount"]),
                    "fee": float(fee.get("cost") or 0.0),
                    "fee_currency": fee.get("currency") or "",
                    "time": int(t["timestamp"]),
                }
            )
            last = max(last, int(t["timestamp"]))
        new = self.journal.add_fills(rows, missed=missed) if rows else []
        if missed:
            self.stats.missed_fills += len(new)
            for f in new:
                self.journal.event(self.clock_ms(), "missed_fill", **f)
        if last and str(last) != since:
            self.journal.set_meta(key, str(last))
        return new

    def reconcile(self, symbols: tuple[str, ...], say_all: bool = True) -> list[str]:
        """Compare the journal with the exchange and apply the policy (README, "Live
        trading"). Returns the differences found and settled; raises
        :class:`ReconcileError` on one no policy explains."""
        now = self.clock_ms()
        notes: list[str] = []
        self.sync(missed=True)
        for symbol in symbols:
            self._trades(symbol, missed=True)
            opened = self._call(lambda s=symbol: self.ex.fetch_open_orders(s), f"open {symbol}")
            for o in opened:
                cid = o.get("clientOrderId") or ""
                if self.journal.order(cid) is not None:
                    continue
                ours = cid.startswith(self.prefix)
                if ours or self.unknown_orders == "adopt":
                    self.journal.add_order(
                        cid or f"ex-{o['id']}",
                        symbol,
                        o["side"],
                        o.get("type") or "limit",
                        float(o["amount"]),
                        o.get("price"),
                        int(o.get("timestamp") or now),
                        "adopted",
                        now,
                        status=o.get("status") or "open",
                        exchange_id=str(o["id"]),
                        filled=float(o.get("filled") or 0.0),
                        adopted=True,
                    )
                    self.stats.adopted += 1
                    notes.append(f"adopted open order {o['id']} ({symbol} {o['side']})")
                else:
                    self.journal.event(now, "cancel_unknown", order=str(o["id"]), symbol=symbol)
                    self._call(lambda o=o, s=symbol: self.ex.cancel_order(o["id"], s), "cancel")
                    notes.append(f"canceled unknown open order {o['id']} ({symbol} {o['side']})")
        notes += self._check_balances(symbols)
        for n in notes:
            self.journal.event(now, "reconcile", note=n)
            if say_all:
                self.say(f"reconcile: {n}")
        self.journal.event(now, "reconciled", differences=len(notes))
        return notes

    def balances(self) -> dict[str, float]:
        bal = self._call(self.ex.fetch_balance, "balances")
        return {k: float(v) for k, v in (bal.get("total") or {}).items() if v is not None}

    def _check_balances(self, symbols: tuple[str, ...]) -> list[str]:
        """Base balances against the journal: balance now - balance at the run's start must
        equal the journal's net fills (less base-currency fees)."""
        total = self.balances()
        assets = sorted({self.ex.market(s)["base"] for s in symbols})
        first = self.journal.meta("baseline.set") is None
        if first:
            for a in assets:
                self.journal.set_meta(f"baseline.{a}", repr(total.get(a, 0.0)))
            self.journal.set_meta("baseline.set", "1")
        expect = self.expected_base(symbols)
        bad = []
        for a in assets:
            start = float(self.journal.meta(f"baseline.{a}") or 0.0)
            have = total.get(a, 0.0) - start
            want = expect.get(a, 0.0)
            step = min(self.amount_step(s) for s in symbols if self.ex.market(s)["base"] == a)
            if abs(have - want) > max(step / 2, 1e-12):
                bad.append(
                    f"{a}: the exchange holds {have:+.8g} since the run began, the journal's "
                    f"fills {want:+.8g}"
                )
        if bad:
            msg = "; ".join(bad)
            self.journal.event(self.clock_ms(), "unexplained", detail=msg)
            raise ReconcileError(
                f"reconciliation: {msg}. A trade or transfer this run did not make changed the "
                "account; no order is sent until it is explained (undo it, or start a new "
                "--run)."
            )
        return []

    def expected_base(self, symbols: tuple[str, ...]) -> dict[str, float]:
        out: dict[str, float] = {}
        for f in self.journal.fills():
            base = self.ex.market(f["symbol"])["base"]
            q = f["qty"] if f["side"] == "buy" else -f["qty"]
            if f["fee_currency"] == base:
                q -= f["fee"]
            out[base] = out.get(base, 0.0) + q
        return out

    def amount_step(self, symbol: str) -> float:
        p = (self.ex.market(symbol).get("precision") or {}).get("amount")
        if p is None:
            return 1e-8
        return float(p) if int(getattr(self.ex, "precisionMode", 4)) == 4 else 10.0 ** -float(p)
