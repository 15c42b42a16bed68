"""Recent-candle cache: TTL expiry with a fake clock, merge semantics, no stale views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets.recent import RecentCandles
from gogo2.errors import DataError

MIN = 60_000
T0 = 1_672_531_200_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rows(start_index: int, n: int, base: float = 100.0) -> pd.DataFrame:
    i = np.arange(start_index, start_index + n)
    close = base + i.astype(float)
    return pd.DataFrame(
        {
            "time": T0 + i.astype(np.int64) * MIN,
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.full(n, 2.0),
        }
    )


@pytest.fixture(name="clock")
def fixture_clock() -> FakeClock:
    return FakeClock()


def test_entry_expires_after_ttl(clock: FakeClock) -> None:
    cache = RecentCandles(ttl_seconds=60, clock=clock)
    cache.put("binance", "BTC/USDT", "1m", rows(0, 5))
    clock.now += 59.9
    got = cache.get("binance", "BTC/USDT", "1m")
    assert got is not None and len(got) == 5
    clock.now += 0.1
    assert cache.get("binance", "BTC/USDT", "1m") is None
    assert cache.last("binance", "BTC/USDT", "1m", 3) is None
    assert cache.last_time("binance", "BTC/USDT", "1m") is None
    assert len(cache) == 0


def test_put_refreshes_ttl_and_merges_with_revision(clock: FakeClock) -> None:
    cache = RecentCandles(ttl_seconds=60, clock=clock)
    cache.put("binance", "BTC/USDT", "1m", rows(0, 5))
    clock.now += 50
    revised = rows(4, 3)
    revised.loc[0, "volume"] = 99.0  # the exchange revised the candle at index 4
    cache.put("binance", "BTC/USDT", "1m", revised)
    clock.now += 50  # 100 s after the first put, 50 s after the second
    got = cache.get("binance", "BTC/USDT", "1m")
    assert got is not None
    assert got.time.tolist() == (T0 + np.arange(7) * MIN).tolist()
    assert got.loc[got.time == T0 + 4 * MIN, "volume"].item() == 99.0
    assert cache.last_time("binance", "BTC/USDT", "1m") == T0 + 6 * MIN


def test_view_computed_before_update_is_not_served_after(clock: FakeClock) -> None:
    cache = RecentCandles(ttl_seconds=600, clock=clock)
    cache.put("binance", "BTC/USDT", "1m", rows(0, 10))
    v1 = cache.last("binance", "BTC/USDT", "1m", 3)
    assert v1 is not None and v1.time.tolist() == (T0 + np.arange(7, 10) * MIN).tolist()
    assert cache.last("binance", "BTC/USDT", "1m", 3) is v1  # memoised while unchanged
    cache.put("binance", "BTC/USDT", "1m", rows(10, 1))
    v2 = cache.last("binance", "BTC/USDT", "1m", 3)
    assert v2 is not v1
    assert v2.time.tolist() == (T0 + np.arange(8, 11) * MIN).tolist()
    # a revision of the newest candle (same time, new close) also invalidates the view
    fix = rows(10, 1)
    fix["close"] = 500.0
    fix["high"] = 501.0
    cache.put("binance", "BTC/USDT", "1m", fix)
    v3 = cache.last("binance", "BTC/USDT", "1m", 3)
    assert v3.close.iloc[-1] == 500.0
    arr = cache.arrays("binance", "BTC/USDT", "1m", 3)
    assert arr["time"].dtype == np.int64 and arr["close"][-1] == 500.0


def test_get_returns_a_copy(clock: FakeClock) -> None:
    cache = RecentCandles(ttl_seconds=60, clock=clock)
    cache.put("binance", "BTC/USDT", "1m", rows(0, 3))
    got = cache.get("binance", "BTC/USDT", "1m")
    got.loc[0, "close"] = -1.0
    assert cache.get("binance", "BTC/USDT", "1m").close[0] == 100.0


def test_series_are_independent_and_timeframes_normalized(clock: FakeClock) -> None:
    cache = RecentCandles(ttl_seconds=60, clock=clock)
    cache.put("binance", "BTC/USDT", "60m", rows(0, 3))
    cache.put("binance", "ETH/USDT", "1h", rows(0, 4, base=10.0))
    assert len(cache.get("binance", "BTC/USDT", "1h")) == 3
    assert len(cache.get("binance", "ETH/USDT", "1h")) == 4
    assert cache.get("kraken", "BTC/USDT", "1h") is None
    assert cache.version("binance", "BTC/USDT", "1h") == 1
    assert cache.invalidate(symbol="ETH/USDT") == 1
    assert cache.get("binance", "ETH/USDT", "1h") is None


def test_old_rows_beyond_max_rows_are_dropped(clock: FakeClock) -> None:
    cache = RecentCandles(ttl_seconds=60, clock=clock, max_rows=4)
    cache.put("binance", "BTC/USDT", "1m", rows(0, 10))
    assert (
        cache.get("binance", "BTC/USDT", "1m").time.tolist()
        == (T0 + np.arange(6, 10) * MIN).tolist()
    )


def test_expired_data_is_not_merged_into_new_put(clock: FakeClock) -> None:
    cache = RecentCandles(ttl_seconds=10, clock=clock)
    cache.put("binance", "BTC/USDT", "1m", rows(0, 5))
    clock.now += 11
    cache.put("binance", "BTC/USDT", "1m", rows(20, 2))
    assert len(cache.get("binance", "BTC/USDT", "1m")) == 2
    assert cache.purge() == 0
    clock.now += 11
    assert cache.purge() == 1


def test_bad_arguments(clock: FakeClock) -> None:
    with pytest.raises(DataError, match="ttl_seconds"):
        RecentCandles(ttl_seconds=0, clock=clock)
    cache = RecentCandles(ttl_seconds=5, clock=clock)
    with pytest.raises(DataError, match="missing column"):
        cache.put("binance", "BTC/USDT", "1m", rows(0, 2).drop(columns="close"))
    with pytest.raises(DataError, match="at least 1"):
        cache.last("binance", "BTC/USDT", "1m", 0)


def test_default_ttl_comes_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOGO2__DATA__RECENT_CACHE_TTL", "42")
    assert RecentCandles().ttl == 42.0
