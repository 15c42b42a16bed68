"""Derived-timeframe caches under ``_derived/``.

A coarser timeframe derived from a stored one is cached as
``_derived/exchange=<ex>/symbol=<BASE-QUOTE>/timeframe=<tf>.from=<base>.parquet`` plus a JSON
file beside it that records the fingerprint (file names, sizes and mtimes) of the base files.
A write deletes the symbol's caches and a changed fingerprint makes a stale cache be rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datasets.parquet_read import (
    PARQUET_COMPRESSION,
    ensure_sorted,
    esc,
    parquet_rows,
    query,
    range_clause,
)
from datasets.schema import COLUMNS, find_gaps
from datasets.series_meta import SeriesInfo, now_ms, symbol_dirname, year_files
from datasets.storage import atomic_swap, dir_lock, fsync_file, new_token, temp_path
from gogo2.timeframes import normalize, timeframe_ms

if TYPE_CHECKING:
    from datasets.catalog import Catalog

DERIVED_DIR = "_derived"


def derived_path(root: Path, exchange: str, symbol: str, timeframe: str, base: str) -> Path:
    return (
        root
        / DERIVED_DIR
        / f"exchange={exchange}"
        / f"symbol={symbol_dirname(symbol)}"
        / f"timeframe={normalize(timeframe)}.from={normalize(base)}.parquet"
    )


def fingerprint(directory: Path) -> list[list[Any]]:
    out = []
    for p in year_files(directory).values():
        st = p.stat()
        out.append([p.name, st.st_size, st.st_mtime_ns])
    return out


def cache_valid(info_path: Path, base: str, fp: list[list[Any]]) -> bool:
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return False
    return info.get("base") == base and info.get("fingerprint") == fp


def read_derived(
    catalog: Catalog,
    exchange: str,
    symbol: str,
    tf: str,
    base: str,
    start: int | None,
    end: int | None,
) -> dict[str, np.ndarray]:
    """Columns of ``tf`` derived from ``base`` in ``[start, end)``, through the cache."""
    path = derived_path(catalog.root, exchange, symbol, tf, base)
    info_path = path.with_suffix(".json")
    base_dir = catalog.series_dir(exchange, symbol, base)
    fp = fingerprint(base_dir)
    if not cache_valid(info_path, base, fp):
        build_derived(catalog, exchange, symbol, tf, base, fp)
    if not cache_valid(info_path, base, fp) or not path.exists():
        # the cache could not be written (read-only catalog): derive in memory
        derived = catalog.derive(exchange, symbol, tf, base=base)
        sel = np.ones(derived["time"].size, dtype=bool)
        if start is not None:
            sel &= derived["time"] >= start
        if end is not None:
            sel &= derived["time"] < end
        return {k: v[sel] for k, v in derived.items()}
    where = range_clause(start, end)
    names = ", ".join([*COLUMNS, "fill"])
    sql = f"SELECT {names} FROM read_parquet('{esc(path)}'){where}"
    return ensure_sorted(query(catalog._connection(), sql, parquet_rows([path])))


def build_derived(
    catalog: Catalog, exchange: str, symbol: str, tf: str, base: str, fp: list[list[Any]]
) -> None:
    """Derive ``tf`` from ``base`` and store it in the cache (skipped where it cannot be written)."""
    if not os.access(catalog.root, os.W_OK):
        return  # a read-only catalog: the caller derives in memory
    cols = catalog.derive(exchange, symbol, tf, base=base)
    path = derived_path(catalog.root, exchange, symbol, tf, base)
    token = new_token()
    tmp = temp_path(path, token)
    info_tmp = temp_path(path.with_suffix(".json"), token)
    try:
        with dir_lock(path.parent):
            _write_cache(catalog, cols, exchange, symbol, tf, base, fp, path, tmp, info_tmp)
    except OSError:
        # a catalog that cannot be written still loads: the derivation is simply not cached
        with contextlib.suppress(OSError):
            path.unlink()
    finally:
        for t in (tmp, info_tmp):
            with contextlib.suppress(OSError):
                t.unlink()


def _write_cache(
    catalog: Catalog,
    cols: dict[str, np.ndarray],
    exchange: str,
    symbol: str,
    tf: str,
    base: str,
    fp: list[list[Any]],
    path: Path,
    tmp: Path,
    info_tmp: Path,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [*COLUMNS, "fill"]
    table = pa.Table.from_arrays([pa.array(cols[c]) for c in names], names=names)
    pq.write_table(table, tmp, compression=PARQUET_COMPRESSION)
    fsync_file(tmp)
    t = cols["time"]
    info = {
        "exchange": exchange,
        "symbol": symbol,
        "timeframe": tf,
        "base": base,
        "source": catalog.series_source(exchange, symbol) or "real",
        "fingerprint": fp,
        "rows": int(t.size),
        "first": int(t[0]) if t.size else None,
        "last": int(t[-1]) if t.size else None,
        "gaps": [list(g) for g in find_gaps(t, timeframe_ms(tf))],
        "incomplete": int((cols["fill"] < 1).sum()),
        "updated": now_ms(),
    }
    info_tmp.write_text(json.dumps(info, indent=1))
    fsync_file(info_tmp)
    # the JSON (which holds the fingerprint) goes last: a cache is valid only when both are in
    atomic_swap([(tmp, path), (info_tmp, path.with_suffix(".json"))])


def invalidate_derived(root: Path, exchange: str, symbol: str) -> None:
    """Delete every cached derivation of ``exchange``/``symbol``."""
    d = root / DERIVED_DIR / f"exchange={exchange}" / f"symbol={symbol_dirname(symbol)}"
    if d.is_dir():
        shutil.rmtree(d, ignore_errors=True)


def derived_coverage(
    root: Path, exchange: str | None, symbol: str | None, tf: str | None
) -> list[SeriesInfo]:
    """Cached derived series matching the filters (one per timeframe: the longest)."""
    derived_root = root / DERIVED_DIR
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
    return list(derived.values())
