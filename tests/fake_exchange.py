"""A loopback fake of the Binance spot REST API, for offline tests with the real ccxt client.

The server listens on ``127.0.0.1`` on a free port, in a background thread, and answers
the endpoints ccxt's ``binance`` class calls for market data with bodies shaped like the
real ones (``GET /api/v3/exchangeInfo``, ``/api/v3/klines``, ``/api/v3/time``,
``/api/v3/ping``; the futures ``exchangeInfo`` endpoints answer with no symbols, so
``load_markets`` works with ccxt's default options). Candles come from a deterministic
formula of the open time, so any range of any interval can be served without storage.

What a test can control:

* ``now_ms``: the exchange clock. The candle containing ``now_ms`` is served still open
  (partial values, as the real API does); later candles do not exist yet.
* ``listed_from``: a market has no candles before this time.
* outages: :meth:`FakeBinance.add_gap` removes candles in ``[start, end)`` for a symbol.
* transient failures: :meth:`FakeBinance.fail_next` makes the next *k* matching requests
  answer HTTP 503, HTTP 429 (Binance code -1003), HTTP 418 or hang past the client timeout.
* extra endpoints: :meth:`FakeBinance.add_route` serves any other path with a handler.
* unknown symbols: a kline request for a symbol with no market answers HTTP 400 with
  Binance's ``{"code": -1121, "msg": "Invalid symbol."}``; a market listed with
  ``klines=False`` is in ``exchangeInfo`` but has no klines (the same -1121 answer).

Every request is recorded (:attr:`FakeBinance.requests`, :meth:`FakeBinance.count`).

Usage::

    with FakeBinance(now_ms=parse_time("2023-01-03")) as fake:
        ex = ccxt.binance({"urls": {"api": fake.api_urls()}, "enableRateLimit": False})
        ex.fetch_ohlcv("BTC/USDT", "1m", since=parse_time("2023-01-01"), limit=1000)
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: Binance kline intervals and their length in ms.
INTERVAL_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
WEEK_OFFSET_MS = 4 * 86_400_000  # 1970-01-01 was a Thursday; the first Monday is 01-05


def _ceil_grid(t: int, step: int, off: int) -> int:
    """First candle open time >= ``t`` on the grid ``off + k * step``."""
    return -((off - t) // step) * step + off


@dataclass
class FakeMarket:
    """One spot market of the fake exchange."""

    base: str
    quote: str
    price: float
    listed_from: int = 0
    klines: bool = True
    gaps: list[tuple[int, int]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.base}{self.quote}"

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"

    def level(self, t: int) -> float:
        """Deterministic price at time ``t`` (ms): a slow wave around ``price``."""
        x = t / 3_600_000.0
        return self.price * (1.0 + 0.04 * math.sin(x / 7.0) + 0.01 * math.sin(x * 1.3))

    def in_gap(self, t: int) -> bool:
        return any(a <= t < b for a, b in self.gaps)


@dataclass
class Failure:
    """A transient failure waiting to be served to the next matching request."""

    kind: str  # "503", "429", "418" or "timeout"
    path: str


def kline_row(market: FakeMarket, open_ms: int, interval_ms: int, now_ms: int) -> list[Any]:
    """One Binance kline (12 fields, numbers as strings) for ``open_ms``.

    The candle containing ``now_ms`` is still open: its close is the level at ``now_ms``.
    """
    end = min(open_ms + interval_ms, now_ms)
    o = market.level(open_ms)
    c = market.level(end)
    hi = max(o, c) * 1.0005
    lo = min(o, c) * 0.9995
    vol = 1.0 + (open_ms // interval_ms) % 7 + (0.0 if end == open_ms + interval_ms else -0.5)
    quote_vol = vol * (o + c) / 2.0
    return [
        open_ms,
        f"{o:.2f}",
        f"{hi:.2f}",
        f"{lo:.2f}",
        f"{c:.2f}",
        f"{vol:.8f}",
        open_ms + interval_ms - 1,
        f"{quote_vol:.8f}",
        int(vol * 10),
        f"{vol / 2:.8f}",
        f"{quote_vol / 2:.8f}",
        "0",
    ]


class FakeBinance:
    """The fake exchange: an HTTP server plus the state tests control.

    Parameters
    ----------
    markets : iterable of FakeMarket, optional
        Defaults to BTC/USDT (~16,500) and ETH/USDT (~1,200), listed since the epoch.
    now_ms : int, optional
        Fixed exchange clock; ``None`` follows the wall clock.
    timeout_delay : float
        Seconds a ``"timeout"`` failure stalls before answering (set the client's timeout
        below it).
    """

    def __init__(
        self,
        markets: Iterable[FakeMarket] | None = None,
        now_ms: int | None = None,
        timeout_delay: float = 1.0,
    ) -> None:
        if markets is None:
            markets = [FakeMarket("BTC", "USDT", 16_500.0), FakeMarket("ETH", "USDT", 1_200.0)]
        self.markets: dict[str, FakeMarket] = {m.id: m for m in markets}
        self.now_ms = now_ms
        self.timeout_delay = timeout_delay
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._routes: dict[str, Callable[[dict[str, str]], tuple[int, Any]]] = {}
        self.account: Any = None  # tests.fake_account.FakeAccount, when attached
        self.private_log: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- control
    def now(self) -> int:
        return int(time.time() * 1000) if self.now_ms is None else int(self.now_ms)

    def clock(self) -> float:
        """The exchange clock in seconds: a runner's ``clock`` on the fake's time."""
        return self.now_ms / 1000.0

    def sleep(self, s: float) -> None:
        """A runner's ``sleep`` on the fake's time: the exchange clock moves on ``s``."""
        self.now_ms += int(s * 1000)

    def serve_clock(self) -> None:
        """Serve the fake's clock to a child process: ``GET /fake/now`` answers ``{"now":
        ms}``, ``GET /fake/advance?ms=N`` moves the clock on ``N`` ms (a child runner's
        ``clock`` and ``sleep``)."""

        def advance(q: dict[str, str]) -> tuple[int, dict[str, int]]:
            self.now_ms += int(q["ms"])
            return 200, {"now": self.now_ms}

        self.add_route("/fake/advance", advance)
        self.add_route("/fake/now", lambda q: (200, {"now": self.now_ms}))

    def add_gap(self, symbol: str, start_ms: int, end_ms: int) -> None:
        """Remove the candles of ``symbol`` ('BTC/USDT') opened in ``[start_ms, end_ms)``."""
        self._market_by_symbol(symbol).gaps.append((int(start_ms), int(end_ms)))

    def fail_next(self, count: int, kind: str = "503", path: str = "/api/v3/klines") -> None:
        """Make the next ``count`` requests to ``path`` fail with ``kind``.

        ``kind`` is ``"503"`` (service unavailable), ``"429"`` (rate limit, code -1003),
        ``"418"`` (IP ban) or ``"timeout"`` (stall ``timeout_delay`` seconds).
        """
        if kind not in ("503", "429", "418", "timeout"):
            raise ValueError(f"unknown failure kind {kind!r}")
        with self._lock:
            self._failures.extend(Failure(kind, path) for _ in range(count))

    def add_route(self, path: str, handler: Callable[[dict[str, str]], tuple[int, Any]]) -> None:
        """Serve ``GET path`` with ``handler(query) -> (status, json_body)``.

        For endpoints this module does not model (ticker, order book, account, ...); a route
        added here takes precedence over the built-in ones.
        """
        self._routes[path] = handler

    def clear_failures(self) -> None:
        """Forget the failures not served yet."""
        with self._lock:
            self._failures.clear()

    def count(self, path: str | None = None) -> int:
        """Number of requests received, to ``path`` only when given."""
        with self._lock:
            return sum(1 for p, _ in self.requests if path is None or p == path)

    def kline_requests(self) -> list[dict[str, str]]:
        """Query parameters of every ``/api/v3/klines`` request, in order."""
        with self._lock:
            return [q for p, q in self.requests if p == "/api/v3/klines"]

    def klines(
        self, symbol_id: str, interval: str, start: int | None, end: int | None, limit: int
    ) -> list[list[Any]]:
        """The klines the server answers for these parameters (Binance semantics)."""
        market = self.markets[symbol_id]
        step = INTERVAL_MS[interval]
        off = WEEK_OFFSET_MS if interval == "1w" else 0  # weeks open on Monday 00:00 UTC
        now = self.now()
        last_open = ((now - off) // step) * step + off  # the open candle
        first_listed = _ceil_grid(market.listed_from, step, off)
        rows: list[list[Any]] = []
        if start is None:
            # the most recent `limit` candles up to `end` (or now)
            t = last_open if end is None else min(last_open, ((end - off) // step) * step + off)
            while t >= first_listed and len(rows) < limit:
                if not market.in_gap(t):
                    rows.append(kline_row(market, t, step, now))
                t -= step
            rows.reverse()
            return rows
        t = max(_ceil_grid(start, step, off), first_listed)
        stop = last_open if end is None else min(last_open, end)
        while t <= stop and len(rows) < limit:
            if not market.in_gap(t):
                rows.append(kline_row(market, t, step, now))
            t += step
        return rows

    def exchange_info(self) -> dict[str, Any]:
        """A minimal ``/api/v3/exchangeInfo`` body with what ccxt's parser reads."""
        symbols = []
        for m in self.markets.values():
            symbols.append(
                {
                    "symbol": m.id,
                    "status": "TRADING",
                    "baseAsset": m.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": m.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": "0.01000000",
                            "maxPrice": "1000000.00000000",
                            "tickSize": "0.01000000",
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": "0.00001000",
                            "maxQty": "9000.00000000",
                            "stepSize": "0.00001000",
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": "5.00000000",
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                        },
                    ],
                    "permissions": ["SPOT"],
                    "permissionSets": [["SPOT"]],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": self.now(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                }
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    # ----------------------------------------------------------------- server
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeBinance is not started; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def api_urls(self) -> dict[str, str]:
        """ccxt ``urls['api']`` entries pointing every Binance API family at this server."""
        import ccxt

        out = {}
        for key, url in ccxt.binance().urls["api"].items():
            path = urlsplit(url).path
            out[key] = f"{self.base_url}{path}"
        return out

    def start(self) -> FakeBinance:
        fake = self

        class Handler(_Handler):
            exchange = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- internals
    def _market_by_symbol(self, symbol: str) -> FakeMarket:
        for m in self.markets.values():
            if m.symbol == symbol:
                return m
        raise KeyError(symbol)

    def _take_failure(self, path: str) -> Failure | None:
        with self._lock:
            for i, f in enumerate(self._failures):
                if f.path == path:
                    return self._failures.pop(i)
        return None


