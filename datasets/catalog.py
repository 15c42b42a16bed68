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
    new year file and the new metadata to temporary files next to their targets, then swaps
    them in with ``os.replace``. The previous versions are kept as hard links until all swaps
    succeeded; if any swap fails the ones already done are rolled back. A failed write leaves
    the series exactly as it was (byte for byte). A crash of the machine in the middle of the
    swaps (not an exception) can leave a mix of year files; each file on its own is always
    whole. Writers of one series are serialized with a lock file where the OS supports it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import threading
import time as _time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datasets.bars import Bars
from datasets.resample import derive_files, multiples_hint, union_sorted
from datasets.schema import (
    COLUMNS,
    DEFAULT_MAX_JUMP,
    VALUE_COLUMNS,
    arrow_schema,
    check_candles,
    find_gaps,
    grid_offset_ms,
)
from gogo2.errors import DataError, NoDataError, UnknownNameError
from gogo2.timeframes import format_time, normalize, timeframe_ms

if TYPE_CHECKING:
    import pandas as pd

SOURCES = ("real", "synthetic")
META_NAME = "_series.json"
DERIVED_DIR = "_derived"
_EXCHANGE_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9.]+/[A-Za-z0-9.]+(:[A-Za-z0-9.]+)?$")
_YEAR_RE = re.compile(r"^year=(\d{4})\.parquet$")
_BATCH_ROWS = 1 << 18
_PARQUET_COMPRESSION = "lz4"  # decodes faster than zstd; files ~15 % larger


@dataclass(frozen=True)
class WriteReport:
    """Outcome of :meth:`Catalog.write`.

    Attributes
    ----------
    rows_written : int
        Rows of the input stored (after repair).
    rows_new : int
        Of those, rows whose timestamp was not stored before.
    first, last : int | None
        Open times of the first and last row written (ms UTC); None when nothing was written.
    changes : list[str]
        One line per repair made (empty without repair or when the input was clean).
    gaps : list[tuple[int, int, int]]
        Gaps of the stored series inside ``[first, last]`` after the write:
        ``(last open before, first open after, missing candles)``.
    """

    rows_written: int
    rows_new: int
    first: int | None
    last: int | None
    changes: list[str] = field(default_factory=list)
    gaps: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def missing_bars(self) -> int:
        return sum(g[2] for g in self.gaps)


@dataclass(frozen=True)
class SeriesInfo:
    """Coverage of one stored (or derived and cached) series."""

    exchange: str
    symbol: str
    timeframe: str
    first: int | None
    last: int | None
    rows: int
    gap_events: int
    missing_bars: int
    source: str
    derived: bool = False


def symbol_dirname(symbol: str) -> str:
    """Directory spelling of a symbol: ``BTC/USDT`` -> ``BTC-USDT``, ``BTC/USDT:USDT`` -> ``BTC-USDT_USDT``."""
    return symbol.replace("/", "-").replace(":", "_")


def _symbol_from_dirname(name: str) -> str:
    """Inverse of :func:`symbol_dirname` (used only when a series lost its metadata)."""
    base, _, rest = name.partition("-")
    quote, _, settle = rest.partition("_")
    return f"{base}/{quote}" + (f":{settle}" if settle else "")


def _year_of(ms: np.ndarray | int) -> np.ndarray:
    return (
        np.asarray(ms, dtype=np.int64)
        .astype("datetime64[ms]")
        .astype("datetime64[Y]")
        .astype(np.int64)
        + 1970
    )


def _now_ms() -> int:
    return int(_time.time() * 1000)


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


