"""Data-layer figures: catalog load speed, derivation speed, peak memory of a 10-year load.

Run with ``pytest benchmarks/bench_data.py --benchmark-enable`` (the test suite's addopts
disable benchmarks). Targets from the issue (figures, not asserts):

* load 2 symbols x 1,000,000 1m bars from the catalog into numpy arrays: <= 0.3 s;
* derive 1h from 1,000,000 1m bars (the DuckDB aggregation, cold cache): <= 0.3 s;
* load 10 years of 1m bars of one symbol (~5.3 M rows): < 1 GB peak memory, measured as the
  peak RSS increase of a fresh subprocess (Linux ``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``; ``ru_maxrss`` would count the parent's size at fork).

Data is a seeded random walk generated here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datasets.catalog import Catalog

MIN = 60_000
T0 = 1_420_070_400_000  # 2015-01-01 00:00 UTC
ROOT = Path(__file__).resolve().parents[1]


def random_walk(n: int, seed: int, start: int = T0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 5e-4, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1]
    wick = rng.uniform(0.0, 5e-4, (2, n))
    return pd.DataFrame(
        {
            "time": start + np.arange(n, dtype=np.int64) * MIN,
            "open": open_,
            "high": np.maximum(open_, close) * (1.0 + wick[0]),
            "low": np.minimum(open_, close) * (1.0 - wick[1]),
            "close": close,
            "volume": rng.uniform(0.1, 10.0, n),
        }
    )


@pytest.fixture(scope="module", name="million")
def fixture_million(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    cat = Catalog(tmp_path_factory.mktemp("bench") / "data")
    for i, sym in enumerate(("BTC/USDT", "ETH/USDT")):
        cat.write(random_walk(1_000_000, seed=i), "bench", sym, "1m", origin="random walk")
    # a third series with 1 % of its minutes missing and a later start: a union index is built
    sol = random_walk(1_000_000, seed=2, start=T0 + 1_440 * MIN)
    keep = np.random.default_rng(3).random(len(sol)) > 0.01
    cat.write(sol[keep], "bench", "SOL/USDT", "1m", origin="random walk with holes")
    return cat


def test_load_two_symbols_million_bars(benchmark, million: Catalog) -> None:
    bars = benchmark(million.load, ["BTC/USDT", "ETH/USDT"], "1m", None, None, "bench")
    assert bars.close.shape == (1_000_000, 2)
    assert not np.isnan(bars.close).any()


def test_load_two_symbols_different_indexes(benchmark, million: Catalog) -> None:
    bars = benchmark(million.load, ["BTC/USDT", "SOL/USDT"], "1m", None, None, "bench")
    assert bars.n > 1_000_000 and np.isnan(bars.close[:, 1]).any()


def test_derive_1h_from_million_1m_cold(benchmark, million: Catalog) -> None:
    # Catalog.derive runs the aggregation without touching the cache: every round is cold
    out = benchmark(million.derive, "bench", "BTC/USDT", "1h")
    assert out["time"].size == 1_000_000 // 60


def test_load_1h_cached(benchmark, million: Catalog) -> None:
    million.load(["BTC/USDT", "ETH/USDT"], "1h", exchange="bench")  # build the cache
    bars = benchmark(million.load, ["BTC/USDT", "ETH/USDT"], "1h", None, None, "bench")
    assert bars.n == 1_000_000 // 60


def test_write_million_bars(benchmark, tmp_path: Path) -> None:
    df = random_walk(1_000_000, seed=7)
    counter = {"i": 0}

    def write() -> None:
        counter["i"] += 1
        Catalog(tmp_path / f"c{counter['i']}").write(df, "bench", "BTC/USDT", "1m")

    benchmark.pedantic(write, rounds=3, iterations=1)


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, sys.argv[2])
    import numpy as np, pandas, pyarrow, duckdb  # imported before the baseline
    from datasets.catalog import Catalog


    def hwm_mb():
        # peak RSS of this process; ru_maxrss would include the parent's size at fork time
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


    def rss_mb():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024


    cat = Catalog(sys.argv[1])
    cat._connection()
    with open("/proc/self/clear_refs", "w") as fh:  # reset the peak to the current RSS
        fh.write("5")
    base = rss_mb()
    t = time.perf_counter()
    bars = cat.load(["BTC/USDT"], "1m", exchange="bench")
    took = time.perf_counter() - t
    peak = hwm_mb()
    print(json.dumps({"rows": bars.n, "peak_increase_mb": peak - base,
                      "baseline_mb": base, "peak_mb": peak,
                      "array_mb": sum(a.nbytes for a in (bars.time, bars.open, bars.high,
                                      bars.low, bars.close, bars.volume)) / 2**20,
                      "seconds": took}))
    """
)


@pytest.mark.slow
def test_ten_years_1m_peak_memory(benchmark, tmp_path: Path) -> None:
    root = tmp_path / "data"
    cat = Catalog(root)
    n = 10 * 525_960  # ten years of minutes (~5.26 M)
    step = 1_000_000
    for i in range(0, n, step):
        part = random_walk(min(step, n - i), seed=100 + i // step, start=T0 + i * MIN)
        if i:
            prev = cat.load_frame("bench", "BTC/USDT", "1m", start=T0 + (i - 1) * MIN)
            part[["open", "high", "low", "close"]] *= prev.close.iloc[-1] / part.open.iloc[0]
        cat.write(part, "bench", "BTC/USDT", "1m")
    script = tmp_path / "mem.py"
    script.write_text(_MEMORY_SCRIPT)

    def measure() -> dict:
        out = subprocess.run(
            [sys.executable, str(script), str(root), str(ROOT)],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    result = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(f"\n10 years of 1m bars: {json.dumps(result)}")
    assert result["rows"] == n
