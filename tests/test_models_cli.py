"""``cli.py models``: listing checkpoints, --check, and refusals of bad checkpoints (exit 2)."""

from __future__ import annotations

import pytest
from model_fakes import LinearModel

import cli
from models import reset_model_registry


@pytest.fixture(name="store")
def fixture_store(tmp_path, monkeypatch):
    """A config whose models.dir is a fresh folder next to it (relative path, as in config.yaml)."""
    monkeypatch.setenv("GOGO2__PERFORMANCE__USE_GPU", "false")
    cfg = tmp_path / "conf" / "x.yaml"
    cfg.parent.mkdir()
    cfg.write_text("models:\n  dir: store\n  linear:\n    window_size: 6\n    weight: 2.0\n")
    yield cfg, tmp_path / "conf" / "store"
    reset_model_registry()


def save_linear(store, **cfg):
    m = LinearModel({"window": 6, "n_features": 3, "seed": 1, **cfg})
    m.data_range = {
        "start": "2023-01-01",
        "end": "2024-01-01",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
    }
    m.metrics = {"accuracy": 0.4125, "epochs": 3}
    return m.save(store / "linear.pt")


def test_lists_checkpoints_with_their_training_data(store, capsys) -> None:
    cfg, folder = store
    save_linear(folder)
    assert cli.main(["models", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"models in {folder}" in out  # models.dir taken from the config file's folder
    row = next(line for line in out.splitlines() if line.startswith("linear "))
    for part in (
        "model_fakes:LinearModel",
        "disk",
        "2048",
        "linear.pt",
        "2023-01-01 .. 2024-01-01",
        "BTC/USDT, 1h",
        "accuracy=0.4125",
        "epochs=3",
    ):
        assert part in row, part
    assert "memory: 0.00 of 8192.0 MB in use" in out


def test_check_loads_every_checkpoint_and_prints_memory_and_weights(store, capsys) -> None:
    cfg, folder = store
    save_linear(folder)
    assert cli.main(["models", "--check", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "checked 1 checkpoint(s)" in out
    row = next(line for line in out.splitlines() if line.startswith("linear "))
    mb = (18 * 3 + 3) * 4 / 2**20
    assert (
        f"{mb:.2f}" in row and "cpu" in row and "1.0000" in row
    )  # the only model has all the weight


def one_error_line(capsys) -> str:
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_check_refuses_a_corrupt_checkpoint(store, capsys) -> None:
    cfg, folder = store
    folder.mkdir()
    (folder / "broken.pt").write_bytes(b"not a checkpoint at all")
    assert cli.main(["models", "--check", "--config", str(cfg)]) == 2
    line = one_error_line(capsys)
    assert "broken.pt cannot be read" in line and "delete" in line


def test_check_refuses_a_checkpoint_for_another_window(store, capsys) -> None:
    cfg, folder = store
    m = LinearModel({"window": 9, "n_features": 3})
    m.save(folder / "linear.pt")
    assert cli.main(["models", "--check", "--config", str(cfg)]) == 2
    line = one_error_line(capsys)
    assert "linear.pt" in line and "windows of 9 bars, but 6 are expected" in line


def test_bad_limit_in_config_is_one_error_line(tmp_path, capsys) -> None:
    cfg = tmp_path / "x.yaml"
    cfg.write_text("models:\n  cnn:\n    max_memory_mb: -5\n")
    assert cli.main(["models", "--config", str(cfg)]) == 2
    line = one_error_line(capsys)
    assert "models.cnn.max_memory_mb = -5" in line and "greater than 0" in line
