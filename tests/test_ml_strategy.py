"""The ml strategy: the live path (a trailing window) decides as the batched backtest does."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from datasets.bars import MultiBars  # noqa: E402
from strategies.base import trailing_window  # noqa: E402
from tests.test_ml_train import TINY, planted_bars  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from gogo2.config import load_settings
    from runner.train import bars_to_prepared, train_model

    root = tmp_path_factory.mktemp("ml")
    settings = load_settings(environ={})
    settings = settings.model_copy(
        update={
            "models": settings.models.model_copy(update={"dir": root}),
            "performance": settings.performance.model_copy(update={"use_gpu": False}),
            "train": settings.train.model_copy(
                update={
                    "horizon": 1,
                    "threshold": 0.003,
                    "folds": 1,
                    "embargo": 2,
                    "min_train": 100,
                }
            ),
        }
    )
    bars = planted_bars(1800)
    train_model(
        "cnn",
        bars_to_prepared(bars.slice(0, 900)),
        settings,
        seed=0,
        models_dir=root,
        range_text=("a", "b"),
        say=lambda s: None,
        config=TINY["cnn"],
    )
    return settings, bars


def make(settings, **params):
    from strategies.ml import MLStrategy

    s = MLStrategy(timeframe="1h", models="cnn", settle=200, **params)
    s.settings = settings
    return s


def test_trailing_window_decision_equals_the_batched_one(trained):
    settings, bars = trained
    data = MultiBars("1h", {"1h": bars})
    strat = make(settings)
    full = strat.signals(data).entries[:, 0]
    assert (full == 1).any() and (full == -1).any()  # the planted pattern trades both ways
    warm = strat.warmup
    rng = np.random.default_rng(0)
    rows = sorted(rng.choice(np.arange(warm, bars.n), 40, replace=False).tolist())
    for t in rows:
        cut = MultiBars("1h", {"1h": bars.slice(0, t + 1)})
        live = make(settings).signals(trailing_window(cut, warm + 1)).entries[-1, 0]
        assert live == full[t], t


def test_report_and_in_sample_warning(trained):
    settings, bars = trained
    strat = make(settings)
    strat.signals(MultiBars("1h", {"1h": bars}))
    assert any(w.startswith("in-sample: cnn trained on") for w in strat.warnings)
    rep = strat.report["models"]["cnn"]
    assert rep["scored"] > 0 and 0.0 <= rep["out_of_sample_hit_rate"] <= 1.0
    w = strat.report["symbols"]["AAA/USDT"]["final_weights"]
    assert w == {"cnn": pytest.approx(1.0)}
    # out of sample only: bars after the training data end
    late = make(settings)
    late.signals(MultiBars("1h", {"1h": bars.slice(950, bars.n)}))
    assert late.warnings == []


def test_untrained_model_and_other_timeframe_are_refused(trained):
    from models.errors import CheckpointError

    settings, bars = trained
    from strategies.ml import MLStrategy

    s = MLStrategy(timeframe="1h", models="lstm")
    s.settings = settings
    with pytest.raises(CheckpointError, match="not trained"):
        s.signals(MultiBars("1h", {"1h": bars}))
    s = MLStrategy(timeframe="4h", models="cnn")
    s.settings = settings
    with pytest.raises(CheckpointError, match="trained on 1h candles"):
        s._setup()


def test_checkpoint_for_another_window_or_other_features_is_refused(trained):
    from models.errors import CheckpointError
    from strategies.ml import MLStrategy

    settings, _ = trained
    for own in ({"window_size": 30}, {"features": ("1h:logret", "1h:rsi")}):
        per = {**settings.models.per_model}
        per["cnn"] = settings.models.settings_for("cnn").model_copy(update=own)
        s = MLStrategy(timeframe="1h", models="cnn")
        s.settings = settings.model_copy(
            update={"models": settings.models.model_copy(update={"per_model": per})}
        )
        with pytest.raises(CheckpointError, match=r"cnn\.pt"):
            s._setup()


def test_check_lookahead_passes_for_ml(trained):
    from strategies.lookahead import check_lookahead

    settings, bars = trained
    data = MultiBars("1h", {"1h": bars.slice(0, 400)})  # 145 rows after the warm-up
    strat = make(settings)
    report = check_lookahead(strat, data, exhaustive=True)
    assert report.ok, report.issues[:3]
    assert report.rows_checked == 400 - strat.warmup > 100
