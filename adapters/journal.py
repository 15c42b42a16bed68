"""The run journal: every order, fill, decision and state change of a trading run, in SQLite.

One file, ``journal.sqlite``, in the run directory, in WAL mode with ``synchronous=FULL``:
each event is one transaction, committed before the caller takes its next action, so a
``kill -9`` at any point leaves the journal as it was after the last completed write. A
restarted run opens the same file and continues from it.

Tables:

* ``meta``: the run's identity (strategy, exchange, symbols, run id) and latches (the kill
  switch's reason while it holds).
* ``orders``: one row per client order id, written *before* the order is sent (status
  ``pending``), then updated with what the exchange answered (``open``, ``closed``,
  ``canceled``, ``rejected``, ``expired``) and how much has filled.
* ``fills``: one row per exchange trade id (a trade seen twice is stored once).
* ``state``: a broker's whole state after its last bar (the paper broker's snapshot), so
  a restarted paper run continues from it.
* ``records``: append-only chunks of a broker's records (the paper broker's kernel fills and
  trades), each written in the transaction of the state that first counts it, so the state
  row itself stays small however long the run.
* ``events``: an append-only log (decisions, retries, rejections, reconciliation
  differences, kill switch) with the time and a JSON detail.

The journal never holds credentials: callers pass it order fields and exchange messages;
:func:`scrub` removes the key strings from any text that reaches it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gogo2.errors import UserInputError

FILE_NAME = "journal.sqlite"
TERMINAL = ("closed", "canceled", "rejected", "expired")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    client_id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    type TEXT NOT NULL,
    amount REAL NOT NULL,
    price REAL,
    bar_time INTEGER NOT NULL,
    intent TEXT NOT NULL,
    status TEXT NOT NULL,
    exchange_id TEXT,
    filled REAL NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    adopted INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_exchange_id ON orders (exchange_id);
CREATE TABLE IF NOT EXISTS fills (
    trade_id TEXT PRIMARY KEY,
    client_id TEXT,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    price REAL NOT NULL,
    qty REAL NOT NULL,
    fee REAL NOT NULL,
    fee_currency TEXT NOT NULL DEFAULT '',
    time INTEGER NOT NULL,
    missed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    first INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (kind, first)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kind_time ON events (kind, time);
"""

# What the order manager asks at every bar, kept up to date by the database itself in the
# transaction of each write, so the per-bar questions do not read the whole history: each
# order's quantity in the stored fills (``orders.stored``; a fill stored before its order row
# is counted when the row comes), each symbol's net quantity (``positions``), and a partial
# index over the orders the exchange reports more filled than stored. A journal written
# before these existed is brought up to date once, in one transaction, when it is opened.
_LIVE = "({})".format(", ".join(f"'{t}'" for t in TERMINAL))
_DERIVED = (
    "CREATE TABLE IF NOT EXISTS positions (symbol TEXT PRIMARY KEY, qty REAL NOT NULL)",
    """CREATE TRIGGER IF NOT EXISTS fills_stored AFTER INSERT ON fills BEGIN
    UPDATE orders SET stored = stored + NEW.qty WHERE client_id = NEW.client_id;
    INSERT INTO positions VALUES (NEW.symbol, 0.0) ON CONFLICT (symbol) DO NOTHING;
    UPDATE positions SET qty = qty + CASE NEW.side WHEN 'buy' THEN NEW.qty ELSE -NEW.qty END
        WHERE symbol = NEW.symbol;
END""",
    """CREATE TRIGGER IF NOT EXISTS orders_stored AFTER INSERT ON orders BEGIN
    UPDATE orders SET stored = (SELECT COALESCE(SUM(qty), 0) FROM fills
        WHERE client_id = NEW.client_id) WHERE client_id = NEW.client_id;
END""",
    "CREATE INDEX IF NOT EXISTS orders_unsettled ON orders (symbol) WHERE filled > stored + 1e-12",
    f"CREATE INDEX IF NOT EXISTS orders_live ON orders (client_id) WHERE status NOT IN {_LIVE}",
)


def _secrets() -> list[str]:
    out = []
    for name in ("GOGO2_API_KEY", "GOGO2_API_SECRET", "GOGO2_API_PASSWORD"):
        v = os.environ.get(name)
        if v and len(v) >= 4:
            out.append(v)
    return out


def scrub(text: str) -> str:
    """``text`` with every credential of the environment replaced by ``***``."""
    for s in _secrets():
        text = text.replace(s, "***")
    return text


_INSERT_FILL = "INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _fill_row(f: dict[str, Any], missed: bool) -> tuple[Any, ...]:
    """The ``fills`` table row of a trade dict (a trade id already stored is skipped)."""
    return (
        str(f["trade_id"]),
        f.get("client_id"),
        f["symbol"],
        f["side"],
        float(f["price"]),
        float(f["qty"]),
        float(f.get("fee") or 0.0),
        str(f.get("fee_currency") or ""),
        int(f["time"]),
        int(missed),
    )


