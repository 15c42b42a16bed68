"""The run store: manifests of backtests and sweeps, list/show/compare, safe writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from sweep_fixtures import project

import cli
from runner import runstore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", name="proj")
def fixture_proj(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    tmp = tmp_path_factory.mktemp("store")
    settings, cfg = project(tmp, days=60)
    return settings, cfg, tmp


def _manifest(**over) -> runstore.Manifest:
    base = {
        "kind": "backtest",
        "strategy": "sma_cross",
        "timeframe": "1h",
        "symbols": ["BTC/USDT"],
        "exchange": "test",
        "period": "a -> b",
        "config": {"fee": 0.001, "params": {"fast": 5}},
        "data_fingerprint": "abc",
        "data_files": [],
        "seed": None,
        "timings": {"load": 0.1},
        "metrics": {"sharpe": 1.5, "total_return": float("nan")},
        "outputs": {},
    }
    base.update(over)
    return runstore.Manifest(**base)


def test_backtests_are_recorded_and_compared(
    proj: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    _, cfg, tmp = proj
    ids = []
    for fee in ("0.001", "0.0005"):
        code = cli.main(
            ["backtest", "--config", str(cfg), "--from", "2023-01-05", "--no-report", "--fee", fee]
        )
        out, err = capsys.readouterr()
        assert code == 0, err
        ids.append(next(x.split(": ")[1] for x in out.splitlines() if x.startswith("run store id")))
    run = runstore.get_run(tmp / "reports", ids[0])
    assert run["kind"] == "backtest" and run["strategy"] == "sma_cross"
    assert run["config"]["config"]["fee_taker"] == 0.001
    assert len(run["config_hash"]) == 16
    assert run["data_files"] and run["data_files"][0]["path"].endswith(".parquet")
    assert run["git_commit"] is None or len(run["git_commit"]) >= 40
    assert "numpy" in run["packages"] and run["peak_rss_mb"] > 0
    assert set(run["outputs"]) == {"trades", "equity", "metrics"}
    assert isinstance(run["metrics"]["sharpe"], float)

    assert cli.main(["runs", "list", "--config", str(cfg), "--last", "5"]) == 0
    listed = capsys.readouterr().out
    assert ids[0] in listed and ids[1] in listed

    assert cli.main(["runs", "compare", ids[0], ids[1], "--config", str(cfg)]) == 0
    shown = capsys.readouterr().out
    assert "fee_taker" in shown and "0.001" in shown and "0.0005" in shown
    assert "data: the same candles" in shown

    diff = runstore.compare(runstore.get_run(tmp / "reports", ids[0]), run)
    assert diff["config"] == [] and diff["same_data"]


def test_unknown_run_is_one_line_exit_2(proj: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    _, cfg, _ = proj
    assert cli.main(["runs", "show", "no-such-run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-run" in err and "runs list" in err


def test_nan_is_stored_as_null_and_ids_are_unique(tmp_path: Path) -> None:
    a = runstore.record(tmp_path, _manifest())
    b = runstore.record(tmp_path, _manifest())
    assert a != b
    got = runstore.get_run(tmp_path, a)
    assert got["metrics"] == {"sharpe": 1.5, "total_return": None}


def test_a_failed_write_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runstore.record(tmp_path, _manifest())
    calls = {"n": 0}
    real = runstore._json

    def failing(v):
        calls["n"] += 1
        if calls["n"] > 8:  # the run row went in; a sweep row then fails
            raise KeyboardInterrupt
        return real(v)

    monkeypatch.setattr(runstore, "_json", failing)
    with pytest.raises(KeyboardInterrupt):
        runstore.record(
            tmp_path,
            _manifest(kind="sweep"),
            sweep_rows=[({"fast": i}, {"x": i}) for i in range(5)],
        )
    monkeypatch.setattr(runstore, "_json", real)
    con = duckdb.connect(str(tmp_path / "runs.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM sweep_results").fetchone()[0] == 0
    finally:
        con.close()


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from runner import runstore
    for i in range(4):
        runstore.record(sys.argv[1], runstore.Manifest(
            kind="backtest", strategy="s" + sys.argv[2], timeframe="1h", symbols=["X/Y"],
            exchange="e", period="p", config={{"i": i}}, data_fingerprint="f", data_files=[],
            seed=None, timings={{}}, metrics={{}}, outputs={{}}, git_commit="g",
            packages={{}}, peak_rss_mb=1.0))
    """
)


def test_concurrent_writers_all_land(tmp_path: Path) -> None:
    code = WRITER.format(root=str(ROOT))
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(k)]) for k in range(3)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    runs = runstore.list_runs(tmp_path, last=100)
    assert len(runs) == 12
    assert len({r["id"] for r in runs}) == 12


def test_a_writer_waits_for_the_lock(tmp_path: Path) -> None:
    hold = textwrap.dedent(
        f"""
        import duckdb, sys, time
        con = duckdb.connect({str(tmp_path / "runs.duckdb")!r})
        con.execute("CREATE TABLE IF NOT EXISTS t (x INT)")
        print("locked", flush=True)
        time.sleep(1.5)
        con.close()
        """
    )
    p = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "locked"
        run_id = runstore.record(tmp_path, _manifest(git_commit="g", packages={}))
    finally:
        p.wait(timeout=30)
    assert runstore.get_run(tmp_path, run_id)["id"] == run_id


def test_list_filters_by_strategy_and_count(tmp_path: Path) -> None:
    for name in ("a", "b", "a"):
        runstore.record(tmp_path, _manifest(strategy=name, git_commit="g", packages={}))
    assert [r["strategy"] for r in runstore.list_runs(tmp_path, "a")] == ["a", "a"]
    assert len(runstore.list_runs(tmp_path, last=2)) == 2
