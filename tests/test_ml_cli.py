"""train and the ml backtest from the command line: the report's model figures, the in-sample
warning (printed once), and bad input (exit 2, one error line, nothing half-written)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from cli import main


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")  # the sample is generated once for the module


def _cfg(tmp_path, data_dir):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"models:\n  dir: {tmp_path / 'ckpt'}\ndata:\n  dir: {data_dir}\n"
        f"backtest:\n  report_dir: {tmp_path / 'reports'}\n"
    )
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """A config whose models.dir holds a small cnn trained on BTC/USDT 1h, 2023-01-01 .. 04-01."""
    from gogo2.config import load_settings
    from runner.train import load_prepared, train_model

    tmp_path = tmp_path_factory.mktemp("trained")
    cfg = _cfg(tmp_path, data_dir)
    settings = load_settings(cfg, environ={})
    settings = settings.model_copy(
        update={"train": settings.train.model_copy(update={"folds": 1, "min_train": 100})}
    )
    t0, t1 = 1_672_531_200_000, 1_680_307_200_000  # 2023-01-01 .. 2023-04-01
    p = load_prepared(settings, ["BTC/USDT"], "1h", t0, t1, "synthetic")
    train_model(
        "cnn",
        p,
        settings,
        seed=0,
        models_dir=settings.models.dir,
        range_text=("", ""),
        say=lambda s: None,
        config={"hidden": 4, "epochs": 1},
    )
    return cfg


def test_ml_backtest_reports_weights_hit_rates_and_in_sample(tmp_path, trained, capsys):
    import json

    cfg = trained
    report = tmp_path / "r" / "ml.html"
    argv = ["backtest", "--strategy", "ml", "--models", "cnn", "--symbols", "BTC/USDT"]
    argv += ["--from", "2023-03-01", "--to", "2023-05-01", "--report", str(report)]
    assert main([*argv, "--config", cfg]) == 0
    out = capsys.readouterr().out
    # 2,160 bars in 3 blocks of 720 (1 fold + 2): the validation span ends at row 1439,
    # 1439 h after 2023-01-01 00:00 = 2023-03-01 23:00; the test block after it is out of sample
    assert "warning: in-sample: cnn trained on 2023-01-01 00:00 .. 2023-03-01 23:00" in out
    doc = json.loads((tmp_path / "r" / "ml_metrics.json").read_text())
    assert any(w.startswith("in-sample: cnn") for w in doc["run"]["warnings"])
    cnn = doc["strategy"]["models"]["cnn"]
    # April is after the training data: scored out of sample, a rate between 0 and 1
    assert cnn["scored"] > 0 and 0 <= cnn["out_of_sample_hit_rate"] <= 1
    assert doc["strategy"]["symbols"]["BTC/USDT"]["final_weights"] == {"cnn": 1.0}
    assert "in-sample: cnn" in report.read_text()
    # --models belongs to the ml strategy only
    assert (
        main(["backtest", "--strategy", "sma_cross", "--models", "cnn", "--from", "2023-03-01"])
        == 2
    )


def test_the_in_sample_warning_is_printed_once(tmp_path, trained):
    # the command as a user runs it, from another directory: stdout and stderr together
    # (a logged warning would reach stderr through Python's last-resort handler)
    cli = Path(__file__).resolve().parents[1] / "cli.py"
    argv = [sys.executable, str(cli), "backtest", "--strategy", "ml", "--models", "cnn"]
    argv += ["--symbols", "BTC/USDT", "--from", "2023-03-01", "--to", "2023-03-15"]
    argv += ["--no-report", "--config", trained]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout + proc.stderr
    assert text.count("in-sample: cnn trained on 2023-01-01 00:00 .. 2023-03-01 23:00") == 1
    assert "warning: in-sample: cnn" in proc.stdout
