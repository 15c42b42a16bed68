"""The orchestrator: hand-computed combination and Hedge step, threshold, causality, determinism,
refusals of bad model output, NaN features and bad weights, and the original design's example."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from model_fakes import FixedModel, SizedModel, TableModel

from gogo2.config import load_settings
from gogo2.errors import UnknownNameError
from models import (
    FeatureError,
    ModelOutputError,
    ModelRegistry,
    TradingOrchestrator,
    WeightError,
    configure_model_registry,
    reset_model_registry,
)

SETTINGS = load_settings(environ={"GOGO2__PERFORMANCE__USE_GPU": "false"})
WINDOW = np.zeros((4, 2), dtype=np.float32)


def orch(**kw) -> TradingOrchestrator:
    return TradingOrchestrator(ModelRegistry(total_limit_mb=100), SETTINGS, **kw)


def test_combination_threshold_and_one_hedge_step_by_hand() -> None:
    o = orch(
        confidence_threshold=0.4, learning_rate=0.5, weight_floor=0.05, horizon=1, hold_band=0.001
    )
    pa, pb = [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]
    assert o.register_model(FixedModel("a", pa), weight=3.0)
    assert o.register_model(FixedModel("b", pb), weight=1.0)
    d = o.decide(WINDOW, close=100.0)
    # weights 3:1 -> 0.75, 0.25; combined = 0.75 pa + 0.25 pb
    expected = [0.75 * 0.2 + 0.25 * 0.6, 0.75 * 0.3 + 0.25 * 0.3, 0.75 * 0.5 + 0.25 * 0.1]
    np.testing.assert_allclose(d.probs, expected)  # [0.3, 0.3, 0.4]
    # buy is strictly the largest and 0.4 is not below the threshold 0.4: it acts
    assert (
        d.confidence == pytest.approx(0.4) and not d.gated and d.action == "buy" and d.signal == 1
    )
    assert d.weights == pytest.approx({"a": 0.75, "b": 0.25})
    # next bar closes at 101: log(101/100) = 0.00995 > 0.001, so the outcome is 'buy'
    d2 = o.decide(WINDOW, close=101.0)
    ua, ub = 0.75 * math.exp(-0.5 * -math.log(0.5)), 0.25 * math.exp(-0.5 * -math.log(0.1))
    va = 0.95 * ua / (ua + ub) + 0.05 * 0.75
    vb = 0.95 * ub / (ua + ub) + 0.05 * 0.25
    assert d2.weights["a"] == pytest.approx(va, abs=1e-12)  # 0.864255...
    assert d2.weights["b"] == pytest.approx(vb, abs=1e-12)
    np.testing.assert_allclose(d2.probs, va * np.array(pa) + vb * np.array(pb))
    assert d2.action == "buy" and d2.confidence == pytest.approx(va * 0.5 + vb * 0.1)


def test_below_the_threshold_or_on_a_tie_the_decision_is_hold() -> None:
    o = orch(confidence_threshold=0.5)
    o.register_model(FixedModel("a", [0.1, 0.45, 0.45]))
    d = o.decide(WINDOW)
    assert d.action == "hold" and d.gated is True and d.confidence == pytest.approx(0.45)
    o2 = orch(confidence_threshold=0.0)
    o2.register_model(FixedModel("a", [0.45, 0.1, 0.45]))  # sell and buy tie
    assert o2.decide(WINDOW).action == "hold"
    o3 = orch(confidence_threshold=0.5)
    o3.register_model(FixedModel("a", [0.7, 0.2, 0.1]))
    assert o3.decide(WINDOW).action == "sell"


def table(n: int, m: int, seed: int) -> np.ndarray:
    """Seeded random distributions over 3 actions, (m, n, 3)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([1.0, 1.0, 1.0], size=(m, n))
    return p


def windows(n: int) -> np.ndarray:
    x = np.zeros((n, 3, 2), dtype=np.float32)
    x[:, -1, 0] = np.arange(n)  # the table models read their row from here
    return x


def closes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


def build(tab: np.ndarray, horizon: int = 3, **kw) -> TradingOrchestrator:
    o = orch(confidence_threshold=0.4, horizon=horizon, **kw)
    for i, t in enumerate(tab):
        o.register_model(TableModel(f"m{i}", t), weight=1.0 + i)
    return o


