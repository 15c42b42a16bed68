"""Small helpers shared by the command modules (click only; no heavy imports)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import click


class CommandNotFound(click.UsageError):
    """A mistyped or not yet built command; the message already lists the commands."""


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when they run.

    ``lazy`` maps a name to ``(module, attribute, one-line help)``; ``planned`` maps the
    name of a command that is not built yet to its one-line help. Planned commands are
    listed in ``--help`` as not available yet and refused with one line (exit code 2);
    a mistyped name gets the closest known one suggested.
    """

    def __init__(
        self,
        *args: Any,
        lazy: Mapping[str, tuple[str, str, str]],
        planned: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)
        self.planned = {k: v for k, v in (planned or {}).items() if k not in self.lazy}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            return None
        module, attr, _ = self.lazy[name]
        return getattr(importlib.import_module(module), attr)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        if name in self.lazy or ctx.resilient_parsing or name.startswith("-"):
            return super().resolve_command(ctx, args)
        from gogo2.errors import did_you_mean

        where = ctx.command_path
        if name in self.planned:
            raise CommandNotFound(
                f"'{where} {name}' is not available yet ({self.planned[name]}). "
                f"Available now: {', '.join(sorted(self.lazy))}.",
                ctx=ctx,
            )
        hint = did_you_mean(name, [*self.lazy, *self.planned])
        raise CommandNotFound(
            f"unknown command {name!r} for '{where}'.{hint} "
            f"Commands: {', '.join(sorted(self.lazy))}.",
            ctx=ctx,
        )

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(n, self.lazy[n][2]) for n in sorted(self.lazy)])
        if self.planned:
            with formatter.section("Not available yet"):
                formatter.write_dl([(n, self.planned[n]) for n in sorted(self.planned)])


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

models_option = click.option(
    "--models",
    "models",
    default=None,
    metavar="NAMES",
    help="Trained models for --strategy ml, comma-separated (cnn,dqn); the same as "
    "--param models=NAMES.",
)


def with_models(strategy: str | None, params: tuple[str, ...], models: str | None) -> list[str]:
    """``params`` plus ``models=NAMES`` for ``--models``, which only the ``ml`` strategy takes."""
    out = list(params)
    if models is None:
        return out
    if strategy != "ml":
        from gogo2.errors import UserInputError

        raise UserInputError(
            f"--models {models} applies to --strategy ml only (the strategy is "
            f"{strategy or 'the configured one'}); add --strategy ml or drop --models."
        )
    return [*(p for p in out if not p.strip().startswith("models=")), f"models={models}"]


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file deep-merged over config.yaml; relative paths in it are taken from its folder.",
)


_ACTIVE: list[Any] = []


def load(config_path: str | None):
    """Load settings for a command (raises ConfigError, which the CLI turns into exit code 2).

    The settings are also kept as the command's active settings (:func:`active_settings`),
    so a component built by name deep inside the command (the ``ml`` strategy finding
    ``models.dir``) reads the same ``--config`` overlay.
    """
    from gogo2.config import load_settings

    settings = load_settings(config_path)
    _ACTIVE[:] = [settings]
    return settings


def active_settings():
    """The settings the running command loaded, else ``load_settings()``."""
    if _ACTIVE:
        return _ACTIVE[0]
    from gogo2.config import load_settings

    return load_settings()


# What "X%" given to a number option should be written as: a fraction (the default, for
# rates like --fee), basis points, or nothing sensible (amounts and counts).
_PERCENT_AS: dict[str, str | None] = {"--slippage": "bps", "--cash": None, "--days": None}


def parse_number(name: str, value: str | None, kind: Callable[[str], Any] = float) -> Any:
    """Parse a numeric flag or raise a UserInputError naming it.

    A percentage (``--fee 0.1%``) is refused with the number to write instead: the
    fraction (``0.001``), or basis points for ``--slippage``.
    """
    from gogo2.errors import UserInputError

    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        pass
    hint = " Write it like 0.001 or 10000."
    text = str(value).strip()
    if text.endswith("%") and kind is float:
        try:
            pct = Decimal(text[:-1].strip())
        except InvalidOperation:
            pct = None
        if pct is not None and pct.is_finite():
            unit = _PERCENT_AS.get(name, "fraction")
            if unit == "fraction":
                hint = (
                    f" Give the fraction instead: {name} {_plain(pct / 100)} means {_plain(pct)} %."
                )
            elif unit == "bps":
                hint = (
                    f" Give basis points instead: {name} {_plain(pct * 100)} means {_plain(pct)} %."
                )
            else:
                hint = f" Give a plain number, like {name} 10000."
            raise UserInputError(f"{name} {value!r} is a percentage, not a number.{hint}")
    raise UserInputError(f"{name} {value!r} is not a number.{hint}") from None


def _plain(d: Decimal) -> str:
    """``Decimal('0.0010')`` -> ``'0.001'``; never scientific notation."""
    text = format(d.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


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
