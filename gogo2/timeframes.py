"""ccxt-style timeframe strings ("1s", "5m", "4h", "1d", "1w") and their arithmetic.

Times everywhere in gogo2 are int64 milliseconds since the Unix epoch, UTC, and a
candle is labelled by its *open* time. A candle opened at ``t`` closes at
``t + timeframe_ms`` and its data is known only from then on.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np

from gogo2.errors import UserInputError

UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
STANDARD = ("1s", "1m", "5m", "15m", "1h", "4h", "1d")
_TF_RE = re.compile(r"^(\d+)([smhdw])$")


def timeframe_ms(timeframe: str) -> int:
    """Length of one candle of ``timeframe`` in milliseconds.

    Raises UserInputError for anything that is not ``<positive int><s|m|h|d|w>``.
    Months ("1M") are refused: they have no fixed length, so no fixed grid.
    """
    m = _TF_RE.match(str(timeframe).strip())
    if not m or int(m.group(1)) <= 0:
        hint = (
            " Months have no fixed length; use 4w or 30d." if str(timeframe).endswith("M") else ""
        )
        raise UserInputError(
            f"bad timeframe {timeframe!r}: write a positive number followed by s, m, h, d or w "
            f"(for example {', '.join(STANDARD)}).{hint}"
        )
    return int(m.group(1)) * UNIT_MS[m.group(2)]


def normalize(timeframe: str) -> str:
    """Canonical spelling: '60m' -> '1h', '24h' -> '1d'; unknown shapes raise."""
    ms = timeframe_ms(timeframe)
    for unit in ("w", "d", "h", "m", "s"):
        if ms % UNIT_MS[unit] == 0:
            return f"{ms // UNIT_MS[unit]}{unit}"
    raise AssertionError("unreachable: every timeframe is a whole number of seconds")


def is_multiple(coarse: str, fine: str) -> bool:
    """True when one ``coarse`` candle is made of a whole number of ``fine`` candles."""
    return timeframe_ms(coarse) % timeframe_ms(fine) == 0 and timeframe_ms(coarse) >= timeframe_ms(
        fine
    )


def parse_time(value: str | int | datetime | None, name: str = "time") -> int | None:
    """Parse '2023-01-01', '2023-01-01T12:00', an ISO string with zone, ms int or datetime to UTC ms."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    text = str(value).strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserInputError(
            f"bad {name} {value!r}: write a date like 2023-01-01 or 2023-01-01T12:00 (UTC)."
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def format_time(ms: int | None) -> str:
    """UTC text of a ms timestamp, '-' for None."""
    if ms is None:
        return "-"
    dt = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S" if dt.second else "%Y-%m-%d %H:%M")
