"""Timeframe strings and time parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gogo2.errors import UserInputError
from gogo2.timeframes import format_time, is_multiple, normalize, parse_time, timeframe_ms


@pytest.mark.parametrize(
    ("tf", "ms"),
    [
        ("1s", 1000),
        ("1m", 60_000),
        ("5m", 300_000),
        ("15m", 900_000),
        ("1h", 3_600_000),
        ("4h", 14_400_000),
        ("1d", 86_400_000),
        ("3d", 259_200_000),
        ("1w", 604_800_000),
    ],
)
def test_standard_timeframes(tf: str, ms: int) -> None:
    assert timeframe_ms(tf) == ms


@pytest.mark.parametrize("bad", ["", "m", "0m", "-1m", "1x", "1M", "1.5h", "h1"])
def test_bad_timeframes_raise_with_fix(bad: str) -> None:
    with pytest.raises(UserInputError, match="bad timeframe"):
        timeframe_ms(bad)


def test_month_gets_specific_hint() -> None:
    with pytest.raises(UserInputError, match="Months have no fixed length"):
        timeframe_ms("1M")


@given(st.integers(min_value=1, max_value=10_000), st.sampled_from("smhdw"))
def test_normalize_preserves_length(n: int, unit: str) -> None:
    tf = f"{n}{unit}"
    assert timeframe_ms(normalize(tf)) == timeframe_ms(tf)


def test_normalize_prefers_largest_unit() -> None:
    assert normalize("60m") == "1h"
    assert normalize("24h") == "1d"
    assert normalize("90m") == "90m"


def test_is_multiple() -> None:
    assert is_multiple("1h", "5m")
    assert not is_multiple("5m", "1h")
    assert not is_multiple("1h", "7m")


def test_parse_time_forms_agree() -> None:
    ms = 1_672_531_200_000  # 2023-01-01T00:00Z = 19358 days * 86400 s
    assert ms == 19358 * 86_400_000
    assert parse_time("2023-01-01") == ms
    assert parse_time("2023-01-01T00:00:00Z") == ms
    assert parse_time("2023-01-01T01:00:00+01:00") == ms
    assert parse_time(ms) == ms
    assert parse_time(None) is None
    assert format_time(ms) == "2023-01-01 00:00"


def test_parse_time_bad_value_names_input() -> None:
    with pytest.raises(UserInputError, match="bad --from 'yesterday'"):
        parse_time("yesterday", "--from")
