"""Signal-to-fill simulation: check inputs, run the numba kernel, wrap the records.

    from engine.backtest import SimConfig, simulate
    result = simulate(bars, signals, SimConfig(cash=10_000.0), warmup=50)
    result.equity, result.trades, result.fills

Simulation rules
----------------
Timing
    Row ``t`` of the signals is decided at the close of bar ``t``; nothing it asks for can
    execute before bar ``t + 1``. Rows before ``warmup`` produce no orders, so the first
    possible fill is at bar ``warmup + 1``. A symbol with no candle (NaN) at a bar skips it:
    its pending exits and resting limit/stop entries wait for its next valid bar.
Market orders
    An ``exits`` signal fills at the open of the symbol's next valid bar. A market entry
    (``order_type`` MARKET, also a reversal) is good for the next bar of the time grid only
    (the bar opening at the decision bar's close): if its symbol has no candle there (an
    outage), the entry expires unfilled and is counted in ``expired``; a stale decision is
    never executed at a price long after it. When a row has both an exit and an entry for a
    symbol, the exit is done first and the entry after it (so exit + same-direction entry
    closes and reopens).
Limit and stop entries
    Active from the next bar; they rest until filled, until the next entry or exit signal
    of that symbol replaces or cancels them, or for ``order_ttl`` bars of that symbol
    (0 = no limit). Trigger by the bar's range, gaps fill at the open:
    limit buy: open <= limit -> open, else low <= limit -> limit;
    stop buy: open >= stop -> open, else high >= stop -> stop; sells mirror this.
    A touch at exactly the level fills (low == limit, high == stop). A limit that is
    marketable at the open (the open at or through its price) is a taker fill like a market
    order: taker fee and slippage, clipped into the bar and never beyond the limit price.
    A resting entry in the direction already held is dropped (no pyramiding).
Position exits (stop-loss, take-profit, trailing stop)
    Fractions from the entry's signal row, measured from the entry's *reference price*: the
    price before slippage (the open for market entries and for fills at the open, the
    order's level for limit/stop fills inside the bar), so slippage never moves the levels
    and a stop tighter than the slippage is not hit by the entry itself. A long's stop-loss
    is ``ref * (1 - sl)``, its take-profit ``ref * (1 + tp)``, its trailing stop
    ``best * (1 - trail)`` where ``best`` starts at ``ref`` and is the highest price seen
    since entry; shorts mirror. The tighter of stop-loss and trailing stop is the protective
    stop. They are checked from the bar the position is opened: a gap through a level fills
    at the open (a take-profit gapped through is marketable: taker fee and slippage, never
    worse than the target); otherwise the bar's low/high touching it, equality included,
    fills it at the level. **Pessimistic rule**: when one bar touches both the stop and the
    take-profit, the stop is taken (a gap at the open is not ambiguous: an open beyond the take-profit fills it there, since the open
    comes first). The trailing reference ``best`` is updated with a bar's high (low for
    shorts) only after that bar's stop check. For a position opened *inside* a bar (a
    limit/stop entry filled at its price) the same bar checks only the protective stop
    (assuming the adverse extreme came after the fill), its take-profit starts on the next
    bar, and ``best`` is updated with the bar's close, not its high.
Order of events inside one bar, per symbol
    1. pending market exit, then pending market entry (or its expiry), at the open;
    2. held position's stop / take-profit gapped through at the open;
    3. resting limit/stop entry gapped through at the open;
    4. held position's stop, then take-profit, touched inside the bar;
    5. resting limit/stop entry touched inside the bar, then the new position's stop;
    6. trailing reference update.
    Symbols are processed in column order within a bar; they share one cash balance.
Reversal
    An entry opposite to the open position closes it (exit reason "reverse") and opens the
    new one at the same fill price and fee rate. If the new leg is rejected (min notional,
    buying power) the account is left flat.
Costs
    Maker fee for limit entries and take-profits filled at their price inside a bar; taker
    fee for everything else: market entries, ``exits``, stop entries, stop-losses, trailing
    stops, limits and take-profits marketable at the open, and the end-of-data close. Taker
    fills (except the end-of-data close) get ``slippage_bps`` adversely and are then clipped
    into the bar's [low, high]. Fees are paid in quote currency from cash.
Sizing
    ``size_type`` "percent" (fraction of equity), "cash" (quote amount) or "units";
    ``signals.size`` overrides ``size`` per row (NaN = default). Equity for sizing is
    cash + positions valued at their last *previous* close (never the current bar's close);
    a position opened, reversed or changed earlier in the same bar (a lower column, or the
    same symbol's reversal) is valued at its fill price until its close exists: equity and
    buying power never value a position at a price the simulation has not seen (not at 0
    for a symbol with no earlier candle, not at a close from before an outage).
    Buying power is ``equity * leverage`` minus the gross value of the other open positions;
    an order larger than it is reduced to fit (fee included), quantities are rounded down to
    a multiple of ``lot_size``, and an order whose notional is then below ``min_notional`` (or
    zero) is not placed and is counted in ``rejected``. Exits are never rejected.
    ``allow_short=False`` turns a short entry into a market exit of the long at the next
    open, whatever its ``order_type``: a LIMIT/STOP short entry's price is ignored (the
    account is long-only, and getting flat is what that signal can still mean).
    Cash never shows a negative rounding residue: after an entry, a cash value within 1e-9
    of the entry's notional below zero is set to 0.
Accounting
    Equity = cash + sum(qty * last valid close) after every bar; short sales credit cash.
    ``equity``, ``cash`` and ``positions`` are indexed by bar close time. A fill's ``time``
    is the open time of the bar it happened in (the candle's label; the exact moment inside
    the bar is unknown), except end-of-data close-outs, stamped with the bar's close time.
    At the end of data every open position is closed at its last valid close with the taker
    fee and no slippage (exit reason "end", fill time = close time of the last bar), so the
    trade list and the final equity agree; ``equity_before_close`` keeps the equity marked
    at that close before the close-out. With ``close_at_end=False`` positions stay open and
    the last equity is marked to the last close.
Known simplifications
    Spot-like margin model: no liquidation engine, no funding, no borrow fees. If equity at
    a bar's close is <= 0 (exactly 0 included), whether from positions marked there or from
    a loss realised at a fill during the bar with nothing left open, every position is
    closed at that close (reason "end") and trading stops (``halted_bar``; the run summary
    shows a "halted" line); later signals place no orders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import checks, enums
from engine.signals import Signals
from gogo2.errors import ConfigError, DataError, UnknownNameError, UserInputError

if TYPE_CHECKING:
    import pandas as pd

    from datasets.bars import Bars, MultiBars
    from gogo2.config import BacktestConfig

__all__ = ["BacktestResult", "SimConfig", "SimRecords", "allocate_outputs", "simulate"]


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """Account and execution settings of one simulation.

    Parameters
    ----------
    cash : float
        Starting cash, quote currency, > 0.
    fee_taker, fee_maker : float
        Fee rates (0.001 = 0.1 %), in [0, 0.1).
    slippage_bps : float
        Adverse slippage on taker fills, basis points, in [0, 1000).
    size_type : {"percent", "cash", "units"}
        Meaning of ``size``: fraction of equity, amount of quote currency, or units.
    size : float
        Default order size, > 0.
    allow_short : bool
        When False a short entry only closes a long.
    leverage : float
        Buying power = equity * leverage, >= 1.
    min_notional : float
        Orders below this notional (quote currency) are not placed, >= 0.
    lot_size : float
        Quantities are rounded down to a multiple of this; 0 = no rounding.
    order_ttl : int
        Bars a resting limit/stop entry stays active; 0 = until filled, replaced or cancelled.
    close_at_end : bool
        True: positions still open at the end of data are closed at the last close (reason
        "end"). False: they stay open, valued at the last close.
    """

    cash: float = 10_000.0
    fee_taker: float = 0.001
    fee_maker: float = 0.001
    slippage_bps: float = 2.0
    size_type: str = "percent"
    size: float = 0.95
    allow_short: bool = True
    leverage: float = 1.0
    min_notional: float = 10.0
    lot_size: float = 1e-5
    order_ttl: int = 0
    close_at_end: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(
                f"backtest setting {name} = {getattr(self, name)!r} is invalid: it must be {rule}."
            )

        for name in ("cash", "size"):
            if not _finite(getattr(self, name)) or getattr(self, name) <= 0:
                raise bad(name, "a finite number > 0")
        for name in ("fee_taker", "fee_maker"):
            v = getattr(self, name)
            if not _finite(v) or not 0 <= v < 0.1:
                raise bad(name, "a rate in [0, 0.1), for example 0.001 for 0.1 %")
        if not _finite(self.slippage_bps) or not 0 <= self.slippage_bps < 1000:
            raise bad("slippage_bps", "in [0, 1000) basis points")
        if self.size_type not in enums.SIZE_TYPES:
            raise UnknownNameError(
                "size_type",
                self.size_type,
                enums.SIZE_TYPES,
                "Set backtest.size_type to one of them.",
            )
        if self.size_type == "percent" and self.size > self.leverage:
            raise bad("size", f"<= leverage ({self.leverage}) when size_type is 'percent'")
        if not _finite(self.leverage) or not 1 <= self.leverage <= 125:
            raise bad("leverage", "in [1, 125]")
        for name in ("min_notional", "lot_size"):
            if not _finite(getattr(self, name)) or getattr(self, name) < 0:
                raise bad(name, "a finite number >= 0")
        if not isinstance(self.order_ttl, int | np.integer) or self.order_ttl < 0:
            raise bad("order_ttl", "a whole number of bars >= 0")
        for name in ("allow_short", "close_at_end"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise bad(name, "true or false")

    @classmethod
    def frictionless(cls, **overrides: Any) -> SimConfig:
        """No fees, no slippage, no minimum notional, no lot rounding, all-in, long-only.

        For comparing with engines or textbook results that ignore costs: every entry
        buys with the whole equity (``size_type="percent"``, ``size=1.0``; an order is
        reduced to fit the buying power, fee included, so ``size=1.0`` stays all-in when
        fees are overridden), and a short entry only closes the long (``allow_short=False``).
        Any field can be overridden, e.g. ``SimConfig.frictionless(cash=1.0)``.

        Raises
        ------
        UnknownNameError
            An override names no field of SimConfig.
        """
        values: dict[str, Any] = {
            "fee_taker": 0.0,
            "fee_maker": 0.0,
            "slippage_bps": 0.0,
            "min_notional": 0.0,
            "lot_size": 0.0,
            "size_type": "percent",
            "size": 1.0,
            "allow_short": False,
        }
        names = [f.name for f in fields(cls)]
        for key, value in overrides.items():
            if key not in names:
                raise UnknownNameError("SimConfig field", key, names)
            values[key] = value
        return cls(**values)

    @classmethod
    def from_settings(cls, backtest: BacktestConfig, **overrides: Any) -> SimConfig:
        """Build from the ``backtest`` section of the settings; ``None`` overrides are ignored.

        Raises
        ------
        UnknownNameError
            An override names no field of SimConfig.
        """
        names = [f.name for f in fields(cls)]
        values = {n: getattr(backtest, n) for n in names if hasattr(backtest, n)}
        for key, value in overrides.items():
            if key not in names:
                raise UnknownNameError("backtest setting", key, names)
            if value is not None:
                values[key] = value
        return cls(**values)

    def to_params(self, warmup: int, tf_ms: int) -> np.ndarray:
        """The float64 parameter vector the kernel reads (layout: ``engine.enums.P_*``)."""
        p = np.zeros(enums.N_PARAMS, dtype=np.float64)
        p[enums.P_CASH] = self.cash
        p[enums.P_FEE_TAKER] = self.fee_taker
        p[enums.P_FEE_MAKER] = self.fee_maker
        p[enums.P_SLIPPAGE] = self.slippage_bps / 10_000.0
        p[enums.P_SIZE_TYPE] = enums.SIZE_TYPES[self.size_type]
        p[enums.P_SIZE] = self.size
        p[enums.P_ALLOW_SHORT] = 1.0 if self.allow_short else 0.0
        p[enums.P_LEVERAGE] = self.leverage
        p[enums.P_MIN_NOTIONAL] = self.min_notional
        p[enums.P_LOT_SIZE] = self.lot_size
        p[enums.P_ORDER_TTL] = self.order_ttl
        p[enums.P_WARMUP] = warmup
        p[enums.P_TF_MS] = tf_ms
        p[enums.P_CLOSE_AT_END] = 1.0 if self.close_at_end else 0.0
        return p


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class SimRecords:
    """Raw kernel outputs.

    fills : fill_dt (n_fills,); trades : trade_dt (n_trades,);
    equity, cash : float64 (n_bars,); positions : float64 (n_bars, n_symbols).
    """

    fills: np.ndarray
    trades: np.ndarray
    equity: np.ndarray
    cash: np.ndarray
    positions: np.ndarray


@dataclass
class BacktestResult:
    """What ``simulate`` returns: raw records plus pandas views built on first access.

    ``equity``, ``cash`` and ``positions`` are indexed by bar close time (UTC), values after
    each bar. ``trades`` has one row per closed trade, ``fills`` one row per fill (see the
    engine contract in the module docstring for the columns).

    ``rejected`` counts entries not placed (min notional, buying power), ``expired`` market
    entries dropped because their symbol had no candle at the next bar, ``halted_bar`` the
    bar at whose close equity was <= 0 (None when trading never stopped).
    ``equity_before_close`` is the equity marked at the last close before the end-of-data
    close-out (equal to the final equity when nothing was closed there).
    """

    records: SimRecords
    config: SimConfig
    symbols: tuple[str, ...]
    timeframe: str
    time: np.ndarray  # bar open times, int64 ms UTC
    tf_ms: int
    warmup: int = 0
    rejected: int = 0
    exposed_bars: int = 0
    halted_bar: int | None = None
    expired: int = 0
    equity_before_close: float = math.nan
    synthetic: bool = False
    exchange: str = ""
    meta: dict = field(default_factory=dict)

    @cached_property
    def index(self) -> pd.DatetimeIndex:
        """Bar close times as a UTC DatetimeIndex."""
        import pandas as pd

        return pd.DatetimeIndex(
            pd.to_datetime(self.time + self.tf_ms, unit="ms", utc=True), name="time"
        )

    @cached_property
    def equity(self) -> pd.Series:
        import pandas as pd

        return pd.Series(self.records.equity, index=self.index, name="equity")

    @cached_property
    def cash(self) -> pd.Series:
        import pandas as pd

        return pd.Series(self.records.cash, index=self.index, name="cash")

    @cached_property
    def positions(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.records.positions, index=self.index, columns=list(self.symbols))

    @cached_property
    def trades(self) -> pd.DataFrame:
        import pandas as pd

        r = self.records.trades
        sym = np.asarray(self.symbols, dtype=object)
        reasons = np.asarray(enums.EXIT_REASON_NAMES, dtype=object)
        return pd.DataFrame(
            {
                "symbol": pd.Series(sym[r["symbol"]], dtype=object),
                "direction": np.where(r["direction"] > 0, "long", "short").astype(object),
                "entry_time": pd.to_datetime(r["entry_time"], unit="ms", utc=True),
                "exit_time": pd.to_datetime(r["exit_time"], unit="ms", utc=True),
                "entry_price": r["entry_price"],
                "exit_price": r["exit_price"],
                "size": r["size"],
                "pnl": r["pnl"],
                "return": r["ret"],
                "fees": r["fees"],
                "exit_reason": reasons[r["exit_reason"]],
                "entry_bar": r["entry_bar"],
                "exit_bar": r["exit_bar"],
            }
        )

    @cached_property
    def fills(self) -> pd.DataFrame:
        import pandas as pd

        r = self.records.fills
        sym = np.asarray(self.symbols, dtype=object)
        kinds = np.asarray(enums.FILL_KIND_NAMES, dtype=object)
        return pd.DataFrame(
            {
                "time": pd.to_datetime(r["time"], unit="ms", utc=True),
                "symbol": sym[r["symbol"]],
                "side": r["side"],
                "kind": kinds[r["kind"]],
                "price": r["price"],
                "qty": r["qty"],
                "notional": r["notional"],
                "fee": r["fee"],
                "bar": r["bar"],
            }
        )

    @property
    def fees_paid(self) -> float:
        """Total fees, quote currency."""
        return float(self.records.fills["fee"].sum())

    @property
    def exposure(self) -> float:
        """Fraction of bars with any position open at the bar's close, counted from the first
        bar whose decision can act (``warmup``): warm-up bars are not part of the period."""
        n = self.time.shape[0] - min(self.warmup, self.time.shape[0])
        return self.exposed_bars / n if n else 0.0

    @property
    def final_equity(self) -> float:
        e = self.records.equity
        return float(e[-1]) if e.shape[0] else self.config.cash


def allocate_outputs(n: int, m: int, entries: np.ndarray) -> tuple[np.ndarray, ...]:
    """Output buffers of ``nb.simulate_nb`` for ``n`` bars x ``m`` symbols.

    Every entry row yields at most two fills (a reversal closes and opens) and one trade,
    so sizing the record arrays from the count of entry rows never overflows.
    Returns (fills, trades, equity, cash, positions, counters).
    """
    n_entry_rows = int(np.count_nonzero(entries))
    return (
        np.zeros(2 * n_entry_rows + 1, dtype=enums.fill_dt),
        np.zeros(n_entry_rows + 1, dtype=enums.trade_dt),
        np.empty(n, dtype=np.float64),
        np.empty(n, dtype=np.float64),
        np.empty((n, m), dtype=np.float64),
        np.zeros(enums.N_COUNTERS, dtype=np.int64),
    )


def simulate(
    bars: Bars | MultiBars, signals: Signals, config: SimConfig | None = None, warmup: int = 0
) -> BacktestResult:
    """Execute ``signals`` on ``bars`` and return a :class:`BacktestResult`.

    Parameters
    ----------
    bars : datasets.bars.Bars or datasets.bars.MultiBars
        Base-timeframe candles, arrays (n_bars, n_symbols); of a MultiBars the base is used.
    signals : engine.signals.Signals
        Intents of the same shape; row ``t`` fills at bar ``t + 1`` or later.
    config : SimConfig, optional
        Defaults to ``SimConfig()``.
    warmup : int
        Rows ``< warmup`` produce no orders.

    Raises
    ------
    DataError
        A candle is partly NaN, not finite, not > 0, or its low/high do not bound it.
    UserInputError
        The signals have the wrong shape, type or values (rules in ``engine.checks``).
    """
    from datasets.bars import Bars, MultiBars
    from engine import nb

    if isinstance(bars, MultiBars):
        bars = bars.bars  # decisions and fills happen on the base timeframe
    if not isinstance(bars, Bars):
        raise UserInputError(f"bars must be a datasets.bars.Bars, not {type(bars).__name__}.")
    cfg = SimConfig() if config is None else config
    if not isinstance(cfg, SimConfig):
        raise UserInputError(f"config must be a SimConfig, not {type(cfg).__name__}.")
    if not isinstance(warmup, int | np.integer) or isinstance(warmup, bool) or warmup < 0:
        raise UserInputError(f"warmup = {warmup!r} must be a whole number of bars >= 0.")
    n, m = len(bars.time), len(bars.symbols)
    if n == 0:
        raise DataError("the bars hold no candles; widen the time range or download data first.")

    time = np.ascontiguousarray(bars.time, dtype=np.int64)
    ohlc, checked = checks.prepare_inputs(bars, signals)  # one pass; rules in engine.checks
    sig = checks.kernel_signals(checked)
    params = cfg.to_params(int(warmup), int(bars.tf_ms))

    fills, trades, equity, cash, positions, counters = allocate_outputs(n, m, sig["entries"])
    nb.simulate_nb(
        time,
        *ohlc,
        sig["entries"],
        sig["exits"],
        sig["order_type"],
        sig["price"],
        sig["size"],
        sig["sl"],
        sig["tp"],
        sig["trail"],
        sig["flags"],
        params,
        fills,
        trades,
        equity,
        cash,
        positions,
        counters,
    )
    nf, nt = int(counters[enums.C_FILLS]), int(counters[enums.C_TRADES])
    if nf > fills.shape[0] or nt > trades.shape[0]:  # pragma: no cover - bound is exact
        raise RuntimeError(f"record buffers too small ({nf} fills, {nt} trades)")
    halted = int(counters[enums.C_HALTED_BAR])
    end = fills[:nf]
    end_fees = end["fee"][(end["kind"] == enums.KIND_END) & (end["bar"] == n - 1)]
    # the end close sells at the mark, so it only removes its fees from the marked equity
    before_close = float(equity[-1] + end_fees.sum()) if halted < 0 else float(equity[-1])
    return BacktestResult(
        records=SimRecords(fills[:nf], trades[:nt], equity, cash, positions),
        config=cfg,
        symbols=tuple(bars.symbols),
        timeframe=bars.timeframe,
        time=time,
        tf_ms=int(bars.tf_ms),
        warmup=int(warmup),
        rejected=int(counters[enums.C_REJECTED]),
        exposed_bars=int(counters[enums.C_EXPOSED_BARS]),
        halted_bar=None if halted < 0 else halted,
        expired=int(counters[enums.C_EXPIRED]),
        equity_before_close=before_close,
        synthetic=bool(bars.synthetic),
        exchange=bars.exchange,
    )


_prepare_signals = checks.prepare_signals  # signals alone, laid out for the kernel
