"""Overfitting statistics of a sweep: deflated Sharpe ratio and probability of backtest overfitting.

Deflated Sharpe ratio (Bailey and López de Prado, "The Deflated Sharpe Ratio", 2014)
    The best of N trials has a Sharpe ratio inflated by the search. With per-period (not
    annualised) Sharpe ratios, the expected maximum of N unskilled trials is

        SR0 = sqrt(V) * ((1 - g) * Z(1 - 1/N) + g * Z(1 - 1/(N e)))

    (V the variance of the trials' Sharpe ratios, g the Euler-Mascheroni constant, Z the
    standard normal quantile), and the DSR is the probabilistic Sharpe ratio of the best
    trial against that benchmark:

        DSR = Phi((SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 * SR^2))

    with T the number of returns and skew, kurt (not excess) of the best trial's returns.
    Read it as the probability that the best Sharpe ratio is above what the search alone
    would produce: above 0.95 the edge survives the number of trials; near 0.5 or below it
    does not.

Probability of backtest overfitting (Bailey, Borwein, López de Prado and Zhu, "The
Probability of Backtest Overfitting", 2015; combinatorially symmetric cross-validation)
    The (T x N) matrix of the trials' returns is cut into S row blocks. For every way of
    picking S/2 blocks as the in-sample half (the rest is out of sample), the trial with the
    best in-sample Sharpe ratio is found and its out-of-sample rank among all trials,
    w = rank / (N + 1), becomes the logit l = ln(w / (1 - w)). PBO is the share of splits
    with l <= 0: how often the in-sample winner is at or below the out-of-sample median.
    Near 0 the choice carries over out of sample; 0.5 and above means the search picks noise.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numba import njit

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


@dataclass(frozen=True)
class Deflated:
    dsr: float  # probability in [0, 1]
    sharpe: float  # best trial's per-period Sharpe ratio
    benchmark: float  # SR0: expected best per-period Sharpe of N unskilled trials
    trials: int
    observations: int


def expected_max_sharpe(sharpe_variance: float, trials: int) -> float:
    """SR0, the expected maximum per-period Sharpe ratio of ``trials`` unskilled trials."""
    if trials < 2 or not sharpe_variance > 0:
        return 0.0
    n = float(trials)
    z1 = _N.inv_cdf(1.0 - 1.0 / n)
    z2 = _N.inv_cdf(1.0 - 1.0 / (n * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def per_period_sharpe(returns: np.ndarray) -> np.ndarray:
    """Mean / sample std (ddof 1) of each column; NaN where a column does not vary."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    sd = r.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, r.mean(axis=0) / sd, np.nan)


