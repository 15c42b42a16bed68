"""Checkpoints: round trip with weights_only, atomic writes, refusals, lazy loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_fakes import LinearModel

from models import CheckpointError, ModelRegistry
from models.checkpoint import FORMAT, read_checkpoint, read_meta, write_checkpoint

CFG = {"window": 6, "n_features": 3, "seed": 1}
X = torch.from_numpy(np.linspace(-2, 2, 6 * 3, dtype=np.float32).reshape(6, 3))


def saved(tmp_path, **cfg) -> tuple[LinearModel, object]:
    m = LinearModel({**CFG, **cfg})
    m.data_range = {"start": "2023-01-01", "end": "2024-01-01"}
    m.metrics = {"accuracy": 0.41}
    return m, m.save(tmp_path / "linear.pt")


def test_round_trip_keeps_weights_and_metadata(tmp_path) -> None:
    m, path = saved(tmp_path)
    meta = read_meta(path)
    assert meta["kind"] == "model_fakes:LinearModel" and meta["config"] == CFG
    assert meta["window_size"] == 6 and meta["feature_names"] == ["f0", "f1", "f2"]
    assert meta["data_range"] == {"start": "2023-01-01", "end": "2024-01-01"}
    assert meta["metrics"] == {"accuracy": 0.41} and meta["bytes"] == (18 * 3 + 3) * 4
    other = LinearModel({**CFG, "seed": 2})
    assert not np.array_equal(other.predict(X)[0], m.predict(X)[0])
    other.load(path)
    np.testing.assert_array_equal(other.predict(X)[0], m.predict(X)[0])
    assert other.metrics == {"accuracy": 0.41}


def test_loading_uses_weights_only(tmp_path, monkeypatch) -> None:
    _, path = saved(tmp_path)
    seen = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: seen.append(k) or real(*a, **k))
    LinearModel(CFG).load(path)
    assert seen and all(
        k.get("weights_only") is True and k.get("map_location") == "cpu" for k in seen
    )


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickled_object_is_refused_not_run(tmp_path, capsys) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "meta": "{}", "state": {}, "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        read_checkpoint(path)
    assert "must never run" not in capsys.readouterr().out


def test_missing_and_corrupt_checkpoints_are_named(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt does not exist"):
        read_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(CheckpointError, match=r"bad\.pt cannot be read: it is damaged") as e:
        read_checkpoint(bad)
    assert "delete" in str(e.value)
    _, good = saved(tmp_path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:200])  # truncated by a crash of some other writer
    with pytest.raises(CheckpointError, match=r"cut\.pt"):
        read_checkpoint(cut)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a gogo2 model checkpoint"):
        read_checkpoint(other)


def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch) -> None:
    _, path = saved(tmp_path)
    before = path.read_bytes()

    def dies(obj, f, *a, **k):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        LinearModel({**CFG, "seed": 9}).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["linear.pt"]  # no temporary left


def test_other_window_or_features_are_refused_and_registry_unchanged(tmp_path) -> None:
    _, path = saved(tmp_path)
    r = ModelRegistry(total_limit_mb=100)
    with pytest.raises(CheckpointError) as e:
        r.register_checkpoint(path, window_size=20)
    assert "linear.pt" in str(e.value) and "windows of 6 bars, but 20" in str(e.value)
    with pytest.raises(CheckpointError, match="missing f3") as e:
        r.register_checkpoint(path, feature_names=["f0", "f1", "f2", "f3"])
    with pytest.raises(CheckpointError, match="same names in another order"):
        r.register_checkpoint(path, feature_names=["f2", "f1", "f0"])
    with pytest.raises(CheckpointError, match="windows of 6 bars, but 20"):
        LinearModel({**CFG, "window": 20}).load(path)
    assert len(r) == 0


def test_weights_of_another_shape_leave_the_model_unchanged(tmp_path) -> None:
    m, _ = saved(tmp_path)
    small = LinearModel({"window": 6, "n_features": 3, "seed": 5})
    small.window_size = None  # skip the metadata check: the shapes must still be refused
    small.feature_names = None
    state = {"model": {k: torch.zeros(2, 2) for k in m.model.state_dict()}}
    write_checkpoint(
        tmp_path / "odd.pt",
        state,
        {**m.checkpoint_meta(), "window_size": None, "feature_names": None},
    )
    expected = small.predict(X)[0]
    with pytest.raises(CheckpointError, match="has shape"):
        small.load(tmp_path / "odd.pt")
    np.testing.assert_array_equal(small.predict(X)[0], expected)


def test_lazy_registration_loads_on_first_use(tmp_path) -> None:
    m, path = saved(tmp_path)
    r = ModelRegistry(total_limit_mb=100)
    name = r.register_checkpoint(path, window_size=6)
    s = r.get_memory_stats()["models"][name]
    assert s["device"] == "disk" and s["state"] == "lazy" and s["memory_mb"] == 0.0
    assert s["size_mb"] == pytest.approx((18 * 3 + 3) * 4 / 2**20)
    with r.acquire(name) as loaded:
        np.testing.assert_array_equal(loaded.predict(X)[0], m.predict(X)[0])
    s = r.get_memory_stats()["models"][name]
    assert s["device"] == "cpu" and s["state"] == "loaded" and s["memory_mb"] > 0


def test_lazy_checkpoint_over_its_limit_is_refused_before_loading(tmp_path) -> None:
    _, path = saved(tmp_path)
    r = ModelRegistry(total_limit_mb=100, limits={"linear": 0.0001})
    with pytest.raises(Exception, match="over its limit"):
        r.register_checkpoint(path)
    assert len(r) == 0


def test_concurrent_first_uses_load_a_lazy_model_once(tmp_path) -> None:
    import threading

    _, path = saved(tmp_path)
    r = ModelRegistry(total_limit_mb=100)
    name = r.register_checkpoint(path)
    barrier = threading.Barrier(8)
    got = []

    def use() -> None:
        barrier.wait()
        with r.acquire(name) as m:
            got.append(m)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len({id(m) for m in got}) == 1
    assert r.info(name)["loads"] == 1
