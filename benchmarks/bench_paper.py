"""Paper trading speed: per-bar latency (bar in -> order handed to the broker, no network),
replay at --speed 0 in bars/s, parity over one month of 1m bars.

    python benchmarks/bench_paper.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    from helpers import make_multibars

    from engine.backtest import SimConfig, simulate
    from runner.parity import compare_trades, replay
    from strategies import registry

    cfg = SimConfig()
    n = 31 * 1440  # one month of 1m bars, 2 symbols
    data = make_multibars(n, base="1m", informative=(), seed=1, vol=0.001)
    strat = registry.create("sma_cross", {}, "1m")
    replay(strat, make_multibars(500, base="1m", informative=(), seed=2), 0, cfg)  # compile
    t = time.perf_counter()
    bt = simulate(data, strat.signals(data), cfg, warmup=strat.warmup)
    rp = replay(strat, data, int(data.bars.time[0]), cfg)
    ok = compare_trades(bt.trades, rp.result.trades).ok
    total = time.perf_counter() - t
    lat = np.asarray(rp.record.latency_ms)
    print(
        f"sma_cross 2 symbols 1m: latency median {np.median(lat):.3f} ms, p99 "
        f"{np.percentile(lat, 99):.3f} ms, max {lat.max():.2f} ms"
    )
    print(f"parity one month 1m ({n} bars x 2): {total:.2f} s, identical={ok}")
    t = time.perf_counter()
    rp = replay(strat, data, int(data.bars.time[0]), cfg)
    dt = time.perf_counter() - t
    print(f"replay --speed 0: {len(rp.record.time) / dt:,.0f} bars/s")


if __name__ == "__main__":
    main()
