"""Property: paging + resume store exactly the exchange's closed candles and report every gap."""

from __future__ import annotations

import itertools
import tempfile

import numpy as np
from fake_exchange import FakeBinance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.catalog import Catalog
from datasets.download import download_series
from gogo2.timeframes import parse_time

T0 = parse_time("2023-01-01")
MIN = 60_000


class LocalBinance:
    """The fake exchange's kline logic called in process (no HTTP), shaped like a ccxt client."""

    id = "binance"

    def __init__(self, fake: FakeBinance) -> None:
        self.fake = fake
        self.calls = 0

    def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int) -> list:
        self.calls += 1
        rows = self.fake.klines(symbol.replace("/", ""), timeframe, since, None, limit)
        return [[int(r[0]), *(float(x) for x in r[1:6])] for r in rows]


@st.composite
def scenarios(draw):
    n = draw(st.integers(5, 240))
    holes = draw(st.lists(st.tuples(st.integers(0, n), st.integers(1, 30)), max_size=4))
    limit = draw(st.integers(1, 60))
    split = draw(st.integers(1, n))
    now_extra = draw(st.integers(0, MIN - 1))  # where "now" falls inside the open candle
    return n, [(T0 + a * MIN, T0 + (a + w) * MIN) for a, w in holes], limit, split, now_extra


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_paging_and_resume_match_the_exchange(scenario) -> None:
    n, holes, limit, split, now_extra = scenario
    fake = FakeBinance(now_ms=T0 + n * MIN + now_extra)  # candle n is open
    for a, b in holes:
        fake.add_gap("BTC/USDT", a, b)
    ex = LocalBinance(fake)
    grid = T0 + MIN * np.arange(n + 1)
    present = np.array([not fake.markets["BTCUSDT"].in_gap(int(t)) for t in grid])
    closed = grid[:-1][present[:-1]]

    with tempfile.TemporaryDirectory() as tmp:
        cat = Catalog(tmp)
        first = download_series(
            cat, ex, "BTC/USDT", "1m", T0, T0 + split * MIN, now_ms=fake.now(), limit=limit
        )
        second = download_series(
            cat, ex, "BTC/USDT", "1m", T0, None, now_ms=fake.now(), limit=limit
        )
        stored = (
            cat.load_frame("binance", "BTC/USDT", "1m")["time"].to_numpy()
            if cat.last_time("binance", "BTC/USDT", "1m") is not None
            else np.empty(0, dtype=np.int64)
        )

    # exactly the closed candles the exchange has, nothing invented, the open one dropped
    np.testing.assert_array_equal(stored, closed)
    assert first.rows + second.rows == closed.size
    # every hole between two stored candles is reported once, across the two runs
    expected = [
        (int(a), int(b), int((b - a) // MIN - 1))
        for a, b in itertools.pairwise(closed)
        if b - a > MIN
    ]
    assert sorted(first.gaps + second.gaps) == expected
    # the open candle is dropped when a page brings it (never stored: checked above)
    assert second.dropped_open in ((0, 1) if present[-1] else (0,))
    assert first.dropped_open == 0
