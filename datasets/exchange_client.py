"""The ccxt client of the data commands: creation, url override, page size, retries, errors.

* :func:`make_exchange` creates the client with ccxt's rate limiter on; an unknown id is
  refused with the closest one. :func:`override_api_urls` points every REST url at another
  host (``--api-url`` / ``GOGO2_EXCHANGE_API_URL``), keeping the paths.
* :func:`call_with_retry` retries ``ccxt.NetworkError`` that may pass (timeouts, 5xx, DDoS
  protection, rate limits, a dropped connection) with exponential backoff; a network
  failure no retry can fix (DNS, connection refused, unreachable network, TLS) raises
  :class:`ExchangeUnreachableError` at the first attempt (exit code 1); other ccxt errors
  (bad symbol, refused credentials, ...) become :class:`~gogo2.errors.UserInputError`
  (exit code 2) at the first attempt.
"""

from __future__ import annotations

import errno
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gogo2.errors import ExchangeFetchError, UnknownNameError, UserInputError, did_you_mean

if TYPE_CHECKING:
    from gogo2.config import ExchangeConfig

#: Page sizes of exchanges whose ccxt class does not declare ``features[...]['fetchOHLCV']['limit']``.
DEFAULT_PAGE_LIMITS: dict[str, int] = {
    "binance": 1000,
    "binanceus": 1000,
    "binanceusdm": 1500,
    "binancecoinm": 1500,
    "bybit": 1000,
    "okx": 300,
    "kraken": 720,
    "coinbase": 300,
    "kucoin": 1500,
    "bitfinex": 10000,
    "gate": 1000,
}
FALLBACK_PAGE_LIMIT = 500
API_URL_ENV = "GOGO2_EXCHANGE_API_URL"


class ExchangeUnreachableError(ExchangeFetchError):
    """The exchange cannot be reached for a reason a retry will not fix (exit code 1).

    DNS failure, connection refused, unreachable network, TLS/certificate error.
    ``cause`` is one of ``"dns"``, ``"refused"``, ``"unreachable"``, ``"tls"``.
    """

    exit_code = 1

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


