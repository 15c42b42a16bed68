"""``cli.py sweep``: parity with single backtests, bad input, outputs, random/optuna seeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sweep_fixtures import project

import cli
from runner.backtest import run_backtest
from runner.engine_many import day_index
from runner.grid import parse_grid, random_trials
from runner.sweep import run_sweep
from strategies.sma_cross import SmaCross

COMPARED = ("total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown")


@pytest.fixture(scope="module", name="proj")
def fixture_proj(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    tmp = tmp_path_factory.mktemp("sweep")
    settings, cfg = project(tmp)
    return settings, cfg, tmp


@pytest.fixture(scope="module", name="grid_run")
def fixture_grid_run(proj: tuple):
    settings, _, _ = proj
    return run_sweep(
        settings,
        strategy="sma_cross",
        grid=["fast=5:20:5", "slow=10:60:10", "band=0,0.002"],
        start="2023-01-05",
        timeframe="1h",
        write=False,
    )


def test_skipped_combinations_are_counted(grid_run) -> None:
    # fast 5,10,15,20 x slow 10..60 x 2 bands; fast >= slow breaks the rule:
    # (10,10), (15,10), (20,10), (20,20) -> 4 pairs x 2 bands = 8 skipped of 48
    assert grid_run.skipped == 8
    assert len(grid_run.table) == 40
    assert (grid_run.table["fast"] < grid_run.table["slow"]).all()


def test_table_is_ranked_by_the_metric(grid_run) -> None:
    s = grid_run.table["sharpe"].to_numpy()
    finite = s[np.isfinite(s)]
    assert (np.diff(finite) <= 0).all()


@pytest.mark.parametrize("pick", [0, 7, 23, 39])
def test_each_combination_equals_a_single_backtest(proj: tuple, grid_run, pick: int) -> None:
    settings, _, _ = proj
    row = grid_run.table.iloc[pick]
    params = {"fast": int(row["fast"]), "slow": int(row["slow"]), "band": float(row["band"])}
    single = run_backtest(
        settings,
        start="2023-01-05",
        strategy="sma_cross",
        timeframe="1h",
        params=params,
        report=False,
        save=False,
    )
    m = single.metrics
    for name in COMPARED:
        a, b = (
            float(row[name]),
            float(getattr(m, name) if name != "max_drawdown" else m.max_drawdown.depth),
        )
        assert (math.isnan(a) and math.isnan(b)) or a == b, (name, params, a, b)
    assert int(row["trades"]) == m.trades
    assert float(row["exposure"]) == m.exposure


def test_parity_with_stops_attached(proj: tuple) -> None:
    """Combinations with and without sl/tp/trail arrays share one chunk and stay exact."""
    settings, _, _ = proj
    out = run_sweep(
        settings,
        strategy="sma_cross",
        grid=["fast=5", "slow=30", "sl=0,0.02", "trail=0,0.03"],
        start="2023-01-05",
        timeframe="1h",
        write=False,
    )
    assert len(out.table) == 4
    for rec in out.table.to_dict("records"):
        params = {k: rec[k] for k in ("fast", "slow", "sl", "trail")}
        m = run_backtest(
            settings,
            start="2023-01-05",
            strategy="sma_cross",
            timeframe="1h",
            params=params,
            report=False,
            save=False,
        ).metrics
        assert rec["total_return"] == m.total_return
        assert rec["trades"] == m.trades
        assert rec["sharpe"] == m.sharpe or (math.isnan(rec["sharpe"]) and math.isnan(m.sharpe))


def test_grid_parsing_by_hand() -> None:
    space = parse_grid(SmaCross, ["fast=5:50:5", "slow=20,50", "band=0:0.01:0.0025"])
    assert space.axes["fast"] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert space.axes["slow"] == [20, 50]
    assert space.axes["band"] == [0.0, 0.0025, 0.005, 0.0075, 0.01]
    assert space.size == 10 * 2 * 5


def test_random_trials_same_seed_same_trials() -> None:
    space = parse_grid(SmaCross, ["fast=5:50:5", "slow=20:200:10"])
    a = random_trials(space, 30, seed=7)
    b = random_trials(space, 30, seed=7)
    c = random_trials(space, 30, seed=8)
    assert a == b
    assert a != c
    assert len({tuple(x.values()) for x in a}) == 30  # drawn without replacement
    grid = {tuple(x.values()) for x in space.grid()}
    assert all(tuple(x.values()) in grid for x in a)


def test_day_index_puts_a_midnight_close_in_the_day_before() -> None:
    day = 86_400_000
    # closes: day0 12:00, day1 00:00 (ends day0), day1 06:00, day3 01:00 (day2 has none)
    close = np.array([day // 2, day, day + day // 4, 3 * day + 3_600_000])
    end, of_bar, labels = day_index(close)
    assert list(end) == [1, 2, 2, 3]  # day2 carries day1's last bar
    assert list(of_bar) == [0, 0, 1, 3]
    assert str(labels[0]) == "1970-01-01"


# -- bad input: one line, exit 2 ----------------------------------------------------------------


BAD = [
    (["--grid", "fats=5:50:5"], ["fats", "fast"]),
    (["--grid", "fast=0:10:5"], ["fast", "0", ">= 1"]),
    (["--grid", "band=0:0.9:0.3"], ["band", "0.6", "<= 0.5"]),
    (["--grid", "fast=50:5:5"], ["empty grid"]),
    (["--grid", "fast="], ["empty grid"]),
    (["--grid", "fast=5", "--search", "random", "--trials", "0"], ["--trials 0", "at least 1"]),
    (["--grid", "fast=5", "--trials", "0"], ["--trials 0"]),
    (["--grid", "fast=5", "--metric", "sharp"], ["--metric", "sharp", "sharpe"]),
    (["--grid", "fast=60", "--grid", "slow=20"], ["every combination", "fast (60)"]),
    (["--grid", "fast=5", "--search", "optuna"], ["--trials"]),
    (["--grid", "fast=5", "--heatmap", "band,slow"], ["--heatmap", "'band'", "searched: fast"]),
    (["--grid", "fast=5", "--heatmap", "fast"], ["--heatmap fast", "two different"]),
]


@pytest.mark.parametrize(("args", "needles"), BAD)
def test_bad_input_is_one_line_and_exit_2(
    proj: tuple, capsys: pytest.CaptureFixture[str], args: list[str], needles: list[str]
) -> None:
    _, cfg, _ = proj
    code = cli.main(
        ["sweep", "--config", str(cfg), "--strategy", "sma_cross", "--from", "2023-01-05", *args]
    )
    _, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_ray_without_ray_says_how_to_install(
    proj: tuple, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    _, cfg, _ = proj
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = cli.main(
        [
            "sweep",
            "--config",
            str(cfg),
            "--strategy",
            "sma_cross",
            "--from",
            "2023-01-05",
            "--grid",
            "fast=5",
            "--executor",
            "ray",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and 'pip install -e ".[ray]"' in err


def test_cli_end_to_end_writes_files_and_the_run_store(
    proj: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    _, cfg, tmp = proj
    code = cli.main(
        [
            "sweep",
            "--config",
            str(cfg),
            "--strategy",
            "sma_cross",
            "--from",
            "2023-01-05",
            "--grid",
            "fast=5:15:5",
            "--grid",
            "slow=20:40:10",
            "--top",
            "3",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "deflated Sharpe ratio" in out and "probability of backtest overfitting" in out
    run_dirs = list((tmp / "reports").glob("sweep_sma_cross_1h_BTC-USDT_*"))
    assert len(run_dirs) == 1
    names = {p.name for p in run_dirs[0].iterdir()}
    assert {"results.csv", "heatmap.png", "summary.json"} <= names
    summary = json.loads((run_dirs[0] / "summary.json").read_text())
    assert summary["combinations"] == 9 and summary["skipped"] == 0
    assert 0.0 <= summary["pbo"] <= 1.0
    assert (tmp / "reports" / "runs.duckdb").is_file()
    run_id = next(
        line.split(": ")[1] for line in out.splitlines() if line.startswith("run store id")
    )
    assert cli.main(["runs", "show", run_id, "--config", str(cfg)]) == 0
    shown = capsys.readouterr().out
    assert "kind: sweep" in shown and "top combinations:" in shown


def _same_seed(settings, search: str, seed: int):
    return run_sweep(
        settings,
        strategy="sma_cross",
        grid=["fast=5:20:5", "slow=20:60:10"],
        start="2023-01-05",
        timeframe="1h",
        search=search,
        trials=6,
        seed=seed,
        write=False,
    ).table


@pytest.mark.parametrize("search", ["random", "optuna"])
def test_search_same_seed_same_trials(proj: tuple, search: str) -> None:
    settings, _, _ = proj
    a, b = _same_seed(settings, search, 7), _same_seed(settings, search, 7)
    assert a[["fast", "slow"]].values.tolist() == b[["fast", "slow"]].values.tolist()
    assert 1 <= len(a) <= 6


def test_results_csv_round_trip(proj: tuple) -> None:
    settings, _, _ = proj
    out = run_sweep(
        settings,
        strategy="sma_cross",
        grid=["fast=5,10", "slow=30"],
        start="2023-01-05",
        timeframe="1h",
    )
    import pandas as pd

    back = pd.read_csv(Path(out.files["results"]))
    assert back["fast"].tolist() == out.table["fast"].tolist()
    assert np.allclose(back["total_return"], out.table["total_return"], rtol=1e-9)


def test_help_of_the_research_commands_imports_no_heavy_library() -> None:
    import subprocess
    import sys

    heavy = ("numba", "quantstats", "torch", "duckdb", "pandas", "optuna", "ray", "matplotlib")
    code = f"import sys, runner.cli\nprint(','.join(m for m in {heavy!r} if m in sys.modules))"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
    for name in ("sweep", "walk-forward", "runs"):
        assert cli.main([name, "--help"]) == 0


def test_compiled_sma_cross_equals_the_numpy_cross_helpers() -> None:
    """sma_cross's one-pass cross kernel gives the decisions of crossed_above/crossed_below,
    gaps included (a cross across missing candles counts at the first candle after)."""
    from helpers import make_bars

    from datasets.bars import MultiBars
    from datasets.indicators import sma
    from strategies.base import crossed_above, crossed_below

    for seed in range(3):
        bars = make_bars(3000, symbols=("A/B", "C/D"), timeframe="1m", seed=seed, gaps=0.05)
        data = MultiBars("1m", {"1m": bars})
        for short in (True, False):
            for band in (0.0, 0.001):
                sig = SmaCross(timeframe="1m", fast=3, slow=12, band=band, short=short).generate(
                    data
                )
                fast, slow = sma(bars.close, 3), sma(bars.close, 12)
                up = crossed_above(fast, slow * (1 + band))
                down = crossed_below(fast, slow * (1 - band))
                entries = np.where(up, 1, 0).astype(np.int8)
                if short:
                    entries[down] = -1
                    exits = np.zeros_like(down)
                else:
                    exits = down
                assert (sig.entries == entries).all()
                assert (sig.exits == exits).all()
                assert up.any() and down.any()


@pytest.mark.parametrize("search", ["random", "optuna"])
def test_search_without_grid_draws_from_declared_bounds(proj: tuple, search: str) -> None:
    """Without --grid the space is every declared Param with both bounds or choices."""
    settings, _, _ = proj

    def run(seed: int):
        return run_sweep(
            settings, strategy="sma_cross", grid=[], start="2023-01-05", timeframe="1h",
            search=search, trials=5, seed=seed, write=False,
        ).table  # fmt: skip

    a, b = run(11), run(11)
    cols = ["band", "short", "sl", "trail"]
    # fast, slow and tp declare no upper bound: not searched, their defaults are used
    assert not {"fast", "slow", "tp"} & set(a.columns)
    assert a[cols].values.tolist() == b[cols].values.tolist()
    assert ((a["band"] >= 0) & (a["band"] <= 0.5)).all()
    assert ((a["trail"] >= 0) & (a["trail"] <= 1)).all()


def test_grid_search_still_needs_a_grid(proj: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    _, cfg, _ = proj
    code = cli.main(
        ["sweep", "--config", str(cfg), "--strategy", "sma_cross", "--from", "2023-01-05"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no --grid given" in err


def test_parity_with_two_symbols_sharing_cash(tmp_path: Path) -> None:
    from sweep_fixtures import project as make_project

    settings, _ = make_project(tmp_path, days=80, second=True)
    syms = "BTC/USDT,ETH/USDT"
    out = run_sweep(
        settings, strategy="sma_cross", grid=["fast=5,10", "slow=30,40"], start="2023-01-05",
        timeframe="1h", symbols=syms, write=False,
    )  # fmt: skip
    assert len(out.table) == 4
    for rec in out.table.to_dict("records"):
        m = run_backtest(
            settings, start="2023-01-05", strategy="sma_cross", timeframe="1h", symbols=syms,
            params={"fast": rec["fast"], "slow": rec["slow"]}, report=False, save=False,
        ).metrics  # fmt: skip
        assert rec["total_return"] == m.total_return
        assert rec["sharpe"] == m.sharpe
        assert rec["trades"] == m.trades and rec["exposure"] == m.exposure


def test_progress_reports_combinations_done(proj: tuple) -> None:
    settings, _, _ = proj
    seen: list[tuple[int, int]] = []
    run_sweep(
        settings, strategy="sma_cross", grid=["fast=5:20:5", "slow=30:60:10"], start="2023-01-05",
        timeframe="1h", write=False, progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert seen[-1] == (16, 16)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
