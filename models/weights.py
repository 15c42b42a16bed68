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

**Performance records.** Whenever predictions are scored (step 1), each model's record
and the ensemble's (its combined probabilities ``P`` of ``t - h`` against the same outcome)
add one scored prediction, a hit when the prediction's most probable action (strictly the
largest; a tie is hold) is ``y``, and the log-loss ``l_i`` to a running sum.

``HedgeState`` holds everything the rule carries from one decision to the next: the
weights ``v``, the last ``h`` decisions (predictions, close, combined probabilities) in a
ring, and the performance records. ``HedgeState.run`` applies the rule to ``n`` decisions
at once in one numba kernel over plain arrays and leaves the state where ``n`` single
steps would; the live path calls it with ``n = 1``, a backtest with the whole series. The
two therefore give the same numbers to the bit, however the series is cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@nb.njit(cache=True)
def _run(
    probs,
    close,
    base,
    eta,
    alpha,
    band,
    threshold,
    v,
    ring_probs,
    ring_close,
    ring_comb,
    ring,
    scored,
    hits,
    loss_sum,
    weights,
    combined,
    action,
    conf,
    losses,
):
    """The rule over ``n`` decisions, continuing from the state (``v``, the ring, the records).

    The ring holds the last ``ring[0]`` (at most ``h``) decisions before this call; the one
    made ``d`` steps before the first new decision is in slot ``(ring[1] - d) mod h``
    (``ring[1]`` is the next slot to write). ``scored``, ``hits`` and ``loss_sum`` have
    ``m + 1`` rows, the last one the ensemble's.
    """
    n, m = probs.shape[0], probs.shape[1]
    h = ring_close.shape[0]
    cnt, pos = ring[0], ring[1]
    for t in range(n):
        for i in range(m):
            losses[t, i] = np.nan
        # the decision scored now, if any, made h steps ago: in this call's arrays (row j)
        # or, made before this call, in the ring (slot j)
        j = t - h
        in_ring = j < 0
        if in_ring:
            j = pos - (h - t)
            if j < 0:
                j += h
        if in_ring and h - t > cnt:
            c0 = np.nan  # not made yet: nothing to score
        else:
            c0 = ring_close[j] if in_ring else close[j]
        c1 = close[t]
        if np.isfinite(c0) and np.isfinite(c1) and c0 > 0 and c1 > 0:
            r = math.log(c1 / c0)
            y = 2 if r > band else (0 if r < -band else 1)
            tot = 0.0
            for i in range(m):
                if in_ring:
                    q0, q1, q2 = ring_probs[j, i, 0], ring_probs[j, i, 1], ring_probs[j, i, 2]
                else:
                    q0, q1, q2 = probs[j, i, 0], probs[j, i, 1], probs[j, i, 2]
                p = q2 if y == 2 else (q0 if y == 0 else q1)
                if p < P_MIN:
                    p = P_MIN
                li = -math.log(p)
                losses[t, i] = li
                v[i] = v[i] * math.exp(-eta * li)
                tot += v[i]
                scored[i] += 1
                loss_sum[i] += li
                if _best(q0, q1, q2) == y:
                    hits[i] += 1
            for i in range(m):
                v[i] = (1.0 - alpha) * (v[i] / tot) + alpha * base[i]
            if in_ring:
                q0, q1, q2 = ring_comb[j, 0], ring_comb[j, 1], ring_comb[j, 2]
            else:
                q0, q1, q2 = combined[j, 0], combined[j, 1], combined[j, 2]
            p = q2 if y == 2 else (q0 if y == 0 else q1)
            if p < P_MIN:
                p = P_MIN
            scored[m] += 1
            loss_sum[m] += -math.log(p)
            if _best(q0, q1, q2) == y:
                hits[m] += 1
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
        a = _best(s, hh, b) - 1
        if c < threshold:
            a = 0
        action[t] = a
    # the last (up to h) decisions go to the ring, oldest first, over the oldest held
    for t in range(max(0, n - h), n):
        for i in range(m):
            for k in range(3):
                ring_probs[pos, i, k] = probs[t, i, k]
        ring_close[pos] = close[t]
        for k in range(3):
            ring_comb[pos, k] = combined[t, k]
        pos = pos + 1 if pos + 1 < h else 0
    ring[0] = min(cnt + n, h)
    ring[1] = pos


@nb.njit(cache=True)
def _best(s, h, b):
    """Index of the strictly largest of (sell, hold, buy); a tie is hold (1)."""
    if b > s and b > h:
        return 2
    if s > b and s > h:
        return 0
    return 1


