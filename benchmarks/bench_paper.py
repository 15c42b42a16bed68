"""Speed of paper trading: per-bar latency, parity over a month of 1m, replay at --speed 0.

    python benchmarks/bench_paper.py                                   # the three figures
    .venv/bin/pytest benchmarks/bench_paper.py --benchmark-enable      # pytest-benchmark

Figures, not assertions:

* latency: bar in -> order handed to the paper broker (append, the strategy on its trailing
  window, the checked intents, the kernel's step), ``sma_cross`` on 2 symbols of 1m, no
  network. Target: <= 5 ms per bar.
* parity: the backtest of one month of 1m bars (2 symbols), the same month replayed
  through the runner and the paper broker, and the trade-by-trade comparison. Target:
  <= 10 s.
* replay: bars per second of the runner at ``--speed 0``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

MONTH_1M = 31 * 1440


def _setup(n: int):
    from helpers import make_multibars

    from engine.backtest import SimConfig
    from runner.parity import replay
    from strategies import registry

    cfg = SimConfig()
    strat = registry.create("sma_cross", {}, "1m")
    replay(strat, make_multibars(500, base="1m", informative=(), seed=2), 0, cfg)  # compile
    return cfg, strat, make_multibars(n, base="1m", informative=(), seed=1, vol=0.001)


def parity_month() -> tuple[float, bool, object]:
    from engine.backtest import simulate
    from runner.parity import compare_trades, replay

    cfg, strat, data = _setup(MONTH_1M)
    t = time.perf_counter()
    bt = simulate(data, strat.signals(data), cfg, warmup=strat.warmup)
    rp = replay(strat, data, int(data.bars.time[0]), cfg)
    ok = compare_trades(bt.trades, rp.result.trades).ok
    return time.perf_counter() - t, ok, rp


def test_parity_one_month_1m(benchmark) -> None:
    seconds, ok, rp = benchmark.pedantic(parity_month, rounds=1, iterations=1)
    lat = np.asarray(rp.record.latency_ms)
    benchmark.extra_info.update(
        seconds=seconds,
        identical=ok,
        latency_median_ms=float(np.median(lat)),
        latency_p99_ms=float(np.percentile(lat, 99)),
    )
    assert ok


def test_replay_speed_0(benchmark) -> None:
    from runner.parity import replay

    cfg, strat, data = _setup(20_000)
    rp = benchmark.pedantic(
        lambda: replay(strat, data, int(data.bars.time[0]), cfg), rounds=3, iterations=1
    )
    benchmark.extra_info["bars"] = len(rp.record.time)


def main() -> None:
    from runner.parity import replay

    seconds, ok, rp = parity_month()
    lat = np.asarray(rp.record.latency_ms)
    print(
        f"sma_cross 2 symbols 1m: latency median {np.median(lat):.3f} ms, p99 "
        f"{np.percentile(lat, 99):.3f} ms, max {lat.max():.2f} ms"
    )
    print(f"parity one month 1m ({MONTH_1M} bars x 2): {seconds:.2f} s, identical={ok}")
    cfg, strat, data = _setup(MONTH_1M)
    t = time.perf_counter()
    rp = replay(strat, data, int(data.bars.time[0]), cfg)
    print(f"replay --speed 0: {len(rp.record.time) / (time.perf_counter() - t):,.0f} bars/s")


if __name__ == "__main__":
    main()
