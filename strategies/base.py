"""Strategy base class: declared parameters, timeframes, warm-up and vectorized signals.

A strategy turns multi-timeframe candles into order intents for every base bar at
once. The same :meth:`Strategy.signals` call serves a backtest (the whole history)
and live trading (a trailing window, see :func:`strategies.window.trailing_window`): every value at base
row ``t`` may use only candles closed by the close of bar ``t``.

    class MyStrategy(Strategy):
        name = "my_strategy"
        base_timeframe = "5m"
        informative = ("1h",)
        fast = Param(10, min=2, doc="fast SMA length, base bars")

        def lookback(self) -> dict[str, int]:
            return {self.timeframe: self.fast + 1}

        def generate(self, data: MultiBars) -> Signals:
            ...

Coarser timeframes reach the base index only through :meth:`Strategy.asof`, which
uses closed bars: a 1h candle opened at 10:00 is visible from the base bar that
closes at 11:00 on.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NoReturn

import numpy as np

from datasets.align import asof_index, take_asof
from datasets.bars import Bars, MultiBars
from engine.signals import Signals
from gogo2.errors import UnknownNameError, UserInputError
from gogo2.timeframes import normalize, timeframe_ms
from strategies.window import trailing_window

__all__ = [
    "Param",
    "Strategy",
    "crossed_above",
    "crossed_below",
    "ffill",
    "parse_params",
    "trailing_window",
]

_OPTIONAL_FIELDS = ("order_type", "price", "size", "sl", "tp", "trail")
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}
_KINDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


class Param:
    """A declared strategy parameter with a default, a type and bounds.

    The type is the default's type (bool, int, float or str). Floats accept ints;
    ints refuse floats with a fractional part.

    Parameters
    ----------
    default : bool | int | float | str
        Value used when the user gives none.
    min, max : float, optional
        Inclusive bounds for numeric parameters.
    choices : sequence, optional
        The only values allowed.
    doc : str
        One line shown in help and error messages.
    """

    def __init__(
        self,
        default: bool | int | float | str,
        *,
        min: float | None = None,
        max: float | None = None,
        choices: Sequence[Any] | None = None,
        doc: str = "",
    ) -> None:
        if type(default) not in _KINDS:
            raise TypeError(f"Param default must be bool, int, float or str, got {default!r}")
        self.default = default
        self.type: type = type(default)
        self.min = min
        self.max = max
        self.choices = tuple(choices) if choices is not None else None
        self.doc = doc
        self.name = "default"
        self.owner = ""
        try:
            self.check(default)
        except UserInputError as e:  # a bad default is a bug in the strategy, not user input
            raise ValueError(f"Param default {default!r} breaks its own rules: {e}") from None

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner = getattr(owner, "name", "") or owner.__name__

    def __get__(self, obj: Strategy | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._params[self.name]

    def __set__(self, obj: Strategy, value: Any) -> None:
        raise AttributeError(
            f"parameter {self.name!r} is read-only; create a new strategy to change it"
        )

    def describe(self) -> str:
        """``fast: int = 20 (>= 2) - fast SMA length`` for help texts."""
        bounds = []
        if self.min is not None:
            bounds.append(f">= {self.min}")
        if self.max is not None:
            bounds.append(f"<= {self.max}")
        if self.choices is not None:
            bounds.append("one of " + ", ".join(map(str, self.choices)))
        extra = f" ({', '.join(bounds)})" if bounds else ""
        doc = f" - {self.doc}" if self.doc else ""
        return f"{self.name}: {self.type.__name__} = {self.default!r}{extra}{doc}"

    def _where(self) -> str:
        return f"parameter {self.name!r} of strategy {self.owner!r}"

    def check(self, value: Any) -> Any:
        """Return ``value`` converted to the parameter's type, or raise UserInputError."""
        kind = _KINDS[self.type]
        if self.type is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise UserInputError(
                    f"{self._where()} must be true or false, got {value!r}. "
                    f"Write {self.name}=true or {self.name}=false."
                )
            value = bool(value)
        elif self.type is int:
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
            if not ok and isinstance(value, (float, np.floating)) and float(value).is_integer():
                ok = True
            if not ok:
                raise UserInputError(
                    f"{self._where()} must be {kind}, got {value!r}. "
                    f"Write a whole number, for example {self.name}={self.default}."
                )
            value = int(value)
        elif self.type is float:
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, (bool, np.bool_)
            )
            if not ok or not math.isfinite(float(value)):
                raise UserInputError(
                    f"{self._where()} must be a finite number, got {value!r}. "
                    f"Write it like {self.name}={self.default}."
                )
            value = float(value)
        elif not isinstance(value, str):
            raise UserInputError(f"{self._where()} must be {kind}, got {value!r}.")
        if self.choices is not None and value not in self.choices:
            hint = ""
            if isinstance(value, str):
                from gogo2.errors import did_you_mean

                hint = did_you_mean(value, [str(c) for c in self.choices])
            raise UserInputError(
                f"{self._where()} must be one of {', '.join(map(repr, self.choices))}, "
                f"got {value!r}.{hint}"
            )
        if self.min is not None and value < self.min:
            raise UserInputError(
                f"{self._where()} must be >= {self.min}, got {value!r}. Use a larger value."
            )
        if self.max is not None and value > self.max:
            raise UserInputError(
                f"{self._where()} must be <= {self.max}, got {value!r}. Use a smaller value."
            )
        return value

    def parse(self, text: str) -> Any:
        """Convert the text of ``--param name=text`` to the parameter's type and check it."""
        raw = text.strip()
        value: Any
        if self.type is bool:
            low = raw.lower()
            if low in _TRUE:
                value = True
            elif low in _FALSE:
                value = False
            else:
                raise UserInputError(
                    f"{self._where()} must be true or false, got {text!r}. "
                    f"Write {self.name}=true or {self.name}=false."
                )
        elif self.type is int:
            try:
                value = int(raw)
            except ValueError:
                try:
                    as_float = float(raw)
                except ValueError:
                    as_float = math.nan
                if not as_float.is_integer():
                    raise UserInputError(
                        f"{self._where()} must be an integer, got {text!r}. "
                        f"Write a whole number, for example {self.name}={self.default}."
                    ) from None
                value = int(as_float)
        elif self.type is float:
            try:
                value = float(raw)
            except ValueError:
                raise UserInputError(
                    f"{self._where()} must be a number, got {text!r}. "
                    f"Write it like {self.name}={self.default}."
                ) from None
        else:
            value = raw
        return self.check(value)


