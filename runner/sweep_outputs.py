"""Files and run-store manifest of a sweep.

A folder of the sweep's own under ``backtest.report_dir``,
``sweep_<strategy>_<timeframe>_<symbols>_<from>_<to>_<hash>/``, holds ``results.csv``
(every combination run: parameters and metrics, best first), ``heatmap.png`` (the metric
over the first two grid parameters; other parameters at their best value) and
``summary.json`` (the inputs, the best combination, DSR, PBO, skipped count). Every file
is written to a temporary name and moved into place.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _date_text(ms: int) -> str:
    from runner.backtest import _date_text as text

    return text(ms)


def summary_doc(out: Any) -> dict[str, Any]:
    from gogo2.timeframes import format_time
    from runner.runstore import _clean

    req = out.request
    best = out.table.iloc[0].to_dict() if len(out.table) else {}
    return _clean(
        {
            "strategy": req.strategy,
            "symbols": list(req.symbols),
            "exchange": req.exchange,
            "timeframe": req.timeframe,
            "requested": [format_time(req.start), format_time(req.end) if req.end else None],
            "combinations": len(out.table),
            "skipped": out.skipped,
            "search": out.search,
            "seed": out.seed,
            "metric": out.metric,
            "best": best,
            "deflated_sharpe": getattr(out.dsr, "dsr", None),
            "dsr_benchmark_sharpe": getattr(out.dsr, "benchmark", None),
            "pbo": getattr(out.pbo, "pbo", None),
            "pbo_splits": getattr(out.pbo, "splits", None),
            "synthetic": out.synthetic,
        }
    )


def heatmap(out: Any, axes: list[str], path: Path) -> bool:
    """PNG of the metric over the first two numeric parameters of ``axes`` (the best value
    over the other parameters in each cell); False when there are fewer than two."""
    numeric = [
        a for a in axes if out.table[a].dtype.kind in "if" and 1 < out.table[a].nunique() <= 60
    ]
    if len(numeric) < 2:
        return False
    x, y = numeric[0], numeric[1]
    table = out.table
    best = table.groupby([y, x])[out.metric].max().unstack(x)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(
        figsize=(max(6.0, 2 + 0.45 * best.shape[1]), max(4.0, 1.5 + 0.35 * best.shape[0]))
    )
    try:
        img = ax.imshow(best.to_numpy(dtype=float), aspect="auto", origin="lower", cmap="viridis")
        ax.set_xticks(range(best.shape[1]), [f"{v:g}" for v in best.columns], rotation=90)
        ax.set_yticks(range(best.shape[0]), [f"{v:g}" for v in best.index])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        others = [a for a in out.table.columns if a in _param_names(out) and a not in (x, y)]
        note = f" (best over {', '.join(others)})" if others else ""
        ax.set_title(f"{out.request.strategy}: {out.metric}{note}\nblank = skipped", fontsize=9)
        fig.colorbar(img, ax=ax, label=out.metric)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
    return True


def _param_names(out: Any) -> list[str]:
    from runner.cli import _METRIC_COLS

    return [c for c in out.table.columns if c not in _METRIC_COLS]


def write_sweep(
    settings: Any,
    out: Any,
    space: Any,
    *,
    executor: str,
    jobs: int | None,
    heatmap_axes: Sequence[str] | None = None,
) -> None:
    from engine import outputs
    from runner import runstore
    from runner.backtest import _report_dir

    req = out.request
    report_dir = _report_dir(settings)
    outputs.check_dir_target(report_dir, "backtest.report_dir")
    bars = out.data.multibars.bars
    first, last = int(bars.time[out.data.before]), int(bars.close_time[-1])
    config = {
        "command": "sweep",
        "strategy": req.strategy,
        "grid": {k: list(v) for k, v in space.axes.items()},
        "search": out.search,
        "seed": out.seed,
        "metric": out.metric,
        "symbols": list(req.symbols),
        "timeframe": req.timeframe,
        "exchange": req.exchange,
        "start": req.start,
        "end": req.end,
        "cash": req.cash,
        "fee": req.fee,
        "slippage_bps": req.slippage_bps,
        "backtest": settings.backtest.model_dump(mode="json"),
    }
    run_hash = outputs.fingerprint(config)
    name = "sweep_" + outputs.run_dir_name(
        req.strategy, req.timeframe, req.symbols, _date_text(first), _date_text(last), run_hash
    )
    run_dir = report_dir / name
    plan = outputs.OutputPlan(None, None, None, None)  # only the writers run; no "latest" link
    files = {
        "results": run_dir / "results.csv",
        "heatmap": run_dir / "heatmap.png",
        "summary": run_dir / "summary.json",
    }
    doc = summary_doc(out)
    axes = list(heatmap_axes) if heatmap_axes else list(space.axes)
    made_heatmap = {"ok": True}

    def write_heatmap(p: Path) -> None:
        made_heatmap["ok"] = heatmap(out, axes, p)
        if not made_heatmap["ok"]:
            p.write_bytes(b"")

    writers = {
        files["results"]: lambda p: out.table.to_csv(p, index=False, float_format="%.10g"),
        files["heatmap"]: write_heatmap,
        files["summary"]: lambda p: p.write_text(
            json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8"
        ),
    }
    outputs.write_all(plan, writers)
    if not made_heatmap["ok"]:
        files["heatmap"].unlink(missing_ok=True)
        files.pop("heatmap")
    out.run_dir = run_dir
    out.files = files
    if runstore.env_disabled():
        return
    params_cols = list(space.axes)
    rows = []
    for rec in out.table.to_dict("records"):
        rows.append(
            (
                {k: rec.get(k) for k in params_cols},
                {k: v for k, v in rec.items() if k not in params_cols},
            )
        )
    from gogo2.timeframes import format_time

    manifest = runstore.Manifest(
        kind="sweep",
        strategy=req.strategy,
        timeframe=req.timeframe,
        symbols=list(req.symbols),
        exchange=req.exchange,
        period=f"{format_time(first)} -> {format_time(last)}",
        config={**config, "executor": executor, "jobs": jobs},
        data_fingerprint=runstore.fingerprint_bars(bars.slice(out.data.before, bars.n)),
        data_files=runstore.catalog_files(
            Path(settings.data.path), req.exchange, req.symbols, out.data.multibars.frames
        ),
        seed=out.seed,
        timings=out.timings,
        metrics={
            "best": {k: _num(v) for k, v in (doc.get("best") or {}).items()},
            "deflated_sharpe": doc["deflated_sharpe"],
            "pbo": doc["pbo"],
            "combinations": doc["combinations"],
            "skipped": doc["skipped"],
        },
        outputs={k: str(v) for k, v in files.items()},
    )
    out.run_id = runstore.record(report_dir, manifest, sweep_rows=rows)


def _num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v
