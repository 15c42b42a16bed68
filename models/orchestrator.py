"""The TradingOrchestrator: asks every registered model, weighs them by how well they did, decides.

    orchestrator = TradingOrchestrator()             # the process's registry, config.yaml settings
    orchestrator.register_model(model, weight=0.2)   # True, or False (and a logged reason) if it does not fit
    d = orchestrator.decide(window, close=last_close)   # live: one window (window, n_features)
    b = orchestrator.decide_batch(windows, close=closes)  # backtest: (n, window, n_features)
    orchestrator.get_performance_metrics()           # hit rate, log-loss, weight, latency

Predictions are combined as a weighted average of the action probabilities; the weights
move with each model's realised log-loss by the rule in ``models/weights.py`` (Hedge with
a floor, scored only once a prediction's horizon has closed). ``decide`` and
``decide_batch`` move the same state (weights, pending predictions, performance records)
through the same numba kernel: ``decide_batch`` over ``n`` windows leaves it exactly where
``n`` calls of ``decide`` would. Models are evaluated in a
thread pool (torch releases the GIL while it computes), or one after the other with
``parallel=False``. Bad model output and NaN features are refused before any state
changes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gogo2.errors import UnknownNameError
from models.errors import (
    DuplicateModelError,
    FeatureError,
    ModelError,
    ModelMemoryError,
    ModelOutputError,
    WeightError,
)
from models.interfaces import ACTIONS, ModelInterface
from models.registry import ModelRegistry, get_model_registry
from models.weights import HedgeState, Rule

log = logging.getLogger("gogo2.models")

SIGNAL = {0: -1, 1: 0, 2: 1}


@dataclass(frozen=True)
class Contribution:
    """One model's part in a decision."""

    probs: np.ndarray  # (3,) sell, hold, buy
    confidence: float
    weight: float
    latency_ms: float


@dataclass(frozen=True)
class Decision:
    """A decision on one window.

    ``action`` is 'sell', 'hold' or 'buy' (``signal`` -1, 0, 1); ``probs`` the combined
    probabilities; ``confidence`` the largest of them; ``gated`` is True when it was below
    ``orchestrator.confidence_threshold`` and the action therefore hold.
    """

    action: str
    signal: int
    probs: np.ndarray
    confidence: float
    gated: bool
    contributions: dict[str, Contribution]
    time: Any = None

    @property
    def weights(self) -> dict[str, float]:
        return {k: c.weight for k, c in self.contributions.items()}


@dataclass(frozen=True)
class BatchDecision:
    """Decisions over ``n`` windows: ``action`` (n,) int8 -1/0/1, ``probs`` (n, 3) combined,
    ``confidence`` (n,), ``weights`` (n, m) used at each bar, ``model_probs`` (n, m, 3)
    and ``losses`` (n, m): the log-loss scored at each bar (NaN where nothing matured).
    The running records are the orchestrator's: ``get_performance_metrics()``."""

    names: tuple[str, ...]
    action: np.ndarray
    probs: np.ndarray
    confidence: np.ndarray
    weights: np.ndarray
    model_probs: np.ndarray
    losses: np.ndarray

    def __len__(self) -> int:
        return int(self.action.shape[0])


class _Usage:
    """Decisions and time spent of one model (or the ensemble); the scores are the rule's
    (``HedgeState``)."""

    def __init__(self) -> None:
        self.decisions = 0
        self.latency_sum = 0.0  # ms

    def as_dict(self, scored: int, hits: int, loss_sum: float, weight: float) -> dict[str, Any]:
        return {
            "hit_rate": hits / scored if scored else None,
            "log_loss": loss_sum / scored if scored else None,
            "decisions": self.decisions,
            "scored": scored,
            "weight": weight,
            "latency_ms": self.latency_sum / self.decisions if self.decisions else None,
        }


def _check_weight(weight: Any, name: str) -> float:
    ok = isinstance(weight, int | float | np.floating | np.integer) and not isinstance(weight, bool)
    if not ok or not np.isfinite(weight) or weight <= 0:
        raise WeightError(
            f"weight {weight!r} for model {name!r} must be a positive number; give for example "
            "weight=0.2 (weights are relative, they need not sum to 1)."
        )
    return float(weight)


