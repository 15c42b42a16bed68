"""Protective exits of a live account, decided client-side on each closed bar by the kernel.

An exchange-side stop would need an order type per exchange and per exit kind; instead the
live broker keeps, for each position opened by an entry that carried a stop-loss,
take-profit or trailing stop, the kernel's own position state (``engine.nb``: the entry
price, the attached fractions, the best price so far, the cached stop and target levels).
On each closed bar the kernel steps that state over the bar (``step_bar_nb``) with the
backtest's bar-range rules: a stop-loss or trailing stop triggers when the bar's low (of a
long) reaches its level, a take-profit when its high does, a gap through a level at the
open. A triggered exit is returned to the broker, which sends a market sell of the run's
position through the order manager, at the bar's close.

So live protective exits act at bar resolution: the sell goes out when the bar closes and
fills at the next price the exchange gives, not at the level inside the bar as a backtest
fills it. The state survives restarts in the journal (``state`` key ``protect``).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from adapters.broker import BarRow
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
        m = len(self.symbols)
        if config is None:  # only the levels matter here, not costs or sizing
            from engine.backtest import SimConfig

            config = SimConfig()
        self.params = config.to_params(0, int(tf_ms))
        self.fs = np.zeros((m, nb.N_FSTATE))
        self.ist = np.zeros((m, nb.N_ISTATE), dtype=np.int64)
        self.gs = np.zeros(nb.N_GSTATE)
        self.counters = np.zeros(enums.N_COUNTERS, dtype=np.int64)
        nb.init_state_nb(self.params, self.fs, self.ist, self.gs, self.counters)
        self.gs[nb.G_CASH] = 1e18  # the shadow account only decides triggers: never short of cash
        self._fills = np.zeros(4 * m + 4, dtype=enums.fill_dt)
        self._trades = np.zeros(4 * m + 4, dtype=enums.trade_dt)
        self._pos = np.zeros((1, m))
        self.bar = -1

    def armed(self, j: int) -> bool:
        return self.fs[j, self.nb.S_POS] != 0.0

    def arm(self, j: int, qty: float, price: float, sl: float, tp: float, trail: float) -> None:
        """A long position of ``qty`` filled at ``price`` with the entry's fractions (NaN:
        none), as the kernel's ``_open`` sets it up."""
        nb = self.nb
        fs, ist = self.fs, self.ist
        fs[j, nb.S_POS] = qty
        fs[j, nb.S_ENTRY_PX] = price
        fs[j, nb.S_BASE] = price
        fs[j, nb.S_MARK] = price
        fs[j, nb.S_ENTRY_FEE] = 0.0
        fs[j, nb.S_SL] = sl
        fs[j, nb.S_TP] = tp
        fs[j, nb.S_TRAIL] = trail
        fs[j, nb.S_PEAK] = price
        nb._refresh_levels(j, fs)
        ist[j, nb.I_ENTRY_BAR] = self.bar
        ist[j, nb.I_FRESH_BAR] = -1
        ist[j, nb.I_P_DIR] = 0
        ist[j, nb.I_P_EXIT] = 0
        ist[j, nb.I_BARE] = 0 if any(math.isfinite(x) for x in (sl, tp, trail)) else 1

    def disarm(self, j: int) -> None:
        nb = self.nb
        self.fs[j, nb.S_POS] = 0.0
        self.ist[j, nb.I_BARE] = 1

    def check(self, bar: BarRow) -> list[tuple[int, str]]:
        """Step the armed positions over a closed bar; the (symbol index, exit kind) of each
        exit that triggered (that position is disarmed)."""
        self.bar += 1
        if not (self.fs[:, self.nb.S_POS] != 0.0).any():
            return []
        rows = [
            np.ascontiguousarray(a, dtype=np.float64).reshape(1, -1)
            for a in (bar.open, bar.high, bar.low, bar.close)
        ]
        self.counters[enums.C_FILLS] = 0
        self.counters[enums.C_TRADES] = 0
        self.nb.step_bar_nb(
            self.bar,
            np.array([int(bar.time)], dtype=np.int64),
            *rows,
            self.params,
            self.fs,
            self.ist,
            self.gs,
            self._fills,
            self._trades,
            self._pos,
            self.counters,
        )
        out = []
        for f in self._fills[: int(self.counters[enums.C_FILLS])]:
            kind = _KINDS.get(int(f["kind"]))
            if kind is not None:
                out.append((int(f["symbol"]), kind))
        self.gs[self.nb.G_CASH] = 1e18
        return out

    def pack(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, fs=self.fs, ist=self.ist, bar=np.array([self.bar]))
        return buf.getvalue()

    def unpack(self, data: bytes) -> None:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if z["fs"].shape == self.fs.shape:
                self.fs[:] = z["fs"]
                self.ist[:] = z["ist"]
                self.bar = int(z["bar"][0])