@contextlib.contextmanager
def _series_lock(directory: Path):
    """Exclusive lock of one series directory (no-op where fcntl is missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(directory / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Persist renames in ``directory`` (best effort; not possible on every platform)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_swap(pairs: list[tuple[Path, Path]]) -> None:
    """Move each ``(temp, target)`` into place; all or nothing on exceptions.

    Existing targets are kept as hard links (copies where links are unsupported) until every
    swap succeeded; on failure the swapped targets are restored and the temps removed.
    """
    token = uuid.uuid4().hex[:8]
    backups: list[tuple[Path, Path | None]] = []
    done: list[int] = []
    try:
        for _, target in pairs:
            if target.exists():
                bak = target.with_name(f"{target.name}.bak-{token}")
                try:
                    os.link(target, bak)
                except OSError:
                    shutil.copy2(target, bak)
                backups.append((target, bak))
            else:
                backups.append((target, None))
        for i, (tmp, target) in enumerate(pairs):
            os.replace(tmp, target)
            done.append(i)
    except BaseException:
        for i in reversed(done):
            target, bak = backups[i]
            with contextlib.suppress(OSError):
                if bak is not None:
                    os.replace(bak, target)
                else:
                    target.unlink()
        for tmp, _ in pairs:
            with contextlib.suppress(OSError):
                tmp.unlink()
        for _, bak in backups:
            if bak is not None:
                with contextlib.suppress(OSError):
                    bak.unlink()
        raise
    for _, bak in backups:
        if bak is not None:
            with contextlib.suppress(OSError):
                bak.unlink()


class Catalog:
    """Parquet candle catalog rooted at ``root`` (created on first write).

    Parameters
    ----------
    root : str | Path
        Catalog directory, usually ``settings.data.path``.
    max_jump : float
        Extreme-jump threshold used by :meth:`write` when none is given
        (``settings.data.max_jump``).
    """

    def __init__(self, root: str | Path, *, max_jump: float = DEFAULT_MAX_JUMP) -> None:
        self.root = Path(root)
        self.max_jump = max_jump
        self._local = threading.local()
        self._meta_cache: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}

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

    def _derived_path(self, exchange: str, symbol: str, timeframe: str, base: str) -> Path:
        return (
            self.root
            / DERIVED_DIR
            / f"exchange={exchange}"
            / f"symbol={symbol_dirname(symbol)}"
            / f"timeframe={normalize(timeframe)}.from={normalize(base)}.parquet"
        )

    def _year_files(self, directory: Path) -> dict[int, Path]:
        out: dict[int, Path] = {}
        if directory.is_dir():
            for p in directory.iterdir():
                m = _YEAR_RE.match(p.name)
                if m:
                    out[int(m.group(1))] = p
        return dict(sorted(out.items()))

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
        path = directory / META_NAME
        try:
            st = path.stat()
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
            hit = self._meta_cache.get(path)
            if hit is not None and hit[0] == stamp:
                return hit[1]
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        self._meta_cache[path] = (stamp, meta)
        return meta

    def _file_stats(self, path: Path, tf_ms: int) -> dict[str, Any]:
        import pyarrow.parquet as pq

        t = pq.read_table(path, columns=["time"]).column("time").to_numpy()
        return {
            "rows": int(t.size),
            "first": int(t[0]) if t.size else None,
            "last": int(t[-1]) if t.size else None,
            "gaps": [list(g) for g in find_gaps(t, tf_ms)],
        }

    def _series_meta(self, exchange: str, symbol: str, timeframe: str) -> dict[str, Any] | None:
        """Metadata of a stored series, rebuilt from the files when the JSON is missing."""
        directory = self.series_dir(exchange, symbol, timeframe)
        meta = self._read_meta(directory)
        files = self._year_files(directory)
        if meta is not None and set(meta.get("files", {})) == {p.name for p in files.values()}:
            return meta
        if not files:
            return None
        tf_ms = timeframe_ms(timeframe)
        stats = {p.name: self._file_stats(p, tf_ms) for p in files.values()}
        base = meta or {}
        return _summarize(
            {
                "exchange": exchange,
                "symbol": base.get("symbol", symbol),
                "timeframe": normalize(timeframe),
                # without metadata, only the exchange name tells: the sample lives under
                # 'synthetic'; never label generated data real by default
                "source": base.get("source", "synthetic" if exchange == "synthetic" else "real"),
                "origins": base.get("origins", []),
                "created": base.get("created"),
                "updated": base.get("updated"),
                "files": stats,
            },
            tf_ms,
        )

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
            meta = self._read_meta(directory)
            if meta is None or not meta.get("rows"):
                if not self._year_files(directory):
                    continue
                exchange = directory.parent.parent.name.split("=", 1)[1]
                symbol = _symbol_from_dirname(directory.parent.name.split("=", 1)[1])
                try:
                    meta = self._series_meta(exchange, symbol, directory.name.split("=", 1)[1])
                except (OSError, ValueError, DataError):
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
            if p.is_dir() and p.name.startswith("timeframe=") and self._year_files(p)
        ]
        return sorted(tfs, key=timeframe_ms)

    def series_source(self, exchange: str, symbol: str) -> str | None:
        """``"real"`` or ``"synthetic"`` for a stored symbol, None when nothing is stored."""
        for tf in self.timeframes(exchange, symbol):
            meta = self._series_meta(exchange, symbol, tf)
            if meta is not None:
                return meta.get("source", "real")
        return None

    def _check_exchange(self, exchange: str) -> None:
        if _EXCHANGE_RE.match(exchange) and any(
            (self.root / f"exchange={exchange}").glob("symbol=*/timeframe=*/year=*.parquet")
        ):
            return
        if exchange not in self.exchanges():
            raise UnknownNameError(
                "exchange",
                exchange,
                self.exchanges(),
                fix=_how_to_get_data(self.root),
            )

    def _check_symbol(self, exchange: str, symbol: str) -> None:
        self._check_exchange(exchange)
        if not self.timeframes(exchange, symbol):
            raise UnknownNameError(
                f"symbol on {exchange}",
                symbol,
                self.symbols(exchange),
                fix=_how_to_get_data(self.root),
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
            Extreme-jump threshold; defaults to the catalog's.

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
        mj = self.max_jump if max_jump is None else max_jump
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
            with _series_lock(directory):
                return self._write_locked(
                    frame, directory, exchange, symbol, tf, tf_ms, source, origin, changes, mj
                )
        except BaseException:
            # a failed first write leaves no empty series directory behind
            if created and not self._year_files(directory):
                with contextlib.suppress(OSError):
                    (directory / ".lock").unlink()
                for p in created:
                    with contextlib.suppress(OSError):
                        p.rmdir()
            raise

    def _check_key(self, exchange: str, symbol: str, timeframe: str) -> tuple[str, str, str]:
        if not isinstance(exchange, str) or not _EXCHANGE_RE.match(exchange):
            raise DataError(
                f"exchange name {exchange!r} is not valid: use the lower-case ccxt id such as "
                "'binance' (letters, digits, '_', '-', '.')."
            )
        if not isinstance(symbol, str) or not _SYMBOL_RE.match(symbol):
            raise DataError(
                f"symbol {symbol!r} is not valid: write it BASE/QUOTE (for example BTC/USDT, "
                "or BTC/USDT:USDT for a perpetual)."
            )
        return exchange, symbol, normalize(timeframe)

    def _write_locked(
        self,
        frame: pd.DataFrame,
        directory: Path,
        exchange: str,
        symbol: str,
        tf: str,
        tf_ms: int,
        source: str,
        origin: str,
        changes: list[str],
        max_jump: float,
    ) -> WriteReport:
        import pyarrow as pa
        import pyarrow.parquet as pq

        new = {c: frame[c].to_numpy() for c in COLUMNS}
        new_years = _year_of(new["time"])
        existing = self._year_files(directory)
        old_meta = self._series_meta(exchange, symbol, tf)
        files_meta: dict[str, Any] = dict(old_meta["files"]) if old_meta else {}
        schema = arrow_schema()
        token = uuid.uuid4().hex[:8]
        pairs: list[tuple[Path, Path]] = []
        rows_new = 0
        merged_by_year: dict[int, dict[str, np.ndarray]] = {}
        try:
            # the frame is sorted, so each year is one contiguous slice
            cuts = [0, *(np.flatnonzero(np.diff(new_years)) + 1).tolist(), int(new_years.size)]
            for a, b in itertools.pairwise(cuts):
                year = int(new_years[a])
                part = {c: new[c][a:b] for c in COLUMNS}
                target = directory / f"year={year}.parquet"
                if year in existing:
                    old = pq.read_table(existing[year]).select(list(COLUMNS))
                    old_t = old.column("time").to_numpy()
                    if old_t.size and part["time"][0] > old_t[-1]:
                        # the usual download case: pure append, no overlap, already sorted
                        rows_new += int(part["time"].size)
                        merged = {
                            c: np.concatenate([old.column(c).to_numpy(), part[c]]) for c in COLUMNS
                        }
                    else:
                        keep_old = ~_sorted_isin(old_t, part["time"])
                        rows_new += int(part["time"].size - (old_t.size - keep_old.sum()))
                        merged = {
                            c: np.concatenate([old.column(c).to_numpy()[keep_old], part[c]])
                            for c in COLUMNS
                        }
                        order = np.argsort(merged["time"], kind="stable")
                        merged = {c: v[order] for c, v in merged.items()}
                else:
                    rows_new += int(part["time"].size)
                    merged = part
                merged_by_year[year] = merged
            self._check_seams(directory, existing, merged_by_year, new["time"], max_jump, origin)
            for year, merged in merged_by_year.items():
                target = directory / f"year={year}.parquet"
                tmp = target.with_name(f".{target.name}.tmp-{token}")
                table = pa.Table.from_arrays([pa.array(merged[c]) for c in COLUMNS], schema=schema)
                pq.write_table(table, tmp, compression=_PARQUET_COMPRESSION)
                _fsync_file(tmp)
                pairs.append((tmp, target))
                t = merged["time"]
                files_meta[target.name] = {
                    "rows": int(t.size),
                    "first": int(t[0]),
                    "last": int(t[-1]),
                    "gaps": [list(g) for g in find_gaps(t, tf_ms)],
                }
            now = _now_ms()
            origins = list((old_meta or {}).get("origins", []))
            if origin not in origins:
                origins.append(origin)
            meta = _summarize(
                {
                    "exchange": exchange,
                    "symbol": symbol,
                    "timeframe": tf,
                    "source": source,
                    "base_timeframe": tf,
                    "origin": origin,
                    "origins": origins[-20:],
                    "created": (old_meta or {}).get("created") or now,
                    "updated": now,
                    "files": files_meta,
                },
                tf_ms,
            )
            meta_target = directory / META_NAME
            meta_tmp = directory / f".{META_NAME}.tmp-{token}"
            meta_tmp.write_text(json.dumps(meta, indent=1))
            _fsync_file(meta_tmp)
            pairs.append((meta_tmp, meta_target))
        except BaseException:
            for tmp, _ in pairs:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            raise
        _atomic_swap(pairs)
        _fsync_dir(directory)
        self._invalidate_derived(exchange, symbol)
        first, last = int(new["time"][0]), int(new["time"][-1])
        gaps = [tuple(g) for g in meta["gaps"] if g[1] >= first and g[0] <= last]
        return WriteReport(
            rows_written=int(new["time"].size),
            rows_new=rows_new,
            first=first,
            last=last,
            changes=list(changes),
            gaps=gaps,
        )

    def _check_seams(
        self,
        directory: Path,
        existing: dict[int, Path],
        merged_by_year: dict[int, dict[str, np.ndarray]],
        new_time: np.ndarray,
        max_jump: float,
        origin: str,
    ) -> None:
        """Refuse an extreme jump between a new candle and its stored neighbour."""
        import pyarrow.parquet as pq

        years = sorted(merged_by_year)
        t = [merged_by_year[y]["time"] for y in years]
        c = [merged_by_year[y]["close"] for y in years]
        before = [y for y in existing if y < years[0]]
        if before:
            tb = pq.read_table(existing[before[-1]], columns=["time", "close"])
            if tb.num_rows:
                t.insert(0, tb.column("time").to_numpy()[-1:])
                c.insert(0, tb.column("close").to_numpy()[-1:])
        after = [y for y in existing if y > years[-1]]
        if after:
            tb = pq.read_table(existing[after[0]], columns=["time", "close"])
            if tb.num_rows:
                t.append(tb.column("time").to_numpy()[:1])
                c.append(tb.column("close").to_numpy()[:1])
        tt, cc = np.concatenate(t), np.concatenate(c)
        if tt.size < 2:
            return
        is_new = _sorted_isin(tt, new_time)
        with np.errstate(divide="ignore", invalid="ignore"):
            move = np.abs(cc[1:] / cc[:-1] - 1.0) > max_jump
        tf_ms = timeframe_ms(directory.name.split("=", 1)[1])
        seam = move & (is_new[1:] != is_new[:-1]) & (np.diff(tt) <= tf_ms)
        if seam.any():
            i = int(np.flatnonzero(seam)[0]) + 1
            new_at, old_at = (i, i - 1) if is_new[i] else (i - 1, i)
            raise DataError(
                f"{origin}: the close of the new candle at {format_time(int(tt[new_at]))} UTC "
                f"differs by {cc[new_at] / cc[old_at] - 1:+.1%} from the stored candle next to "
                f"it at {format_time(int(tt[old_at]))} (max_jump={max_jump}). Nothing was stored. Check that the candles belong to this series "
                "(same symbol, same quote currency), or raise data.max_jump if the move is real."
            )

    def _invalidate_derived(self, exchange: str, symbol: str) -> None:
        d = self.root / DERIVED_DIR / f"exchange={exchange}" / f"symbol={symbol_dirname(symbol)}"
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)

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
        derived_root = self.root / DERIVED_DIR
        derived: dict[tuple[str, str, str], SeriesInfo] = {}
        if derived_root.is_dir():
            for jp in sorted(derived_root.glob("exchange=*/symbol=*/timeframe=*.json")):
                try:
                    m = json.loads(jp.read_text())
                except (OSError, ValueError):
                    continue
                if exchange and m.get("exchange") != exchange:
                    continue
                if symbol and m.get("symbol") != symbol:
                    continue
                if tf and m.get("timeframe") != tf:
                    continue
                if not m.get("rows") or not jp.with_suffix(".parquet").exists():
                    continue
                key = (m["exchange"], m["symbol"], m["timeframe"])
                if key in derived and derived[key].rows >= m["rows"]:
                    continue  # the same timeframe cached from two bases: show the longer one
                derived[key] = SeriesInfo(
                    m["exchange"],
                    m["symbol"],
                    m["timeframe"],
                    m["first"],
                    m["last"],
                    m["rows"],
                    len(m["gaps"]),
                    sum(g[2] for g in m["gaps"]),
                    m.get("source", "real"),
                    True,
                )
        out.extend(derived.values())
        out.sort(key=lambda s: (s.exchange, s.symbol, timeframe_ms(s.timeframe), s.derived))
        return out

    def _resolve_exchange(self, symbols: list[str], exchange: str | None) -> str:
        if exchange is not None:
            return exchange
        stored = self._stored()
        if not stored:
            raise NoDataError(f"the catalog at {self.root} is empty. {_how_to_get_data()}")
        held: dict[str, set[str]] = {}
        for m in stored:
            held.setdefault(m["exchange"], set()).add(m["symbol"])
        full = sorted(ex for ex, syms in held.items() if set(symbols) <= syms)
        if len(full) == 1:
            return full[0]
        if not full:
            missing = [s for s in symbols if not any(s in syms for syms in held.values())]
            if missing:
                raise UnknownNameError(
                    "symbol", missing[0], self.symbols(), fix=_how_to_get_data(self.root)
                )
            where = "; ".join(
                f"{s} on {', '.join(sorted(ex for ex, syms in held.items() if s in syms))}"
                for s in symbols
            )
            raise DataError(
                f"no single exchange holds all of {', '.join(symbols)} ({where}). "
                "Name the exchange (--exchange) and download the missing symbols there."
            )
        raise DataError(
            f"{', '.join(symbols)} is stored on several exchanges ({', '.join(full)}); "
            "name the exchange (--exchange)."
        )

    def _base_for(
        self,
        exchange: str,
        symbol: str,
        tf: str,
        start: int | None = None,
        end: int | None = None,
    ) -> str:
        """The stored timeframe to read ``tf`` from.

        ``tf`` itself when stored; otherwise, of the stored timeframes that divide it, the
        one covering most of ``[start, end)`` (ties: the finest).
        """
        stored = self.timeframes(exchange, symbol)
        if tf in stored:
            return tf
        tf_ms = timeframe_ms(tf)
        divisors = [s for s in stored if tf_ms % timeframe_ms(s) == 0 and timeframe_ms(s) < tf_ms]
        if grid_offset_ms(tf_ms):
            divisors = [s for s in divisors if timeframe_ms(s) <= 86_400_000]
        if len(divisors) > 1:
            lo = -(2**62) if start is None else int(start)
            hi = 2**62 if end is None else int(end)

            def covered(base: str) -> int:
                meta = self._series_meta(exchange, symbol, base) or {}
                if not meta.get("rows"):
                    return 0
                a = max(lo, int(meta["first"]))
                b = min(hi, int(meta["last"]) + timeframe_ms(base))
                return max(0, b - a)

            return max(divisors, key=lambda b: (covered(b), -timeframe_ms(b)))
        if divisors:
            return divisors[0]
        finer = [s for s in stored if timeframe_ms(s) < tf_ms]
        if finer:
            raise DataError(
                f"timeframe {tf} cannot be derived for {exchange} {symbol}: it is not a whole "
                f"multiple of the stored timeframe(s) {', '.join(stored)}. Choose a multiple "
                f"(for example {multiples_hint(finer[0])}) or store {tf} candles."
            )
        raise DataError(
            f"timeframe {tf} is finer than what is stored for {exchange} {symbol} "
            f"({', '.join(stored)}); a finer timeframe cannot be made from a coarser one. "
            f"Download or import {tf} candles, or use {stored[0]} or coarser."
        )

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
        _check_range(start, end)
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
        _check_range(start, end)
        exchange = self._resolve_exchange(symbols, exchange)
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
            f"no {tf} candles of {exchange} {symbol} in {asked} UTC in the catalog {self.root}. Stored: "
            f"{'; '.join(stored) or 'nothing'}. Choose a range inside it, or download/import "
            "the missing period."
        )

    def _read_series(
        self, exchange: str, symbol: str, tf: str, start: int | None, end: int | None
    ) -> dict[str, np.ndarray]:
        base = self._base_for(exchange, symbol, tf, start, end)
        if base == tf:
            return self._read_stored(exchange, symbol, tf, start, end)
        cols = self._read_derived(exchange, symbol, tf, base, start, end)
        cols["_base"] = base  # type: ignore[assignment]
        return cols

    def _query(self, sql: str, max_rows: int | None = None) -> dict[str, np.ndarray]:
        """Run ``sql`` and return its columns as numpy arrays.

        DuckDB streams Arrow record batches that are copied into preallocated numpy arrays,
        so the peak memory is about one copy of the result (no pandas, no full Arrow table).
        ``max_rows`` (an upper bound, e.g. the rows of the files read) saves a count query;
        pages of the preallocated arrays that are never written are never resident.
        """
        con = self._connection()
        if max_rows is None:
            max_rows = int(con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0])
        n = max_rows
        reader = con.sql(sql).to_arrow_reader(_BATCH_ROWS)
        out: dict[str, np.ndarray] = {}
        names = reader.schema.names
        for name in names:
            out[name] = np.empty(n, dtype=np.int64 if name == "time" else np.float64)
        pos = 0
        for batch in reader:
            m = batch.num_rows
            if pos + m > n:  # pragma: no cover - the files changed between the two queries
                raise DataError("the catalog changed while reading; run the command again.")
            for i, name in enumerate(names):
                col = batch.column(i)
                if col.null_count:
                    col = col.fill_null(np.nan)
                out[name][pos : pos + m] = col.to_numpy(zero_copy_only=False)
            pos += m
        if pos != n:
            out = {k: v[:pos] for k, v in out.items()}
        return out

    def _read_stored(
        self, exchange: str, symbol: str, tf: str, start: int | None, end: int | None
    ) -> dict[str, np.ndarray]:
        files = self._year_files(self.series_dir(exchange, symbol, tf))
        lo_year = int(_year_of(start)) if start is not None else None
        hi_year = int(_year_of(end - 1)) if end is not None else None
        chosen = [
            p
            for y, p in files.items()
            if (lo_year is None or y >= lo_year) and (hi_year is None or y <= hi_year)
        ]
        if not chosen:
            return _empty_columns()
        where = _range_clause(start, end)
        sql = f"SELECT {', '.join(COLUMNS)} FROM read_parquet({_sql_list(chosen)}){where}"
        cols = self._query(sql, _parquet_rows(chosen))
        return _ensure_sorted(cols)

    def _fingerprint(self, directory: Path) -> list[list[Any]]:
        out = []
        for p in self._year_files(directory).values():
            st = p.stat()
            out.append([p.name, st.st_size, st.st_mtime_ns])
        return out

    def _read_derived(
        self,
        exchange: str,
        symbol: str,
        tf: str,
        base: str,
        start: int | None,
        end: int | None,
    ) -> dict[str, np.ndarray]:
        path = self._derived_path(exchange, symbol, tf, base)
        info_path = path.with_suffix(".json")
        base_dir = self.series_dir(exchange, symbol, base)
        fp = self._fingerprint(base_dir)
        if not self._cache_valid(info_path, base, fp):
            self._build_derived(exchange, symbol, tf, base, fp)
        if not self._cache_valid(info_path, base, fp) or not path.exists():
            # the cache could not be written (read-only catalog): derive in memory
            derived = self.derive(exchange, symbol, tf, base=base)
            sel = np.ones(derived["time"].size, dtype=bool)
            if start is not None:
                sel &= derived["time"] >= start
            if end is not None:
                sel &= derived["time"] < end
            return {k: v[sel] for k, v in derived.items()}
        where = _range_clause(start, end)
        names = ", ".join([*COLUMNS, "fill"])
        sql = f"SELECT {names} FROM read_parquet('{_esc(path)}'){where}"
        return _ensure_sorted(self._query(sql, _parquet_rows([path])))

    @staticmethod
    def _cache_valid(info_path: Path, base: str, fp: list[list[Any]]) -> bool:
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            return False
        return info.get("base") == base and info.get("fingerprint") == fp

    def derive(
        self, exchange: str, symbol: str, timeframe: str, *, base: str | None = None
    ) -> dict[str, np.ndarray]:
        """Aggregate a stored series to ``timeframe`` in DuckDB (no caching).

        Returns columns ``time, open, high, low, close, volume`` plus ``fill`` (fraction of the
        base candles present in each bucket). The last bucket is dropped when the data ends
        before it closes.
        """
        tf = normalize(timeframe)
        base = base or self._base_for(exchange, symbol, tf)
        files = list(self._year_files(self.series_dir(exchange, symbol, base)).values())
        if not files:
            return _empty_columns(fill=True)
        return derive_files(self._connection(), files, base, tf)

    def _build_derived(
        self, exchange: str, symbol: str, tf: str, base: str, fp: list[list[Any]]
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = self.derive(exchange, symbol, tf, base=base)
        path = self._derived_path(exchange, symbol, tf, base)
        token = uuid.uuid4().hex[:8]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{token}")
            names = [*COLUMNS, "fill"]
            table = pa.Table.from_arrays([pa.array(cols[c]) for c in names], names=names)
            pq.write_table(table, tmp, compression=_PARQUET_COMPRESSION)
            t = cols["time"]
            info = {
                "exchange": exchange,
                "symbol": symbol,
                "timeframe": tf,
                "base": base,
                "source": self.series_source(exchange, symbol) or "real",
                "fingerprint": fp,
                "rows": int(t.size),
                "first": int(t[0]) if t.size else None,
                "last": int(t[-1]) if t.size else None,
                "gaps": [list(g) for g in find_gaps(t, timeframe_ms(tf))],
                "incomplete": int((cols["fill"] < 1).sum()),
                "updated": _now_ms(),
            }
            info_tmp = path.with_name(f".{path.stem}.json.tmp-{token}")
            info_tmp.write_text(json.dumps(info, indent=1))
            _atomic_swap([(tmp, path), (info_tmp, path.with_suffix(".json"))])
        except OSError:
            # a read-only catalog still loads: the derivation is simply not cached
            with contextlib.suppress(OSError):
                path.unlink()


def _summarize(meta: dict[str, Any], tf_ms: int) -> dict[str, Any]:
    files = dict(sorted(meta["files"].items()))
    meta["files"] = files
    gaps: list[list[int]] = []
    prev_last = None
    rows = 0
    first = last = None
    for st in files.values():
        if not st["rows"]:
            continue
        rows += st["rows"]
        if prev_last is not None and st["first"] - prev_last > tf_ms:
            gaps.append([prev_last, st["first"], (st["first"] - prev_last) // tf_ms - 1])
        gaps.extend(st["gaps"])
        first = st["first"] if first is None else first
        last = prev_last = st["last"]
    meta.update(
        rows=rows,
        first=first,
        last=last,
        gaps=gaps,
        missing_bars=int(sum(g[2] for g in gaps)),
    )
    return meta


def _check_range(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and int(start) >= int(end):
        raise DataError(
            f"empty time range: start {format_time(start)} is not before end {format_time(end)} "
            "(end is exclusive). Give a start earlier than the end."
        )


def _range_clause(start: int | None, end: int | None) -> str:
    """``WHERE`` clause on open time; the bounds are cast to int, so inlining them is safe."""
    conds = []
    if start is not None:
        conds.append(f"time >= {int(start)}")
    if end is not None:
        conds.append(f"time < {int(end)}")
    return (" WHERE " + " AND ".join(conds)) if conds else ""


def _sorted_isin(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_set)`` for a sorted ``sorted_set``, by binary search."""
    if sorted_set.size == 0:
        return np.zeros(values.shape, dtype=bool)
    idx = np.searchsorted(sorted_set, values)
    np.minimum(idx, sorted_set.size - 1, out=idx)
    return sorted_set[idx] == values


def _parquet_rows(files: list[Path]) -> int:
    """Total rows of Parquet files, from their footers."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in files)


def _ensure_sorted(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    t = cols["time"].astype(np.int64, copy=False)
    cols["time"] = t
    if t.size > 1 and not (t[1:] > t[:-1]).all():
        order = np.argsort(t, kind="stable")
        cols = {k: v[order] for k, v in cols.items()}
    return cols


def _empty_columns(fill: bool = False) -> dict[str, np.ndarray]:
    out = {"time": np.empty(0, dtype=np.int64)}
    for c in VALUE_COLUMNS:
        out[c] = np.empty(0, dtype=np.float64)
    if fill:
        out["fill"] = np.empty(0, dtype=np.float64)
    return out


def _esc(path: Path) -> str:
    return str(path).replace("'", "''")


def _how_to_get_data(root: Path | None = None) -> str:
    return (f"The catalog is {root}. " if root is not None else "") + (
        "Get candles with `cli.py data download` or `cli.py data import`; "
        "`cli.py backtest` creates the synthetic sample under exchange 'synthetic'."
    )