def live(o: TradingOrchestrator, x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, list[str]]:
    w, acts = [], []
    for k in range(len(c)):
        d = o.decide(x[k], close=c[k])
        w.append(list(d.weights.values()))
        acts.append(d.action)
    return np.array(w), acts


@pytest.mark.parametrize(("horizon", "t"), [(1, 40), (3, 40), (5, 11), (2, 70)])
def test_changing_every_outcome_after_t_moves_nothing_at_or_before_t(horizon: int, t: int) -> None:
    n = 80
    tab, x, c = table(n, 3, t), windows(n), closes(n, horizon)
    tab2, c2 = tab.copy(), c.copy()
    tab2[:, t + 1 :] = table(n, 3, 99)[:, t + 1 :]  # every later prediction differs
    c2[t + 1 :] = closes(n, 77)[t + 1 :] * 3  # and every later close
    for run in ("batch", "live"):
        if run == "batch":
            a = build(tab, horizon).decide_batch(x, close=c)
            b = build(tab2, horizon).decide_batch(x, close=c2)
            wa, wb, da, db = a.weights, b.weights, a.action, b.action
        else:
            wa, da = live(build(tab, horizon), x, c)
            wb, db = live(build(tab2, horizon), x, c2)
            da, db = np.array(da), np.array(db)
        np.testing.assert_array_equal(wa[: t + 1], wb[: t + 1])
        np.testing.assert_array_equal(da[: t + 1], db[: t + 1])
        assert not np.allclose(wa[t + 1 :], wb[t + 1 :])  # the change does reach later bars


def test_a_prediction_is_scored_only_once_its_horizon_has_closed() -> None:
    n = 12
    tab, x, c = table(n, 2, 3), windows(n), closes(n, 4)
    res = build(tab).decide_batch(x, close=c)
    assert np.isnan(res.losses[:3]).all() and np.isfinite(res.losses[3:]).all()
    np.testing.assert_array_equal(
        res.weights[0], res.weights[3 - 1]
    )  # nothing matured before bar 3
    # bar 3 scores the predictions of bar 0 against log(c3 / c0)
    r = math.log(c[3] / c[0])
    y = 2 if r > 0.001 else 0 if r < -0.001 else 1
    np.testing.assert_allclose(res.losses[3], -np.log(tab[:, 0, y]))


def test_live_and_batch_agree_and_runs_are_deterministic() -> None:
    n = 60
    tab, x, c = table(n, 4, 5), windows(n), closes(n, 6)
    w_live, a_live = live(build(tab), x, c)
    seq = build(tab)
    seq.parallel = False
    w_seq, a_seq = live(seq, x, c)
    batch = build(tab).decide_batch(x, close=c, batch_size=7)
    again = build(tab).decide_batch(x, close=c, batch_size=60)
    np.testing.assert_array_equal(w_live, w_seq)
    assert a_live == a_seq
    np.testing.assert_allclose(batch.weights, w_live, rtol=0, atol=1e-12)
    assert [{-1: "sell", 0: "hold", 1: "buy"}[int(v)] for v in batch.action] == a_live
    np.testing.assert_array_equal(batch.weights, again.weights)
    np.testing.assert_array_equal(batch.action, again.action)


def test_performance_metrics_by_hand() -> None:
    o = orch(horizon=1, confidence_threshold=0.0)
    o.register_model(FixedModel("up", [0.1, 0.2, 0.7]))
    o.register_model(FixedModel("down", [0.6, 0.3, 0.1]))
    for close in (100.0, 102.0, 104.0, 101.0):  # outcomes: buy, buy, sell
        o.decide(WINDOW, close=close)
    m = o.get_performance_metrics()
    up, down = m["models"]["up"], m["models"]["down"]
    assert up["decisions"] == 4 and up["scored"] == 3
    assert up["hit_rate"] == pytest.approx(2 / 3) and down["hit_rate"] == pytest.approx(1 / 3)
    assert up["log_loss"] == pytest.approx(-(2 * math.log(0.7) + math.log(0.1)) / 3)
    assert down["log_loss"] == pytest.approx(-(2 * math.log(0.1) + math.log(0.6)) / 3)
    assert up["weight"] + down["weight"] == pytest.approx(1.0) and up["weight"] > down["weight"]
    assert (
        up["latency_ms"] >= 0 and m["ensemble"]["scored"] == 3 and m["ensemble"]["decisions"] == 4
    )
    assert o.get_memory_stats()["models"].keys() == {"up", "down"}


