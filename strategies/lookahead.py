"""Look-ahead bias detector: past decisions must not change when the future is cut off.

The strategy runs once on the full history, then again on histories cut at chosen
instants with :meth:`MultiBars.until` (every timeframe cut at the same time, so a
coarse candle still open at the cut is absent). Every signal field at every row up
to the cut must be identical in both runs; the first difference found for a cut is
reported with the bar time, the symbol, the field and both values.

Where to cut matters: a strategy that peeks one bar ahead differs from the full run
only at the last row of a cut history, and only where the peeked value changes the
decision. So besides random rows, the cuts target rows where the full run *acts*
(any non-zero entry, exit, or price/stop field) and the rows just before them.

:func:`check_warmup` is the mirror image: it removes the *start* of the history and
checks that, once ``strategy.warmup`` bars have passed, decisions equal the full run's,
which is what lets live trading keep only a trailing window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from datasets.bars import MultiBars
from engine.signals import Signals
from gogo2.errors import Gogo2Error, UserInputError
from gogo2.timeframes import format_time
from strategies.base import Strategy, trailing_window

__all__ = [
    "FIELDS",
    "LookaheadError",
    "LookaheadIssue",
    "LookaheadReport",
    "WarmupReport",
    "check_lookahead",
    "check_warmup",
]

FIELDS = ("entries", "exits", "order_type", "price", "size", "sl", "tp", "trail")
_DEFAULT_FILL = {"entries": 0, "exits": False, "order_type": 0}


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
    cuts: list[int] = field(default_factory=list)
    """Close times of the cut points that were checked."""
    issues: list[LookaheadIssue] = field(default_factory=list)
    """First difference per failing cut, earliest bar first."""

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def n_cuts(self) -> int:
        return len(self.cuts)

    def __iter__(self) -> Iterator[LookaheadIssue]:
        return iter(self.issues)

    def summary(self) -> str:
        if self.ok:
            return f"no look-ahead found in {self.n_cuts} cuts"
        first = self.issues[0]
        return (
            f"look-ahead found in {self.strategy}: {len(self.issues)} of {self.n_cuts} cuts "
            f"changed past decisions; first: {first.describe()}"
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
        differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        if not differ.any():
            continue
        r, c = np.argwhere(differ)[0]
        if best is None or r + full_start < best[0]:
            best = (int(r) + full_start, name, int(c), float(a[r, c]), float(b[r, c]))
    return best


def check_lookahead(
    strategy: Strategy, data: MultiBars, cuts: int = 20, seed: int = 0
) -> LookaheadReport:
    """Recompute ``strategy``'s signals on histories cut at ``cuts`` points.

    Parameters
    ----------
    strategy : Strategy
    data : MultiBars
        The full history (base timeframe equal to ``strategy.timeframe``).
    cuts : int
        Number of cut points (fewer when the history is short).
    seed : int
        Seed of the cut choice (``np.random.default_rng``).

    Returns
    -------
    LookaheadReport
        ``ok`` when no decision at or before any cut differs from the full run;
        otherwise ``issues`` names, per failing cut, the earliest differing bar time,
        symbol, field and the values with full and with cut data.

    Raises
    ------
    UserInputError
        When ``cuts`` < 1, or the history is shorter than the warm-up plus 2 base bars.
    """
    if isinstance(cuts, bool) or not isinstance(cuts, (int, np.integer)) or cuts < 1:
        raise UserInputError(f"--cuts {cuts!r} must be a whole number >= 1, for example 20.")
    bars = data.bars
    if bars.n < strategy.warmup + 2:
        raise UserInputError(
            f"the history holds {bars.n} base bars of {bars.timeframe}, too few to cut for "
            f"strategy {strategy.label()!r}: it needs its warm-up of {strategy.warmup} bars "
            "plus 2. Widen the range with --from/--to."
        )
    full = strategy.signals(data)
    # Cuts fall after the warm-up; decisions during it are still compared, since every
    # cut compares all rows up to it.
    rows = _choose_cuts(bars.n, strategy.warmup, _active_rows(full), int(cuts), int(seed))
    if rows.size == 0:  # pragma: no cover - excluded by the length check above
        raise UserInputError(
            f"the history holds {bars.n} base bars of {bars.timeframe}, too few to cut for "
            f"strategy {strategy.label()!r} (warm-up {strategy.warmup} bars). "
            "Widen the range with --from/--to."
        )
    report = LookaheadReport(strategy=repr(strategy))
    close_time = bars.close_time
    for row in rows:
        at = int(close_time[row])
        cut_data = data.until(at)
        cut_sig = strategy.signals(cut_data)
        report.cuts.append(at)
        diff = _first_difference(full, cut_sig, 0, 0, int(row) + 1, len(bars.symbols))
        if diff is not None:
            r, name, col, a, b = diff
            report.issues.append(
                LookaheadIssue(
                    cut_time=at,
                    bar_time=int(bars.time[r]),
                    symbol=bars.symbols[col],
                    field=name,
                    full_value=a,
                    cut_value=b,
                )
            )
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
    """First difference per failing start; ``cut_time`` holds that start's open time."""

    @property
    def ok(self) -> bool:
        return not self.issues

    def summary(self) -> str:
        if self.ok:
            return (
                f"warm-up of {self.warmup} bars is enough: decisions match the full history "
                f"in {len(self.starts)} later starts"
            )
        first = self.issues[0]
        return (
            f"warm-up of {self.warmup} bars is too short for {self.strategy}: "
            f"{len(self.issues)} of {len(self.starts)} later starts decide differently after "
            f"it; first: bar {format_time(first.bar_time)} {first.symbol} {first.field}: "
            f"{_fmt(first.full_value)} with full history, {_fmt(first.cut_value)} with history "
            f"from {format_time(first.cut_time)}"
        )


