"""``cli.py sweep``, ``cli.py walk-forward`` and ``cli.py runs``.

Only click and the small ``gogo2`` helpers are imported at module level; numba, pandas,
duckdb, optuna and ray load inside the command bodies.
"""

from __future__ import annotations

import math
from typing import Any

import click

from gogo2.clikit import config_option, load, symbols_option

SWEEP_EPILOG = """\b
Examples:
  python cli.py sweep --strategy sma_cross --grid fast=5:50:5 --grid slow=20:200:10 \\
      --from 2023-01-01 --timeframe 1h
  python cli.py sweep --strategy rsi_reversion --grid window=5:30:1 --grid lower=10:40:5 \\
      --search optuna --trials 100 --seed 7 --from 2023-01-01
  python cli.py sweep --strategy sma_cross --grid fast=5:50:5 --grid slow=20:200:10 \\
      --from 2023-01-01 --executor ray --ray-address auto
"""


def _common(f: Any) -> Any:
    options = [
        click.option("--strategy", default=None, help="Strategy name (default: the config's)."),
        click.option(
            "--grid",
            "grid",
            multiple=True,
            metavar="NAME=A:B:STEP|V1,V2",
            help="Values of one parameter: a range with the stop included, or a list. Repeat.",
        ),
        click.option("--from", "start", required=True, metavar="DATE", help="First day (UTC)."),
        click.option("--to", "end", default=None, metavar="DATE", help="End (UTC, exclusive)."),
        symbols_option,
        click.option("--timeframe", default=None, help="Base timeframe, e.g. 1m, 1h."),
        click.option(
            "--metric",
            default="sharpe",
            show_default=True,
            help="Ranking metric: sharpe, sortino, total_return, cagr, calmar, max_drawdown.",
        ),
        click.option("--exchange", default=None, help="Catalog exchange ('synthetic' = sample)."),
        click.option("--cash", default=None, metavar="AMOUNT", help="Initial cash."),
        click.option("--fee", default=None, metavar="RATE", help="Fee rate (0.001 = 0.1 %)."),
        click.option("--slippage", default=None, metavar="BPS", help="Slippage, basis points."),
        click.option("--jobs", default=None, type=int, help="CPUs (threads, or local Ray CPUs)."),
        click.option(
            "--executor",
            default="local",
            show_default=True,
            help="local (numba threads) or ray (Ray tasks; pip install -e '.[ray]').",
        ),
        click.option(
            "--ray-address", default=None, help="Address of an existing Ray cluster (or 'auto')."
        ),
        config_option,
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _progress_bar(label: str) -> tuple[Any, Any]:
    """A rich progress bar on stderr (only on a terminal): combinations done and ETA."""
    import sys

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not sys.stderr.isatty():
        return None, None
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


@click.command(epilog=SWEEP_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@_common
@click.option(
    "--search",
    default="grid",
    show_default=True,
    help="grid (every combination), random or optuna (TPE): over the --grid values, or "
    "without --grid over the strategy's declared bounds.",
)
@click.option("--trials", default=None, type=int, help="Combinations to try (random, optuna).")
@click.option(
    "--seed", default=None, type=int, help="Seed of random/optuna (same seed, same trials)."
)
@click.option("--top", default=20, show_default=True, type=int, help="Rows of the top table.")
@click.option(
    "--heatmap",
    default=None,
    metavar="X,Y",
    help="The two parameters of heatmap.png (default: the first two numeric ones).",
)
def sweep(**kw: Any) -> None:
    """Backtest a strategy over a grid of parameters and rank the combinations.

    Indicators are computed once per distinct parameter value, combinations run in
    chunks through a parallel numba kernel, and each combination's metrics equal those
    of a single backtest with the same parameters. The summary gives the deflated Sharpe
    ratio and the probability of backtest overfitting; every combination goes into the
    run store (python cli.py runs show ID).
    """
    from rich.console import Console

    from runner.sweep import run_sweep

    settings = load(kw["config_path"])
    bar, update = _progress_bar("combinations")
    try:
        if bar is not None:
            bar.start()
        out = run_sweep(
            settings,
            strategy=kw["strategy"],
            grid=kw["grid"],
            start=kw["start"],
            end=kw["end"],
            symbols=kw["symbols"],
            timeframe=kw["timeframe"],
            exchange=kw["exchange"],
            cash=kw["cash"],
            fee=kw["fee"],
            slippage=kw["slippage"],
            metric=kw["metric"],
            search=kw["search"],
            trials=kw["trials"],
            seed=kw["seed"],
            executor=kw["executor"],
            jobs=kw["jobs"],
            ray_address=kw["ray_address"],
            progress=update,
            heatmap=kw["heatmap"].split(",") if kw["heatmap"] else None,
        )
    finally:
        if bar is not None:
            bar.stop()
    console = Console()
    print_sweep(console, out, top=kw["top"])


def print_sweep(console: Any, out: Any, top: int = 20) -> None:
    from rich.table import Table

    from engine.metrics import fmt_num, fmt_pct
    from runner import stats

    req = out.request
    title = f"Sweep of {req.strategy} on {', '.join(req.symbols)} {req.timeframe}"
    if out.synthetic:
        title += " - SYNTHETIC DATA"
    params = [c for c in out.table.columns if c not in _METRIC_COLS]
    table = Table(title=title)
    for c in params:
        table.add_column(c, justify="right")
    for label in ("return", "CAGR", "Sharpe", "Sortino", "max DD", "trades", "exposure"):
        table.add_column(label, justify="right")
    for rec in out.table.head(max(0, top)).to_dict("records"):
        table.add_row(
            *(_val(rec[c]) for c in params),
            fmt_pct(rec["total_return"]),
            fmt_pct(rec["cagr"]),
            fmt_num(rec["sharpe"]),
            fmt_num(rec["sortino"]),
            fmt_pct(rec["max_drawdown"]),
            f"{int(rec['trades']):,}",
            fmt_pct(rec["exposure"]),
        )
    console.print(table)
    skipped = f", {out.skipped:,} skipped" if out.skipped else ""
    why = f" (e.g. {out.skipped_examples[0]})" if out.skipped_examples else ""
    console.print(
        f"combinations: {len(out.table):,} run{skipped}{why}; ranked by {out.metric}",
        markup=False,
        soft_wrap=True,
    )
    dsr = getattr(out.dsr, "dsr", math.nan)
    pbo = getattr(out.pbo, "pbo", math.nan)
    console.print(
        f"deflated Sharpe ratio: {_prob(dsr)}   probability of backtest overfitting: {_prob(pbo)}",
        markup=False,
        soft_wrap=True,
    )
    console.print(stats.reading(dsr, pbo), markup=False, soft_wrap=True)
    if out.synthetic:
        console.print("data: SYNTHETIC (generated sample, not market data)", markup=False)
    if out.run_dir is not None:
        console.print(f"run: {out.run_dir}", markup=False, soft_wrap=True)
        console.print(
            f"files: {' '.join(p.name for p in out.files.values())}", markup=False, soft_wrap=True
        )
    if out.run_id:
        console.print(f"run store id: {out.run_id}", markup=False)
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in out.timings.items())
    console.print(f"time: {phases}", markup=False, soft_wrap=True)


_METRIC_COLS = {
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "trades",
    "exposure",
}


def _val(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _prob(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.3f}"


# -- walk-forward ---------------------------------------------------------------------------------


WF_EPILOG = """\b
Examples:
  python cli.py walk-forward --strategy sma_cross --grid fast=5:50:5 --grid slow=20:200:10 \\
      --from 2023-01-01 --timeframe 1h --train 180d --test 30d
  python cli.py walk-forward --strategy sma_cross --grid fast=10,20 --grid slow=50,100 \\
      --from 2023-01-01 --timeframe 1h --train 90d --test 30d --anchored
"""


@click.command(
    "walk-forward", epilog=WF_EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
)
@_common
@click.option("--train", required=True, metavar="SPAN", help="Train window, e.g. 180d, 12w, 4320h.")
@click.option("--test", required=True, metavar="SPAN", help="Test window, e.g. 30d.")
@click.option("--anchored", is_flag=True, help="Every train window starts at --from (growing).")
@click.option("--no-report", is_flag=True, help="Skip the HTML tearsheet of the stitched curve.")
def walk_forward(**kw: Any) -> None:
    """Choose parameters on each train window, trade them on the next test window.

    The out-of-sample pieces are stitched into one equity curve with its QuantStats
    report; the table shows each window's choice, its in-sample and out-of-sample
    metrics and how stable the choice is. Warm-up before each test window comes from
    the bars before it, never from inside it.
    """
    from rich.console import Console

    from runner.walkforward import print_walk_forward, run_walk_forward

    settings = load(kw["config_path"])
    bar, update = _progress_bar("windows")
    try:
        if bar is not None:
            bar.start()
        out = run_walk_forward(
            settings,
            strategy=kw["strategy"],
            grid=kw["grid"],
            start=kw["start"],
            end=kw["end"],
            symbols=kw["symbols"],
            timeframe=kw["timeframe"],
            exchange=kw["exchange"],
            cash=kw["cash"],
            fee=kw["fee"],
            slippage=kw["slippage"],
            metric=kw["metric"],
            train=kw["train"],
            test=kw["test"],
            anchored=kw["anchored"],
            executor=kw["executor"],
            jobs=kw["jobs"],
            ray_address=kw["ray_address"],
            report=not kw["no_report"],
            progress=update,
        )
    finally:
        if bar is not None:
            bar.stop()
    print_walk_forward(Console(), out)


# -- runs -----------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def runs() -> None:
    """List, show and compare the runs recorded in the run store (reports/runs.duckdb)."""


@runs.command("list")
@click.option("--strategy", default=None, help="Only runs of this strategy.")
@click.option("--last", default=20, show_default=True, type=int, help="How many, newest first.")
@config_option
def runs_list(strategy: str | None, last: int, config_path: str | None) -> None:
    """The newest runs: id, kind, time, strategy, period and the main metric."""
    import json

    from gogo2.errors import UserInputError
    from runner import runstore
    from runner.backtest import _report_dir

    if last < 1:
        raise UserInputError(f"--last {last} must be at least 1, like --last 20.")
    settings = load(config_path)
    report_dir = _report_dir(settings)
    rows = runstore.list_runs(report_dir, strategy, last)
    if not rows:
        click.echo(f"no runs recorded in {runstore.store_path(report_dir)}")
        return
    lines = [
        ("id", "kind", "created (UTC)", "strategy", "timeframe", "symbols", "period", "result")
    ]
    for r in rows:
        m = json.loads(r["metrics"]) if isinstance(r["metrics"], str) else (r["metrics"] or {})
        lines.append(
            (
                r["id"],
                r["kind"],
                str(r["created"])[:19],
                r["strategy"] or "",
                r["timeframe"] or "",
                r["symbols"] or "",
                r["period"] or "",
                _headline(r["kind"], m),
            )
        )
    _echo_columns(lines)


def _echo_columns(lines: list[tuple[str, ...]]) -> None:
    """Plain aligned columns (ids and values are never cut, whatever the terminal width)."""
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(lines[0]))]
    for row in lines:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _headline(kind: str, m: dict[str, Any]) -> str:
    if kind == "sweep":
        best = m.get("best") or {}
        return f"best sharpe {_num(best.get('sharpe'))}, DSR {_num(m.get('deflated_sharpe'))}, PBO {_num(m.get('pbo'))}"
    return f"return {_num(m.get('total_return'))}, sharpe {_num(m.get('sharpe'))}"


