"""The embedded synthetic sample: seeded BTC/USDT and ETH/USDT 1m candles, 2022-12 .. 2024.

A fresh machine with no network still has something to backtest: the first command
that needs candles calls :func:`ensure_sample`, which generates the sample and stores
it in the catalog under the exchange name ``"synthetic"`` with ``source="synthetic"``
(every report says so). It is **not market data**; it only has the stylised facts that
matter to a backtest:

* fat tails: multivariate Student-t innovations (5 degrees of freedom);
* volatility clustering on two scales: a GARCH(1,1) variance on the 1m innovations
  (half-life about an hour) times a slow log-volatility regime (half-life of days);
* intraday seasonality: activity follows the Asia / Europe / US sessions by hour of
  day (UTC) and is lower at weekends; volume rises with the size of the move;
* cross-asset dependence: BTC and ETH innovations have correlation 0.82 and share
  the variance process, so 1m returns correlate around 0.8;
* plausible levels: the log price is pulled very weakly (half-life 12 days) towards a
  smooth path through rough levels of December 2022 to 2024 (BTC 17k -> 16.5k -> ~70k,
  ETH 1.28k -> 1.2k -> ~3.3k), so two years of noise cannot wander to absurd prices.
  The knots are round numbers near those months' levels, not quotes. The pull is a
  drift of a few millionths per minute, far below the per-minute noise; over days it is
  a weak mean reversion (20 % away from the path: about 1 %/day against a daily
  volatility near 3 %) that a strategy could learn. Judge strategies on real data, not
  on this sample.

The sample starts on 2022-12-01 so that a backtest from 2023-01-01 finds its warm-up
(a month of 1m candles covers that of every bundled strategy on its default timeframe)
and its first decision falls on 2023-01-01 00:00.

Candles are consistent: ``open`` equals the previous ``close``, ``high >= max(open,
close)``, ``low <= min(open, close)``, volume is positive; prices are rounded to 0.01
and volumes to 1e-5. The same seed gives byte-identical arrays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gogo2.errors import UnknownNameError, UserInputError
from gogo2.timeframes import format_time, parse_time

SAMPLE_EXCHANGE = "synthetic"
SAMPLE_TIMEFRAME = "1m"
SAMPLE_START = "2022-12-01"
SAMPLE_END = "2025-01-01"
SAMPLE_SYMBOLS = ("BTC/USDT", "ETH/USDT")
#: Bump when the generator changes, so stored samples are regenerated.
GENERATOR_VERSION = 2
MANIFEST_NAME = ".synthetic_sample.json"

_MINUTE = 60_000
_DAY = 86_400_000
_YEAR_MINUTES = 525_600

# Student-t degrees of freedom of the innovations (unit variance after scaling).
_NU = 5.0
# Correlation of the innovations between any two symbols.
_RHO = 0.82
# GARCH(1,1) on the 1m innovations: h_t = (1 - a - b) + a z_{t-1}^2 h_{t-1} + b h_{t-1}.
_GARCH_ALPHA = 0.06
_GARCH_BETA = 0.93
# Slow log-volatility regime: AR(1), stationary std and half-life in minutes.
_REGIME_STD = 0.35
_REGIME_HALF_LIFE = 3 * 1440
# Pull of the log price towards the level path: half-life in minutes.
_PULL_HALF_LIFE = 12 * 1440
# Intrabar wick size, in units of the bar's volatility.
_WICK = 0.6
# Dispersion (log-normal sigma) of volume noise.
_VOLUME_NOISE = 0.45

# Relative activity by hour of day (UTC): Asia open, Europe, the US session peak
# (13-16 UTC) and the quiet hours after the US close. Mean 1 over the day.
_HOURLY_ACTIVITY = np.array(
    [
        1.05, 1.00, 0.92, 0.82, 0.74, 0.70, 0.72, 0.80,
        0.90, 0.95, 0.97, 0.98, 1.02, 1.20, 1.45, 1.55,
        1.45, 1.30, 1.15, 1.05, 0.95, 0.88, 0.82, 0.92,
    ]
)  # fmt: skip
_HOURLY_ACTIVITY = _HOURLY_ACTIVITY / _HOURLY_ACTIVITY.mean()
_WEEKEND_ACTIVITY = 0.7


@dataclass(frozen=True)
class _Profile:
    """Per-symbol parameters: annual volatility, mean 1m base volume and the level path."""

    annual_vol: float
    base_volume: float
    # (date, price) knots; the level path is log-linear between them and flat outside.
    knots: tuple[tuple[str, float], ...]


PROFILES: dict[str, _Profile] = {
    "BTC/USDT": _Profile(
        annual_vol=0.50,
        base_volume=60.0,
        knots=(
            ("2022-12-01", 17_000.0),
            ("2023-01-01", 16_500.0),
            ("2023-04-01", 28_000.0),
            ("2023-09-01", 26_000.0),
            ("2024-01-01", 42_500.0),
            ("2024-03-15", 68_000.0),
            ("2024-09-01", 58_000.0),
            ("2025-01-01", 70_000.0),
        ),
    ),
    "ETH/USDT": _Profile(
        annual_vol=0.62,
        base_volume=650.0,
        knots=(
            ("2022-12-01", 1_280.0),
            ("2023-01-01", 1_200.0),
            ("2023-04-01", 1_800.0),
            ("2023-09-01", 1_650.0),
            ("2024-01-01", 2_300.0),
            ("2024-03-15", 3_700.0),
            ("2024-09-01", 2_500.0),
            ("2025-01-01", 3_300.0),
        ),
    ),
}


_KERNEL: Any = None


def _simulate_kernel():
    """Compile (once, cached on disk) the recursive part of the generator."""
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    from numba import njit

    @njit(cache=True)
    def simulate(z, u, act_vol, sigma, anchor, log_p0, alpha, beta, phi, eta, kappa):
        """Run the variance, regime and price recursions.

        z : (n, k) unit-variance innovations; u : (n,) regime shocks;
        act_vol : (n,) seasonal volatility multiplier; sigma : (k,) 1m volatility;
        anchor : (n, k) log level path at each bar's open; log_p0 : (k,) first open.
        Returns log close (n, k) and the per-bar volatility scale (n,) shared by all symbols.
        """
        n, k = z.shape
        log_close = np.empty((n, k))
        scale = np.empty(n)
        omega = 1.0 - alpha - beta
        h = 1.0
        s = 0.0
        # the regime's own level correction keeps E[exp(s)] near 1
        s_var = eta * eta / (1.0 - phi * phi)
        prev = log_p0.copy()
        for t in range(n):
            if t > 0:
                z0 = z[t - 1, 0]
                h = omega + alpha * z0 * z0 * h + beta * h
                s = phi * s + eta * u[t]
            sc = act_vol[t] * np.exp(s - 0.5 * s_var) * np.sqrt(h)
            scale[t] = sc
            for j in range(k):
                r = sigma[j] * sc * z[t, j] - kappa * (prev[j] - anchor[t, j])
                prev[j] = prev[j] + r
                log_close[t, j] = prev[j]
        return log_close, scale

    _KERNEL = simulate
    return simulate


def _level_path(profile: _Profile, times: np.ndarray) -> np.ndarray:
    knot_t = np.array([parse_time(d) for d, _ in profile.knots], dtype=np.float64)
    knot_p = np.log(np.array([p for _, p in profile.knots], dtype=np.float64))
    return np.interp(times.astype(np.float64), knot_t, knot_p)


def _activity(times: np.ndarray) -> np.ndarray:
    hour = (times // 3_600_000) % 24
    dow = (times // _DAY + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    act = _HOURLY_ACTIVITY[hour]
    return np.where(dow >= 5, act * _WEEKEND_ACTIVITY, act)


def _time_grid(start: str | int, end: str | int) -> np.ndarray:
    t0 = parse_time(start, "start")
    t1 = parse_time(end, "end")
    assert t0 is not None and t1 is not None
    if t0 % _MINUTE or t1 % _MINUTE:
        raise UserInputError(
            f"synthetic sample range {format_time(t0)} .. {format_time(t1)} is not on the 1m grid: "
            "give whole minutes."
        )
    if t1 <= t0:
        raise UserInputError(
            f"synthetic sample end {format_time(t1)} is not after start {format_time(t0)}: "
            "give an end later than the start."
        )
    return np.arange(t0, t1, _MINUTE, dtype=np.int64)


def generate_sample(
    seed: int,
    start: str | int = SAMPLE_START,
    end: str | int = SAMPLE_END,
    symbols: tuple[str, ...] | list[str] = SAMPLE_SYMBOLS,
) -> dict[str, pd.DataFrame]:
    """Generate seeded 1m candles for ``symbols`` from ``start`` (inclusive) to ``end`` (exclusive).

    Parameters
    ----------
    seed : int
        Seed of ``np.random.default_rng``; the same seed and range give identical frames.
    start, end : str or int
        UTC dates ('2023-01-01') or ms timestamps on the minute grid; ``end`` is exclusive
        on open time. The default covers 2022-12-01 00:00 to 2024-12-31 23:59.
    symbols : sequence of str
        Any of :data:`PROFILES` (BTC/USDT, ETH/USDT). The symbols are generated jointly,
        so their returns are correlated.

    Returns
    -------
    dict[str, pandas.DataFrame]
        One frame per symbol with columns ``time`` (int64 ms open time), ``open``, ``high``,
        ``low``, ``close``, ``volume`` (float64).

    Raises
    ------
    UnknownNameError
        A symbol has no generator profile.
    UserInputError
        The range is empty or not on the minute grid.
    """
    symbols = tuple(symbols)
    if not symbols:
        raise UserInputError("generate_sample: no symbols given; pass for example ('BTC/USDT',).")
    for sym in symbols:
        if sym not in PROFILES:
            raise UnknownNameError(
                "synthetic symbol", sym, PROFILES, "The sample generator knows only these."
            )
    times = _time_grid(start, end)
    n, k = times.shape[0], len(symbols)
    rng = np.random.default_rng(seed)

    # multivariate Student-t innovations with unit variance and correlation _RHO
    corr = np.full((k, k), _RHO)
    np.fill_diagonal(corr, 1.0)
    chol = np.linalg.cholesky(corr)
    gauss = rng.standard_normal((n, k)) @ chol.T
    mix = np.sqrt((_NU - 2.0) / rng.chisquare(_NU, n))
    z = np.ascontiguousarray(gauss * mix[:, None])
    u = rng.standard_normal(n)
    wick_up = np.abs(rng.standard_normal((n, k)))
    wick_dn = np.abs(rng.standard_normal((n, k)))
    vol_noise = rng.normal(-0.5 * _VOLUME_NOISE**2, _VOLUME_NOISE, (n, k))

    activity = _activity(times)
    act_vol = np.sqrt(activity)
    profiles = [PROFILES[s] for s in symbols]
    sigma = np.array([p.annual_vol / np.sqrt(_YEAR_MINUTES) for p in profiles])
    anchor = np.ascontiguousarray(np.column_stack([_level_path(p, times) for p in profiles]))
    log_p0 = anchor[0].copy()
    phi = 0.5 ** (1.0 / _REGIME_HALF_LIFE)
    eta = _REGIME_STD * np.sqrt(1.0 - phi * phi)
    kappa = 1.0 - 0.5 ** (1.0 / _PULL_HALF_LIFE)

    simulate = _simulate_kernel()
    log_close, scale = simulate(
        z, u, act_vol, sigma, anchor, log_p0, _GARCH_ALPHA, _GARCH_BETA, phi, eta, kappa
    )

    close = np.round(np.exp(log_close), 2)
    open_ = np.empty_like(close)
    open_[0] = np.round(np.exp(log_p0), 2)
    open_[1:] = close[:-1]
    bar_vol = sigma[None, :] * scale[:, None]
    hi_body = np.maximum(open_, close)
    lo_body = np.minimum(open_, close)
    high = np.maximum(np.round(hi_body * np.exp(_WICK * bar_vol * wick_up), 2), hi_body)
    low = np.minimum(np.round(lo_body * np.exp(-_WICK * bar_vol * wick_dn), 2), lo_body)

    # volume: session activity x volatility regime x size of the move x noise
    move = np.abs(z) * (scale / act_vol)[:, None]
    base = np.array([p.base_volume for p in profiles])
    volume = base[None, :] * activity[:, None] * (0.35 + 0.85 * move) * np.exp(vol_noise)
    volume = np.maximum(np.round(volume, 5), 1e-5)

    out: dict[str, pd.DataFrame] = {}
    for j, sym in enumerate(symbols):
        out[sym] = pd.DataFrame(
            {
                "time": times.copy(),
                "open": open_[:, j].copy(),
                "high": high[:, j].copy(),
                "low": low[:, j].copy(),
                "close": close[:, j].copy(),
                "volume": volume[:, j].copy(),
            }
        )
    return out


def sample_origin(seed: int) -> str:
    """The origin string stored with (and shown for) the sample generated from ``seed``."""
    return f"synthetic:seed={int(seed)}:v{GENERATOR_VERSION}"


def _manifest_path(catalog: Any) -> Path:
    return Path(catalog.root) / MANIFEST_NAME


def _read_manifest(catalog: Any) -> dict[str, Any] | None:
    try:
        return json.loads(_manifest_path(catalog).read_text())
    except (OSError, ValueError):
        return None


def _sample_span() -> tuple[int, int]:
    """Open times of the sample's first and last candle."""
    t0, t1 = parse_time(SAMPLE_START), parse_time(SAMPLE_END)
    assert t0 is not None and t1 is not None
    return t0, t1 - _MINUTE


