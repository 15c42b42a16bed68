"""Protective exits of a live account, decided client-side on each closed bar by the kernel.

The levels are checked here for every exit kind, whatever the exchange's order types (with
``live.stop_on_exchange`` a stop-loss also rests on the exchange: ``adapters.exchange_stop``);
the live broker keeps, for each position opened by an entry that carried a stop-loss,
take-profit or trailing stop, the kernel's own position state (``engine.nb``: the entry
price, the attached fractions, the best price so far, the cached stop and target levels).
Each closed bar is stepped through the kernel (``step_bar_nb``) with the backtest's
bar-range rules: a stop-loss or trailing stop triggers when the bar's low (of a long)
reaches its level, a take-profit when its high does, a gap through a level at the open;
when one bar reaches both, the stop wins; the trailing stop's best price takes a bar's high
only after that bar's stop check. A triggered exit is returned to the broker, which sends a
market sell of the run's position through the order manager, at the bar's close.

The watch starts at the bar the entry's first fill happened in. A market entry (sent at a
bar's close, filled at the first price of the next bar) counts as filled at that bar's open:
the whole bar is checked. A limit or stop entry fills inside its bar: as in the backtest,
only its stop is checked on that bar and the best price starts from that bar's close. More
fills of the same entry (a partial fill completed later) move the entry price to the
volume-weighted price of all its fills.

Each symbol remembers the open time of the last bar it was stepped over, so a bar is never
stepped twice and the bars it missed (a restart after the process was down, a candle the
feed did not deliver) are stepped, in order, before the next one. The state survives
restarts in the journal (``state`` key ``protect``).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from engine import enums

_KINDS = {
    enums.KIND_STOP_LOSS: "stop_loss",
    enums.KIND_TAKE_PROFIT: "take_profit",
    enums.KIND_TRAILING_STOP: "trailing_stop",
}


class ProtectiveExits:
    def __init__(self, symbols: tuple[str, ...], config: Any, tf_ms: int) -> None:
        from engine import nb

        self.nb = nb
        self.symbols = tuple(symbols)
        self.tf_ms = int(tf_ms)
        m = len(self.symbols)
        if config is None:  # only the levels matter here, not costs or sizing
            from engine.backtest import SimConfig

            config = SimConfig()
        self.params = config.to_params(0, self.tf_ms)
        self.fs = np.zeros((m, nb.N_FSTATE))
        self.ist = np.zeros((m, nb.N_ISTATE), dtype=np.int64)
        self.gs = np.zeros(nb.N_GSTATE)
        self.counters = np.zeros(enums.N_COUNTERS, dtype=np.int64)
        nb.init_state_nb(self.params, self.fs, self.ist, self.gs, self.counters)
        self.gs[nb.G_CASH] = 1e18  # the shadow account only decides triggers: never short of cash
        self._fills = np.zeros(4 * m + 4, dtype=enums.fill_dt)
        self._trades = np.zeros(4 * m + 4, dtype=enums.trade_dt)
        self._pos = np.zeros((1, m))
        # per symbol: open time of the last bar stepped (-1: none), the watched entry's
        # client id, its filled quantity when last armed, and whether its exit fired
        self.last = np.full(m, -1, dtype=np.int64)
        self.entry = [""] * m
        self.entry_qty = np.zeros(m)
        self.fired = np.zeros(m, dtype=np.int64)

    def armed(self, j: int) -> bool:
        return self.fs[j, self.nb.S_POS] != 0.0

    def watching(self, j: int) -> str:
        """Client id of the entry whose position is (or was, until its exit fired) watched."""
        return self.entry[j]

    def arm(
        self,
        j: int,
        entry: str,
        held: float,
        filled: float,
        price: float,
        fracs: tuple[float, float, float],
        since: int,
        inside: bool,
    ) -> None:
        """Watch the long position ``held`` opened by the entry ``entry`` (client id), filled
        ``filled`` so far at the volume-weighted ``price``, with its (sl, tp, trail)
        fractions (NaN: none), as the kernel's ``_open`` sets it up, from the bar opened at
        ``since`` (the bar of its first fill); ``inside``: filled inside that bar, not at
        its open."""
        nb = self.nb
        fs, ist = self.fs, self.ist
        sl, tp, trail = fracs
        fs[j, nb.S_POS] = held
        fs[j, nb.S_ENTRY_PX] = price
        fs[j, nb.S_BASE] = price
        fs[j, nb.S_MARK] = price
        fs[j, nb.S_ENTRY_FEE] = 0.0
        fs[j, nb.S_SL] = sl
        fs[j, nb.S_TP] = tp
        fs[j, nb.S_TRAIL] = trail
        fs[j, nb.S_PEAK] = price
        nb._refresh_levels(j, fs)
        bar = int(since) // self.tf_ms
        ist[j, nb.I_ENTRY_BAR] = bar
        ist[j, nb.I_ENTRY_TIME] = int(since)
        ist[j, nb.I_FRESH_BAR] = bar if inside else -1
        ist[j, nb.I_P_DIR] = 0
        ist[j, nb.I_P_EXIT] = 0
        ist[j, nb.I_BARE] = 0 if any(math.isfinite(x) for x in fracs) else 1
        self.last[j] = int(since) - self.tf_ms
        self.entry[j] = entry
        self.entry_qty[j] = filled
        self.fired[j] = 0

    def refill(self, j: int, entry_qty: float, price: float, held: float) -> None:
        """The watched entry has filled ``entry_qty`` in all now, at the volume-weighted
        ``price``; the run holds ``held``. The levels move to the new entry price; the best
        price so far is kept (never below the entry price)."""
        nb = self.nb
        fs = self.fs
        if not self.armed(j):
            return
        fs[j, nb.S_POS] = held
        if entry_qty != self.entry_qty[j]:
            self.entry_qty[j] = entry_qty
            fs[j, nb.S_ENTRY_PX] = price
            fs[j, nb.S_BASE] = price
            fs[j, nb.S_PEAK] = max(fs[j, nb.S_PEAK], price)
            nb._refresh_levels(j, fs)

    def disarm(self, j: int) -> None:
        nb = self.nb
        self.fs[j, nb.S_POS] = 0.0
        self.ist[j, nb.I_BARE] = 1
        self.entry[j] = ""
        self.entry_qty[j] = 0.0
        self.fired[j] = 0

    def behind(self, j: int, time: int) -> bool:
        """Whether the watch of ``j`` has bars to step before the bar opened at ``time``."""
        return self.armed(j) and int(self.last[j]) + self.tf_ms < int(time)

    def step(self, time: int, open_, high, low, close) -> list[tuple[int, str]]:
        """Step the armed positions over the closed bar opened at ``time`` ((m,) prices, NaN
        where a symbol has no candle); a symbol already stepped over it is left alone. The
        (symbol index, exit kind) of each exit that triggered (that watch is then over)."""
        nb = self.nb
        fs, ist = self.fs, self.ist
        m = len(self.symbols)
        rows = [np.full((1, m), np.nan) for _ in range(4)]
        todo = []
        for j in range(m):
            if not self.armed(j) or int(time) <= int(self.last[j]) or not (high[j] == high[j]):
                continue
            todo.append(j)
            for r, a in zip(rows, (open_, high, low, close), strict=True):
                r[0, j] = a[j]
        if not todo:
            return []
        bar = int(time) // self.tf_ms
        inside = [j for j in todo if ist[j, nb.I_FRESH_BAR] == bar]
        held_tp = {}
        for j in inside:
            # opened inside this bar: only its stop can be touched after the fill, and the
            # best price is the close (the kernel's rule for a fill inside a bar); the bar's
            # range before the fill is unknown, so its high and open do not count
            held_tp[j] = fs[j, nb.S_TP]
            fs[j, nb.S_TP] = np.nan
            nb._refresh_levels(j, fs)
            c = rows[3][0, j]
            rows[0][0, j] = c
            rows[1][0, j] = max(c, rows[2][0, j])
        self.counters[enums.C_FILLS] = 0
        self.counters[enums.C_TRADES] = 0
        nb.step_bar_nb(
            bar,
            np.array([int(time)], dtype=np.int64),
            *rows,
            self.params,
            fs,
            ist,
            self.gs,
            self._fills,
            self._trades,
            self._pos,
            self.counters,
        )
        self.gs[nb.G_CASH] = 1e18
        for j, tp in held_tp.items():
            fs[j, nb.S_TP] = tp
            if self.armed(j):
                nb._refresh_levels(j, fs)
        for j in todo:
            self.last[j] = int(time)
        out = []
        for f in self._fills[: int(self.counters[enums.C_FILLS])]:
            kind = _KINDS.get(int(f["kind"]))
            if kind is not None:
                j = int(f["symbol"])
                self.fired[j] = 1
                out.append((j, kind))
        return out

    def levels(self, j: int) -> dict[str, float]:
        """The watch of ``j``: entry price, held quantity, best price, stop and target."""
        nb = self.nb
        fs = self.fs
        return {
            "qty": float(fs[j, nb.S_POS]),
            "price": float(fs[j, nb.S_BASE]),
            "peak": float(fs[j, nb.S_PEAK]),
            "stop": float(fs[j, nb.S_STOP]),
            "target": float(fs[j, nb.S_TARGET]),
            "last": int(self.last[j]),
        }

    def pack(self) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf,
            fs=self.fs,
            ist=self.ist,
            last=self.last,
            entry=np.array(self.entry, dtype=np.str_),
            entry_qty=self.entry_qty,
            fired=self.fired,
        )
        return buf.getvalue()

    def unpack(self, data: bytes) -> None:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if z["fs"].shape != self.fs.shape or "last" not in z.files:
                return  # another layout: the watches are rebuilt from the journal's fills
            self.fs[:] = z["fs"]
            self.ist[:] = z["ist"]
            self.last[:] = z["last"]
            self.entry = [str(x) for x in z["entry"]]
            self.entry_qty[:] = z["entry_qty"]
            self.fired[:] = z["fired"]
