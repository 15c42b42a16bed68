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