def _stored_base(catalog: Any, symbol: str) -> Any | None:
    """Coverage of the stored 1m sample series of ``symbol`` (None when absent)."""
    infos = [
        i
        for i in catalog.coverage(
            exchange=SAMPLE_EXCHANGE, symbol=symbol, timeframe=SAMPLE_TIMEFRAME
        )
        if not getattr(i, "derived", False)
    ]
    return infos[0] if infos else None


def _sample_present(catalog: Any, seed: int) -> bool:
    manifest = _read_manifest(catalog)
    if manifest is None or manifest.get("origin") != sample_origin(seed):
        return False
    first, last = _sample_span()
    for sym in SAMPLE_SYMBOLS:
        info = _stored_base(catalog, sym)
        if info is None or info.first > first or info.last < last or info.source != "synthetic":
            return False
    return True


def ensure_sample(catalog: Any, seed: int, console: Any | None = None) -> bool:
    """Store the embedded sample in ``catalog`` unless it is already there with this seed.

    Parameters
    ----------
    catalog : datasets.catalog.Catalog
        Target catalog; the sample goes under exchange ``"synthetic"``, 1m, ``source="synthetic"``.
    seed : int
        Generator seed (``settings.data.sample_seed``). A sample stored with another seed
        (or by an older generator version) is regenerated and replaces it.
    console : rich.console.Console, optional
        Where to print the one-line notice; plain ``print`` to stderr when omitted.

    Returns
    -------
    bool
        True when the sample was generated and written, False when it was already present.
    """
    if _sample_present(catalog, seed):
        return False
    notice = (
        f"generating the embedded synthetic sample (not market data): "
        f"{', '.join(SAMPLE_SYMBOLS)} 1m, {SAMPLE_START} .. {SAMPLE_END}, seed {seed} ..."
    )
    if console is not None:
        console.print(notice, markup=False, highlight=False)
    else:
        import sys

        print(notice, file=sys.stderr)
    frames = generate_sample(seed, SAMPLE_START, SAMPLE_END, SAMPLE_SYMBOLS)
    origin = sample_origin(seed)
    first, last = _sample_span()
    for sym, df in frames.items():
        # The write below replaces every stored candle inside the sample's span. A stored
        # series reaching outside it (an older generator with another span) is removed
        # first, so no candle of the old sample survives; an interrupt in between leaves
        # the old manifest, and the next call regenerates.
        info = _stored_base(catalog, sym)
        if info is not None and (info.first < first or info.last > last):
            catalog.delete(SAMPLE_EXCHANGE, sym, SAMPLE_TIMEFRAME)
        catalog.write(
            df,
            exchange=SAMPLE_EXCHANGE,
            symbol=sym,
            timeframe=SAMPLE_TIMEFRAME,
            source="synthetic",
            repair=False,
            origin=origin,
        )
    path = _manifest_path(catalog)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps(
            {
                "origin": origin,
                "seed": int(seed),
                "version": GENERATOR_VERSION,
                "symbols": list(SAMPLE_SYMBOLS),
                "timeframe": SAMPLE_TIMEFRAME,
                "start": SAMPLE_START,
                "end": SAMPLE_END,
            },
            indent=1,
        )
    )
    tmp.replace(path)
    return True