@dataclass(frozen=True)
class OrderRow:
    client_id: str
    symbol: str
    side: str
    type: str
    amount: float
    price: float | None
    bar_time: int
    intent: str
    status: str
    exchange_id: str | None
    filled: float
    reason: str
    adopted: bool

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class JournalMismatchError(UserInputError):
    """A journal of another strategy, exchange or symbol set was given as ``--run``."""


class Journal:
    """See the module docstring. ``path`` is the run directory (created if missing);
    ``durable=False`` skips the fsync of each commit (a throwaway journal, e.g. a parity
    replay's)."""

    def __init__(self, run_dir: str | Path, durable: bool = True) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / FILE_NAME
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self.db.executescript(_SCHEMA)
        self._derive()

    def close(self) -> None:
        self.db.close()

    def _derive(self) -> None:
        """Create the derived column, table, triggers and indexes (``_DERIVED``); a journal
        written before they existed gets them filled from its stored fills, in the same
        transaction."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cols = [r[1] for r in self.db.execute("PRAGMA table_info(orders)")]
            old = "stored" not in cols
            if old:
                self.db.execute("ALTER TABLE orders ADD COLUMN stored REAL NOT NULL DEFAULT 0")
            for stmt in _DERIVED:
                self.db.execute(stmt)
            if old:
                self.db.execute(
                    "UPDATE orders SET stored = (SELECT COALESCE(SUM(qty), 0) FROM fills "
                    "WHERE fills.client_id = orders.client_id)"
                )
                self.db.execute(
                    "INSERT INTO positions SELECT symbol, SUM(CASE side WHEN 'buy' THEN qty "
                    "ELSE -qty END) FROM (SELECT symbol, side, qty FROM fills ORDER BY rowid) "
                    "GROUP BY symbol"
                )

    # -- identity and latches -------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, scrub(value)))

    def bind(self, identity: dict[str, str]) -> bool:
        """Tie the journal to a run identity (strategy, exchange, symbols, ...). A new journal
        takes it; an existing one must match. Returns True when the journal already held a
        run (a restart)."""
        held = {k: self.meta(f"id.{k}") for k in identity}
        if all(v is None for v in held.values()):
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                for k, v in identity.items():
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"id.{k}", v))
            return False
        for k, v in identity.items():
            if held[k] != v:
                raise JournalMismatchError(
                    f"--run {self.dir} holds a journal of {k} {held[k]!r}, not {v!r}; give a "
                    f"new --run directory, or run it with {k} {held[k]!r}."
                )
        return True

    # -- events ---------------------------------------------------------------------------

    def event(self, at: int, kind: str, **detail: Any) -> None:
        text = scrub(json.dumps(detail, default=str, sort_keys=True))
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT INTO events (time, kind, detail) VALUES (?, ?, ?)", (int(at), kind, text)
            )

    def events(self, kind: str | None = None) -> list[tuple[int, str, dict[str, Any]]]:
        q = "SELECT time, kind, detail FROM events"
        args: tuple[Any, ...] = ()
        if kind is not None:
            q += " WHERE kind=?"
            args = (kind,)
        return [(t, k, json.loads(d)) for t, k, d in self.db.execute(q + " ORDER BY seq", args)]

    def record_bar(
        self,
        at: int,
        detail: dict[str, Any],
        fills: Iterable[dict[str, Any]],
        state: bytes,
        records: Iterable[tuple[str, int, bytes]] = (),
    ) -> None:
        """One bar of a simulated account in one transaction: its fills, a ``bar`` event, the
        broker's state after it and the records it adds (``(kind, first, data)`` chunks, see
        :meth:`save_state`); a kill -9 leaves the bar before or this one, whole."""
        text = scrub(json.dumps(detail, default=str, sort_keys=True))
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for f in fills:
                self.db.execute(_INSERT_FILL, _fill_row(f, missed=False))
            self.db.execute(
                "INSERT INTO events (time, kind, detail) VALUES (?, 'bar', ?)", (int(at), text)
            )
            self._put_state("broker", state, records)

    def save_state(
        self, state: bytes, key: str = "broker", records: Iterable[tuple[str, int, bytes]] = ()
    ) -> None:
        """A broker's state, in one transaction (the simulated exchange after an order), with
        the records it adds: ``(kind, first, data)``, ``data`` holding records ``first``,
        ``first + 1``, ... of ``kind`` (the state says how many there are)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self._put_state(key, state, records)

    def _put_state(self, key: str, state: bytes, records: Iterable[tuple[str, int, bytes]]):
        for kind, first, data in records:
            self.db.execute(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?)", (kind, int(first), data)
            )
        self.db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, state))

    def state(self, key: str = "broker") -> bytes | None:
        row = self.db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def records(self, kind: str) -> list[tuple[int, bytes]]:
        """The ``(first, data)`` chunks of ``kind`` stored with :meth:`save_state`, in order."""
        q = "SELECT first, data FROM records WHERE kind=? ORDER BY first"
        return [(int(f), bytes(d)) for f, d in self.db.execute(q, (kind,))]

    # -- orders ---------------------------------------------------------------------------

    def add_order(
        self,
        client_id: str,
        symbol: str,
        side: str,
        type_: str,
        amount: float,
        price: float | None,
        bar_time: int,
        intent: str,
        now: int,
        status: str = "pending",
        exchange_id: str | None = None,
        filled: float = 0.0,
        adopted: bool = False,
    ) -> bool:
        """Record an order before it is sent. False when the client id is already known (the
        same decision seen again: nothing new to send)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute(
                "INSERT OR IGNORE INTO orders (client_id, symbol, side, type, amount, price, "
                "bar_time, intent, status, exchange_id, filled, adopted, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    client_id,
                    symbol,
                    side,
                    type_,
                    float(amount),
                    price,
                    int(bar_time),
                    intent,
                    status,
                    exchange_id,
                    float(filled),
                    int(adopted),
                    int(now),
                ),
            )
            return cur.rowcount == 1

    def update_order(
        self,
        client_id: str,
        now: int,
        *,
        status: str | None = None,
        exchange_id: str | None = None,
        filled: float | None = None,
        reason: str | None = None,
    ) -> None:
        sets, args = ["updated=?"], [int(now)]
        for col, v in (
            ("status", status),
            ("exchange_id", exchange_id),
            ("filled", filled),
            ("reason", None if reason is None else scrub(reason)),
        ):
            if v is not None:
                sets.append(f"{col}=?")
                args.append(v)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                f"UPDATE orders SET {', '.join(sets)} WHERE client_id=?", (*args, client_id)
            )

    def order(self, client_id: str) -> OrderRow | None:
        row = self.db.execute(
            f"SELECT {_ORDER_COLS} FROM orders WHERE client_id=?", (client_id,)
        ).fetchone()
        return None if row is None else _order(row)

    def orders(self, live_only: bool = False) -> list[OrderRow]:
        q = f"SELECT {_ORDER_COLS} FROM orders"
        if live_only:  # the few still open, through their partial index
            q += f" INDEXED BY orders_live WHERE status NOT IN {_LIVE}"
        return [_order(r) for r in self.db.execute(q + " ORDER BY rowid")]

    def client_ids(self, exchange_ids: Iterable[str]) -> dict[str, str]:
        """exchange order id -> client id, for the ids the journal knows."""
        out = {}
        for eid in exchange_ids:
            row = self.db.execute(
                "SELECT client_id FROM orders WHERE exchange_id=?", (eid,)
            ).fetchone()
            if row is not None:
                out[eid] = row[0]
        return out

    def orders_since(self, since_ms: int) -> int:
        """Orders recorded (sent or attempted) at or after ``since_ms``."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM events WHERE kind='submit' AND time>=?", (int(since_ms),)
        ).fetchone()
        return int(row[0])

    # -- fills ----------------------------------------------------------------------------

    def add_fills(self, fills: Iterable[dict[str, Any]], missed: bool = False) -> list[dict]:
        """Store exchange trades (ccxt trade dicts already reduced by the caller to the
        columns); a trade id already stored is skipped. Returns the new ones."""
        new = []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for f in fills:
                cur = self.db.execute(_INSERT_FILL, _fill_row(f, missed))
                if cur.rowcount == 1:
                    new.append(f)
        return new

    def fills(self) -> list[dict[str, Any]]:
        cols = ("trade_id", "client_id", "symbol", "side", "price", "qty", "fee")
        q = f"SELECT {', '.join(cols)}, fee_currency, time, missed FROM fills ORDER BY time, rowid"
        out = []
        for r in self.db.execute(q):
            d = dict(zip(cols, r[:7], strict=True))
            d.update(fee_currency=r[7], time=r[8], missed=bool(r[9]))
            out.append(d)
        return out

    def unfilled_symbols(self) -> list[str]:
        """Symbols with an order the exchange reports more filled than the fills stored."""
        q = "SELECT DISTINCT symbol FROM orders WHERE filled > stored + 1e-12 ORDER BY symbol"
        return [r[0] for r in self.db.execute(q)]

    def filled_qty(self, client_id: str) -> float:
        row = self.db.execute(
            "SELECT COALESCE(SUM(qty), 0) FROM fills WHERE client_id=?", (client_id,)
        ).fetchone()
        return float(row[0])

    def positions(self) -> dict[str, float]:
        """Net base quantity per symbol from the stored fills (buys minus sells)."""
        return dict(self.db.execute("SELECT symbol, qty FROM positions ORDER BY symbol"))


_ORDER_COLS = (
    "client_id, symbol, side, type, amount, price, bar_time, intent, status, exchange_id, "
    "filled, reason, adopted"
)


def _order(r: tuple) -> OrderRow:
    return OrderRow(*r[:12], adopted=bool(r[12]))
