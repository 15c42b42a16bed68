"""Bad input to train and the ml backtest: exit 2, one error line, nothing half-written."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from cli import main


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")  # the sample is generated once for the module


def _cfg(tmp_path, data_dir):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"models:\n  dir: {tmp_path / 'ckpt'}\ndata:\n  dir: {data_dir}\n")
    return str(cfg)


def _errors(capsys):
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]


def test_unknown_model_and_short_range_exit_2_and_write_nothing(tmp_path, data_dir, capsys):
    cfg = _cfg(tmp_path, data_dir)
    assert main(["train", "--model", "cnm", "--config", cfg]) == 2
    err = _errors(capsys)
    assert len(err) == 1 and "cnm" in err[0] and "cnn" in err[0]
    # a sample-less catalog generates the sample; three days of 1h are too short for a fold
    rc = main(
        ["train", "--model", "cnn", "--from", "2023-01-01", "--to", "2023-01-04", "--config", cfg]
    )
    err = _errors(capsys)
    assert rc == 2 and len(err) == 1 and "too short" in err[0]
    assert not (tmp_path / "ckpt").exists() or not any((tmp_path / "ckpt").iterdir())


def test_corrupt_and_missing_checkpoint_exit_2(tmp_path, data_dir, capsys):
    cfg = _cfg(tmp_path, data_dir)
    args = ["backtest", "--strategy", "ml", "--param", "models=cnn", "--from", "2024-06-01"]
    assert main([*args, "--no-report", "--config", cfg]) == 2
    err = _errors(capsys)
    assert "not trained" in err[-1] and err[-1].startswith("error:")
    (tmp_path / "ckpt").mkdir(exist_ok=True)
    (tmp_path / "ckpt" / "cnn.pt").write_bytes(b"not a checkpoint")
    assert main([*args, "--no-report", "--config", cfg]) == 2
    err = _errors(capsys)
    assert err[-1].startswith("error:") and "cnn.pt" in err[-1] and "damaged" in err[-1]
