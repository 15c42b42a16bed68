"""The candle catalog: Parquet files on disk, read through DuckDB.

Layout (under the catalog root, ``settings.data.path``, default ``./data``)::

    exchange=<exchange>/symbol=<BASE-QUOTE>/timeframe=<tf>/year=<YYYY>.parquet
    exchange=<exchange>/symbol=<BASE-QUOTE>/timeframe=<tf>/_series.json
    _derived/exchange=<exchange>/symbol=<BASE-QUOTE>/timeframe=<tf>.from=<base>.parquet (+ .json)

One file per calendar year (UTC) of candle open times. In the directory name ``/`` of the
symbol is written ``-`` and ``:`` (settle currency of derivatives) ``_``; the exact symbol is
kept in ``_series.json``.

Schema of every file (see :mod:`datasets.schema`): ``time`` int64 = candle **open** time in
**milliseconds since the epoch, UTC**; ``open, high, low, close, volume`` float64. Rows are
sorted by time and unique.

``_series.json`` is the per-series metadata: exchange, symbol, timeframe, source
(``"real"`` or ``"synthetic"``), origin(s), created and updated times (ms), and per-file
row counts, first/last times and gaps, so coverage queries read no candle data.

Timeframes
    The finest timeframe a symbol has is the one to store. Any coarser timeframe that is a
    whole multiple of a stored one is derived in DuckDB (first open, max high, min low,
    last close, summed volume; bucket = floor(time / tf) * tf, UTC-aligned, weeks on Mondays)
    and cached under ``_derived/``. The cache records the fingerprint (file names, sizes and
    mtimes) of the base files; a write deletes the symbol's caches and a changed fingerprint
    makes a stale cache be rebuilt. When the requested timeframe is stored itself it is read
    as stored; otherwise it is derived from the stored timeframe that divides it and covers
    most of the requested range (normally the one stored timeframe; ties go to the finest).

Incomplete buckets
    A coarse candle whose fine candles are partly missing (an exchange outage) is still
    emitted from the candles present; ``Bars.meta["fill"]`` holds the fraction of fine candles
    each coarse candle was built from. The **last** bucket is dropped when the data ends before
    it closes: it is not a closed candle yet and must not be presented as one.

Write guarantee
    ``write`` validates first (nothing is touched when validation refuses), then writes every
    new year file and the new metadata to temporary files next to their targets (each temp is
    on the cleanup list before its first byte), fsyncs them and swaps them in with a journaled
    all-or-nothing swap (:func:`datasets.storage.atomic_swap`). An exception or Ctrl-C at any
    step leaves the series as it was; a process killed mid-swap leaves a journal that the next
    open of the catalog rolls forward or back. Either way the year files and ``_series.json``
    are the old set or the new one, whole. Writers of one series are serialized with a lock
    file where the OS supports it; a catalog that cannot be written refuses a write with one
    :class:`~datasets.storage.CatalogNotWritableError` and still serves reads.

Opening a catalog
    finishes interrupted swaps, removes leftover temp files of the catalog's own naming in
    directories whose lock is free (never a live writer's) and finishes interrupted
    deletions; a read-only catalog is left alone.

Metadata against the files
    Every use of ``_series.json`` checks it against the year files present (names, and size
    and mtime recorded per file, or the row count of older metadata). When they disagree the
    figures are rebuilt from the files, saved, and a one-line note says so; metadata whose
    data files are all gone means the series is absent (the stale JSON is removed).

Modules
    :class:`Catalog` (this module) is the facade: discovery, writes, reads, coverage. File
    safety (locks, fsync, the swap) is in :mod:`datasets.storage`, ``_series.json`` in
    :mod:`datasets.series_meta`, the merge-and-write of one series in
    :mod:`datasets.series_write`, derived caches in :mod:`datasets.derived`, the DuckDB
    read functions in :mod:`datasets.parquet_read`, name and timeframe resolution in
    :mod:`datasets.resolve`, deletion and recovery on open in :mod:`datasets.housekeeping`.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datasets.bars import Bars
from datasets.derived import (
    DERIVED_DIR,
    derived_coverage,
    invalidate_derived,
    read_derived,
)
from datasets.housekeeping import delete_series, recover_catalog
from datasets.parquet_read import (
    empty_columns,
    ensure_sorted,
    parquet_rows,
    query,
    range_clause,
    sql_list,
)
from datasets.resample import derive_files, union_sorted
from datasets.resolve import (
    EXCHANGE_RE,
    base_for,
    check_key,
    check_range,
    how_to_get_data,
    resolve_exchange,
)
from datasets.schema import (
    COLUMNS,
    VALUE_COLUMNS,
    check_candles,
    resolve_max_jump,
)
from datasets.series_meta import (
    META_NAME,
    SOURCES,
    SeriesInfo,
    read_meta,
    reconcile,
    series_meta,
    symbol_dirname,
    symbol_from_dirname,
    year_files,
    year_of,
)
from datasets.series_write import WriteReport, write_locked
from datasets.storage import (
    CatalogNotWritableError,
    is_read_only_error,
    series_lock,
)
from gogo2.errors import DataError, NoDataError, UnknownNameError, UserInputError
from gogo2.timeframes import format_time, normalize, timeframe_ms

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DERIVED_DIR",
    "META_NAME",
    "SOURCES",
    "Catalog",
    "SeriesInfo",
    "WriteReport",
    "symbol_dirname",
]


class Catalog:
    """Parquet candle catalog rooted at ``root`` (created on first write).

    Parameters
    ----------
    root : str | Path
        Catalog directory, usually ``settings.data.path``.
    max_jump : float, optional
        Extreme-jump threshold used by :meth:`write` when none is given
        (``settings.data.max_jump``); None: the per-timeframe default
        (:func:`datasets.schema.default_max_jump`).
    """

    def __init__(self, root: str | Path, *, max_jump: float | None = None) -> None:
        self.root = Path(root)
        self.max_jump = max_jump
        self._local = threading.local()
        self._meta_cache: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        self.recover()

    def recover(self) -> None:
        """Finish writes and deletions interrupted by a dead process; remove their temp files.

        Runs on every open (see :func:`datasets.housekeeping.recover_catalog`); a read-only
        catalog is left alone.
        """
        recover_catalog(self.root)

    @classmethod
    def from_settings(cls, settings: Any) -> Catalog:
        """The catalog of ``settings.data`` (root ``data.path``, threshold ``data.max_jump``)."""
        return cls(settings.data.path, max_jump=settings.data.max_jump)

    def __repr__(self) -> str:
        return f"Catalog({str(self.root)!r})"

    def close(self) -> None:
        """Close this thread's DuckDB connection (reopened on the next read)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths -------------------------------------------------------------------------------

    def series_dir(self, exchange: str, symbol: str, timeframe: str) -> Path:
        return (
            self.root
            / f"exchange={exchange}"
            / f"symbol={symbol_dirname(symbol)}"
            / f"timeframe={normalize(timeframe)}"
        )

    def _connection(self):
        """This thread's DuckDB connection (a connection must not be shared across threads)."""
        con = getattr(self._local, "con", None)
        if con is None:
            import duckdb

            con = self._local.con = duckdb.connect(":memory:")
        return con

    # -- metadata ----------------------------------------------------------------------------

    def _read_meta(self, directory: Path) -> dict[str, Any] | None:
        """Parsed ``_series.json`` (memoised on the file's size and mtime); None if unreadable."""
        return read_meta(self._meta_cache, directory)

    def _series_meta(self, exchange: str, symbol: str, timeframe: str) -> dict[str, Any] | None:
        """Metadata of a stored series checked against its files (None: nothing stored)."""
        tf = normalize(timeframe)
        return self._dir_meta(self.series_dir(exchange, symbol, tf), exchange, symbol, tf)

    def _dir_meta(
        self, directory: Path, exchange: str, symbol: str, tf: str
    ) -> dict[str, Any] | None:
        meta, problems, restamp = series_meta(
            self._read_meta(directory), year_files(directory), exchange, symbol, tf
        )
        if problems or restamp:
            reconcile(directory, meta, problems, exchange, symbol, tf)
        return meta

    # -- discovery ---------------------------------------------------------------------------

    def exchanges(self) -> list[str]:
        """Exchanges with at least one stored series."""
        return sorted({m["exchange"] for m in self._stored()})

    def _stored(self) -> list[dict[str, Any]]:
        """Metadata of every stored series with rows (rebuilt from the files where missing)."""
        out = []
        if not self.root.is_dir():
            return out
        for directory in sorted(self.root.glob("exchange=*/symbol=*/timeframe=*")):
            raw = self._read_meta(directory) or {}
            exchange = directory.parent.parent.name.split("=", 1)[1]
            symbol = raw.get("symbol")
            if not isinstance(symbol, str):
                symbol = symbol_from_dirname(directory.parent.name.split("=", 1)[1])
            try:
                tf = normalize(directory.name.split("=", 1)[1])
                meta = self._dir_meta(directory, exchange, symbol, tf)
            except (OSError, ValueError, UserInputError):
                continue
            if meta and meta.get("rows"):
                out.append(meta)
        return out

    def symbols(self, exchange: str | None = None) -> list[str]:
        """Symbols stored (on ``exchange`` when given)."""
        return sorted(
            {m["symbol"] for m in self._stored() if exchange is None or m["exchange"] == exchange}
        )

    def timeframes(self, exchange: str, symbol: str) -> list[str]:
        """Stored (not derived) timeframes of a symbol, finest first."""
        d = self.root / f"exchange={exchange}" / f"symbol={symbol_dirname(symbol)}"
        if not d.is_dir():
            return []
        tfs = [
            p.name.split("=", 1)[1]
            for p in d.iterdir()
            if p.is_dir() and p.name.startswith("timeframe=") and year_files(p)
        ]
        return sorted(tfs, key=timeframe_ms)

    def series_source(self, exchange: str, symbol: str) -> str | None:
        """``"real"`` or ``"synthetic"`` for a stored symbol, None when nothing is stored."""
        for tf in self.timeframes(exchange, symbol):
            meta = self._series_meta(exchange, symbol, tf)
            if meta is not None:
                return meta.get("source", "real")
        return None

    def _check_exchange(self, exchange: str, fix: str | None = None) -> None:
        if EXCHANGE_RE.match(exchange) and any(
            (self.root / f"exchange={exchange}").glob("symbol=*/timeframe=*/year=*.parquet")
        ):
            return
        if exchange not in self.exchanges():
            raise UnknownNameError(
                "exchange",
                exchange,
                self.exchanges(),
                fix=fix or how_to_get_data(self.root),
            )

    def _check_symbol(self, exchange: str, symbol: str, fix: str | None = None) -> None:
        self._check_exchange(exchange, fix)
        if not self.timeframes(exchange, symbol):
            raise UnknownNameError(
                f"symbol on {exchange}",
                symbol,
                self.symbols(exchange),
                fix=fix or how_to_get_data(self.root),
            )

    # -- write -------------------------------------------------------------------------------

    def write(
        self,
        df: pd.DataFrame,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        source: str = "real",
        repair: bool = False,
        origin: str = "input",
        max_jump: float | None = None,
    ) -> WriteReport:
        """Validate candles, merge them into the stored series and write atomically.

        Parameters
        ----------
        df : pandas.DataFrame
            Columns ``time`` (int64 ms UTC open time), ``open, high, low, close, volume``;
            extra columns are ignored.
        exchange, symbol, timeframe : str
            Series key, e.g. ``"binance", "BTC/USDT", "1m"``.
        source : {"real", "synthetic"}
            Stored with the series; a symbol cannot mix real and synthetic candles.
        repair : bool
            False refuses bad candles; True sorts, de-duplicates, drops bad rows and reports.
        origin : str
            File path or URL of the candles, named in error messages and kept in metadata.
        max_jump : float, optional
            Extreme-jump threshold; defaults to the catalog's, else the timeframe's default.

        Returns
        -------
        WriteReport

        Raises
        ------
        CandleValidationError
            The candles fail validation (nothing stored).
        DataError
            Bad series key or source, or a source conflict with what is stored.
        """
        exchange, symbol, tf = self._check_key(exchange, symbol, timeframe)
        if source not in SOURCES:
            raise DataError(f"source {source!r} must be 'real' or 'synthetic'.")
        mj = resolve_max_jump(tf, self.max_jump if max_jump is None else max_jump)
        frame, changes, _ = check_candles(df, tf, origin=origin, repair=repair, max_jump=mj)
        stored_source = self.series_source(exchange, symbol)
        if stored_source is not None and stored_source != source:
            raise DataError(
                f"{exchange} {symbol} holds {stored_source} candles; refusing to add {source} "
                f"candles from {origin}. Store them under another exchange name "
                f"(the synthetic sample lives under 'synthetic')."
            )
        if frame.empty:
            return WriteReport(0, 0, None, None, changes, [])
        directory = self.series_dir(exchange, symbol, tf)
        tf_ms = timeframe_ms(tf)
        created = [
            p for p in (directory, directory.parent, directory.parent.parent) if not p.exists()
        ]
        try:
            with series_lock(directory):
                return write_locked(
                    self, frame, directory, exchange, symbol, tf, tf_ms, source, origin, changes, mj
                )
        except BaseException as e:
            if is_read_only_error(e):
                raise self._not_writable(e, f"cannot store {exchange} {symbol} {tf}") from None
            # a failed first write leaves no empty series directory behind
            if created and not year_files(directory):
                with contextlib.suppress(OSError):
                    (directory / ".lock").unlink()
                for p in created:
                    with contextlib.suppress(OSError):
                        p.rmdir()
            raise

    def check_stored(self, exchange: str, symbol: str, timeframe: str | None = None) -> str | None:
        """Raise :class:`UnknownNameError` (with a hint) unless the series is stored.

        Returns the normalized timeframe (None when not given).
        """
        fix = "Run `cli.py data list` to see what is stored."
        self._check_symbol(exchange, symbol, fix)
        tf = normalize(timeframe) if timeframe is not None else None
        stored = self.timeframes(exchange, symbol)
        if tf is not None and tf not in stored:
            raise UnknownNameError(f"timeframe of {exchange} {symbol}", tf, stored, fix=fix)
        return tf

    def delete(self, exchange: str, symbol: str, timeframe: str | None = None) -> list[SeriesInfo]:
        """Remove a stored series (all its timeframes when ``timeframe`` is None).

        Its year files, ``_series.json`` and the symbol's derived caches go; an interrupt
        leaves the series either whole or gone (see :mod:`datasets.housekeeping`).

        Returns
        -------
        list of SeriesInfo
            What was removed.

        Raises
        ------
        UnknownNameError
            Nothing stored under that exchange, symbol or timeframe (with a close-match hint).
        CatalogNotWritableError
            The catalog directory cannot be written.
        """
        tf = self.check_stored(exchange, symbol, timeframe)
        gone = [
            s
            for s in self.coverage(exchange, symbol)
            if not s.derived and (tf is None or s.timeframe == tf)
        ]
        try:
            delete_series(self, exchange, symbol, tf)
        except OSError as e:
            if is_read_only_error(e):
                what = f"cannot delete {exchange} {symbol}" + (f" {tf}" if tf else "")
                raise self._not_writable(e, what) from None
            raise
        return gone

    def _not_writable(self, e: BaseException, what: str) -> CatalogNotWritableError:
        detail = getattr(e, "strerror", None) or str(e)
        where = getattr(e, "filename", None)
        return CatalogNotWritableError(
            f"the catalog at {self.root} is not writable ({detail}"
            + (f": {where}" if where else "")
            + f"); {what}. Make that directory writable (owner, permissions, read-only mount) "
            "or point data.dir at a writable directory (--config FILE or GOGO2__DATA__DIR)."
        )

    def _check_key(self, exchange: str, symbol: str, timeframe: str) -> tuple[str, str, str]:
        return check_key(exchange, symbol, timeframe)

    def _invalidate_derived(self, exchange: str, symbol: str) -> None:
        invalidate_derived(self.root, exchange, symbol)

    # -- read --------------------------------------------------------------------------------

    def last_time(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        """Open time of the newest stored candle of a series (None when nothing is stored)."""
        meta = self._series_meta(exchange, symbol, normalize(timeframe))
        return None if meta is None or not meta.get("rows") else int(meta["last"])

    def gaps(self, exchange: str, symbol: str, timeframe: str) -> list[tuple[int, int, int]]:
        """Gaps of a stored series: ``(last open before, first open after, missing candles)``."""
        meta = self._series_meta(exchange, symbol, normalize(timeframe))
        if meta is None:
            self._check_symbol(exchange, symbol)
            raise NoDataError(
                f"{exchange} {symbol} has no stored {normalize(timeframe)} candles; stored "
                f"timeframes: {', '.join(self.timeframes(exchange, symbol))}."
            )
        return [tuple(g) for g in meta["gaps"]]

    def coverage(
        self,
        exchange: str | None = None,
        symbol: str | None = None,
        timeframe: str | None = None,
    ) -> list[SeriesInfo]:
        """Stored series (and cached derived ones) with their range, rows and gaps."""
        tf = normalize(timeframe) if timeframe else None
        out: list[SeriesInfo] = []
        for m in self._stored():
            if exchange and m["exchange"] != exchange:
                continue
            if symbol and m["symbol"] != symbol:
                continue
            if tf and m["timeframe"] != tf:
                continue
            out.append(
                SeriesInfo(
                    m["exchange"],
                    m["symbol"],
                    m["timeframe"],
                    m["first"],
                    m["last"],
                    m["rows"],
                    len(m["gaps"]),
                    m["missing_bars"],
                    m.get("source", "real"),
                    False,
                )
            )
        out.extend(derived_coverage(self.root, exchange, symbol, tf))
        out.sort(key=lambda s: (s.exchange, s.symbol, timeframe_ms(s.timeframe), s.derived))
        return out

    def load_frame(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: int | None = None,
        end: int | None = None,
    ) -> pd.DataFrame:
        """One series as a DataFrame with columns ``time, open, high, low, close, volume``.

        ``start`` is inclusive and ``end`` exclusive, on open time (ms UTC). Coarser timeframes
        are derived (see the module docstring). Raises like :meth:`load`.
        """
        import pandas as pd

        tf = normalize(timeframe)
        check_range(start, end)
        self._check_symbol(exchange, symbol)
        cols = self._read_series(exchange, symbol, tf, start, end)
        if cols["time"].size == 0:
            raise self._no_data(exchange, symbol, tf, start, end)
        return pd.DataFrame({c: cols[c] for c in COLUMNS}, columns=list(COLUMNS))

    def load(
        self,
        symbols: list[str] | tuple[str, ...] | str,
        timeframe: str,
        start: int | None = None,
        end: int | None = None,
        exchange: str | None = None,
    ) -> Bars:
        """Several symbols of one timeframe on a common time index.

        Parameters
        ----------
        symbols : list of str
            e.g. ``["BTC/USDT", "ETH/USDT"]`` (a single string is accepted).
        timeframe : str
            Stored or derivable timeframe (``"1m"``, ``"1h"``, ...).
        start, end : int, optional
            Open-time range in ms UTC; ``start`` inclusive, ``end`` exclusive.
        exchange : str, optional
            Exchange to read; may be omitted when the symbols are stored on one exchange only.

        Returns
        -------
        Bars
            The union of the symbols' open times; NaN where a symbol has no candle.
            ``meta["fill"]`` (derived timeframes only) is the fraction of fine candles behind
            each coarse candle, ``meta["base_timeframe"]`` the stored timeframe read.

        Raises
        ------
        UnknownNameError
            Unknown exchange or symbol (with a close-match hint).
        NoDataError
            A symbol has no candle in the range; the message names the stored range.
        """
        if isinstance(symbols, str):
            symbols = [symbols]
        symbols = list(dict.fromkeys(symbols))
        if not symbols:
            raise DataError("no symbols given: name at least one, for example BTC/USDT.")
        tf = normalize(timeframe)
        check_range(start, end)
        exchange = resolve_exchange(self, symbols, exchange)
        for s in symbols:
            self._check_symbol(exchange, s)
        series = []
        sources = []
        bases = []
        for s in symbols:
            cols = self._read_series(exchange, s, tf, start, end)
            if cols["time"].size == 0:
                raise self._no_data(exchange, s, tf, start, end)
            series.append(cols)
            sources.append(self.series_source(exchange, s))
            bases.append(cols.get("_base", tf))
        times = [c["time"] for c in series]
        if all(t.size == times[0].size and np.array_equal(t, times[0]) for t in times[1:]):
            index = times[0]
            positions = None
        else:
            index = union_sorted(times)
            positions = [np.searchsorted(index, t) for t in times]
        n, k = index.size, len(symbols)
        arrays = {}
        for c in (*VALUE_COLUMNS, "fill"):
            if c == "fill" and "fill" not in series[0]:
                continue
            if k == 1 and positions is None:
                arrays[c] = np.ascontiguousarray(series[0][c]).reshape(n, 1)
                continue
            out = np.empty((n, k)) if positions is None else np.full((n, k), np.nan)
            for j, cols in enumerate(series):
                if positions is None:
                    out[:, j] = cols[c]
                else:
                    out[positions[j], j] = cols[c]
            arrays[c] = out
        meta: dict[str, Any] = {"base_timeframe": dict(zip(symbols, bases, strict=True))}
        if "fill" in arrays:
            meta["fill"] = arrays["fill"]
        meta["sources"] = dict(zip(symbols, sources, strict=True))
        return Bars(
            timeframe=tf,
            symbols=tuple(symbols),
            time=np.ascontiguousarray(index, dtype=np.int64),
            open=arrays["open"],
            high=arrays["high"],
            low=arrays["low"],
            close=arrays["close"],
            volume=arrays["volume"],
            exchange=exchange,
            synthetic=any(s == "synthetic" for s in sources),
            meta=meta,
        )

    def _no_data(
        self, exchange: str, symbol: str, tf: str, start: int | None, end: int | None
    ) -> NoDataError:
        stored = [
            f"{s.timeframe} {format_time(s.first)} .. {format_time(s.last)}"
            for s in self.coverage(exchange, symbol)
            if not s.derived
        ]
        asked = f"{format_time(start) if start is not None else 'start'} .. " + (
            f"{format_time(end)} (exclusive)" if end is not None else "end"
        )
        return NoDataError(
            f"no {tf} candles of {exchange} {symbol} in {asked} UTC in the catalog {self.root}. "
            "Stored: "
            f"{'; '.join(stored) or 'nothing'}. Choose a range inside it, or download/import "
            "the missing period."
        )

    def _read_series(
        self, exchange: str, symbol: str, tf: str, start: int | None, end: int | None
    ) -> dict[str, np.ndarray]:
        base = base_for(self, exchange, symbol, tf, start, end)
        if base == tf:
            return self._read_stored(exchange, symbol, tf, start, end)
        cols = read_derived(self, exchange, symbol, tf, base, start, end)
        cols["_base"] = base  # type: ignore[assignment]
        return cols

    def _query(self, sql: str, max_rows: int | None = None) -> dict[str, np.ndarray]:
        """Run ``sql`` on this thread's connection; columns as numpy arrays (see ``query``)."""
        return query(self._connection(), sql, max_rows)

    def _read_stored(
        self, exchange: str, symbol: str, tf: str, start: int | None, end: int | None
    ) -> dict[str, np.ndarray]:
        files = year_files(self.series_dir(exchange, symbol, tf))
        lo_year = int(year_of(start)) if start is not None else None
        hi_year = int(year_of(end - 1)) if end is not None else None
        chosen = [
            p
            for y, p in files.items()
            if (lo_year is None or y >= lo_year) and (hi_year is None or y <= hi_year)
        ]
        if not chosen:
            return empty_columns()
        where = range_clause(start, end)
        sql = f"SELECT {', '.join(COLUMNS)} FROM read_parquet({sql_list(chosen)}){where}"
        cols = self._query(sql, parquet_rows(chosen))
        return ensure_sorted(cols)

    def derive(
        self, exchange: str, symbol: str, timeframe: str, *, base: str | None = None
    ) -> dict[str, np.ndarray]:
        """Aggregate a stored series to ``timeframe`` in DuckDB (no caching).

        Returns columns ``time, open, high, low, close, volume`` plus ``fill`` (fraction of the
        base candles present in each bucket). The last bucket is dropped when the data ends
        before it closes.
        """
        tf = normalize(timeframe)
        base = base or base_for(self, exchange, symbol, tf)
        files = list(year_files(self.series_dir(exchange, symbol, base)).values())
        if not files:
            return empty_columns(fill=True)
        return derive_files(self._connection(), files, base, tf)
