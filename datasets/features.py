"""Model inputs: per-bar features over every loaded timeframe and float32 window tensors.

    fm = feature_matrix(data, "BTC/USDT")          # (n_base_bars, n_features) float64
    win = window_tensor(fm, window=20)              # win.x: (n_windows, 20, n_features) float32
    x = torch.from_numpy(win.x)                    # in the model code, not here

No look-ahead, by construction:

* every feature at base row ``t`` uses candles closed by the close of base bar ``t``
  (indicators are causal; a coarser timeframe's features reach the base index as of
  its last *closed* candle, through :func:`datasets.align.asof_index`);
* window ``i`` covers base rows ``[t_i - window + 1, t_i]`` and is labelled with its
  decision bar ``t_i``;
* the optional normalisation uses only the window's own (past) values.

Features are scale-free (ratios, returns, oscillators), so one model can see
different symbols and price levels without a fitted scaler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from datasets import indicators as ind
from datasets.align import asof_index, take_asof
from datasets.bars import Bars, MultiBars
from gogo2.errors import UnknownNameError, UserInputError
from gogo2.timeframes import timeframe_ms

__all__ = [
    "FEATURE_NAMES",
    "FeatureMatrix",
    "FeatureSpec",
    "Windows",
    "feature_matrix",
    "timeframe_features",
    "window_tensor",
]

FEATURE_NAMES = ("logret", "sma_dev", "rsi", "macd_hist", "bb_pctb", "atr", "range", "vol_z")
"""Features computed on each timeframe, in column order:

