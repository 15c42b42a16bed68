"""The one candle schema of the catalog, and the checks every write goes through.

Schema
------
``time``
    int64, candle **open** time in milliseconds since the Unix epoch, UTC.
``open``, ``high``, ``low``, ``close``, ``volume``
    float64.

Defects found by :func:`validate` (each one makes a row *bad*):

* ``nan``: a missing value in any of the six columns;
* ``non_positive_price``: open, high, low or close ``<= 0``;
* ``negative_volume``: volume ``< 0``;
* ``high_below_body``: ``high < max(open, close)``: the high is below the candle's body
  (this also catches ``high < low`` whenever the low is not itself above the body);
* ``low_above_body``: ``low > min(open, close)``: the low is above the candle's body;
* ``duplicate``: a timestamp seen before (the *later* row of the input wins on repair);
* ``unsorted``: a timestamp earlier than the one before it;
* ``off_grid``: a timestamp not on the timeframe grid (``time % timeframe_ms != 0``; weekly
  candles are aligned on Mondays, as exchanges do);
* ``zero_volume``: volume ``== 0``. Exchanges emit such placeholder candles (open = high =
  low = close = previous close) during outages; they are not trades, so they are refused like
  the other defects and dropped on repair, which turns them into ordinary gaps;
* ``extreme_jump``: ``|close / previous close - 1| > max_jump`` between *consecutive*
  candles; a move across a gap (hours or days without candles) is not a jump. The threshold
  depends on the timeframe unless it is given (:func:`default_max_jump`: 0.5 up to 1h,
  0.75 up to 4h, 1.0 up to 1d, 2.0 above), since a real move grows with the candle length:
  a 50 % day is rare but happens, a 50 % minute is a bad print. ``--max-jump`` on the
  import and download commands, or ``data.max_jump`` set in the configuration, replace it.

Gaps (missing candles) are **not** defects: they are found by :func:`find_gaps` and
reported, never filled.

Repair (``repair=True``) sorts by time, keeps the last of duplicate timestamps, drops the rows
with any other defect and reports each change as one line of text. An isolated one-candle
spike (a jump away and straight back) is dropped; a jump that persists (the price stays at the
new level) cannot be told apart from a real move or a unit change, so it is refused even with
``repair=True`` and the message says to check the source or raise the threshold
(``--max-jump``, ``data.max_jump``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from gogo2.errors import CandleValidationError, DataError
from gogo2.timeframes import format_time, timeframe_ms

if TYPE_CHECKING:
    import pandas as pd

COLUMNS: tuple[str, ...] = ("time", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
VALUE_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
DEFAULT_MAX_JUMP = 0.5
#: Default extreme-jump threshold by candle length: ``(largest timeframe in ms, threshold)``,
#: first match wins; longer candles get :data:`MAX_JUMP_LONGEST`.
MAX_JUMP_BY_TIMEFRAME: tuple[tuple[int, float], ...] = (
    (3_600_000, 0.5),  # 1s .. 1h
    (14_400_000, 0.75),  # up to 4h
    (86_400_000, 1.0),  # up to 1d
)
MAX_JUMP_LONGEST = 2.0  # longer than a day (3d, 1w, ...)
WEEK_MS = 604_800_000
#: 1970-01-01 was a Thursday; weekly candles open on Monday 00:00 UTC (1970-01-05).
WEEK_OFFSET_MS = 4 * 86_400_000

DEFECTS: tuple[str, ...] = (
    "nan",
    "non_positive_price",
    "negative_volume",
    "high_below_body",
    "low_above_body",
    "duplicate",
    "unsorted",
    "off_grid",
    "zero_volume",
    "extreme_jump",
)

_DEFECT_TEXT = {
    "nan": "missing (NaN) values",
    "non_positive_price": "prices <= 0",
    "negative_volume": "negative volume",
    "high_below_body": "high below the body (high < max(open, close))",
    "low_above_body": "low above the body (low > min(open, close))",
    "duplicate": "duplicate timestamps",
    "unsorted": "unsorted timestamps",
    "off_grid": "timestamps off the timeframe grid",
    "zero_volume": "zero-volume placeholder candles",
    "extreme_jump": "extreme close-to-close jumps",
}


def default_max_jump(timeframe: str) -> float:
    """The extreme-jump threshold used for ``timeframe`` when none is given.

    0.5 (50 %) for candles up to 1h, 0.75 up to 4h, 1.0 up to 1d and 2.0 for longer ones
    (see :data:`MAX_JUMP_BY_TIMEFRAME`).
    """
    tf_ms = timeframe_ms(timeframe)
    for longest, threshold in MAX_JUMP_BY_TIMEFRAME:
        if tf_ms <= longest:
            return threshold
    return MAX_JUMP_LONGEST


def resolve_max_jump(timeframe: str, given: float | None = None) -> float:
    """``given`` when set (a ``--max-jump`` flag or an explicit ``data.max_jump``), else the
    per-timeframe default of :func:`default_max_jump`."""
    if given is None:
        return default_max_jump(timeframe)
    if not given > 0:
        raise DataError(f"--max-jump {given!r} must be a positive fraction, such as 0.8 for 80 %.")
    return float(given)


def configured_max_jump(data_config) -> float | None:
    """``data.max_jump`` when the configuration sets it explicitly (a YAML file or
    ``GOGO2__DATA__MAX_JUMP``), else None (the per-timeframe default applies)."""
    return getattr(data_config, "max_jump", None)


def arrow_schema():
    """The pyarrow schema of a stored candle file (pyarrow imported on call)."""
    import pyarrow as pa

    return pa.schema(
        [("time", pa.int64())] + [(name, pa.float64()) for name in VALUE_COLUMNS],
    )


def grid_offset_ms(tf_ms: int) -> int:
    """Offset of the candle grid from the epoch: Monday alignment for whole weeks, else 0."""
    return WEEK_OFFSET_MS if tf_ms % WEEK_MS == 0 else 0


def bucket_start(time: np.ndarray, tf_ms: int) -> np.ndarray:
    """Open time of the ``tf_ms`` candle holding each ``time`` (UTC-aligned floor)."""
    off = grid_offset_ms(tf_ms)
    t = np.asarray(time, dtype=np.int64)
    return (t - off) // tf_ms * tf_ms + off


@dataclass
class ValidationReport:
    """What :func:`validate` found.

    Attributes
    ----------
    n_rows : int
        Rows checked.
    masks : dict[str, np.ndarray]
        One boolean mask per defect name (see :data:`DEFECTS`), in input row order.
    bad : np.ndarray
        Union of the masks: rows with at least one defect.
    drop : np.ndarray
        Rows repair removes: ``bad`` without the rows that are only out of order.
    time : np.ndarray
        The input's open times, in input row order.
    gaps : list[tuple[int, int, int]]
        ``(last open before the gap, first open after it, missing candles)`` over the input's
        sorted unique on-grid timestamps. Rows dropped on repair add gaps to what is stored;
        the stored series' gaps are reported by the catalog.
    """

    n_rows: int
    masks: dict[str, np.ndarray]
    bad: np.ndarray
    drop: np.ndarray
    time: np.ndarray
    gaps: list[tuple[int, int, int]] = field(default_factory=list)
    persistent_jumps: np.ndarray | None = None
    #: ``close / previous close - 1`` at the rows flagged ``extreme_jump`` (NaN elsewhere)
    jump_moves: np.ndarray | None = None
    #: the threshold the jumps were measured against
    max_jump: float = DEFAULT_MAX_JUMP

    @property
    def n_bad(self) -> int:
        return int(self.bad.sum())

    @property
    def ok(self) -> bool:
        return self.n_bad == 0

    def count(self, defect: str) -> int:
        return int(self.masks[defect].sum())

    @property
    def missing_bars(self) -> int:
        return sum(g[2] for g in self.gaps)

    def first_bad_time(self) -> int | None:
        """Earliest timestamp among the bad rows (None if no bad row)."""
        if not self.bad.any():
            return None
        return int(self.time[self.bad].min())

    def summary(self) -> str:
        """``"4 zero-volume placeholder candles, 1 duplicate timestamps"``."""
        parts = [f"{self.count(d)} {_DEFECT_TEXT[d]}" for d in DEFECTS if self.count(d)]
        return ", ".join(parts)


def to_frame(df, origin: str = "input") -> pd.DataFrame:
    """Return ``df`` reduced to :data:`COLUMNS` with the schema's dtypes.

    Extra columns are ignored. A missing column, or a column that cannot be cast, raises
    :class:`~gogo2.errors.DataError` naming the origin.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"{origin}: candles must be a pandas DataFrame with columns {', '.join(COLUMNS)}, "
            f"not {type(df).__name__}."
        )
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{origin}: missing column(s) {', '.join(missing)}; have {', '.join(map(str, df.columns))}. "
            "Rename the columns to time (int64 ms UTC open time), open, high, low, close, volume."
        )
    out = {}
    t = df["time"]
    if t.isna().any():
        raise DataError(
            f"{origin}: column time has {int(t.isna().sum())} missing value(s). "
            "Every candle needs its open time in ms UTC."
        )
    if pd.api.types.is_datetime64_any_dtype(t):
        raise DataError(
            f"{origin}: column time holds datetimes; convert it to int64 milliseconds UTC "
            "(for example df.time.astype('datetime64[ms, UTC]').astype('int64'))."
        )
    if len(t) and pd.api.types.is_numeric_dtype(t):
        hi = float(t.max())
        if 0 < hi < 1e11:
            raise DataError(
                f"{origin}: column time looks like seconds since the epoch (largest {hi:.0f}); "
                "the catalog stores milliseconds: multiply by 1000."
            )
        if hi > 1e14:
            unit = "microseconds" if hi < 1e17 else "nanoseconds"
            factor = 1000 if unit == "microseconds" else 1_000_000
            raise DataError(
                f"{origin}: column time looks like {unit} since the epoch (largest {hi:.0f}); "
                f"the catalog stores milliseconds: divide by {factor:,}."
            )
    try:
        tv = t.to_numpy()
        if tv.dtype.kind == "f":
            if not np.all(np.mod(tv, 1) == 0):
                raise ValueError("fractional")
        out["time"] = tv.astype(np.int64)
        for c in VALUE_COLUMNS:
            out[c] = df[c].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as e:
        raise DataError(
            f"{origin}: cannot read the columns as numbers ({e}). "
            "time must be int64 milliseconds, open/high/low/close/volume numbers."
        ) from None
    return pd.DataFrame(out, columns=list(COLUMNS))


