"""The weights rule: Hedge on each model's log-loss, with a fixed-share floor, strictly causal.

Notation: ``m`` models with registered weights ``w0`` (normalised to ``b = w0 / sum(w0)``),
learning rate ``eta`` (``orchestrator.learning_rate``), floor ``alpha``
(``orchestrator.weight_floor``), horizon ``h`` bars (``orchestrator.horizon``) and hold
band ``band`` (``orchestrator.hold_band``). ``v`` are the current weights, ``v = b`` at
the start.

At each decision bar ``t``, with ``c_t`` the close of bar ``t``:

1. **Score what matured.** The prediction made at ``t - h`` is scored now, when its
   horizon has closed: the realised move is ``r = log(c_t / c_{t-h})`` and the outcome
   ``y`` is buy if ``r > band``, sell if ``r < -band``, hold otherwise. Each model's loss
   is its log-loss ``l_i = -log(max(p_i[y], 1e-6))``.
2. **Hedge update.** ``u_i = v_i * exp(-eta * l_i)``, normalised to sum 1.
3. **Floor (fixed share).** ``v = (1 - alpha) * u + alpha * b``: every model keeps at least
   ``alpha * b_i``, so a model that did badly for a while can earn its weight back.
4. **Combine.** ``P = sum_i v_i * p_i,t`` (a weighted average of the probabilities).
5. **Decide.** The action is the one whose combined probability is strictly the largest
   (a tie means hold); the confidence is that largest probability; below
   ``confidence_threshold`` the action is hold.

A prediction whose close at ``t - h`` or at ``t`` is missing (NaN) is never scored. The
weights used at ``t`` therefore depend only on closes up to ``c_t`` and predictions up
to ``t - h``: changing anything after ``t`` moves no weight or decision at or before
``t`` (a test checks it). Everything is float64 and deterministic.

``run_batch`` applies the rule to a whole series (a numba kernel); ``HedgeState`` applies
it one decision at a time for the live path. Both give the same numbers.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numba as nb
import numpy as np

SELL, HOLD, BUY = 0, 1, 2
P_MIN = 1e-6


@dataclass(frozen=True)
class Rule:
    """The rule's parameters (from the ``orchestrator`` config section)."""

    learning_rate: float = 0.5
    weight_floor: float = 0.05
    horizon: int = 1
    hold_band: float = 0.001
    confidence_threshold: float = 0.5


def outcome(move: float, band: float) -> int:
    """Action index the realised log move ``move`` stands for."""
    if move > band:
        return BUY
    if move < -band:
        return SELL
    return HOLD


def choose(combined: np.ndarray, threshold: float) -> tuple[int, float]:
    """``(action index, confidence)`` from combined probabilities."""
    s, h, b = float(combined[0]), float(combined[1]), float(combined[2])
    conf = max(s, h, b)
    if b > s and b > h:
        act = BUY
    elif s > b and s > h:
        act = SELL
    else:
        act = HOLD
    if conf < threshold:
        act = HOLD
    return act, conf


@dataclass
class HedgeState:
    """The rule applied one decision at a time (live path).

    ``step(probs, close)`` takes this bar's predictions ``(m, 3)`` and close, scores the
    prediction made ``horizon`` steps ago, and returns the weights used for this bar.
    """

    rule: Rule
    base: np.ndarray  # normalised registered weights (m,)
    v: np.ndarray = field(init=False)
    past: deque = field(init=False)  # (probs, close) of the last `horizon` steps

    def __post_init__(self) -> None:
        self.base = np.asarray(self.base, dtype=np.float64)
        self.v = self.base.copy()
        self.past = deque(maxlen=self.rule.horizon)

    def step(
        self, probs: np.ndarray, close: float
    ) -> tuple[np.ndarray, np.ndarray | None, int, np.ndarray | None]:
        """Weights for this bar, the losses scored now (or None), the outcome (-1: none) and
        the predictions scored (those made ``horizon`` steps ago, or None)."""
        r = self.rule
        losses, y, old_p = None, -1, None
        if len(self.past) == r.horizon:
            old_p, old_c = self.past[0]
            if math.isfinite(old_c) and math.isfinite(close) and old_c > 0 and close > 0:
                y = outcome(math.log(close / old_c), r.hold_band)
                losses = -np.log(np.maximum(old_p[:, y], P_MIN))
                u = self.v * np.exp(-r.learning_rate * losses)
                u /= u.sum()
                self.v = (1.0 - r.weight_floor) * u + r.weight_floor * self.base
        self.past.append((np.asarray(probs, dtype=np.float64), float(close)))
        return self.v.copy(), losses, y, (old_p if losses is not None else None)

    def resize(self, base: np.ndarray, keep: list[int]) -> None:
        """New registered weights after a model was added or removed (``keep``: old columns kept,
        -1 for a new model); pending predictions are dropped, learnt shares kept."""
        base = np.asarray(base, dtype=np.float64)
        v = np.array([self.v[k] if k >= 0 else 0.0 for k in keep], dtype=np.float64)
        new = np.array([k < 0 for k in keep])
        v[new] = base[new]
        old_sum = v[~new].sum()
        if old_sum > 0:
            v[~new] *= (1.0 - v[new].sum()) / old_sum
        else:
            v = base.copy()
        self.base, self.v = base, v / v.sum()
        self.past.clear()


