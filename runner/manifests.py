"""Run-store manifests of the commands (a backtest's is built from ``runner.backtest.RunOutput``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner import runstore


def record_backtest(settings: Any, out: Any) -> str | None:
    """Record one ``cli.py backtest`` run; returns its id (None when recording is disabled)."""
    if runstore.env_disabled():
        return None
    from runner.backtest import _report_dir, _run_inputs

    req = out.request
    first, last = out.period
    metrics = {k: v for k, v in out.metrics.as_dict().items() if not hasattr(v, "isoformat")}
    config = {
        "command": "backtest",
        **_run_inputs(out),
        "requested": [req.start, req.end],
        "backtest": settings.backtest.model_dump(mode="json"),
    }
    files = {
        k: str(p)
        for k, p in (
            ("report", out.report_path),
            ("trades", out.trades_path),
            ("equity", out.equity_path),
            ("metrics", out.metrics_path),
        )
        if p is not None
    }
    manifest = runstore.Manifest(
        kind="backtest",
        strategy=req.strategy,
        timeframe=req.timeframe,
        symbols=list(req.symbols),
        exchange=req.exchange,
        period=f"{first} -> {last}",
        config=config,
        data_fingerprint=runstore.fingerprint_bars(out.bars),
        data_files=runstore.catalog_files(
            Path(settings.data.path), req.exchange, req.symbols, [req.timeframe]
        ),
        seed=None,
        timings=dict(out.timings),
        metrics=metrics,
        outputs=files,
    )
    return runstore.record(_report_dir(settings), manifest)