class Strategy(ABC):
    """Base of every strategy: parameters, timeframes, warm-up and signal generation.

    Subclasses set the class attributes, declare :class:`Param` attributes, and
    implement :meth:`generate` (the vectorized signal computation) and
    :meth:`lookback` (history each timeframe needs). Cross-parameter rules go in
    :meth:`validate`.

    Parameters
    ----------
    timeframe : str, optional
        Base timeframe the strategy decides on; ``None`` means :attr:`base_timeframe`.
        It must be finer than, and divide, every informative timeframe.
    **params
        Parameter values; unknown names raise UnknownNameError, bad values UserInputError.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"sma_cross"``.
    base_timeframe : str
        Default base timeframe.
    informative : tuple of str
        Coarser timeframes the strategy reads besides the base.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    base_timeframe: ClassVar[str] = "1m"
    informative: ClassVar[tuple[str, ...]] = ()

    def __init__(self, timeframe: str | None = None, **params: Any) -> None:
        spec = self.param_spec()
        values: dict[str, Any] = {}
        for key, value in params.items():
            if key not in spec:
                raise UnknownNameError(
                    f"parameter of strategy {self.label()!r}",
                    key,
                    spec,
                    "Check the spelling or leave it out.",
                )
            values[key] = spec[key].check(value)
        self._params = {k: values.get(k, p.default) for k, p in spec.items()}
        self._timeframe = self.check_timeframe(timeframe)
        self.validate()

    # ------------------------------------------------------------------ description

    @classmethod
    def param_spec(cls) -> dict[str, Param]:
        """Declared parameters by name, base classes first, in declaration order."""
        spec: dict[str, Param] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, Param):
                    spec[key] = value
        return spec

    @classmethod
    def label(cls) -> str:
        """Registry name, or the class name for unregistered strategies."""
        return cls.name or cls.__name__

    @classmethod
    def check_timeframe(cls, timeframe: str | None) -> str:
        """Return the base timeframe to use (normalized), or raise UserInputError."""
        tf = normalize(timeframe if timeframe is not None else cls.base_timeframe)
        base_ms = timeframe_ms(tf)
        for inf in cls.informative:
            inf_ms = timeframe_ms(inf)
            if inf_ms <= base_ms or inf_ms % base_ms:
                raise UserInputError(
                    f"timeframe {tf!r} does not suit strategy {cls.label()!r}: it reads {inf} "
                    f"candles, so the base timeframe must be finer than {inf} and divide it "
                    f"(default {cls.base_timeframe}). Pick another --timeframe."
                )
        return tf

    @property
    def params(self) -> dict[str, Any]:
        """Current parameter values (a copy)."""
        return dict(self._params)

    @property
    def timeframe(self) -> str:
        """The base timeframe this instance decides on."""
        return self._timeframe

    @property
    def timeframes(self) -> tuple[str, ...]:
        """Base timeframe first, then the informative ones."""
        return (self._timeframe, *(normalize(t) for t in self.informative))

    def validate(self) -> None:
        """Check rules across parameters; raise UserInputError naming them. Default: none."""
        return None

    def fail(self, message: str) -> NoReturn:
        """Raise a UserInputError prefixed with the strategy's name and parameters."""
        raise UserInputError(f"strategy {self.label()!r} ({self._param_text()}): {message}")

    def _param_text(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._params.items())

    def __repr__(self) -> str:
        return f"{self.label()}[{self._timeframe}]({self._param_text()})"

    # ------------------------------------------------------------------ warm-up

    @abstractmethod
    def lookback(self) -> dict[str, int]:
        """Candles of history each timeframe needs for one decision, its own bar included.

        Keys are timeframes (the base and/or informative ones), values a number of
        candles of that timeframe. A cross of an ``n``-bar SMA compares its value on the
        decision bar with the previous bar's, so it needs ``n + 1`` candles.
        """

    @property
    def warmup(self) -> int:
        """Base rows that cannot decide yet: row ``warmup`` is the first decision.

        Derived from :meth:`lookback`. A base-timeframe need of ``n`` candles makes row
        ``n - 1`` (the ``n``-th bar) the first that can decide. An informative timeframe
        ``k`` times coarser needing ``n`` candles costs up to ``n * k + k - 1`` base bars
        before its ``n``-th candle has closed (the history may start one base bar into a
        coarse candle that is then incomplete), so the first decision is row
        ``n * k + k - 2``: a 50-candle rule on 1h with a 5m base first decides at row 610.
        Indicators skip missing candles, so each candle missing inside a window needs one
        more bar. A live window of ``warmup + 1`` bars reproduces the last decision.
        """
        base_ms = timeframe_ms(self._timeframe)
        first = 0
        for tf, bars in self.lookback().items():
            ratio = timeframe_ms(tf) // base_ms
            if ratio > 1:
                first = max(first, int(bars) * ratio + ratio - 2)
            else:
                first = max(first, int(bars) - 1)
        return first

    # ------------------------------------------------------------------ signals

    def signals(self, data: MultiBars) -> Signals:
        """Order intents for every base bar of ``data``.

        Parameters
        ----------
        data : MultiBars
            Base timeframe equal to :attr:`timeframe`, plus every informative timeframe,
            all with the same symbols. The whole history (backtest) or a trailing
            window (live).

        Returns
        -------
        Signals
            Arrays of shape ``(n_base_bars, n_symbols)``. Row ``t`` is decided at the
            close of base bar ``t`` and uses only candles closed by then.
        """
        self.check_data(data)
        out = self.generate(data)
        return self._check_signals(out, data.bars)

    @abstractmethod
    def generate(self, data: MultiBars) -> Signals:
        """Compute the signals (vectorized). Called by :meth:`signals` on checked data."""

    def check_data(self, data: MultiBars) -> None:
        """Raise UserInputError when ``data`` lacks a timeframe or mixes symbol sets."""
        if normalize(data.base) != self._timeframe:
            raise UserInputError(
                f"strategy {self.label()!r} was set up for base timeframe {self._timeframe} "
                f"but the data's base is {data.base}. Load the data with "
                f"base_timeframe={self._timeframe!r} or create the strategy with "
                f"timeframe={data.base!r}."
            )
        have = {normalize(tf): b for tf, b in data.frames.items()}
        symbols = data.bars.symbols
        for tf in self.timeframes:
            if tf not in have:
                raise UserInputError(
                    f"strategy {self.label()!r} needs {tf} candles, but the data holds only "
                    f"{', '.join(sorted(have))}. Load it with strategies.loader."
                    "load_strategy_data, which adds every informative timeframe."
                )
            if have[tf].symbols != symbols:
                raise UserInputError(
                    f"the {tf} candles hold symbols {list(have[tf].symbols)} but the base "
                    f"holds {list(symbols)}; load every timeframe for the same symbols."
                )

    def _check_signals(self, sig: Signals, bars: Bars) -> Signals:
        """Check ``generate``'s output and return it in the engine's dtypes.

        A wrong shape is a bug of the strategy (ValueError); a bad value (NaN exit, an
        out-of-range order type, ...) is refused with the rules of ``engine.checks``
        (UserInputError naming the field, bar, symbol and value), never cast.
        """
        from engine.checks import prepare_inputs

        shape = (bars.n, len(bars.symbols))
        for name in ("entries", "exits", *_OPTIONAL_FIELDS):
            arr = getattr(sig, name)
            if arr is None:
                continue
            a = np.shape(arr)
            if a != shape:
                raise ValueError(
                    f"{self.label()}.generate returned {name} of shape {a}, expected {shape}"
                )
        if sig.exits is None:
            raise ValueError(f"{self.label()}.generate returned no exits; give a bool array")
        try:
            _, out = prepare_inputs(bars, sig, with_bars=False)
        except UserInputError as e:
            raise UserInputError(f"strategy {self.label()!r} generated bad signals: {e}") from None
        return Signals(**out)

    # ------------------------------------------------------------------ helpers for subclasses

    def asof(self, data: MultiBars, timeframe: str, values: np.ndarray) -> np.ndarray:
        """Put ``values`` computed on ``timeframe`` candles onto the base index.

        Base row ``t`` gets the value of the last ``timeframe`` candle whose close is
        <= the close of base bar ``t``; NaN before the first such candle. A NaN value
        (a symbol missing that coarse candle) is passed on as NaN; :func:`ffill` the
        coarse values first to carry the previous candle's value instead.

        Parameters
        ----------
        values : np.ndarray, (n_tf_bars,) or (n_tf_bars, n_symbols)
        """
        other = self.frame(data, timeframe)
        idx = asof_index(data.bars.close_time, other.close_time)
        return take_asof(np.asarray(values), idx)

    @staticmethod
    def frame(data: MultiBars, timeframe: str) -> Bars:
        """The candles of ``timeframe`` in ``data`` (spellings like 60m/1h both match)."""
        return _frame(data, timeframe)

    @staticmethod
    def stop_array(value: float, entries: np.ndarray) -> np.ndarray | None:
        """A sl/tp/trail array: ``value`` on entry rows, NaN elsewhere; None when ``value`` is 0."""
        if value <= 0:
            return None
        return np.where(entries != 0, float(value), np.nan)


