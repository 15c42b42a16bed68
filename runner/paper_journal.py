"""A paper run in the journal the live command keeps (``adapters.journal``).

With ``paper --run DIR`` every bar is one journal transaction: the bar's fills (the kernel's,
with deterministic trade ids), a ``bar`` event (decision, equity, cash, positions) and the
paper broker's whole snapshot after it. Starting again with the same ``--run DIR`` restores
the snapshot before the first bar (resting orders, positions with their exits, cash,
counters) and continues with the bars after the last one recorded; a journal of another
strategy, exchange, symbol set or timeframe is refused.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

_ARRAYS = ("fs", "ist", "gs", "counters", "fills", "trades")


def pack(snap: dict[str, Any]) -> bytes:
    """A paper broker snapshot as ``.npz`` bytes (no pickle)."""
    buf = io.BytesIO()
    scalars = np.array(
        [snap["bar"], -1 if snap["last_time"] is None else snap["last_time"]], dtype=np.int64
    )
    np.savez(
        buf,
        scalars=scalars,
        equity=np.array([snap["equity"]]),
        **{k: snap[k] for k in _ARRAYS},
    )
    return buf.getvalue()


def unpack(data: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        out = {k: z[k].copy() for k in _ARRAYS}
        bar, last = (int(x) for x in z["scalars"])
        out.update(bar=bar, last_time=None if last < 0 else last, equity=float(z["equity"][0]))
    return out


def last_bar(run_dir: Path) -> int | None:
    """Open time of the last bar a paper journal holds (None: a new journal)."""
    from adapters.journal import FILE_NAME, Journal

    if not (Path(run_dir) / FILE_NAME).is_file():
        return None
    j = Journal(run_dir)
    try:
        data = j.state()
    finally:
        j.close()
    return None if data is None else unpack(data)["last_time"]


class PaperJournal:
    """See the module docstring."""

    def __init__(self, run_dir: Path, req: Any, broker: Any) -> None:
        from adapters.journal import Journal

        self.journal = Journal(run_dir)
        self.broker = broker
        self.restarted = self.journal.bind(
            {
                "mode": "paper",
                "strategy": req.strategy,
                "params": json.dumps(req.params, sort_keys=True, default=str),
                "exchange": req.exchange,
                "symbols": ",".join(req.symbols),
                "timeframe": req.timeframe,
            }
        )
        data = self.journal.state()
        self.last_time: int | None = None
        if data is not None:
            broker.restore(unpack(data))
            self.last_time = broker.last_time

    def on_status(self, st: Any) -> None:
        from runner.live import describe_intents

        decision = ""
        if st.intents is not None:
            decision = describe_intents(st.intents, tuple(self.broker.symbols))
        fills = [
            {
                "trade_id": f"paper-{f.time}-{f.symbol}-{k}",
                "symbol": f.symbol,
                "side": "buy" if f.side > 0 else "sell",
                "price": f.price,
                "qty": f.qty,
                "fee": f.fee,
                "time": f.time,
            }
            for k, f in enumerate(st.fills)
        ]
        self.journal.record_bar(
            st.time,
            {
                "time": st.time,
                "equity": st.equity,
                "positions": st.positions,
                "decision": decision,
            },
            fills,
            pack(self.broker.snapshot()),
        )

    def close(self) -> None:
        self.journal.close()
