"""Input checks of ``simulate``: candles and signals are validated, never silently cast.

One numba pass (:func:`check_inputs_nb`) walks the bars row by row and returns the first
bad ``(row, column, code)``; Python only turns that into a message naming the field, the
bar (open time and row), the symbol and the value, and converts the signals to the
kernel's dtypes once they are known to be exact.

Rules
-----
Candles
    A candle is all NaN (no candle at that bar) or has finite open, high, low and close,
    all > 0, with ``low <= min(open, close)`` and ``max(open, close) <= high``.
``entries``
    +1, -1 or 0 everywhere (bool, any integer or float dtype holding only those values).
``exits``
    True/False everywhere (bool, or numbers 0/1); NaN and object arrays are refused.
On entry rows only (elsewhere the fields are ignored):
``order_type``
    MARKET (0), LIMIT (1) or STOP (2); NaN or fractions are refused.
``price``
    A finite price > 0 on LIMIT/STOP entries.
``size``
    Finite > 0, or NaN for the configured default.
``sl``, ``trail``
    In (0, 1] (a fraction of the entry price), or NaN for none.
``tp``
    Finite > 0, at most 1 on short entries (a short's target is ``entry * (1 - tp)``), or NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from engine import enums
from gogo2.errors import DataError, UserInputError
from gogo2.timeframes import format_time

if TYPE_CHECKING:
    from datasets.bars import Bars
    from engine.signals import Signals

__all__ = ["check_bars", "check_inputs_nb", "prepare_inputs", "prepare_signals"]

# codes returned by check_inputs_nb
OK = 0
BAR_PARTIAL = 1
BAR_NOT_FINITE = 2
BAR_NOT_POSITIVE = 3
BAR_HIGH_BELOW_LOW = 4
BAR_HIGH_BELOW_BODY = 5
BAR_LOW_ABOVE_BODY = 6
SIG_ENTRIES = 10
SIG_EXITS = 11
SIG_ORDER_TYPE = 12
SIG_PRICE = 13
SIG_SIZE = 14
SIG_SL = 15
SIG_TP = 16
SIG_TRAIL = 17

# presence flags of the optional arrays (index into the flags vector)
K_BARS = 0
K_EXITS = 1
K_ORDER_TYPE = 2
K_PRICE = 3
K_SIZE = 4
K_SL = 5
K_TP = 6
K_TRAIL = 7
N_KFLAGS = 8

_OPTIONAL = ("order_type", "price", "size", "sl", "tp", "trail")
_FLOAT_FIELDS = ("price", "size", "sl", "tp", "trail")


_BLOCK = 4096  # cells screened branch-free before a block is rescanned cell by cell


@njit(cache=True, nogil=True)
def _bar_code(o, h, lo, c):
    """BAR_* code of one candle; OK when it is valid or all NaN (absent)."""
    n_nan = (o != o) + (h != h) + (lo != lo) + (c != c)
    if n_nan == 4:
        return OK
    if n_nan:
        return BAR_PARTIAL
    if abs(o) == np.inf or abs(h) == np.inf or abs(lo) == np.inf or abs(c) == np.inf:
        return BAR_NOT_FINITE
    if o <= 0.0 or h <= 0.0 or lo <= 0.0 or c <= 0.0:
        return BAR_NOT_POSITIVE
    if h < lo:
        return BAR_HIGH_BELOW_LOW
    if h < o or h < c:
        return BAR_HIGH_BELOW_BODY
    if lo > o or lo > c:
        return BAR_LOW_ABOVE_BODY
    return OK


@njit(cache=True, nogil=True)
def _cell_code(i, o_, h_, l_, c_, e_, x_, k_, p_, s_, sl_, tp_, tr_, flags):
    """Code of flat cell ``i``: candle rules first, then the signal fields in Signals order."""
    if flags[K_BARS]:
        code = _bar_code(o_[i], h_[i], l_[i], c_[i])
        if code:
            return code
    e = e_[i]
    if e != 0 and e != 1 and e != -1:  # NaN fails too
        return SIG_ENTRIES
    if flags[K_EXITS]:
        x = x_[i]
        if x != 0 and x != 1:
            return SIG_EXITS
    if e == 0:
        return OK
    resting = False
    if flags[K_ORDER_TYPE]:
        k = k_[i]
        if k != 0 and k != 1 and k != 2:
            return SIG_ORDER_TYPE
        resting = k != 0
    if resting:
        if not flags[K_PRICE]:
            return SIG_PRICE
        p = p_[i]
        if not (p > 0.0 and p < np.inf):
            return SIG_PRICE
    if flags[K_SIZE]:
        v = s_[i]
        if v == v and not (v > 0.0 and v < np.inf):
            return SIG_SIZE
    if flags[K_SL]:
        v = sl_[i]
        if v == v and not (v > 0.0 and v <= 1.0):
            return SIG_SL
    if flags[K_TP]:
        v = tp_[i]
        if v == v and not (v > 0.0 and v < np.inf and (e > 0 or v <= 1.0)):
            return SIG_TP
    if flags[K_TRAIL]:
        v = tr_[i]
        if v == v and not (v > 0.0 and v <= 1.0):
            return SIG_TRAIL
    return OK


@njit(cache=True, nogil=True)
def check_inputs_nb(
    open_, high, low, close, entries, exits, order_type, price, size, sl, tp, trail, flags
):
    """First bad ``(row, col, code)`` of candles and signals, row-major; ``(-1, -1, 0)`` if none.

    Arrays are C-contiguous (n, m). ``flags[K_*]`` says which optional arrays are present
    (absent ones are (1, 1) placeholders, never read). ``entries`` is int8 or float64,
    ``exits`` bool or float64, ``order_type`` int8 or float64, the rest float64.

    One pass in blocks of ``_BLOCK`` cells: a branch-free screen counts the bad cells of a
    block (candles, entries and exits vectorized; the entry details read only at the block's
    entry cells), and only a block with a bad cell is rescanned cell by cell to find the
    first one and its code.
    """
    n, m = entries.shape
    total = n * m
    e_ = entries.reshape(total)
    o_ = open_.reshape(open_.size)
    h_ = high.reshape(high.size)
    l_ = low.reshape(low.size)
    c_ = close.reshape(close.size)
    x_ = exits.reshape(exits.size)
    k_ = order_type.reshape(order_type.size)
    p_ = price.reshape(price.size)
    s_ = size.reshape(size.size)
    sl_ = sl.reshape(sl.size)
    tp_ = tp.reshape(tp.size)
    tr_ = trail.reshape(trail.size)
    inf = np.inf
    act = np.empty(_BLOCK, dtype=np.int64)
    has_details = (
        flags[K_ORDER_TYPE] or flags[K_SIZE] or flags[K_SL] or flags[K_TP] or flags[K_TRAIL]
    )
    for start in range(0, total, _BLOCK):
        stop = min(start + _BLOCK, total)
        # block views with a local range: the loops below then compile to SIMD code
        ee = e_[start:stop]
        nb_ = ee.size
        bad = 0
        if flags[K_BARS]:
            oo = o_[start:stop]
            hh = h_[start:stop]
            ll = l_[start:stop]
            cc = c_[start:stop]
            for i in range(nb_):
                o = oo[i]
                h = hh[i]
                lo = ll[i]
                c = cc[i]
                # 0 < low <= open, close <= high < inf implies every candle rule
                ok = (lo > 0.0) & (h < inf) & (lo <= o) & (lo <= c) & (o <= h) & (c <= h)
                absent = (o != o) & (h != h) & (lo != lo) & (c != c)
                bad += not (ok | absent)
        n_act = 0
        for i in range(nb_):
            e = ee[i]
            bad += (e != 0) & (e != 1) & (e != -1)
            n_act += e != 0
        if n_act and has_details:  # entry cells: the only ones whose details are read
            n_act = 0
            for i in range(nb_):
                if ee[i] != 0:
                    act[n_act] = i
                    n_act += 1
        else:
            n_act = 0
        if flags[K_EXITS]:
            xx = x_[start:stop]
            for i in range(nb_):
                x = xx[i]
                bad += (x != 0) & (x != 1)
        for a in range(n_act):
            i = start + act[a]
            e = e_[i]
            k = k_[i] if flags[K_ORDER_TYPE] else 0
            if flags[K_ORDER_TYPE]:
                bad += (k != 0) & (k != 1) & (k != 2)
                if k != 0:
                    if flags[K_PRICE]:
                        p = p_[i]
                        bad += not ((p > 0.0) & (p < inf))
                    else:
                        bad += 1
            if flags[K_SIZE]:
                v = s_[i]
                bad += (v == v) & ~((v > 0.0) & (v < inf))
            if flags[K_SL]:
                v = sl_[i]
                bad += (v == v) & ~((v > 0.0) & (v <= 1.0))
            if flags[K_TP]:
                v = tp_[i]
                bad += (v == v) & ~((v > 0.0) & (v < inf) & ((e > 0) | (v <= 1.0)))
            if flags[K_TRAIL]:
                v = tr_[i]
                bad += (v == v) & ~((v > 0.0) & (v <= 1.0))
        if bad:
            for i in range(start, stop):
                code = _cell_code(i, o_, h_, l_, c_, e_, x_, k_, p_, s_, sl_, tp_, tr_, flags)
                if code:
                    return i // m, i % m, code
    return -1, -1, OK


_PH_F = np.full((1, 1), np.nan)
_PH_I = np.zeros((1, 1), dtype=np.int8)
_PH_B = np.zeros((1, 1), dtype=np.bool_)
_PH_DUMMY = np.full((1, 1), 1.0)

_BAR_RULES = {
    BAR_PARTIAL: (
        "is partly NaN; a candle is either all NaN (no candle at that bar) or has all of "
        "open, high, low and close"
    ),
    BAR_NOT_FINITE: "is not finite; prices must be finite numbers > 0",
    BAR_NOT_POSITIVE: "is not > 0; prices must be finite numbers > 0",
    BAR_HIGH_BELOW_LOW: "has its high below its low",
    BAR_HIGH_BELOW_BODY: "has its high below its open or close",
    BAR_LOW_ABOVE_BODY: "has its low above its open or close",
}

_SIG_RULES = {
    SIG_ENTRIES: ("entries", "allowed values are +1 (long), -1 (short) and 0 (nothing)"),
    SIG_EXITS: (
        "exits",
        "exits must be True/False (or 1/0); a NaN, e.g. the first row left by pandas "
        ".shift(), is not an exit: use .shift(fill_value=False)",
    ),
    SIG_ORDER_TYPE: (
        "order_type",
        "an entry's order type must be MARKET (0), LIMIT (1) or STOP (2); NaN is not MARKET",
    ),
    SIG_PRICE: ("price", "a LIMIT/STOP entry needs a finite limit/stop price > 0"),
    SIG_SIZE: ("size", "an entry's size must be a finite number > 0, or NaN for the default"),
    SIG_SL: ("sl", "a stop-loss distance is a fraction of the entry price in (0, 1], or NaN"),
    SIG_TP: (
        "tp",
        "a take-profit distance is a finite fraction of the entry price > 0 (at most 1 on "
        "a short entry), or NaN",
    ),
    SIG_TRAIL: ("trail", "a trailing-stop distance is a fraction in (0, 1], or NaN"),
}


def _where(bars: Bars, t: int, j: int) -> str:
    if isinstance(bars, _Index):
        return f"at row {t}, column {j}"
    return f"at {format_time(int(bars.time[t]))} UTC (bar open time, row {t}) for {bars.symbols[j]}"


def _bar_error(bars: Bars, ohlc: list[np.ndarray], t: int, j: int, code: int) -> DataError:
    vals = ", ".join(
        f"{k}={_show(a[t, j])}" for k, a in zip(("open", "high", "low", "close"), ohlc, strict=True)
    )
    return DataError(
        f"the candle {_where(bars, t, j)} {_BAR_RULES[code]} ({vals}). "
        "Repair or re-import the data, or set the whole candle to NaN to mark it missing."
    )


def _sig_error(bars: Bars, raw: dict[str, np.ndarray], t: int, j: int, code: int) -> UserInputError:
    name, rule = _SIG_RULES[code]
    if code == SIG_PRICE and name not in raw:
        return UserInputError(
            f"signals.order_type asks for a LIMIT/STOP entry {_where(bars, t, j)} but "
            "signals.price is None; give the limit/stop price of each such entry."
        )
    value = raw[name][t, j]
    extra = ""
    if code == SIG_PRICE and "order_type" in raw:
        extra = f" (order_type {_show(raw['order_type'][t, j])})"
    if code == SIG_TP and raw["entries"][t, j] < 0:
        extra = " (short entry)"
    return UserInputError(f"signals.{name} is {_show(value)} {_where(bars, t, j)}{extra}; {rule}.")


def _show(v: object) -> str:
    if isinstance(v, np.generic):
        v = v.item()
    return repr(v)


def _object_error(bars: Bars, name: str, a: np.ndarray, rule: str) -> UserInputError:
    """An object/text array: name its first value that is not a plain bool or number."""
    if name == "exits":

        def ok(v: object) -> bool:
            return isinstance(v, bool | np.bool_)
    else:

        def ok(v: object) -> bool:
            return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
                v, bool | np.bool_
            )

    flat = a.reshape(-1)
    bad = next((i for i, v in enumerate(flat) if not ok(v)), None)
    fix = (
        f" Give a {'bool' if name == 'exits' else 'numeric'} numpy array "
        f"(e.g. df.to_numpy(dtype={'bool' if name == 'exits' else 'float'}) after filling NaN)."
    )
    if bad is None:
        return UserInputError(f"signals.{name} has dtype {a.dtype}; {rule}.{fix}")
    t, j = divmod(bad, a.shape[1])
    return UserInputError(
        f"signals.{name} is {_show(flat[bad])} {_where(bars, t, j)} (dtype {a.dtype}); {rule}.{fix}"
    )


def _shaped(name: str, value: object, n: int, m: int) -> np.ndarray:
    a = np.asarray(value)
    if a.shape != (n, m):
        raise UserInputError(
            f"signals.{name} has shape {a.shape}; expected ({n}, {m}) to match the bars "
            "(rows = base-timeframe bars, columns = symbols)."
        )
    return a


def _for_check(bars: Bars, name: str, a: np.ndarray, small: type) -> np.ndarray:
    """``a`` as the kernel's check dtype: ``small`` if already so (or bool), else float64."""
    kind = a.dtype.kind
    if a.dtype == small:
        return np.ascontiguousarray(a)
    if kind == "b":
        a = np.ascontiguousarray(a)
        return a.view(np.int8) if small is np.int8 else a
    if kind in "iuf":
        return np.ascontiguousarray(a, dtype=np.float64)
    rule = _SIG_RULES[{"entries": SIG_ENTRIES, "exits": SIG_EXITS}.get(name, SIG_ORDER_TYPE)][1]
    if name in _FLOAT_FIELDS:
        rule = f"{name} must be numbers (NaN where unused)"
    raise _object_error(bars, name, a, rule)


