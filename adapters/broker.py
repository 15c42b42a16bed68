"""The broker seam and the paper broker.

A broker is driven by the runner once per closed base bar, in two calls:

1. ``on_bar(bar)``: the bar opened at ``bar.time`` has closed; return the fills that
   happened during it (orders decided at earlier closes executing at its open or inside it)
   and update the account.
2. ``submit(time, intents)``: the strategy's decisions at that bar's close, one row per
   symbol in the kernel's intent language (entry +1/-1/0, market exit, order type, limit or
   stop price, size, stop-loss, take-profit, trailing fractions); they execute from the next
   bar on.

``account()`` reports cash, equity and positions; ``finish(time)`` ends the run (the paper
broker closes what is open at the last close, as a backtest does at the end of its data).
A broker for real orders keeps the same four calls: ``on_bar`` then fetches the fills of
its open orders, ``submit`` turns each intent into orders (with client order ids derived from
run, bar time, symbol and intent).

:class:`PaperBroker` fills through the numba kernel of the backtest itself
(``engine.nb.step_bar_nb`` / ``step_intents_nb`` on state carried from bar to bar): it has
no fill rule of its own, so a replay through it and a backtest cannot drift apart. It holds
no ccxt client and no keys; given ccxt market definitions it applies the exchange's amount
step, price tick and minimum cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from engine import enums
from gogo2.errors import UserInputError

#: most fills one symbol can make in one bar (exit, reversal close + open, stop of a fresh
#: entry, ...), with room to spare
_FILLS_PER_SYMBOL = 6


@dataclass(frozen=True)
class BarRow:
    """One closed bar of every symbol: open time (ms UTC) and (m,) price arrays, NaN where a
    symbol has no candle."""

    time: int
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass
class Intents:
    """The decisions of one bar's close for every symbol, as (1, m) kernel rows."""

    entries: np.ndarray  # int8
    exits: np.ndarray  # bool
    order_type: np.ndarray  # int8
    price: np.ndarray
    size: np.ndarray
    sl: np.ndarray
    tp: np.ndarray
    trail: np.ndarray
    flags: np.ndarray  # int8 (N_FLAGS,)

    @classmethod
    def empty(cls, m: int) -> Intents:
        nan = np.full((1, m), np.nan)
        return cls(
            np.zeros((1, m), np.int8),
            np.zeros((1, m), np.bool_),
            np.zeros((1, m), np.int8),
            nan.copy(),
            nan.copy(),
            nan.copy(),
            nan.copy(),
            nan.copy(),
            np.zeros(enums.N_FLAGS, np.int8),
        )

    @classmethod
    def from_signals(cls, sig: dict[str, Any], row: int) -> Intents:
        """Row ``row`` of kernel-ready signal arrays (``engine.checks.kernel_signals``);
        absent fields keep their placeholders (the flags say which are real)."""
        flags = np.ascontiguousarray(sig["flags"], dtype=np.int8)

        def take(name: str, flag: int | None, dtype: Any) -> np.ndarray:
            a = sig[name]
            if flag is not None and not flags[flag]:
                return a
            return np.ascontiguousarray(a[row : row + 1], dtype=dtype)

        return cls(
            take("entries", None, np.int8),
            take("exits", None, np.bool_),
            take("order_type", enums.F_ORDER_TYPE, np.int8),
            take("price", enums.F_PRICE, np.float64),
            take("size", enums.F_SIZE, np.float64),
            take("sl", enums.F_SL, np.float64),
            take("tp", enums.F_TP, np.float64),
            take("trail", enums.F_TRAIL, np.float64),
            flags,
        )

    def any(self) -> bool:
        return bool(self.entries.any() or self.exits.any())


@dataclass(frozen=True)
class Fill:
    time: int  # ms UTC
    symbol: str
    side: int  # +1 buy, -1 sell
    kind: str
    price: float
    qty: float
    fee: float


@dataclass
class Account:
    cash: float
    equity: float
    positions: dict[str, float] = field(default_factory=dict)
    halted: bool = False


