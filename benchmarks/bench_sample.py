"""Speed of the embedded synthetic sample and of the ingestion paths.

Targets from the issue (figures, not asserts):

* ``generate_sample`` of the default sample (BTC/USDT + ETH/USDT, 1m, 2022-12-01 .. 2024-12-31,
  2 x 1,097,280 rows): <= 10 s;
* ``ensure_sample`` end to end into an empty catalog (generate + validate + write Parquet).

Also measured: download throughput through the real ccxt client against the loopback fake
Binance (rate limiter off), so the paging loop's own cost is visible.

Run as benchmarks (the project's pytest config disables them by default):

    .venv/bin/pytest benchmarks/bench_sample.py --benchmark-enable

or as a script that also times a first-ever generation in a fresh interpreter with an empty
numba cache (compile included):

    .venv/bin/python benchmarks/bench_sample.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SEED = 20230101


def test_generate_default_sample(benchmark) -> None:
    from datasets.synthetic import generate_sample

    # compile / load the numba kernel outside timing
    generate_sample(SEED, start="2022-12-01", end="2022-12-02")
    frames = benchmark.pedantic(lambda: generate_sample(SEED), rounds=3, iterations=1)
    assert [len(f) for f in frames.values()] == [762 * 1440] * 2 == [1_097_280] * 2


def test_ensure_sample_into_empty_catalog(benchmark, tmp_path) -> None:
    from datasets.catalog import Catalog
    from datasets.synthetic import ensure_sample, generate_sample

    generate_sample(SEED, start="2022-12-01", end="2022-12-02")
    counter = iter(range(100))

    def setup():
        return (Catalog(tmp_path / f"data{next(counter)}"),), {}

    def run(cat):
        assert ensure_sample(cat, SEED, console=_quiet())

    benchmark.pedantic(run, setup=setup, rounds=2, iterations=1)


def test_download_throughput_against_fake(benchmark, tmp_path) -> None:
    from fake_exchange import FakeBinance

    from datasets.catalog import Catalog
    from datasets.download import download_series, make_exchange
    from gogo2.config import ExchangeConfig
    from gogo2.timeframes import parse_time

    t0 = parse_time("2023-01-01")
    n = 20_000
    counter = iter(range(100))
    with FakeBinance(now_ms=t0 + 30 * 86_400_000) as fake:
        ex = make_exchange("binance", ExchangeConfig(rate_limit_ms=0), fake.base_url)
        ex.load_markets()

        def setup():
            return (Catalog(tmp_path / f"dl{next(counter)}"),), {}

        def run(cat):
            res = download_series(cat, ex, "BTC/USDT", "1m", t0, t0 + n * 60_000)
            assert res.rows == n

        benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    benchmark.extra_info["candles"] = n


def _quiet():
    import io

    from rich.console import Console

    return Console(file=io.StringIO())


def main() -> None:
    code = (
        "import time; t = time.perf_counter()\n"
        "from datasets.synthetic import generate_sample\n"
        f"generate_sample({SEED})\n"
        "print(f'{time.perf_counter() - t:.2f}')\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba_cache"))
        for label in ("first-ever (numba compile)", "second (numba cache warm)"):
            out = subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                text=True, check=True,
            )  # fmt: skip
            print(f"generate_sample, fresh interpreter, {label}: {out.stdout.strip()} s")
    sys.path.insert(0, str(ROOT))
    from datasets.catalog import Catalog
    from datasets.synthetic import ensure_sample

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        ensure_sample(Catalog(Path(tmp) / "data"), SEED, console=_quiet())
        print(f"ensure_sample into an empty catalog: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
