"""Speed and memory of parameter sweeps.

    python -m pytest benchmarks/bench_sweep.py --benchmark-enable -s

Figures, not assertions (printed with ``-s``). Each end-to-end figure runs the command in
a fresh process, as a user would, and reports wall time, the process's CPU time (user +
system, all threads) and its peak RSS: on a shared machine the wall time depends on the
other jobs, the CPU time much less.

* ``test_sma_cross_1000_combinations_1m_bars``: ``python cli.py sweep`` of ``sma_cross``,
  fast 5..50 x slow 20..200 x band 0..0.005 (1,140 sets, 1,044 valid) over 1,000,000
  seeded 1m bars of one symbol, ``--jobs 2``, with the run store and the result files.
  Target: <= 10 s end to end, <= 1 GB peak RSS, on 2 cores.
* ``test_sma_cross_with_stops``: 1,000 sets with stop-loss, take-profit and trailing stop
  attached (fast 5 x slow 8 x sl 5 x trail 5, tp 0.05).
* ``test_rsi_limit_entries_with_stops``: ``rsi_reversion`` with limit entries and
  stop-loss/take-profit, 1,000 sets.
* ``test_ray_vs_local``: the same 200-set sweep on the local executor and on a local Ray
  of 2 CPUs (start-up included), in one process.
* ``test_vectorbt_same_grid``: vectorbt (when installed; it is not a dependency) on the
  fast x slow grid (174 pairs) over 100,000 1m bars, beside this engine on the same grid
  and bars. vectorbt materialises (bars x combinations) arrays, so 1,000,000 bars do not
  fit; the figures are speed and memory only (vectorbt's fills differ: it trades at the
  close of the signal bar).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
N_BARS = 1_000_000

MAKE_DATA = """
import sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import pandas as pd
from helpers import make_bars
from datasets.catalog import Catalog
from gogo2.timeframes import parse_time
b = make_bars({n}, symbols=("BTC/USDT",), timeframe="1m", seed=5,
              start=parse_time("2023-01-01"), vol=0.001)
df = pd.DataFrame({{"time": b.time, "open": b.open[:, 0], "high": b.high[:, 0],
                   "low": b.low[:, 0], "close": b.close[:, 0], "volume": b.volume[:, 0]}})
Catalog({data!r}).write(df, "test", "BTC/USDT", "1m")
"""

MEASURE = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime,
                  "peak_mb": ru.ru_maxrss / 1024, "out": proc.stdout[-3000:],
                  "err": proc.stderr[-2000:]}))
"""


def _project(tmp: Path, n: int) -> Path:
    data = tmp / "data"
    code = MAKE_DATA.format(root=str(ROOT), tests=str(ROOT / "tests"), n=n, data=str(data))
    subprocess.run([sys.executable, "-c", code], check=True)
    cfg = tmp / "cfg.yaml"
    cfg.write_text(
        "data: {dir: data, exchange: test}\n"
        "backtest: {report_dir: reports, symbols: BTC/USDT, timeframe: 1m}\n",
        encoding="utf-8",
    )
    return cfg


@pytest.fixture(scope="module", name="cfg")
def fixture_cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _project(tmp_path_factory.mktemp("bench_sweep"), N_BARS)


def measure(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, *args], cwd=ROOT, capture_output=True, text=True
    )
    got = json.loads(proc.stdout)
    assert got["rc"] == 0, got["err"]
    return got


def _sweep(cfg: Path, *grid_and_flags: str) -> list[str]:
    return [
        sys.executable, "cli.py", "sweep", "--config", str(cfg), "--from", "2023-01-01",
        "--timeframe", "1m", "--jobs", "2", "--top", "3", *grid_and_flags,
    ]  # fmt: skip


def _report(name: str, got: dict) -> None:
    line = next((x for x in got["out"].splitlines() if x.startswith("combinations:")), "")
    phases = next((x for x in got["out"].splitlines() if x.startswith("time:")), "")
    print(
        f"\n{name}: wall {got['wall']:.2f} s, CPU {got['cpu']:.2f} s, peak RSS "
        f"{got['peak_mb']:.0f} MB; {line}; {phases}"
    )


def _once(benchmark, fn):
    return benchmark.pedantic(fn, rounds=1, iterations=1)


def test_sma_cross_1000_combinations_1m_bars(benchmark, cfg: Path) -> None:
    args = _sweep(
        cfg, "--strategy", "sma_cross", "--grid", "fast=5:50:5", "--grid", "slow=20:200:10",
        "--grid", "band=0:0.005:0.001",
    )  # fmt: skip
    measure(args)  # fills the numba cache (first compilation is not the figure)
    got = _once(benchmark, lambda: measure(args))
    _report("sma_cross 1,044 sets x 1M 1m bars", got)


