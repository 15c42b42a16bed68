"""The performance, models and orchestrator sections of the config, and import hygiene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gogo2.config import PerformanceConfig, Settings, load_settings
from gogo2.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_documented_ones_and_config_yaml_writes_them() -> None:
    built_in = Settings()
    from_file = load_settings(ROOT / "config.yaml", environ={})
    for s in (built_in, from_file):
        assert s.performance.total_memory_gb == 8.0
        assert s.performance.use_gpu is True and s.performance.mixed_precision is True
        assert s.models.default_max_memory_mb == 2048.0 and s.models.when_full == "refuse"
        assert s.orchestrator.confidence_threshold == 0.5
        assert s.orchestrator.decision_frequency == 60.0
        assert (s.orchestrator.horizon, s.orchestrator.hold_band) == (1, 0.001)
        assert (s.orchestrator.learning_rate, s.orchestrator.weight_floor) == (0.5, 0.05)
    assert from_file.models.dir == ROOT / "checkpoints"
    assert built_in.models.per_model == {}
    # config.yaml writes the bundled models' sizes: window 20 of the 8 features
    assert set(from_file.models.per_model) == {"cnn", "lstm", "transformer", "dqn"}
    assert {m.window_size for m in from_file.models.per_model.values()} == {20}


def test_per_model_sections_in_the_original_shape(tmp_path) -> None:
    cfg = tmp_path / "x.yaml"
    cfg.write_text(
        "performance:\n  total_memory_gb: 4\n"
        "models:\n  CNN:\n    max_memory_mb: 2000\n    window_size: 20\n"
        "  rl:\n    max_memory_mb: 1500\n    state_size: 100\n"
    )
    s = load_settings(cfg, environ={})
    assert s.models.limit_mb("cnn") == 2000.0 and s.models.limit_mb("CNN") == 2000.0
    assert s.models.limit_mb("rl") == 1500.0 and s.models.limit_mb("lstm") == 2048.0
    assert s.models.settings_for("cnn").window_size == 20
    assert s.models.settings_for("rl").state_size == 100


def test_models_dir_is_taken_from_the_file_that_sets_it(tmp_path) -> None:
    cfg = tmp_path / "sub" / "x.yaml"
    cfg.parent.mkdir()
    cfg.write_text("models:\n  dir: ckpt\n")
    assert load_settings(cfg, environ={}).models.dir == tmp_path / "sub" / "ckpt"
    env = load_settings(environ={"GOGO2__MODELS__DIR": "elsewhere"})
    assert env.models.dir == ROOT / "elsewhere"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("performance:\n  total_memory_gb: 0\n", "performance.total_memory_gb = 0"),
        ("performance:\n  total_memory_gb: -8\n", "performance.total_memory_gb = -8"),
        ("performance:\n  total_memory_gb: .nan\n", "performance.total_memory_gb = nan"),
        ("models:\n  default_max_memory_mb: 0\n", "models.default_max_memory_mb = 0"),
        ("models:\n  cnn:\n    max_memory_mb: -1\n", "models.cnn.max_memory_mb = -1"),
        ("models:\n  cnn:\n    max_memory_mb: lots\n", "models.cnn.max_memory_mb = 'lots'"),
        ("models:\n  when_full: evict\n", "models.when_full = 'evict'"),
        ("orchestrator:\n  confidence_threshold: 1.5\n", "orchestrator.confidence_threshold = 1.5"),
        ("orchestrator:\n  horizon: 0\n", "orchestrator.horizon = 0"),
    ],
)
def test_limits_that_are_not_positive_numbers_are_refused(tmp_path, text: str, needle: str) -> None:
    cfg = tmp_path / "x.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(cfg, environ={})
    assert needle in str(e.value) and "x.yaml" in str(e.value)


def test_unknown_keys_get_a_close_match(tmp_path) -> None:
    cfg = tmp_path / "x.yaml"
    cfg.write_text("models:\n  when_ful: offload_lru\n")
    with pytest.raises(
        ConfigError, match=r"unknown key models\.when_ful .*Did you mean 'when_full'"
    ):
        load_settings(cfg, environ={})
    cfg.write_text("models:\n  cnn:\n    max_memory: 100\n")
    with pytest.raises(ConfigError, match=r"unknown key models\.cnn\.max_memory .*'max_memory_mb'"):
        load_settings(cfg, environ={})
    cfg.write_text("performance:\n  use_gpus: true\n")
    with pytest.raises(ConfigError, match="Did you mean 'use_gpu'"):
        load_settings(cfg, environ={})


def test_sections_are_frozen() -> None:
    with pytest.raises(Exception, match="frozen"):
        PerformanceConfig().total_memory_gb = 1.0  # type: ignore[misc]


def test_engine_strategies_and_datasets_do_not_import_the_model_layer() -> None:
    code = (
        "import sys, engine.backtest, runner.backtest, strategies.registry, datasets.features, cli\n"
        "print(sorted(m for m in ('torch', 'models.registry', 'models.orchestrator') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
