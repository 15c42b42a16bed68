"""Output files of a backtest: safe targets, one folder per run, compact and rounded contents."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from engine import outputs


def test_check_refuses_special_files_and_accepts_regular_ones(tmp_path: Path) -> None:
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    with pytest.raises(outputs.OutputPathError, match="named pipe"):
        outputs.check_file_target(fifo)
    with pytest.raises(outputs.OutputPathError, match="directory"):
        outputs.check_file_target(tmp_path)
    with pytest.raises(outputs.OutputPathError, match="character device"):
        outputs.check_file_target(Path("/dev/null"))
    regular = tmp_path / "r.html"
    regular.write_text("old")
    outputs.check_file_target(regular)  # an existing regular file may be replaced
    outputs.check_file_target(tmp_path / "new" / "deeper" / "r.html")  # folders get created
    assert not (tmp_path / "new").exists()  # ... at write time, not by the check


def test_explicit_names_sit_beside_the_html(tmp_path: Path) -> None:
    plan = outputs.explicit_plan(tmp_path / "my.html", html=True, save=True)
    assert [p.name for p in plan.targets()] == [
        "my.html",
        "my_trades.csv",
        "my_equity.parquet",
        "my_metrics.json",
    ]
    only_html = outputs.explicit_plan(tmp_path / "my.html", html=True, save=False)
    assert [p.name for p in only_html.unused] == [
        "my_trades.csv",
        "my_equity.parquet",
        "my_metrics.json",
    ]


def test_run_dir_name_holds_the_run_and_shortens_long_symbol_lists() -> None:
    name = outputs.run_dir_name(
        "sma_cross", "1h", ["BTC/USDT", "ETH/USDT"], "2023-01-03T0300", "2025-01-01", "ab12cd34"
    )
    assert name == "sma_cross_1h_BTC-USDT+ETH-USDT_2023-01-03T0300_2025-01-01_ab12cd34"
    many = outputs.run_dir_name("x", "1m", ["A/B", "C/D", "E/F", "G/H", "I/J"], "a", "b", "h")
    assert many == "x_1m_A-B+C-D+E-F+2more_a_b_h"
    a = outputs.fingerprint({"fee": 0.001, "params": {"fast": 20}})
    assert a == outputs.fingerprint({"params": {"fast": 20}, "fee": 0.001})  # key order
    assert a != outputs.fingerprint({"fee": 0.0005, "params": {"fast": 20}})
    assert len(a) == 8


def test_write_all_replaces_together_and_removes_files_of_an_older_run(tmp_path: Path) -> None:
    plan = outputs.run_dir_plan(tmp_path, "run1", html=False, save=True)
    run = tmp_path / "run1"
    run.mkdir()
    (run / "report.html").write_text("older run")
    (run / "trades.csv").write_text("older run")
    writers = {p: (lambda path, text=p.name: path.write_text(text)) for p in plan.targets()}
    outputs.write_all(plan, writers)
    assert sorted(p.name for p in run.iterdir()) == ["equity.parquet", "metrics.json", "trades.csv"]
    assert (run / "trades.csv").read_text() == "trades.csv"
    assert os.readlink(tmp_path / "latest") == "run1"


def test_a_failed_write_leaves_the_old_files(tmp_path: Path) -> None:
    plan = outputs.explicit_plan(tmp_path / "r.html", html=True, save=True)
    for p in plan.targets():
        p.write_text("old")

    def boom(path: Path) -> None:
        raise KeyboardInterrupt

    writers = {p: (lambda path: path.write_text("new")) for p in plan.targets()}
    writers[plan.metrics] = boom  # type: ignore[index]
    with pytest.raises(KeyboardInterrupt):
        outputs.write_all(plan, writers)
    assert all(p.read_text() == "old" for p in plan.targets())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in plan.targets())


def test_latest_falls_back_to_a_text_pointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert outputs.update_latest(tmp_path, tmp_path / "a").name == "latest"
    assert outputs.update_latest(tmp_path, tmp_path / "b").name == "latest"
    assert os.readlink(tmp_path / "latest") == "b"  # replaced, relative

    def no_symlinks(*_a: object, **_k: object) -> None:
        raise OSError("symlinks not supported")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    pointer = outputs.update_latest(tmp_path, tmp_path / "a")
    assert pointer == tmp_path / "latest.txt"
    assert pointer.read_text() == "a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_trades_are_rounded_to_market_precision() -> None:
    trades = pd.DataFrame(
        {
            "symbol": ["ETH/USDT"],
            "entry_price": [1195.9407640000002],
            "exit_price": [1201.0000000000002],
            "size": [0.12345000000000001],
            "pnl": [0.6245963100000001],
            "return": [0.004230412345678912],
            "fees": [0.29659999999999997],
        }
    )
    r = outputs.rounded_trades(trades, lot_size=0.00001)
    assert r["entry_price"].iloc[0] == 1195.940764
    assert r["exit_price"].iloc[0] == 1201.0
    assert r["size"].iloc[0] == 0.12345
    assert r["pnl"].iloc[0] == 0.62459631
    assert r["return"].iloc[0] == 0.004230412346
    assert r["fees"].iloc[0] == 0.2966
    text = r.to_csv(index=False)
    assert "1195.940764," in text and "0000002" not in text and "9999999" not in text
    assert outputs.lot_decimals(0.00001) == 5
    assert outputs.lot_decimals(0.001) == 3
    assert outputs.lot_decimals(1.0) == 0
    assert outputs.lot_decimals(0.0) is None


def test_equity_parquet_is_zstd_and_exact(tmp_path: Path) -> None:
    n = 5000
    idx = pd.date_range("2023-01-01 00:01", periods=n, freq="1min", tz="UTC", name="time")
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "equity": 10_000 * np.cumprod(1 + rng.normal(0, 1e-3, n)),
            "cash": np.repeat([10_000.0, 512.25], n // 2),
            "position BTC/USDT": np.repeat([0.0, 0.5, -0.25, 1.0, 0.0], n // 5),  # binary exact
            "position ETH/USDT": np.repeat([0.0, 0.1, 0.12345], [2000, 2000, 1000]),  # not exact
        },
        index=idx,
    )
    path = tmp_path / "e.parquet"
    outputs.write_equity_parquet(frame, path)
    meta = pq.ParquetFile(path).metadata
    codecs = {meta.row_group(0).column(i).compression for i in range(meta.num_columns)}
    assert codecs == {"ZSTD"}
    back = pd.read_parquet(path)
    assert back["position BTC/USDT"].dtype == np.float32
    assert back["position ETH/USDT"].dtype == np.float64  # 0.1 is not a float32
    for col in frame.columns:
        np.testing.assert_array_equal(back[col].to_numpy(dtype="float64"), frame[col].to_numpy())
    assert (back.index == frame.index).all()
    assert path.stat().st_size < frame.memory_usage().sum() / 2


def test_a_full_disk_is_one_clear_error_and_replaces_nothing(tmp_path: Path) -> None:
    import errno

    plan = outputs.explicit_plan(tmp_path / "r.html", html=True, save=True)
    for p in plan.targets():
        p.write_text("old")

    def full(path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    writers = {p: (lambda path: path.write_text("new")) for p in plan.targets()}
    writers[plan.equity] = full  # type: ignore[index]
    with pytest.raises(outputs.OutputPathError, match="No space left on device"):
        outputs.write_all(plan, writers)
    assert all(p.read_text() == "old" for p in plan.targets())
    assert len(list(tmp_path.iterdir())) == 4  # no temporary file left
