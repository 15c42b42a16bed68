"""Training: labels, purged splits, determinism to the bit, and each model beating chance on a planted pattern."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from datasets.bars import Bars  # noqa: E402
from runner.train import bars_to_prepared, baselines, labels, span_windows, walk_forward  # noqa: E402


def test_labels_by_hand_and_last_horizon_bars_unlabelled():
    close = np.array([100.0, 101.0, 99.0, 99.05, 103.0, 100.0])
    y = labels(close, 2, 0.005)
    # r0 = log(99/100) < -0.005 sell; r1 = log(99.05/101) sell; r2 = log(103/99) buy;
    # r3 = log(100/99.05) = +0.0095 buy; the last two bars have no future inside the span
    assert y.tolist() == [0, 0, 2, 2, -1, -1]
    # threshold 0.03: only log(103/99.05) = 0.039 clears it
    assert labels(close, 1, 0.03).tolist() == [1, 1, 1, 2, 1, -1]


def test_walk_forward_purge_gap_and_order():
    splits = walk_forward(1000, folds=3, horizon=5, embargo=7)
    assert len(splits) == 3
    size = 1000 // 5
    for k, s in enumerate(splits):
        assert s.train == (0, (k + 1) * size)
        assert s.val[0] - s.train[1] == 12 and s.test[0] - s.val[1] == 12
    assert splits[-1].test[1] == 1000
    assert [s.test[0] for s in splits] == sorted({s.test[0] for s in splits})


def test_baselines_by_hand():
    b = baselines(np.array([1, 1, 1, 2]), np.array([1, 2]))
    assert b["always_hold"]["accuracy"] == 0.5
    # prior (0, .75, .25): log-loss = -(log .75 + log .25) / 2
    assert b["class_prior"]["log_loss"] == pytest.approx(-(np.log(0.75) + np.log(0.25)) / 2)


def planted_bars(n: int = 2400, seed: int = 3) -> Bars:
    """Bars whose next 2 closes follow the sign of the last candle's range position: learnable."""
    rng = np.random.default_rng(seed)
    close = np.empty(n)
    close[0] = 100.0
    sign = rng.choice([-1.0, 1.0], n)
    for t in range(1, n):
        # a big candle at t-1 (wide range) says where t goes; small noise otherwise
        close[t] = close[t - 1] * np.exp(0.006 * sign[t - 1] + rng.normal(0, 0.0005))
    open_ = np.concatenate([[100.0], close[:-1]])
    # the candle's volume carries the coming direction: the pattern to learn
    volume = np.where(sign > 0, 3000.0, 1000.0) * rng.uniform(0.9, 1.1, n)
    high = np.maximum(open_, close) * 1.0005
    low = np.minimum(open_, close) * 0.9995
    time = 1_672_531_200_000 + np.arange(n, dtype=np.int64) * 3_600_000
    col = lambda a: a[:, None]  # noqa: E731
    return Bars(
        "1h",
        ("AAA/USDT",),
        time,
        col(open_),
        col(high),
        col(low),
        col(close),
        col(volume),
        "test",
        True,
        {},
    )


@pytest.fixture(scope="module")
def settings():
    from gogo2.config import load_settings

    return load_settings(environ={})


TINY = {
    "cnn": {"hidden": 8, "epochs": 8, "batch_size": 64},
    "lstm": {"hidden": 8, "epochs": 8, "batch_size": 64},
    "transformer": {"hidden": 8, "layers": 1, "heads": 2, "epochs": 8, "batch_size": 64},
    "dqn": {
        "hidden": 16,
        "steps": 1500,
        "eval_every": 500,
        "buffer_size": 2000,
        "target_update": 100,
    },
}


@pytest.mark.parametrize("name", ["cnn", "lstm", "transformer", "dqn"])
def test_each_model_beats_chance_on_a_planted_pattern(name, settings, tmp_path):
    from runner.train import train_model

    p = bars_to_prepared(planted_bars())
    cfg = settings.model_copy(
        update={
            "train": settings.train.model_copy(
                update={
                    "horizon": 1,
                    "threshold": 0.003,
                    "folds": 1,
                    "embargo": 2,
                    "min_train": 100,
                }
            )
        }
    )
    res = train_model(
        name,
        p,
        cfg,
        seed=1,
        models_dir=tmp_path,
        range_text=("a", "b"),
        say=lambda s: None,
        config=TINY[name],
    )
    test = res.folds[-1].test
    # two classes (buy/sell) half each: chance is 0.5 accuracy; with ~400 test windows its
    # standard deviation is 0.025, so 0.6 is four of them above chance
    assert test["accuracy"] > 0.6, test
    assert res.path.is_file()
    meta = res.meta
    assert meta["feature_names"] == list(p.names) and meta["window_size"] == 20
    assert meta["data_range"]["source"] == "synthetic" and meta["training"]["seed"] == 1


@pytest.mark.parametrize("name", ["cnn", "lstm", "transformer", "dqn"])
def test_same_seed_same_weights_to_the_bit(name, settings, tmp_path):
    from models.checkpoint import read_checkpoint
    from runner.train import train_model

    p = bars_to_prepared(planted_bars(900))
    cfg = settings.model_copy(
        update={
            "train": settings.train.model_copy(
                update={"horizon": 1, "folds": 1, "embargo": 2, "min_train": 100}
            )
        }
    )
    small = {**TINY[name], "epochs": 2, "steps": 300, "eval_every": 150}
    if name == "dqn":
        small.pop("epochs")
    else:
        small.pop("steps"), small.pop("eval_every")
    states = []
    for d in ("a", "b"):
        r = train_model(
            name,
            p,
            cfg,
            seed=5,
            models_dir=tmp_path / d,
            range_text=("a", "b"),
            say=lambda s: None,
            config=small,
        )
        states.append(read_checkpoint(r.path)[1])
    other = train_model(
        name,
        p,
        cfg,
        seed=6,
        models_dir=tmp_path / "c",
        range_text=("a", "b"),
        say=lambda s: None,
        config=small,
    )
    a, b, c = states[0], states[1], read_checkpoint(other.path)[1]
    for mod in a:
        for k in a[mod]:
            assert torch.equal(a[mod][k], b[mod][k]), (mod, k)
    assert any(
        not torch.equal(a[m][k], c[m][k]) for m in a for k in a[m] if a[m][k].is_floating_point()
    )


def test_span_windows_labels_stop_inside_the_span():
    p = bars_to_prepared(planted_bars(300))
    d = span_windows(p, (0, 200), 20, 3, 0.003)
    assert d.rows.max() <= 199 - 3


def test_verdict_says_plainly_when_baselines_or_chance_are_not_beaten():
    from runner.train import verdict

    base = {
        "always_hold": {"accuracy": 0.41, "log_loss": 8.0},
        "class_prior": {"accuracy": 0.41, "log_loss": 1.09},
    }
    ok, words = verdict({"accuracy": 0.40, "log_loss": 1.10, "direction": 0.6, "moved": 400}, base)
    assert not ok and "does NOT beat" in words and "0.4000 is not above" in words
    # 0.51 on 400 moved bars is 0.4 standard errors above 0.5: chance
    ok, words = verdict({"accuracy": 0.45, "log_loss": 1.05, "direction": 0.51, "moved": 400}, base)
    assert ok and "NOT above chance" in words