class Broker(Protocol):
    """What the runner needs of a broker (paper now, an exchange account later)."""

    symbols: tuple[str, ...]

    def on_bar(self, bar: BarRow) -> list[Fill]: ...

    def submit(self, time: int, intents: Intents) -> None: ...

    def account(self) -> Account: ...

    def finish(self, time: int) -> list[Fill]: ...


@dataclass(frozen=True)
class MarketRules:
    """An exchange's trading rules for one symbol (from a ccxt market definition)."""

    amount_step: float = 0.0  # 0 = no rounding
    price_tick: float = 0.0
    min_cost: float = 0.0
    min_amount: float = 0.0

    @classmethod
    def from_ccxt(cls, market: dict[str, Any], precision_mode: int) -> MarketRules:
        """Steps from ``market["precision"]`` (a step under ccxt's TICK_SIZE mode, a number
        of decimals under DECIMAL_PLACES) and minima from ``market["limits"]``."""

        def step(value: Any) -> float:
            if value is None:
                return 0.0
            v = float(value)
            if precision_mode == 4:  # ccxt.TICK_SIZE
                return v
            return 10.0 ** (-v)  # DECIMAL_PLACES / SIGNIFICANT_DIGITS read as decimals

        prec = market.get("precision") or {}
        limits = market.get("limits") or {}
        cost = (limits.get("cost") or {}).get("min")
        amount = (limits.get("amount") or {}).get("min")
        return cls(
            amount_step=step(prec.get("amount")),
            price_tick=step(prec.get("price")),
            min_cost=float(cost) if cost else 0.0,
            min_amount=float(amount) if amount else 0.0,
        )

    def round_price(self, price: float) -> float:
        if not self.price_tick or not math.isfinite(price):
            return price
        return round(round(price / self.price_tick) * self.price_tick, 12)