def test_the_floor_keeps_a_bad_model_in_play() -> None:
    o = orch(horizon=1, weight_floor=0.1, learning_rate=5.0)
    o.register_model(FixedModel("good", [0.01, 0.01, 0.98]), weight=1.0)
    o.register_model(FixedModel("bad", [0.98, 0.01, 0.01]), weight=1.0)
    for k in range(50):
        o.decide(WINDOW, close=100.0 * 1.01**k)  # always up
    assert o.weights["bad"] >= 0.1 * 0.5 - 1e-12  # floor alpha × its registered share


@pytest.mark.parametrize(
    ("out", "match"),
    [
        ((np.array([0.5, 0.5]), 0.5), r"shape \(2,\)"),
        ((np.array([0.2, 0.2, 0.5]), 0.5), "sum 0.9"),
        ((np.array([np.nan, 0.5, 0.5]), 0.5), "not a distribution"),
        ((np.array([-0.5, 0.5, 1.0]), 0.5), "not a distribution"),
        ((np.array([0.2, 0.3, 0.5]), 0.0), r"confidence 0\.0"),
        ((np.array([0.2, 0.3, 0.5]), 1.5), "not in"),
        (np.array([0.2, 0.3, 0.5]), "not a pair"),
    ],
)
def test_bad_model_output_is_refused_and_changes_nothing(out, match) -> None:
    o = orch(horizon=1)
    o.register_model(FixedModel("ok", [0.2, 0.3, 0.5]))
    o.decide(WINDOW, close=100.0)
    bad = FixedModel("broken", [0.2, 0.3, 0.5])
    bad.predict = lambda features: out  # type: ignore[method-assign]
    o.register_model(bad)
    before = (o.weights, o.get_performance_metrics(), o.get_memory_stats()["models"])
    with pytest.raises(ModelOutputError, match=match) as e:
        o.decide(WINDOW, close=101.0)
    assert "'broken'" in str(e.value) and "softmax" in str(e.value)
    assert (o.weights, o.get_performance_metrics(), o.get_memory_stats()["models"]) == before
    with pytest.raises(ModelOutputError):
        o.decide_batch(np.zeros((5, 4, 2), np.float32))


def test_nan_features_are_refused_with_their_place() -> None:
    o = orch()
    o.register_model(FixedModel("a", [0.2, 0.3, 0.5]))
    x = np.zeros((4, 2), np.float32)
    x[2, 1] = np.nan
    with pytest.raises(
        FeatureError, match=r"1 NaN or infinite feature value\(s\), the first at index \(2, 1\)"
    ):
        o.decide(x)
    xs = np.zeros((10, 4, 2), np.float32)
    xs[7, 0, 0] = np.inf
    with pytest.raises(FeatureError, match=r"index \(7, 0, 0\)"):
        o.decide_batch(xs)
    with pytest.raises(FeatureError, match=r"torch\.float32|\(n, window, n_features\)"):
        o.decide_batch(np.zeros((4, 2), np.float32))
    assert o.get_performance_metrics()["models"]["a"]["decisions"] == 0


@pytest.mark.parametrize("weight", [0, -0.5, float("nan"), float("inf"), True, "0.2"])
def test_bad_weights_are_refused_and_the_registry_is_unchanged(weight) -> None:
    o = orch()
    with pytest.raises(WeightError, match="must be a positive number"):
        o.register_model(FixedModel("a", [0.2, 0.3, 0.5]), weight=weight)
    assert o.model_names == [] and len(o.registry) == 0


def test_unknown_and_duplicate_names(caplog) -> None:
    o = orch()
    o.register_model(FixedModel("trend", [0.2, 0.3, 0.5]))
    with pytest.raises(UnknownNameError, match="Did you mean 'trend'"):
        o.unregister_model("trnd")
    with pytest.raises(UnknownNameError, match="Did you mean 'trend'"):
        o.register_model("trendd")
    with pytest.raises(Exception, match="registered with this orchestrator already"):
        o.register_model(FixedModel("trend", [0.2, 0.3, 0.5]))
    o.unregister_model("trend")
    assert o.model_names == [] and "trend" not in o.registry


