"""Typed configuration: layering, overrides, secrets and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from gogo2.config import Settings, load_settings
from gogo2.errors import ConfigError


@pytest.fixture(name="workdir")
def fixture_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("backtest:\n  cash: 2500\n  strategy: rsi_reversion\n")
    return tmp_path


def test_defaults_match_documented_values() -> None:
    s = Settings()
    assert s.backtest.cash == 10_000
    assert s.backtest.timeframe == "1m"
    assert s.data.exchange == "synthetic"


def test_repository_config_yaml_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    s = load_settings(root / "config.yaml", environ={})
    assert s.backtest.symbols == ("BTC/USDT", "ETH/USDT")


def test_config_yaml_in_working_directory_is_read(workdir: Path) -> None:
    s = load_settings(environ={})
    assert s.backtest.cash == 2500
    assert s.backtest.strategy == "rsi_reversion"
    assert s.backtest.fee_taker == Settings().backtest.fee_taker


def test_overlay_file_merges_over_base(workdir: Path) -> None:
    over = workdir / "over.yaml"
    over.write_text("backtest:\n  fee_taker: 0.0005\n")
    s = load_settings(over, environ={})
    assert s.backtest.fee_taker == 0.0005
    assert s.backtest.cash == 2500  # from the base file, not lost by the merge


def test_environment_overlay_file(workdir: Path) -> None:
    (workdir / "config.paper.yaml").write_text("exchange:\n  sandbox: true\n")
    s = load_settings(environ={"GOGO2_ENV": "paper"})
    assert s.exchange.sandbox is True
    with pytest.raises(ConfigError, match=r"config\.live\.yaml"):
        load_settings(environ={"GOGO2_ENV": "live"})


def test_environment_variable_overrides_everything(workdir: Path) -> None:
    s = load_settings(
        environ={"GOGO2__BACKTEST__CASH": "777", "GOGO2__BACKTEST__ALLOW_SHORT": "false"}
    )
    assert s.backtest.cash == 777
    assert s.backtest.allow_short is False


def test_unknown_key_names_key_value_and_close_match(workdir: Path) -> None:
    bad = workdir / "bad.yaml"
    bad.write_text("backtest:\n  cahs: 5\n")
    with pytest.raises(ConfigError) as e:
        load_settings(bad, environ={})
    msg = str(e.value)
    assert "backtest.cahs" in msg and "5" in msg and "Did you mean 'cash'" in msg


def test_unknown_section_gets_hint(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'backtest'"):
        load_settings(environ={"GOGO2__BACKTST__CASH": "1"})


def test_bad_value_names_key_and_value(workdir: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(environ={"GOGO2__BACKTEST__TIMEFRAME": "7x"})
    assert "backtest.timeframe" in str(e.value) and "7x" in str(e.value)
    with pytest.raises(ConfigError, match=r"backtest\.size_type"):
        load_settings(environ={"GOGO2__BACKTEST__SIZE_TYPE": "lots"})


def test_secrets_in_files_are_refused_and_read_from_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = workdir / "secret.yaml"
    bad.write_text("exchange:\n  api_key: abc\n")
    with pytest.raises(ConfigError, match="GOGO2_API_KEY"):
        load_settings(bad, environ={})
    monkeypatch.setenv("GOGO2_API_KEY", "k-123")
    s = load_settings(environ={})
    assert s.exchange.api_key is not None
    assert s.exchange.api_key.get_secret_value() == "k-123"
    assert "k-123" not in repr(s)


def test_missing_or_broken_files_are_config_errors(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(workdir / "nope.yaml", environ={})
    broken = workdir / "broken.yaml"
    broken.write_text("backtest: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(broken, environ={})


def test_data_dir_created_on_first_use(workdir: Path) -> None:
    s = load_settings(environ={"GOGO2__DATA__DIR": "deep/store"})
    assert not (workdir / "deep" / "store").exists()
    s.ensure_dirs()
    assert (workdir / "deep" / "store").is_dir()
