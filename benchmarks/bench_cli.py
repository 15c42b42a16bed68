"""Speed of ``cli.py backtest --from 2023-01-01`` on the embedded sample (2 years of 1m, 2 symbols).

Budget: <= 15 s end to end with the HTML report, warm (sample stored, numba cache warm).

Measured on the 2-core development machine while other jobs were running (load 2-4):
warm 8.3-12.3 s (load 0.3-0.9, signals 0.4-1.3, simulate 0.05-0.3, metrics 0.1-0.3,
report 4.2-7.8, save 0.2-0.7; the rest is interpreter start-up and imports); first-ever
run 20-33 s (sample generation about 4-6 s and numba compilation about 9-15 s on top).
The report phase is quantstats' import (about 2 s: scipy.stats, seaborn, matplotlib)
plus ``qs.reports.html`` (about 3.5 s: its metrics table about 1.6 s, 13 plots the rest).

Run as benchmarks (pytest-benchmark; the project's pytest config disables them by default):

    .venv/bin/pytest benchmarks/bench_cli.py --benchmark-enable

or as a script that prints the phase breakdown, warm and first-ever (fresh catalog and
an empty numba cache in a temporary folder):

    .venv/bin/python benchmarks/bench_cli.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["backtest", "--from", "2023-01-01"]


def _config(folder: Path) -> Path:
    cfg = folder / "bench.yaml"
    cfg.write_text(
        f"data:\n  dir: {folder / 'data'}\n  exchange: synthetic\n"
        f"backtest:\n  report_dir: {folder / 'reports'}\n"
    )
    return cfg


def run_cli(cfg: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run the command in a fresh interpreter; return (seconds, stdout)."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *ARGS, "--config", str(cfg)],
        cwd=cfg.parent,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"backtest failed ({proc.returncode}): {proc.stderr}")
    return took, proc.stdout


def phases(stdout: str) -> str:
    """The ``time: load ..s, signals ..s, ...`` line the command prints."""
    return next((ln for ln in stdout.splitlines() if ln.startswith("time:")), "time: ?")


@pytest.fixture(scope="module", name="warm_config")
def fixture_warm_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog with the sample stored and the numba cache warmed by one run."""
    cfg = _config(tmp_path_factory.mktemp("bench_cli"))
    run_cli(cfg)
    return cfg


def test_backtest_cli_warm(benchmark, warm_config: Path) -> None:
    """Whole command in a subprocess: import, load, signals, simulate, metrics, report, save."""
    result: dict[str, str] = {}

    def once() -> None:
        _took, out = run_cli(warm_config)
        result["phases"] = phases(out)

    benchmark.pedantic(once, rounds=3, iterations=1, warmup_rounds=0)
    benchmark.extra_info["phases"] = result["phases"]
    assert (warm_config.parent / "reports").is_dir()


def test_backtest_api_phases(benchmark, warm_config: Path) -> None:
    """In-process ``run_backtest`` (no interpreter start-up), phases in ``extra_info``."""
    from gogo2.config import load_settings
    from runner.backtest import run_backtest

    settings = load_settings(warm_config)
    out_holder = {}

    def once() -> None:
        out_holder["out"] = run_backtest(settings, start="2023-01-01")

    benchmark.pedantic(once, rounds=2, iterations=1, warmup_rounds=0)
    out = out_holder["out"]
    benchmark.extra_info.update({k: round(v, 3) for k, v in out.timings.items()})
    assert out.bars.n == (365 + 366) * 1440  # 2023 and 2024, every minute


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cfg = _config(folder)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(folder / "numba_cache"))
        took, out = run_cli(cfg, env)
        print(f"first-ever run (sample generated, numba compiled): {took:.2f} s")
        print("  " + phases(out))
        for i in range(3):
            took, out = run_cli(cfg, env)
            print(f"warm run {i + 1}: {took:.2f} s")
            print("  " + phases(out))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
