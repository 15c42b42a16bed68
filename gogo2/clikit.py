"""Small helpers shared by the command modules (click only; no heavy imports)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file deep-merged over config.yaml.",
)


def load(config_path: str | None):
    """Load settings for a command (raises ConfigError, which the CLI turns into exit code 2)."""
    from gogo2.config import load_settings

    return load_settings(config_path)


def parse_number(name: str, value: str | None, kind: Callable[[str], Any] = float) -> Any:
    """Parse a numeric flag or raise a UserInputError naming it."""
    from gogo2.errors import UserInputError

    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UserInputError(
            f"{name} {value!r} is not a number. Write it like 0.001 or 10000."
        ) from None
