"""A paper run in the journal the live command keeps (``adapters.journal``).

With ``paper --run DIR`` the orders go through the live order manager
(``adapters.orders.OrderManager``) to the paper venue (``adapters.paper_venue``): client
order ids, each order journaled before it is sent, fills stored as the venue's trades,
reconciliation at the start and every ``live.reconcile_every`` bars, and the kill switch of
the ``live`` config section. Every bar then ends in one journal transaction: a ``bar`` event
(decision, equity, cash, positions), the paper broker's snapshot after it (the kernel state
and the venue's open business: open orders, orders and trades the journal has not settled
yet) and the kernel fill and trade records the bar added, appended to the journal's
``records`` (the snapshot counts them). The venue saves the same after each accepted order
too. What one bar writes is therefore bounded by the account's open business and that bar's
fills, not by the length of the run. Starting again with the same ``--run DIR`` restores the
snapshot and the records it counts before the first bar (resting orders, positions with
their exits, cash, counters, the run's trades so far) and continues with the bars after the
last one recorded; a journal of another strategy, exchange, symbol set or timeframe is
refused. A journal whose snapshot still holds every record (written before the records were
kept apart) is read as well; its first save moves them to ``records``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from gogo2.errors import UserInputError

_ARRAYS = ("fs", "ist", "gs", "counters")
_RECORDS = ("fills", "trades")  # kernel records: in ``records`` (older snapshots: inline)


class DamagedJournalError(UserInputError):
    """A paper journal's saved records do not add up to what its snapshot counts."""


def pack(snap: dict[str, Any]) -> bytes:
    """A paper broker snapshot as ``.npz`` bytes (no pickle). ``snap["records"]``: how many
    fill and trade records the journal's ``records`` hold (else ``snap["fills"]`` and
    ``snap["trades"]`` inline)."""
    buf = io.BytesIO()
    scalars = np.array(
        [snap["bar"], -1 if snap["last_time"] is None else snap["last_time"]], dtype=np.int64
    )
    extra: dict[str, np.ndarray] = {}
    if "records" in snap:
        extra["records"] = np.array([snap["records"][k] for k in _RECORDS], dtype=np.int64)
    else:
        extra.update({k: snap[k] for k in _RECORDS})
    if "venue" in snap:
        extra["venue"] = snap["venue"]
    np.savez(
        buf,
        scalars=scalars,
        equity=np.array([snap["equity"]]),
        **{k: snap[k] for k in _ARRAYS},
        **extra,
    )
    return buf.getvalue()


def unpack(data: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        out = {k: z[k].copy() for k in _ARRAYS}
        bar, last = (int(x) for x in z["scalars"])
        out.update(bar=bar, last_time=None if last < 0 else last, equity=float(z["equity"][0]))
        if "records" in z.files:
            out["records"] = dict(zip(_RECORDS, (int(x) for x in z["records"]), strict=True))
        else:
            out.update({k: z[k].copy() for k in _RECORDS})
        if "venue" in z.files:
            out["venue"] = json.loads(z["venue"].tobytes().decode())
    return out


def _dtype(kind: str) -> np.dtype:
    from engine import enums

    return np.dtype(enums.fill_dt if kind == "fills" else enums.trade_dt)


def read_records(journal: Any, kind: str, count: int) -> np.ndarray:
    """The first ``count`` records of ``kind`` ("fills" or "trades") a journal holds."""
    dt = _dtype(kind)
    parts, have = [], 0
    for first, data in journal.records(kind):
        if first >= count:
            break
        if first != have or len(data) % dt.itemsize:
            have = -1
            break
        parts.append(np.frombuffer(data, dtype=dt))
        have += len(parts[-1])
    if have < count:
        raise DamagedJournalError(
            f"--run {journal.dir}: its saved paper account counts {count} kernel {kind} but "
            f"the journal's records hold {max(have, 0)} in order; the journal is damaged. "
            "Continue in a new --run directory."
        )
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=dt)
    return out[:count].copy()


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
    """See the module docstring (``durable=False``: no fsync per commit, for tests)."""

    def __init__(
        self,
        run_dir: Path,
        req: Any,
        broker: Any,
        settings: Any,
        say: Any = print,
        *,
        durable: bool = True,
    ) -> None:
        from adapters.journal import Journal
        from adapters.paper_venue import PaperOrderBroker
        from runner.live_session import run_id_of

        self.journal = Journal(run_dir, durable=durable)
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
        # records in the journal's ``records`` (how many) and chunks of the broker's lists
        # already there: each save appends the chunks after them
        self._saved = dict.fromkeys(_RECORDS, 0)
        self._chunks = dict.fromkeys(_RECORDS, 0)
        if snap is not None:
            counts = snap.pop("records", None)
            if counts is not None:
                for k in _RECORDS:
                    snap[k] = read_records(self.journal, k, counts[k])
            broker.restore(snap)
            if counts is not None:  # else an inline snapshot: the first save moves them
                self._saved = dict(counts)
                self._chunks = {k: len(self._lists()[k]) for k in _RECORDS}
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

    def _lists(self) -> dict[str, list[np.ndarray]]:
        return {"fills": self.paper.fill_records, "trades": self.paper.trade_records}

    def snapshot(self) -> tuple[bytes, list[tuple[str, int, bytes]]]:
        """The snapshot to save and the record chunks to append with it (those made since
        the last save): ``(state, [(kind, first, data), ...])``."""
        from adapters.paper_venue import venue_bytes

        lists = self._lists()
        chunks, counts = [], {}
        for k in _RECORDS:
            new = lists[k][self._chunks[k] :]
            counts[k] = self._saved[k]
            if new:
                block = np.concatenate(new) if len(new) > 1 else new[0]
                chunks.append((k, self._saved[k], block.tobytes()))
                counts[k] += len(block)
        snap = {**self.paper.snapshot(records=False), "records": counts}
        return pack({**snap, "venue": venue_bytes(self.venue)}), chunks

    def _saved_now(self, chunks: list[tuple[str, int, bytes]]) -> None:
        """The chunks are in the journal: the next save starts after them."""
        lists = self._lists()
        for k, _, data in chunks:
            self._saved[k] += len(data) // _dtype(k).itemsize
            self._chunks[k] = len(lists[k])

    def save(self) -> None:
        state, chunks = self.snapshot()
        self.journal.save_state(state, records=chunks)
        self._saved_now(chunks)

    def on_status(self, st: Any) -> None:
        from runner.live import describe_intents

        decision = ""
        if st.intents is not None:
            decision = describe_intents(st.intents, tuple(self.broker.symbols))
        fills: list[dict] = []  # the order manager stored them as the venue's trades
        state, chunks = self.snapshot()
        self.journal.record_bar(
            st.time,
            {
                "time": st.time,
                "equity": st.equity,
                "positions": st.positions,
                "decision": decision,
            },
            fills,
            state,
            records=chunks,
        )
        self._saved_now(chunks)

    def close(self) -> None:
        self.journal.close()
