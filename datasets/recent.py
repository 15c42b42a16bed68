"""Recent-candle cache with a time-to-live, for the live runner.

The live runner polls an exchange for the newest candles of several series and hands the
last few hundred to a strategy on every closed bar. :class:`RecentCandles` keeps those
candles in memory:

* ``put`` merges new rows into a series (rows at a stored time replace it, as in the catalog)
  and bumps the series' version;
* ``get`` returns the series, or None once it is older than the TTL (counted from the last
  ``put``) — a stale window must be refetched, not traded on;
* ``last(n)`` returns a view of the newest ``n`` candles. Views are memoised per version: a
  view computed before an update is never served after it.

Times are int64 milliseconds UTC (candle open times). The clock is injectable
(``time.monotonic`` by default) so tests need no sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from datasets.schema import COLUMNS, to_frame
from gogo2.errors import DataError
from gogo2.timeframes import normalize

if TYPE_CHECKING:
    import pandas as pd

Key = tuple[str, str, str]


@dataclass
class _Entry:
    frame: pd.DataFrame
    stamp: float
    version: int
    views: dict[int, pd.DataFrame] = field(default_factory=dict)


class RecentCandles:
    """In-memory newest candles per ``(exchange, symbol, timeframe)``, expiring after a TTL.

    Parameters
    ----------
    ttl_seconds : float, optional
        Seconds an entry lives after its last ``put``; defaults to
        ``settings.data.recent_cache_ttl`` of the loaded configuration.
    clock : callable, optional
        Returns seconds as a float; ``time.monotonic`` by default.
    max_rows : int
        Rows kept per series (the oldest are dropped beyond it).
    """

    def __init__(
        self,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_rows: int = 10_000,
    ) -> None:
        if ttl_seconds is None:
            from gogo2.config import load_settings

            ttl_seconds = load_settings().data.recent_cache_ttl
        if not ttl_seconds > 0:
            raise DataError(
                f"recent-candle cache ttl_seconds {ttl_seconds!r} must be positive "
                "(data.recent_cache_ttl in config.yaml)."
            )
        if max_rows < 1:
            raise DataError(f"max_rows {max_rows!r} must be at least 1.")
        self.ttl = float(ttl_seconds)
        self.clock = clock
        self.max_rows = int(max_rows)
        self._entries: dict[Key, _Entry] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(exchange: str, symbol: str, timeframe: str) -> Key:
        return (exchange, symbol, normalize(timeframe))

    def put(self, exchange: str, symbol: str, timeframe: str, rows) -> int:
        """Merge candles into a series; returns the series' new version number.

        Parameters
        ----------
        rows : pandas.DataFrame
            Columns ``time, open, high, low, close, volume`` (extra columns ignored). A row at
            a time already held replaces it (the exchange revised the candle).
        """
        import pandas as pd

        key = self._key(exchange, symbol, timeframe)
        new = to_frame(rows, origin=f"recent candles {exchange} {symbol} {key[2]}")
        with self._lock:
            now = self.clock()
            old = self._entries.get(key)
            if old is not None and not self._expired(old, now) and not old.frame.empty:
                merged = pd.concat([old.frame, new], ignore_index=True)
            else:
                merged = new
            merged = merged.drop_duplicates("time", keep="last").sort_values("time", kind="stable")
            merged = merged.tail(self.max_rows).reset_index(drop=True)
            version = (old.version + 1) if old is not None else 1
            self._entries[key] = _Entry(merged, now, version)
            return version

    def _expired(self, entry: _Entry, now: float) -> bool:
        return now - entry.stamp >= self.ttl

    def _live(self, key: Key) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._expired(entry, self.clock()):
            del self._entries[key]
            return None
        return entry

    def get(self, exchange: str, symbol: str, timeframe: str) -> pd.DataFrame | None:
        """All cached candles of a series (a copy), or None when absent or expired."""
        with self._lock:
            entry = self._live(self._key(exchange, symbol, timeframe))
            return None if entry is None else entry.frame.copy()

    def last(self, exchange: str, symbol: str, timeframe: str, n: int) -> pd.DataFrame | None:
        """The newest ``n`` candles (fewer if fewer are held), or None when absent or expired.

        The result is memoised until the next ``put`` of the series; callers must not modify it.
        """
        if n < 1:
            raise DataError(f"n {n!r} must be at least 1 (number of recent candles wanted).")
        with self._lock:
            entry = self._live(self._key(exchange, symbol, timeframe))
            if entry is None:
                return None
            view = entry.views.get(n)
            if view is None:
                view = entry.frame.tail(n).reset_index(drop=True)
                entry.views[n] = view
            return view

    def arrays(
        self, exchange: str, symbol: str, timeframe: str, n: int
    ) -> dict[str, np.ndarray] | None:
        """The newest ``n`` candles as numpy arrays (``time`` int64, the rest float64)."""
        view = self.last(exchange, symbol, timeframe, n)
        if view is None:
            return None
        return {c: view[c].to_numpy(copy=True) for c in COLUMNS}

    def last_time(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        """Open time of the newest cached candle, None when absent or expired."""
        with self._lock:
            entry = self._live(self._key(exchange, symbol, timeframe))
            if entry is None or entry.frame.empty:
                return None
            return int(entry.frame["time"].iloc[-1])

    def version(self, exchange: str, symbol: str, timeframe: str) -> int:
        """Version of a series: incremented by each ``put``; 0 when never put."""
        with self._lock:
            entry = self._entries.get(self._key(exchange, symbol, timeframe))
            return 0 if entry is None else entry.version

    def invalidate(
        self, exchange: str | None = None, symbol: str | None = None, timeframe: str | None = None
    ) -> int:
        """Drop entries matching the given parts (all entries when none given); returns count."""
        tf = normalize(timeframe) if timeframe else None
        with self._lock:
            drop = [
                k
                for k in self._entries
                if (exchange is None or k[0] == exchange)
                and (symbol is None or k[1] == symbol)
                and (tf is None or k[2] == tf)
            ]
            for k in drop:
                del self._entries[k]
            return len(drop)

    def purge(self) -> int:
        """Remove expired entries; returns how many were removed."""
        with self._lock:
            now = self.clock()
            drop = [k for k, e in self._entries.items() if self._expired(e, now)]
            for k in drop:
                del self._entries[k]
            return len(drop)

    def __len__(self) -> int:
        with self._lock:
            now = self.clock()
            return sum(1 for e in self._entries.values() if not self._expired(e, now))
