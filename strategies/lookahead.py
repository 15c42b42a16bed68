"""Look-ahead bias detector: past decisions must not change when the future is cut off.

A backtest decides every row from the whole history; a live runner decides row ``t``
from the candles closed by ``t`` only, in a trailing window of ``strategy.warmup + 1``
candles per symbol (:func:`strategies.window.trailing_window`: that many base rows,
reaching back over a symbol's missing candles; the live runner's memory cuts its window
by the same function). The two must agree at every row.
Two modes check it:

* **Exhaustive** (the default up to :data:`EXHAUSTIVE_MAX_ROWS` base bars): every row's
  decision is recomputed from the trailing window that ends at that row, exactly as a
  live runner would compute it, and every field of it is compared with the full run,
  including rows where the full run did nothing (a veto is a decision). A leak confined
  to one row in a thousand is found because that row is checked. Each window is a
  slice of the history (no copy of the whole history per row), and the strategy's
  vectorized method runs on it as it would live, numba indicators included.
* **Sampled** (longer ranges): histories cut at ``cuts`` chosen rows (half at or just
  before rows where the full run acts, half uniform) are rerun whole and compared at
  every row up to the cut, and every *boundary row* is re-decided from its trailing
  window as above: the last base bar of each hour and day, the first base bar that sees
  each informative candle, both edges of every data gap (missing timestamps and
  per-symbol holes) and every acting row, each with the row just before it. Those are
  the rows where sparse leaks live (a peek at the next day's first bar, a 1h candle
  aligned one base bar early, a back-fill across a hole).

A row whose window decision differs from the full run is rerun on the whole history up
to that row. If that still differs, the full run used data from after the row:
look-ahead, reported with the bar time, the symbol, the field and both values. If the
whole-history rerun agrees, the difference comes from the window's missing start: the
declared warm-up is too short (reported separately, see :func:`check_warmup`).

:func:`check_warmup` is the mirror image: it removes the *start* of the history and
checks that, once ``strategy.warmup`` bars have passed, decisions equal the full run's,
which is what lets live trading keep only a trailing window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from datasets.bars import Bars, MultiBars
from engine.signals import Signals
from gogo2.errors import Gogo2Error, UserInputError
from gogo2.timeframes import format_time
from strategies.base import Strategy
from strategies.window import history_from, window_starts

__all__ = [
    "EXHAUSTIVE_MAX_ROWS",
    "FIELDS",
    "LookaheadError",
    "LookaheadIssue",
    "LookaheadReport",
    "TrailingWindows",
    "WarmupReport",
    "boundary_rows",
    "check_lookahead",
    "check_warmup",
]

FIELDS = ("entries", "exits", "order_type", "price", "size", "sl", "tp", "trail")
_DEFAULT_FILL = {"entries": 0, "exits": False, "order_type": 0}

EXHAUSTIVE_MAX_ROWS = 50_000
"""Ranges up to this many base bars are checked exhaustively by default (about 35 days
of 1m or 170 days of 5m candles; a month of 5m with ``mtf_trend`` takes 2-4 s on a
2-core machine). The CLI help repeats this number."""

MAX_ISSUES = 20
"""Look-ahead rows listed per check; the check stops classifying after that many."""

MAX_RERUNS = 500
"""Whole-history reruns spent classifying window differences that windows of 2, 4, 8...
times the warm-up did not settle; rows beyond stay unverified."""

_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000


class LookaheadError(Gogo2Error):
    """A strategy's past decisions changed when future data was removed (exit code 1)."""

    exit_code = 1


@dataclass(frozen=True)
class LookaheadIssue:
    """One decision that differs between the full-history run and a cut-history run."""

    cut_time: int
    """Close time (UTC ms) of the last base bar kept in the cut history."""
    bar_time: int
    """Open time (UTC ms) of the base bar whose decision differs."""
    symbol: str
    field: str
    full_value: float
    cut_value: float

    def describe(self) -> str:
        return (
            f"bar {format_time(self.bar_time)} {self.symbol} {self.field}: "
            f"{_fmt(self.full_value)} with full data, {_fmt(self.cut_value)} with data cut at "
            f"{format_time(self.cut_time)}"
        )


