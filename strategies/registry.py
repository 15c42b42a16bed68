"""Strategy names -> classes.

Bundled strategies are imported on first use, so listing names stays cheap.
Custom strategies join with :func:`register`::

    @register
    class MyStrategy(Strategy):
        name = "my_strategy"
        ...
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from gogo2.errors import UnknownNameError, UserInputError
from strategies.base import Strategy, parse_params

__all__ = ["available", "create", "describe", "get", "register"]

_BUNDLED: dict[str, tuple[str, str]] = {
    "ml": ("strategies.ml", "MLStrategy"),
    "mtf_trend": ("strategies.mtf_trend", "MtfTrend"),
    "rsi_reversion": ("strategies.rsi_reversion", "RsiReversion"),
    "sma_cross": ("strategies.sma_cross", "SmaCross"),
}
_REGISTERED: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Add a Strategy subclass under its ``name`` (usable as a class decorator).

    Raises
    ------
    UserInputError
        When the class has no name, is not a Strategy, or the name is taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise UserInputError(f"{cls!r} is not a Strategy subclass; only strategies can register.")
    name = cls.name
    if not name or not name.isidentifier():
        raise UserInputError(
            f"strategy class {cls.__name__} needs a `name` made of letters, digits and _, "
            f"got {name!r}."
        )
    if name in _BUNDLED and (cls.__module__, cls.__name__) != _BUNDLED[name]:
        raise UserInputError(
            f"strategy name {name!r} belongs to a bundled strategy; pick another name."
        )
    existing = _REGISTERED.get(name)
    if existing is not None and existing is not cls:
        raise UserInputError(
            f"strategy name {name!r} is already registered by {existing.__module__}."
            f"{existing.__name__}; pick another name."
        )
    _REGISTERED[name] = cls
    return cls


def available() -> list[str]:
    """Names of every known strategy, sorted."""
    return sorted(set(_BUNDLED) | set(_REGISTERED))


def get(name: str) -> type[Strategy]:
    """The Strategy class called ``name``.

    Raises
    ------
    UnknownNameError
        For an unknown name, with a "did you mean" hint and the list of known names.
    """
    key = str(name).strip()
    if key in _REGISTERED:
        return _REGISTERED[key]
    if key in _BUNDLED:
        module, attr = _BUNDLED[key]
        cls = getattr(importlib.import_module(module), attr)
        _REGISTERED[key] = cls
        return cls
    raise UnknownNameError("strategy", key, available(), "Pick one of these names with --strategy.")


def describe(name: str) -> str:
    """Several lines for help texts: what the strategy does, its timeframes and parameters."""
    cls = get(name)
    tfs = (
        f"base {cls.base_timeframe}, reads {', '.join(cls.informative)} (closed candles)"
        if cls.informative
        else f"base {cls.base_timeframe} by default, any timeframe accepted"
    )
    lines = [f"{cls.label()}: {cls.description}".rstrip(": "), f"  timeframes: {tfs}"]
    lines += [f"  --param {p.describe()}" for p in cls.param_spec().values()]
    return "\n".join(lines)


def create(
    name: str,
    params: Iterable[str] | Mapping[str, Any] | None = None,
    timeframe: str | None = None,
) -> Strategy:
    """Build strategy ``name`` from ``--param k=v`` strings (or a mapping) and a base timeframe.

    Parameters
    ----------
    name : str
        Registry name.
    params : iterable of "k=v" strings, or mapping of values, optional
    timeframe : str, optional
        Base timeframe; ``None`` for the strategy's default.
    """
    cls = get(name)
    return cls(timeframe=timeframe, **parse_params(cls, params))
