"""The model registry: limits, refusals, stats arithmetic, offload and reload, threads, cleanup."""

from __future__ import annotations

import logging
import threading
import weakref

import numpy as np
import pytest
import torch
from model_fakes import CacheModel, LinearModel, SizedModel

import models.registry as reg_mod
from gogo2.config import load_settings
from gogo2.errors import UnknownNameError
from models import (
    DuplicateModelError,
    ModelError,
    ModelMemoryError,
    ModelRegistry,
    get_model_registry,
    reset_model_registry,
)
from models.device import choose_placement
from models.memory import MB, measure_bytes, process_rss_mb

STATS_KEYS = {"total_limit_mb", "models", "total_used_mb", "total_free_mb", "utilization_percent"}


def test_model_over_its_own_limit_is_refused_and_nothing_changes() -> None:
    r = ModelRegistry(total_limit_mb=100, default_limit_mb=50, limits={"Big": 2.0})
    r.register(SizedModel("small", 1.0))
    before = r.get_memory_stats()
    with pytest.raises(ModelMemoryError) as e:
        r.register(SizedModel("big", 3.0))
    msg = str(e.value)
    assert "'big'" in msg and "3.0 MB" in msg and "limit of 2.0 MB" in msg
    assert "models.big.max_memory_mb" in msg
    after = r.get_memory_stats()
    assert after["models"].keys() == before["models"].keys() == {"small"}
    assert after["total_used_mb"] == before["total_used_mb"] == 1.0


def test_model_past_the_total_is_refused_naming_what_is_in_use() -> None:
    r = ModelRegistry(total_limit_mb=10, default_limit_mb=8)
    r.register(SizedModel("a", 4))
    r.register(SizedModel("b", 4))
    with pytest.raises(ModelMemoryError) as e:
        r.register(SizedModel("c", 4))
    msg = str(e.value)
    assert "'c' needs 4.0 MB" in msg and "8.0 MB of the 10.0 MB total" in msg
    assert "a 4.0 MB, b 4.0 MB" in msg and "2.0 MB free" in msg and "offload_lru" in msg
    assert r.names() == ["a", "b"]
    r.unregister("a")  # frees its share
    r.register(SizedModel("c", 4))
    assert r.names() == ["b", "c"]


def test_stats_have_the_documented_shape_and_arithmetic() -> None:
    r = ModelRegistry(total_limit_mb=10, default_limit_mb=8)
    r.register(SizedModel("a", 4))
    r.register(SizedModel("b", 2.5))
    s = r.get_memory_stats()
    assert STATS_KEYS <= set(s)
    assert s["total_limit_mb"] == 10.0
    assert s["models"]["a"]["memory_mb"] == 4.0 and s["models"]["a"]["device"] == "cpu"
    assert s["models"]["b"]["memory_mb"] == 2.5
    assert s["total_used_mb"] == 6.5  # 4 + 2.5
    assert s["total_free_mb"] == 3.5  # 10 - 6.5
    assert s["utilization_percent"] == pytest.approx(65.0)  # 6.5 / 10
    assert s["process_rss_mb"] > 0


def test_a_taken_name_is_an_error_not_a_replacement() -> None:
    r = ModelRegistry(total_limit_mb=100)
    first = SizedModel("m", 1)
    r.register(first)
    with pytest.raises(DuplicateModelError, match="'m' is registered already"):
        r.register(SizedModel("m", 2))
    assert r.get("m") is first and r.get_memory_stats()["total_used_mb"] == 1.0


def test_unknown_name_gets_a_close_match() -> None:
    r = ModelRegistry(total_limit_mb=100)
    r.register(SizedModel("alpha", 1))
    with pytest.raises(UnknownNameError, match="Did you mean 'alpha'"):
        r.info("alpah")