@dataclass
class LookaheadReport:
    """Outcome of :func:`check_lookahead`."""

    strategy: str
    mode: str = "sampled"
    """``"exhaustive"`` (every row re-decided) or ``"sampled"`` (cuts and boundary rows)."""
    window: int = 0
    """Candles per symbol in the trailing windows rows were re-decided from (base rows,
    more where a symbol misses candles: :func:`strategies.window.window_starts`)."""
    cuts: list[int] = field(default_factory=list)
    """Close times of the whole-history cuts that were checked (sampled mode)."""
    rows_checked: int = 0
    """Rows re-decided from their own trailing window."""
    issues: list[LookaheadIssue] = field(default_factory=list)
    """Look-ahead found, earliest bar first: per failing cut its first difference, per
    failing row its first differing field (at most :data:`MAX_ISSUES` rows)."""
    warmup_issues: list[LookaheadIssue] = field(default_factory=list)
    """Rows whose window decision differs only because the window starts later (first
    :data:`MAX_ISSUES`); ``cut_time`` is the row's close time."""
    warmup_rows: int = 0
    """How many rows differ that way."""
    unverified: int = 0
    """Rows whose window decision differs from the full run but were not rerun on the
    whole history (the rerun budget was spent): possibly look-ahead."""

    @property
    def ok(self) -> bool:
        return not self.issues and not self.unverified

    @property
    def n_cuts(self) -> int:
        return len(self.cuts)

    def __iter__(self) -> Iterator[LookaheadIssue]:
        return iter(self.issues)

    def _scope(self) -> str:
        if self.mode == "exhaustive":
            return (
                f"all {self.rows_checked} rows after the warm-up re-decided from their "
                f"{self.window}-bar window"
            )
        return (
            f"{self.n_cuts} cuts and {self.rows_checked} boundary rows re-decided from their "
            f"{self.window}-bar window"
        )

    def summary(self) -> str:
        if self.ok:
            return f"no look-ahead found ({self.mode}): {self._scope()}"
        if not self.issues:
            return (
                f"look-ahead not ruled out for {self.strategy} ({self.mode}): {self.unverified} "
                f"rows decide differently from their {self.window}-bar window and were not "
                "rerun on the whole history; most likely the declared warm-up is far too "
                "short: raise the strategy's lookback()"
            )
        first = self.issues[0]
        what = "rows" if self.mode == "exhaustive" else "cuts or rows"
        more = f" (and {self.unverified} unverified rows)" if self.unverified else ""
        return (
            f"look-ahead found in {self.strategy} ({self.mode}): {len(self.issues)} {what} "
            f"changed past decisions{more}; {self._scope()}; first: {first.describe()}"
        )


def _fmt(v: float) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    f = float(v)
    if np.isnan(f):
        return "NaN"
    return str(int(f)) if f.is_integer() else f"{f:.10g}"


def _field_array(sig: Signals, name: str) -> np.ndarray | None:
    return getattr(sig, name)


def _as_compare(arr: np.ndarray | None, name: str, shape: tuple[int, int]) -> np.ndarray:
    # A field left as None means "default everywhere"; compare it as such.
    if arr is None:
        if name in _DEFAULT_FILL:
            return np.full(shape, float(_DEFAULT_FILL[name]))
        return np.full(shape, np.nan)
    return np.asarray(arr, dtype=np.float64)


def _differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))


def _active_rows(sig: Signals) -> np.ndarray:
    """Rows where the full run does something (any field away from its default)."""
    act = (sig.entries != 0).any(axis=1) | sig.exits.any(axis=1)
    for name in ("order_type", "price", "size", "sl", "tp", "trail"):
        arr = _field_array(sig, name)
        if arr is None:
            continue
        a = np.asarray(arr, dtype=np.float64)
        busy = a != 0 if name == "order_type" else ~np.isnan(a)
        act |= busy.any(axis=1)
    return np.flatnonzero(act)