def deflated_sharpe(
    best_returns: np.ndarray, trial_sharpes: np.ndarray, trials: int | None = None
) -> Deflated:
    """DSR of the best trial, given the per-period Sharpe ratios of every trial.

    Parameters
    ----------
    best_returns : (T,) returns of the chosen trial (per period, e.g. daily).
    trial_sharpes : per-period Sharpe ratios of all trials (NaN ones are left out).
    trials : number of trials N (default: the finite Sharpe ratios).
    """
    r = np.asarray(best_returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    srs = np.asarray(trial_sharpes, dtype=np.float64)
    srs = srs[np.isfinite(srs)]
    n = int(trials if trials is not None else len(srs))
    t = len(r)
    if t < 3 or r.std(ddof=1) == 0:
        return Deflated(math.nan, math.nan, math.nan, n, t)
    sr = float(r.mean() / r.std(ddof=1))
    var = float(srs.var(ddof=1)) if len(srs) > 1 else 0.0
    sr0 = expected_max_sharpe(var, n)
    c = r - r.mean()
    m2 = float(np.mean(c**2))
    skew = float(np.mean(c**3) / m2**1.5)
    kurt = float(np.mean(c**4) / m2**2)
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if not denom > 0:
        return Deflated(math.nan, sr, sr0, n, t)
    z = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(denom)
    return Deflated(_N.cdf(z), sr, sr0, n, t)


@dataclass(frozen=True)
class Overfitting:
    pbo: float
    splits: int
    blocks: int
    logits: np.ndarray


def default_blocks(observations: int, wanted: int = 16) -> int:
    """The number of row blocks S: even, at most ``wanted``, each block >= 4 rows."""
    s = min(wanted, observations // 4)
    s -= s % 2
    return s


def pbo(returns: np.ndarray, blocks: int | None = None) -> Overfitting:
    """Probability of backtest overfitting of a (T observations x N trials) return matrix.

    Performance is the per-period Sharpe ratio (mean / sample std); a trial that does not
    vary in a half scores 0 there (no edge). Out-of-sample ranks of tied trials are
    averaged.
    """
    m = np.asarray(returns, dtype=np.float64)
    m = np.where(np.isfinite(m), m, 0.0)
    t, n = m.shape
    s = default_blocks(t) if blocks is None else int(blocks)
    if n < 2 or s < 2 or s % 2:
        return Overfitting(math.nan, 0, s, np.empty(0))
    edges = np.linspace(0, t, s + 1).round().astype(int)
    cnt = np.diff(edges).astype(np.float64)  # (S,)
    s1 = np.stack([m[a:b].sum(axis=0) for a, b in itertools.pairwise(edges)])  # (S, N)
    s2 = np.stack([(m[a:b] ** 2).sum(axis=0) for a, b in itertools.pairwise(edges)])
    splits = list(itertools.combinations(range(s), s // 2))
    # the out-of-sample half of a split is the in-sample half of its complement
    index = {c: i for i, c in enumerate(splits)}
    rest_of = np.array([index[tuple(sorted(set(range(s)) - set(c)))] for c in splits])
    members = np.array(splits, dtype=np.int64)  # (K, S/2) blocks of each half
    logits = np.empty(len(splits))
    step = max(1, (32 * 2**20) // max(1, n * 8))  # bounded memory whatever N
    for a in range(0, len(splits), step):
        rows = np.arange(a, min(a + step, len(splits)))
        ins = _half_sharpes_nb(members[rows], s1, s2, cnt)
        outs = _half_sharpes_nb(members[rest_of[rows]], s1, s2, cnt)
        best = np.argmax(ins, axis=1)
        chosen = outs[np.arange(len(rows)), best][:, None]
        below = (outs < chosen).sum(axis=1)
        ties = (outs == chosen).sum(axis=1)  # includes the chosen trial itself
        rank = below + (ties + 1) / 2.0  # 1 = worst, N = best; ties share their mean rank
        w = rank / (n + 1.0)
        logits[rows] = np.log(w / (1.0 - w))
    return Overfitting(float(np.mean(logits <= 0.0)), len(splits), s, logits)


@njit(cache=True, nogil=True)
def _half_sharpes_nb(members, s1, s2, cnt):
    """Per-period Sharpe ratio of every trial on every half (the union of its blocks), from
    the blocks' sums and sums of squares; a trial that does not vary there scores 0."""
    k, h = members.shape
    n = s1.shape[1]
    out = np.empty((k, n))
    for i in range(k):
        c = 0.0
        for b in range(h):
            c += cnt[members[i, b]]
        for j in range(n):
            a1 = 0.0
            a2 = 0.0
            for b in range(h):
                a1 += s1[members[i, b], j]
                a2 += s2[members[i, b], j]
            mean = a1 / c
            var = (a2 - c * mean * mean) / (c - 1.0)
            sd = np.sqrt(var) if var > 0.0 else 0.0
            out[i, j] = mean / sd if sd > 1e-15 else 0.0
    return out


def reading(dsr: float, pbo_value: float) -> str:
    """One line on how to read the two figures."""
    parts = []
    if math.isfinite(dsr):
        verdict = "survives" if dsr >= 0.95 else "does not survive"
        parts.append(
            f"DSR {dsr:.2f}: probability the best Sharpe beats the best of that many "
            f"unskilled trials; the edge {verdict} the search (>= 0.95 needed)"
        )
    if math.isfinite(pbo_value):
        verdict = (
            "likely overfit" if pbo_value >= 0.5 else "holds out of sample more often than not"
        )
        parts.append(
            f"PBO {pbo_value:.2f}: share of half/half splits where the in-sample winner ranks "
            f"at or below the out-of-sample median ({verdict})"
        )
    return "; ".join(parts) if parts else "DSR/PBO: not enough data or trials to compute."
