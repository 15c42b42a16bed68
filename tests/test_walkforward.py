"""``cli.py walk-forward``: windows, warm-up from before each test window, stitching, bad input."""

from __future__ import annotations

import itertools
import math

import pytest
from sweep_fixtures import project

import cli
from gogo2.timeframes import format_time, parse_time
from runner.backtest import run_backtest
from runner.walkforward import run_walk_forward

GRID = ["fast=5:20:5", "slow=10:60:10"]


@pytest.fixture(scope="module", name="proj")
def fixture_proj(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    tmp = tmp_path_factory.mktemp("wf")
    settings, cfg = project(tmp)  # 200 days of 1h candles from 2023-01-01
    return settings, cfg, tmp


@pytest.fixture(scope="module", name="rolling")
def fixture_rolling(proj: tuple):
    settings, _, _ = proj
    return run_walk_forward(
        settings,
        strategy="sma_cross",
        grid=GRID,
        start="2023-01-01",
        timeframe="1h",
        train="60d",
        test="30d",
        write=False,
    )


def _times(out, w):
    bars = out.data.multibars.bars
    return (
        format_time(int(bars.time[w.train[0]])),
        format_time(int(bars.time[w.test[0]])),
        format_time(int(bars.close_time[w.test[1] - 1])),
    )


def test_windows_are_cut_as_asked(rolling) -> None:
    # data 2023-01-01 .. 2023-07-20 (200 days); the first test window starts 60 days in,
    # 2023-03-02, then every 30 days; the last one is cut at the end of the data
    got = [_times(rolling, w) for w in rolling.windows]
    assert got == [
        ("2023-01-01 00:00", "2023-03-02 00:00", "2023-04-01 00:00"),
        ("2023-01-31 00:00", "2023-04-01 00:00", "2023-05-01 00:00"),
        ("2023-03-02 00:00", "2023-05-01 00:00", "2023-05-31 00:00"),
        ("2023-04-01 00:00", "2023-05-31 00:00", "2023-06-30 00:00"),
        ("2023-05-01 00:00", "2023-06-30 00:00", "2023-07-20 00:00"),
    ]
    for w in rolling.windows:
        assert w.train[1] == w.test[0]  # train ends where test begins
        assert w.combos == 20  # 24 pairs, 4 with fast >= slow


def test_anchored_train_windows_start_at_from(proj: tuple) -> None:
    settings, _, _ = proj
    out = run_walk_forward(
        settings,
        strategy="sma_cross",
        grid=["fast=5,10", "slow=30"],
        start="2023-01-01",
        timeframe="1h",
        train="60d",
        test="30d",
        anchored=True,
        write=False,
    )
    assert {_times(out, w)[0] for w in out.windows} == {"2023-01-01 00:00"}
    assert len(out.windows) == 5


def test_warmup_comes_from_before_each_test_window(rolling) -> None:
    for w in rolling.windows:
        warm = int(w.params["slow"])  # sma_cross needs slow + 1 candles: row `slow` decides first
        assert w.warmup_from == w.test[0] - warm
        assert w.train[0] <= w.warmup_from < w.test[0]


def test_each_test_window_equals_a_backtest_of_that_window(proj: tuple, rolling) -> None:
    """A backtest from the window's first bar loads its warm-up before --from: the same
    warm-up rule, so the same result, bar for bar."""
    settings, _, _ = proj
    for w in rolling.windows[:3]:
        _, start, _ = _times(rolling, w)
        bars = rolling.data.multibars.bars
        end = int(bars.close_time[w.test[1] - 1])
        single = run_backtest(
            settings,
            start=parse_time(start),
            end=end,
            strategy="sma_cross",
            timeframe="1h",
            params=w.params,
            report=False,
            save=False,
        )
        assert w.out_of_sample["total_return"] == single.metrics.total_return
        assert w.out_of_sample["trades"] == single.metrics.trades


def test_stitched_curve_chains_the_windows(rolling) -> None:
    wealth = 1.0
    for w in rolling.windows:
        wealth *= 1.0 + w.out_of_sample["total_return"]
    assert math.isclose(rolling.metrics.final_equity, 10_000.0 * wealth, rel_tol=1e-12)
    assert rolling.metrics.trades == sum(w.out_of_sample["trades"] for w in rolling.windows)
    first = rolling.windows[0].test[0]
    assert len(rolling.equity) == rolling.data.time.shape[0] - first


def test_stability_by_hand(rolling) -> None:
    chosen = [w.params for w in rolling.windows]
    same = sum(a == b for a, b in itertools.pairwise(chosen)) / (len(chosen) - 1)
    assert rolling.stability["same_as_previous"] == same
    assert rolling.stability["fast"]["distinct"] == len({c["fast"] for c in chosen})


BAD = [
    (["--train", "2d", "--test", "30d"], ["--train 2d", "48", "warm-up", "60 bars"]),
    (["--train", "60d", "--test", "400d"], ["--test 400d", "longer than the data"]),
    (
        ["--train", "150d", "--test", "60d"],
        ["--train 150d plus --test 60d", "longer than the data"],
    ),
    (["--train", "60x", "--test", "30d"], ["--train '60x'", "180d"]),
    (["--train", "60d", "--test", "30d", "--metric", "profit"], ["--metric", "profit"]),
]


@pytest.mark.parametrize(("args", "needles"), BAD)
def test_bad_input_is_one_line_and_exit_2(
    proj: tuple, capsys: pytest.CaptureFixture[str], args: list[str], needles: list[str]
) -> None:
    _, cfg, _ = proj
    code = cli.main(
        [
            "walk-forward",
            "--config",
            str(cfg),
            "--strategy",
            "sma_cross",
            "--from",
            "2023-01-01",
            "--timeframe",
            "1h",
            "--grid",
            "fast=5,10",
            "--grid",
            "slow=60",
            *args,
        ]
    )
    _, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_cli_writes_report_files_and_the_run_store(
    proj: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    _, cfg, tmp = proj
    code = cli.main(
        [
            "walk-forward",
            "--config",
            str(cfg),
            "--strategy",
            "sma_cross",
            "--from",
            "2023-01-01",
            "--to",
            "2023-05-01",
            "--timeframe",
            "1h",
            "--grid",
            "fast=5,10",
            "--grid",
            "slow=30",
            "--train",
            "60d",
            "--test",
            "30d",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "stability:" in out
    (run_dir,) = (tmp / "reports").glob("walkforward_sma_cross_1h_BTC-USDT_*")
    assert {p.name for p in run_dir.iterdir()} == {
        "report.html",
        "windows.csv",
        "equity.parquet",
        "summary.json",
    }
    assert "out of sample" in (run_dir / "report.html").read_text()
    run_id = next(x.split(": ")[1] for x in out.splitlines() if x.startswith("run store id"))
    from runner import runstore

    run = runstore.get_run(tmp / "reports", run_id)
    assert run["kind"] == "walk-forward" and run["config"]["train"] == "60d"
