"""Stop-losses resting on the exchange (``live.stop_on_exchange``, README "Live trading").

With the setting on, the live broker (:class:`adapters.ccxt_broker.CcxtBroker`) backs the
client-side stop-loss of a watched position (``adapters.protect``) with a Binance spot
``STOP_LOSS_LIMIT`` SELL that rests on the exchange, so the position stays protected
between two bar closes and while the bot is down:

* placed once the entry's fill is known (right after a market entry, else at the bar close
  that finds the fill), for the run's position of the symbol rounded down to the lot step,
  with ``stopPrice`` the watch's stop-loss level (the volume-weighted fill price times
  ``1 - sl``, the level ``adapters.protect`` computes) and limit ``stop * (1 -
  stop_limit_offset)``; through the order manager (journaled before it is sent, client id
  from the entry's bar and the intent ``stop_loss (exchange) #k``, ``k`` the symbol's count
  of such orders). A level already crossed cannot rest (Binance refuses a sell stop at or
  above the last price: -2010, ccxt ``OrderImmediatelyFillable``): the position is sold at
  market instead (intent ``stop_loss (exchange) #k crossed``);
* replaced (canceled, then placed again) when the position grows (a later fill of the
  entry), for the new amount at the new level;
* canceled before any other sell of the symbol, then fetched: what it sold meanwhile is
  stored, and only the rest is sold (:meth:`ExchangeStops.clear`);
* its fills are stored as any order's; the broker's watch is disarmed by the position being
  gone and a ``protective_exit`` event (``exchange`` true) is journaled once.

The current stop of each symbol is kept in the journal (meta ``exstop.<symbol>``), so a
restarted run knows it; one found open on the exchange with this run's prefix is adopted
by reconciliation and taken as the symbol's stop (the run places no other resting sell).
"""

from __future__ import annotations

import math
from typing import Any

#: intent prefix of the stop-loss orders resting on the exchange
INTENT = "stop_loss (exchange)"


def is_stop(row: Any) -> bool:
    """A resting sell of the run: its exchange stop-loss (every other sell is at market)."""
    return row.side == "sell" and row.type != "market"


