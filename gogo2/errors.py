"""The error tree of gogo2.

    Gogo2Error
    ├── UserInputError          bad input from the user; the CLI prints it and exits with code 2
    │   ├── ConfigError         config.yaml, an overlay or an environment override is invalid
    │   ├── UnknownNameError    unknown strategy, parameter, symbol, ... (carries a close-match hint)
    │   └── DataError           data the user asked for or handed in is unusable
    │       ├── NoDataError     the catalog holds nothing for the request
    │       └── CandleValidationError   candles fail validation on write
    └── ExchangeFetchError      the exchange kept failing after every retry
        └── ExchangeUnreachableError  (datasets.exchange_client) DNS, refused connection,
                                      unreachable network or TLS: failed at once, no retry

Every message names the input, the value and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class Gogo2Error(Exception):
    """Base of every error gogo2 raises on purpose."""


class UserInputError(Gogo2Error):
    """The user's input is wrong; the message says what and how to fix it."""

    exit_code = 2


class ConfigError(UserInputError):
    """Invalid configuration."""


class UnknownNameError(UserInputError):
    """A name (strategy, parameter, symbol, timeframe, ...) is not known."""

    def __init__(self, kind: str, value: str, choices: Iterable[str], fix: str = "") -> None:
        choices = sorted(set(choices))
        self.kind, self.value, self.choices = kind, value, choices
        msg = f"unknown {kind} {value!r}.{did_you_mean(value, choices)}"
        if choices:
            msg += f" Known: {', '.join(choices)}."
        if fix:
            msg += f" {fix}"
        super().__init__(msg)


class DataError(UserInputError):
    """Data the user asked for or handed in is unusable."""


class NoDataError(DataError):
    """The catalog holds nothing for the requested range or series."""


class CandleValidationError(DataError):
    """Candles failed validation on write; nothing was stored."""


class ExchangeFetchError(Gogo2Error):
    """The exchange kept failing after every retry."""

    exit_code = 1


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or an empty string."""
    matches = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" Did you mean {matches[0]!r}?" if matches else ""