def test_register_model_returns_false_and_logs_when_a_limit_refuses(caplog) -> None:
    o = TradingOrchestrator(ModelRegistry(total_limit_mb=5, default_limit_mb=4), SETTINGS)
    assert o.register_model(SizedModel("a", 3)) is True
    with caplog.at_level(logging.WARNING, logger="gogo2.models"):
        assert o.register_model(SizedModel("b", 3)) is False
    assert any("'b' needs 3.0 MB" in r.getMessage() for r in caplog.records)
    assert o.model_names == ["a"] and o.registry.names() == ["a"]


def test_window_size_is_checked_against_the_model() -> None:
    o = orch()
    m = FixedModel("a", [0.2, 0.3, 0.5])
    m.window_size = 20
    o.register_model(m)
    with pytest.raises(FeatureError, match="windows of 20 bars, got 4"):
        o.decide(WINDOW)


EXAMPLE = """
import torch
import torch.nn as nn
import torch.nn.functional as F

from models import ModelInterface, TradingOrchestrator, get_model_registry


class TransformerModel(ModelInterface):
    def __init__(self, config):
        super().__init__('Transformer', config)
        self.model = self._build_transformer()

    def _build_transformer(self):
        window, n_features = self.config['window'], self.config['n_features']
        return nn.Sequential(
            nn.Flatten(-2), nn.Linear(window * n_features, 32), nn.ReLU(), nn.Linear(32, 3)
        )

    def predict(self, features):
        with torch.no_grad():
            outputs = self.model(features)
            probs = F.softmax(outputs, dim=-1)
            confidence = torch.max(probs).item()
        return probs.numpy(), confidence

    def get_memory_usage(self):
        return sum(p.numel() * 4 for p in self.model.parameters()) // (1024*1024)


config = {'window': 20, 'n_features': 8}
registry = get_model_registry()
orchestrator = TradingOrchestrator()
transformer = TransformerModel(config)
if orchestrator.register_model(transformer, weight=0.2):
    print("Transformer model added successfully!")
"""


def test_the_original_design_example_runs_as_written(capsys) -> None:
    reg = configure_model_registry(ModelRegistry(total_limit_mb=100))
    try:
        scope: dict = {"__name__": "example"}
        exec(compile(EXAMPLE, "example.py", "exec"), scope)
        assert "Transformer model added successfully!" in capsys.readouterr().out
        o = scope["orchestrator"]
        assert o.registry is reg and reg.names() == ["Transformer"]
        d = o.decide(torch.randn(20, 8, generator=torch.Generator().manual_seed(0)))
        assert d.probs.sum() == pytest.approx(1.0) and d.action in ("sell", "hold", "buy")
        # it declares 0 MB (a parameter count × 4 // 2**20); it is charged what it holds
        stats = reg.get_memory_stats()["models"]["Transformer"]
        assert stats["declared_mb"] == 0.0
        assert stats["memory_mb"] == pytest.approx(((160 * 32 + 32) + (32 * 3 + 3)) * 4 / 2**20)
        b = o.decide_batch(np.random.default_rng(0).normal(size=(50, 20, 8)).astype(np.float32))
        assert b.probs.shape == (50, 3)
    finally:
        reset_model_registry()


def test_bad_orchestrator_overrides_are_config_errors() -> None:
    from gogo2.errors import ConfigError

    with pytest.raises(ConfigError, match="confidence_threshold=2"):
        orch(confidence_threshold=2)
    with pytest.raises(ConfigError, match="bogus"):
        orch(bogus=1)