logret     log return of the close over one candle
sma_dev    close / SMA(close, sma) - 1
rsi        Wilder RSI / 100 - 0.5  (in [-0.5, 0.5])
macd_hist  MACD histogram / close
bb_pctb    Bollinger %b - 0.5  (0 at the middle band; 0 when the bands have no width)
atr        Wilder ATR / close
range      (high - low) / close of the candle
vol_z      rolling z-score of the volume
"""


@dataclass(frozen=True)
class FeatureSpec:
    """Indicator lengths, in candles of the timeframe each feature is computed on."""

    sma: int = 20
    rsi: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    bollinger: int = 20
    atr: int = 14
    volume: int = 20

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise UserInputError(
                    f"feature setting {name}={v!r} must be a whole number >= 2 (candles)."
                )
        if self.macd_fast >= self.macd_slow:
            raise UserInputError(
                f"feature settings macd_fast={self.macd_fast} must be smaller than "
                f"macd_slow={self.macd_slow}."
            )

    @property
    def warmup(self) -> int:
        """Candles of one timeframe needed before every feature is defined."""
        return max(
            self.sma,
            self.rsi + 1,
            self.macd_slow + self.macd_signal - 1,
            self.bollinger,
            self.atr,
            self.volume,
            2,
        )


@dataclass(frozen=True)
class FeatureMatrix:
    """Per-base-bar features of one symbol.

    Attributes
    ----------
    symbol, timeframe : str
        The symbol and the base timeframe.
    time, close_time : np.ndarray[int64, (n,)]
        Open and close times (UTC ms) of the base bars; row ``t`` uses data known at
        ``close_time[t]``.
    names : tuple of str
        ``"<timeframe>:<feature>"`` for each column, base timeframe first.
    values : np.ndarray[float64, (n, n_features)]
        NaN during each timeframe's warm-up and where the base candle is missing.
    """

    symbol: str
    timeframe: str
    time: NDArray[np.int64]
    close_time: NDArray[np.int64]
    names: tuple[str, ...]
    values: NDArray[np.float64]

    @property
    def n(self) -> int:
        return int(self.time.shape[0])

    def to_frame(self):  # -> pandas.DataFrame
        """The matrix as a DataFrame indexed by decision time (base bar close, UTC)."""
        import pandas as pd

        idx = pd.to_datetime(self.close_time, unit="ms", utc=True).rename("close_time")
        return pd.DataFrame(self.values, index=idx, columns=list(self.names))


@dataclass(frozen=True)
class Windows:
    """Model-ready windows of features.

    Attributes
    ----------
    x : np.ndarray[float32, (n_windows, window, n_features)]
        ``x[i, -1]`` is the decision bar's feature row, ``x[i, 0]`` the oldest one.
    index : np.ndarray[int64, (n_windows,)]
        Base row of each window's decision bar.
    time, close_time : np.ndarray[int64, (n_windows,)]
        Open and close time (UTC ms) of each decision bar. A prediction from window
        ``i`` is known at ``close_time[i]`` and can be traded from the next bar on.
    names : tuple of str
        Feature names (last axis of ``x``).
    """

    x: NDArray[np.float32]
    index: NDArray[np.int64]
    time: NDArray[np.int64]
    close_time: NDArray[np.int64]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _column(bars: Bars, symbol: str) -> int:
    if symbol not in bars.symbols:
        raise UnknownNameError(
            f"symbol of the {bars.timeframe} data", symbol, bars.symbols, "Load it first."
        )
    return bars.column(symbol)


def timeframe_features(bars: Bars, symbol: str, spec: FeatureSpec | None = None) -> np.ndarray:
    """The :data:`FEATURE_NAMES` columns for ``symbol`` on the candles of ``bars``.

    Returns
    -------
    np.ndarray[float64, (bars.n, len(FEATURE_NAMES))]
        Row ``k`` uses candles ``<= k`` of this timeframe only.
    """
    spec = spec or FeatureSpec()
    j = _column(bars, symbol)
    h, lo, c, v = bars.high[:, j], bars.low[:, j], bars.close[:, j], bars.volume[:, j]
    with np.errstate(divide="ignore", invalid="ignore"):
        logret = ind.log_returns(c)
        sma_dev = c / ind.sma(c, spec.sma) - 1.0
        rsi = ind.rsi(c, spec.rsi) / 100.0 - 0.5
        hist = ind.macd(c, spec.macd_fast, spec.macd_slow, spec.macd_signal).hist / c
        bb = ind.bollinger(c, spec.bollinger)
        pctb = np.where(np.isnan(bb.mid), np.nan, np.nan_to_num(bb.percent_b, nan=0.5)) - 0.5
        atr = ind.atr(h, lo, c, spec.atr) / c
        rng = (h - lo) / c
        volz = ind.volume_zscore(v, spec.volume)
    cols = [logret, sma_dev, rsi, hist, pctb, atr, rng, volz]
    out = np.column_stack(cols).astype(np.float64, copy=False)
    out[~np.isfinite(out)] = np.nan
    return out


def feature_matrix(
    data: MultiBars,
    symbol: str,
    spec: FeatureSpec | None = None,
    timeframes: tuple[str, ...] | None = None,
) -> FeatureMatrix:
    """Features of ``symbol`` over every loaded timeframe, on the base index.

    Parameters
    ----------
    data : MultiBars
        Base timeframe plus any coarser ones (e.g. from ``strategies.loader``).
    symbol : str
    spec : FeatureSpec, optional
        Indicator lengths (applied on each timeframe in its own candles).
    timeframes : tuple of str, optional
        Subset of ``data``'s timeframes; default all, finest first.

    Returns
    -------
    FeatureMatrix
        ``len(timeframes) * len(FEATURE_NAMES)`` columns. A coarser timeframe's row
        for base bar ``t`` comes from the symbol's last candle of that timeframe closed
        by ``t``'s close.
    """
    spec = spec or FeatureSpec()
    base = data.bars
    tfs = timeframes or tuple(sorted(data.frames, key=timeframe_ms))
    for tf in tfs:
        if tf not in data.frames:
            raise UnknownNameError(
                "timeframe", tf, data.frames, "Use one of the loaded timeframes."
            )
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for tf in tfs:
        bars = data.frames[tf]
        feats = timeframe_features(bars, symbol, spec)
        if tf != data.base:
            if timeframe_ms(tf) < base.tf_ms:
                raise UserInputError(
                    f"timeframe {tf} is finer than the base {data.base}; the base must be "
                    "the finest loaded timeframe."
                )
            # as of the symbol's last *existing* closed candle: a coarse row where only
            # other symbols traded must not blank this symbol's features
            have = ~np.isnan(bars.close[:, _column(bars, symbol)])
            idx = asof_index(base.close_time, bars.close_time[have])
            feats = take_asof(feats[have], idx)
        blocks.append(feats)
        names.extend(f"{tf}:{f}" for f in FEATURE_NAMES)
    values = np.ascontiguousarray(np.hstack(blocks)) if blocks else np.empty((base.n, 0))
    # a missing base candle means no decision at that bar, whatever the coarse data says
    missing = np.isnan(base.close[:, _column(base, symbol)])
    values[missing] = np.nan
    return FeatureMatrix(
        symbol=symbol,
        timeframe=data.base,
        time=base.time.copy(),
        close_time=base.close_time.copy(),
        names=tuple(names),
        values=values,
    )


def window_tensor(
    features: FeatureMatrix,
    window: int = 20,
    *,
    step: int = 1,
    normalize: bool = False,
    dropna: bool = True,
    rows: NDArray[np.integer] | None = None,
) -> Windows:
    """Sliding windows of the feature rows ending at each decision bar.

    Parameters
    ----------
    features : FeatureMatrix
    window : int
        Base bars per window (``window_size``).
    step : int
        Keep every ``step``-th decision bar, counted from the first row of the matrix.
    normalize : bool
        Standardise each window per feature with the window's own mean and standard
        deviation (trailing statistics only; a flat feature becomes 0).
    dropna : bool
        Drop windows that contain any NaN (warm-up, missing candles). With False they
        are kept, NaN included.
    rows : array of int, optional
        Only consider these decision rows (base row indices, e.g. one training batch or
        one split); the other rules still apply. The full tensor takes
        ``n_windows * window * n_features * 4`` bytes, so large sets are better built
        batch by batch.

    Returns
    -------
    Windows
        ``x`` float32 ``(n_windows, window, n_features)``, built with
        :func:`numpy.lib.stride_tricks.sliding_window_view` (only kept windows are copied).
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise UserInputError(f"window {window!r} must be a whole number of bars >= 1, like 20.")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise UserInputError(f"step {step!r} must be a whole number >= 1.")
    vals = features.values
    n, k = vals.shape
    empty = Windows(
        np.empty((0, window, k), np.float32),
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        features.names,
    )
    if n < window:
        return empty
    ends = np.arange(window - 1, n, dtype=np.int64)
    if rows is not None:
        wanted = np.asarray(rows, dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= n):
            raise UserInputError(
                f"rows must index the {n} base bars of the feature matrix (0..{n - 1}), "
                f"got values from {wanted.min()} to {wanted.max()}."
            )
        ends = np.unique(wanted[wanted >= window - 1])
    keep = (ends % step) == 0
    if dropna:
        bad = np.isnan(vals).any(axis=1)
        csum = np.concatenate([[0], np.cumsum(bad)])
        keep &= (csum[ends + 1] - csum[ends + 1 - window]) == 0
    ends = ends[keep]
    if ends.size == 0:
        return empty
    view = sliding_window_view(vals, window, axis=0)  # (n - window + 1, k, window)
    x = np.transpose(view[ends - (window - 1)], (0, 2, 1)).astype(np.float32)
    if normalize:
        mean = x.mean(axis=1, keepdims=True, dtype=np.float64)
        std = x.std(axis=1, keepdims=True, dtype=np.float64)
        x = np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0).astype(np.float32)
    return Windows(
        x=np.ascontiguousarray(x),
        index=ends,
        time=features.time[ends],
        close_time=features.close_time[ends],
        names=features.names,
    )