class _Handler(BaseHTTPRequestHandler):
    exchange: FakeBinance
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        pass

    def _send(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def _private(self, method: str) -> bool:
        """Serve a signed endpoint through the attached FakeAccount; False when none."""
        ex = self.exchange
        parts = urlsplit(self.path)
        if ex.account is None or parts.path not in ex.account.PATHS:
            return False
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            body = self.rfile.read(length).decode()
            query.update({k: v[-1] for k, v in parse_qs(body).items()})
        query.pop("signature", None)
        with ex._lock:
            ex.private_log.append((method, parts.path, dict(query)))
            key = self.headers.get("X-MBX-APIKEY")
            if key:
                ex.account.api_keys.add(key)
        if key in ex.account.refused_keys:
            self._send(
                401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
            )
            return True
        status, body, fault = ex.account.handle(method, parts.path, query)
        if fault == "timeout":
            time.sleep(ex.timeout_delay)
            self._send(200, {})
        elif fault == "503":
            self._send(503, b"<html><body>503 Service Unavailable</body></html>")
        elif fault == "429":
            self._send(429, {"code": -1003, "msg": "Too many requests."}, {"Retry-After": "1"})
        else:
            if fault == "accept_timeout":
                time.sleep(ex.timeout_delay)
            self._send(status, body)
        return True

    def do_POST(self) -> None:
        if not self._private("POST"):
            self._send(404, {"code": -1000, "msg": f"fake exchange: no route {self.path}"})

    def do_DELETE(self) -> None:
        if not self._private("DELETE"):
            self._send(404, {"code": -1000, "msg": f"fake exchange: no route {self.path}"})

    def do_GET(self) -> None:
        if self._private("GET"):
            return
        ex = self.exchange
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with ex._lock:
            ex.requests.append((path, query))
        failure = ex._take_failure(path)
        if failure is not None:
            if failure.kind == "timeout":
                time.sleep(ex.timeout_delay)
                self._send(200, [])
            elif failure.kind == "503":
                self._send(503, b"<html><body>503 Service Unavailable</body></html>")
            elif failure.kind == "429":
                self._send(
                    429,
                    {"code": -1003, "msg": "Too many requests; current limit is 6000."},
                    {"Retry-After": "1"},
                )
            else:
                self._send(418, {"code": -1003, "msg": "Way too many requests; IP banned."})
            return
        if path in ex._routes:
            status, body = ex._routes[path](query)
            self._send(status, body)
        elif path == "/api/v3/exchangeInfo":
            self._send(200, ex.exchange_info())
        elif path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
            self._send(200, {"timezone": "UTC", "serverTime": ex.now(), "symbols": []})
        elif path == "/api/v3/time":
            self._send(200, {"serverTime": ex.now()})
        elif path == "/api/v3/ping":
            self._send(200, {})
        elif path == "/api/v3/klines":
            self._klines(query)
        else:
            self._send(404, {"code": -1000, "msg": f"fake exchange: no route {path}"})

    def _klines(self, q: dict[str, str]) -> None:
        ex = self.exchange
        sym = q.get("symbol", "")
        market = ex.markets.get(sym)
        if market is None or not market.klines:
            self._send(400, {"code": -1121, "msg": "Invalid symbol."})
            return
        interval = q.get("interval", "")
        if interval not in INTERVAL_MS:
            self._send(400, {"code": -1120, "msg": "Invalid interval."})
            return
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            self._send(400, {"code": -1100, "msg": "Illegal characters found in a parameter."})
            return
        if not 1 <= limit <= MAX_LIMIT:
            self._send(400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."})
            return
        self._send(200, ex.klines(sym, interval, start, end, limit))


class FakeKlineStream:
    """The Binance spot kline websocket of a :class:`FakeBinance` (market data only).

    Serves ``ws://127.0.0.1:<port>/stream/...`` (the path keeps ``/stream``: ccxt tells spot
    from contract streams by it). A client sends Binance's ``{"method": "SUBSCRIBE",
    "params": ["btcusdt@kline_1m"], "id": n}``; the server answers ``{"result": null, "id":
    n}`` and then pushes kline events built from the fake's candle formula when the test
    calls :meth:`publish` (every candle opened since the last push, the closed ones with
    ``"x": true``, the one open at ``now_ms`` with ``"x": false``). :meth:`drop` closes every
    connection; with ``refuse = True`` new connections are refused (an outage). Every
    connection and message is recorded in :attr:`log`.
    """

    def __init__(self, exchange: FakeBinance) -> None:
        self.exchange = exchange
        self.log: list[tuple[str, Any]] = []
        self.refuse = False
        self._loop: Any = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._conns: dict[Any, set[tuple[str, str]]] = {}
        self._pushed: dict[tuple[Any, str, str], int] = {}
        self.port = 0

    # ------------------------------------------------------------------ control
    def start(self) -> FakeKlineStream:
        import asyncio

        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    @property
    def base_url(self) -> str:
        """One host for REST (forwarded to the fake's HTTP server) and the websocket."""
        return f"http://127.0.0.1:{self.port}"

    def publish(self) -> int:
        """Push the candles of every subscription up to ``now_ms``; returns events sent."""
        return self._call(self._publish())

    def wait_subscribed(self, streams: int, timeout: float = 5.0) -> bool:
        """Wait (real time) until ``streams`` kline streams are subscribed; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(len(v) for v in list(self._conns.values())) >= streams:
                return True
            time.sleep(0.01)
        return False

    def drop(self) -> None:
        """Close every open connection (the client sees a dropped socket)."""
        self._call(self._drop())

    def stop(self) -> None:
        if self._loop is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    # ------------------------------------------------------------------ internals
    def _call(self, coro: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _serve(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._forward)  # signed POST / DELETE
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _handle(self, request: Any) -> Any:
        from aiohttp import WSMsgType, web

        if request.headers.get("Upgrade", "").lower() != "websocket":
            return await self._forward(request)
        self.log.append(("connect", request.path))
        if self.refuse or not request.path.startswith("/stream"):
            return web.Response(status=503, text="unavailable")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._conns[ws] = set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                body = json.loads(msg.data)
                self.log.append(("message", body))
                if body.get("method") == "SUBSCRIBE":
                    for name in body.get("params", []):
                        sym, _, interval = name.partition("@kline_")
                        self._conns[ws].add((sym.upper(), interval))
                    await ws.send_str(json.dumps({"result": None, "id": body.get("id")}))
        finally:
            self._conns.pop(ws, None)
        return ws

    async def _forward(self, request: Any) -> Any:
        """A REST request: answered by the fake's HTTP server (and recorded there)."""
        import asyncio
        import urllib.error
        import urllib.request

        from aiohttp import web

        url = f"{self.exchange.base_url}{request.path_qs}"
        data = await request.read() if request.can_read_body else None
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-mbx")}
        if data:
            headers["Content-Type"] = request.headers.get("Content-Type", "")
        req = urllib.request.Request(url, data=data, headers=headers, method=request.method)

        def fetch() -> tuple[int, bytes]:
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()

        status, body = await asyncio.get_running_loop().run_in_executor(None, fetch)
        return web.Response(status=status, body=body, content_type="application/json")

    async def _publish(self) -> int:
        ex = self.exchange
        now = ex.now()
        sent = 0
        for ws, subs in list(self._conns.items()):
            for sym, interval in sorted(subs):
                market = ex.markets.get(sym)
                step = INTERVAL_MS.get(interval)
                if market is None or step is None:
                    continue
                open_now = now // step * step
                key = (ws, sym, interval)
                t = self._pushed.get(key, open_now - step)
                while t <= open_now:
                    if not market.in_gap(t):
                        row = kline_row(market, t, step, now)
                        event = {
                            "e": "kline",
                            "E": now,
                            "s": sym,
                            "k": {
                                "t": t,
                                "T": t + step - 1,
                                "s": sym,
                                "i": interval,
                                "o": row[1],
                                "c": row[4],
                                "h": row[2],
                                "l": row[3],
                                "v": row[5],
                                "n": row[8],
                                "x": t + step <= now,
                                "q": row[7],
                            },
                        }
                        try:
                            await ws.send_str(json.dumps(event))
                            sent += 1
                        except ConnectionError:
                            break
                    t += step
                self._pushed[key] = open_now
        return sent

    async def _drop(self) -> None:
        for ws in list(self._conns):
            await ws.close()
        self._conns.clear()

    async def _shutdown(self) -> None:
        await self._drop()
        if self._runner is not None:
            await self._runner.cleanup()
