"""What a journaled paper run (``paper --run DIR``) saves per bar, and what a bar costs, as the
run gets longer.

    python benchmarks/bench_paper_state.py                                  # the table
    python benchmarks/bench_paper_state.py --bars 5000                      # a shorter run
    python -m pytest benchmarks/bench_paper_state.py --benchmark-enable     # pytest-benchmark

One replay paper run at ``--speed 0`` of ``sma_cross`` (fast=3 slow=12 band=0: a trade every
few bars) on the generated 1m sample (BTC/USDT + ETH/USDT, from 2023-01-01), through the
session ``cli.py paper --replay --run DIR --no-report`` runs (order manager, paper venue,
SQLite journal with ``synchronous=FULL``), the kill switch's loss limits off. Measured at bar
1,000, 5,000 and 20,000:

* per-bar wall time: mean over the 200 bars up to that bar (the time between two status
  lines: the bar's kernel step, the order manager's sync, the decision, the orders and the
  journal transaction);
* the snapshot the journal holds then (``state`` row, bytes) and the rows appended to it
  since the start besides the ``bar`` events (kernel fill and trade records, bytes);
* at the end: the journal's files (``journal.sqlite`` and its ``-wal``) in bytes, the
  orders and fills it holds, and what the order manager's two per-bar journal queries cost on
  it then (``unfilled_symbols`` and the open orders, median of 20 calls): they read every
  order (and fill) the run has made, so they still grow with the run.

Figures, not assertions. The sample is generated into a temporary catalog (about 2 s).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AT = (1_000, 5_000, 20_000)
WINDOW = 200
SYMBOLS = "BTC/USDT,ETH/USDT"
PARAMS = {"fast": "3", "slow": "12", "band": "0"}


def _config(folder: Path) -> Path:
    cfg = folder / "bench.yaml"
    cfg.write_text(
        f"data:\n  dir: {folder / 'data'}\n  exchange: synthetic\n"
        f"backtest:\n  report_dir: {folder / 'reports'}\n"
        "live:\n  max_drawdown: null\n  max_daily_loss: null\n  max_orders_per_minute: null\n"
    )
    return cfg


def _saved(db: Path) -> tuple[int, int]:
    """(bytes of the snapshot row, bytes of the appended record rows) the journal holds."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        snap = con.execute("SELECT length(value) FROM state WHERE key='broker'").fetchone()
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        extra = 0
        if "records" in tables:
            extra = con.execute("SELECT COALESCE(SUM(length(data)), 0) FROM records").fetchone()[0]
        return int(snap[0]) if snap else 0, int(extra)
    finally:
        con.close()


def run(bars: int = max(AT), at: tuple[int, ...] = AT) -> dict:
    """One journaled replay of ``bars`` bars; the figures at the bars in ``at``."""
    from gogo2.clikit import load
    from runner import paper as session

    at = tuple(b for b in at if b <= bars)
    with tempfile.TemporaryDirectory(prefix="gogo2-bench-state-") as tmp:
        folder = Path(tmp)
        settings = load(str(_config(folder)))
        run_dir = folder / "run"
        stamps: list[float] = []
        marks: dict[int, tuple[int, int]] = {}

        def say(line: str) -> None:
            stamps.append(time.perf_counter())
            if len(stamps) in at:
                marks[len(stamps)] = _saved(run_dir / "journal.sqlite")

        req, cls = session.validate(
            settings,
            mode="replay",
            start=session.parse_when("2023-01-01", "--from"),
            end=None,
            symbols=SYMBOLS,
            timeframe="1m",
            strategy="sma_cross",
            params=[f"{k}={v}" for k, v in PARAMS.items()],
            cash=None,
            fee=None,
            slippage=None,
            exchange="synthetic",
            max_bars=bars,
            duration=None,
            speed=0.0,
            api_url=None,
            run_dir=run_dir,
        )
        t0 = time.perf_counter()
        session.run_paper(settings, req, cls, report=False, say=say)
        total = time.perf_counter() - t0
        files = {p.name: p.stat().st_size for p in run_dir.glob("journal.sqlite*")}
        con = sqlite3.connect(run_dir / "journal.sqlite")
        orders = con.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
        fills = con.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
        con.close()
        queries = _queries(run_dir)
    per_bar = {}
    for b in at:
        lo = max(b - WINDOW, 1)
        per_bar[b] = (stamps[b - 1] - stamps[lo - 1]) / (b - lo) * 1000.0
    return {
        "bars": len(stamps),
        "seconds": total,
        "per_bar_ms": per_bar,
        "saved": marks,
        "files": files,
        "orders": orders,
        "fills": fills,
        "queries_ms": queries,
    }


def _queries(run_dir: Path) -> dict[str, float]:
    """Median ms of the order manager's per-bar journal queries on the journal ``run_dir``."""
    import statistics

    from adapters.journal import Journal

    j = Journal(run_dir)
    out = {}
    try:
        for name, fn in (
            ("unfilled_symbols", j.unfilled_symbols),
            ("open orders", lambda: j.orders(live_only=True)),
        ):
            took = []
            for _ in range(20):
                t = time.perf_counter()
                fn()
                took.append((time.perf_counter() - t) * 1000.0)
            out[name] = statistics.median(took)
    finally:
        j.close()
    return out


def test_paper_state_20k_bars(benchmark) -> None:
    out = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(
        {
            **{f"ms_per_bar_at_{b}": v for b, v in out["per_bar_ms"].items()},
            **{f"state_bytes_at_{b}": v[0] for b, v in out["saved"].items()},
            **{f"records_bytes_at_{b}": v[1] for b, v in out["saved"].items()},
            "journal_bytes": sum(out["files"].values()),
            "orders": out["orders"],
            "fills": out["fills"],
            **{f"query_ms_{k}": v for k, v in out["queries_ms"].items()},
        }
    )


def main(argv: list[str]) -> None:
    bars = int(argv[argv.index("--bars") + 1]) if "--bars" in argv else max(AT)
    out = run(bars)
    print(
        f"sma_cross fast=3 slow=12 band=0, 2 symbols 1m, --speed 0, --run: {out['bars']:,} bars "
        f"in {out['seconds']:.1f} s, {out['orders']:,} orders, {out['fills']:,} fills"
    )
    print("bar      ms/bar   snapshot bytes   record rows bytes")
    for b in sorted(out["per_bar_ms"]):
        snap, extra = out["saved"].get(b, (0, 0))
        print(f"{b:>6,}  {out['per_bar_ms'][b]:>7.2f}  {snap:>15,}  {extra:>18,}")
    files = ", ".join(f"{k} {v:,}" for k, v in sorted(out["files"].items()))
    print(f"journal at the end: {sum(out['files'].values()):,} bytes ({files})")
    q = ", ".join(f"{k} {v:.2f} ms" for k, v in out["queries_ms"].items())
    print(f"order manager's per-bar journal queries on it: {q}")


if __name__ == "__main__":
    main(sys.argv[1:])
