"""Number and symbol options: parsing and the messages for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

import cli
from gogo2.clikit import parse_number, parse_symbols
from gogo2.errors import UserInputError


def test_numbers_parse() -> None:
    assert parse_number("--fee", "0.00075") == 0.00075
    assert parse_number("--cuts", "12", int) == 12
    assert parse_number("--fee", None) is None


@pytest.mark.parametrize(
    ("name", "value", "suggestion"),
    [
        ("--fee", "0.1%", "--fee 0.001 means 0.1 %"),
        ("--fee", "0.075 %", "--fee 0.00075 means 0.075 %"),
        ("--fee", "1e-1%", "--fee 0.001 means 0.1 %"),
        ("--fee", "2.5%", "--fee 0.025 means 2.5 %"),
        ("--slippage", "0.02%", "--slippage 2 means 0.02 %"),
        ("--slippage", "0.015%", "--slippage 1.5 means 0.015 %"),
    ],
)
def test_percentages_get_the_number_to_write(name: str, value: str, suggestion: str) -> None:
    with pytest.raises(UserInputError) as e:
        parse_number(name, value)
    msg = str(e.value)
    assert f"{name} {value!r} is a percentage" in msg
    assert suggestion in msg


def test_percentages_of_amounts_and_counts_get_no_fraction() -> None:
    with pytest.raises(UserInputError) as e:
        parse_number("--cash", "10%")
    assert "0.1" not in str(e.value) and "plain number" in str(e.value)
    with pytest.raises(UserInputError, match="is not a number"):
        parse_number("--cuts", "5%", int)
    with pytest.raises(UserInputError, match="is not a number"):
        parse_number("--fee", "abc%")


def test_fee_percent_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr("gogo2.config.PROJECT_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["backtest", "--from", "2023-01-01", "--fee", "0.1%"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert "--fee 0.001 means 0.1 %" in err
    assert list(tmp_path.iterdir()) == []  # refused before any data is touched


def test_symbols_parse() -> None:
    assert parse_symbols("btc/usdt, ETH/USDT,BTC/USDT", ()) == ("BTC/USDT", "ETH/USDT")
    assert parse_symbols(None, ("BTC/USDT",)) == ("BTC/USDT",)
    with pytest.raises(UserInputError, match="BASE/QUOTE"):
        parse_symbols("BTCUSDT", ())
