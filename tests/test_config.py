"""Typed configuration: layering, overrides, secrets and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from gogo2 import config as config_module
from gogo2.config import Settings, load_settings
from gogo2.errors import ConfigError


@pytest.fixture(name="workdir")
def fixture_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with its config.yaml, which is also the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config_module, "PROJECT_ROOT", tmp_path)
    (tmp_path / "config.yaml").write_text("backtest:\n  cash: 2500\n  strategy: rsi_reversion\n")
    return tmp_path


def test_defaults_match_documented_values() -> None:
    s = Settings()
    assert s.backtest.cash == 10_000
    assert s.backtest.timeframe == "1h"
    assert s.data.exchange == "synthetic"


def test_repository_config_yaml_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    s = load_settings(root / "config.yaml", environ={})
    assert s.backtest.symbols == ("BTC/USDT", "ETH/USDT")


def test_project_config_yaml_is_read(workdir: Path) -> None:
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


# -- paths never depend on the working directory -----------------------------------------------


@pytest.fixture(name="project")
def fixture_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with its own config.yaml; the working directory is elsewhere."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text("data:\n  dir: store\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return project


def test_relative_paths_come_from_the_project_not_the_cwd(project: Path) -> None:
    s = load_settings(environ={}, root=project)
    assert s.data.dir == project / "store"
    assert s.data.path == project / "store"
    assert s.backtest.report_dir == project / "reports"  # a default: the project directory
    s.ensure_dirs()
    assert (project / "store").is_dir()
    assert list(Path.cwd().iterdir()) == []


def test_config_yaml_in_the_working_directory_is_not_read(project: Path) -> None:
    (Path.cwd() / "config.yaml").write_text("backtest:\n  cash: 1\n")
    assert load_settings(environ={}, root=project).backtest.cash == 10_000


def test_overlay_paths_are_taken_from_the_overlay_directory(project: Path) -> None:
    other = project.parent / "other" / "dir"
    other.mkdir(parents=True)
    (other / "x.yaml").write_text("data:\n  dir: cat\nbacktest:\n  report_dir: ../out\n")
    s = load_settings(other / "x.yaml", environ={}, root=project)
    assert s.data.dir == other / "cat"
    assert s.backtest.report_dir == project.parent / "other" / "out"  # '..' folded away
    # the --config path itself is a command-line path: relative to the working directory
    rel = Path("..") / "other" / "dir" / "x.yaml"
    assert load_settings(rel, environ={}, root=project).data.dir == other / "cat"


def test_overlay_without_paths_keeps_the_project_ones(project: Path) -> None:
    over = project.parent / "over.yaml"
    over.write_text("backtest:\n  cash: 5\n")
    s = load_settings(over, environ={}, root=project)
    assert s.data.dir == project / "store"


def test_environment_paths_are_taken_from_the_project(project: Path) -> None:
    s = load_settings(environ={"GOGO2__DATA__DIR": "env/cat"}, root=project)
    assert s.data.dir == project / "env" / "cat"
    absolute = project.parent / "abs"
    s = load_settings(environ={"GOGO2__DATA__DIR": str(absolute)}, root=project)
    assert s.data.dir == absolute


def test_home_is_expanded(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = project.parent / "home"
    monkeypatch.setenv("HOME", str(home))
    (project / "config.yaml").write_text("data:\n  dir: ~/gogo2-data\n")
    assert load_settings(environ={}, root=project).data.dir == home / "gogo2-data"


def test_environment_overlay_paths_come_from_its_directory(project: Path) -> None:
    (project / "config.paper.yaml").write_text("backtest:\n  report_dir: paper-reports\n")
    s = load_settings(environ={"GOGO2_ENV": "paper"}, root=project)
    assert s.backtest.report_dir == project / "paper-reports"


def test_empty_path_is_refused(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.dir = '': is empty"):
        load_settings(environ={"GOGO2__DATA__DIR": "''"}, root=project)


def test_settings_built_in_code_are_absolute_too() -> None:
    s = Settings()
    assert s.data.dir.is_absolute() and s.data.dir.name == "data"
    assert s.backtest.report_dir.is_absolute() and s.backtest.report_dir.name == "reports"


# -- symbols as text, YAML errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BTC/USDT", ("BTC/USDT",)),
        ("'BTC/USDT,eth/usdt'", ("BTC/USDT", "ETH/USDT")),
        ("BTC/USDT, ETH/USDT, BTC/USDT", ("BTC/USDT", "ETH/USDT")),
        ("[BTC/USDT]", ("BTC/USDT",)),
    ],
)
def test_symbols_may_be_one_string(project: Path, text: str, expected: tuple[str, ...]) -> None:
    (project / "config.yaml").write_text(f"backtest:\n  symbols: {text}\n")
    assert load_settings(environ={}, root=project).backtest.symbols == expected


@pytest.mark.parametrize(("text", "needle"), [("BTCUSDT", "BASE/QUOTE"), ("' , '", "no symbol")])
def test_bad_symbols_are_refused(project: Path, text: str, needle: str) -> None:
    (project / "config.yaml").write_text(f"backtest:\n  symbols: {text}\n")
    with pytest.raises(ConfigError, match=needle) as e:
        load_settings(environ={}, root=project)
    assert "backtest.symbols" in str(e.value)


def test_yaml_error_names_file_line_and_column(project: Path) -> None:
    bad = project.parent / "bad.yaml"
    bad.write_text("backtest:\n  cash: 5\n  fee_taker: [0.001\n")
    with pytest.raises(ConfigError) as e:
        load_settings(bad, environ={}, root=project)
    msg = str(e.value)
    assert str(bad) in msg
    assert "<unicode string>" not in msg
    assert "line 4, column 1" in msg  # the unclosed '[' runs into the end of the file
    (project / "config.yaml").write_text("data:\n\tdir: x\n")  # a tab indent, line 2
    with pytest.raises(ConfigError) as e:
        load_settings(environ={}, root=project)
    assert str(project / "config.yaml") in str(e.value) and "line 2, column 1" in str(e.value)