def _features(x: Any, what: str) -> np.ndarray:
    """``x`` as a float32 numpy array, NaN-free."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise FeatureError(
            f"{what}: features of type {arr.dtype} are not numbers; pass a float array."
        )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise FeatureError(
            f"{what}: {int(bad.sum())} NaN or infinite feature value(s), the first at index "
            f"{where}. Start the windows after every feature's warm-up and drop bars with a "
            "missing candle (datasets.features marks both with NaN)."
        )
    return arr


class TradingOrchestrator:
    """Combines the registered models' predictions into decisions.

    Parameters
    ----------
    registry : ModelRegistry, optional
        Default: the process's registry (``get_model_registry()``).
    settings : Settings, optional
        Default: ``load_settings()``; the ``orchestrator`` section is used.
    parallel : bool
        Evaluate the models in a thread pool (``orchestrator.workers`` threads).
    **overrides
        Any key of the ``orchestrator`` section, e.g. ``confidence_threshold=0.6``.
    """

    def __init__(
        self,
        registry: ModelRegistry | None = None,
        settings: Any = None,
        *,
        parallel: bool = True,
        **overrides: Any,
    ) -> None:
        if settings is None:
            from gogo2.config import load_settings

            settings = load_settings()
        cfg = settings.orchestrator
        if overrides:
            from pydantic import ValidationError

            from gogo2.errors import ConfigError

            try:
                cfg = type(cfg).model_validate({**cfg.model_dump(), **overrides})
            except ValidationError as e:
                first = e.errors()[0]
                key = ".".join(str(p) for p in first["loc"])
                raise ConfigError(
                    f"TradingOrchestrator({key}={first.get('input')!r}): {first['msg']}. "
                    "See the orchestrator section of config.yaml for the allowed values."
                ) from None
        self.config = cfg
        self.rule = Rule(
            learning_rate=cfg.learning_rate,
            weight_floor=cfg.weight_floor,
            horizon=cfg.horizon,
            hold_band=cfg.hold_band,
            confidence_threshold=cfg.confidence_threshold,
        )
        self.decision_frequency = cfg.decision_frequency
        self.registry = registry if registry is not None else get_model_registry()
        self.parallel = parallel
        self._lock = threading.RLock()
        self._names: list[str] = []
        self._w0: dict[str, float] = {}
        self._hedge = HedgeState(self.rule, np.zeros(0))
        self._usage: dict[str, _Usage] = {}
        self._ensemble = _Usage()
        self._pool: ThreadPoolExecutor | None = None
        self._workers = cfg.workers

    # -- membership -----------------------------------------------------------------------
    @property
    def model_names(self) -> list[str]:
        with self._lock:
            return list(self._names)

    def register_model(self, model: ModelInterface | str, weight: float = 0.2) -> bool:
        """Add a model (or the name of one already in the registry) with its weight.

        Returns False, and logs why, when a memory limit refuses it. A weight that is not
        a positive number, a name taken already or an unknown name raise.
        """
        name = model if isinstance(model, str) else getattr(model, "name", repr(model))
        w = _check_weight(weight, name)
        with self._lock:
            if name in self._names:
                raise DuplicateModelError(
                    f"a model named {name!r} is registered with this orchestrator already. "
                    "Unregister it first or give the new one another name."
                )
            if isinstance(model, str):
                if model not in self.registry:
                    self.registry.info(model)  # raises UnknownNameError with a close match
            else:
                try:
                    self.registry.register(model)
                except ModelMemoryError as e:
                    log.warning("model %r not registered: %s", name, e)
                    return False
            self._names.append(name)
            self._w0[name] = w
            self._usage[name] = _Usage()
            self._reweigh(keep=[*range(len(self._names) - 1), -1])
        return True

    def unregister_model(self, name: str) -> None:
        """Remove a model from the orchestrator and the registry, freeing its memory."""
        with self._lock:
            if name not in self._names:
                raise UnknownNameError(
                    "model",
                    name,
                    self._names,
                    "See orchestrator.model_names for the registered ones.",
                )
            i = self._names.index(name)
            keep = [k for k in range(len(self._names)) if k != i]
            self._names.pop(i)
            del self._w0[name], self._usage[name]
            self._reweigh(keep)
            if name in self.registry:
                self.registry.unregister(name)

    def _reweigh(self, keep: list[int]) -> None:
        w = np.array([self._w0[n] for n in self._names], dtype=np.float64)
        base = w / w.sum() if w.size else w
        self._hedge.resize(base, keep)

    def reset(self) -> None:
        """Start again from the registered weights, with nothing pending and every
        performance record (scores, decisions, latency) at zero; the models stay."""
        with self._lock:
            self._hedge = HedgeState(self.rule, self._hedge.base)
            self._usage = {n: _Usage() for n in self._names}
            self._ensemble = _Usage()

    # -- evaluation -----------------------------------------------------------------------
    def _map(self, fn: Callable[[str], Any], names: list[str]) -> list[Any]:
        if not self.parallel or self._workers < 2 or len(names) < 2:
            return [fn(n) for n in names]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self._workers, thread_name_prefix="gogo2-model"
            )
            weakref.finalize(self, self._pool.shutdown, wait=False)
        # the calling thread evaluates the first model itself: one hand-off fewer per decision
        futures = [self._pool.submit(fn, n) for n in names[1:]]
        try:
            first = fn(names[0])
        finally:
            done = [f.result() for f in futures]
        return [first, *done]

    def _ask(self, name: str, x: np.ndarray, single: bool) -> tuple[np.ndarray, np.ndarray, float]:
        with self.registry.acquire(name) as model:
            _check_shape(model, x)
            t = torch.from_numpy(x).to(model.device)
            t0 = time.perf_counter()
            with torch.inference_mode(), self.registry.placement.autocast():
                out = model.predict(t)
            ms = (time.perf_counter() - t0) * 1000.0
        n = 1 if single else x.shape[0]
        probs, conf = _check_output(name, out, n, single)
        return probs, conf, ms

    def decide(self, features: Any, *, close: float | None = None, time: Any = None) -> Decision:
        """Decide on one window ``(window, n_features)`` (numpy or torch).

        ``close`` is the close of the decision bar; with it, the prediction made
        ``horizon`` decisions ago is scored and the weights move. Without it nothing is
        scored (the weights stay).
        """
        with self._lock:
            names = list(self._names)
        if not names:
            raise UnknownNameError(
                "model",
                "(none registered)",
                [],
                "Register a model with orchestrator.register_model first.",
            )
        x = _features(features, "decide")
        if x.ndim == 3 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 2:
            raise FeatureError(
                f"decide: features of shape {x.shape}; give one window (window, n_features), or "
                "use decide_batch for (n, window, n_features)."
            )
        c = _close(close)
        results = self._map(lambda n: self._ask(n, x, True), names)
        probs = np.stack([r[0][0] for r in results])
        with self._lock:
            if names != self._names:
                raise ModelError(
                    "the registered models changed during the decision; nothing was decided. "
                    "Decide again."
                )
            res = self._hedge.run(probs[None], np.array([c]))
            v, combined, conf = res.weights[0], res.combined[0], float(res.confidence[0])
            act = int(res.action[0]) + 1
            contributions = {}
            for i, (n, r) in enumerate(zip(names, results, strict=True)):
                u = self._usage[n]
                u.decisions += 1
                u.latency_sum += r[2]
                contributions[n] = Contribution(probs[i], float(r[1][0]), float(v[i]), r[2])
            self._ensemble.decisions += 1
            self._ensemble.latency_sum += max(r[2] for r in results)
        return Decision(
            action=ACTIONS[act],
            signal=SIGNAL[act],
            probs=combined,
            confidence=conf,
            gated=conf < self.rule.confidence_threshold,
            contributions=contributions,
            time=time,
        )

    def decide_batch(
        self, windows: Any, *, close: Any = None, batch_size: int = 16384
    ) -> BatchDecision:
        """Decisions over many windows ``(n, window, n_features)`` (or a ``datasets.features.Windows``).

        Equivalent to ``n`` calls of ``decide`` in order: the weights continue from where
        the orchestrator is (``reset()`` starts again from the registered ones), scoring the
        predictions still pending and those of the series, and afterwards the weights, the
        pending predictions and ``get_performance_metrics()`` are exactly what the ``n``
        calls would leave (each window's latency is its chunk's time over its size). If a
        model fails, nothing changes. ``close`` (n,) are the closes of the decision bars.
        Windows are fed to the models ``batch_size`` at a time, so a strided view over a
        feature matrix is never copied whole; the rule runs in one numba kernel.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise FeatureError(
                f"decide_batch: batch_size {batch_size!r} must be a whole number >= 1."
            )
        x_all = getattr(windows, "x", windows)
        if isinstance(x_all, torch.Tensor):
            x_all = x_all.detach().cpu().numpy()
        x_all = np.asarray(x_all) if not isinstance(x_all, np.ndarray) else x_all
        if x_all.ndim != 3:
            raise FeatureError(
                f"decide_batch: windows of shape {x_all.shape}; give (n, window, n_features)."
            )
        n = x_all.shape[0]
        with self._lock:
            names = list(self._names)
        if not names:
            raise UnknownNameError(
                "model",
                "(none registered)",
                [],
                "Register a model with orchestrator.register_model first.",
            )
        if close is None:
            closes = np.full(n, np.nan)
        else:
            closes = np.asarray(close, dtype=np.float64)
            if closes.shape != (n,):
                raise FeatureError(
                    f"decide_batch: close has shape {closes.shape}, the windows {n}; give one close per window."
                )
        model_probs = np.empty((n, len(names), 3), dtype=np.float64)
        spent = np.zeros(len(names))  # ms per model
        spent_ensemble = 0.0  # ms: the slowest model of each chunk, as decide counts it
        for start in range(0, n, batch_size):
            chunk = _features(x_all[start : start + batch_size], f"decide_batch windows {start}..")
            results = self._map(lambda nm, c=chunk: self._ask(nm, c, False), names)
            for i, r in enumerate(results):
                model_probs[start : start + chunk.shape[0], i] = r[0]
                spent[i] += r[2]
            spent_ensemble += max(r[2] for r in results)
        with self._lock:
            if names != self._names:
                raise ModelError(
                    "the registered models changed during the decisions; nothing was decided. "
                    "Decide again."
                )
            res = self._hedge.run(model_probs, closes)
            for i, nm in enumerate(names):
                u = self._usage[nm]
                u.decisions += n
                u.latency_sum += float(spent[i])
            self._ensemble.decisions += n
            self._ensemble.latency_sum += spent_ensemble
        return BatchDecision(
            tuple(names),
            res.action,
            res.combined,
            res.confidence,
            res.weights,
            model_probs,
            res.losses,
        )

    # -- reporting ------------------------------------------------------------------------
    @property
    def weights(self) -> dict[str, float]:
        """The weights the next decision starts from (before scoring what matures then)."""
        with self._lock:
            return {n: float(w) for n, w in zip(self._names, self._hedge.v, strict=True)}

    def get_performance_metrics(self) -> dict[str, Any]:
        """Per model and for the ensemble: hit rate, log-loss, decisions, weight, latency (ms)."""
        with self._lock:
            h, m = self._hedge, len(self._names)
            models = {
                n: self._usage[n].as_dict(
                    int(h.scored[i]), int(h.hits[i]), float(h.loss_sum[i]), float(h.v[i])
                )
                for i, n in enumerate(self._names)
            }
            ensemble = self._ensemble.as_dict(
                int(h.scored[m]), int(h.hits[m]), float(h.loss_sum[m]), 1.0
            )
            return {"models": models, "ensemble": ensemble}

    def get_memory_stats(self) -> dict[str, Any]:
        """The registry's memory stats."""
        return self.registry.get_memory_stats()

    def close(self) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _close(close: Any) -> float:
    """The decision bar's close: a positive number, or None/NaN for a missing candle."""
    if close is None:
        return float("nan")
    try:
        c = float(close)
    except (TypeError, ValueError):
        c = -1.0
    if math.isnan(c) or (math.isfinite(c) and c > 0):
        return c
    raise FeatureError(
        f"decide: close {close!r} is not a price; give the decision bar's close (a positive "
        "number), or None / NaN when the candle is missing."
    )


