"""What a strategy hands to the engine: per-bar, per-symbol order intents.

Every array has shape ``(n_bars, n_symbols)`` on the base timeframe's index.
Row ``t`` is decided at the *close* of bar ``t`` and may use only data whose
close time is <= that close; the engine fills it at bar ``t + 1`` or later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# order types of an entry intent
MARKET = 0
LIMIT = 1
STOP = 2


@dataclass
class Signals:
    """Order intents.

    entries : int8
        +1 open (or reverse into) a long, -1 open (or reverse into) a short, 0 nothing.
        An entry in the direction already held is ignored (no pyramiding).
    exits : bool
        Close whatever position is open, at market.
    order_type : int8 or None
        MARKET, LIMIT or STOP for the entry at that bar; None means all MARKET.
    price : float64 or None
        Limit/stop price of the entry (ignored for MARKET); NaN with LIMIT/STOP is an error.
    size : float64 or None
        Entry size in the unit of the backtest's ``size_type``; NaN or None = configured default.
    sl, tp, trail : float64 or None
        Stop-loss, take-profit and trailing-stop distances as fractions of the entry fill price
        (0.02 = 2 %), attached to the position opened by that entry; NaN or None = none.
    """

    entries: np.ndarray
    exits: np.ndarray
    order_type: np.ndarray | None = None
    price: np.ndarray | None = None
    size: np.ndarray | None = None
    sl: np.ndarray | None = None
    tp: np.ndarray | None = None
    trail: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.entries.shape  # type: ignore[return-value]
