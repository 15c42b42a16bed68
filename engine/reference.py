"""A plain-Python reference of the simulation rules, for differential testing.

Written from the rules in ``engine.backtest``'s module docstring, not from the kernel: it
uses objects (orders, positions, an account) and lists and favours plain statements over
speed. It returns the same record arrays as the kernel so tests can compare them field by
field. It is far too slow for real backtests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine import enums
from engine.backtest import SimConfig
from engine.signals import Signals


@dataclass
class _Order:
    direction: int  # +1 buy/long, -1 sell/short
    kind: int  # enums.MARKET / LIMIT / STOP
    price: float
    size: float  # NaN = config default
    sl: float
    tp: float
    trail: float
    bars_active: int = 0
    due: int = -1  # market entries: the open time they must fill at (decision bar's close)


@dataclass
class _Position:
    qty: float  # signed
    entry_price: float
    base: float  # price before slippage; stop-loss, take-profit and trailing measure from it
    entry_fee: float
    entry_bar: int
    entry_time: int
    sl: float
    tp: float
    trail: float
    best: float  # highest price since entry for a long, lowest for a short
    opened_inside_bar: int  # bar index if filled inside that bar, else -1

    @property
    def direction(self) -> int:
        return 1 if self.qty > 0 else -1


@dataclass
class _Bar:
    index: int
    time: int
    open: float
    high: float
    low: float
    close: float


class ReferenceSim:
    """Event-by-event simulation of one account trading several symbols."""

    def __init__(self, cfg: SimConfig, n_symbols: int, warmup: int, tf_ms: int) -> None:
        self.cfg = cfg
        self.m = n_symbols
        self.warmup = warmup
        self.tf_ms = tf_ms
        self.cash = cfg.cash
        self.slip = cfg.slippage_bps / 10_000.0
        self.positions: list[_Position | None] = [None] * n_symbols
        self.last_close = [0.0] * n_symbols
        # positions opened earlier in the current bar count at their fill price until the
        # bar's close is known (the close of a symbol before the bar, or none, is not theirs)
        self.fill_value: dict[int, float] = {}
        self.resting: list[_Order | None] = [None] * n_symbols  # limit/stop entries
        self.market: list[_Order | None] = [None] * n_symbols
        self.exit_requested = [False] * n_symbols
        self.fills: list[tuple] = []
        self.trades: list[tuple] = []
        self.rejected = 0
        self.expired = 0
        self.exposed = 0
        self.halted_at = -1

    # ---- prices and costs
    def _adverse(self, price: float, side: int, bar: _Bar) -> float:
        p = price * (1.0 + side * self.slip)
        return min(max(p, bar.low), bar.high)

    # ---- account
    def _value_price(self, sym: int) -> float:
        return self.fill_value.get(sym, self.last_close[sym])

    def _equity_marked(self) -> float:
        total = self.cash
        for k, pos in enumerate(self.positions):
            if pos is not None:
                total += pos.qty * self._value_price(k)
        return total

    def _fill(self, bar_i: int, tm: int, sym: int, side: int, kind: int, price: float, qty: float,
              fee: float) -> None:  # fmt: skip
        self.fills.append((bar_i, tm, sym, side, kind, price, qty, price * qty, fee))

    def _exit(self, sym: int, bar_i: int, tm: int, price: float, rate: float, kind: int,
              reason: int) -> None:  # fmt: skip
        pos = self.positions[sym]
        assert pos is not None
        qty = abs(pos.qty)
        fee = qty * price * rate
        if pos.qty > 0:
            self.cash += qty * price - fee
        else:
            self.cash -= qty * price + fee
        self._fill(bar_i, tm, sym, -pos.direction, kind, price, qty, fee)
        gross = (price - pos.entry_price) * qty * pos.direction
        pnl = gross - pos.entry_fee - fee
        self.trades.append(
            (
                sym,
                pos.direction,
                pos.entry_bar,
                pos.entry_time,
                pos.entry_price,
                bar_i,
                tm,
                price,
                qty,
                pnl,
                pnl / (pos.entry_price * qty),
                pos.entry_fee + fee,
                reason,
            )
        )
        self.positions[sym] = None

    def _enter(self, sym: int, bar: _Bar, order: _Order, price: float, base: float, rate: float,
               inside: bool) -> None:  # fmt: skip
        cfg = self.cfg
        equity = self._equity_marked()
        others = sum(
            abs(p.qty) * self._value_price(k)
            for k, p in enumerate(self.positions)
            if p is not None and k != sym
        )
        amount = cfg.size if math.isnan(order.size) else order.size
        if cfg.size_type == "percent":
            qty = amount * equity / price
        elif cfg.size_type == "cash":
            qty = amount / price
        else:
            qty = amount
        power = equity * cfg.leverage - others
        cap = power / (price * (1.0 + rate)) if power > 0 else 0.0
        qty = min(qty, cap)
        if cfg.lot_size > 0:
            lots = qty / cfg.lot_size
            whole = math.floor(lots)
            if lots - whole > 1.0 - 1e-9:
                whole += 1
            qty = whole * cfg.lot_size
        if not qty > 0 or qty * price < cfg.min_notional:
            self.rejected += 1
            return
        fee = qty * price * rate
        if order.direction > 0:
            self.cash -= qty * price + fee
        else:
            self.cash += qty * price - fee
        if -1e-9 * qty * price < self.cash < 0:
            self.cash = 0.0  # rounding residue of an all-in entry
        self.fill_value[sym] = price
        self.positions[sym] = _Position(
            qty=order.direction * qty,
            entry_price=price,
            base=base,
            entry_fee=fee,
            entry_bar=bar.index,
            entry_time=bar.time,
            sl=order.sl,
            tp=order.tp,
            trail=order.trail,
            best=base,
            opened_inside_bar=bar.index if inside else -1,
        )
        self._fill(bar.index, bar.time, sym, order.direction, order.kind, price, qty, fee)

    # ---- attached exits
    @staticmethod
    def _protective(pos: _Position) -> tuple[float, int, int]:
        """Level that would stop the position out, with its fill kind and exit reason."""
        candidates = []
        if not math.isnan(pos.sl):
            candidates.append((pos.base * (1.0 - pos.direction * pos.sl), 0, enums.KIND_STOP_LOSS))
        if not math.isnan(pos.trail):
            candidates.append(
                (pos.best * (1.0 - pos.direction * pos.trail), 1, enums.KIND_TRAILING_STOP)
            )
        if not candidates:
            return (-math.inf if pos.direction > 0 else math.inf), 0, 0
        # the level closest to the price triggers first; the stop-loss wins ties
        if pos.direction > 0:
            level, _, kind = max(candidates, key=lambda c: (c[0], -c[1]))
        else:
            level, _, kind = min(candidates, key=lambda c: (c[0], c[1]))
        reason = enums.EXIT_STOP_LOSS if kind == enums.KIND_STOP_LOSS else enums.EXIT_TRAILING_STOP
        return level, kind, reason

    @staticmethod
    def _target(pos: _Position) -> float:
        if math.isnan(pos.tp):
            return math.inf if pos.direction > 0 else -math.inf
        return pos.base * (1.0 + pos.direction * pos.tp)

    def _check_gap_exits(self, sym: int, bar: _Bar) -> None:
        pos = self.positions[sym]
        if pos is None:
            return
        level, kind, reason = self._protective(pos)
        d = pos.direction
        if (bar.open - level) * d <= 0:
            px = self._adverse(bar.open, -d, bar)
            self._exit(sym, bar.index, bar.time, px, self.cfg.fee_taker, kind, reason)
            return
        target = self._target(pos)
        if (bar.open - target) * d >= 0:
            # the open is already beyond the target: a marketable order, taker, slipped,
            # never worse than the target
            px = self._adverse(bar.open, -d, bar)
            px = max(px, target) if d > 0 else min(px, target)
            self._exit(
                sym,
                bar.index,
                bar.time,
                px,
                self.cfg.fee_taker,
                enums.KIND_TAKE_PROFIT,
                enums.EXIT_TAKE_PROFIT,
            )

    def _check_range_exits(self, sym: int, bar: _Bar, take_profit: bool) -> None:
        pos = self.positions[sym]
        if pos is None:
            return
        level, kind, reason = self._protective(pos)
        d = pos.direction
        adverse_extreme = bar.low if d > 0 else bar.high
        favourable_extreme = bar.high if d > 0 else bar.low
        if (adverse_extreme - level) * d <= 0:
            px = self._adverse(level, -d, bar)
            self._exit(sym, bar.index, bar.time, px, self.cfg.fee_taker, kind, reason)
            return
        if not take_profit:
            return
        target = self._target(pos)
        if (favourable_extreme - target) * d >= 0:
            self._exit(
                sym,
                bar.index,
                bar.time,
                target,
                self.cfg.fee_maker,
                enums.KIND_TAKE_PROFIT,
                enums.EXIT_TAKE_PROFIT,
            )

    # ---- resting entries
    def _try_resting(self, sym: int, bar: _Bar, at_open: bool) -> bool:
        """Return True when the resting order filled (or tried to: a rejection also consumes it)."""
        order = self.resting[sym]
        if order is None:
            return False
        pos = self.positions[sym]
        if pos is not None and pos.direction == order.direction:
            self.resting[sym] = None
            return False
        d = order.direction
        if order.kind == enums.LIMIT:
            if at_open:
                # marketable when it meets the open: taker, slipped, never beyond the limit
                touched, base = (bar.open - order.price) * d <= 0, bar.open
                px = self._adverse(bar.open, d, bar)
                px = min(px, order.price) if d > 0 else max(px, order.price)
                rate = self.cfg.fee_taker
            else:
                extreme = bar.low if d > 0 else bar.high
                touched, px = (extreme - order.price) * d <= 0, order.price
                base = order.price
                rate = self.cfg.fee_maker
        else:
            if at_open:
                touched, base = (bar.open - order.price) * d >= 0, bar.open
            else:
                extreme = bar.high if d > 0 else bar.low
                touched, base = (extreme - order.price) * d >= 0, order.price
            px = self._adverse(base, d, bar)
            rate = self.cfg.fee_taker
        if not touched:
            return False
        self.resting[sym] = None
        if pos is not None:
            self._exit(sym, bar.index, bar.time, px, rate, order.kind, enums.EXIT_REVERSE)
        self._enter(sym, bar, order, px, base, rate, inside=not at_open)
        return True

    # ---- one bar of one symbol
    def _on_bar(self, sym: int, bar: _Bar) -> None:
        cfg = self.cfg
        if self.exit_requested[sym]:
            self.exit_requested[sym] = False
            pos = self.positions[sym]
            if pos is not None:
                px = self._adverse(bar.open, -pos.direction, bar)
                self._exit(
                    sym, bar.index, bar.time, px, cfg.fee_taker, enums.KIND_EXIT, enums.EXIT_SIGNAL
                )
        order = self.market[sym]
        if order is not None:
            self.market[sym] = None
            pos = self.positions[sym]
            if bar.time != order.due:
                self.expired += 1  # the symbol skipped the bar after the decision
            elif pos is None or pos.direction != order.direction:
                px = self._adverse(bar.open, order.direction, bar)
                if pos is not None:
                    self._exit(
                        sym,
                        bar.index,
                        bar.time,
                        px,
                        cfg.fee_taker,
                        enums.KIND_MARKET,
                        enums.EXIT_REVERSE,
                    )
                self._enter(sym, bar, order, px, bar.open, cfg.fee_taker, inside=False)
        self._check_gap_exits(sym, bar)
        self._try_resting(sym, bar, at_open=True)
        self._check_range_exits(sym, bar, take_profit=True)
        if self.resting[sym] is not None:
            filled = self._try_resting(sym, bar, at_open=False)
            pos = self.positions[sym]
            if filled:
                if pos is not None and pos.opened_inside_bar == bar.index:
                    self._check_range_exits(sym, bar, take_profit=False)
            elif self.resting[sym] is not None:
                self.resting[sym].bars_active += 1
                if cfg.order_ttl > 0 and self.resting[sym].bars_active >= cfg.order_ttl:
                    self.resting[sym] = None
        pos = self.positions[sym]
        if pos is not None:
            inside = pos.opened_inside_bar == bar.index
            if pos.direction > 0:
                pos.best = max(pos.best, bar.close if inside else bar.high)
            else:
                pos.best = min(pos.best, bar.close if inside else bar.low)

    def _take_signal(self, sym: int, t: int, sig: dict[str, np.ndarray | None]) -> None:
        entry = int(sig["entries"][t, sym])
        leave = bool(sig["exits"][t, sym]) if sig["exits"] is not None else False
        if entry == -1 and not self.cfg.allow_short:
            entry, leave = 0, True
        if leave:
            self.exit_requested[sym] = True
            self.market[sym] = None
            self.resting[sym] = None
        if entry == 0:
            return

        def get(name: str, default: float) -> float:
            a = sig[name]
            return default if a is None else float(a[t, sym])

        kind = int(get("order_type", enums.MARKET))
        order = _Order(
            direction=entry,
            kind=kind,
            price=get("price", math.nan),
            size=get("size", math.nan),
            sl=get("sl", math.nan),
            tp=get("tp", math.nan),
            trail=get("trail", math.nan),
            due=int(sig["time"][t]) + self.tf_ms,
        )
        self.market[sym] = None
        self.resting[sym] = None
        if kind == enums.MARKET:
            self.market[sym] = order
        else:
            self.resting[sym] = order

    def run(self, time, open_, high, low, close, sig) -> dict[str, np.ndarray | int]:
        n = len(time)
        equity = np.zeros(n)
        cash = np.zeros(n)
        positions = np.zeros((n, self.m))
        for t in range(n):
            if self.halted_at >= 0:
                equity[t] = cash[t] = self.cash
                continue
            for sym in range(self.m):
                if math.isnan(open_[t, sym]):
                    continue
                bar = _Bar(t, int(time[t]), open_[t, sym], high[t, sym], low[t, sym], close[t, sym])
                self._on_bar(sym, bar)
            for sym in range(self.m):
                if not math.isnan(close[t, sym]):
                    self.last_close[sym] = float(close[t, sym])
            self.fill_value.clear()
            held = [p for p in self.positions if p is not None]
            if held:
                self.exposed += 1
            value = self._equity_marked()
            for sym, p in enumerate(self.positions):
                positions[t, sym] = 0.0 if p is None else p.qty
            if t >= self.warmup:
                for sym in range(self.m):
                    self._take_signal(sym, t, sig)
            if value <= 0:  # ruined at the close, or by a loss realised at a fill
                for sym in range(self.m):
                    if self.positions[sym] is not None:
                        self._exit(
                            sym,
                            t,
                            int(time[t]) + self.tf_ms,
                            self.last_close[sym],
                            self.cfg.fee_taker,
                            enums.KIND_END,
                            enums.EXIT_END,
                        )
                positions[t] = 0.0
                value = self.cash
                self.halted_at = t
            equity[t] = value
            cash[t] = self.cash
        end_close = self.cfg.close_at_end and self.halted_at < 0
        if n and end_close and any(p is not None for p in self.positions):
            for sym in range(self.m):
                if self.positions[sym] is not None:
                    self._exit(
                        sym,
                        n - 1,
                        int(time[n - 1]) + self.tf_ms,
                        self.last_close[sym],
                        self.cfg.fee_taker,
                        enums.KIND_END,
                        enums.EXIT_END,
                    )
            positions[n - 1] = 0.0
            equity[n - 1] = cash[n - 1] = self.cash
        return {
            "fills": np.array(self.fills, dtype=enums.fill_dt),
            "trades": np.array(self.trades, dtype=enums.trade_dt),
            "equity": equity,
            "cash": cash,
            "positions": positions,
            "rejected": self.rejected,
            "expired": self.expired,
            "exposed_bars": self.exposed,
            "halted_bar": self.halted_at,
        }


def simulate_reference(bars, signals: Signals, config: SimConfig | None = None, warmup: int = 0):
    """Run the reference loop; returns a dict of record arrays and counters like the kernel's."""
    cfg = SimConfig() if config is None else config
    sig = {
        name: (None if getattr(signals, name) is None else np.asarray(getattr(signals, name)))
        for name in ("entries", "exits", "order_type", "price", "size", "sl", "tp", "trail")
    }
    sig["time"] = np.asarray(bars.time)
    sim = ReferenceSim(cfg, len(bars.symbols), warmup, bars.tf_ms)
    return sim.run(
        np.asarray(bars.time),
        np.asarray(bars.open, dtype=float),
        np.asarray(bars.high, dtype=float),
        np.asarray(bars.low, dtype=float),
        np.asarray(bars.close, dtype=float),
        sig,
    )