def test_sma_cross_with_stops(benchmark, cfg: Path) -> None:
    args = _sweep(
        cfg, "--strategy", "sma_cross", "--grid", "fast=10:50:10", "--grid", "slow=60:200:20",
        "--grid", "sl=0.01:0.05:0.01", "--grid", "trail=0.01:0.05:0.01", "--grid", "tp=0.05",
    )  # fmt: skip
    got = _once(benchmark, lambda: measure(args))
    _report("sma_cross + SL/TP/trailing, 1,000 sets x 1M 1m bars", got)


def test_rsi_limit_entries_with_stops(benchmark, cfg: Path) -> None:
    args = _sweep(
        cfg, "--strategy", "rsi_reversion", "--grid", "entry=limit", "--grid", "window=10:28:2",
        "--grid", "lower=20:38:2", "--grid", "sl=0.01:0.05:0.01", "--grid", "tp=0.02,0.04",
    )  # fmt: skip
    got = _once(benchmark, lambda: measure(args))
    _report("rsi_reversion limit entries + SL/TP, 1,000 sets x 1M 1m bars", got)


def test_ray_vs_local(benchmark, cfg: Path) -> None:
    pytest.importorskip("ray")
    from gogo2.config import load_settings
    from runner.sweep import run_sweep

    settings = load_settings(cfg, environ={})
    kw = {
        "strategy": "sma_cross",
        "grid": ["fast=5:50:5", "slow=20:200:10"],
        "start": "2023-01-01",
        "timeframe": "1m",
        "jobs": 2,
        "write": False,
    }
    run_sweep(settings, **kw)  # warm
    figures = {}

    def both() -> None:
        for ex in ("local", "ray"):
            t, c = time.perf_counter(), time.process_time()
            out = run_sweep(settings, executor=ex, **kw)
            figures[ex] = (time.perf_counter() - t, time.process_time() - c, len(out.table))

    _once(benchmark, both)
    (lw, lc, n), (rw, rc, _) = figures["local"], figures["ray"]
    print(
        f"\n{n} sets x 1M bars: local {lw:.2f} s (CPU {lc:.2f} s), Ray 2 CPUs {rw:.2f} s "
        f"(driver CPU {rc:.2f} s): overhead {rw - lw:+.2f} s"
    )


VBT = """
import sys, time
import numpy as np, pandas as pd
sys.path.insert(0, {tests!r})
from helpers import make_bars
b = make_bars({n}, symbols=("BTC/USDT",), timeframe="1m", seed=5, vol=0.001)
close = pd.Series(b.close[:, 0], index=pd.to_datetime(b.time, unit="ms"))
pairs = [(f, s) for f in range(5, 51, 5) for s in range(20, 201, 10) if f < s]
t = time.perf_counter()
import vectorbt as vbt
fast = vbt.MA.run(close, [f for f, _ in pairs], short_name="fast")
slow = vbt.MA.run(close, [s for _, s in pairs], short_name="slow")
entries = fast.ma_crossed_above(slow)
exits = fast.ma_crossed_below(slow)
pf = vbt.Portfolio.from_signals(close, entries, exits, fees=0.001, freq="1min")
sharpe = pf.sharpe_ratio()
print(len(pairs), "pairs", round(time.perf_counter() - t, 2), "s in vectorbt")
"""


def test_vectorbt_same_grid(benchmark, tmp_path: Path) -> None:
    pytest.importorskip("vectorbt")
    n = 100_000
    vbt = measure([sys.executable, "-c", VBT.format(tests=str(ROOT / "tests"), n=n)])
    cfg = _project(tmp_path, n)
    ours_args = _sweep(
        cfg, "--strategy", "sma_cross", "--grid", "fast=5:50:5", "--grid", "slow=20:200:10",
        "--grid", "band=0",
    )  # fmt: skip
    measure(ours_args)
    ours = _once(benchmark, lambda: measure(ours_args))
    print(
        f"\n174 SMA pairs x {n:,} 1m bars: vectorbt wall {vbt['wall']:.2f} s, CPU "
        f"{vbt['cpu']:.2f} s, peak RSS {vbt['peak_mb']:.0f} MB ({vbt['out'].strip()}); "
        f"gogo2 sweep end to end wall {ours['wall']:.2f} s, CPU {ours['cpu']:.2f} s, "
        f"peak RSS {ours['peak_mb']:.0f} MB"
    )