class PaperBroker:
    """Simulated fills on the backtest kernel's own code path (see the module docstring).

    Parameters
    ----------
    symbols : tuple of str
    config : engine.backtest.SimConfig
        Cash, costs, sizing, lot size and minimum notional, as in a backtest.
    tf_ms : int
        Base bar length in ms.
    rules : dict of symbol -> MarketRules, optional
        An exchange's rules: the amount step replaces the lot size when coarser, the
        minimum cost the minimum notional when larger; limit and stop prices are rounded to
        the tick before they rest.
    """

    def __init__(
        self,
        symbols: tuple[str, ...],
        config: Any,
        tf_ms: int,
        rules: dict[str, MarketRules] | None = None,
    ) -> None:
        from engine import nb

        self.symbols = tuple(symbols)
        self.config = config
        self.tf_ms = int(tf_ms)
        m = len(self.symbols)
        self._nb = nb
        self.params = config.to_params(0, self.tf_ms)
        self.fs = np.zeros((m, nb.N_FSTATE))
        self.ist = np.zeros((m, nb.N_ISTATE), dtype=np.int64)
        self.gs = np.zeros(nb.N_GSTATE)
        self.counters = np.zeros(enums.N_COUNTERS, dtype=np.int64)
        nb.init_state_nb(self.params, self.fs, self.ist, self.gs, self.counters)
        self.rules = dict(rules or {})
        for j, s in enumerate(self.symbols):
            r = self.rules.get(s)
            if r is None:
                continue
            if r.amount_step > self.fs[j, nb.S_LOT]:
                self.fs[j, nb.S_LOT] = r.amount_step
            floor = max(r.min_cost, 0.0)
            if floor > self.fs[j, nb.S_MIN_COST]:
                self.fs[j, nb.S_MIN_COST] = floor
        self._fills = np.zeros(_FILLS_PER_SYMBOL * m + 4, dtype=enums.fill_dt)
        self._trades = np.zeros(_FILLS_PER_SYMBOL * m + 4, dtype=enums.trade_dt)
        self._pos_row = np.zeros((1, m))
        self.fill_records: list[np.ndarray] = []
        self.trade_records: list[np.ndarray] = []
        self.bar = -1  # bars processed so far - 1 (the kernel's bar id)
        self.last_time: int | None = None
        self.equity = float(config.cash)
        self.n_fills = 0
        self.n_trades = 0
        self.closed_at_end = False

    # -- the seam --------------------------------------------------------------------------

    def on_bar(self, bar: BarRow) -> list[Fill]:
        if self.last_time is not None and bar.time <= self.last_time:
            raise UserInputError(
                f"bar at {bar.time} is not after the last bar {self.last_time}; a feed must "
                "deliver each closed bar once, in time order."
            )
        self.bar += 1
        self.last_time = int(bar.time)
        rows = [
            np.ascontiguousarray(a, dtype=np.float64).reshape(1, -1)
            for a in (bar.open, bar.high, bar.low, bar.close)
        ]
        self.counters[enums.C_FILLS] = 0
        self.counters[enums.C_TRADES] = 0
        self.equity = float(
            self._nb.step_bar_nb(
                self.bar,
                np.array([int(bar.time)], dtype=np.int64),
                *rows,
                self.params,
                self.fs,
                self.ist,
                self.gs,
                self._fills,
                self._trades,
                self._pos_row,
                self.counters,
            )
        )
        return self._collect()

    def submit(self, time: int, intents: Intents) -> None:
        if self.last_time is None or int(time) != self.last_time:
            raise UserInputError(
                f"intents for the bar at {time} arrive but the last closed bar is "
                f"{self.last_time}; decide on the bar just closed."
            )
        if not intents.any():
            return
        if self.rules and intents.flags[enums.F_PRICE]:
            price = intents.price.copy()
            for j, s in enumerate(self.symbols):
                r = self.rules.get(s)
                if r is not None:
                    price[0, j] = r.round_price(float(price[0, j]))
            intents.price = price
        self._nb.step_intents_nb(
            int(time),
            intents.entries,
            intents.exits,
            intents.order_type,
            intents.price,
            intents.size,
            intents.sl,
            intents.tp,
            intents.trail,
            intents.flags,
            self.params,
            self.fs,
            self.ist,
            self.counters,
        )

    def register(self, j: int, row: dict[str, Any]) -> None:
        """The decision of one order for symbol ``j`` (the paper venue's accepted order):
        the kernel's intent row with only that symbol's column set."""
        m = len(self.symbols)
        it = Intents.empty(m)
        it.entries[0, j] = row["entry"]
        it.exits[0, j] = row["exit"]
        it.order_type[0, j] = row["order_type"]
        price = row["price"]
        r = self.rules.get(self.symbols[j])
        if r is not None:
            price = r.round_price(price)
        for name, v in (("price", price), ("size", row["size"]), ("sl", row["sl"])):
            getattr(it, name)[0, j] = v
        it.tp[0, j] = row["tp"]
        it.trail[0, j] = row["trail"]
        it.flags = np.asarray(row["flags"], dtype=np.int8)
        self._nb.step_intents_nb(
            int(self.last_time),
            it.entries,
            it.exits,
            it.order_type,
            it.price,
            it.size,
            it.sl,
            it.tp,
            it.trail,
            it.flags,
            self.params,
            self.fs,
            self.ist,
            self.counters,
        )

    def cancel(self, j: int, kind: str) -> None:
        """Drop symbol ``j``'s resting entry (``kind="entry"``) or pending exit."""
        nb = self._nb
        if kind == "entry":
            self.ist[j, nb.I_P_DIR] = 0
        else:
            self.ist[j, nb.I_P_EXIT] = 0

    def account(self) -> Account:
        from engine import nb

        pos = {s: float(self.fs[j, nb.S_POS]) for j, s in enumerate(self.symbols)}
        return Account(
            cash=float(self.gs[nb.G_CASH]),
            equity=self.equity,
            positions=pos,
            halted=bool(self.counters[enums.C_HALTED_BAR] >= 0),
        )

    def finish(self, time: int | None = None) -> list[Fill]:
        """Close what is open at its last close with the taker fee (reason "end"), as the
        backtest does at the end of its data. ``time`` defaults to the last bar's close."""
        if self.last_time is None or self.counters[enums.C_HALTED_BAR] >= 0:
            return []
        tm = self.last_time + self.tf_ms if time is None else int(time)
        self.counters[enums.C_FILLS] = 0
        self.counters[enums.C_TRADES] = 0
        closed = self._nb.close_all_nb(
            self.bar,
            tm,
            self.params,
            self.fs,
            self.ist,
            self.gs,
            self._fills,
            self._trades,
            self.counters,
        )
        self.closed_at_end = bool(closed)
        if closed:
            self.equity = float(self.gs[self._nb.G_CASH])
        return self._collect()

    # -- state (a journal stores it; a restarted run restores it before its first bar) -------

    def snapshot(self, records: bool = True) -> dict[str, Any]:
        """The whole simulated account: kernel state, counters, bar number, records so far
        (``records=False``: without the fill and trade records, which only grow; a journal
        keeps those as it goes, ``fill_records`` / ``trade_records`` chunk by chunk)."""
        snap = {
            "fs": self.fs.copy(),
            "ist": self.ist.copy(),
            "gs": self.gs.copy(),
            "counters": self.counters.copy(),
            "bar": self.bar,
            "last_time": self.last_time,
            "equity": self.equity,
        }
        if records:
            snap.update(fills=self.fills_array(), trades=self.trades_array())
        return snap

    def restore(self, snap: dict[str, Any]) -> None:
        """Continue from :meth:`snapshot` (same symbols and config): resting orders, open
        positions with their stops, cash and counters are as they were."""
        if snap["fs"].shape != self.fs.shape:
            raise UserInputError(
                f"the saved paper account holds {snap['fs'].shape[0]} symbols, this run "
                f"{self.fs.shape[0]}; resume it with the same --symbols."
            )
        self.fs[:] = snap["fs"]
        self.ist[:] = snap["ist"]
        self.gs[:] = snap["gs"]
        self.counters[:] = snap["counters"]
        self.bar = int(snap["bar"])
        self.last_time = None if snap["last_time"] is None else int(snap["last_time"])
        self.equity = float(snap["equity"])
        self.fill_records = [snap["fills"]] if len(snap["fills"]) else []
        self.trade_records = [snap["trades"]] if len(snap["trades"]) else []

    # -- records -----------------------------------------------------------------------------

    @property
    def rejected(self) -> int:
        return int(self.counters[enums.C_REJECTED])

    @property
    def expired(self) -> int:
        return int(self.counters[enums.C_EXPIRED])

    @property
    def exposed_bars(self) -> int:
        return int(self.counters[enums.C_EXPOSED_BARS])

    @property
    def halted_bar(self) -> int | None:
        h = int(self.counters[enums.C_HALTED_BAR])
        return None if h < 0 else h

    def positions_row(self) -> np.ndarray:
        return self._pos_row[0].copy()

    def fills_array(self) -> np.ndarray:
        if not self.fill_records:
            return np.zeros(0, dtype=enums.fill_dt)
        return np.concatenate(self.fill_records)

    def trades_array(self) -> np.ndarray:
        if not self.trade_records:
            return np.zeros(0, dtype=enums.trade_dt)
        return np.concatenate(self.trade_records)

    def _collect(self) -> list[Fill]:
        nf = int(self.counters[enums.C_FILLS])
        nt = int(self.counters[enums.C_TRADES])
        if nf > self._fills.shape[0] or nt > self._trades.shape[0]:  # pragma: no cover
            raise RuntimeError(f"paper broker buffers too small ({nf} fills, {nt} trades)")
        out: list[Fill] = []
        if nf:
            rec = self._fills[:nf].copy()
            self.fill_records.append(rec)
            kinds = enums.FILL_KIND_NAMES
            for f in rec:
                out.append(
                    Fill(
                        int(f["time"]),
                        self.symbols[int(f["symbol"])],
                        int(f["side"]),
                        kinds[int(f["kind"])],
                        float(f["price"]),
                        float(f["qty"]),
                        float(f["fee"]),
                    )
                )
        if nt:
            self.trade_records.append(self._trades[:nt].copy())
        self.n_fills += nf
        self.n_trades += nt
        return out
