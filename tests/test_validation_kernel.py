"""check_inputs_nb against a plain numpy statement of the rules, on seeded random inputs
that cross the kernel's block boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from engine import checks as C

N, M = 3_001, 3  # 9,003 cells: three blocks of the screen, the last one partial


def _valid(rng: np.random.Generator) -> dict[str, np.ndarray]:
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (N, M)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.002, (N, M)))
    gap = rng.random((N, M)) < 0.02  # missing candles: all NaN
    a = {
        "open": open_,
        "high": np.maximum(open_, close) * 1.001,
        "low": np.minimum(open_, close) * 0.999,
        "close": close,
    }
    for v in a.values():
        v[gap] = np.nan
    e = rng.choice(np.array([-1, 0, 0, 0, 0, 0, 1], dtype=np.int8), size=(N, M))
    a["entries"] = e
    a["exits"] = rng.random((N, M)) < 0.05
    a["order_type"] = rng.integers(0, 3, (N, M)).astype(np.int8)
    a["price"] = np.where(rng.random((N, M)) < 0.5, close, np.nan)
    a["price"][(e != 0) & (a["order_type"] != 0)] = 50.0
    for k in ("size", "sl", "tp", "trail"):
        a[k] = np.where(rng.random((N, M)) < 0.5, rng.uniform(0.01, 0.9, (N, M)), np.nan)
    return a


def _expected(a: dict[str, np.ndarray]) -> tuple[int, int, int]:
    """First bad cell (row-major) and its code, from whole-array masks in priority order."""
    o, h, lo, c = a["open"], a["high"], a["low"], a["close"]
    nan = np.isnan(o).astype(int) + np.isnan(h) + np.isnan(lo) + np.isnan(c)
    full = nan == 0
    with np.errstate(invalid="ignore"):
        e = a["entries"].astype(np.float64)
        act = e != 0
        k = a["order_type"].astype(np.float64)

        def bad_frac(v, hi_ok):
            return act & ~np.isnan(v) & ~((v > 0) & hi_ok(v))

        conds = [
            (nan > 0) & (nan < 4),
            full & ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c)),
            full & ((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)),
            full & (h < lo),
            full & ((h < o) | (h < c)),
            full & ((lo > o) | (lo > c)),
            ~np.isin(e, (-1.0, 0.0, 1.0)),
            ~np.isin(a["exits"].astype(np.float64), (0.0, 1.0)),
            act & ~np.isin(k, (0.0, 1.0, 2.0)),
            act & (k != 0) & ~(np.isfinite(a["price"]) & (a["price"] > 0)),
            bad_frac(a["size"], np.isfinite),
            bad_frac(a["sl"], lambda v: v <= 1),
            bad_frac(a["tp"], lambda v: np.isfinite(v) & ((e > 0) | (v <= 1))),
            bad_frac(a["trail"], lambda v: v <= 1),
        ]
    codes = [1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17]
    code = np.select(conds, codes, 0)
    flat = np.flatnonzero(code.ravel())
    if flat.size == 0:
        return -1, -1, 0
    i = int(flat[0])
    return i // M, i % M, int(code.ravel()[i])


def _run(a: dict[str, np.ndarray]) -> tuple[int, int, int]:
    flags = np.ones(C.N_KFLAGS, dtype=np.int8)
    t, j, code = C.check_inputs_nb(
        a["open"], a["high"], a["low"], a["close"], a["entries"], a["exits"],
        a["order_type"], a["price"], a["size"], a["sl"], a["tp"], a["trail"], flags,
    )  # fmt: skip
    return int(t), int(j), int(code)


_BREAKS = {
    "open": [np.nan, np.inf, 0.0, -1.0, 1e9],
    "high": [np.inf, -np.inf, 1e-9, np.nan],
    "low": [1e9, 0.0, np.nan],
    "close": [-5.0, np.inf, 1e9],
    "entries": [2.0, -2.0, 0.5, np.nan],
    "exits": [np.nan, 2.0, 0.5],
    "order_type": [np.nan, 1.7, 3.0, -1.0],
    "price": [np.nan, 0.0, np.inf],
    "size": [0.0, -1.0, np.inf],
    "sl": [0.0, 1.5, -0.1],
    "tp": [0.0, np.inf, 1.5],
    "trail": [1.2, 0.0],
}


def test_valid_random_inputs_pass() -> None:
    a = _valid(np.random.default_rng(0))
    assert _expected(a) == (-1, -1, 0)
    assert _run(a) == (-1, -1, 0)


@pytest.mark.parametrize("seed", range(12))
def test_first_bad_cell_and_code_match_the_rules(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    a = _valid(rng)
    for k in ("entries", "exits", "order_type"):
        a[k] = a[k].astype(np.float64)  # so any breaking value fits
    for _ in range(3):
        name = list(_BREAKS)[rng.integers(len(_BREAKS))]
        t, j = int(rng.integers(N)), int(rng.integers(M))
        a[name][t, j] = _BREAKS[name][rng.integers(len(_BREAKS[name]))]
        if name not in ("open", "high", "low", "close", "exits", "entries"):
            a["entries"][t, j] = rng.choice([-1.0, 1.0])  # details matter on entry rows
    want = _expected(a)
    assert want != (-1, -1, 0)
    assert _run(a) == want