def test_under_reporting_model_is_charged_what_was_measured() -> None:
    r = ModelRegistry(total_limit_mb=100, default_limit_mb=2)
    liar = SizedModel("liar", 3, declared=0)  # says 0 MB, holds 3 MB
    with pytest.raises(ModelMemoryError, match=r"it declares only 0\.0 MB"):
        r.register(liar)
    r2 = ModelRegistry(total_limit_mb=100, default_limit_mb=50)
    r2.register(SizedModel("liar", 3, declared=0))
    r2.register(SizedModel("cautious", 1, declared=5))  # the larger figure is charged
    m = r2.get_memory_stats()["models"]
    assert m["liar"]["memory_mb"] == 3.0 and m["liar"]["declared_mb"] == 0.0
    assert m["cautious"]["memory_mb"] == 5.0 and m["cautious"]["measured_mb"] == 1.0


def test_training_state_is_measured_grads_and_optimizer() -> None:
    model = LinearModel({"window": 10, "n_features": 100})  # Linear(1000, 3)
    params = (1000 * 3 + 3) * 4
    assert measure_bytes(model) == params
    opt = torch.optim.Adam(model.model.parameters(), lr=1e-3)
    model.optimizer = opt
    loss = model.model(torch.ones(2, 10, 100)).sum()
    loss.backward()
    opt.step()
    # parameters + gradients + Adam's two moments, plus one scalar step counter per parameter
    got = measure_bytes(model)
    assert 4 * params <= got <= 4 * params + 2 * 8