def _exception_chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and everything it wraps (``__cause__``, ``__context__``, urllib3's ``reason``)."""
    todo: list[Any] = [err]
    seen: set[int] = set()
    while todo:
        x = todo.pop(0)
        if not isinstance(x, BaseException) or id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        todo.extend([x.__cause__, x.__context__, getattr(x, "reason", None)])
        todo.extend(a for a in x.args if isinstance(a, BaseException))


def unfixable_network_cause(err: BaseException) -> tuple[str, str] | None:
    """``(cause, description)`` when ``err`` is a network failure no retry can fix, else None.

    Looks through the exceptions ccxt, requests and urllib3 wrap around the socket error:
    a :class:`socket.gaierror` (DNS), :class:`ConnectionRefusedError`, an unreachable
    network or host, or an :class:`ssl.SSLError` (TLS handshake or certificate).
    """
    for x in _exception_chain(err):
        if isinstance(x, socket.gaierror):
            reason = x.strerror or str(x)
            return "dns", f"DNS lookup failed ({reason})"
        if isinstance(x, ConnectionRefusedError):
            return "refused", "connection refused (nothing listens on that host and port)"
        if isinstance(x, OSError) and x.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "unreachable", f"network unreachable ({x.strerror or x})"
        if isinstance(x, ssl.SSLError):
            kind = "certificate" if isinstance(x, ssl.SSLCertVerificationError) else "handshake"
            detail = getattr(x, "verify_message", None) or x.reason or str(x)
            return "tls", f"TLS {kind} error ({detail})"
    return None


def _host_of(err: BaseException) -> str | None:
    """The host:port of the url named in a ccxt error message ('binance GET https://...')."""
    for word in str(err).split():
        if "://" in word:
            netloc = urlsplit(word).netloc
            if netloc:
                return netloc
    return None


def _unreachable(
    err: BaseException, exchange: Any, symbol: str | None, timeframe: str | None
) -> ExchangeUnreachableError | None:
    found = unfixable_network_cause(err)
    if found is None:
        return None
    cause, description = found
    what = " ".join(x for x in (exchange.id, symbol, timeframe) if x)
    host = _host_of(err)
    fix = {
        "dns": "Check the network connection and the host name",
        "refused": "Check the host and port, or whether the service is running",
        "unreachable": "Check the network connection",
        "tls": "Check the system clock, any proxy intercepting TLS and the CA certificates",
    }[cause]
    if getattr(exchange, "api_url_override", None):
        fix += f" (the host comes from --api-url / {API_URL_ENV})"
    return ExchangeUnreachableError(
        f"{what}: cannot reach {host or 'the exchange'}: {description}. Not retried (a retry "
        f"cannot fix this): {fix.lower()[0]}{fix[1:]}. Candles fetched before are stored; run "
        "the same command again to resume.",
        cause,
    )


# --------------------------------------------------------------------------- exchange
def make_exchange(
    name: str, settings: ExchangeConfig | None = None, api_url: str | None = None
) -> Any:
    """Create the ccxt client for ``name`` with rate limiting on.

    Parameters
    ----------
    name : str
        ccxt exchange id ('binance').
    settings : gogo2.config.ExchangeConfig, optional
        Timeout and rate-limit override; defaults to ``ExchangeConfig()``.
    api_url : str, optional
        Base url (``http://host:port``) replacing the host of every REST url.

    Raises
    ------
    UnknownNameError
        ``name`` is not a ccxt exchange id (the message suggests the closest one).
    """
    import ccxt

    from gogo2.config import ExchangeConfig

    settings = settings or ExchangeConfig()
    ex_id = name.strip().lower()
    if ex_id not in ccxt.exchanges:
        raise UnknownNameError(
            "exchange",
            name,
            ccxt.exchanges,
            "Give a ccxt exchange id with --exchange (for example binance).",
        )
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": settings.timeout_ms}
    if settings.rate_limit_ms is not None:
        config["rateLimit"] = settings.rate_limit_ms
    exchange = getattr(ccxt, ex_id)(config)
    if api_url:
        override_api_urls(exchange, api_url)
    return exchange


def override_api_urls(exchange: Any, base_url: str) -> None:
    """Point every REST url of ``exchange`` at ``base_url``, keeping the paths."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserInputError(
            f"--api-url {base_url!r} is not an http(s) url. Write it like http://127.0.0.1:8080."
        )
    root = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"

    def rewrite(node: Any) -> Any:
        if isinstance(node, str):
            return f"{root}{urlsplit(node).path}" if "://" in node else node
        if isinstance(node, dict):
            return {k: rewrite(v) for k, v in node.items()}
        return node

    urls = dict(exchange.urls)
    urls["api"] = rewrite(urls.get("api", {}))
    exchange.urls = urls
    exchange.api_url_override = root  # named when the host cannot be reached


def page_limit(exchange: Any) -> int:
    """Most candles one ``fetch_ohlcv`` call may return on ``exchange``."""
    features = getattr(exchange, "features", None) or {}
    for market_type in ("spot", "swap", "future"):
        node = features.get(market_type) or {}
        candidates = [node] + [v for v in node.values() if isinstance(v, dict)]
        for cand in candidates:
            limit = (cand.get("fetchOHLCV") or {}).get("limit") if isinstance(cand, dict) else None
            if isinstance(limit, int) and limit > 0:
                return limit
    return DEFAULT_PAGE_LIMITS.get(exchange.id, FALLBACK_PAGE_LIMIT)


def _translate(
    err: Exception, exchange: Any, symbol: str | None, timeframe: str | None
) -> Exception:
    """Turn a permanent ccxt error into a UserInputError naming what was asked."""
    import ccxt

    what = f"{exchange.id}"
    if symbol:
        what += f" {symbol}"
    if timeframe:
        what += f" {timeframe}"
    detail = str(err).strip()
    if isinstance(err, ccxt.BadSymbol):
        known = list(getattr(exchange, "symbols", None) or [])
        return UserInputError(
            f"{exchange.id} has no market {symbol!r}.{did_you_mean(symbol or '', known)} "
            "Write the symbol as BASE/QUOTE exactly as the exchange lists it (for example "
            f"BTC/USDT). Exchange said: {detail}"
        )
    if isinstance(err, (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended)):
        return UserInputError(
            f"{exchange.id} refused the request for {what}: {detail}. Candles need no key; "
            "unset GOGO2_API_KEY / GOGO2_API_SECRET or fix them."
        )
    return UserInputError(
        f"{exchange.id} rejected the request for {what}: {type(err).__name__}: {detail}. "
        "Check the symbol, timeframe and dates."
    )


def call_with_retry(
    fn: Callable[[], Any],
    *,
    exchange: Any,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
    symbol: str | None = None,
    timeframe: str | None = None,
    on_retry: Callable[[int, float, Exception], None] | None = None,
) -> Any:
    """Call ``fn``; retry ``ccxt.NetworkError`` with exponential backoff.

    The delay before retry ``i`` (1-based) is ``backoff_s * 2 ** (i - 1)``. A network
    failure no retry can fix (DNS, connection refused, unreachable network, TLS) raises
    :class:`ExchangeUnreachableError` at once; permanent ccxt errors become
    :class:`UserInputError`; a network error still failing after ``retries`` retries
    becomes :class:`ExchangeFetchError`.
    """
    import ccxt

    attempt = 0
    while True:
        try:
            return fn()
        except ccxt.NetworkError as e:
            unreachable = _unreachable(e, exchange, symbol, timeframe)
            if unreachable is not None:
                raise unreachable from None
            if attempt >= retries:
                what = " ".join(x for x in (exchange.id, symbol, timeframe) if x)
                raise ExchangeFetchError(
                    f"{what}: still failing after {retries} retries ({type(e).__name__}: "
                    f"{str(e).strip()[:200]}). Candles fetched before the failure are stored; "
                    "run the same command again later to resume, or raise exchange.retries / "
                    "exchange.backoff_s."
                ) from None
            delay = backoff_s * (2**attempt)
            attempt += 1
            if on_retry is not None:
                on_retry(attempt, delay, e)
            sleep(delay)
        except ccxt.BaseError as e:
            raise (
                _unreachable(e, exchange, symbol, timeframe)
                or _translate(e, exchange, symbol, timeframe)
            ) from None
