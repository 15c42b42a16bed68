"""Constants and record dtypes shared by the numba kernels and the pandas-facing layer.

Everything here is a plain int or a numpy dtype so numba kernels can use it as a
compile-time constant. The names of the string forms (``FILL_KIND_NAMES``,
``EXIT_REASON_NAMES``) are what ``BacktestResult.fills`` / ``.trades`` show.
"""

from __future__ import annotations

import numpy as np

# --- order types of an entry intent (same values as engine.signals) ---------------------------
MARKET = 0
LIMIT = 1
STOP = 2

# --- size types -----------------------------------------------------------------------------
SIZE_PERCENT = 0  # fraction of equity
SIZE_CASH = 1  # amount of quote currency
SIZE_UNITS = 2  # units of the base asset
SIZE_TYPES = {"percent": SIZE_PERCENT, "cash": SIZE_CASH, "units": SIZE_UNITS}

# --- fill kinds: what produced a fill -------------------------------------------------------
KIND_MARKET = 0  # market entry (and the close of a position it reverses)
KIND_LIMIT = 1  # limit entry (and the close of a position it reverses)
KIND_STOP = 2  # stop entry (and the close of a position it reverses)
KIND_EXIT = 3  # an ``exits`` signal, at market
KIND_STOP_LOSS = 4
KIND_TAKE_PROFIT = 5
KIND_TRAILING_STOP = 6
KIND_END = 7  # close-out at the end of data (or when equity is exhausted)
FILL_KIND_NAMES = (
    "market",
    "limit",
    "stop",
    "exit",
    "stop_loss",
    "take_profit",
    "trailing_stop",
    "end",
)

# --- exit reasons of a trade ----------------------------------------------------------------
EXIT_SIGNAL = 0
EXIT_REVERSE = 1
EXIT_STOP_LOSS = 2
EXIT_TAKE_PROFIT = 3
EXIT_TRAILING_STOP = 4
EXIT_END = 5
EXIT_REASON_NAMES = ("signal", "reverse", "stop_loss", "take_profit", "trailing_stop", "end")

# --- layout of the float64 parameter vector handed to the kernel ----------------------------
P_CASH = 0
P_FEE_TAKER = 1
P_FEE_MAKER = 2
P_SLIPPAGE = 3  # fraction (bps / 10_000)
P_SIZE_TYPE = 4
P_SIZE = 5
P_ALLOW_SHORT = 6
P_LEVERAGE = 7
P_MIN_NOTIONAL = 8
P_LOT_SIZE = 9
P_ORDER_TTL = 10
P_WARMUP = 11
P_TF_MS = 12
P_CLOSE_AT_END = 13  # 1.0 = close open positions at the end of data
N_PARAMS = 14

# --- flags telling the kernel which optional signal arrays are real -------------------------
F_ORDER_TYPE = 0
F_PRICE = 1
F_SIZE = 2
F_SL = 3
F_TP = 4
F_TRAIL = 5
N_FLAGS = 6

# --- counters the kernel writes -------------------------------------------------------------
C_FILLS = 0
C_TRADES = 1
C_REJECTED = 2
C_EXPOSED_BARS = 3
C_HALTED_BAR = 4  # -1 when trading never stopped for lack of equity
C_EXPIRED = 5  # market entries dropped because their symbol had no candle at the next bar
N_COUNTERS = 6

# --- record dtypes --------------------------------------------------------------------------
fill_dt = np.dtype(
    [
        ("bar", np.int64),  # row of the base index during which the fill happened
        ("time", np.int64),  # ms UTC: the bar's open time; its close time for end close-outs
        ("symbol", np.int64),  # column index into Bars.symbols
        ("side", np.int64),  # +1 buy, -1 sell
        ("kind", np.int64),  # KIND_*
        ("price", np.float64),
        ("qty", np.float64),  # > 0
        ("notional", np.float64),  # price * qty
        ("fee", np.float64),  # quote currency, >= 0
    ],
    align=True,
)

trade_dt = np.dtype(
    [
        ("symbol", np.int64),
        ("direction", np.int64),  # +1 long, -1 short
        ("entry_bar", np.int64),
        ("entry_time", np.int64),
        ("entry_price", np.float64),
        ("exit_bar", np.int64),
        ("exit_time", np.int64),
        ("exit_price", np.float64),
        ("size", np.float64),  # units, > 0
        ("pnl", np.float64),  # net of entry and exit fees
        ("ret", np.float64),  # pnl / entry notional
        ("fees", np.float64),
        ("exit_reason", np.int64),  # EXIT_*
    ],
    align=True,
)