@dataclass(frozen=True)
class BatchResult:
    """The rule over a series: per bar the weights used, combined probabilities, action
    (-1 sell, 0 hold, 1 buy), confidence, and the losses scored at that bar (NaN: none)."""

    weights: np.ndarray  # (n, m)
    combined: np.ndarray  # (n, 3)
    action: np.ndarray  # (n,) int8
    confidence: np.ndarray  # (n,)
    losses: np.ndarray  # (n, m)


class HedgeState:
    """The rule's state between decisions: weights, the last ``horizon`` decisions, records.

    ``run(probs, close)`` takes ``n`` decisions' predictions ``(n, m, 3)`` and closes
    ``(n,)``, applies the rule to each in turn (scoring the predictions made ``horizon``
    steps before), and returns what was used and decided at each of them. Rows of
    ``scored``, ``hits`` and ``loss_sum`` are the models', in order, then the ensemble's.
    """

    def __init__(self, rule: Rule, base: np.ndarray) -> None:
        self.rule = rule
        self.base = np.ascontiguousarray(base, dtype=np.float64).copy()
        m = self.base.shape[0]
        self.v = self.base.copy()
        self.scored = np.zeros(m + 1, np.int64)
        self.hits = np.zeros(m + 1, np.int64)
        self.loss_sum = np.zeros(m + 1, np.float64)
        self._clear_ring()

    def _clear_ring(self) -> None:
        h, m = int(self.rule.horizon), self.base.shape[0]
        self.ring_probs = np.zeros((h, m, 3), np.float64)
        self.ring_close = np.full(h, np.nan)
        self.ring_comb = np.zeros((h, 3), np.float64)
        self.ring = np.zeros(2, np.int64)  # decisions held, next slot

    @property
    def pending(self) -> int:
        """Decisions made whose horizon has not closed yet (at most ``horizon``)."""
        return int(self.ring[0])

    def run(self, probs: np.ndarray, close: np.ndarray) -> BatchResult:
        probs = np.ascontiguousarray(probs, dtype=np.float64)
        close = np.ascontiguousarray(close, dtype=np.float64)
        n, m = probs.shape[0], probs.shape[1]
        if m != self.base.shape[0] or probs.shape[2:] != (3,) or close.shape != (n,):
            raise ValueError(
                f"predictions {probs.shape} and closes {close.shape} do not fit {self.base.shape[0]} models"
            )
        r = self.rule
        weights = np.empty((n, m))
        combined = np.empty((n, 3))
        action = np.empty(n, np.int8)
        conf = np.empty(n)
        losses = np.empty((n, m))
        _run(
            probs,
            close,
            self.base,
            float(r.learning_rate),
            float(r.weight_floor),
            float(r.hold_band),
            float(r.confidence_threshold),
            self.v,
            self.ring_probs,
            self.ring_close,
            self.ring_comb,
            self.ring,
            self.scored,
            self.hits,
            self.loss_sum,
            weights,
            combined,
            action,
            conf,
            losses,
        )
        return BatchResult(weights, combined, action, conf, losses)

    def resize(self, base: np.ndarray, keep: list[int]) -> None:
        """New registered weights after a model was added or removed (``keep``: old columns kept,
        -1 for a new model); pending predictions are dropped, learnt shares and the kept
        models' (and the ensemble's) records kept, a new model's start at zero."""
        base = np.ascontiguousarray(base, dtype=np.float64).copy()
        new = np.array([k < 0 for k in keep], dtype=bool)
        v = np.array([self.v[k] if k >= 0 else 0.0 for k in keep], dtype=np.float64)
        v[new] = base[new]
        old_sum = v[~new].sum()
        if old_sum > 0:
            v[~new] *= (1.0 - v[new].sum()) / old_sum
        else:
            v = base.copy()
        rows = [*keep, -1]  # the ensemble's row is the last one
        m_old = self.v.shape[0]

        def pick(a: np.ndarray) -> np.ndarray:
            out = np.zeros(len(rows), a.dtype)
            for i, k in enumerate(rows[:-1]):
                if k >= 0:
                    out[i] = a[k]
            out[-1] = a[m_old]
            return out

        self.scored, self.hits, self.loss_sum = (
            pick(self.scored),
            pick(self.hits),
            pick(self.loss_sum),
        )
        self.base = base
        self.v = v / v.sum() if v.size else v
        self._clear_ring()


def run_batch(probs: np.ndarray, close: np.ndarray, base: np.ndarray, rule: Rule) -> BatchResult:
    """Apply the rule from the start (weights ``base``, nothing pending) over ``probs``
    ``(n, m, 3)`` and closes ``(n,)``."""
    return HedgeState(rule, base).run(probs, close)
