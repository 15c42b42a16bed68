"""Speed of the torch models, the default ``train`` runs and the ML backtest.

Run with ``python -m pytest benchmarks/bench_ml.py --benchmark-enable`` (several minutes:
it trains every model on the sample). Figures go to ``benchmarks/README.md``.

* batched CPU inference over 1,000,000 windows (20 x 8) for each model, chunks of
  16,384 windows, default sizes from config.yaml (untrained weights cost the same);
* each default ``train`` run on the embedded sample (2 symbols, 1h, 2 folds), one round;
* ``python cli.py backtest --strategy ml --param models=cnn,dqn --from 2023-06-01``
  end to end (inference, engine, HTML report) in a fresh process, and its peak RSS.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gogo2.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
N = 1_000_000
SETTINGS = load_settings(environ={"GOGO2__PERFORMANCE__USE_GPU": "false"})


@pytest.fixture(scope="module")
def windows():
    # a strided view over a (N + 19, 8) matrix, as the ml strategy feeds the models
    from numpy.lib.stride_tricks import sliding_window_view

    vals = np.random.default_rng(0).normal(size=(N + 19, 8)).astype(np.float32)
    return sliding_window_view(vals, 20, axis=0).transpose(0, 2, 1)


@pytest.mark.parametrize("name", ["cnn", "lstm", "transformer", "dqn"])
def test_inference_1m_windows(benchmark, windows, name):
    from models import zoo

    model = zoo.create(name, SETTINGS)

    def run():
        for s in range(0, N, 16384):
            chunk = np.ascontiguousarray(windows[s : s + 16384])
            with torch.inference_mode():
                model.predict(torch.from_numpy(chunk))

    benchmark.pedantic(run, rounds=2, iterations=1)
    rate = N / benchmark.stats.stats.min
    benchmark.extra_info["windows_per_s"] = round(rate)
    print(f"\n{name}: {rate:,.0f} windows/s (min of 2), torch threads {torch.get_num_threads()}")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ckpt")


@pytest.mark.parametrize("name", ["cnn", "lstm", "transformer", "dqn"])
def test_default_train_run(benchmark, models_dir, name):
    from runner.train import load_prepared, train_model

    settings = SETTINGS.model_copy(
        update={"models": SETTINGS.models.model_copy(update={"dir": models_dir})}
    )
    tf = settings.backtest.timeframe
    p = load_prepared(settings, settings.backtest.symbols, tf, None, None, "synthetic")

    def run():
        return train_model(
            name,
            p,
            settings,
            seed=0,
            models_dir=models_dir,
            range_text=("", ""),
            say=lambda s: None,
        )

    res = benchmark.pedantic(run, rounds=1, iterations=1)
    print(f"\n{name}: trained in {res.seconds:.1f} s; last fold test {res.folds[-1].test}")


def test_ml_backtest_end_to_end_and_peak_rss(benchmark, models_dir, tmp_path):
    if not (models_dir / "cnn.pt").is_file() or not (models_dir / "dqn.pt").is_file():
        pytest.skip("run with the train benchmarks first (same module)")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"models:\n  dir: {models_dir}\nbacktest:\n  report_dir: {tmp_path}\n")
    cmd = [sys.executable, "cli.py", "backtest", "--strategy", "ml", "--param", "models=cnn,dqn"]
    cmd += ["--from", "2023-06-01", "--config", str(cfg)]
    out = {}

    def run():
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        out["s"] = time.perf_counter() - t
        out["stdout"] = r.stdout
        return r

    benchmark.pedantic(run, rounds=1, iterations=1)
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    benchmark.extra_info["peak_rss_mb"] = round(rss_mb)
    print(f"\nml backtest: {out['s']:.1f} s, peak RSS of the largest child {rss_mb:.0f} MB")
    print(out["stdout"][-600:])
    assert rss_mb <= 4096