def check_bars(bars: Bars) -> list[np.ndarray]:
    """The four price arrays as C-contiguous float64 (n, m); raises on a shape mismatch."""
    n, m = len(bars.time), len(bars.symbols)
    ohlc = []
    for name in ("open", "high", "low", "close"):
        a = np.asarray(getattr(bars, name))
        if a.shape != (n, m):
            raise DataError(
                f"bars.{name} has shape {a.shape}; expected ({n}, {m}) (bars x symbols)."
            )
        if a.dtype.kind not in "iuf":
            raise DataError(
                f"bars.{name} has dtype {a.dtype}; give float prices (NaN = no candle)."
            )
        ohlc.append(np.ascontiguousarray(a, dtype=np.float64))
    return ohlc


def prepare_inputs(
    bars: Bars, signals: Signals, *, with_bars: bool = True
) -> tuple[list[np.ndarray], dict[str, np.ndarray | None]]:
    """Check candles (when ``with_bars``) and signals in one pass; return them in kernel dtypes.

    Returns
    -------
    ohlc : list of four float64 (n, m) arrays (empty when ``with_bars`` is False)
    signals : dict of ``entries`` int8, ``exits`` bool, and ``order_type`` int8 /
        ``price``, ``size``, ``sl``, ``tp``, ``trail`` float64 (None where not given)

    Raises
    ------
    DataError
        A candle breaks the rules (module docstring), or the price arrays have the wrong shape.
    UserInputError
        A signal field has the wrong shape, type or value.
    """
    from engine.signals import Signals

    if not isinstance(signals, Signals):
        raise UserInputError(
            f"signals must be an engine.signals.Signals, not {type(signals).__name__}."
        )
    n, m = len(bars.time), len(bars.symbols)
    ohlc = check_bars(bars) if with_bars else []
    if signals.entries is None:
        raise UserInputError("signals.entries is required.")
    raw: dict[str, np.ndarray] = {"entries": _shaped("entries", signals.entries, n, m)}
    if signals.exits is not None:
        raw["exits"] = _shaped("exits", signals.exits, n, m)
    for name in _OPTIONAL:
        v = getattr(signals, name)
        if v is not None:
            raw[name] = _shaped(name, v, n, m)

    chk: dict[str, np.ndarray] = {"entries": _for_check(bars, "entries", raw["entries"], np.int8)}
    if "exits" in raw:
        chk["exits"] = _for_check(bars, "exits", raw["exits"], np.bool_)
    if "order_type" in raw:
        chk["order_type"] = _for_check(bars, "order_type", raw["order_type"], np.int8)
    for name in _FLOAT_FIELDS:
        if name in raw:
            a = raw[name]
            if a.dtype.kind not in "iuf":
                raise _object_error(bars, name, a, f"{name} must be numbers (NaN where unused)")
            chk[name] = np.ascontiguousarray(a, dtype=np.float64)

    flags = np.zeros(N_KFLAGS, dtype=np.int8)
    flags[K_BARS] = 1 if with_bars else 0
    for k, name in (
        (K_EXITS, "exits"),
        (K_ORDER_TYPE, "order_type"),
        (K_PRICE, "price"),
        (K_SIZE, "size"),
        (K_SL, "sl"),
        (K_TP, "tp"),
        (K_TRAIL, "trail"),
    ):
        flags[k] = 1 if name in chk else 0
    prices = ohlc if with_bars else [_PH_DUMMY] * 4
    t, j, code = check_inputs_nb(
        *prices,
        chk["entries"],
        chk.get("exits", _PH_B),
        chk.get("order_type", _PH_I),
        *(chk.get(name, _PH_F) for name in _FLOAT_FIELDS),
        flags,
    )
    if code:
        t, j = int(t), int(j)
        if code < SIG_ENTRIES:
            raise _bar_error(bars, ohlc, t, j, int(code))
        raise _sig_error(bars, raw, t, j, int(code))

    out: dict[str, np.ndarray | None] = {
        "entries": _exact(chk["entries"], np.int8),
        "exits": (
            _exact(chk["exits"], np.bool_) if "exits" in chk else np.zeros((n, m), dtype=np.bool_)
        ),
        "order_type": _order_types(chk["order_type"], chk["entries"])
        if "order_type" in chk
        else None,
    }
    for name in _FLOAT_FIELDS:
        out[name] = chk.get(name)
    return ohlc, out


