"""Small helpers shared by the command modules (click only; no heavy imports)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

symbols_option = click.option(
    "--symbols", default=None, metavar="LIST", help="Comma-separated, e.g. BTC/USDT,ETH/USDT."
)
strategy_option = click.option(
    "--strategy", default=None, help="Strategy name (default from config)."
)
param_option = click.option(
    "--param",
    "params",
    multiple=True,
    metavar="K=V",
    help="Strategy parameter; repeat for several.",
)

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


def parse_symbols(value: str | Sequence[str] | None, default: Sequence[str]) -> tuple[str, ...]:
    """``"btc/usdt, ETH/USDT"`` -> ``("BTC/USDT", "ETH/USDT")``; refuses empty and malformed names."""
    from gogo2.errors import UserInputError

    if value is None:
        items = list(default)
    elif isinstance(value, str):
        items = [s for s in (p.strip() for p in value.split(",")) if s]
    else:
        items = [str(s).strip() for s in value if str(s).strip()]
    if not items:
        raise UserInputError(
            f"--symbols {value!r} names no symbol. Write them comma-separated, like BTC/USDT,ETH/USDT."
        )
    out: list[str] = []
    for s in items:
        sym = s.upper()
        base, sep, quote = sym.partition("/")
        if not sep or not base or not quote or "/" in quote:
            raise UserInputError(
                f"--symbols: {s!r} is not a symbol. Write BASE/QUOTE, like BTC/USDT."
            )
        if sym not in out:
            out.append(sym)
    return tuple(out)
