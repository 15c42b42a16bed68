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

    Every field is checked by ``simulate`` and ``Strategy.signals`` (``engine.checks``) and
    refused, never cast, when a value breaks its rule; the error names the field, the bar's
    time, the symbol and the value.

    entries : int8 (or bool / any number holding only these values)
        +1 open (or reverse into) a long, -1 open (or reverse into) a short, 0 nothing.
        An entry in the direction already held is ignored (no pyramiding).
    exits : bool (or numbers 0/1)
        Close whatever position is open, at market. NaN (e.g. the first row of a pandas
        ``.shift()``) and object arrays are refused: use ``.shift(fill_value=False)``.
    order_type : int8 or None
        MARKET, LIMIT or STOP for the entry at that bar; None means all MARKET. Read on
        entry rows only; NaN or another code there is refused.
    price : float64 or None
        Limit/stop price of the entry (ignored for MARKET); a LIMIT/STOP entry needs a
        finite price > 0.
    size : float64 or None
        Entry size in the unit of the backtest's ``size_type``, > 0; NaN or None =
        configured default.
    sl, tp, trail : float64 or None
        Stop-loss, take-profit and trailing-stop distances as fractions of the entry fill price
        (0.02 = 2 %), attached to the position opened by that entry; NaN or None = none.
        ``sl`` and ``trail`` lie in (0, 1]; ``tp`` is > 0 and finite, at most 1 for a short.
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
