"""The private side of the fake Binance: a spot account with orders, trades and balances.

Attach it to a :class:`tests.fake_exchange.FakeBinance` (``FakeAccount(fake, {...})``) and
the server answers the signed endpoints ccxt's ``binance`` calls, with Binance's shapes and
error codes (any signature is accepted):

* ``POST /api/v3/order`` (create; ``newClientOrderId`` must be unique among this account's
  orders: a copy answers -2010 "Duplicate order sent."), ``GET /api/v3/order`` (by
  ``orderId`` or ``origClientOrderId``; unknown: -2013), ``DELETE /api/v3/order`` (cancel;
  unknown: -2011), ``GET /api/v3/openOrders``, ``GET /api/v3/allOrders``,
  ``GET /api/v3/myTrades``, ``GET /api/v3/account``.
* Fills come from the fake's own price (``FakeMarket.level``): a market order fills at the
  price of the exchange clock; a resting limit order fills at its price once
  :meth:`FakeAccount.match` sees a candle that reaches it. The fee is 0.1 %, charged in the
  asset received (Binance's rule without BNB). ``partial_next`` makes the next limit fill
  only part of an order; the rest fills on a later candle. ``taker_part_next`` makes the
  next buy limit placed at or above the price fill part of its amount at once at that price
  (a taker, like a marketable limit meeting a thin book); the rest rests at its limit.
  Candles inside an outage (:meth:`FakeBinance.add_gap`) trade nothing.
* ``STOP_LOSS_LIMIT`` (``stopPrice`` and ``price``) follows Binance's spot rules: a BUY's
  stop must lie above the last price, a SELL's below, else -2010 "Stop price would trigger
  immediately."; until triggered the order is ``NEW`` with ``isWorking`` false and fills
  nothing (its funds are held at its limit price). It triggers on the first candle whose
  high (BUY) or low (SELL) reaches the stop; in the candle it was placed in only the part
  after its arrival counts (from the price then to the candle's close, the candle
  formula's high/low of that part). Triggered, it is a limit order at ``price``: marketable
  at the trigger price (the stop, or the candle's open when the open is already through
  it, a gap after an outage) it fills there at once as a taker, else it rests and fills
  as a limit from the next candle on.
* Filters: ``LOT_SIZE`` step and minimum, ``PRICE_FILTER`` tick and ``NOTIONAL`` minimum
  answer -1013 "Filter failure: ..."; an order the balance cannot pay answers -2010
  "Account has insufficient balance for requested action.".
* A key in ``refused_keys`` gets HTTP 401, code -2015 (invalid key or permissions).
* Faults (:meth:`fault_next`): ``"503"``, ``"429"`` (code -1003), ``"timeout"`` (stall
  before doing anything) and ``"accept_timeout"`` (do the request, then stall past the
  client's timeout: the order exists but the client never hears of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FEE = 0.001
STEP = 1e-5
TICK = 0.01
MIN_NOTIONAL = 5.0


@dataclass
class _Order:
    id: int
    client_id: str
    symbol: str  # exchange id, BTCUSDT
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT / STOP_LOSS_LIMIT
    qty: float
    price: float
    stop: float
    status: str  # NEW, PARTIALLY_FILLED, FILLED, CANCELED
    time: int
    executed: float = 0.0
    quote: float = 0.0
    working: int = 0  # time a stop order triggered (0: not yet); other orders work at once

    @property
    def waiting(self) -> bool:
        """An untriggered stop order."""
        return self.type == "STOP_LOSS_LIMIT" and not self.working

    def body(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.id,
            "orderListId": -1,
            "clientOrderId": self.client_id,
            "price": f"{self.price:.8f}",
            "origQty": f"{self.qty:.8f}",
            "executedQty": f"{self.executed:.8f}",
            "cummulativeQuoteQty": f"{self.quote:.8f}",
            "status": self.status,
            "timeInForce": "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": f"{self.stop:.8f}",
            "time": self.time,
            "updateTime": self.time,
            "isWorking": not self.waiting,
            "workingTime": -1 if self.waiting else (self.working or self.time),
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }


#: parameters Binance requires per order type (besides symbol, side and type)
_MANDATORY = {
    "MARKET": ("quantity",),
    "LIMIT": ("timeInForce", "quantity", "price"),
    "STOP_LOSS_LIMIT": ("timeInForce", "quantity", "price", "stopPrice"),
}


def _on_grid(x: float, step: float) -> bool:
    return abs(round(x / step) * step - x) < step * 1e-6


class FakeAccount:
    """See the module docstring. ``balances`` maps asset -> free amount."""

    PATHS = (
        "/api/v3/order",
        "/api/v3/openOrders",
        "/api/v3/allOrders",
        "/api/v3/myTrades",
        "/api/v3/account",
        "/sapi/v1/capital/config/getall",
    )

    def __init__(self, exchange: Any, balances: dict[str, float]) -> None:
        self.ex = exchange
        self.balances = {k: float(v) for k, v in balances.items()}
        self.orders: dict[int, _Order] = {}
        self.trades: list[dict[str, Any]] = []
        self.faults: list[tuple[str, str, str]] = []  # (kind, method, path)
        self.partial: float | None = None
        self.taker_part: float | None = None
        self.next_id = 1000
        self.next_trade = 5000
        self.last_match: int | None = None
        self.api_keys: set[str] = set()  # X-MBX-APIKEY headers seen
        self.refused_keys: set[str] = set()  # keys answered 401 (-2015)
        exchange.account = self

    # -- control -----------------------------------------------------------------------------

    def fault_next(self, count: int, kind: str, method: str = "POST", path: str = "/api/v3/order"):
        if kind not in ("503", "429", "timeout", "accept_timeout"):
            raise ValueError(kind)
        with self.ex._lock:
            self.faults.extend((kind, method, path) for _ in range(count))

    def partial_next(self, fraction: float) -> None:
        self.partial = fraction

    def taker_part_next(self, fraction: float) -> None:
        self.taker_part = fraction

    def creates(self) -> int:
        """POST /api/v3/order requests received (including refused ones)."""
        with self.ex._lock:
            return sum(1 for m, p, _ in self.ex.private_log if m == "POST" and p == "/api/v3/order")

    def take_fault(self, method: str, path: str) -> str | None:
        with self.ex._lock:
            for i, (k, m, p) in enumerate(self.faults):
                if m == method and p == path:
                    del self.faults[i]
                    return k
        return None

    # -- matching ----------------------------------------------------------------------------

    def _market(self, symbol_id: str):
        return self.ex.markets[symbol_id]

    def price(self, symbol_id: str) -> float:
        return round(self._market(symbol_id).level(self.ex.now()), 2)

    def match(self) -> None:
        """Fill resting orders against the 1m candles closed since the last match (and
        trigger the stop orders those candles reach)."""
        from tests.fake_exchange import kline_row

        now = self.ex.now()
        start = self.last_match if self.last_match is not None else now
        self.last_match = now
        for o in sorted(self.orders.values(), key=lambda o: o.id):
            if o.status not in ("NEW", "PARTIALLY_FILLED") or o.type == "MARKET":
                continue
            m = self._market(o.symbol)
            t = max(start, o.time) // 60_000 * 60_000
            while t + 60_000 <= now and o.status in ("NEW", "PARTIALLY_FILLED"):
                if m.in_gap(t):  # an outage: no trades
                    t += 60_000
                    continue
                row = kline_row(m, t, 60_000, now)
                if o.waiting:
                    self._trigger(o, t, row)
                    t += 60_000  # a triggered limit left resting fills from the next candle
                    continue
                lo, hi = float(row[3]), float(row[2])
                hit = (o.side == "BUY" and lo <= o.price) or (o.side == "SELL" and hi >= o.price)
                if hit:
                    left = o.qty - o.executed
                    qty = left
                    if self.partial is not None and o.executed == 0.0:
                        qty = round(left * self.partial / STEP) * STEP
                        self.partial = None
                    self._fill(o, qty, o.price, t + 60_000 - 1, maker=True)
                t += 60_000

    def _trigger(self, o: _Order, t: int, row: list) -> None:
        """A stop order against candle ``t``: triggered when the candle reaches its stop;
        then filled at once as a taker when its limit is marketable at the trigger price."""
        op, hi, lo, cl = (float(row[i]) for i in (1, 2, 3, 4))
        if t <= o.time:  # the candle it arrived in: only the part after its arrival
            op = round(self._market(o.symbol).level(o.time), 2)
            hi = round(max(op, cl) * 1.0005, 2)
            lo = round(min(op, cl) * 0.9995, 2)
        buy = o.side == "BUY"
        if (buy and hi < o.stop) or (not buy and lo > o.stop):
            return
        o.working = max(t, o.time)
        at = max(op, o.stop) if buy else min(op, o.stop)  # a gapped open is through the stop
        if (buy and at <= o.price) or (not buy and at >= o.price):
            self._fill(o, o.qty - o.executed, at, t + 60_000 - 1, maker=False)

    def _fill(self, o: _Order, qty: float, price: float, when: int, maker: bool) -> None:
        m = self._market(o.symbol)
        cost = qty * price
        held = o.type != "MARKET"  # a resting order's funds were set aside when placed
        if o.side == "BUY":
            fee, fee_asset = qty * FEE, m.base
            if not held:
                self.balances[m.quote] = self.balances.get(m.quote, 0.0) - cost
            else:  # held at the limit price: a fill below it gives the difference back
                self.balances[m.quote] += qty * (o.price - price)
            self.balances[m.base] = self.balances.get(m.base, 0.0) + qty - fee
        else:
            fee, fee_asset = cost * FEE, m.quote
            if not held:
                self.balances[m.base] = self.balances.get(m.base, 0.0) - qty
            self.balances[m.quote] = self.balances.get(m.quote, 0.0) + cost - fee
        o.executed += qty
        o.quote += cost
        o.status = "FILLED" if o.executed >= o.qty - STEP / 2 else "PARTIALLY_FILLED"
        self.next_trade += 1
        self.trades.append(
            {
                "symbol": o.symbol,
                "id": self.next_trade,
                "orderId": o.id,
                "orderListId": -1,
                "price": f"{price:.8f}",
                "qty": f"{qty:.8f}",
                "quoteQty": f"{cost:.8f}",
                "commission": f"{fee:.8f}",
                "commissionAsset": fee_asset,
                "time": int(when),
                "isBuyer": o.side == "BUY",
                "isMaker": maker,
                "isBestMatch": True,
            }
        )

    # -- requests ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, q: dict[str, str]) -> tuple[int, Any, str | None]:
        """(status, body, fault) for a private request; ``fault`` "accept_timeout" tells the
        handler to stall after doing the work."""
        fault = self.take_fault(method, path)
        if fault in ("503", "429", "timeout"):
            return 0, None, fault
        with self.ex._lock:
            self.match()
            status, body = self._dispatch(method, path, q)
        return status, body, fault

    def _dispatch(self, method: str, path: str, q: dict[str, str]) -> tuple[int, Any]:
        if path == "/sapi/v1/capital/config/getall":
            return 200, []
        if path == "/api/v3/account":
            return 200, self._account()
        if path == "/api/v3/openOrders":
            sym = q.get("symbol")
            return 200, [
                o.body()
                for o in self.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED") and (sym is None or o.symbol == sym)
            ]
        if path == "/api/v3/allOrders":
            return 200, [o.body() for o in self.orders.values() if o.symbol == q.get("symbol")]
        if path == "/api/v3/myTrades":
            since = int(q.get("startTime", 0))
            rows = [t for t in self.trades if t["symbol"] == q.get("symbol") and t["time"] >= since]
            return 200, rows[: int(q.get("limit", 1000))]
        if path == "/api/v3/order":
            if method == "POST":
                return self._create(q)
            o = self._find(q)
            if o is None:
                code, msg = (
                    (-2011, "Unknown order sent.")
                    if method == "DELETE"
                    else (-2013, "Order does not exist.")
                )
                return 400, {"code": code, "msg": msg}
            if method == "DELETE":
                if o.status not in ("NEW", "PARTIALLY_FILLED"):
                    return 400, {"code": -2011, "msg": "Unknown order sent."}
                o.status = "CANCELED"
                m = self._market(o.symbol)
                left = o.qty - o.executed
                if o.side == "BUY":
                    self.balances[m.quote] += left * o.price
                else:
                    self.balances[m.base] += left
            return 200, o.body()
        return 404, {"code": -1000, "msg": f"fake account: no route {method} {path}"}

    def _account(self) -> dict[str, Any]:
        locked: dict[str, float] = {}
        for o in self.orders.values():
            if o.status in ("NEW", "PARTIALLY_FILLED") and o.type != "MARKET":
                m = self._market(o.symbol)
                left = o.qty - o.executed
                if o.side == "BUY":
                    locked[m.quote] = locked.get(m.quote, 0.0) + left * o.price
                else:
                    locked[m.base] = locked.get(m.base, 0.0) + left
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "updateTime": self.ex.now(),
            "accountType": "SPOT",
            "balances": [
                {"asset": a, "free": f"{v:.8f}", "locked": f"{locked.get(a, 0.0):.8f}"}
                for a, v in sorted(self.balances.items())
            ],
            "permissions": ["SPOT"],
        }

    def _find(self, q: dict[str, str]) -> _Order | None:
        if "orderId" in q:
            return self.orders.get(int(q["orderId"]))
        cid = q.get("origClientOrderId")
        for o in self.orders.values():
            if o.client_id == cid:
                return o
        return None

    def _create(self, q: dict[str, str]) -> tuple[int, Any]:
        sym = q.get("symbol", "")
        if sym not in self.ex.markets:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        m = self._market(sym)
        cid = q.get("newClientOrderId") or f"fake{self.next_id}"
        if any(o.client_id == cid for o in self.orders.values()):
            return 400, {"code": -2010, "msg": "Duplicate order sent."}
        qty = float(q.get("quantity", 0))
        typ = q.get("type", "")
        side = q.get("side", "")
        price = float(q.get("price", 0) or 0)
        stop = float(q.get("stopPrice", 0) or 0)
        if qty < STEP or not _on_grid(qty, STEP):
            return 400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
        if typ not in ("MARKET", "LIMIT", "STOP_LOSS_LIMIT"):
            return 400, {"code": -1116, "msg": "Invalid orderType."}
        for need in _MANDATORY[typ]:
            if not q.get(need):
                return 400, {
                    "code": -1102,
                    "msg": f"Mandatory parameter '{need}' was not sent, was empty/null, or "
                    "malformed.",
                }
        if typ != "MARKET" and (price <= 0 or not _on_grid(price, TICK)):
            return 400, {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}
        if typ == "STOP_LOSS_LIMIT":
            if stop <= 0 or not _on_grid(stop, TICK):
                return 400, {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}
            last = self.price(sym)
            if (side == "BUY" and stop <= last) or (side == "SELL" and stop >= last):
                return 400, {"code": -2010, "msg": "Stop price would trigger immediately."}
        px = self.price(sym) if typ == "MARKET" else price
        if qty * px < MIN_NOTIONAL:
            return 400, {"code": -1013, "msg": "Filter failure: NOTIONAL"}
        if side == "BUY" and self.balances.get(m.quote, 0.0) < qty * px * (1 + 1e-9):
            return 400, {
                "code": -2010,
                "msg": "Account has insufficient balance for requested action.",
            }
        if side == "SELL" and self.balances.get(m.base, 0.0) < qty * (1 - 1e-12):
            return 400, {
                "code": -2010,
                "msg": "Account has insufficient balance for requested action.",
            }
        self.next_id += 1
        o = _Order(self.next_id, cid, sym, side, typ, qty, price, stop, "NEW", self.ex.now())
        self.orders[o.id] = o
        if typ == "MARKET":
            self._fill(o, qty, px, self.ex.now(), maker=False)
        else:  # funds are held while the order rests
            if side == "BUY":
                self.balances[m.quote] -= qty * price
            else:
                self.balances[m.base] -= qty
            now_px = self.price(sym)
            if self.taker_part is not None and side == "BUY" and price >= now_px:
                part = round(qty * self.taker_part / STEP) * STEP
                self.taker_part = None
                self.balances[m.quote] += part * (price - now_px)  # held at the limit
                self._fill(o, part, now_px, self.ex.now(), maker=False)
        body = o.body()
        body["transactTime"] = o.time
        body["fills"] = [
            {
                "price": t["price"],
                "qty": t["qty"],
                "commission": t["commission"],
                "commissionAsset": t["commissionAsset"],
                "tradeId": t["id"],
            }
            for t in self.trades
            if t["orderId"] == o.id
        ]
        return 200, body

    def total(self, asset: str) -> float:
        """Free plus locked ``asset``."""
        with self.ex._lock:
            acct = self._account()
        for b in acct["balances"]:
            if b["asset"] == asset:
                return float(b["free"]) + float(b["locked"])
        return 0.0