def test_cnn_and_rl_interfaces_have_working_defaults() -> None:
    from models import CNNModelInterface, RLAgentInterface

    class Agent(RLAgentInterface):
        def __init__(self) -> None:
            super().__init__("agent", {})
            self.memory: list = []

        def predict(self, features):
            return np.array([0.1, 0.2, 0.7]), 0.7

        def remember(self, experience) -> None:
            self.memory.append(experience)

        def replay(self) -> float:
            return float(len(self.memory))

    class Cnn(CNNModelInterface):
        def predict(self, features):
            return np.array([0.6, 0.3, 0.1]), 0.6

        def train(self, training_data):
            self.metrics = {"loss": 0.5}
            return self.metrics

    a = Agent()
    assert a.act(WINDOW) == 2 and a.act_with_confidence(WINDOW) == (2, 0.7)
    a.remember((WINDOW, 2, 1.0, WINDOW, False))
    assert a.replay() == 1.0
    c = Cnn("cnn", {"window": 4})
    assert c.predict_timeframe(WINDOW, "1h")[1] == 0.6 and c.train(None) == {"loss": 0.5}
    with pytest.raises(TypeError):
        RLAgentInterface("x")  # type: ignore[abstract]
    o = orch(confidence_threshold=0.0)
    assert o.register_model(a, weight=1.0) and o.register_model(c, weight=1.0)
    np.testing.assert_allclose(o.decide(WINDOW).probs, [0.35, 0.25, 0.4])


def test_the_readme_models_example_runs(capsys) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index("```python", text.index("## Models")) + len("```python")
    code = text[start : text.index("```", start)]
    reg = configure_model_registry(ModelRegistry(total_limit_mb=100))
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
        out = capsys.readouterr().out
        assert "Transformer model added successfully!" in out and "'total_limit_mb': 100.0" in out
        assert reg.names() == ["Transformer"]
    finally:
        reset_model_registry()


@pytest.mark.parametrize("close", [0.0, -5.0, float("inf"), "abc"])
def test_a_close_that_is_not_a_price_is_refused(close) -> None:
    o = orch()
    o.register_model(FixedModel("a", [0.2, 0.3, 0.5]))
    with pytest.raises(FeatureError, match="is not a price"):
        o.decide(WINDOW, close=close)
    assert o.decide(WINDOW, close=float("nan")).action in (
        "sell",
        "hold",
        "buy",
    )  # a missing candle


def _records(o: TradingOrchestrator) -> dict:
    """get_performance_metrics without the wall-clock latency."""
    m = o.get_performance_metrics()
    strip = lambda d: {k: v for k, v in d.items() if k != "latency_ms"}  # noqa: E731
    return {
        "models": {n: strip(d) for n, d in m["models"].items()},
        "ensemble": strip(m["ensemble"]),
    }


@pytest.mark.parametrize("horizon", [1, 3])
def test_decide_batch_leaves_weights_and_records_where_the_live_path_would(horizon) -> None:
    n = 90
    tab, x, c = table(n, 3, 8), windows(n), closes(n, 9)
    c[[17, 18, 50]] = np.nan  # missing candles: their predictions are never scored
    live_o = build(tab, horizon)
    w_live, a_live = live(live_o, x, c)
    batch_o = build(tab, horizon)
    res = batch_o.decide_batch(x, close=c, batch_size=16)
    assert batch_o.weights == live_o.weights  # the same kernel: equal to the bit
    assert _records(batch_o) == _records(live_o)
    np.testing.assert_array_equal(res.weights, w_live)
    assert [{-1: "sell", 0: "hold", 1: "buy"}[int(v)] for v in res.action] == a_live
    m = batch_o.get_performance_metrics()
    # pairs (j, j + horizon) with a NaN close: 2 per NaN, the pair (17, 18) counted twice at 1
    scored = n - horizon - 3 * 2 + (1 if horizon == 1 else 0)
    assert m["models"]["m0"]["decisions"] == n and m["ensemble"]["decisions"] == n
    assert m["models"]["m0"]["scored"] == scored and m["ensemble"]["scored"] == scored
    assert all(d["latency_ms"] is not None and d["latency_ms"] >= 0 for d in m["models"].values())
    # cut anywhere and mixed with live calls: live 0..k, batch k..j (pending predictions
    # from the live calls are scored inside the batch), then live again
    for k, j in ((1, 40), (horizon, n - 2), (25, 26)):
        mixed = build(tab, horizon)
        w0, a0 = live(mixed, x[:k], c[:k])
        mid = mixed.decide_batch(x[k:j], close=c[k:j], batch_size=7)
        w2, a2 = live(mixed, x[j:], c[j:])
        np.testing.assert_array_equal(np.concatenate([w0, mid.weights, w2]), w_live)
        names = [{-1: "sell", 0: "hold", 1: "buy"}[int(v)] for v in mid.action]
        assert [*a0, *names, *a2] == a_live
        assert mixed.weights == live_o.weights and _records(mixed) == _records(live_o)


