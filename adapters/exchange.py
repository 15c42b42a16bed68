"""Public (keyless) ccxt clients for the feeds, REST and websocket, with the url override.

``--api-url URL`` (or ``GOGO2_EXCHANGE_API_URL``) points every REST url at ``URL`` (as
``data download`` does, ``datasets.exchange_client.override_api_urls``) and every websocket
url at the same host: ``wss://stream.binance.com:9443/ws`` becomes ``ws://HOST/stream/ws``:
the first label of the original host is kept as the first path segment, so a client that
tells its streams apart by the url (ccxt's Binance looks for ``/stream``) still does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

_KEY_FIELDS = ("apiKey", "secret", "password", "uid", "privateKey", "walletAddress")


def ws_url_for(original: str, base_url: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    orig = urlsplit(original)
    label = (orig.hostname or "").split(".")[0]
    prefix = f"/{label}" if label else ""
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{prefix}{orig.path}"


def _rewrite_ws(node: Any, base_url: str) -> Any:
    if isinstance(node, str):
        return ws_url_for(node, base_url) if node.startswith(("ws://", "wss://")) else node
    if isinstance(node, dict):
        return {k: _rewrite_ws(v, base_url) for k, v in node.items()}
    return node


def strip_keys(exchange: Any) -> Any:
    """A paper client never carries credentials, whatever the environment holds."""
    for attr in _KEY_FIELDS:
        if getattr(exchange, attr, None):
            setattr(exchange, attr, "")
    return exchange


def public_client(name: str, settings: Any, api_url: str | None = None) -> Any:
    """Synchronous ccxt client of exchange ``name`` with no keys (market data only)."""
    from datasets.exchange_client import make_exchange

    return strip_keys(make_exchange(name, settings, api_url))


def public_ws_client(name: str, settings: Any, api_url: str | None = None) -> Any:
    """``ccxt.pro`` client of ``name`` with no keys; ``api_url`` moves REST and websocket."""
    import ccxt.pro as ccxtpro

    from datasets.exchange_client import make_exchange, override_api_urls

    make_exchange(name, settings, None)  # refuses an unknown exchange id with a hint
    ex_id = name.strip().lower()
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": settings.timeout_ms}
    if settings.rate_limit_ms is not None:
        config["rateLimit"] = settings.rate_limit_ms
    ex = getattr(ccxtpro, ex_id)(config)
    if api_url:
        api = dict(ex.urls.get("api", {}))
        ws = api.get("ws")
        override_api_urls(ex, api_url)
        if ws is not None:
            urls = dict(ex.urls)
            urls["api"] = {**urls["api"], "ws": _rewrite_ws(ws, api_url)}
            ex.urls = urls
    return strip_keys(ex)


def private_client(name: str, settings: Any, api_url: str | None = None) -> Any:
    """ccxt client of ``name`` that trades: keys from ``GOGO2_API_KEY`` / ``GOGO2_API_SECRET``
    / ``GOGO2_API_PASSWORD`` only (``settings.api_key`` ...), the exchange's testnet when
    ``settings.sandbox``. ``api_url`` moves every REST url (tests: the loopback fake)."""
    from datasets.exchange_client import make_exchange, override_api_urls
    from gogo2.errors import UserInputError

    key, secret = settings.api_key, settings.api_secret
    if key is None or secret is None:
        raise UserInputError(
            "live trading needs the account's keys in the environment: set GOGO2_API_KEY and "
            "GOGO2_API_SECRET (and GOGO2_API_PASSWORD where the exchange asks for one)."
        )
    ex = make_exchange(name, settings, None)
    if settings.sandbox:
        try:
            ex.set_sandbox_mode(True)
        except Exception as e:  # ccxt.NotSupported
            raise UserInputError(
                f"exchange.sandbox is true but {ex.id} has no testnet in ccxt ({type(e).__name__});"
                " set exchange.sandbox: false or pick an exchange with one."
            ) from None
    if api_url:
        override_api_urls(ex, api_url)
    ex.options["fetchCurrencies"] = False  # signed calls a spot account never needs
    ex.options["fetchMargins"] = False
    ex.apiKey = key.get_secret_value()
    ex.secret = secret.get_secret_value()
    if settings.api_password is not None:
        ex.password = settings.api_password.get_secret_value()
    return ex