def _frame(data: MultiBars, timeframe: str) -> Bars:
    tf = normalize(timeframe)
    for key, bars in data.frames.items():
        if normalize(key) == tf:
            return bars
    raise UserInputError(
        f"the data holds no {timeframe} candles (has {', '.join(data.frames)}). "
        "Load every timeframe the strategy reads."
    )


# ---------------------------------------------------------------------- array helpers


def ffill(values: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along axis 0 (leading NaN stay NaN)."""
    a = np.asarray(values, dtype=np.float64)
    if a.shape[0] == 0:
        return a.copy()
    valid = ~np.isnan(a)
    rows = np.arange(a.shape[0]).reshape((-1,) + (1,) * (a.ndim - 1))
    idx = np.where(valid, rows, 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = np.take_along_axis(a, idx, axis=0)
    return out


def _prev_valid(d: np.ndarray) -> np.ndarray:
    """For each row, the value on the nearest earlier row where ``d`` is not NaN."""
    filled = ffill(d)
    out = np.full_like(filled, np.nan)
    out[1:] = filled[:-1]
    return out


def crossed_above(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True at rows where ``a > b`` while on the previous row with both values present
    ``a <= b``: a cross up. Rows where ``a`` or ``b`` is NaN are False; a cross across a
    gap (NaN rows) counts at the first row after it.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (d > 0) & (_prev_valid(d) <= 0)


def crossed_below(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True at rows where ``a < b`` while on the previous row with both values present
    ``a >= b``: a cross down (see :func:`crossed_above`)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (d < 0) & (_prev_valid(d) >= 0)


# ---------------------------------------------------------------------- params from the CLI


def parse_params(
    strategy_cls: type[Strategy], items: Iterable[str] | Mapping[str, Any] | None
) -> dict[str, Any]:
    """Turn ``["fast=10", "short=false"]`` into typed, checked parameter values.

    Parameters
    ----------
    strategy_cls : type[Strategy]
    items : iterable of ``"name=value"`` strings, or a mapping of names to values
        (typed values are checked as they are, strings are parsed like ``--param`` text)

    Returns
    -------
    dict
        Only the parameters given, converted to their declared types. Cross-parameter
        rules are checked when the strategy is created.

    Raises
    ------
    UnknownNameError
        For a name the strategy does not declare (with a close-match hint).
    UserInputError
        For a malformed item, a repeated name or a bad value.
    """
    spec = strategy_cls.param_spec()
    label = strategy_cls.label()
    out: dict[str, Any] = {}
    if items is None:
        return out
    if isinstance(items, Mapping):
        # typed values are checked as they are; text (e.g. from a YAML file) is parsed
        pairs = [(str(k), v, isinstance(v, str)) for k, v in items.items()]
    else:
        pairs = []
        for item in items:
            if not isinstance(item, str) or "=" not in item:
                known = ", ".join(spec) or "none"
                raise UserInputError(
                    f"--param {item!r} must be written name=value, for example "
                    f"--param {next(iter(spec), 'name')}=10 (parameters of {label}: {known})."
                )
            key, _, text = item.partition("=")
            pairs.append((key.strip(), text, True))
    for key, value, is_text in pairs:
        if key not in spec:
            raise UnknownNameError(
                f"parameter of strategy {label!r}",
                key,
                spec,
                "Check the spelling of --param.",
            )
        if key in out:
            raise UserInputError(
                f"parameter {key!r} of strategy {label!r} is given twice; keep one --param {key}=..."
            )
        out[key] = spec[key].parse(value) if is_text else spec[key].check(value)
    return out
