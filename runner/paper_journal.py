"""A paper run in the journal the live command keeps (``adapters.journal``).

With ``paper --run DIR`` the orders go through the live order manager
(``adapters.orders.OrderManager``) to the paper venue (``adapters.paper_venue``): client
order ids, each order journaled before it is sent, fills stored as the venue's trades,
reconciliation at the start and every ``live.reconcile_every`` bars, and the kill switch of
the ``live`` config section. Every bar then ends in one journal transaction: a ``bar`` event
(decision, equity, cash, positions) and the paper broker's whole snapshot after it (the
kernel state and the venue's orders and trades; the venue saves it after each accepted order
too). Starting again with the same ``--run DIR`` restores
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
        **({"venue": snap["venue"]} if "venue" in snap else {}),
    )
    return buf.getvalue()


def unpack(data: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        out = {k: z[k].copy() for k in _ARRAYS}
        bar, last = (int(x) for x in z["scalars"])
        out.update(bar=bar, last_time=None if last < 0 else last, equity=float(z["equity"][0]))
        if "venue" in z.files:
            out["venue"] = json.loads(z["venue"].tobytes().decode())
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

    def __init__(
        self, run_dir: Path, req: Any, broker: Any, settings: Any, say: Any = print
    ) -> None:
        from adapters.journal import Journal
        from adapters.paper_venue import PaperOrderBroker
        from runner.live_session import run_id_of

        self.journal = Journal(run_dir)
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
        self.paper = broker
        data = self.journal.state()
        snap = None if data is None else unpack(data)
        if snap is not None:
            broker.restore(snap)
        self.last_time: int | None = broker.last_time
        self.broker = PaperOrderBroker.open(
            broker,
            self.journal,
            settings.live,
            run_id_of(self.journal),
            say=say,
            persist=self.save,
            venue_state=None if snap is None else snap.get("venue"),
            restarted=self.restarted,
        )
        self.venue = self.broker.venue
        self.om = self.broker.om

    def snapshot(self) -> bytes:
        from adapters.paper_venue import venue_bytes

        return pack({**self.paper.snapshot(), "venue": venue_bytes(self.venue)})

    def save(self) -> None:
        self.journal.save_state(self.snapshot())

    def on_status(self, st: Any) -> None:
        from runner.live import describe_intents

        decision = ""
        if st.intents is not None:
            decision = describe_intents(st.intents, tuple(self.broker.symbols))
        fills: list[dict] = []  # the order manager stored them as the venue's trades
        self.journal.record_bar(
            st.time,
            {
                "time": st.time,
                "equity": st.equity,
                "positions": st.positions,
                "decision": decision,
            },
            fills,
            self.snapshot(),
        )

    def close(self) -> None:
        self.journal.close()