@nb.njit(cache=True)
def _run(
    probs, close, base, eta, alpha, h, band, threshold, weights, combined, action, conf, losses
):
    n, m = probs.shape[0], probs.shape[1]
    v = base.copy()
    for t in range(n):
        losses[t, :] = np.nan
        j = t - h
        if j >= 0:
            c0, c1 = close[j], close[t]
            if np.isfinite(c0) and np.isfinite(c1) and c0 > 0 and c1 > 0:
                r = math.log(c1 / c0)
                y = 2 if r > band else (0 if r < -band else 1)
                tot = 0.0
                for i in range(m):
                    p = probs[j, i, y]
                    if p < 1e-6:
                        p = 1e-6
                    li = -math.log(p)
                    losses[t, i] = li
                    v[i] = v[i] * math.exp(-eta * li)
                    tot += v[i]
                for i in range(m):
                    v[i] = (1.0 - alpha) * (v[i] / tot) + alpha * base[i]
        s = 0.0
        hh = 0.0
        b = 0.0
        for i in range(m):
            weights[t, i] = v[i]
            s += v[i] * probs[t, i, 0]
            hh += v[i] * probs[t, i, 1]
            b += v[i] * probs[t, i, 2]
        combined[t, 0] = s
        combined[t, 1] = hh
        combined[t, 2] = b
        c = max(s, hh, b)
        conf[t] = c
        if b > s and b > hh:
            a = 1
        elif s > b and s > hh:
            a = -1
        else:
            a = 0
        if c < threshold:
            a = 0
        action[t] = a


@dataclass(frozen=True)
class BatchResult:
    """The rule over a series: per bar the weights used, combined probabilities, action
    (-1 sell, 0 hold, 1 buy), confidence, and the losses scored at that bar (NaN: none)."""

    weights: np.ndarray  # (n, m)
    combined: np.ndarray  # (n, 3)
    action: np.ndarray  # (n,) int8
    confidence: np.ndarray  # (n,)
    losses: np.ndarray  # (n, m)


def run_batch(probs: np.ndarray, close: np.ndarray, base: np.ndarray, rule: Rule) -> BatchResult:
    """Apply the rule from the start over ``probs`` ``(n, m, 3)`` and closes ``(n,)``."""
    probs = np.ascontiguousarray(probs, dtype=np.float64)
    close = np.ascontiguousarray(close, dtype=np.float64)
    base = np.ascontiguousarray(base, dtype=np.float64)
    n, m = probs.shape[0], probs.shape[1]
    weights = np.empty((n, m))
    combined = np.empty((n, 3))
    action = np.empty(n, np.int8)
    conf = np.empty(n)
    losses = np.empty((n, m))
    _run(
        probs,
        close,
        base,
        float(rule.learning_rate),
        float(rule.weight_floor),
        int(rule.horizon),
        float(rule.hold_band),
        float(rule.confidence_threshold),
        weights,
        combined,
        action,
        conf,
        losses,
    )
    return BatchResult(weights, combined, action, conf, losses)
