"""Numba kernels of the event engine.

Conventions: every 2-D array is ``(n_bars, n_symbols)``, C-contiguous; prices are float64
with NaN where a symbol has no candle; times are int64 ms UTC. Kernels take plain arrays
and scalars, write into caller-allocated record arrays (``engine.enums.fill_dt``,
``trade_dt``) and per-bar arrays, and never create Python objects per bar.

The rules the kernel implements are written in ``engine.backtest``'s module docstring;
``engine.reference`` implements the same rules as a plain Python loop.

Speed: most bars of most runs are *calm* (no pending order, no open position with an
attached exit); ``simulate_nb`` runs stretches of calm bars through a short marking loop
(with the state of a lone symbol in registers) and sends only bars with a signal, with
something pending or at risk through the full event path. Calm positions with an attached
exit go through a cheap range test instead (the ``quiet`` test of the event loop).

Resumable: the state of a run is explicit (``init_state_nb`` makes it: per-symbol float
and int state arrays, the cash in ``gs``, the counters, the halted bar), and ``run_nb``
advances it over any range of bars. ``simulate_nb`` is ``init_state_nb`` + ``run_nb`` over
all bars + the end-of-data close; the paper broker runs the same ``run_nb`` one bar at a
time (``step_bar_nb``) and registers the strategy's decisions after it
(``step_intents_nb``), so backtest and paper share every line of the fill rules. The bar
loop lives in one function on purpose: numba does not inline calls across functions that
take many arrays, and a call per bar costs more than the bar's work.

Kernels are compiled with ``cache=True`` for one fixed signature (the wrapper always passes
the same dtypes and layouts) and ``nogil=True``, so independent runs may share threads.
The constants of ``engine.enums`` are frozen into the compiled code; numba's cache watches
only this file, so after changing ``enums.py`` delete ``engine/__pycache__/nb.*.nb[ic]``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.enums import (
    C_EXPIRED,
    C_EXPOSED_BARS,
    C_FILLS,
    C_HALTED_BAR,
    C_REJECTED,
    C_TRADES,
    EXIT_END,
    EXIT_REVERSE,
    EXIT_SIGNAL,
    EXIT_STOP_LOSS,
    EXIT_TAKE_PROFIT,
    EXIT_TRAILING_STOP,
    F_ORDER_TYPE,
    F_PRICE,
    F_SIZE,
    F_SL,
    F_TP,
    F_TRAIL,
    KIND_END,
    KIND_EXIT,
    KIND_MARKET,
    KIND_STOP_LOSS,
    KIND_TAKE_PROFIT,
    KIND_TRAILING_STOP,
    LIMIT,
    MARKET,
    N_FLAGS,
    P_ALLOW_SHORT,
    P_CASH,
    P_CLOSE_AT_END,
    P_FEE_MAKER,
    P_FEE_TAKER,
    P_LEVERAGE,
    P_LOT_SIZE,
    P_MIN_NOTIONAL,
    P_ORDER_TTL,
    P_SIZE,
    P_SIZE_TYPE,
    P_SLIPPAGE,
    P_TF_MS,
    P_WARMUP,
    SIZE_CASH,
    SIZE_PERCENT,
)

# columns of the per-symbol float state
S_POS = 0  # signed quantity held
S_ENTRY_PX = 1  # entry fill price (slippage included)
S_ENTRY_FEE = 2
S_SL = 3  # fractions attached to the open position (NaN = none)
S_TP = 4
S_TRAIL = 5
S_PEAK = 6  # best price since entry: highest for a long, lowest for a short
S_MARK = 7  # value per unit: last valid close, or the fill price of a position changed this bar
S_P_PRICE = 8  # pending entry order
S_P_SIZE = 9
S_P_SL = 10
S_P_TP = 11
S_P_TRAIL = 12
S_STOP = 13  # cached protective stop level of the open position (+-inf when none)
S_TARGET = 14  # cached take-profit level (+-inf when none)
S_BASE = 15  # entry reference price before slippage: the base of the stop/target distances
S_LOT = 16  # quantity step of the symbol (params[P_LOT_SIZE] unless a market says otherwise)
S_MIN_COST = 17  # minimum notional of the symbol (params[P_MIN_NOTIONAL] unless a market says)
N_FSTATE = 18

# columns of the per-symbol int state
I_ENTRY_BAR = 0
I_ENTRY_TIME = 1
I_P_DIR = 2  # pending entry direction, 0 = none
I_P_TYPE = 3
I_P_AGE = 4  # bars a pending limit/stop order has been active without filling
I_P_EXIT = 5  # 1 = a market exit is pending
I_FRESH_BAR = 6  # bar at which the position was opened inside the bar (not at the open), else -1
I_BARE = 7  # 1 = the open position has no stop-loss, take-profit or trailing stop
I_P_DUE = 8  # open time a pending market entry must fill at (its decision bar's close time)
N_ISTATE = 9

_LOT_EPS = 1e-9
_DUST = 1e-9  # relative size of a negative cash residue treated as rounding dust


@njit(cache=True, nogil=True)
def taker_price_nb(price: float, side: float, slippage: float, low: float, high: float) -> float:
    """Move ``price`` adversely by ``slippage`` (a fraction) for ``side`` and clip into [low, high]."""
    p = price * (1.0 + side * slippage)
    if p > high:
        p = high
    if p < low:
        p = low
    return p


@njit(cache=True, nogil=True)
def round_lot_nb(qty: float, lot: float) -> float:
    """Round ``qty`` down to a multiple of ``lot`` (a value within 1e-9 lots of the next one counts)."""
    if lot <= 0.0:
        return qty
    r = qty / lot
    k = np.floor(r)
    if r - k > 1.0 - _LOT_EPS:
        k += 1.0
    return k * lot


@njit(cache=True, nogil=True)
def _record_fill(fills, counters, bar, tm, sym, side, kind, price, qty, fee):
    k = counters[C_FILLS]
    if k < fills.shape[0]:
        f = fills[k]
        f.bar = bar
        f.time = tm
        f.symbol = sym
        f.side = side
        f.kind = kind
        f.price = price
        f.qty = qty
        f.notional = price * qty
        f.fee = fee
    counters[C_FILLS] = k + 1


@njit(cache=True, nogil=True)
def _close(j, bar, tm, px, fee_rate, kind, reason, fs, ist, fills, trades, counters, cash):
    pos = fs[j, S_POS]
    qty = abs(pos)
    fee = qty * px * fee_rate
    cash += pos * px - fee
    side = -1 if pos > 0 else 1
    _record_fill(fills, counters, bar, tm, j, side, kind, px, qty, fee)
    k = counters[C_TRADES]
    if k < trades.shape[0]:
        entry = fs[j, S_ENTRY_PX]
        pnl = pos * (px - entry) - fs[j, S_ENTRY_FEE] - fee
        tr = trades[k]
        tr.symbol = j
        tr.direction = -side
        tr.entry_bar = ist[j, I_ENTRY_BAR]
        tr.entry_time = ist[j, I_ENTRY_TIME]
        tr.entry_price = entry
        tr.exit_bar = bar
        tr.exit_time = tm
        tr.exit_price = px
        tr.size = qty
        tr.pnl = pnl
        tr.ret = pnl / (qty * entry)
        tr.fees = fs[j, S_ENTRY_FEE] + fee
        tr.exit_reason = reason
    counters[C_TRADES] = k + 1
    fs[j, S_POS] = 0.0
    ist[j, I_FRESH_BAR] = -1
    return cash


@njit(cache=True, nogil=True)
def _open(j, bar, tm, d, px, ref, fee_rate, kind, intrabar, fs, ist, params, fills, counters, cash):
    """Open a position of direction ``d`` at ``px`` from the pending order's size and exits.

    ``ref`` is the price before slippage (the open, or the order's level): the stop-loss,
    take-profit and trailing distances are measured from it. Other open positions count at
    ``S_MARK``: their last close, or their fill price when changed earlier in this bar.
    """
    m = fs.shape[0]
    equity = cash
    gross_other = 0.0
    for k in range(m):
        p = fs[k, S_POS]
        if p != 0.0:
            equity += p * fs[k, S_MARK]
            if k != j:
                gross_other += abs(p) * fs[k, S_MARK]
    size = fs[j, S_P_SIZE]
    if size != size:
        size = params[P_SIZE]
    st = params[P_SIZE_TYPE]
    if st == SIZE_PERCENT:
        qty = size * equity / px
    elif st == SIZE_CASH:
        qty = size / px
    else:
        qty = size
    buying_power = equity * params[P_LEVERAGE] - gross_other
    qmax = buying_power / (px * (1.0 + fee_rate)) if buying_power > 0.0 else 0.0
    if qty > qmax:
        qty = qmax
    qty = round_lot_nb(qty, fs[j, S_LOT])
    if not (qty > 0.0) or qty * px < fs[j, S_MIN_COST]:
        counters[C_REJECTED] += 1
        return cash
    fee = qty * px * fee_rate
    cash -= d * qty * px + fee
    if cash < 0.0 and cash > -_DUST * qty * px:
        cash = 0.0  # an all-in entry leaves no negative rounding residue
    fs[j, S_POS] = d * qty
    fs[j, S_ENTRY_PX] = px
    fs[j, S_BASE] = ref
    fs[j, S_MARK] = px  # valued at its fill price until this bar's close
    fs[j, S_ENTRY_FEE] = fee
    fs[j, S_SL] = fs[j, S_P_SL]
    fs[j, S_TP] = fs[j, S_P_TP]
    fs[j, S_TRAIL] = fs[j, S_P_TRAIL]
    fs[j, S_PEAK] = ref
    _refresh_levels(j, fs)
    ist[j, I_ENTRY_BAR] = bar
    ist[j, I_ENTRY_TIME] = tm
    ist[j, I_FRESH_BAR] = bar if intrabar else -1
    sl, tp, tr = fs[j, S_SL], fs[j, S_TP], fs[j, S_TRAIL]
    ist[j, I_BARE] = 1 if sl != sl and tp != tp and tr != tr else 0
    _record_fill(fills, counters, bar, tm, j, d, kind, px, qty, fee)
    return cash


@njit(cache=True, nogil=True)
def _stop_level(j, fs):
    """Protective stop of the open position: (level, kind, reason); level is +-inf when none."""
    pos = fs[j, S_POS]
    entry = fs[j, S_BASE]
    sl = fs[j, S_SL]
    tr = fs[j, S_TRAIL]
    kind = KIND_STOP_LOSS
    reason = EXIT_STOP_LOSS
    if pos > 0.0:
        level = -np.inf
        if sl == sl:
            level = entry * (1.0 - sl)
        if tr == tr:
            t = fs[j, S_PEAK] * (1.0 - tr)
            if t > level:
                level = t
                kind = KIND_TRAILING_STOP
                reason = EXIT_TRAILING_STOP
    else:
        level = np.inf
        if sl == sl:
            level = entry * (1.0 + sl)
        if tr == tr:
            t = fs[j, S_PEAK] * (1.0 + tr)
            if t < level:
                level = t
                kind = KIND_TRAILING_STOP
                reason = EXIT_TRAILING_STOP
    return level, kind, reason


@njit(cache=True, nogil=True)
def _tp_level(j, fs):
    tp = fs[j, S_TP]
    if tp != tp:
        return np.inf if fs[j, S_POS] > 0.0 else -np.inf
    if fs[j, S_POS] > 0.0:
        return fs[j, S_BASE] * (1.0 + tp)
    return fs[j, S_BASE] * (1.0 - tp)


@njit(cache=True, nogil=True)
def _refresh_levels(j, fs):
    level, _, _ = _stop_level(j, fs)
    fs[j, S_STOP] = level
    fs[j, S_TARGET] = _tp_level(j, fs)


@njit(cache=True, nogil=True)
def _update_best(j, t, close_, hi, lo, fs, ist):
    """Trail the best price after the bar's stop checks and refresh the cached stop level."""
    pos = fs[j, S_POS]
    if pos == 0.0 or fs[j, S_TRAIL] != fs[j, S_TRAIL]:
        return
    fresh = ist[j, I_FRESH_BAR] == t
    if pos > 0.0:
        best = close_ if fresh else hi
        if best > fs[j, S_PEAK]:
            fs[j, S_PEAK] = best
            _refresh_levels(j, fs)
    else:
        best = close_ if fresh else lo
        if best < fs[j, S_PEAK]:
            fs[j, S_PEAK] = best
            _refresh_levels(j, fs)


@njit(cache=True, nogil=True)
def _exits_at_open(j, t, tm, o, lo, hi, fs, ist, params, fills, trades, counters, cash):
    """Attached exits of a held position when the open gaps through them: fill at the open."""
    long = fs[j, S_POS] > 0.0
    level, kind, reason = _stop_level(j, fs)
    if (long and o <= level) or (not long and o >= level):
        px = taker_price_nb(o, -1.0 if long else 1.0, params[P_SLIPPAGE], lo, hi)
        return _close(
            j, t, tm, px, params[P_FEE_TAKER], kind, reason, fs, ist, fills, trades, counters, cash
        )
    tp = _tp_level(j, fs)
    if (long and o >= tp) or (not long and o <= tp):
        # marketable at the open: a taker fill with slippage, never worse than the target
        px = taker_price_nb(o, -1.0 if long else 1.0, params[P_SLIPPAGE], lo, hi)
        px = max(px, tp) if long else min(px, tp)
        return _close(
            j,
            t,
            tm,
            px,
            params[P_FEE_TAKER],
            KIND_TAKE_PROFIT,
            EXIT_TAKE_PROFIT,
            fs,
            ist,
            fills,
            trades,
            counters,
            cash,
        )
    return cash


@njit(cache=True, nogil=True)
def _exits_in_bar(j, t, tm, lo, hi, with_tp, fs, ist, params, fills, trades, counters, cash):
    """Attached exits touched inside the bar; the stop is checked before the take-profit."""
    long = fs[j, S_POS] > 0.0
    level, kind, reason = _stop_level(j, fs)
    if (long and lo <= level) or (not long and hi >= level):
        px = taker_price_nb(level, -1.0 if long else 1.0, params[P_SLIPPAGE], lo, hi)
        return _close(
            j, t, tm, px, params[P_FEE_TAKER], kind, reason, fs, ist, fills, trades, counters, cash
        )
    if with_tp:
        tp = _tp_level(j, fs)
        if (long and hi >= tp) or (not long and lo <= tp):
            return _close(
                j,
                t,
                tm,
                tp,
                params[P_FEE_MAKER],
                KIND_TAKE_PROFIT,
                EXIT_TAKE_PROFIT,
                fs,
                ist,
                fills,
                trades,
                counters,
                cash,
            )
    return cash


@njit(cache=True, nogil=True)
def _pending_entry(j, t, tm, o, lo, hi, at_open, fs, ist, params, fills, trades, counters, cash):
    """Try the pending limit/stop entry of symbol ``j`` at the open or inside the bar.

    Returns the new cash; ``ist[j, I_P_DIR]`` is cleared when the order filled or was dropped.
    """
    d = ist[j, I_P_DIR]
    pos = fs[j, S_POS]
    if (d > 0 and pos > 0.0) or (d < 0 and pos < 0.0):
        ist[j, I_P_DIR] = 0  # same direction as held: no pyramiding
        return cash
    level = fs[j, S_P_PRICE]
    typ = ist[j, I_P_TYPE]
    if typ == LIMIT:
        if at_open:
            # marketable at the open: a taker fill with slippage, never beyond the limit
            hit = o <= level if d > 0 else o >= level
            base = o
            px = taker_price_nb(o, float(d), params[P_SLIPPAGE], lo, hi)
            px = min(px, level) if d > 0 else max(px, level)
            fee_rate = params[P_FEE_TAKER]
        else:
            hit = lo <= level if d > 0 else hi >= level
            base = level
            px = level
            fee_rate = params[P_FEE_MAKER]
    else:
        if at_open:
            hit = o >= level if d > 0 else o <= level
            base = o
        else:
            hit = hi >= level if d > 0 else lo <= level
            base = level
        px = taker_price_nb(base, float(d), params[P_SLIPPAGE], lo, hi)
        fee_rate = params[P_FEE_TAKER]
    if not hit:
        return cash
    ist[j, I_P_DIR] = 0
    if pos != 0.0:
        cash = _close(
            j, t, tm, px, fee_rate, typ, EXIT_REVERSE, fs, ist, fills, trades, counters, cash
        )
    return _open(
        j,
        t,
        tm,
        float(d),
        px,
        base,
        fee_rate,
        typ,
        not at_open,
        fs,
        ist,
        params,
        fills,
        counters,
        cash,
    )


# scalar state of a run, carried between calls (float64 array; the int counters live in
# ``counters``: exposed bars, halted bar)
G_CASH = 0
N_GSTATE = 1


@njit(cache=True, nogil=True)
def init_state_nb(params, fs, ist, gs, counters):
    """Reset the explicit state of a run: no position, nothing pending, cash ``params[P_CASH]``.

    ``fs`` float64 (m, N_FSTATE), ``ist`` int64 (m, N_ISTATE), ``gs`` float64 (N_GSTATE,),
    ``counters`` int64 (N_COUNTERS,). ``simulate_nb`` and the resumable entry points
    (``run_nb``, ``step_bar_nb`` / ``step_intents_nb``) all work on this state.
    """
    fs[:, :] = 0.0
    ist[:, :] = 0
    for j in range(fs.shape[0]):
        ist[j, I_FRESH_BAR] = -1
        fs[j, S_LOT] = params[P_LOT_SIZE]
        fs[j, S_MIN_COST] = params[P_MIN_NOTIONAL]
    counters[:] = 0
    counters[C_HALTED_BAR] = -1
    gs[G_CASH] = params[P_CASH]


@njit(cache=True, nogil=True)
def _calm_nb(fs, ist):
    """True when no order is pending and no open position has an attached exit."""
    for j in range(fs.shape[0]):
        if ist[j, I_P_DIR] != 0 or ist[j, I_P_EXIT] != 0:
            return False
        if fs[j, S_POS] != 0.0 and ist[j, I_BARE] == 0:
            return False
    return True


@njit(cache=True, nogil=True)
def _intents_nb(
    r, tm, entries, exits, order_type, price, size, sl, tp, trail, flags, params, fs, ist
):
    """Register the intents of row ``r``, decided at the close of the bar opened at ``tm``."""
    allow_short = params[P_ALLOW_SHORT] != 0.0
    tf_ms = int(params[P_TF_MS])
    for j in range(fs.shape[0]):
        e = entries[r, j]
        x = exits[r, j]
        if e == 0 and not x:
            continue
        if e < 0 and not allow_short:
            x = True
            e = 0
        if x:
            ist[j, I_P_EXIT] = 1
            ist[j, I_P_DIR] = 0  # an exit cancels a resting entry
        if e != 0:
            ist[j, I_P_DIR] = e
            ist[j, I_P_TYPE] = order_type[r, j] if flags[F_ORDER_TYPE] != 0 else MARKET
            ist[j, I_P_AGE] = 0
            ist[j, I_P_DUE] = tm + tf_ms
            fs[j, S_P_PRICE] = price[r, j] if flags[F_PRICE] != 0 else np.nan
            fs[j, S_P_SIZE] = size[r, j] if flags[F_SIZE] != 0 else np.nan
            fs[j, S_P_SL] = sl[r, j] if flags[F_SL] != 0 else np.nan
            fs[j, S_P_TP] = tp[r, j] if flags[F_TP] != 0 else np.nan
            fs[j, S_P_TRAIL] = trail[r, j] if flags[F_TRAIL] != 0 else np.nan


@njit(cache=True, nogil=True)
def _close_all_nb(t, tm, fs, ist, params, fills, trades, counters, cash):
    """Close every open position at its mark with the taker fee (reason "end").

    Returns (cash, whether anything was closed)."""
    closed_any = False
    for j in range(fs.shape[0]):
        if fs[j, S_POS] != 0.0:
            cash = _close(
                j,
                t,
                tm,
                fs[j, S_MARK],
                params[P_FEE_TAKER],
                KIND_END,
                EXIT_END,
                fs,
                ist,
                fills,
                trades,
                counters,
                cash,
            )
            closed_any = True
    return cash, closed_any


@njit(cache=True, nogil=True)
def run_nb(
    r0,
    r1,
    bar0,
    time,
    open_,
    high,
    low,
    close,
    entries,
    exits,
    order_type,
    price,
    size,
    sl,
    tp,
    trail,
    flags,
    params,
    fs,
    ist,
    gs,
    fills,
    trades,
    equity_out,
    cash_out,
    positions_out,
    counters,
):
    """Run rows ``r0 .. r1 - 1`` of the arrays as bars ``bar0 + r`` on the carried state.

    The state (``fs``, ``ist``, ``gs``, ``counters``) is read at the start and left as it is
    after the last row, so a run may be continued by a later call on the following rows.
    Fill and trade records are written from ``counters[C_FILLS]`` / ``counters[C_TRADES]``.
    """
    m = open_.shape[1]
    cash = gs[G_CASH]
    slip = params[P_SLIPPAGE]
    fee_taker = params[P_FEE_TAKER]
    ttl = int(params[P_ORDER_TTL])
    warmup = int(params[P_WARMUP])
    tf_ms = int(params[P_TF_MS])
    exposed = counters[C_EXPOSED_BARS]
    halted = counters[C_HALTED_BAR] >= 0
    calm = _calm_nb(fs, ist)

    r = r0
    while r < r1:
        if calm and not halted:
            # fast path: while nothing is pending and no position has an attached exit, a bar
            # can only be marked to market; the first bar with a signal, or whose marked
            # equity is <= 0, goes through the full path below (marking is idempotent)
            n_held = 0
            for j in range(m):
                if fs[j, S_POS] != 0.0:
                    n_held += 1
            if m == 1:
                # the same loop with the one symbol's state in registers
                rs = r
                p = fs[0, S_POS]
                mark = fs[0, S_MARK]
                while r < r1:
                    if bar0 + r >= warmup and (entries[r, 0] != 0 or exits[r, 0]):
                        break
                    c = close[r, 0]
                    if c == c:
                        mark = c
                    eq = cash + p * mark if p != 0.0 else cash
                    if eq <= 0.0:
                        break
                    positions_out[r, 0] = p
                    equity_out[r] = eq
                    cash_out[r] = cash
                    r += 1
                fs[0, S_MARK] = mark
                if n_held > 0:
                    exposed += r - rs
            while r < r1 and m > 1:
                if bar0 + r >= warmup:
                    signal = False
                    for j in range(m):
                        if entries[r, j] != 0 or exits[r, j]:
                            signal = True
                    if signal:
                        break
                eq = cash
                for j in range(m):
                    c = close[r, j]
                    if c == c:
                        fs[j, S_MARK] = c
                    p = fs[j, S_POS]
                    positions_out[r, j] = p
                    if p != 0.0:
                        eq += p * fs[j, S_MARK]
                if eq <= 0.0:
                    break
                if n_held > 0:
                    exposed += 1
                equity_out[r] = eq
                cash_out[r] = cash
                r += 1
            if r >= r1:
                break

        t = bar0 + r
        tm = time[r]
        if halted:
            equity_out[r] = cash
            cash_out[r] = cash
            for j in range(m):
                positions_out[r, j] = 0.0
            r += 1
            continue

        for j in range(m):
            pos = fs[j, S_POS]
            pdir = ist[j, I_P_DIR]
            if pdir == 0 and ist[j, I_P_EXIT] == 0:
                if pos == 0.0 or ist[j, I_BARE] != 0:
                    continue  # flat, or held with no attached exit: nothing can happen
            hi = high[r, j]
            if hi != hi:
                continue  # no candle: everything waits for the symbol's next bar
            lo = low[r, j]
            if ist[j, I_P_EXIT] == 0 and (pdir == 0 or ist[j, I_P_TYPE] != MARKET):
                # nothing at market: a cheap range test decides whether anything can trigger
                # (valid candles have low <= open <= high, so a gap implies a touched range)
                quiet = True
                if pos > 0.0:
                    quiet = lo > fs[j, S_STOP] and hi < fs[j, S_TARGET]
                elif pos < 0.0:
                    quiet = hi < fs[j, S_STOP] and lo > fs[j, S_TARGET]
                if quiet and ((pdir > 0 and pos > 0.0) or (pdir < 0 and pos < 0.0)):
                    ist[j, I_P_DIR] = 0  # same direction as the untouched position: dropped
                    pdir = 0
                if quiet and pdir != 0:
                    level = fs[j, S_P_PRICE]
                    if (pdir > 0) == (ist[j, I_P_TYPE] == LIMIT):
                        quiet = lo > level  # limit buy / stop sell
                    else:
                        quiet = hi < level  # limit sell / stop buy
                if quiet:
                    if pdir != 0:
                        ist[j, I_P_AGE] += 1
                        if ttl > 0 and ist[j, I_P_AGE] >= ttl:
                            ist[j, I_P_DIR] = 0
                    if pos != 0.0 and fs[j, S_TRAIL] == fs[j, S_TRAIL]:
                        # trail the best price (a quiet bar holds no position opened inside it)
                        if pos > 0.0:
                            if hi > fs[j, S_PEAK]:
                                fs[j, S_PEAK] = hi
                                _refresh_levels(j, fs)
                        elif lo < fs[j, S_PEAK]:
                            fs[j, S_PEAK] = lo
                            _refresh_levels(j, fs)
                    continue
            o = open_[r, j]

            # --- at the open: market orders, then gaps through resting orders
            if ist[j, I_P_EXIT] != 0:
                ist[j, I_P_EXIT] = 0
                if fs[j, S_POS] != 0.0:
                    side = -1.0 if fs[j, S_POS] > 0.0 else 1.0
                    px = taker_price_nb(o, side, slip, lo, hi)
                    cash = _close(
                        j,
                        t,
                        tm,
                        px,
                        fee_taker,
                        KIND_EXIT,
                        EXIT_SIGNAL,
                        fs,
                        ist,
                        fills,
                        trades,
                        counters,
                        cash,
                    )
            d = ist[j, I_P_DIR]
            if d != 0 and ist[j, I_P_TYPE] == MARKET:
                ist[j, I_P_DIR] = 0
                pos = fs[j, S_POS]
                if tm != ist[j, I_P_DUE]:
                    counters[C_EXPIRED] += 1  # its symbol had no candle at the next bar
                elif not ((d > 0 and pos > 0.0) or (d < 0 and pos < 0.0)):
                    px = taker_price_nb(o, float(d), slip, lo, hi)
                    if pos != 0.0:
                        cash = _close(
                            j,
                            t,
                            tm,
                            px,
                            fee_taker,
                            KIND_MARKET,
                            EXIT_REVERSE,
                            fs,
                            ist,
                            fills,
                            trades,
                            counters,
                            cash,
                        )
                    cash = _open(
                        j,
                        t,
                        tm,
                        float(d),
                        px,
                        o,
                        fee_taker,
                        KIND_MARKET,
                        False,
                        fs,
                        ist,
                        params,
                        fills,
                        counters,
                        cash,
                    )
            if fs[j, S_POS] != 0.0 and ist[j, I_BARE] == 0:
                cash = _exits_at_open(
                    j, t, tm, o, lo, hi, fs, ist, params, fills, trades, counters, cash
                )
            if ist[j, I_P_DIR] != 0:
                cash = _pending_entry(
                    j, t, tm, o, lo, hi, True, fs, ist, params, fills, trades, counters, cash
                )

            # --- inside the bar: held position's exits, then resting entries
            if fs[j, S_POS] != 0.0 and ist[j, I_BARE] == 0:
                cash = _exits_in_bar(
                    j, t, tm, lo, hi, True, fs, ist, params, fills, trades, counters, cash
                )
            if ist[j, I_P_DIR] != 0:
                cash = _pending_entry(
                    j, t, tm, o, lo, hi, False, fs, ist, params, fills, trades, counters, cash
                )
                if ist[j, I_FRESH_BAR] == t and fs[j, S_POS] != 0.0:
                    # opened inside this bar: pessimistically its stop may still be hit,
                    # its take-profit starts on the next bar
                    cash = _exits_in_bar(
                        j, t, tm, lo, hi, False, fs, ist, params, fills, trades, counters, cash
                    )
                elif ist[j, I_P_DIR] != 0:
                    ist[j, I_P_AGE] += 1
                    if ttl > 0 and ist[j, I_P_AGE] >= ttl:
                        ist[j, I_P_DIR] = 0

            # --- after the stop checks: trail the best price
            if ist[j, I_BARE] == 0:
                _update_best(j, t, close[r, j], hi, lo, fs, ist)

        # --- mark to market at the close
        eq = cash
        n_open = 0
        for j in range(m):
            c = close[r, j]
            if c == c:
                fs[j, S_MARK] = c
            p = fs[j, S_POS]
            positions_out[r, j] = p
            if p != 0.0:
                eq += p * fs[j, S_MARK]
                n_open += 1
        if n_open > 0:
            exposed += 1

        # --- intents decided at this bar's close, executed from the next bar
        if t >= warmup:
            _intents_nb(
                r,
                tm,
                entries,
                exits,
                order_type,
                price,
                size,
                sl,
                tp,
                trail,
                flags,
                params,
                fs,
                ist,
            )

        # --- out of equity (marked at the close, or realised at a fill): close what is
        # open at this close and stop trading
        if eq <= 0.0:
            cash, _ = _close_all_nb(t, tm + tf_ms, fs, ist, params, fills, trades, counters, cash)
            for j in range(m):
                positions_out[r, j] = 0.0
            eq = cash
            halted = True
            counters[C_HALTED_BAR] = t

        equity_out[r] = eq
        cash_out[r] = cash
        calm = True
        for j in range(m):
            if ist[j, I_P_DIR] != 0 or ist[j, I_P_EXIT] != 0:
                calm = False
            elif fs[j, S_POS] != 0.0 and ist[j, I_BARE] == 0:
                calm = False
        r += 1

    counters[C_EXPOSED_BARS] = exposed
    gs[G_CASH] = cash


@njit(cache=True, nogil=True)
def simulate_nb(
    time,
    open_,
    high,
    low,
    close,
    entries,
    exits,
    order_type,
    price,
    size,
    sl,
    tp,
    trail,
    flags,
    params,
    fills,
    trades,
    equity_out,
    cash_out,
    positions_out,
    counters,
):
    """Run the event loop over all bars and symbols with one shared cash balance.

    Parameters
    ----------
    time : int64 (n,)
        Bar open times, ms UTC.
    open_, high, low, close : float64 (n, m)
        Prices, NaN where a symbol has no candle.
    entries : int8 (n, m)
        +1 / -1 / 0 entry intents decided at the close of each row.
    exits : bool (n, m)
        Market exit intents.
    order_type, price, size, sl, tp, trail : (n, m) arrays, or (1, 1) placeholders
        Optional per-row order details; ``flags[F_*]`` says which are real.
    flags : int8 (N_FLAGS,)
    params : float64 (N_PARAMS,)
        Scalar settings, indexed by ``engine.enums.P_*``.
    fills, trades : record arrays (fill_dt, trade_dt)
        Output buffers; counts beyond their length are still counted in ``counters``.
    equity_out, cash_out : float64 (n,)
    positions_out : float64 (n, m)
    counters : int64 (N_COUNTERS,)
        Output: fills, trades, rejected orders, exposed bars, halted bar, expired market
        entries.

    The bars run through ``run_nb`` on state made by ``init_state_nb``, the same per-bar
    functions the resumable entry points use.
    """
    n, m = open_.shape
    fs = np.zeros((m, N_FSTATE))
    ist = np.zeros((m, N_ISTATE), dtype=np.int64)
    gs = np.zeros(N_GSTATE)
    init_state_nb(params, fs, ist, gs, counters)
    run_nb(
        0,
        n,
        0,
        time,
        open_,
        high,
        low,
        close,
        entries,
        exits,
        order_type,
        price,
        size,
        sl,
        tp,
        trail,
        flags,
        params,
        fs,
        ist,
        gs,
        fills,
        trades,
        equity_out,
        cash_out,
        positions_out,
        counters,
    )
    # --- end of data: close what is open at the last valid close, taker fee, no slippage
    if n > 0 and counters[C_HALTED_BAR] < 0 and params[P_CLOSE_AT_END] != 0.0:
        tf_ms = int(params[P_TF_MS])
        cash, closed_any = _close_all_nb(
            n - 1, time[n - 1] + tf_ms, fs, ist, params, fills, trades, counters, gs[G_CASH]
        )
        if closed_any:
            for j in range(m):
                positions_out[n - 1, j] = 0.0
            equity_out[n - 1] = cash
            cash_out[n - 1] = cash
        gs[G_CASH] = cash


@njit(cache=True, nogil=True)
def step_bar_nb(
    t, time, open_, high, low, close, params, fs, ist, gs, fills, trades, positions_out, counters
):
    """Resumable entry, first half of bar ``t``: its fills and its mark, by ``run_nb`` itself.

    ``time`` is the (1,) open time and ``open_ .. close``, ``positions_out`` the (1, m) rows
    of the one bar; ``run_nb`` runs it as bar ``t`` with no intents (they come after the
    strategy has seen the bar, through ``step_intents_nb``). A bar whose marked equity is
    <= 0 closes everything and halts, as in ``run_nb`` (there after the intents, which a
    halted run never executes). Returns the equity at the bar's close.
    """
    m = fs.shape[0]
    none_i = np.zeros((1, m), dtype=np.int8)
    none_b = np.zeros((1, m), dtype=np.bool_)
    ph_i = np.zeros((1, 1), dtype=np.int8)
    ph_f = np.full((1, 1), np.nan)
    flags = np.zeros(N_FLAGS, dtype=np.int8)
    equity_out = np.empty(1)
    cash_out = np.empty(1)
    run_nb(
        0,
        1,
        t,
        time,
        open_,
        high,
        low,
        close,
        none_i,
        none_b,
        ph_i,
        ph_f,
        ph_f,
        ph_f,
        ph_f,
        ph_f,
        flags,
        params,
        fs,
        ist,
        gs,
        fills,
        trades,
        equity_out,
        cash_out,
        positions_out,
        counters,
    )
    return equity_out[0]


@njit(cache=True, nogil=True)
def step_intents_nb(
    tm, entries, exits, order_type, price, size, sl, tp, trail, flags, params, fs, ist, counters
):
    """Resumable entry, second half of the bar opened at ``tm``: register its intents ((1, m)
    rows), to be executed from the next bar. A halted run takes none."""
    if counters[C_HALTED_BAR] >= 0:
        return
    _intents_nb(
        0, tm, entries, exits, order_type, price, size, sl, tp, trail, flags, params, fs, ist
    )


@njit(cache=True, nogil=True)
def close_all_nb(t, tm, params, fs, ist, gs, fills, trades, counters):
    """Close every open position at its mark, taker fee, reason "end" (the end-of-data close
    of ``simulate_nb``); returns whether anything was closed."""
    cash, closed_any = _close_all_nb(t, tm, fs, ist, params, fills, trades, counters, gs[G_CASH])
    gs[G_CASH] = cash
    return closed_any


@njit(cache=True, nogil=True)
def check_bars_nb(open_, high, low, close):
    """First (row, col) whose candle is inconsistent (partial NaN or low/high not bounding), else (-1, -1)."""
    n, m = open_.shape
    for t in range(n):
        for j in range(m):
            o = open_[t, j]
            h = high[t, j]
            lo = low[t, j]
            c = close[t, j]
            if o != o:
                if h == h or lo == lo or c == c:
                    return t, j
                continue
            if not (lo <= o and lo <= c and o <= h and c <= h):
                return t, j
    return -1, -1