def find_gaps(time: np.ndarray, tf_ms: int) -> list[tuple[int, int, int]]:
    """Gaps in sorted unique open times: ``(before, after, missing candles)``.

    Parameters
    ----------
    time : np.ndarray
        int64 open times, sorted ascending, unique.
    tf_ms : int
        Candle length in milliseconds.
    """
    t = np.asarray(time, dtype=np.int64)
    if t.size < 2:
        return []
    d = np.diff(t)
    idx = np.flatnonzero(d > tf_ms)
    return [(int(t[i]), int(t[i + 1]), int(d[i] // tf_ms - 1)) for i in idx]


def _jump_masks(
    close: np.ndarray, max_jump: float, adjacent: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose close moved more than ``max_jump`` from the previous row, and the persistent ones.

    Returns ``(jump, persistent)``: ``jump[i]`` marks the row after each extreme move;
    an isolated spike (row ``i`` jumps away and row ``i + 1`` comes back within ``max_jump``
    of row ``i - 1``) marks only row ``i``. ``persistent`` marks jumps that are not such spikes.
    """
    n = close.size
    jump = np.zeros(n, dtype=bool)
    persistent = np.zeros(n, dtype=bool)
    if n < 2:
        return jump, persistent
    with np.errstate(divide="ignore", invalid="ignore"):
        move = np.abs(close[1:] / close[:-1] - 1.0) > max_jump
    if adjacent is not None:
        move &= adjacent
    if not move.any():
        return jump, persistent
    jump[1:] = move
    # spike at i: jump into i, jump out of i, and i+1 back near i-1
    spike = np.zeros(n, dtype=bool)
    if n >= 3:
        with np.errstate(divide="ignore", invalid="ignore"):
            back = np.abs(close[2:] / close[:-2] - 1.0) <= max_jump
        spike[1:-1] = jump[1:-1] & jump[2:] & back
    returns = np.zeros(n, dtype=bool)
    returns[1:] = spike[:-1]
    persistent = jump & ~spike & ~returns
    jump = jump & ~returns
    return jump, persistent


def validate(
    df: pd.DataFrame, timeframe: str, *, max_jump: float = DEFAULT_MAX_JUMP
) -> ValidationReport:
    """Check candles against the schema rules (see the module docstring).

    Parameters
    ----------
    df : pandas.DataFrame
        Columns :data:`COLUMNS` (use :func:`to_frame` first), in the order received.
    timeframe : str
        ccxt-style timeframe of the candles, for the grid and gap checks.
    max_jump : float
        Largest accepted ``|close / previous close - 1|``.

    Returns
    -------
    ValidationReport
        Masks in input row order; gaps over the input's on-grid timestamps.
    """
    if not max_jump > 0:
        raise DataError(f"max_jump {max_jump!r} must be a positive fraction such as 0.5.")
    tf_ms = timeframe_ms(timeframe)
    t = df["time"].to_numpy(dtype=np.int64)
    o, h, lo, c, v = (df[k].to_numpy(dtype=np.float64) for k in VALUE_COLUMNS)
    n = t.size
    masks: dict[str, np.ndarray] = {}
    masks["nan"] = np.isnan(o) | np.isnan(h) | np.isnan(lo) | np.isnan(c) | np.isnan(v)
    with np.errstate(invalid="ignore"):
        masks["non_positive_price"] = (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)
        masks["negative_volume"] = v < 0
        masks["high_below_body"] = (h < np.maximum(o, c)) | (h < lo)
        masks["low_above_body"] = lo > np.minimum(o, c)
        masks["zero_volume"] = v == 0
    # time order: duplicates (later rows win) and unsorted rows
    dup = np.zeros(n, dtype=bool)
    unsorted = np.zeros(n, dtype=bool)
    if n > 1:
        d = np.diff(t)
        if (d <= 0).any():
            unsorted[1:] = d < 0
            order = np.argsort(t, kind="stable")
            st = t[order]
            later_same = np.zeros(n, dtype=bool)
            later_same[:-1] = st[1:] == st[:-1]  # an equal timestamp follows: this one loses
            dup[order[later_same]] = True
    masks["duplicate"] = dup
    masks["unsorted"] = unsorted & ~dup
    off = grid_offset_ms(tf_ms)
    masks["off_grid"] = (t - off) % tf_ms != 0
    # jumps are measured on the rows that survive the other checks, in time order
    # (an unsorted row is not dropped on repair, only moved, so it takes part)
    other = np.zeros(n, dtype=bool)
    for name, m in masks.items():
        if name != "unsorted":
            other |= m
    keep = np.flatnonzero(~other)
    keep = keep[np.argsort(t[keep], kind="stable")]
    tk = t[keep]
    adjacent = np.diff(tk) <= tf_ms if tk.size > 1 else np.zeros(0, dtype=bool)
    jump_sorted, persistent_sorted = _jump_masks(c[keep], max_jump, adjacent)
    jump = np.zeros(n, dtype=bool)
    jump[keep[jump_sorted]] = True
    persistent = np.zeros(n, dtype=bool)
    persistent[keep[persistent_sorted]] = True
    jump_moves = np.full(n, np.nan)
    if jump_sorted.any():
        ck = c[keep]
        moves = np.full(ck.size, np.nan)
        moves[1:] = ck[1:] / ck[:-1] - 1.0
        jump_moves[keep[jump_sorted]] = moves[jump_sorted]
    masks["extreme_jump"] = jump
    drop = other | jump
    # gaps are those of the input's own timestamps (a bad row still marks its time as seen)
    on_grid = t[~masks["off_grid"]]
    if on_grid.size < 2 or (on_grid[1:] > on_grid[:-1]).all():
        seen_t = on_grid
    else:
        seen_t = np.unique(on_grid)
    return ValidationReport(
        n_rows=n,
        masks=masks,
        bad=drop | masks["unsorted"],
        drop=drop,
        time=t,
        gaps=find_gaps(seen_t, tf_ms),
        persistent_jumps=persistent,
        jump_moves=jump_moves,
        max_jump=float(max_jump),
    )


def jump_hint(report: ValidationReport, timeframe: str, only: np.ndarray | None = None) -> str:
    """How to accept the extreme jumps of ``report`` if they are real moves (one sentence)."""
    import math

    mask = report.masks["extreme_jump"] if only is None else only
    all_moves = report.jump_moves if report.jump_moves is not None else np.full(mask.size, np.nan)
    moves, times = all_moves[mask], report.time[mask]
    known = ~np.isnan(moves)
    moves, times = moves[known], times[known]
    if moves.size:
        i = int(np.argmax(np.abs(moves)))
        largest = float(moves[i])
        at = format_time(int(times[i]))
        suggest = math.floor(abs(largest) * 20 + 1e-9) / 20 + 0.05
        head = f"The largest move is {largest:+.1%} (at {at} UTC). "
    else:
        suggest = report.max_jump * 2
        head = ""
    return (
        f"{head}If it is real, raise the threshold (now {report.max_jump:g} for {timeframe}): "
        f"pass --max-jump {suggest:.2f} to data import / data download, or set data.max_jump "
        "in the config."
    )


def check_candles(
    df,
    timeframe: str,
    *,
    origin: str = "input",
    repair: bool = False,
    max_jump: float = DEFAULT_MAX_JUMP,
) -> tuple[pd.DataFrame, list[str], ValidationReport]:
    """Validate candles for storage; refuse or repair.

    Parameters
    ----------
    df : pandas.DataFrame
        Candles with at least the columns :data:`COLUMNS`.
    timeframe : str
        Their timeframe.
    origin : str
        File path or URL the candles came from, named in messages.
    repair : bool
        False: raise :class:`~gogo2.errors.CandleValidationError` on any defect. True: sort,
        keep the last of duplicate timestamps, drop the other bad rows and report each change.
    max_jump : float
        Extreme-jump threshold (fraction).

    Returns
    -------
    (frame, changes, report)
        The clean frame (sorted, unique, schema dtypes, fresh index), one text line per
        repair made, and the validation report of the input.

    Raises
    ------
    CandleValidationError
        Any defect without ``repair``; a persistent extreme jump even with ``repair``.
    """
    frame = to_frame(df, origin)
    report = validate(frame, timeframe, max_jump=max_jump)
    if report.ok:
        if report.n_rows > 1 and not (np.diff(report.time) > 0).all():  # pragma: no cover
            raise AssertionError("validated frame must be sorted")
        return frame.reset_index(drop=True), [], report
    first = format_time(report.first_bad_time())
    if not repair:
        parts = []
        for d in DEFECTS:
            if report.count(d):
                at = format_time(int(report.time[report.masks[d]].min()))
                parts.append(f"{_DEFECT_TEXT[d]}: {report.count(d)} row(s), first at {at}")
        msg = (
            f"{origin}: {report.n_bad} bad candle row(s) out of {report.n_rows} "
            f"({'; '.join(parts)}); first bad timestamp {first} UTC. Nothing was stored. "
            "Fix the source, or pass --repair to sort, de-duplicate and drop the bad rows."
        )
        if report.count("extreme_jump"):
            msg += " " + jump_hint(report, timeframe)
        raise CandleValidationError(msg)
    if report.persistent_jumps is not None and report.persistent_jumps.any():
        pj = report.time[report.persistent_jumps]
        raise CandleValidationError(
            f"{origin}: {pj.size} close-to-close jump(s) above max_jump={max_jump} that persist "
            f"(first at {format_time(int(pj.min()))} UTC); repair cannot tell them from a real "
            "move or a unit change. Nothing was stored. Check the source. "
            + jump_hint(report, timeframe, only=report.persistent_jumps)
        )
    changes: list[str] = []
    if report.count("unsorted"):
        changes.append(
            f"sorted {report.n_rows} rows by time ({report.count('unsorted')} out of order)"
        )
    drop = report.drop
    for d in DEFECTS:
        cnt = report.count(d)
        if not cnt:
            continue
        ts = report.time[report.masks[d]]
        first_d = format_time(int(ts.min()))
        if d == "duplicate":
            changes.append(
                f"dropped {cnt} duplicate timestamp row(s), kept the last (first {first_d} UTC)"
            )
        elif d == "unsorted":
            continue
        else:
            shown = ", ".join(format_time(int(x)) for x in np.sort(ts)[:5])
            more = f" and {cnt - 5} more" if cnt > 5 else ""
            changes.append(f"dropped {cnt} row(s) with {_DEFECT_TEXT[d]}: {shown}{more} UTC")
    kept = frame.loc[~drop]
    kept = kept.sort_values("time", kind="stable").reset_index(drop=True)
    return kept, changes, report
