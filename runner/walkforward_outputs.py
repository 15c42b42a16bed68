"""Files and run-store manifest of a walk-forward run.

``walkforward_<strategy>_<timeframe>_<symbols>_<from>_<to>_<hash>/`` under
``backtest.report_dir`` holds ``report.html`` (QuantStats tearsheet of the stitched
out-of-sample curve against buy-and-hold of the same bars), ``windows.csv`` (each
window's periods, chosen parameters, in-sample and out-of-sample metrics),
``equity.parquet`` (the stitched curve) and ``summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _windows_frame(out: Any) -> Any:
    import pandas as pd

    from gogo2.timeframes import format_time

    t = out.data.multibars.bars
    rows = []
    for w in out.windows:
        rows.append(
            {
                "window": w.index + 1,
                "train_from": format_time(int(t.time[w.train[0]])),
                "train_to": format_time(int(t.close_time[w.train[1] - 1])),
                "test_from": format_time(int(t.time[w.test[0]])),
                "test_to": format_time(int(t.close_time[w.test[1] - 1])),
                "warmup_from": format_time(int(t.time[w.warmup_from])),
                **w.params,
                **{f"is_{k}": v for k, v in w.in_sample.items()},
                **{f"oos_{k}": v for k, v in w.out_of_sample.items()},
            }
        )
    return pd.DataFrame(rows)


def write_walk_forward(
    settings: Any, out: Any, space: Any, *, report: bool, anchored: bool, train: str, test: str
) -> None:
    import pandas as pd

    from engine import outputs
    from engine.metrics import daily_returns
    from engine.report import buy_and_hold_equity, write_tearsheet
    from gogo2.timeframes import format_time
    from runner import runstore
    from runner.backtest import _date_text, _report_dir

    req = out.request
    report_dir = _report_dir(settings)
    outputs.check_dir_target(report_dir, "backtest.report_dir")
    bars = out.data.multibars.bars
    a = out.windows[0].test[0]
    first, last = int(bars.time[a]), int(bars.close_time[-1])
    config = {
        "command": "walk-forward",
        "strategy": req.strategy,
        "grid": {k: list(v) for k, v in space.axes.items()},
        "metric": out.metric,
        "train": train,
        "test": test,
        "anchored": anchored,
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
    name = "walkforward_" + outputs.run_dir_name(
        req.strategy,
        req.timeframe,
        req.symbols,
        _date_text(first),
        _date_text(last),
        outputs.fingerprint(config),
    )
    run_dir = report_dir / name
    files = {
        "windows": run_dir / "windows.csv",
        "equity": run_dir / "equity.parquet",
        "summary": run_dir / "summary.json",
    }
    if report:
        files["report"] = run_dir / "report.html"
    metrics = {k: v for k, v in out.metrics.as_dict().items() if not hasattr(v, "isoformat")}
    doc = runstore._clean(
        {
            "config": config,
            "windows": len(out.windows),
            "stability": out.stability,
            "out_of_sample": metrics,
            "synthetic": out.synthetic,
        }
    )

    def write_equity(p: Path) -> None:
        frame = pd.DataFrame({"equity": out.equity})
        frame.index.name = "time"
        outputs.write_equity_parquet(frame, p)

    def write_report(p: Path) -> None:
        oos_bars = bars.slice(a, bars.n)
        bench = buy_and_hold_equity(oos_bars, 1.0)
        title = (
            f"{req.strategy} walk-forward (out of sample), {', '.join(req.symbols)} {req.timeframe}"
        )
        if out.synthetic:
            title += " - SYNTHETIC DATA"
        write_tearsheet(
            daily_returns(out.equity, out.data.cash),
            daily_returns(bench, 1.0),
            p,
            title,
            parameters={"Train": train, "Test": test, "Windows": len(out.windows)},
        )

    writers = {
        files["windows"]: lambda p: _windows_frame(out).to_csv(
            p, index=False, float_format="%.10g"
        ),
        files["equity"]: write_equity,
        files["summary"]: lambda p: p.write_text(
            json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8"
        ),
    }
    if report:
        writers[files["report"]] = write_report
    outputs.write_all(outputs.OutputPlan(None, None, None, None), writers)
    out.run_dir = run_dir
    out.files = files
    if runstore.env_disabled():
        return
    windows = [
        {
            "window": w.index + 1,
            "train": f"{format_time(int(bars.time[w.train[0]]))} -> {format_time(int(bars.close_time[w.train[1] - 1]))}",
            "test": f"{format_time(int(bars.time[w.test[0]]))} -> {format_time(int(bars.close_time[w.test[1] - 1]))}",
            "params": w.params,
            "in_sample": w.in_sample,
            "out_of_sample": w.out_of_sample,
        }
        for w in out.windows
    ]
    manifest = runstore.Manifest(
        kind="walk-forward",
        strategy=req.strategy,
        timeframe=req.timeframe,
        symbols=list(req.symbols),
        exchange=req.exchange,
        period=f"{format_time(first)} -> {format_time(last)}",
        config=config,
        data_fingerprint=runstore.fingerprint_bars(bars.slice(out.data.before, bars.n)),
        data_files=runstore.catalog_files(
            Path(settings.data.path), req.exchange, req.symbols, out.data.multibars.frames
        ),
        seed=None,
        timings=out.timings,
        metrics={**metrics, "stability": out.stability},
        outputs={k: str(v) for k, v in files.items()},
    )
    out.run_id = runstore.record(report_dir, manifest, windows=windows)
