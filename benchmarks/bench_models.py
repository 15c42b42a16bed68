"""Speed of the model layer: orchestrator overhead per live decision and batched decisions.

Run with ``python -m pytest benchmarks/bench_models.py --benchmark-enable``. Four small
seeded models (an MLP over a flattened 20 × 8 window, ~5k parameters each) stand in for
real ones; what is measured is the orchestrator around them:

* ``models alone``: the four ``predict`` calls one after the other on the same tensor
  (what the models themselves cost);
* ``decide`` sequential and in the thread pool: the live path (feature checks, registry
  acquire, output checks, Hedge step, bookkeeping) around the same four calls; the
  overhead per decision is ``decide - models alone``;
* the same with four heavier models (two 1-D convolutions over a 256- or 2048-bar window),
  where the pool can overlap work since torch releases the GIL while it computes;
* torch runs one intra-op thread (set below), so the pool is what spreads work over cores;
* ``decide_batch`` over 1,000,000 windows (a strided view over a feature matrix, fed in
  chunks), closes given so the weights move at every bar.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view

from gogo2.config import load_settings
from models import ModelInterface, ModelRegistry, TradingOrchestrator

WINDOW, N_FEATURES = 20, 8
# One intra-op thread per model call: the pool's threads then share the cores without each
# torch op also spreading over every core (on a busy 2-core machine, 2 intra-op threads made
# single calls 10-100x slower at times: OpenMP barriers waiting on descheduled threads).
torch.set_num_threads(1)
SETTINGS = load_settings(environ={"GOGO2__PERFORMANCE__USE_GPU": "false"})


class MLP(ModelInterface):
    def __init__(self, name: str, seed: int) -> None:
        super().__init__(name, {"seed": seed})
        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(
            torch.nn.Flatten(-2),
            torch.nn.Linear(WINDOW * N_FEATURES, 32),
            torch.nn.ReLU(),
            torch.nn.Linear(32, 3),
        ).eval()

    def predict(self, features):
        probs = F.softmax(self.model(features), dim=-1)
        return probs.numpy(), float(probs.max())


class Conv(ModelInterface):
    """A heavier model: two 1-D convolutions over a 256-bar window of 8 features."""

    def __init__(self, name: str, seed: int) -> None:
        super().__init__(name, {"seed": seed})
        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(
            torch.nn.Conv1d(N_FEATURES, 64, 5, padding=2),
            torch.nn.ReLU(),
            torch.nn.Conv1d(64, 64, 5, padding=2),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool1d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(64, 3),
        ).eval()

    def predict(self, features):
        x = features if features.ndim == 3 else features[None]
        probs = F.softmax(self.model(x.transpose(1, 2)), dim=-1)
        if features.ndim == 2:
            probs = probs[0]
        return probs.numpy(), float(probs.max())


def orchestrator(kind: type[ModelInterface], parallel: bool) -> TradingOrchestrator:
    o = TradingOrchestrator(ModelRegistry(total_limit_mb=1024), SETTINGS, parallel=parallel)
    for i in range(4):
        assert o.register_model(kind(f"m{i}", seed=i), weight=1.0)
    return o


def window(n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, N_FEATURES)).astype(np.float32)


def models_alone(o: TradingOrchestrator, x: np.ndarray) -> None:
    t = torch.from_numpy(x)
    with torch.inference_mode():
        for name in o.model_names:
            o.registry.get(name).predict(t)


CASES = [(MLP, WINDOW), (Conv, 256), (Conv, 2048)]
IDS = ["small", "conv256", "conv2048"]


@pytest.mark.parametrize(("kind", "width"), CASES, ids=IDS)
def test_models_alone(benchmark, kind, width) -> None:
    o = orchestrator(kind, parallel=False)
    x = window(width)
    for _ in range(3):  # first calls build oneDNN primitives
        models_alone(o, x)
    benchmark(models_alone, o, x)


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "pool"])
@pytest.mark.parametrize(("kind", "width"), CASES, ids=IDS)
def test_decide_live(benchmark, kind, width, parallel) -> None:
    o = orchestrator(kind, parallel=parallel)
    x = window(width)
    closes = iter(100.0 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 1e-3, 1_000_000))))
    for _ in range(3):
        o.decide(x, close=next(closes))
    d = benchmark(lambda: o.decide(x, close=next(closes)))
    assert d.action in ("sell", "hold", "buy")
    o.close()


def test_decide_batch_one_million_windows(benchmark) -> None:
    n = 1_000_000
    feats = window(n + WINDOW - 1)
    views = sliding_window_view(feats, WINDOW, axis=0).transpose(0, 2, 1)  # (n, 20, 8), no copy
    closes = 100.0 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 1e-3, n)))
    o = orchestrator(MLP, parallel=True)
    o.decide_batch(views[:1000], close=closes[:1000])  # compile the weights kernel first
    res = benchmark.pedantic(
        o.decide_batch, (views,), {"close": closes, "batch_size": 32768}, rounds=3, iterations=1
    )
    assert len(res) == n and np.isfinite(res.weights).all()
    benchmark.extra_info["windows_per_s"] = n / benchmark.stats.stats.median