def test_decide_batch_records_by_hand() -> None:
    o = orch(horizon=1, confidence_threshold=0.0, learning_rate=0.5, weight_floor=0.05)
    up, down = [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]
    o.register_model(FixedModel("up", up), weight=1.0)
    o.register_model(FixedModel("down", down), weight=1.0)
    res = o.decide_batch(np.zeros((4, 4, 2), np.float32), close=[100.0, 102.0, 104.0, 101.0])
    # outcomes scored at bars 1, 2, 3: log(102/100) and log(104/102) > 0.001 -> buy,
    # log(101/104) < -0.001 -> sell

    def hedge(v, loss_up, loss_down):
        ua, ub = v[0] * math.exp(-0.5 * loss_up), v[1] * math.exp(-0.5 * loss_down)
        return (0.95 * ua / (ua + ub) + 0.05 * 0.5, 0.95 * ub / (ua + ub) + 0.05 * 0.5)

    def comb(v):
        return [v[0] * up[k] + v[1] * down[k] for k in range(3)]

    v0 = (0.5, 0.5)
    p0 = comb(v0)  # [0.35, 0.25, 0.4]: buy
    v1 = hedge(v0, -math.log(0.7), -math.log(0.1))  # buy
    p1 = comb(v1)
    v2 = hedge(v1, -math.log(0.7), -math.log(0.1))  # buy
    p2 = comb(v2)
    v3 = hedge(v2, -math.log(0.1), -math.log(0.6))  # sell
    assert p1[2] > max(p1[0], p1[1]) and p2[2] > max(p2[0], p2[1])  # the ensemble said buy
    np.testing.assert_allclose(res.weights, [v0, v1, v2, v3], rtol=0, atol=1e-15)
    m = o.get_performance_metrics()
    mu, md, me = m["models"]["up"], m["models"]["down"], m["ensemble"]
    assert (mu["decisions"], mu["scored"], md["scored"], me["scored"]) == (4, 3, 3, 3)
    assert mu["hit_rate"] == pytest.approx(2 / 3) and md["hit_rate"] == pytest.approx(1 / 3)
    assert mu["log_loss"] == pytest.approx(-(2 * math.log(0.7) + math.log(0.1)) / 3)
    assert md["log_loss"] == pytest.approx(-(2 * math.log(0.1) + math.log(0.6)) / 3)
    # the ensemble said buy at bars 0, 1 and 2: right, right, wrong (bar 3 fell)
    assert me["hit_rate"] == pytest.approx(2 / 3)
    assert me["log_loss"] == pytest.approx(
        -(math.log(p0[2]) + math.log(p1[2]) + math.log(p2[0])) / 3
    )
    assert mu["weight"] == pytest.approx(v3[0], abs=1e-15) and o.weights["down"] == pytest.approx(
        v3[1], abs=1e-15
    )
    # the next decision scores bar 3's prediction against its own close: pending carried over
    o.decide(WINDOW, close=101.0 * 1.01)
    assert o.get_performance_metrics()["models"]["up"]["scored"] == 4
    # reset: registered weights again, every record at zero
    o.reset()
    m = o.get_performance_metrics()
    assert o.weights == {"up": 0.5, "down": 0.5}
    assert m["models"]["up"]["decisions"] == 0 and m["models"]["up"]["scored"] == 0
    assert m["ensemble"]["hit_rate"] is None and m["ensemble"]["decisions"] == 0


def test_a_failing_batch_changes_no_record() -> None:
    o = orch(horizon=1)
    o.register_model(FixedModel("ok", [0.2, 0.3, 0.5]))
    o.decide_batch(np.zeros((3, 4, 2), np.float32), close=[100.0, 101.0, 102.0])
    bad = FixedModel("broken", [0.2, 0.3, 0.5])
    bad.predict = lambda features: (np.full((features.shape[0], 2), 0.5), 0.5)  # type: ignore[method-assign]
    o.register_model(bad)
    before = (o.weights, o.get_performance_metrics())
    with pytest.raises(ModelOutputError):
        o.decide_batch(np.zeros((5, 4, 2), np.float32), close=np.full(5, 100.0))
    assert (o.weights, o.get_performance_metrics()) == before
