"""Download candles from an exchange through ccxt into the catalog.

    python cli.py data download --exchange binance --symbols BTC/USDT,ETH/USDT \\
        --timeframes 1m,1h --from 2023-01-01 [--to 2024-01-01] [--repair] [--max-jump 1.0] \\
        [--config PATH]

How it behaves:

* **Paging**: ``fetch_ohlcv(symbol, timeframe, since, limit)`` is called page after page,
  with ``limit`` the exchange's maximum (ccxt's ``features`` when it declares one, else a
  per-exchange default, else 500). The next page starts one candle after the last one
  received.
* **Resume**: what the catalog holds is not fetched again. A run continues after the
  newest stored candle (:meth:`Catalog.last_time`), and fetches the part before the oldest
  stored candle when ``--from`` is earlier.
* **Closed candles only**: ``--to`` is exclusive on open time; the still-open last candle
  (open time + timeframe > now) is dropped, so nothing partial is ever stored.
* **Retries**: ``ccxt.NetworkError`` that may pass (timeouts, 5xx, DDoS protection, rate
  limits, a dropped connection) is retried ``exchange.retries`` times with exponential
  backoff starting at ``exchange.backoff_s`` seconds; after that the run stops with
  :class:`~gogo2.errors.ExchangeFetchError` (exit code 1), keeping what was already
  written. ccxt's own rate limiter is on (``enableRateLimit``).
* **Fail fast on a network no retry can fix**: a host name that does not resolve (DNS; no
  network at all looks like this), a connection refused by the host, an unreachable
  network and TLS/certificate errors stop the run at the first attempt with
  :class:`ExchangeUnreachableError`: one line naming the cause and the host (exit code 1:
  the command was right, the machine's network or the exchange host is not).
* **Errors that will not go away** (unknown exchange, symbol or timeframe, refused
  credentials, other exchange errors) stop the run at the first attempt with one message
  naming the exchange and the symbol (exit code 2: the input must change).
* **Extreme jumps**: the threshold is ``--max-jump`` when given, else ``data.max_jump`` when
  the configuration sets it, else the per-timeframe default of
  :func:`datasets.schema.default_max_jump`.
* **Writes**: rows are written in chunks of ``chunk_rows`` through ``Catalog.write`` with
  ``source="real"``; every write is atomic, and an interrupted run resumes where the last
  write ended. Validation is the catalog's: bad candles are refused unless ``--repair``.
* **Gaps**: candles missing inside the downloaded range (exchange outages) are printed,
  never filled.

``--api-url URL`` (hidden; also the environment variable ``GOGO2_EXCHANGE_API_URL``)
replaces the scheme and host of every REST url of the exchange, keeping each path, to point
ccxt at a mirror, a proxy or a local test server.

The ccxt client (creation, url override, page size, retries, error translation) lives in
:mod:`datasets.exchange_client`; its names are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from datasets.catalog_cli import max_jump_option
from datasets.exchange_client import (  # noqa: F401  (re-exported: the client API)
    API_URL_ENV,
    DEFAULT_PAGE_LIMITS,
    FALLBACK_PAGE_LIMIT,
    ExchangeUnreachableError,
    _translate,
    call_with_retry,
    make_exchange,
    override_api_urls,
    page_limit,
    unfixable_network_cause,
)
from gogo2.clikit import config_option
from gogo2.errors import ExchangeFetchError, UnknownNameError, UserInputError
from gogo2.timeframes import format_time, normalize, parse_time, timeframe_ms

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DEFAULT_CHUNK_ROWS = 100_000


@dataclass
class SeriesResult:
    """What one (symbol, timeframe) download did."""

    exchange: str
    symbol: str
    timeframe: str
    requested: tuple[int, int]
    rows: int = 0
    requests: int = 0
    first: int | None = None
    last: int | None = None
    dropped_open: int = 0
    gaps: list[tuple[int, int, int]] = field(default_factory=list)
    listed_from: int | None = None
    changes: list[str] = field(default_factory=list)
    up_to_date: bool = False
    #: (last candle received, end of the range, candles missing) when the exchange sent
    #: nothing for the end of the range (an ongoing outage, or a delisted market)
    tail_missing: tuple[int, int, int] | None = None


# --------------------------------------------------------------------------- paging
def iter_ohlcv_pages(
    exchange: Any,
    symbol: str,
    timeframe: str,
    start: int,
    end: int,
    *,
    limit: int | None = None,
    retries: int = 5,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, float, Exception], None] | None = None,
    stats: dict[str, int] | None = None,
) -> Iterator[np.ndarray]:
    """Yield pages of candles from ``start`` on, until a page reaches ``end``.

    Each page is a float64 array (rows, 6) of time, open, high, low, close, volume, sorted
    and de-duplicated (the last row of a repeated time wins), with no row before the page's
    ``since``. The last page may hold rows at or after ``end`` (the caller trims them: this
    is how it sees the still-open candle). The iteration stops at an empty page.
    ``stats['requests']`` counts calls, retries included.
    """
    import numpy as np

    step = timeframe_ms(timeframe)
    limit = limit or page_limit(exchange)
    since = start

    def fetch(s: int) -> list:
        if stats is not None:
            stats["requests"] = stats.get("requests", 0) + 1
        return exchange.fetch_ohlcv(symbol, timeframe, s, limit)

    while since < end:
        raw = call_with_retry(
            lambda s=since: fetch(s),
            exchange=exchange,
            retries=retries,
            backoff_s=backoff_s,
            sleep=sleep,
            symbol=symbol,
            timeframe=timeframe,
            on_retry=on_retry,
        )
        if not raw:
            return
        page = np.asarray([row[:6] for row in raw], dtype=np.float64)
        page = _dedupe_last(page[np.argsort(page[:, 0], kind="stable")])
        newest = int(page[-1, 0])
        if newest < since:
            raise ExchangeFetchError(
                f"{exchange.id} {symbol} {timeframe}: the exchange ignored the start time "
                f"{format_time(since)} (newest candle returned: {format_time(newest)}), so it "
                "cannot be paged with fetch_ohlcv."
            )
        page = page[page[:, 0] >= since]
        yield page
        since = newest + step


def _dedupe_last(page: np.ndarray) -> np.ndarray:
    """Keep the last row of each timestamp of a time-sorted page."""
    import numpy as np

    if page.shape[0] < 2:
        return page
    keep = np.ones(page.shape[0], dtype=bool)
    keep[:-1] = page[1:, 0] != page[:-1, 0]
    return page[keep]


def _frame(rows: list[np.ndarray]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    arr = np.concatenate(rows) if rows else np.empty((0, 6))
    return pd.DataFrame(
        {
            "time": arr[:, 0].astype(np.int64),
            "open": arr[:, 1],
            "high": arr[:, 2],
            "low": arr[:, 3],
            "close": arr[:, 4],
            "volume": arr[:, 5],
        }
    )


@dataclass(frozen=True)
class _Range:
    start: int
    end: int
    before: int | None  # newest stored candle before the range (gap check at its start)
    after: int | None  # oldest stored candle after the range (gap check at its end)


def _plan(
    catalog: Any, exchange_id: str, symbol: str, timeframe: str, start: int, stop: int
) -> tuple[list[_Range], int | None]:
    """The ranges still to fetch given what the catalog holds, and the newest stored time."""
    step = timeframe_ms(timeframe)
    last = catalog.last_time(exchange_id, symbol, timeframe)
    if last is None:
        return ([_Range(start, stop, None, None)] if start < stop else []), None
    first = last
    for info in catalog.coverage(exchange=exchange_id, symbol=symbol, timeframe=timeframe):
        if not getattr(info, "derived", False) and info.first is not None:
            first = min(first, int(info.first))
    ranges = []
    if start < first and start < stop:
        ranges.append(_Range(start, min(first, stop), None, first if first < stop else None))
    resume = max(start, last + step)
    if resume < stop:
        ranges.append(_Range(resume, stop, last if resume == last + step else None, None))
    return ranges, last


def _gap(a: int, b: int, step: int) -> tuple[int, int, int]:
    return (int(a), int(b), int((b - a) // step - 1))


def download_series(
    catalog: Any,
    exchange: Any,
    symbol: str,
    timeframe: str,
    start: int,
    end: int | None = None,
    *,
    repair: bool = False,
    retries: int = 5,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    now_ms: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_retry: Callable[[int, float, Exception], None] | None = None,
    max_jump: float | None = None,
) -> SeriesResult:
    """Download one series into ``catalog``; the rules are in the module docstring.

    Parameters
    ----------
    catalog : datasets.catalog.Catalog
        Target; written with ``source="real"``.
    exchange : ccxt.Exchange
        Client from :func:`make_exchange`.
    symbol, timeframe : str
        Unified symbol ('BTC/USDT') and ccxt timeframe ('1m').
    start, end : int
        Open-time range in UTC ms, ``end`` exclusive; ``None`` means up to now.
    repair : bool
        Passed to ``Catalog.write``: repair bad candles instead of refusing them.
    retries, backoff_s, sleep
        Retry policy for ``ccxt.NetworkError``; ``sleep`` is injectable for tests.
    now_ms : int, optional
        The current time; a candle with ``open + timeframe > now_ms`` is still open and is
        dropped. Defaults to the machine clock.
    chunk_rows : int
        Rows buffered before each atomic catalog write.
    limit : int, optional
        Page size; defaults to :func:`page_limit`.
    progress : callable, optional
        ``progress(done_candles, total_candles)`` after every page.
    on_retry : callable, optional
        ``on_retry(attempt, delay_s, error)`` before each backoff sleep.
    max_jump : float, optional
        Extreme-jump threshold passed to ``Catalog.write``; None means the per-timeframe
        default (:func:`datasets.schema.default_max_jump`), not the catalog's own.

    Returns
    -------
    SeriesResult
        Rows written, requests made, gaps found (never filled), dropped open candles.
    """
    step = timeframe_ms(timeframe)
    now = int(now_ms if now_ms is not None else time.time() * 1000)
    from datasets.schema import grid_offset_ms, resolve_max_jump

    mj = resolve_max_jump(timeframe, max_jump)
    off = grid_offset_ms(step)  # weekly candles open on Mondays
    current_open = ((now - off) // step) * step + off  # every candle before this one is closed
    stop = current_open if end is None else min(int(end), current_open)
    start = -((off - int(start)) // step) * step + off  # first grid time >= start
    result = SeriesResult(exchange.id, symbol, timeframe, (start, stop))
    ranges, _ = _plan(catalog, exchange.id, symbol, timeframe, start, stop)
    if not ranges:
        result.up_to_date = True
        return result
    total = sum((r.end - r.start) // step for r in ranges)
    done = 0
    origin = f"{exchange.id} {symbol} {timeframe} (ccxt fetch_ohlcv)"
    buffer: list[np.ndarray] = []
    stats: dict[str, int] = {"requests": 0}

    def flush() -> None:
        if not buffer:
            return
        report = catalog.write(
            _frame(buffer),
            exchange=exchange.id,
            symbol=symbol,
            timeframe=timeframe,
            source="real",
            repair=repair,
            origin=origin,
            max_jump=mj,
        )
        result.changes.extend(getattr(report, "changes", None) or [])
        buffer.clear()

    try:
        for rng in ranges:
            prev = rng.before
            for page in iter_ohlcv_pages(
                exchange,
                symbol,
                timeframe,
                rng.start,
                rng.end,
                limit=limit,
                retries=retries,
                backoff_s=backoff_s,
                sleep=sleep,
                on_retry=on_retry,
                stats=stats,
            ):
                times = page[:, 0].astype("int64")
                if rng.end == current_open and (end is None or int(end) > current_open):
                    result.dropped_open += int((times >= current_open).sum())
                inside = times < rng.end
                page, times = page[inside], times[inside]
                if not times.size:
                    continue
                if prev is None and result.listed_from is None and times[0] > rng.start:
                    result.listed_from = int(times[0])
                if prev is not None and times[0] - prev > step:
                    result.gaps.append(_gap(prev, times[0], step))
                for i in ((times[1:] - times[:-1]) > step).nonzero()[0]:
                    result.gaps.append(_gap(times[i], times[i + 1], step))
                prev = int(times[-1])
                result.rows += int(times.size)
                result.first = (
                    int(times[0]) if result.first is None else min(result.first, int(times[0]))
                )
                result.last = (
                    int(times[-1]) if result.last is None else max(result.last, int(times[-1]))
                )
                buffer.append(page)
                if sum(p.shape[0] for p in buffer) >= chunk_rows:
                    flush()
                done = min(total, done + int(times.size))
                if progress is not None:
                    progress(done, total)
            if rng.after is not None and prev is not None and rng.after - prev > step:
                result.gaps.append(_gap(prev, rng.after, step))
            elif rng.after is None and prev is not None and rng.end - prev > step:
                result.tail_missing = (prev, rng.end, int((rng.end - prev) // step - 1))
    finally:
        result.requests = stats["requests"]
        flush()  # candles fetched before a failure are closed candles: keep them
    result.gaps.sort()
    if progress is not None:
        progress(total, total)
    return result


# --------------------------------------------------------------------------- command
def _split(value: str, name: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UserInputError(f"{name} {value!r} is empty. Give a comma-separated list.")
    return list(dict.fromkeys(items))


def check_request(exchange: Any, symbols: list[str], timeframes: list[str]) -> None:
    """Refuse unknown symbols and timeframes before anything is fetched (markets must be loaded)."""
    import ccxt

    markets = getattr(exchange, "markets", None) or {}
    for sym in symbols:
        if markets and sym not in markets:
            raise _translate(
                ccxt.BadSymbol(f"{exchange.id} does not have market symbol {sym}"),
                exchange,
                sym,
                None,
            )
    known = dict(getattr(exchange, "timeframes", None) or {})
    for tf in timeframes:
        if known and tf not in known:
            raise UnknownNameError(
                f"timeframe on {exchange.id}",
                tf,
                known,
                "Give one of these with --timeframes.",
            )


def _describe(res: SeriesResult) -> list[str]:
    head = f"{res.exchange} {res.symbol} {res.timeframe}: "
    if res.up_to_date:
        return [head + f"up to date (nothing to fetch before {format_time(res.requested[1])})."]
    lines = [
        head
        + f"{res.rows} candles written"
        + (f", {format_time(res.first)} .. {format_time(res.last)}" if res.rows else "")
        + f" ({res.requests} requests)."
    ]
    if res.rows == 0:
        lines.append(
            f"  note: the exchange returned no candles between {format_time(res.requested[0])} "
            f"and {format_time(res.requested[1])}."
        )
    if res.listed_from is not None:
        lines.append(
            f"  note: the exchange returned no candles between {format_time(res.requested[0])} "
            f"and {format_time(res.listed_from)} (not listed yet, or an outage)."
        )
    if res.tail_missing is not None:
        a, b, missing = res.tail_missing
        lines.append(
            f"  note: no candles after {format_time(a)} up to {format_time(b)} "
            f"({missing} missing at the end: an ongoing outage or a delisted market)."
        )
    if res.dropped_open:
        lines.append("  the still-open last candle was not stored.")
    for a, b, missing in res.gaps:
        lines.append(
            f"  gap: {missing} missing candle(s) between {format_time(a)} and {format_time(b)} "
            "(exchange outage; not filled)."
        )
    for change in res.changes:
        lines.append(f"  repaired: {change}")
    return lines


@click.command("download")
@click.option(
    "--exchange",
    "exchange_name",
    default=None,
    help="ccxt exchange id, for example binance (default: exchange.name of the config).",
)
@click.option("--symbols", required=True, help="Comma-separated symbols, e.g. BTC/USDT,ETH/USDT.")
@click.option("--timeframes", default="1m", show_default=True, help="Comma-separated, e.g. 1m,1h.")
@click.option("--from", "start", required=True, help="First open time, UTC (2023-01-01).")
@click.option("--to", "end", default=None, help="End (exclusive) on open time, UTC; default: now.")
@click.option(
    "--repair",
    is_flag=True,
    help="Sort, de-duplicate and drop bad candles (each change is reported) instead of refusing.",
)
@max_jump_option
@click.option("--api-url", default=None, envvar=API_URL_ENV, hidden=True)
@config_option
def download_cmd(
    exchange_name: str | None,
    symbols: str,
    timeframes: str,
    start: str,
    end: str | None,
    repair: bool,
    max_jump: float | None,
    api_url: str | None,
    config_path: str | None,
) -> None:
    """Download candles from an exchange through ccxt into the catalog.

    Resumes after what is stored, skips the still-open candle, retries timeouts, 5xx and
    rate limits with backoff, stops at once on DNS, refused-connection and TLS errors, and
    reports gaps (never fills them).
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from datasets.catalog import Catalog
    from datasets.catalog_cli import stored_in
    from datasets.schema import configured_max_jump
    from gogo2.clikit import load

    settings = load(config_path)
    ex_cfg = settings.exchange
    given_jump = max_jump if max_jump is not None else configured_max_jump(settings.data)
    syms = _split(symbols, "--symbols")
    tfs = [normalize(tf) for tf in _split(timeframes, "--timeframes")]
    t0 = parse_time(start, "--from")
    t1 = parse_time(end, "--to")
    assert t0 is not None
    if t1 is not None and t1 <= t0:
        raise UserInputError(
            f"--to {end} is not after --from {start}. Give an end later than the start."
        )
    exchange = make_exchange(exchange_name or ex_cfg.name, ex_cfg, api_url)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    def on_retry(attempt: int, delay: float, e: Exception) -> None:
        err.print(
            f"{exchange.id}: {type(e).__name__}; retry {attempt}/{ex_cfg.retries} in {delay:g} s",
            markup=False,
        )

    call_with_retry(
        exchange.load_markets,
        exchange=exchange,
        retries=ex_cfg.retries,
        backoff_s=ex_cfg.backoff_s,
        on_retry=on_retry,
    )
    check_request(exchange, syms, tfs)
    catalog = Catalog.from_settings(settings)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with progress:
        for sym in syms:
            for tf in tfs:
                task = progress.add_task(f"{exchange.id} {sym} {tf}", total=None)

                def advance(done: int, total: int, task: Any = task) -> None:
                    progress.update(task, completed=done, total=max(total, 1))

                res = download_series(
                    catalog,
                    exchange,
                    sym,
                    tf,
                    t0,
                    t1,
                    repair=repair,
                    retries=ex_cfg.retries,
                    backoff_s=ex_cfg.backoff_s,
                    progress=advance,
                    on_retry=on_retry,
                    max_jump=given_jump,
                )
                progress.remove_task(task)
                for line in _describe(res):
                    out.print(line, markup=False)
    out.print(stored_in(catalog), markup=False)