def test_concurrent_registration_never_passes_the_total() -> None:
    r = ModelRegistry(total_limit_mb=20, default_limit_mb=8)
    models = [SizedModel(f"m{i}", 3) for i in range(16)]
    barrier = threading.Barrier(len(models))
    ok, refused, peaks = [], [], []

    def go(m: SizedModel) -> None:
        barrier.wait()
        try:
            r.register(m)
            ok.append(m.name)
        except ModelMemoryError:
            refused.append(m.name)
        peaks.append(r.used_mb())

    threads = [threading.Thread(target=go, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 6 and len(refused) == 10  # 6 × 3 MB = 18 MB ≤ 20 MB < 7 × 3 MB
    assert max(peaks) <= 20.0 and r.used_mb() == 18.0
    assert sorted(r.names()) == sorted(ok)


def _out(model) -> np.ndarray:
    x = torch.from_numpy(np.linspace(-1, 1, 10 * 4, dtype=np.float32).reshape(10, 4))
    return model.predict(x)[0]


def test_offload_lru_moves_the_least_recently_used_idle_model_to_disk_and_back(tmp_path) -> None:
    r = ModelRegistry(
        total_limit_mb=10, default_limit_mb=8, when_full="offload_lru", spill_dir=tmp_path
    )
    a, b = SizedModel("a", 4), SizedModel("b", 4)
    lin = LinearModel({"window": 10, "n_features": 4, "seed": 3})
    expected = _out(lin)
    r.register(lin)  # tiny
    r.register(a)
    r.register(b)
    with r.acquire("a"):
        pass  # a used after b: b is now the least recently used of the large ones
    with r.acquire("linear"):
        pass
    r.register(SizedModel("c", 4))
    s = r.get_memory_stats()
    assert s["models"]["b"]["device"] == "disk" and s["models"]["b"]["memory_mb"] == 0.0
    assert s["models"]["b"]["size_mb"] == 4.0 and s["models"]["b"]["state"] == "offloaded"
    assert s["total_used_mb"] <= 10.0 and list(tmp_path.iterdir())
    assert measure_bytes(b) == 0  # its tensors are really gone
    with r.acquire("b") as got:  # reload: a (least recently used, idle) goes to disk instead
        assert got is b and float(got.net.blob.sum()) == 0.5 * 4 * MB / 4
    s = r.get_memory_stats()
    assert s["models"]["b"]["device"] == "cpu" and s["models"]["a"]["device"] == "disk"
    assert s["total_used_mb"] <= 10.0
    # a model offloaded and reloaded predicts exactly as before
    r.offload("linear")
    assert r.get_memory_stats()["models"]["linear"]["device"] == "disk"
    with r.acquire("linear") as m:
        np.testing.assert_array_equal(_out(m), expected)


def test_offload_never_takes_a_busy_model_and_never_breaks_a_limit(tmp_path) -> None:
    r = ModelRegistry(
        total_limit_mb=10, default_limit_mb=8, when_full="offload_lru", spill_dir=tmp_path
    )
    r.register(SizedModel("a", 4))
    r.register(SizedModel("b", 4))
    with r.acquire("a"), r.acquire("b"), pytest.raises(ModelMemoryError, match="too little room"):
        r.register(SizedModel("c", 4))
    with pytest.raises(ModelMemoryError, match=r"over its limit of 8\.0 MB"):
        r.register(SizedModel("huge", 9))  # its own limit holds whatever the policy
    s = r.get_memory_stats()
    assert s["models"].keys() == {"a", "b"}
    assert all(m["device"] == "cpu" for m in s["models"].values())  # nothing was offloaded


def test_cleanup_memory_gives_memory_back() -> None:
    r = ModelRegistry(total_limit_mb=1000, default_limit_mb=500)
    m = CacheModel("cached", 1, cache_mb=96)
    cache_ref = weakref.ref(m.cache)
    r.register(m)
    assert r.get_memory_stats()["models"]["cached"]["memory_mb"] == 97.0
    rss_before = process_rss_mb()
    freed = r.cleanup_memory()
    rss_after = process_rss_mb()
    assert freed == 96.0
    assert cache_ref() is None  # the tensor is gone, not just unaccounted
    assert r.get_memory_stats()["models"]["cached"]["memory_mb"] == 1.0
    assert rss_before - rss_after > 48  # the pages went back to the system


def test_cuda_fallback_is_logged_once(monkeypatch, caplog) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="gogo2.models"):
        r = ModelRegistry(total_limit_mb=100, use_gpu=True, mixed_precision=True)
        r.register(SizedModel("m", 1))
    lines = [
        rec.getMessage() for rec in caplog.records if "CUDA is not available" in rec.getMessage()
    ]
    assert len(lines) == 1 and "CPU" in lines[0]
    assert r.device.type == "cpu" and r.placement.autocast_dtype is None
    assert r.get_memory_stats()["models"]["m"]["device"] == "cpu"


def test_cuda_is_chosen_with_autocast_where_available(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Test GPU")
    p = choose_placement(use_gpu=True, mixed_precision=True)
    assert p.device == torch.device("cuda", 0) and p.autocast_dtype == torch.float16
    assert "Test GPU" in p.note
    assert choose_placement(use_gpu=True, mixed_precision=False).autocast_dtype is None
    assert choose_placement(use_gpu=False, mixed_precision=True).device.type == "cpu"


def test_one_registry_per_process_built_from_config(monkeypatch) -> None:
    monkeypatch.setenv("GOGO2__PERFORMANCE__TOTAL_MEMORY_GB", "1.5")
    monkeypatch.setenv("GOGO2__MODELS__CNN__MAX_MEMORY_MB", "300")
    monkeypatch.setenv("GOGO2__PERFORMANCE__USE_GPU", "false")
    reset_model_registry()
    try:
        got: list[ModelRegistry] = []
        threads = [
            threading.Thread(target=lambda: got.append(get_model_registry())) for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({id(g) for g in got}) == 1 and get_model_registry() is got[0]
        assert got[0].total_limit_mb == 1536.0  # 1.5 GiB
        assert got[0].limit_mb("CNN") == 300.0 and got[0].limit_mb("rl") == 2048.0
    finally:
        reset_model_registry()
    assert reg_mod._REGISTRY is None


def test_registry_from_settings_reads_when_full(monkeypatch) -> None:
    s = load_settings(
        environ={"GOGO2__MODELS__WHEN_FULL": "offload_lru", "GOGO2__PERFORMANCE__USE_GPU": "false"}
    )
    assert ModelRegistry.from_settings(s).when_full == "offload_lru"


def test_cuda_allocator_growth_is_charged_and_over_limit_moves_back(monkeypatch) -> None:
    """The CUDA branch of the accounting, driven by a fake allocator (no GPU here)."""
    from models.device import Placement

    r = ModelRegistry(total_limit_mb=100, default_limit_mb=10)
    r.placement = Placement(torch.device("cuda", 0), None, "fake")
    allocated = iter([0, 6 * MB, 0, 12 * MB])  # before/after moving each model
    monkeypatch.setattr(reg_mod, "cuda_allocated", lambda dev: next(allocated))
    monkeypatch.setattr(reg_mod, "release_cuda", lambda dev=None: None)
    moves: list[str] = []

    def fake_to(self, device):
        moves.append(str(device))
        self.device = torch.device(device)
        return self

    monkeypatch.setattr(SizedModel, "to", fake_to)
    r.register(SizedModel("a", 1))  # holds 1 MB, the allocator grew 6 MB: 6 MB charged
    info = r.info("a")
    assert info["memory_mb"] == 6.0 and info["measured_mb"] == 1.0 and info["device"] == "cuda:0"
    with pytest.raises(ModelMemoryError, match=r"CUDA allocator grew 12\.0 MB"):
        r.register(SizedModel("b", 1))  # 12 MB > its 10 MB limit
    assert moves == ["cuda:0", "cuda:0", "cpu"] and r.names() == ["a"]


def test_remeasure_refuses_growth_past_the_limit() -> None:
    model = LinearModel({"window": 10, "n_features": 100})
    params_mb = (1000 * 3 + 3) * 4 / MB
    r = ModelRegistry(total_limit_mb=100, limits={"linear": 2 * params_mb})
    r.register(model)
    assert r.remeasure("linear") == pytest.approx(params_mb)
    opt = torch.optim.Adam(model.model.parameters())
    model.optimizer = opt
    model.model(torch.ones(1, 10, 100)).sum().backward()
    opt.step()  # grads and Adam's moments: about four times the parameters
    with pytest.raises(ModelMemoryError, match="over its limit"):
        r.remeasure("linear")
    assert r.info("linear")["memory_mb"] == pytest.approx(params_mb)


def test_offload_keeps_non_persistent_buffers_and_tied_weights(tmp_path) -> None:
    m = SizedModel("a", 1)
    m.net.register_buffer("scale", torch.arange(4.0), persistent=False)  # not in state_dict()
    m.head = torch.nn.Linear(3, 3, bias=False)
    m.tail = torch.nn.Sequential(m.head)  # the same weight reached twice
    with torch.no_grad():
        m.head.weight.copy_(torch.eye(3) * 2)
    r = ModelRegistry(total_limit_mb=100, when_full="offload_lru", spill_dir=tmp_path)
    r.register(m)
    r.offload("a")
    assert r.info("a")["device"] == "disk" and measure_bytes(m) == 0
    with r.acquire("a") as back:
        assert back.net.scale.tolist() == [0.0, 1.0, 2.0, 3.0]
        assert back.tail[0].weight is back.head.weight
        assert torch.equal(back.head.weight, torch.eye(3) * 2)
    assert list(tmp_path.iterdir()) == []  # the spill file is gone once reloaded


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "512"])
def test_limits_given_in_code_must_be_positive_numbers(bad) -> None:
    with pytest.raises(ModelError, match="must be a positive number of MB"):
        ModelRegistry(total_limit_mb=bad)
    with pytest.raises(ModelError, match="'cnn'"):
        ModelRegistry(limits={"cnn": bad})
    r = ModelRegistry(total_limit_mb=100)
    with pytest.raises(ModelError, match="limit_mb"):
        r.register(SizedModel("m", 1), limit_mb=bad)
    assert len(r) == 0


def test_what_an_offloaded_model_keeps_in_memory_is_still_charged(tmp_path) -> None:
    model = LinearModel({"window": 10, "n_features": 100})
    params = (1000 * 3 + 3) * 4
    opt = torch.optim.Adam(model.model.parameters())
    model.optimizer = opt
    model.model(torch.ones(1, 10, 100)).sum().backward()
    opt.step()
    r = ModelRegistry(total_limit_mb=100, when_full="offload_lru", spill_dir=tmp_path)
    r.register(model)
    r.offload("linear")
    s = r.get_memory_stats()["models"]["linear"]
    # grads dropped, weights on disk; Adam's two moments and step counters stay in memory
    assert s["device"] == "disk" and s["memory_mb"] * MB == pytest.approx(2 * params + 2 * 4)
    assert r.used_mb() * MB == pytest.approx(2 * params + 2 * 4)