def check_warmup(
    strategy: Strategy, data: MultiBars, starts: int = 5, seed: int = 0
) -> WarmupReport:
    """Check that ``strategy.warmup`` bars of history are enough.

    The signals are recomputed on histories that begin later (at ``starts`` random base
    bars); once ``strategy.warmup`` bars have passed from such a start, every decision
    must equal the full-history one. This is what lets a live runner keep only a
    trailing window, and a backtest start at ``--from`` after loading the warm-up.
    Strategies built on recursive indicators (EMA, Wilder RSI/ATR) match up to the
    seed's remaining weight, so a rare difference exactly at a threshold can show up;
    a systematic one means the declared :meth:`Strategy.lookback` is too short.

    Returns
    -------
    WarmupReport
    """
    if isinstance(starts, bool) or not isinstance(starts, (int, np.integer)) or starts < 1:
        raise UserInputError(f"starts {starts!r} must be a whole number >= 1.")
    bars = data.bars
    w = strategy.warmup
    hi = bars.n - w - 1  # leave at least one decision after the warm-up
    if hi < 1:
        raise UserInputError(
            f"the history holds {bars.n} base bars, too few to test a warm-up of {w} bars; "
            "widen the range."
        )
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(np.arange(1, hi + 1), size=min(int(starts), hi), replace=False))
    full = strategy.signals(data)
    report = WarmupReport(strategy=repr(strategy), warmup=w)
    m = len(bars.symbols)
    for s in rows:
        s = int(s)
        # the history a runner started at bar s would hold: the last n - s bars
        later = strategy.signals(trailing_window(data, bars.n - s))
        report.starts.append(int(bars.time[s]))
        diff = _first_difference(full, later, s + w, w, bars.n - s - w, m)
        if diff is not None:
            r, name, col, a, b = diff
            report.issues.append(
                LookaheadIssue(
                    cut_time=int(bars.time[s]),
                    bar_time=int(bars.time[r]),
                    symbol=bars.symbols[col],
                    field=name,
                    full_value=a,
                    cut_value=b,
                )
            )
    return report