def _order_types(ot: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """int8 order types; off entry rows (never read, possibly NaN) they become MARKET."""
    if ot.dtype == np.int8:
        return ot
    return np.ascontiguousarray(np.where(entries != 0, ot, 0.0).astype(np.int8))


def _exact(a: np.ndarray, dtype: type) -> np.ndarray:
    """``a`` in ``dtype``; the check has shown every value is representable exactly."""
    if a.dtype == dtype:
        return a
    return np.ascontiguousarray(a.astype(dtype))


def prepare_signals(signals: Signals, n: int, m: int, bars: Bars | None = None) -> dict:
    """Check the signals alone and lay them out for ``nb.simulate_nb`` (placeholders, flags).

    ``bars`` supplies times and symbol names for messages; without it rows are numbered.
    """
    if bars is None:
        bars = _Index(n, m)  # type: ignore[assignment]
    _, sig = prepare_inputs(bars, signals, with_bars=False)  # type: ignore[arg-type]
    return kernel_signals(sig)


def kernel_signals(sig: dict[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    """The checked signals with placeholders for absent fields and the kernel's flags vector."""
    flags = np.zeros(enums.N_FLAGS, dtype=np.int8)
    out: dict[str, np.ndarray] = {"entries": sig["entries"], "exits": sig["exits"], "flags": flags}  # type: ignore[dict-item]
    for flag, name in (
        (enums.F_ORDER_TYPE, "order_type"),
        (enums.F_PRICE, "price"),
        (enums.F_SIZE, "size"),
        (enums.F_SL, "sl"),
        (enums.F_TP, "tp"),
        (enums.F_TRAIL, "trail"),
    ):
        a = sig[name]
        if a is None:
            out[name] = _PH_I if name == "order_type" else _PH_F
        else:
            out[name] = a
            flags[flag] = 1
    return out


class _Index:
    """Stand-in for Bars in messages when only the shape is known (row numbers, column numbers)."""

    def __init__(self, n: int, m: int) -> None:
        self.time = np.zeros(n, dtype=np.int64)
        self.symbols = tuple(f"column {j}" for j in range(m))
