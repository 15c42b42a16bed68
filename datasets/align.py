"""As-of alignment of a coarser timeframe onto a finer one, using only closed bars."""

from __future__ import annotations

import numpy as np


def asof_index(base_close_time: np.ndarray, other_close_time: np.ndarray) -> np.ndarray:
    """For each base bar, the index of the last ``other`` bar closed by the base bar's close.

    A 1h candle opened at 10:00 closes at 11:00; a 1m bar closing at 10:59 cannot see it,
    the bar closing at 11:00 can. -1 where no ``other`` bar has closed yet.

    Both inputs are int64 ms close times, sorted ascending.
    """
    return np.searchsorted(other_close_time, base_close_time, side="right").astype(np.int64) - 1


def take_asof(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` along axis 0 with NaN where ``index`` is -1 (values float).

    ``values`` may be empty (no coarser candle closed yet, e.g. a short live window): every
    row is then NaN.
    """
    values = np.asarray(values)
    if values.shape[0] == 0:
        return np.full(index.shape + values.shape[1:], np.nan)
    out = values[np.maximum(index, 0)].astype(np.float64, copy=True)
    out[index < 0] = np.nan
    return out
