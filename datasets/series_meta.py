"""Per-series metadata (``_series.json``): names on disk, year files, per-file figures.

``_series.json`` holds exchange, symbol, timeframe, source (``"real"`` or ``"synthetic"``),
origin(s), created and updated times (ms), and per-file row counts, first/last times and
gaps, so coverage queries read no candle data.
"""

from __future__ import annotations

import json
import re
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datasets.schema import find_gaps
from gogo2.timeframes import normalize, timeframe_ms

SOURCES = ("real", "synthetic")
META_NAME = "_series.json"
YEAR_RE = re.compile(r"^year=(\d{4})\.parquet$")


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


def symbol_from_dirname(name: str) -> str:
    """Inverse of :func:`symbol_dirname` (used only when a series lost its metadata)."""
    base, _, rest = name.partition("-")
    quote, _, settle = rest.partition("_")
    return f"{base}/{quote}" + (f":{settle}" if settle else "")


def year_of(ms: np.ndarray | int) -> np.ndarray:
    return (
        np.asarray(ms, dtype=np.int64)
        .astype("datetime64[ms]")
        .astype("datetime64[Y]")
        .astype(np.int64)
        + 1970
    )


def now_ms() -> int:
    return int(_time.time() * 1000)


def year_files(directory: Path) -> dict[int, Path]:
    """``{year: path}`` of the year files of a series directory, by year."""
    out: dict[int, Path] = {}
    if directory.is_dir():
        for p in directory.iterdir():
            m = YEAR_RE.match(p.name)
            if m:
                out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def read_meta(
    cache: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]], directory: Path
) -> dict[str, Any] | None:
    """Parsed ``_series.json`` (memoised in ``cache`` on the file's size and mtime); None if unreadable."""
    path = directory / META_NAME
    try:
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        hit = cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    cache[path] = (stamp, meta)
    return meta


def file_stats(path: Path, tf_ms: int) -> dict[str, Any]:
    """Rows, first/last open time and gaps of one year file, read from the file."""
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["time"]).column("time").to_numpy()
    return {
        "rows": int(t.size),
        "first": int(t[0]) if t.size else None,
        "last": int(t[-1]) if t.size else None,
        "gaps": [list(g) for g in find_gaps(t, tf_ms)],
    }


def series_meta(
    meta: dict[str, Any] | None,
    files: dict[int, Path],
    exchange: str,
    symbol: str,
    timeframe: str,
) -> dict[str, Any] | None:
    """Metadata of a stored series: ``meta`` when it lists ``files``, else rebuilt from them."""
    if meta is not None and set(meta.get("files", {})) == {p.name for p in files.values()}:
        return meta
    if not files:
        return None
    tf_ms = timeframe_ms(timeframe)
    stats = {p.name: file_stats(p, tf_ms) for p in files.values()}
    base = meta or {}
    return summarize(
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


def summarize(meta: dict[str, Any], tf_ms: int) -> dict[str, Any]:
    """Fill the series totals (rows, first, last, gaps, missing bars) from ``meta["files"]``."""
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