def _check_shape(model: ModelInterface, x: np.ndarray) -> None:
    w, f = x.shape[-2], x.shape[-1]
    if model.window_size is not None and w != model.window_size:
        raise FeatureError(
            f"model {model.name!r} takes windows of {model.window_size} bars, got {w}. Build the "
            f"windows with window={model.window_size}."
        )
    if model.feature_names is not None and f != len(model.feature_names):
        raise FeatureError(
            f"model {model.name!r} takes {len(model.feature_names)} features "
            f"({', '.join(model.feature_names[:4])}...), got {f}. Feed the features it was trained on."
        )


def _check_output(name: str, out: Any, n: int, single: bool) -> tuple[np.ndarray, np.ndarray]:
    fix = (
        "predict must return (probabilities over (sell, hold, buy), confidence): a softmax over 3 "
        "outputs, shape (3,) for one window or (n, 3) for n windows, and a confidence in (0, 1]."
    )
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise ModelOutputError(f"model {name!r} returned {type(out).__name__}, not a pair. {fix}")
    probs, conf = out
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().float().cpu().numpy()
    try:
        p = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelOutputError(
            f"model {name!r} returned probabilities that are not numbers. {fix}"
        ) from None
    if single and p.shape == (3,):
        p = p[None, :]
    if p.shape != (n, 3):
        raise ModelOutputError(
            f"model {name!r} returned probabilities of shape {p.shape} for {n} window(s), not "
            f"({n}, 3). {fix}"
        )
    sums = p.sum(axis=1)
    bad = ~np.isfinite(p).all(axis=1) | (p.min(axis=1) < -1e-6) | (np.abs(sums - 1.0) > 1e-3)
    if bad.any():
        k = int(np.argmax(bad))
        raise ModelOutputError(
            f"model {name!r} returned probabilities {np.round(p[k], 6).tolist()} (sum "
            f"{sums[k]:.6g}) for window {k}: not a distribution over 3 actions. {fix}"
        )
    if isinstance(conf, torch.Tensor):
        conf = conf.detach().float().cpu().numpy()
    c = np.asarray(conf, dtype=np.float64).reshape(-1) if conf is not None else np.empty(0)
    if c.size == 1:
        c = np.full(n, c[0])
    if c.shape != (n,) or not np.all(np.isfinite(c)) or (c <= 0).any() or (c > 1 + 1e-6).any():
        raise ModelOutputError(f"model {name!r} returned confidence {conf!r}, not in (0, 1]. {fix}")
    return p, c
