"""Strategy base (params, parsing, warm-up, timeframes), registry, bundled strategies, loader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import START, aggregate, make_bars, make_multibars
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.bars import Bars, MultiBars
from engine.signals import LIMIT, MARKET, Signals
from gogo2.errors import NoDataError, UnknownNameError, UserInputError
from strategies import registry
from strategies.base import (
    Param,
    Strategy,
    crossed_above,
    crossed_below,
    ffill,
    parse_params,
    trailing_window,
)
from strategies.loader import load_strategy_data
from strategies.mtf_trend import MtfTrend
from strategies.rsi_reversion import RsiReversion
from strategies.sma_cross import SmaCross

MIN = 60_000


def _single(close: np.ndarray, timeframe: str = "1m") -> MultiBars:
    """MultiBars of one symbol whose OHLC all equal ``close``."""
    c = np.asarray(close, dtype=np.float64).reshape(-1, 1)
    time = START + np.arange(c.shape[0], dtype=np.int64) * 60_000
    v = np.ones_like(c)
    bars = Bars(timeframe, ("BTC/USDT",), time, c.copy(), c.copy(), c.copy(), c.copy(), v)
    return MultiBars(timeframe, {timeframe: bars})


class _Demo(Strategy):
    name = "demo_strategy"
    base_timeframe = "5m"
    informative = ("1h",)
    fast = Param(10, min=2, doc="fast length")
    slow = Param(30, min=3)
    ratio = Param(0.5, min=0.0, max=1.0)
    short = Param(True)
    mode = Param("market", choices=("market", "limit"))

    def validate(self) -> None:
        if self.fast >= self.slow:
            self.fail(f"fast ({self.fast}) must be smaller than slow ({self.slow})")

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: self.slow, "1h": self.fast}

    def generate(self, data: MultiBars) -> Signals:
        shape = data.bars.close.shape
        return Signals(np.zeros(shape, np.int8), np.zeros(shape, bool))


# ------------------------------------------------------------------ params


def test_params_defaults_and_overrides() -> None:
    s = _Demo(fast=5, ratio=1)
    assert s.params == {"fast": 5, "slow": 30, "ratio": 1.0, "short": True, "mode": "market"}
    assert isinstance(s.ratio, float)
    assert s.fast == 5 and s.timeframe == "5m"
    with pytest.raises(AttributeError, match="read-only"):
        s.fast = 7  # type: ignore[misc]


def test_unknown_param_has_close_match_hint() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'fast'") as err:
        _Demo(fsat=3)
    assert "fsat" in str(err.value) and "demo_strategy" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fast": 1}, r"'fast'.*>= 2.*got 1"),
        ({"fast": 2.5}, r"'fast'.*integer.*2.5"),
        ({"fast": "7"}, r"'fast'.*integer"),
        ({"ratio": 1.5}, r"'ratio'.*<= 1.0.*1.5"),
        ({"ratio": float("nan")}, r"'ratio'.*finite"),
        ({"short": 1}, r"'short'.*true or false"),
        ({"mode": "limt"}, r"'mode'.*one of.*Did you mean 'limit'"),
        ({"fast": 40}, r"fast \(40\) must be smaller than slow \(30\)"),
    ],
)
def test_bad_values_name_param_value_and_fix(kwargs: dict, match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        _Demo(**kwargs)


def test_parse_params_types_values() -> None:
    got = parse_params(
        _Demo, ["fast=12", "slow= 40", "ratio=0.25", "short=no", "mode=limit", "fast2=1"][:-1]
    )
    assert got == {"fast": 12, "slow": 40, "ratio": 0.25, "short": False, "mode": "limit"}
    assert type(got["fast"]) is int and type(got["ratio"]) is float
    assert parse_params(_Demo, ["fast=1e1"]) == {"fast": 10}
    assert parse_params(_Demo, None) == {}
    assert parse_params(_Demo, {"ratio": 1}) == {"ratio": 1.0}
    assert parse_params(_Demo, {"fast": "8", "short": "off"}) == {"fast": 8, "short": False}
    with pytest.raises(UserInputError, match="'short'"):
        parse_params(_Demo, {"short": 1})


@settings(max_examples=60, deadline=None)
@given(
    fast=st.integers(2, 10**6),
    ratio=st.floats(0.0, 1.0, allow_nan=False),
    short=st.booleans(),
)
def test_parse_params_round_trips_text(fast: int, ratio: float, short: bool) -> None:
    text = [f"fast={fast}", f"ratio={ratio!r}", f"short={str(short).lower()}"]
    assert parse_params(_Demo, text) == {"fast": fast, "ratio": ratio, "short": short}


@pytest.mark.parametrize(
    ("items", "error", "match"),
    [
        (["fast"], UserInputError, r"name=value"),
        (["fats=3"], UnknownNameError, r"Did you mean 'fast'"),
        (["fast=3", "fast=4"], UserInputError, r"given twice"),
        (["fast=abc"], UserInputError, r"'fast'.*integer.*'abc'"),
        (["fast=2.5"], UserInputError, r"'fast'.*integer"),
        (["ratio=x"], UserInputError, r"'ratio'.*number.*'x'"),
        (["short=maybe"], UserInputError, r"'short'.*true or false"),
        (["ratio=7"], UserInputError, r"<= 1.0"),
    ],
)
def test_parse_params_errors(items: list[str], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_params(_Demo, items)


def test_param_spec_inherits_in_order() -> None:
    class Child(_Demo):
        name = "demo_child"
        extra = Param(1, min=0)

    assert list(Child.param_spec()) == ["fast", "slow", "ratio", "short", "mode", "extra"]
    assert "fast: int = 10 (>= 2) - fast length" == _Demo.param_spec()["fast"].describe()


def test_bad_default_is_refused_at_class_creation() -> None:
    with pytest.raises(ValueError, match="default 1 breaks"):
        Param(1, min=5)
    with pytest.raises(TypeError):
        Param([1, 2])  # type: ignore[arg-type]


# ------------------------------------------------------------------ timeframes and warm-up


def test_warmup_counts_coarse_bars_in_base_bars() -> None:
    s = _Demo(fast=50, slow=60)
    # 1h is 12 bars of 5m. Worst start: one 5m bar into an hour (that hour incomplete),
    # so the first full hour closes after 11 + 12 bars and the 50th after 11 + 50 * 12:
    # rows 0 .. 610 are that many bars, row 610 is the first decision.
    assert s.warmup == max(60 - 1, 11 + 50 * 12 - 1) == 610
    assert _Demo(fast=2, slow=700).warmup == 699  # 700 candles: rows 0 .. 699
    assert _Demo(timeframe="1m", fast=50, slow=60).warmup == 59 + 50 * 60 - 1


def test_base_timeframe_must_divide_informative() -> None:
    assert _Demo(timeframe="15m").timeframes == ("15m", "1h")
    assert _Demo(timeframe="60s").timeframe == "1m"
    for bad in ("1h", "7m", "4h"):
        with pytest.raises(UserInputError, match="base timeframe must be finer than 1h"):
            _Demo(timeframe=bad)
    with pytest.raises(UserInputError, match="bad timeframe"):
        _Demo(timeframe="5x")


def test_single_timeframe_strategies_accept_any_base() -> None:
    assert SmaCross(timeframe="4h").warmup == 50  # slow=50: row 50 sees its first cross
    assert RsiReversion(timeframe="1d").timeframe == "1d"


def test_signals_checks_the_data() -> None:
    data = make_multibars(300, base="5m", informative=("1h",))
    with pytest.raises(UserInputError, match=r"base timeframe 1m.*data's base is 5m"):
        _Demo(timeframe="1m").signals(data)
    only_base = MultiBars("5m", {"5m": data.bars})
    with pytest.raises(UserInputError, match="needs 1h candles"):
        _Demo().signals(only_base)
    other = make_bars(10, ("XRP/USDT",), "1h")
    with pytest.raises(UserInputError, match="same symbols"):
        _Demo().signals(MultiBars("5m", {"5m": data.bars, "1h": other}))


def test_signals_output_is_checked_and_typed() -> None:
    class WrongShape(_Demo):
        name = "wrong_shape"

        def generate(self, data: MultiBars) -> Signals:
            return Signals(np.zeros((3, 1)), np.zeros((3, 1)))

    data = make_multibars(300)
    with pytest.raises(ValueError, match=r"entries of shape \(3, 1\)"):
        WrongShape().signals(data)
    sig = _Demo().signals(data)
    assert sig.entries.dtype == np.int8 and sig.exits.dtype == np.bool_


def test_asof_uses_closed_coarse_bars_only() -> None:
    data = make_multibars(48, base="5m", informative=("1h",))
    hourly = data["1h"]
    aligned = _Demo().asof(data, "1h", hourly.close)
    # base rows 0..10 close before 01:00: nothing visible; row 11 closes at 01:00 exactly
    assert np.isnan(aligned[:11]).all()
    np.testing.assert_array_equal(aligned[11:23], np.repeat(hourly.close[:1], 12, axis=0))
    np.testing.assert_array_equal(aligned[23], hourly.close[1])


def test_window_with_no_closed_coarse_candle_decides_nothing() -> None:
    """A live window shorter than one 1h candle (10 bars of 5m) holds no closed 1h candle:
    the as-of view is all NaN and mtf_trend places no order, instead of failing."""
    data = make_multibars(10, base="5m", informative=("1h",))
    assert data["1h"].n == 0
    aligned = _Demo().asof(data, "1h", data["1h"].close)
    assert aligned.shape == (10, 2)
    assert np.isnan(aligned).all()
    sig = MtfTrend().signals(data)
    assert not sig.entries.any()


# ------------------------------------------------------------------ array helpers


def test_cross_helpers() -> None:
    a = np.array([1.0, 3.0, 3.0, 1.0, NAN_, 3.0])
    # the cross up from row 3 to row 5 spans the gap at row 4 and counts at row 5
    assert crossed_above(a, 2.0).tolist() == [False, True, False, False, False, True]
    assert crossed_below(a, 2.0).tolist() == [False, False, False, True, False, False]
    b = np.array([0.0, 0.0, 5.0, 5.0, 5.0, 5.0])
    assert crossed_below(a, b).tolist() == [False, False, True, False, False, False]
    assert ffill(np.array([NAN_, 1.0, NAN_, 2.0])).tolist()[1:] == [1.0, 1.0, 2.0]


NAN_ = float("nan")


# ------------------------------------------------------------------ registry


def test_registry_lists_and_resolves_bundled() -> None:
    assert {"sma_cross", "rsi_reversion", "mtf_trend"} <= set(registry.available())
    assert registry.get("sma_cross") is SmaCross
    assert registry.get("mtf_trend") is MtfTrend
    s = registry.create("sma_cross", ["fast=5", "slow=15"], timeframe="15m")
    assert (s.fast, s.slow, s.timeframe) == (5, 15, "15m")


def test_registry_describe() -> None:
    text = registry.describe("mtf_trend")
    assert text.startswith("mtf_trend: ")
    assert "base 5m, reads 1h" in text
    assert "--param trend: int = 50 (>= 2, <= 1000) - EMA length on 1h candles" in text
    assert "any timeframe accepted" in registry.describe("sma_cross")


def test_registry_unknown_name_hints() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'sma_cross'") as err:
        registry.get("sma_crss")
    assert "rsi_reversion" in str(err.value)


def test_registry_register_custom_and_conflicts(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))

    class Custom(_Demo):
        name = "custom_registry_test"

    registry.register(Custom)
    assert registry.get("custom_registry_test") is Custom
    assert "custom_registry_test" in registry.available()

    class Clash(_Demo):
        name = "custom_registry_test"

    with pytest.raises(UserInputError, match="already registered"):
        registry.register(Clash)

    class Bundled(_Demo):
        name = "rsi_reversion"

    with pytest.raises(UserInputError, match="bundled"):
        registry.register(Bundled)


# ------------------------------------------------------------------ sma_cross


def _cross_prices() -> np.ndarray:
    # flat, rise (cross up), fall (cross down), rise again
    return np.concatenate(
        [np.full(10, 100.0), np.linspace(100, 120, 10), np.linspace(120, 90, 15), np.full(10, 130)]
    )


def test_sma_cross_events_long_short() -> None:
    close = _cross_prices()
    data = _single(close)
    s = SmaCross(fast=2, slow=5, band=0.0)
    sig = s.signals(data)
    fast = pd.Series(close).rolling(2).mean().to_numpy()
    slow = pd.Series(close).rolling(5).mean().to_numpy()
    d = fast - slow
    ups = [t for t in range(1, close.size) if d[t] > 0 and d[t - 1] <= 0]
    downs = [t for t in range(1, close.size) if d[t] < 0 and d[t - 1] >= 0]
    assert ups[0] == 11  # from equal averages (flat prices) to fast above slow
    assert len(ups) == 2 and len(downs) == 1
    assert np.flatnonzero(sig.entries[:, 0] == 1).tolist() == ups
    assert np.flatnonzero(sig.entries[:, 0] == -1).tolist() == downs
    assert not sig.exits.any() and sig.sl is None and sig.tp is None


def test_sma_cross_exit_only_mode_and_stops() -> None:
    data = _single(_cross_prices())
    both = SmaCross(fast=2, slow=5, band=0.0).signals(data)
    s = SmaCross(fast=2, slow=5, band=0.0, short=False, sl=0.01, tp=0.03)
    sig = s.signals(data)
    assert (sig.entries >= 0).all()
    np.testing.assert_array_equal(sig.exits, both.entries == -1)
    rows = sig.entries != 0
    assert (sig.sl[rows] == 0.01).all() and np.isnan(sig.sl[~rows]).all()
    assert (sig.tp[rows] == 0.03).all()


def test_sma_cross_band_reduces_trades() -> None:
    data = make_multibars(20_000, base="1m", informative=(), seed=4, vol=0.001)
    counts = [int((SmaCross(band=b).signals(data).entries != 0).sum()) for b in (0.0, 0.002, 0.005)]
    assert counts[0] > counts[1] > counts[2] > 0


def test_sma_cross_fast_must_be_below_slow() -> None:
    with pytest.raises(UserInputError, match=r"fast \(50\) must be smaller than slow \(20\)"):
        registry.create("sma_cross", ["fast=50", "slow=20"])


def test_sma_cross_gap_rows_get_no_signal() -> None:
    data = make_multibars(3_000, base="1m", informative=(), seed=2, gaps=0.05)
    sig = SmaCross(fast=5, slow=20, band=0.0).signals(data)
    assert (sig.entries != 0).sum() > 0
    assert (sig.entries[np.isnan(data.bars.close)] == 0).all()


# ------------------------------------------------------------------ rsi_reversion


def test_rsi_reversion_long_entry_and_exit() -> None:
    down = np.linspace(100, 80, 20)
    up = np.linspace(80, 100, 20)
    data = _single(np.concatenate([np.full(5, 100.0), down, up]))
    s = RsiReversion(timeframe="1m", window=3)
    sig = s.signals(data)
    from datasets.indicators import rsi

    r = rsi(data.bars.close[:, 0], 3)
    longs = np.flatnonzero(sig.entries[:, 0] == 1)
    exits = np.flatnonzero(sig.exits[:, 0])
    assert longs.size == 1 and exits.size == 1 and exits[0] > longs[0]
    assert r[longs[0]] < 30 <= r[longs[0] - 1]
    assert r[exits[0]] > 50 >= r[exits[0] - 1]
    assert sig.order_type is None and sig.price is None


def test_rsi_reversion_short_and_limit_orders() -> None:
    data = make_multibars(3_000, base="15m", informative=(), seed=5, vol=0.004)
    sig = RsiReversion(short=True, entry="limit", offset=0.01).signals(data)
    close = data.bars.close
    longs, shorts = sig.entries == 1, sig.entries == -1
    assert longs.any() and shorts.any()
    assert (sig.order_type[longs | shorts] == LIMIT).all()
    assert (sig.order_type[~(longs | shorts)] == MARKET).all()
    np.testing.assert_allclose(sig.price[longs], close[longs] * 0.99)
    np.testing.assert_allclose(sig.price[shorts], close[shorts] * 1.01)
    # exits happen exactly where the RSI crosses an exit line, never on an entry bar
    from datasets.indicators import rsi

    r = rsi(close, 14)
    prev = np.vstack([np.full((1, 2), np.nan), r[:-1]])
    crossing = ((r > 50) & (prev <= 50)) | ((r < 50) & (prev >= 50))
    np.testing.assert_array_equal(sig.exits, crossing & (sig.entries == 0))
    assert sig.exits.any()


def test_rsi_reversion_level_rules() -> None:
    with pytest.raises(UserInputError, match="lower < exit_level < upper"):
        RsiReversion(lower=60.0)
    with pytest.raises(UserInputError, match="short exit level"):
        RsiReversion(short=True, exit_level=75.0, upper=80.0)


# ------------------------------------------------------------------ mtf_trend


def test_mtf_trend_entries_follow_the_closed_hourly_trend() -> None:
    data = make_multibars(6_000, base="5m", informative=("1h",), seed=8, vol=0.003)
    s = MtfTrend(trend=10, window=7)
    sig = s.signals(data)
    assert s.warmup == 11 + (4 * 10 + 2) * 12 - 1
    from datasets.indicators import ema

    h = data["1h"].close
    e = ema(h, 10)
    prev = np.vstack([np.full((1, 2), np.nan), e[:-1]])
    up = (h > e) & (e > prev)
    idx = np.searchsorted(data["1h"].close_time, data.bars.close_time, side="right") - 1
    longs = np.argwhere(sig.entries == 1)
    assert len(longs) > 0 and (sig.entries == -1).any()
    for row, col in longs:
        assert idx[row] >= 0 and up[idx[row], col]
    rows = sig.entries != 0
    assert (sig.sl[rows] == 0.02).all() and (sig.tp[rows] == 0.04).all()
    assert sig.trail is None and sig.exits.any()


def test_mtf_trend_runs_on_a_finer_base() -> None:
    data = make_multibars(3_000, base="1m", informative=("1h",), seed=9)
    sig = MtfTrend(timeframe="1m", trend=5).signals(data)
    assert sig.entries.shape == (3_000, 2)


# ------------------------------------------------------------------ live = trailing window


@pytest.mark.parametrize("name", ["sma_cross", "rsi_reversion", "mtf_trend"])
def test_trailing_window_of_warmup_bars_reproduces_decisions(name: str) -> None:
    """Live runs the same method on a trailing window of ``warmup + 1`` bars."""
    params = {"sma_cross": ["band=0.002"], "mtf_trend": ["trend=8"]}.get(name, [])
    s = registry.create(name, params, timeframe="5m")
    data = make_multibars(4_000, base="5m", informative=("1h",), seed=11, vol=0.003)
    full = s.signals(data)
    acting = np.flatnonzero((full.entries != 0).any(axis=1) | full.exits.any(axis=1))
    ends = [*[e for e in acting if e >= s.warmup][:25], 3_517, 3_999]
    assert len(ends) > 10
    for end in ends:
        cut = data.until(int(data.bars.close_time[end]))
        live = s.signals(trailing_window(cut, s.warmup + 1))
        assert live.entries.shape[0] == s.warmup + 1
        np.testing.assert_array_equal(live.entries[-1], full.entries[end])
        np.testing.assert_array_equal(live.exits[-1], full.exits[end])
    if name == "sma_cross":  # SMAs forget the past exactly: the whole window agrees
        live = s.signals(trailing_window(data, s.warmup + 1))
        tail = full.entries[-(s.warmup + 1) :]
        np.testing.assert_array_equal(live.entries[s.slow :], tail[s.slow :])


# ------------------------------------------------------------------ test helpers


def test_make_bars_is_valid_and_deterministic() -> None:
    a = make_bars(500, timeframe="5m", seed=3, gaps=0.1)
    b = make_bars(500, timeframe="5m", seed=3, gaps=0.1)
    c = make_bars(500, timeframe="5m", seed=4)
    np.testing.assert_array_equal(a.close, b.close)
    assert not np.array_equal(a.close[:10], c.close[:10])
    ok = ~np.isnan(a.close)
    assert 0.05 < 1 - ok.mean() < 0.15
    assert (a.high[ok] >= np.maximum(a.open, a.close)[ok]).all()
    assert (a.low[ok] <= np.minimum(a.open, a.close)[ok]).all()
    assert (np.diff(a.time) == 300_000).all() and a.close.flags.c_contiguous


def test_aggregate_matches_pandas_resample_and_drops_open_candle() -> None:
    bars = make_bars(150, timeframe="1m", seed=1, gaps=0.05)  # 2.5 hours
    hourly = aggregate(bars, "1h")
    assert hourly.n == 2  # the third hour has not closed
    df = pd.DataFrame(bars.close[:, 0], index=pd.to_datetime(bars.time, unit="ms"))
    ref = df[0].resample("1h").last().to_numpy()[:2]
    np.testing.assert_array_equal(hourly.close[:, 0], ref)
    hi = pd.DataFrame(bars.high[:, 1], index=pd.to_datetime(bars.time, unit="ms"))[0]
    np.testing.assert_array_equal(hourly.high[:, 1], hi.resample("1h").max().to_numpy()[:2])
    assert (hourly.close_time <= bars.close_time[-1]).all()


# ------------------------------------------------------------------ loader


@pytest.fixture(name="catalog")
def fixture_catalog(tmp_path):
    from datasets.catalog import Catalog

    cat = Catalog(tmp_path / "data")
    bars = make_bars(6 * 24 * 60, ("BTC/USDT", "ETH/USDT"), "1m", seed=3)  # six days
    for j, sym in enumerate(bars.symbols):
        df = pd.DataFrame(
            {
                "time": bars.time,
                "open": bars.open[:, j],
                "high": bars.high[:, j],
                "low": bars.low[:, j],
                "close": bars.close[:, j],
                "volume": bars.volume[:, j],
            }
        )
        cat.write(df, exchange="testex", symbol=sym, timeframe="1m", source="synthetic")
    return cat


def test_loader_loads_base_and_informative_over_the_same_span(catalog) -> None:
    s = MtfTrend(trend=5, window=5)
    start = START + 2 * 86_400_000 + 17 * 60_000  # off the hour grid
    end = START + 4 * 86_400_000 + 30 * 60_000
    data = load_strategy_data(catalog, s, ["ETH/USDT", "BTC/USDT"], start, end, "testex")
    base, hourly = data.bars, data["1h"]
    assert data.base == "5m" and set(data.frames) == {"5m", "1h"}
    assert base.symbols == hourly.symbols == ("ETH/USDT", "BTC/USDT")
    assert base.time[0] == start - start % (5 * MIN) + (5 * MIN if start % (5 * MIN) else 0)
    # the hour holding the start is included; the hour still open at the end is not
    assert hourly.time[0] == start - start % (60 * MIN)
    assert hourly.close_time[-1] <= base.close_time[-1]
    assert hourly.close_time[-1] + 60 * MIN > base.close_time[-1]
    # hourly candles agree with ones aggregated from the loaded 1m data
    m1 = catalog.load(["ETH/USDT", "BTC/USDT"], "1m", hourly.time[0], end, exchange="testex")
    ref = aggregate(m1, "1h")
    np.testing.assert_allclose(hourly.close, ref.close[: hourly.n])
    sig = s.signals(data)
    assert sig.entries.shape == (base.n, 2)


def test_loader_warmup_extends_the_start(catalog) -> None:
    s = SmaCross(fast=10, slow=100)
    start = START + 3 * 86_400_000
    data = load_strategy_data(catalog, s, ["BTC/USDT"], start, None, "testex", warmup=True)
    assert data.bars.time[0] == start - s.warmup * MIN
    assert set(data.frames) == {"1m"}


def test_loader_errors(catalog) -> None:
    s = SmaCross()
    with pytest.raises(UserInputError, match="differs from the one strategy"):
        load_strategy_data(catalog, s, ["BTC/USDT"], None, None, "testex", base_timeframe="5m")
    with pytest.raises(UserInputError, match=r"end .* must be after start"):
        load_strategy_data(catalog, s, ["BTC/USDT"], START + 10, START, "testex")
    with pytest.raises(UnknownNameError, match="BTC/USDT"):
        load_strategy_data(catalog, s, ["BTC/USDX"], None, None, "testex")
    with pytest.raises(NoDataError):
        load_strategy_data(catalog, s, ["BTC/USDT"], START - 10**9, START - 10**8, "testex")


@settings(max_examples=80, deadline=None)
@given(
    a=st.lists(st.one_of(st.floats(-5, 5), st.just(float("nan"))), min_size=1, max_size=40),
    level=st.floats(-2, 2),
)
def test_cross_helpers_match_a_plain_loop(a: list[float], level: float) -> None:
    arr = np.array(a)
    up, down, last = [], [], None  # last = previous non-NaN value
    filled, seen = [], None
    for v in arr:
        nan = np.isnan(v)
        up.append(not nan and last is not None and v > level and last <= level)
        down.append(not nan and last is not None and v < level and last >= level)
        if not nan:
            last = v
            seen = v
        filled.append(np.nan if seen is None else seen)
    assert crossed_above(arr, level).tolist() == up
    assert crossed_below(arr, level).tolist() == down
    np.testing.assert_array_equal(ffill(arr), np.array(filled))
    both = ffill(np.column_stack([arr, arr[::-1]]))
    np.testing.assert_array_equal(both[:, 0], np.array(filled))
