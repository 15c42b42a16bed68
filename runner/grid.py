"""Search spaces of a sweep: ``--grid name=a:b:step`` / ``name=v1,v2``, random and optuna.

Every value is checked against the strategy's declared :class:`strategies.base.Param`
(type, bounds, choices) before anything is loaded; combinations that break a rule across
parameters (``fast >= slow``) are skipped and counted.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gogo2.errors import UnknownNameError, UserInputError


class GridError(UserInputError):
    """A ``--grid``, ``--search`` or ``--trials`` value that cannot be used."""


@dataclass
class Space:
    """The values a sweep may give each parameter (grid order kept)."""

    axes: dict[str, list[Any]]
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return math.prod(len(v) for v in self.axes.values())

    def grid(self) -> list[dict[str, Any]]:
        names = list(self.axes)
        return [
            dict(zip(names, vals, strict=True)) for vals in itertools.product(*self.axes.values())
        ]


def _number_text(v: float) -> Any:
    """A float from range arithmetic, cleaned of binary noise (0.30000000000000004 -> 0.3)."""
    return float(f"{v:.12g}")


def _parse_range(name: str, text: str, kind: type, spec: Any) -> list[Any]:
    parts = text.split(":")
    if len(parts) != 3:
        raise GridError(
            f"--grid {name}={text}: a range is start:stop:step (stop included), "
            f"for example {name}=5:50:5."
        )
    try:
        a, b, step = (float(p) for p in parts)
    except ValueError:
        raise GridError(
            f"--grid {name}={text}: start, stop and step must be numbers, like {name}=5:50:5."
        ) from None
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(step)) or step <= 0:
        raise GridError(
            f"--grid {name}={text}: the step must be a positive number, like {name}=5:50:5."
        )
    if b < a:
        raise GridError(
            f"--grid {name}={text} is an empty grid: stop {b:g} is below start {a:g}. "
            "Give start <= stop."
        )
    count = math.floor((b - a) / step + 1e-9) + 1
    if kind is int:
        if not (a.is_integer() and step.is_integer()):
            raise GridError(
                f"--grid {name}={text}: {name} is a whole number, so start and step must be "
                f"whole numbers too, like {name}=5:50:5."
            )
        return [int(a) + i * int(step) for i in range(count)]
    return [_number_text(a + i * step) for i in range(count)]


def parse_grid(strategy_cls: Any, items: Sequence[str]) -> Space:
    """``["fast=5:50:5", "slow=20,50,100"]`` -> a checked :class:`Space`.

    Raises
    ------
    GridError
        Malformed item, unknown parameter, empty grid, a value of the wrong type or
        outside the Param's bounds (naming the parameter, the value and the bounds).
    """
    spec = strategy_cls.param_spec()
    axes: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise GridError(
                f"--grid {item!r} has no '='. Write name=start:stop:step or name=v1,v2, "
                "for example fast=5:50:5."
            )
        name, text = (s.strip() for s in item.split("=", 1))
        if name not in spec:
            raise UnknownNameError(
                f"parameter of strategy {strategy_cls.label()!r} in --grid",
                name,
                spec,
                f"Its parameters are {', '.join(spec)}.",
            )
        if name in axes:
            raise GridError(f"--grid {name} is given twice; give each parameter once.")
        p = spec[name]
        if not text:
            raise GridError(
                f"--grid {name}= is an empty grid: give values, like {name}=5:50:5 or {name}=5,10."
            )
        if ":" in text and p.type in (int, float):
            values = _parse_range(name, text, p.type, p)
        else:
            values = [p.parse(v) for v in text.split(",") if v.strip() != ""]
        if not values:
            raise GridError(
                f"--grid {name}={text} is an empty grid: give values, like {name}=5:50:5."
            )
        checked = []
        for v in values:
            try:
                checked.append(p.check(v))
            except UserInputError as e:
                raise GridError(f"--grid {name}={text}: value {v!r} is refused: {e}") from None
        axes[name] = list(dict.fromkeys(checked))
    if not axes:
        raise GridError(
            "no --grid given: name at least one parameter and its values, like --grid fast=5:50:5."
        )
    return Space(axes)


@dataclass
class DeclaredSpace:
    """A random/optuna search space from the strategy's declared Params (no ``--grid``):
    every parameter with choices, a bool, or both ``min`` and ``max``."""

    params: dict[str, Any]

    @property
    def axes(self) -> dict[str, list[Any]]:
        """Per parameter its choices, or ``[min, max]`` (for the manifest and the tables)."""
        return {
            n: list(_choices(p)) if _choices(p) else [p.min, p.max] for n, p in self.params.items()
        }

    def draw(self, rng: Any) -> dict[str, Any]:
        out = {}
        for name, p in self.params.items():
            options = _choices(p)
            if options:
                out[name] = options[int(rng.integers(len(options)))]
            elif p.type is int:
                out[name] = int(rng.integers(math.ceil(p.min), math.floor(p.max) + 1))
            else:
                out[name] = float(rng.uniform(p.min, p.max))
        return out

    def suggest(self, trial: Any) -> dict[str, Any]:
        out = {}
        for name, p in self.params.items():
            options = _choices(p)
            if options:
                out[name] = options[
                    trial.suggest_categorical(f"{name}#", list(range(len(options))))
                ]
            elif p.type is int:
                out[name] = trial.suggest_int(name, math.ceil(p.min), math.floor(p.max))
            else:
                out[name] = trial.suggest_float(name, float(p.min), float(p.max))
        return out

    def candidates_for_warmup(self) -> list[dict[str, Any]]:
        """Corners where warm-ups are largest: each numeric parameter at its max, the rest at
        their defaults, and every numeric parameter at its max at once."""
        base = {n: p.default for n, p in self.params.items()}
        numeric = [n for n, p in self.params.items() if not _choices(p)]
        out = [
            dict(base),
            {**base, **{n: self.params[n].type(self.params[n].max) for n in numeric}},
        ]
        for n in numeric:
            out.append({**base, n: self.params[n].type(self.params[n].max)})
        return out


def _choices(p: Any) -> tuple[Any, ...]:
    if p.choices is not None:
        return tuple(p.choices)
    if p.type is bool:
        return (False, True)
    return ()


def declared_space(strategy_cls: Any) -> DeclaredSpace:
    """The declared Params a search can draw from; GridError when none is bounded."""
    spec = strategy_cls.param_spec()
    usable = {
        n: p
        for n, p in spec.items()
        if _choices(p) or (p.min is not None and p.max is not None and p.type in (int, float))
    }
    if not usable:
        raise GridError(
            f"strategy {strategy_cls.label()!r} declares no parameter with both bounds or "
            "choices to search; give the values with --grid, like --grid fast=5:50:5."
        )
    return DeclaredSpace(usable)


def check_trials(trials: int | None, search: str) -> int:
    if trials is None:
        raise GridError(f"--search {search} needs --trials N (the number of combinations to try).")
    if trials < 1:
        raise GridError(f"--trials {trials} must be at least 1, like --trials 100.")
    return int(trials)


def random_trials(space: Space, trials: int, seed: int) -> list[dict[str, Any]]:
    """``trials`` combinations drawn uniformly from the grid's values with ``seed``.

    Without replacement while the grid holds enough combinations; the same seed gives the
    same trials in the same order.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    total = space.size
    names = list(space.axes)
    if trials >= total:
        picks = rng.permutation(total)
    else:
        picks = rng.choice(total, size=trials, replace=False)
    sizes = [len(space.axes[n]) for n in names]
    out = []
    for flat in picks:
        rest = int(flat)
        combo: dict[str, Any] = {}
        for name, size in zip(reversed(names), reversed(sizes), strict=True):
            rest, idx = divmod(rest, size)
            combo[name] = space.axes[name][idx]
        out.append({n: combo[n] for n in names})
    return out