def _choose_cuts(n: int, lo: int, active: np.ndarray, cuts: int, seed: int) -> np.ndarray:
    """Cut rows in [lo, n - 2]: half at/just before acting rows, the rest uniform."""
    hi = n - 2  # a cut must leave at least one future bar out
    if hi < lo:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    pool = np.arange(lo, hi + 1)
    chosen: list[int] = []
    near = np.unique(np.concatenate([active, active - 1]))
    near = near[(near >= lo) & (near <= hi)]
    if near.size:
        k = min(near.size, (cuts + 1) // 2)
        chosen.extend(rng.choice(near, size=k, replace=False).tolist())
    rest = np.setdiff1d(pool, np.asarray(chosen, dtype=np.int64))
    k = min(rest.size, cuts - len(chosen))
    if k > 0:
        chosen.extend(rng.choice(rest, size=k, replace=False).tolist())
    return np.sort(np.asarray(chosen, dtype=np.int64))


def _first_difference(
    full: Signals, other: Signals, full_start: int, other_start: int, length: int, m: int
) -> tuple[int, str, int, float, float] | None:
    """Earliest differing cell between ``full`` rows ``full_start:full_start+length`` and
    ``other`` rows ``other_start:other_start+length``: (row in full, field, column, values)."""
    best: tuple[int, str, int, float, float] | None = None
    n_full, n_other = full.entries.shape[0], other.entries.shape[0]
    for name in FIELDS:
        a_raw, b_raw = _field_array(full, name), _field_array(other, name)
        if a_raw is None and b_raw is None:
            continue
        a = _as_compare(a_raw, name, (n_full, m))[full_start : full_start + length]
        b = _as_compare(b_raw, name, (n_other, m))[other_start : other_start + length]
        differ = _differ(a, b)
        if not differ.any():
            continue
        r, c = np.argwhere(differ)[0]
        if best is None or r + full_start < best[0]:
            best = (int(r) + full_start, name, int(c), float(a[r, c]), float(b[r, c]))
    return best


def _issue(bars: Bars, cut_time: int, diff: tuple[int, str, int, float, float]) -> LookaheadIssue:
    r, name, col, a, b = diff
    return LookaheadIssue(
        cut_time=int(cut_time),
        bar_time=int(bars.time[r]),
        symbol=bars.symbols[col],
        field=name,
        full_value=a,
        cut_value=b,
    )


# ---------------------------------------------------------------------- trailing windows


class TrailingWindows:
    """The live view of every base row: ``trailing_window(data.until(close[t]), length)``.

    The window's first row comes from :func:`strategies.window.window_starts`, the
    definition the live runner's memory uses too: ``length`` rows, reaching back over
    missing candles until every symbol has ``length`` candles. Slice bounds for all rows
    are found at once (vectorized); :meth:`at` then cuts only the rows of one window,
    never the whole history, so re-deciding every row costs one strategy call on about
    ``length`` bars per row.

    Parameters
    ----------
    data : MultiBars
    length : int
        Candles per symbol in each window (the strategy's warm-up plus the deciding bar:
        what a live runner decides from).
    """

    def __init__(self, data: MultiBars, length: int) -> None:
        base = data.bars
        self.data = data
        self.length = int(length)
        self.start = window_starts(base.close, self.length)
        """First base row of each row's window."""
        close = base.close_time
        start_open = base.time[self.start] if base.n else np.empty(0, np.int64)
        self._bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for tf, b in data.frames.items():
            if tf == data.base:
                continue
            # candles closed by the row's close, from the first closing at/after the
            # window's first open: trailing_window applied to data.until(close[t])
            stop = np.searchsorted(b.close_time, close, side="right")
            first = np.minimum(np.searchsorted(b.close_time, start_open, side="left"), stop)
            self._bounds[tf] = (first, stop)

    def at(self, row: int) -> MultiBars:
        """The window ending at base row ``row`` (every timeframe cut at its close)."""
        frames: dict[str, Bars] = {}
        for tf, b in self.data.frames.items():
            if tf == self.data.base:
                frames[tf] = b.slice(int(self.start[row]), int(row) + 1)
            else:
                first, stop = self._bounds[tf]
                frames[tf] = b.slice(int(first[row]), int(stop[row]))
        return MultiBars(self.data.base, frames)


def boundary_rows(data: MultiBars, full: Signals | None = None) -> np.ndarray:
    """Base rows where sparse look-ahead hides, each with the row just before it.

    The last base bar of each UTC hour and day (by close time), the first base bar that
    can see each candle of every coarser timeframe in ``data``, both edges of every gap
    in the time index and of every per-symbol hole (NaN close), and, when ``full`` is
    given, every row where it acts (any field away from its default).

    Returns
    -------
    np.ndarray[int64]
        Sorted unique row numbers in ``[0, n)``.
    """
    bars = data.bars
    n = bars.n
    if n == 0:
        return np.empty(0, dtype=np.int64)
    close = bars.close_time
    marks: list[np.ndarray] = [np.array([n - 1], dtype=np.int64)]
    for period in (_HOUR_MS, _DAY_MS):
        bucket = (close - 1) // period  # a bar closing at 11:00 belongs to hour 10
        marks.append(np.flatnonzero(bucket[:-1] != bucket[1:]))
    for tf, b in data.frames.items():
        if tf != data.base and b.n:
            marks.append(np.searchsorted(close, b.close_time, side="left"))
    jump = np.flatnonzero(np.diff(bars.time) > bars.tf_ms)
    hole = np.isnan(bars.close)
    edge = np.flatnonzero((hole[1:] != hole[:-1]).any(axis=1)) if n > 1 else jump
    marks += [jump, jump + 1, edge, edge + 1]
    if full is not None:
        marks.append(_active_rows(full))
    rows = np.unique(np.concatenate([np.asarray(a, dtype=np.int64) for a in marks]))
    rows = np.unique(np.concatenate([rows, rows - 1]))
    return rows[(rows >= 0) & (rows < n)]


@dataclass
class _WindowPass:
    rows_checked: int = 0
    leaks: list[LookaheadIssue] = field(default_factory=list)
    warm: list[LookaheadIssue] = field(default_factory=list)
    warm_rows: int = 0
    unverified: int = 0


def _window_pass(
    strategy: Strategy, data: MultiBars, full: Signals, rows: np.ndarray, length: int
) -> _WindowPass:
    """Re-decide each of ``rows`` from its trailing window and classify the differences."""
    bars = data.bars
    m = len(bars.symbols)
    rows = np.asarray(rows, dtype=np.int64)
    windows = TrailingWindows(data, length)
    last = {name: np.empty((rows.size, m)) for name in FIELDS}
    for i, t in enumerate(rows.tolist()):
        sig = strategy.signals(windows.at(t))
        for name in FIELDS:
            arr = _field_array(sig, name)
            last[name][i] = _DEFAULT_FILL.get(name, np.nan) if arr is None else arr[-1]
    differ = np.zeros(rows.size, dtype=np.bool_)
    for name in FIELDS:
        whole = _as_compare(_field_array(full, name), name, (bars.n, m))[rows]
        differ |= _differ(whole, last[name]).any(axis=1)
    out = _WindowPass(rows_checked=int(rows.size))
    close = bars.close_time
    longer: dict[int, TrailingWindows] = {}
    reruns = 0
    for i in np.flatnonzero(differ).tolist():
        t = int(rows[i])
        if len(out.leaks) >= MAX_ISSUES:
            out.unverified += 1
            continue
        # A longer window that ends at t holds no future either: if it agrees with the
        # full run, the row's decision needs only more past (a warm-up matter).
        agreed = False
        size = 2 * length
        while size < t + 1 and not agreed:
            if size not in longer:
                longer[size] = TrailingWindows(data, size)
            sig = strategy.signals(longer[size].at(t))
            agreed = _first_difference(full, sig, t, sig.entries.shape[0] - 1, 1, m) is None
            size *= 2
        if agreed:
            prefix_diff = None
        elif windows.start[t] == 0:
            prefix_diff = _row_difference(full, last, i, t, m)  # the window is the whole prefix
        elif reruns < MAX_RERUNS:
            reruns += 1
            prefix = strategy.signals(data.until(int(close[t])))
            prefix_diff = _first_difference(full, prefix, t, t, 1, m)
        else:
            out.unverified += 1
            continue
        if prefix_diff is not None:
            out.leaks.append(_issue(bars, int(close[t]), prefix_diff))
            continue
        out.warm_rows += 1
        if len(out.warm) < MAX_ISSUES:
            diff = _row_difference(full, last, i, t, m)
            assert diff is not None
            out.warm.append(_issue(bars, int(close[t]), diff))
    return out


def _row_difference(
    full: Signals, last: dict[str, np.ndarray], i: int, t: int, m: int
) -> tuple[int, str, int, float, float] | None:
    """First differing field/column between the full run's row ``t`` and window row ``i``."""
    for name in FIELDS:
        a = _as_compare(_field_array(full, name), name, (full.entries.shape[0], m))[t]
        b = last[name][i]
        d = np.flatnonzero(_differ(a, b))
        if d.size:
            c = int(d[0])
            return t, name, c, float(a[c]), float(b[c])
    return None


# ---------------------------------------------------------------------- the checks


def _check_count(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise UserInputError(f"{name} {value!r} must be a whole number >= {least}, for example 20.")
    return int(value)


def check_lookahead(
    strategy: Strategy,
    data: MultiBars,
    cuts: int = 20,
    seed: int = 0,
    *,
    exhaustive: bool | None = None,
) -> LookaheadReport:
    """Check that no decision of ``strategy`` on ``data`` uses data from after its bar.

    Parameters
    ----------
    strategy : Strategy
    data : MultiBars
        The full history (base timeframe equal to ``strategy.timeframe``).
    cuts : int
        Sampled mode: number of whole-history cuts (fewer when the history is short).
    seed : int
        Sampled mode: seed of the cut choice (``np.random.default_rng``).
    exhaustive : bool, optional
        True: re-decide every row from its trailing window of ``strategy.warmup + 1`` bars.
        False: sampled mode (random cuts plus every :func:`boundary_rows` row). None
        (default): exhaustive when the history holds at most
        :data:`EXHAUSTIVE_MAX_ROWS` base bars.

    Returns
    -------
    LookaheadReport
        ``ok`` when no decision differs from the full run's; otherwise ``issues`` names
        the bar time, symbol, field and the values with full and with cut data.

    Raises
    ------
    UserInputError
        When ``cuts`` < 1, or the history is shorter than the warm-up plus 2 base bars.
    """
    n_cuts = _check_count("--cuts", cuts, 1)
    bars = data.bars
    if bars.n < strategy.warmup + 2:
        raise UserInputError(
            f"the history holds {bars.n} base bars of {bars.timeframe}, too few to cut for "
            f"strategy {strategy.label()!r}: it needs its warm-up of {strategy.warmup} bars "
            "plus 2. Widen the range with --from/--to."
        )
    if exhaustive is None:
        exhaustive = bars.n <= EXHAUSTIVE_MAX_ROWS
    full = strategy.signals(data)
    length = strategy.warmup + 1
    report = LookaheadReport(
        strategy=repr(strategy), mode="exhaustive" if exhaustive else "sampled", window=length
    )
    # Rows before the warm-up place no orders (the engine ignores them), and a window
    # ending there may not yet hold a candle of every timeframe: windows start after it.
    if exhaustive:
        rows = np.arange(strategy.warmup, bars.n, dtype=np.int64)
    else:
        rows = boundary_rows(data, full)
        rows = rows[rows >= strategy.warmup]
        # Whole-history cuts fall after the warm-up; each compares every row up to it.
        chosen = _choose_cuts(bars.n, strategy.warmup, _active_rows(full), n_cuts, int(seed))
        close = bars.close_time
        m = len(bars.symbols)
        for row in chosen.tolist():
            at = int(close[row])
            cut_sig = strategy.signals(data.until(at))
            report.cuts.append(at)
            diff = _first_difference(full, cut_sig, 0, 0, row + 1, m)
            if diff is not None:
                report.issues.append(_issue(bars, at, diff))
    found = _window_pass(strategy, data, full, rows, length)
    report.rows_checked = found.rows_checked
    report.issues.extend(found.leaks)
    report.warmup_issues = found.warm
    report.warmup_rows = found.warm_rows
    report.unverified = found.unverified
    report.issues.sort(key=lambda i: (i.bar_time, i.cut_time))
    return report


@dataclass
class WarmupReport:
    """Outcome of :func:`check_warmup`."""

    strategy: str
    warmup: int
    starts: list[int] = field(default_factory=list)
    """Open times of the later first bars that were tried."""
    issues: list[LookaheadIssue] = field(default_factory=list)
    """First difference per failing start, then the first rows (at most
    :data:`MAX_ISSUES`) whose trailing window of ``warmup + 1`` bars decides differently from
    the whole history; ``cut_time`` holds the open time of that later history's first bar."""
    failed_starts: int = 0
    rows_checked: int = 0
    """Rows re-decided from their trailing window of ``warmup + 1`` bars."""
    window_rows: int = 0
    """How many of them decide differently from the whole history."""

    @property
    def ok(self) -> bool:
        return not self.issues

    def summary(self) -> str:
        scope = f"{len(self.starts)} later starts and {self.rows_checked} trailing windows"
        if self.ok:
            return (
                f"warm-up of {self.warmup} bars is enough: decisions match the full history "
                f"in {scope}"
            )
        first = self.issues[0]
        return (
            f"warm-up of {self.warmup} bars is too short for {self.strategy}: "
            f"{self.failed_starts} of {len(self.starts)} later starts and {self.window_rows} "
            f"of {self.rows_checked} trailing windows decide differently after it; first: bar "
            f"{format_time(first.bar_time)} {first.symbol} {first.field}: "
            f"{_fmt(first.full_value)} with full history, {_fmt(first.cut_value)} with history "
            f"from {format_time(first.cut_time)}"
        )


def check_warmup(
    strategy: Strategy,
    data: MultiBars,
    starts: int = 5,
    seed: int = 0,
    *,
    windows: bool = True,
    lookahead: LookaheadReport | None = None,
) -> WarmupReport:
    """Check that ``strategy.warmup`` bars of history are enough.

    Two ways. The signals are recomputed on histories that begin later (at ``starts``
    random base bars); once ``strategy.warmup`` bars have passed from such a start,
    every decision must equal the full-history one. And (``windows=True``) rows after
    the warm-up are re-decided from the trailing window of ``strategy.warmup + 1`` bars
    ending at them, as a live runner decides: every row when the history holds at most
    :data:`EXHAUSTIVE_MAX_ROWS` bars, else every :func:`boundary_rows` row. A warm-up
    declared one bar short shows up at the first row where the full run acts.
    Strategies built on recursive indicators (EMA, Wilder RSI/ATR) match up to the
    seed's remaining weight, so a rare difference exactly at a threshold can show up;
    a systematic one means the declared :meth:`Strategy.lookback` is too short.

    Parameters
    ----------
    lookahead : LookaheadReport, optional
        A :func:`check_lookahead` report of the same strategy and data: its window
        results are reused instead of re-deciding the rows again.

    Returns
    -------
    WarmupReport
    """
    n_starts = _check_count("starts", starts, 1)
    bars = data.bars
    w = strategy.warmup
    hi = bars.n - w - 1  # leave at least one decision after the warm-up
    if hi < 1:
        raise UserInputError(
            f"the history holds {bars.n} base bars, too few to test a warm-up of {w} bars; "
            "widen the range."
        )
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(np.arange(1, hi + 1), size=min(n_starts, hi), replace=False))
    full = strategy.signals(data)
    report = WarmupReport(strategy=repr(strategy), warmup=w)
    m = len(bars.symbols)
    for s in rows.tolist():
        # the history a runner started at bar s would hold: the last n - s bars
        later = strategy.signals(history_from(data, s))
        report.starts.append(int(bars.time[s]))
        diff = _first_difference(full, later, s + w, w, bars.n - s - w, m)
        if diff is not None:
            report.issues.append(_issue(bars, int(bars.time[s]), diff))
    report.failed_starts = len(report.issues)
    if lookahead is not None:
        warm, report.window_rows = lookahead.warmup_issues, lookahead.warmup_rows
        report.rows_checked = lookahead.rows_checked
    elif windows:
        length = w + 1
        if bars.n <= EXHAUSTIVE_MAX_ROWS:
            check = np.arange(w, bars.n, dtype=np.int64)
        else:
            check = boundary_rows(data, full)
            check = check[check >= w]
        found = _window_pass(strategy, data, full, check, length)
        warm, report.window_rows = found.warm, found.warm_rows
        report.rows_checked = found.rows_checked
    else:
        warm = []
    starts = window_starts(bars.close, w + 1)
    for issue in warm:
        row = int(np.searchsorted(bars.time, issue.bar_time))
        first = int(bars.time[starts[row]])
        report.issues.append(
            LookaheadIssue(
                first, issue.bar_time, issue.symbol, issue.field, issue.full_value, issue.cut_value
            )
        )
    return report
