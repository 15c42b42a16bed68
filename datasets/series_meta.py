"""Per-series metadata (``_series.json``): names on disk, year files, per-file figures.

``_series.json`` holds exchange, symbol, timeframe, source (``"real"`` or ``"synthetic"``),
origin(s), created and updated times (ms), and per-file row counts, first/last times and
gaps, so coverage queries read no candle data.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datasets.schema import find_gaps
from datasets.storage import LockBusy, dir_lock, fsync_dir, new_token, temp_path
from gogo2.timeframes import format_time, normalize, timeframe_ms

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


def file_stamp(path: Path) -> dict[str, int]:
    """Size and mtime (ns) of a file, stored with its figures to detect later changes."""
    st = path.stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def check_files(meta: dict[str, Any] | None, files: dict[int, Path]) -> list[str]:
    """Where ``meta["files"]`` does not describe the year files present (empty: it does).

    A listed file must exist, every file must be listed, and a file whose size and mtime are
    recorded must still have them (older metadata without them: the row count of the Parquet
    footer must match).
    """
    listed: dict[str, Any] = (meta or {}).get("files", {}) if meta is not None else {}
    present = {p.name: p for p in files.values()}
    problems = [f"{name} is listed but missing" for name in sorted(set(listed) - set(present))]
    for name, path in present.items():
        entry = listed.get(name)
        if entry is None:
            problems.append(f"{name} is not listed")
            continue
        try:
            if "size" in entry and "mtime_ns" in entry:
                if file_stamp(path) != {"size": entry["size"], "mtime_ns": entry["mtime_ns"]}:
                    problems.append(f"{name} changed on disk")
            elif _footer_rows(path) != entry.get("rows"):
                problems.append(f"{name} holds another number of rows than listed")
        except (OSError, ValueError):
            problems.append(f"{name} cannot be read")
    return problems


def _footer_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(path).num_rows)


def series_meta(
    meta: dict[str, Any] | None,
    files: dict[int, Path],
    exchange: str,
    symbol: str,
    timeframe: str,
) -> tuple[dict[str, Any] | None, list[str], bool]:
    """Metadata of a stored series checked against its year files.

    Returns ``(meta, problems, restamp)``. ``meta`` is returned as it is when it describes
    ``files``; otherwise the figures of the files that do not match are rebuilt from the
    files (listed files that are gone are dropped), and ``problems`` says what differed. A
    file whose size or mtime changed but whose figures read back the same (a copy of the
    catalog that did not keep mtimes) is no problem, only ``restamp`` is set so the new stamps
    get saved. ``meta`` is None when no year file is left: the series is absent, whatever
    the JSON says.
    """
    if not files:
        stale = [] if meta is None else ["no data file is left"]
        return None, stale, False
    if meta is None:
        problems = ["_series.json is missing or unreadable"]
    else:
        problems = check_files(meta, files)
        if not problems:
            return meta, [], False
    tf_ms = timeframe_ms(timeframe)
    base = meta or {}
    listed = base.get("files", {})
    bad = {q.split(" ", 1)[0] for q in problems}
    stats = {}
    restamped = set()
    for p in files.values():
        entry = listed.get(p.name)
        if entry is not None and p.name not in bad:
            stats[p.name] = entry
            continue
        stats[p.name] = {**file_stats(p, tf_ms), **file_stamp(p)}
        if entry is not None and all(entry.get(k) == stats[p.name][k] for k in _FIGURES):
            restamped.add(p.name)
    problems = [q for q in problems if not _only_stamp(q, restamped)]
    rebuilt = {k: v for k, v in base.items() if k not in ("files", "rows", "first", "last")}
    rebuilt.update(
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
        }
    )
    return summarize(rebuilt, tf_ms), problems, bool(restamped)


_FIGURES = ("rows", "first", "last", "gaps")


def _only_stamp(problem: str, restamped: set[str]) -> bool:
    name, _, what = problem.partition(" ")
    return name in restamped and what in (
        "changed on disk",
        "holds another number of rows than listed",
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


_NOTED: set[tuple[str, tuple[str, ...]]] = set()


def reconcile(
    directory: Path,
    meta: dict[str, Any] | None,
    problems: list[str],
    exchange: str,
    symbol: str,
    timeframe: str,
) -> None:
    """Save metadata rebuilt from the files (or drop a stale one); say so once per process.

    Only new stamps (``problems`` empty) are saved silently.

    Saving needs the series lock, taken without waiting: a writer holding it is about to
    write fresh metadata anyway. A read-only catalog keeps the old file; every open rebuilds
    the figures in memory and the note is repeated once per process.
    """
    saved = os.access(directory, os.W_OK) and _save_checked(directory, exchange, symbol, timeframe)
    key = (str(directory), tuple(problems))
    if not problems or key in _NOTED:
        return
    _NOTED.add(key)
    label = f"{exchange} {symbol} {timeframe}"
    if meta is None:
        what = "it has no data file left, so the series is treated as absent"
        what += "; its _series.json was removed." if saved else "."
    else:
        what = (
            f"its figures were rebuilt from the files: {meta['rows']:,} rows"
            + (
                f", {format_time(meta['first'])} .. {format_time(meta['last'])} UTC"
                if meta["rows"]
                else ""
            )
            + ("." if saved else " (the catalog is not writable: not saved).")
        )
    print(
        f"note: the metadata of {label} did not match its files ({'; '.join(problems)}); {what}",
        file=sys.stderr,
    )


def _save_checked(directory: Path, exchange: str, symbol: str, timeframe: str) -> bool:
    target = directory / META_NAME
    try:
        with dir_lock(directory, wait=False, create=False):
            fixed, problems, restamp = series_meta(
                read_meta({}, directory), year_files(directory), exchange, symbol, timeframe
            )
            if not problems and not restamp:
                return True
            if fixed is None:
                target.unlink(missing_ok=True)
            else:
                tmp = temp_path(target, new_token())
                try:
                    with open(tmp, "w") as fh:
                        json.dump(fixed, fh, indent=1)
                        fh.flush()
                        os.fsync(fh.fileno())
                    os.replace(tmp, target)
                except BaseException:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
                    raise
            fsync_dir(directory)
            return True
    except (LockBusy, OSError):
        return False