def _num(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@runs.command("show")
@click.argument("run_id")
@config_option
def runs_show(run_id: str, config_path: str | None) -> None:
    """Everything recorded about one run."""
    import json

    from runner import runstore
    from runner.backtest import _report_dir

    settings = load(config_path)
    report_dir = _report_dir(settings)
    run = runstore.get_run(report_dir, run_id)
    for key in ("id", "kind", "created", "strategy", "timeframe", "symbols", "exchange", "period"):
        click.echo(f"{key}: {run[key]}")
    click.echo(f"config hash: {run['config_hash']}")
    click.echo(f"data fingerprint: {run['data_fingerprint']} ({len(run['data_files'])} files)")
    click.echo(f"code: {run['git_commit'] or 'unknown (not a git checkout)'}")
    click.echo("packages: " + ", ".join(f"{k} {v}" for k, v in sorted(run["packages"].items())))
    if run["seed"] is not None:
        click.echo(f"seed: {run['seed']}")
    click.echo("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in run["timings"].items()))
    if run["peak_rss_mb"] is not None:
        click.echo(f"peak memory: {run['peak_rss_mb']:.0f} MB")
    click.echo("config: " + json.dumps(run["config"], sort_keys=True))
    click.echo("metrics:")
    for k, v in runstore.flatten(run["metrics"]).items():
        click.echo(f"  {k}: {_num(v)}")
    click.echo("outputs:")
    for k, v in run["outputs"].items():
        click.echo(f"  {k}: {v}")
    if run["kind"] == "sweep":
        click.echo("top combinations:")
        for params, mets in runstore.sweep_rows(report_dir, run["id"], 5):
            shown = " ".join(f"{k}={v}" for k, v in params.items())
            click.echo(
                f"  {shown}: sharpe {_num(mets.get('sharpe'))}, return {_num(mets.get('total_return'))}"
            )


@runs.command("compare")
@click.argument("first")
@click.argument("second")
@config_option
def runs_compare(first: str, second: str, config_path: str | None) -> None:
    """Config and metric differences of two runs side by side, and whether the data was the same."""

    from runner import runstore
    from runner.backtest import _report_dir

    settings = load(config_path)
    report_dir = _report_dir(settings)
    a = runstore.get_run(report_dir, first)
    b = runstore.get_run(report_dir, second)
    diff = runstore.compare(a, b)
    if diff["config"]:
        click.echo("config differences:")
        _echo_columns(
            [("setting", a["id"], b["id"])] + [(k, _num(x), _num(y)) for k, x, y in diff["config"]]
        )
    else:
        click.echo("config: identical")
    click.echo("metrics:")
    _echo_columns(
        [("metric", a["id"], b["id"])] + [(k, _num(x), _num(y)) for k, x, y in diff["metrics"]]
    )
    click.echo(
        "data: "
        + ("the same candles" if diff["same_data"] else "DIFFERENT candles (fingerprints differ)")
    )
    click.echo("code: " + ("the same commit" if diff["same_code"] else "different commits"))
