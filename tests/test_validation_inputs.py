"""simulate() and Strategy.signals refuse bad signals and candles; nothing is cast silently.

Every refusal is a UserInputError (DataError for candles) naming the field, the bar's open
time and row, the symbol and the value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets.bars import Bars, MultiBars
from engine.backtest import SimConfig, simulate
from engine.checks import prepare_inputs
from engine.signals import LIMIT, MARKET, STOP, Signals
from gogo2.errors import DataError, UserInputError
from strategies.base import Strategy

T0 = 1_672_531_200_000  # 2023-01-01 00:00 UTC
MIN = 60_000
SYMS = ("BTC/USDT", "ETH/USDT")


def make_bars(n: int = 6, m: int = 2) -> Bars:
    price = np.linspace(100.0, 110.0, n)[:, None] * np.arange(1, m + 1)[None, :]
    return Bars(
        "1m",
        SYMS[:m],
        T0 + np.arange(n, dtype=np.int64) * MIN,
        price.copy(),
        price * 1.01,
        price * 0.99,
        price.copy(),
        np.ones((n, m)),
    )


def with_prices(bars: Bars, **cells: tuple[int, int, float]) -> Bars:
    arrays = {k: getattr(bars, k).copy() for k in ("open", "high", "low", "close")}
    for key, (t, j, v) in cells.items():
        arrays[key.rstrip("_0123456789")][t, j] = v
    return Bars(bars.timeframe, bars.symbols, bars.time, **arrays, volume=bars.volume.copy())


def quiet(n: int = 6, m: int = 2, **arrays) -> Signals:
    s = Signals(np.zeros((n, m), dtype=np.int8), np.zeros((n, m), dtype=np.bool_))
    for k, v in arrays.items():
        setattr(s, k, v)
    return s


def refuse(bars: Bars, sig: Signals, *parts: str, error: type = UserInputError) -> str:
    with pytest.raises(error) as info:
        simulate(bars, sig, SimConfig())
    msg = str(info.value)
    for p in parts:
        assert p in msg, (p, msg)
    return msg


# ---------------------------------------------------------------- exits


def test_nan_exit_is_refused_not_taken_as_exit() -> None:
    b = make_bars()
    exits = np.zeros((6, 2))
    exits[3, 1] = np.nan
    refuse(b, quiet(exits=exits), "signals.exits", "nan", "2023-01-01 00:03", "ETH/USDT", "row 3")


def test_object_exits_from_pandas_shift_are_refused() -> None:
    b = make_bars(m=1)
    raw = pd.Series([False, True, False, False, True, False])
    shifted = raw.shift()  # object dtype, NaN on row 0
    assert shifted.dtype == object
    exits = shifted.to_numpy().reshape(-1, 1)
    msg = refuse(b, quiet(m=1, exits=exits), "signals.exits", "nan", "row 0", "BTC/USDT")
    assert "fill_value=False" in msg
    # all-bool object arrays are refused too: the dtype itself is the mistake
    ok_values = np.array([[False]] * 6, dtype=object)
    refuse(b, quiet(m=1, exits=ok_values), "signals.exits", "dtype object")
    # the fix the message gives works
    fixed = raw.shift(fill_value=False).to_numpy().reshape(-1, 1)
    simulate(b, quiet(m=1, exits=fixed), SimConfig())


def test_exit_numbers_other_than_0_1_are_refused_and_0_1_accepted() -> None:
    b = make_bars()
    exits = np.zeros((6, 2), dtype=np.int64)
    exits[2, 0] = 2
    refuse(b, quiet(exits=exits), "signals.exits", "is 2", "row 2", "BTC/USDT")
    # float 0/1 exits mean the same as bool: a long opened at row 0 exits at row 2's signal
    e = np.zeros((6, 2), dtype=np.int8)
    e[0, 0] = 1
    x = np.zeros((6, 2))
    x[2, 0] = 1.0
    res = simulate(b, Signals(e, x), SimConfig(fee_taker=0, fee_maker=0, slippage_bps=0))
    tr = res.trades
    assert len(tr) == 1 and tr["exit_bar"].iloc[0] == 3


# ---------------------------------------------------------------- entries


@pytest.mark.parametrize("bad", [2, -3, 0.5, np.nan])
def test_entries_outside_the_three_values_are_refused(bad: float) -> None:
    b = make_bars()
    e = np.zeros((6, 2))
    e[4, 1] = bad
    refuse(b, quiet(entries=e), "signals.entries", "row 4", "ETH/USDT", repr(float(bad)))


def test_int8_entries_outside_range_are_refused() -> None:
    b = make_bars()
    e = np.zeros((6, 2), dtype=np.int8)
    e[1, 0] = 5
    refuse(b, quiet(entries=e), "signals.entries", "is 5", "row 1", "BTC/USDT")


def test_bool_and_float_entries_are_accepted_as_their_values() -> None:
    b = make_bars()
    e = np.zeros((6, 2), dtype=np.bool_)
    e[0, 0] = True
    res = simulate(b, quiet(entries=e), SimConfig())
    assert res.trades["direction"].tolist() == ["long"]
    ef = np.zeros((6, 2))
    ef[0, 1] = -1.0
    res = simulate(b, quiet(entries=ef), SimConfig())
    assert res.trades["direction"].tolist() == ["short"]


# ---------------------------------------------------------------- order type and price


@pytest.mark.parametrize("bad", [np.nan, 1.7, 3, -1])
def test_order_type_nan_fraction_or_out_of_range_is_refused(bad: float) -> None:
    b = make_bars()
    e = np.zeros((6, 2), dtype=np.int8)
    e[2, 0] = 1
    ot = np.full((6, 2), float(MARKET))
    ot[2, 0] = bad
    price = np.full((6, 2), 100.0)
    refuse(
        b,
        quiet(entries=e, order_type=ot, price=price),
        "signals.order_type",
        "row 2",
        "BTC/USDT",
        repr(float(bad)),
    )


def test_order_type_is_only_read_on_entry_rows() -> None:
    b = make_bars()
    e = np.zeros((6, 2), dtype=np.int8)
    e[2, 0] = 1
    ot = np.full((6, 2), np.nan)  # NaN where no entry: ignored
    ot[2, 0] = MARKET
    res = simulate(b, quiet(entries=e, order_type=ot), SimConfig())
    assert len(res.trades) == 1


@pytest.mark.parametrize("kind", [LIMIT, STOP])
@pytest.mark.parametrize("bad", [np.nan, 0.0, -5.0, np.inf])
def test_resting_entry_needs_finite_positive_price(kind: int, bad: float) -> None:
    b = make_bars()
    e = np.zeros((6, 2), dtype=np.int8)
    e[1, 1] = 1
    ot = np.zeros((6, 2), dtype=np.int8)
    ot[1, 1] = kind
    price = np.full((6, 2), np.nan)
    price[1, 1] = bad
    refuse(
        b,
        quiet(entries=e, order_type=ot, price=price),
        "signals.price",
        "row 1",
        "ETH/USDT",
        f"order_type {kind}",
    )


def test_resting_entry_without_price_array_is_refused() -> None:
    b = make_bars()
    e = np.zeros((6, 2), dtype=np.int8)
    e[3, 0] = -1
    ot = np.zeros((6, 2), dtype=np.int8)
    ot[3, 0] = STOP
    refuse(b, quiet(entries=e, order_type=ot), "signals.price is None", "row 3", "BTC/USDT")


# ---------------------------------------------------------------- size, sl, tp, trail


@pytest.mark.parametrize(
    ("name", "bad", "direction"),
    [
        ("size", 0.0, 1),
        ("size", -1.0, 1),
        ("size", np.inf, 1),
        ("sl", 0.0, 1),
        ("sl", 1.5, 1),
        ("sl", -0.1, -1),
        ("tp", 0.0, 1),
        ("tp", np.inf, 1),
        ("tp", 1.5, -1),  # a short's target would be below zero
        ("trail", 1.2, 1),
        ("trail", -0.01, -1),
    ],
)
def test_entry_details_out_of_range_are_refused(name: str, bad: float, direction: int) -> None:
    b = make_bars()
    e = np.zeros((6, 2), dtype=np.int8)
    e[2, 1] = direction
    arr = np.full((6, 2), np.nan)
    arr[2, 1] = bad
    refuse(b, quiet(entries=e, **{name: arr}), f"signals.{name}", "row 2", "ETH/USDT", repr(bad))


def test_entry_details_nan_or_in_range_pass_and_are_ignored_off_entry_rows() -> None:
    b = make_bars()
    e = np.zeros((6, 2), dtype=np.int8)
    e[0, 0] = 1
    e[0, 1] = -1
    junk = np.full((6, 2), -7.0)  # off entry rows nothing is read
    junk[0] = [0.5, 0.5]
    tp = junk.copy()
    tp[0] = [2.0, np.nan]  # +200 % for a long is fine
    res = simulate(b, quiet(entries=e, size=junk, sl=junk, tp=tp, trail=junk), SimConfig())
    assert len(res.fills) >= 2


def test_non_numeric_float_field_is_refused() -> None:
    b = make_bars()
    e = np.zeros((6, 2), dtype=np.int8)
    sl = np.full((6, 2), None, dtype=object)
    refuse(b, quiet(entries=e, sl=sl), "signals.sl", "None", "row 0", "BTC/USDT")


# ---------------------------------------------------------------- candles


@pytest.mark.parametrize(
    ("cells", "parts"),
    [
        ({"high": (2, 0, np.inf)}, ["not finite", "high=inf"]),
        ({"open": (1, 1, 0.0), "low": (1, 1, 0.0)}, ["not > 0", "open=0.0", "ETH/USDT"]),
        ({"close": (3, 0, -5.0), "low": (3, 0, -6.0)}, ["not > 0", "close=-5.0"]),
        ({"open": (4, 1, np.nan)}, ["partly NaN", "open=nan", "ETH/USDT"]),
        ({"high": (2, 1, 50.0), "low": (2, 1, 60.0)}, ["high below its low"]),
        ({"high": (5, 0, 109.5)}, ["high below its open or close"]),
        ({"low": (5, 1, 221.0)}, ["low above its open or close"]),
    ],
)
def test_bad_candles_are_refused_with_time_symbol_and_values(cells, parts) -> None:
    cells = {f"{k}": v for k, v in cells.items()}
    b = with_prices(make_bars(), **cells)
    t, j, _ = next(iter(cells.values()))
    when = pd.Timestamp(T0 + t * MIN, unit="ms").strftime("%Y-%m-%d %H:%M")
    refuse(b, quiet(), *parts, when, f"row {t}", SYMS[j], error=DataError)


def test_inf_high_no_longer_fires_a_phantom_take_profit() -> None:
    b = with_prices(make_bars(), high=(3, 0, np.inf))
    e = np.zeros((6, 2), dtype=np.int8)
    e[0, 0] = 1
    refuse(b, quiet(entries=e), "high=inf", "row 3", error=DataError)


def test_whole_nan_candle_is_a_missing_bar_and_allowed() -> None:
    b = make_bars()
    for k in ("open", "high", "low", "close"):
        getattr(b, k)[2, 1] = np.nan
    e = np.zeros((6, 2), dtype=np.int8)
    e[1, 1] = 1
    res = simulate(b, quiet(entries=e), SimConfig())
    # accepted as a missing candle (no error); the market entry decided at row 1 was good for
    # row 2 only, where the symbol has no candle: it expires unfilled (outage rule)
    assert res.fills.empty and res.expired == 1
    # an exit decided at row 1 still waits for the next candle (row 3)
    e[1, 1] = 0
    e[0, 1] = 1
    x = np.zeros((6, 2), dtype=bool)
    x[1, 1] = True
    res = simulate(b, quiet(entries=e, exits=x), SimConfig())
    assert list(res.fills["bar"]) == [1, 3]


def test_first_bad_bar_in_time_order_is_reported() -> None:
    b = with_prices(make_bars(), high=(4, 0, np.inf), close_1=(2, 1, -1.0))
    # with the low still positive the close -1 is the first problem, at row 2
    refuse(b, quiet(), "row 2", "ETH/USDT", error=DataError)


# ---------------------------------------------------------------- strategies


class _Emit(Strategy):
    name = ""

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: 1}

    def generate(self, data: MultiBars) -> Signals:
        return self.out


def test_strategy_signals_refuse_bad_values_with_the_strategy_name() -> None:
    b = make_bars()
    data = MultiBars("1m", {"1m": b})
    s = _Emit()
    exits = np.zeros((6, 2))
    exits[5, 0] = np.nan
    s.out = Signals(np.zeros((6, 2), dtype=np.int8), exits)
    with pytest.raises(UserInputError, match=r"_Emit.*signals\.exits is nan.*row 5.*BTC/USDT"):
        s.signals(data)
    e = np.zeros((6, 2))
    e[1, 1] = 1
    ot = np.zeros((6, 2))
    ot[1, 1] = 1.7
    s.out = Signals(e, np.zeros((6, 2)), order_type=ot, price=np.full((6, 2), 100.0))
    with pytest.raises(UserInputError, match=r"order_type is 1\.7.*row 1.*ETH/USDT"):
        s.signals(data)
    # good float signals come back in the engine's dtypes, values unchanged
    ot[1, 1] = 1.0
    out = s.signals(data)
    assert out.entries.dtype == np.int8 and out.exits.dtype == np.bool_
    assert out.order_type.dtype == np.int8 and out.order_type[1, 1] == LIMIT
    assert out.entries[1, 1] == 1 and out.entries.sum() == 1


def test_prepare_inputs_without_bars_checks_only_signals() -> None:
    b = with_prices(make_bars(), high=(0, 0, np.inf))
    _, sig = prepare_inputs(b, quiet(), with_bars=False)
    assert sig["entries"].shape == (6, 2)
    with pytest.raises(DataError):
        prepare_inputs(b, quiet())
