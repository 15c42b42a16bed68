"""Merging new candles into a stored series and writing the result atomically.

The caller (:meth:`datasets.catalog.Catalog.write`) has validated the candles and holds the
series lock. Every touched year file and the new ``_series.json`` are written to temporary
files and swapped in together (:func:`datasets.storage.atomic_swap`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datasets.derived import invalidate_derived
from datasets.parquet_read import PARQUET_COMPRESSION, sorted_isin
from datasets.schema import COLUMNS, arrow_schema, find_gaps
from datasets.series_meta import META_NAME, file_stamp, now_ms, summarize, year_files, year_of
from datasets.storage import atomic_swap, fsync_file, new_token, temp_path
from gogo2.errors import DataError
from gogo2.timeframes import format_time, timeframe_ms

if TYPE_CHECKING:
    import pandas as pd

    from datasets.catalog import Catalog


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


def write_locked(
    catalog: Catalog,
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
    new_years = year_of(new["time"])
    existing = year_files(directory)
    old_meta = catalog._series_meta(exchange, symbol, tf)
    files_meta: dict[str, Any] = dict(old_meta["files"]) if old_meta else {}
    schema = arrow_schema()
    token = new_token()
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
                    keep_old = ~sorted_isin(old_t, part["time"])
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
        check_seams(directory, existing, merged_by_year, new["time"], max_jump, origin)
        for year, merged in merged_by_year.items():
            target = directory / f"year={year}.parquet"
            tmp = temp_path(target, token)
            pairs.append((tmp, target))  # on the cleanup list before the first byte is written
            table = pa.Table.from_arrays([pa.array(merged[c]) for c in COLUMNS], schema=schema)
            pq.write_table(table, tmp, compression=PARQUET_COMPRESSION)
            fsync_file(tmp)
            t = merged["time"]
            files_meta[target.name] = {
                "rows": int(t.size),
                "first": int(t[0]),
                "last": int(t[-1]),
                "gaps": [list(g) for g in find_gaps(t, tf_ms)],
                # os.replace keeps size and mtime: they identify the file the figures describe
                **file_stamp(tmp),
            }
        now = now_ms()
        origins = list((old_meta or {}).get("origins", []))
        if origin not in origins:
            origins.append(origin)
        meta = summarize(
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
        meta_tmp = temp_path(meta_target, token)
        pairs.append((meta_tmp, meta_target))
        meta_tmp.write_text(json.dumps(meta, indent=1))
        fsync_file(meta_tmp)
    except BaseException:
        for tmp, _ in pairs:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    atomic_swap(pairs)  # fsyncs the directory
    invalidate_derived(catalog.root, exchange, symbol)
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


def check_seams(
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
    is_new = sorted_isin(tt, new_time)
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
            f"it at {format_time(int(tt[old_at]))} (threshold {max_jump}). Nothing was stored. "
            "Check that the candles belong to this series (same symbol, same quote currency), "
            f"or, if the move is real, pass --max-jump {abs(cc[new_at] / cc[old_at] - 1) + 0.01:.2f} "
            "(or set data.max_jump)."
        )
