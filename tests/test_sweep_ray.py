"""The Ray executor gives the local executor's results, bit for bit (a local Ray, 2 CPUs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sweep_fixtures import project

from runner.sweep import run_sweep

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_equals_local_bit_for_bit(tmp_path) -> None:
    settings, _ = project(tmp_path, days=90)
    kw = {
        "strategy": "sma_cross",
        "grid": ["fast=5:20:5", "slow=10:50:10", "trail=0,0.02"],
        "start": "2023-01-05",
        "timeframe": "1h",
        "write": False,
    }
    local = run_sweep(settings, **kw)
    remote = run_sweep(settings, executor="ray", jobs=2, **kw)
    assert not ray.is_initialized()  # the local Ray it started is shut down
    assert len(local.table) == 32  # 4 x 5 pairs, 4 with fast >= slow skipped, x 2 trails
    pd.testing.assert_frame_equal(local.table, remote.table, check_exact=True)
    assert np.array_equal(local.returns, remote.returns, equal_nan=True)
    assert local.pbo.pbo == remote.pbo.pbo
    assert local.dsr.dsr == remote.dsr.dsr


@pytest.mark.slow
def test_walk_forward_windows_on_ray_equal_local(tmp_path) -> None:
    from runner.walkforward import run_walk_forward

    settings, _ = project(tmp_path, days=120)
    kw = {
        "strategy": "sma_cross",
        "grid": ["fast=5,10", "slow=20,40"],
        "start": "2023-01-01",
        "timeframe": "1h",
        "train": "40d",
        "test": "20d",
        "write": False,
    }
    local = run_walk_forward(settings, **kw)
    remote = run_walk_forward(settings, executor="ray", jobs=2, **kw)
    assert len(local.windows) == 4
    assert [w.params for w in local.windows] == [w.params for w in remote.windows]
    assert [w.in_sample for w in local.windows] == [w.in_sample for w in remote.windows]
    assert local.equity.equals(remote.equity)


def test_unreachable_cluster_is_one_line_exit_2(tmp_path, monkeypatch, capsys) -> None:
    import cli

    _, cfg = project(tmp_path, days=40)

    def refuse(**kwargs):
        raise ConnectionError("Could not find any running Ray instance.\nmore detail")

    monkeypatch.setattr(ray, "init", refuse)
    code = cli.main(
        ["sweep", "--config", str(cfg), "--strategy", "sma_cross", "--from", "2023-01-05",
         "--timeframe", "1h", "--grid", "fast=5", "--executor", "ray",
         "--ray-address", "10.0.0.1:6379"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--ray-address 10.0.0.1:6379" in err
    assert "Could not find any running Ray instance" in err