class ExchangeStops:
    def __init__(self, broker: Any, offset: float) -> None:
        self.b = broker
        self.om = broker.om
        self.offset = float(offset)

    # -- state ---------------------------------------------------------------------------

    def current(self, s: str) -> Any:
        """The symbol's stop still open on the exchange (journal row), or None."""
        j = self.om.journal
        cid = j.meta(f"exstop.{s}")
        row = j.order(cid) if cid else None
        if row is not None and not row.terminal:
            return row
        for r in j.orders(live_only=True):  # adopted by reconciliation
            if r.symbol == s and is_stop(r) and r.status != "pending":
                j.set_meta(f"exstop.{s}", r.client_id)
                return r
        return None

    def _stored(self, row: Any) -> list[dict]:
        """Store the trades of ``row`` the exchange reports and the journal lacks."""
        got = self.om.journal.order(row.client_id)
        if got is not None and got.filled > self.om.journal.filled_qty(row.client_id) + 1e-12:
            return self.om.fetch_trades(row.symbol)
        return []

    def refresh(self, s: str) -> list[dict]:
        """Fetch the symbol's stop as the exchange has it now; store its new fills."""
        row = self.current(s)
        if row is None:
            return []
        got = self.om.fetch_by_client_id(row.client_id, s)
        if got is not None:
            self.om._record(row.client_id, got)
        self.om.journal.event(
            self.om.clock_ms(),
            "exchange_stop_checked",
            client_id=row.client_id,
            status=(got or {}).get("status"),
            filled=float((got or {}).get("filled") or 0.0),
        )
        return self._stored(row)

    def clear(self, s: str, why: str) -> list[dict]:
        """Cancel the symbol's stop before another sell, then fetch it: what it sold before
        the cancel arrived is stored (the caller sells only what remains)."""
        row = self.current(s)
        if row is None:
            return []
        self.om.cancel(row, why)
        new = self._stored(row)
        self.note(s, late=False)
        return new

    def note(self, s: str, late: bool) -> None:
        """The symbol's stop has ended (filled, canceled or refused): journal a
        ``protective_exit`` when it sold anything, and forget it."""
        j = self.om.journal
        cid = j.meta(f"exstop.{s}")
        row = j.order(cid) if cid else None
        if row is None or not row.terminal:
            return
        if row.filled > 0:
            sold = [f for f in j.fills() if f["client_id"] == cid]
            first = min((f["time"] for f in sold), default=self.om.clock_ms())
            j.event(
                self.om.clock_ms(),
                "protective_exit",
                symbol=s,
                exit="stop_loss",
                exchange=True,
                client_id=cid,
                status=row.status,
                qty=row.filled,
                bar=first // self.b.tf_ms * self.b.tf_ms,
                late=late or any(f["missed"] for f in sold),
            )
            self.om.say(f"{s}: the exchange stop-loss sold {row.filled:g} ({row.status})")
        j.set_meta(f"exstop.{s}", "")

    # -- placement -----------------------------------------------------------------------

    def arrange(self, late: bool = False) -> list[dict]:
        """For each symbol: journal the end of a stop that filled, then make the resting
        stop match the watched position (place it, or replace it for a grown position).
        Returns the fills stored meanwhile."""
        b = self.b
        new: list[dict] = []
        for s in self.om.journal.unfilled_symbols():  # a sell filled but not yet stored
            new += self.om.fetch_trades(s)
        pos = None
        for j, s in enumerate(b.symbols):
            self.note(s, late)
            if b._selling(s):  # a sell of the run is on its way: no stop beside it
                continue
            row = self.current(s)
            pos = b.positions() if pos is None else pos
            step = self.om.amount_step(s)
            want = self._wanted(j, s, pos[s])
            if row is not None:
                left = row.amount - row.filled
                if want is not None and abs(left - want[0]) < step / 2:
                    continue
                if want is None and pos[s] >= step:
                    continue  # the watch's own stop fired: the exchange's goes on selling
                why = "replaced for a new position" if want else "the position is gone"
                new += self.clear(s, why)
                pos = b.positions()
                want = self._wanted(j, s, pos[s])
            if want is not None:
                new += self._place(j, s, *want)
                pos = None
        return new

    def _wanted(self, j: int, s: str, held: float) -> tuple[float, float, str] | None:
        """(amount, stop level, entry client id) the symbol's exchange stop should have, or
        None: no watched position with a stop-loss (or placing it already failed)."""
        b = self.b
        p = b.protect
        step = self.om.amount_step(s)
        entry = p.watching(j)
        if held < step or not entry or not p.armed(j) or p.fired[j]:
            return None
        spec = self.om.journal.meta(f"protect.{entry}")
        sl = float(spec.split(",")[0]) if spec else math.nan
        if not (math.isfinite(sl) and sl > 0) or self.om.journal.meta(f"exstop.off.{entry}"):
            return None
        amount = math.floor(held / step + 1e-9) * step
        return amount, p.levels(j)["price"] * (1.0 - sl), entry

    def _place(self, j: int, s: str, amount: float, stop: float, entry: str) -> list[dict]:
        import ccxt

        b = self.b
        jr = self.om.journal
        k = int(jr.meta(f"exstop.n.{s}") or 0) + 1
        jr.set_meta(f"exstop.n.{s}", str(k))
        bar = jr.order(entry).bar_time if jr.order(entry) is not None else 0
        intent = f"{INTENT} #{k}"
        now = self.om.clock_ms()
        b.kill.check_order(now, s, 0.0)
        limit = stop * (1.0 - self.offset)
        ref = b.close[s] if math.isfinite(b.close[s]) else stop
        row = self.om.submit(s, "sell", "limit", amount, limit, bar, intent, ref, stop_price=stop)
        if row is None or row.status == "rejected":
            if row is not None and isinstance(
                self.om.last_rejection, ccxt.OrderImmediatelyFillable
            ):
                # the price is already through the level: sell now, as the watch would
                text = f"{s}: stop-loss {stop:,.8g} already crossed; sold at market"
                jr.event(
                    now,
                    "protective_exit",
                    symbol=s,
                    exit="stop_loss",
                    exchange=True,
                    crossed=True,
                    bar=now // b.tf_ms * b.tf_ms,
                    late=False,
                )
                self.om.say(text)
                b.kill.check_order(now, s, 0.0)
                sold = self.om.submit(
                    s, "sell", "market", amount, None, bar, intent + " crossed", ref
                )
                return self.om.fetch_trades(s) if sold is not None else []
            # refused for another reason (or too small): the client-side watch stays the
            # only stop of this position; not retried every bar
            jr.set_meta(f"exstop.off.{entry}", "1")
            self.om.say(
                f"{s}: no stop-loss on the exchange for this position; the bar-close watch keeps it"
            )
            return []
        jr.set_meta(f"exstop.{s}", row.client_id)
        jr.event(
            now,
            "exchange_stop",
            symbol=s,
            client_id=row.client_id,
            amount=row.amount,
            stop=stop,
            limit=row.price,
            entry=entry,
        )
        return self._stored(row)
