"""Typed configuration, read from ``config.yaml``.

Order of precedence, lowest first:

1. the defaults written in the models below;
2. the project's ``config.yaml`` (next to ``cli.py``; never one in the working directory);
3. an environment overlay: ``config.<env>.yaml`` when ``GOGO2_ENV=<env>`` is set;
4. the file given with ``--config PATH`` (deep-merged, so it may hold only what differs);
5. environment variables ``GOGO2__SECTION__KEY=value`` (for example
   ``GOGO2__BACKTEST__CASH=5000``); values are parsed as YAML scalars.

Paths (every ``Path`` setting: ``data.dir``, ``backtest.report_dir``, ``models.dir``, ...) never depend on the
working directory: ``~`` is expanded, and a relative path is taken from the directory of the
file that sets it (``--config other/x.yaml`` with ``dir: data`` means ``other/data``). Defaults
and ``GOGO2__`` environment variables are taken from the project directory. The loaded
settings hold absolute paths only, so every command uses one catalog wherever it runs from.

Secrets (exchange API keys) are never read from files: they come only from the
environment variables ``GOGO2_API_KEY``, ``GOGO2_API_SECRET`` and ``GOGO2_API_PASSWORD``.

Unknown keys and bad values fail at start with the key, the value and a
close-match hint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gogo2.errors import ConfigError, UserInputError, did_you_mean
from gogo2.timeframes import normalize

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "GOGO2__"
SECRET_KEYS = ("api_key", "api_secret", "api_password", "secret", "password", "apikey")


def absolute_path(raw: str | Path, base: Path) -> Path:
    """``raw`` with ``~`` expanded, taken from ``base`` when relative, ``..`` folded away."""
    p = Path(raw).expanduser()
    if not p.is_absolute():
        p = base / p
    return Path(os.path.normpath(p))


def _not_empty(v: Any) -> Any:
    if isinstance(v, str) and not v.strip():
        raise ValueError("is empty; give a directory, for example data")
    return v


def _anchor(v: Path, info: ValidationInfo) -> Path:
    """A relative path left at this point (a default) is taken from the project directory."""
    root = (info.context or {}).get("root", PROJECT_ROOT)
    return absolute_path(v, Path(root))


ConfigPath = Annotated[Path, BeforeValidator(_not_empty), AfterValidator(_anchor)]
"""A directory setting; always absolute once loaded (see the module docstring)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DataConfig(_Section):
    """Where candles live and how they are cached."""

    dir: ConfigPath = Field(
        Path("data"),
        description="Catalog root; a relative path is taken from the directory of the file that sets it.",
    )
    exchange: str = Field(
        "synthetic",
        description="Exchange whose candles commands read by default; 'synthetic' is the embedded sample.",
    )
    recent_cache_ttl: float = Field(
        3600.0, gt=0, description="Seconds a recent-candle cache entry lives."
    )
    sample_seed: int = Field(20230101, ge=0, description="Seed of the embedded synthetic sample.")
    max_jump: float | None = Field(
        None,
        gt=0,
        description=(
            "A close-to-close move larger than this fraction counts as an extreme jump on "
            "validation; unset: the per-timeframe default of datasets.schema.default_max_jump."
        ),
    )

    @property
    def path(self) -> Path:
        """The catalog root (absolute)."""
        return self.dir


class BacktestConfig(_Section):
    """Defaults of ``cli.py backtest``; every one can be overridden by a flag."""

    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
    timeframe: str = "1h"
    strategy: str = "sma_cross"
    cash: float = Field(10_000.0, gt=0)
    fee_taker: float = Field(0.001, ge=0, lt=0.1, description="Taker fee rate (0.001 = 0.1 %).")
    fee_maker: float = Field(0.001, ge=0, lt=0.1, description="Maker fee rate.")
    slippage_bps: float = Field(
        2.0, ge=0, lt=1000, description="Adverse slippage on taker fills, basis points."
    )
    size_type: Literal["percent", "cash", "units"] = "percent"
    size: float = Field(
        0.95,
        gt=0,
        description="Order size: fraction of equity, cash amount or units, per size_type.",
    )
    allow_short: bool = True
    order_ttl: int = Field(
        0,
        ge=0,
        description="Bars of its symbol a limit or stop entry rests unfilled before it expires "
        "(0 = until filled, replaced or canceled).",
    )
    leverage: float = Field(1.0, ge=1, le=125)
    min_notional: float = Field(
        10.0, ge=0, description="Orders below this notional (quote currency) are skipped."
    )
    lot_size: float = Field(
        1e-5, ge=0, description="Order quantities are rounded down to a multiple of this."
    )
    report_dir: ConfigPath = Field(
        Path("reports"),
        description="Where backtest reports go; relative paths as for data.dir.",
    )

    @field_validator("timeframe")
    @classmethod
    def _tf(cls, v: str) -> str:
        try:
            return normalize(v)
        except UserInputError as e:
            raise ValueError(str(e).removeprefix(f"bad timeframe {v!r}: ")) from None

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbol_text(cls, v: Any) -> Any:
        """``symbols: BTC/USDT`` or ``symbols: BTC/USDT,ETH/USDT`` (a string) is a list too."""
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("names no symbol; list at least one, for example [BTC/USDT]")
        out: list[str] = []
        for s in v:
            sym = s.strip().upper()
            base, sep, quote = sym.partition("/")
            if not sep or not base or not quote or "/" in quote:
                raise ValueError(f"symbol {s!r} must be written BASE/QUOTE, for example BTC/USDT")
            if sym not in out:
                out.append(sym)
        return tuple(out)


class ExchangeConfig(_Section):
    """The live/paper exchange. Keys come only from the environment."""

    name: str = "binance"
    sandbox: bool = False
    rate_limit_ms: int | None = Field(
        None, ge=0, description="Override ccxt's rateLimit (ms between requests)."
    )
    timeout_ms: int = Field(10_000, gt=0)
    retries: int = Field(5, ge=0, le=20)
    backoff_s: float = Field(1.0, ge=0)

    @property
    def api_key(self) -> SecretStr | None:
        v = os.environ.get("GOGO2_API_KEY")
        return SecretStr(v) if v else None

    @property
    def api_secret(self) -> SecretStr | None:
        v = os.environ.get("GOGO2_API_SECRET")
        return SecretStr(v) if v else None

    @property
    def api_password(self) -> SecretStr | None:
        v = os.environ.get("GOGO2_API_PASSWORD")
        return SecretStr(v) if v else None


class LiveConfig(_Section):
    """``cli.py live``: reconciliation, retries and the kill switch (README, "Live trading")."""

    reconcile_every: int = Field(
        60, ge=1, description="Reconcile the journal with the exchange every N bars (and at start)."
    )
    unknown_orders: Literal["cancel", "adopt"] = Field(
        "cancel",
        description="An open order on the exchange that this run did not place: cancel or adopt it.",
    )
    retry_cap_s: float = Field(30.0, gt=0, description="Longest single backoff wait, seconds.")
    retry_max_wait_s: float = Field(
        120.0, gt=0, description="Most seconds one request may spend waiting between retries."
    )
    max_drawdown: float | None = Field(
        0.2, gt=0, lt=1, description="Kill switch: equity this fraction below its peak."
    )
    max_daily_loss: float | None = Field(
        0.05, gt=0, lt=1, description="Kill switch: equity this fraction below the UTC day's first."
    )
    max_position_notional: float | None = Field(
        None,
        gt=0,
        description="Kill switch: a position worth more than this (quote) in one symbol.",
    )
    max_orders_per_minute: int | None = Field(
        10, ge=1, description="Kill switch: more orders than this within 60 seconds."
    )
    stop_limit_offset: float = Field(
        0.002,
        ge=0,
        le=0.1,
        allow_inf_nan=False,
        description="A stop entry's limit price above its stop, as a fraction of the stop.",
    )
    stop_on_exchange: bool = Field(
        False,
        description="Back an entry's stop-loss with a stop-limit sell resting on the exchange.",
    )


class PerformanceConfig(_Section):
    """Memory budget and device of the model layer (``models/``)."""

    total_memory_gb: float = Field(
        8.0,
        gt=0,
        allow_inf_nan=False,
        description="Memory all loaded models may take together, GiB.",
    )
    use_gpu: bool = Field(
        True, description="Run models on CUDA when it is available; CPU otherwise (logged once)."
    )
    mixed_precision: bool = Field(
        True, description="float16 autocast for inference where the device supports it (CUDA)."
    )


class ModelSettings(_Section):
    """Settings of one named model: ``models.<name>``."""

    max_memory_mb: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="This model's memory limit, MB; default models.default_max_memory_mb.",
    )
    window_size: int | None = Field(
        None, gt=0, description="Bars per window the model must have been trained on."
    )
    state_size: int | None = Field(None, gt=0, description="State length of an RL agent.")
    features: tuple[str, ...] | None = Field(
        None, description="Feature names, in order, the model must have been trained on."
    )
    weight: float | None = Field(
        None,
        gt=0,
        description="Orchestrator weight when the model is registered from a checkpoint.",
    )
    # hyper-parameters of the bundled torch models (None: the model's own default)
    hidden: int | None = Field(None, gt=0, description="Hidden units / channels / model width.")
    layers: int | None = Field(None, gt=0, description="Stacked layers (conv, LSTM, encoder).")
    heads: int | None = Field(None, gt=0, description="Attention heads (transformer).")
    kernel: int | None = Field(None, gt=0, description="Convolution kernel length, bars (cnn).")
    dropout: float | None = Field(None, ge=0, lt=1, description="Dropout probability.")
    epochs: int | None = Field(
        None, gt=0, description="Most training epochs (early stopping may end sooner)."
    )
    batch_size: int | None = Field(None, gt=0, description="Training batch size.")
    learning_rate: float | None = Field(None, gt=0, description="Optimizer learning rate.")
    patience: int | None = Field(
        None, gt=0, description="Epochs without a better validation loss before stopping."
    )
    gamma: float | None = Field(None, ge=0, lt=1, description="DQN discount factor.")
    epsilon_start: float | None = Field(
        None, ge=0, le=1, description="DQN exploration at the start."
    )
    epsilon_end: float | None = Field(None, ge=0, le=1, description="DQN exploration at the end.")
    buffer_size: int | None = Field(None, gt=0, description="DQN replay buffer capacity.")
    target_update: int | None = Field(
        None, gt=0, description="DQN steps between target-network copies."
    )
    steps: int | None = Field(None, gt=0, description="DQN environment steps.")
    episode_length: int | None = Field(None, gt=1, description="DQN episode length, bars.")
    eval_every: int | None = Field(None, gt=0, description="DQN steps between validation runs.")
    temperature: float | None = Field(
        None, gt=0, description="DQN softmax temperature on Q-values."
    )


class ModelsConfig(_Section):
    """The model registry. Any other key is a model name holding its ``ModelSettings``."""

    dir: ConfigPath = Field(
        Path("checkpoints"),
        description="Checkpoint directory; relative paths as for data.dir.",
    )
    default_max_memory_mb: float = Field(
        2048.0,
        gt=0,
        allow_inf_nan=False,
        description="Limit of a model without models.<name>.max_memory_mb, MB.",
    )
    when_full: Literal["refuse", "offload_lru"] = Field(
        "refuse",
        description="refuse a model that does not fit, or move the least-recently-used idle one to disk.",
    )
    per_model: dict[str, ModelSettings] = Field(
        default_factory=dict, description="models.<name> sections, keyed by lower-case name."
    )

    @model_validator(mode="before")
    @classmethod
    def _collect_named(cls, data: Any) -> Any:
        """Every key that is not a setting above is a model's own section."""
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        named: dict[str, Any] = dict(data.get("per_model") or {})
        fixed = set(cls.model_fields)
        for k, v in data.items():
            if k in fixed:
                out[k] = v
            elif isinstance(v, dict) or v is None:
                named[str(k).lower()] = v or {}
            else:
                hint = did_you_mean(str(k), sorted(fixed - {"per_model"}))
                raise ValueError(
                    f"unknown key models.{k} (value {v!r}).{hint} Settings here: dir, "
                    "default_max_memory_mb, when_full; any other key is a model name holding a "
                    "mapping, for example models.cnn.max_memory_mb: 2000"
                )
        out["per_model"] = named
        return out

    def limit_mb(self, name: str) -> float:
        """The memory limit of model ``name`` (its own, else the default), MB."""
        own = self.per_model.get(name.lower())
        if own is not None and own.max_memory_mb is not None:
            return float(own.max_memory_mb)
        return float(self.default_max_memory_mb)

    def settings_for(self, name: str) -> ModelSettings:
        """``models.<name>`` (case-insensitive), or empty settings."""
        return self.per_model.get(name.lower()) or ModelSettings()


class TrainConfig(_Section):
    """``python cli.py train``: labels, walk-forward splits and the default seed."""

    timeframe: str | None = Field(
        None, description="Timeframe to train on; default backtest.timeframe."
    )
    horizon: int = Field(4, gt=0, le=10_000, description="Bars ahead the label looks.")
    threshold: float = Field(
        0.004,
        gt=0,
        lt=1,
        description="Log return over the horizon above which the label is buy (below minus it: sell).",
    )
    folds: int = Field(2, ge=1, le=20, description="Walk-forward folds.")
    embargo: int = Field(
        24, ge=0, description="Bars dropped after the purge gap, besides the horizon."
    )
    min_train: int = Field(
        500, ge=10, description="Fewest labelled training windows a fold must have."
    )
    seed: int = Field(0, ge=0, description="Seed of the weights, shuffles and exploration.")


class OrchestratorConfig(_Section):
    """How the orchestrator combines the models (see ``models/weights.py`` for the rule)."""

    confidence_threshold: float = Field(
        0.5, ge=0, le=1, description="Below this combined probability the decision is hold."
    )
    decision_frequency: float = Field(
        60.0, gt=0, description="Seconds between decisions of the live runner."
    )
    horizon: int = Field(
        1, ge=1, description="Bars after which a prediction is scored against the realised move."
    )
    hold_band: float = Field(
        0.001,
        ge=0,
        lt=1,
        description="A log move within +-hold_band over the horizon counts as hold.",
    )
    learning_rate: float = Field(
        0.5, gt=0, le=10, description="Hedge step: weight *= exp(-learning_rate * log-loss)."
    )
    weight_floor: float = Field(
        0.05, ge=0, lt=1, description="Share of the registered weights mixed back each step."
    )
    workers: int = Field(4, ge=1, le=64, description="Threads evaluating the models at once.")


class Settings(_Section):
    data: DataConfig = DataConfig()
    backtest: BacktestConfig = BacktestConfig()
    exchange: ExchangeConfig = ExchangeConfig()
    live: LiveConfig = LiveConfig()
    performance: PerformanceConfig = PerformanceConfig()
    models: ModelsConfig = ModelsConfig()
    orchestrator: OrchestratorConfig = OrchestratorConfig()
    train: TrainConfig = TrainConfig()
    sources: tuple[str, ...] = Field(
        (), exclude=True, description="Files the settings were read from."
    )

    def ensure_dirs(self) -> None:
        """Create the data directory on first use."""
        self.data.path.mkdir(parents=True, exist_ok=True)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(
            f"cannot read config file {path}: {e.strerror}. Check the path given to --config."
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(_yaml_error(path, text, e)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections (data:, backtest:, exchange:), not {type(data).__name__}."
        )
    _refuse_secrets(data, str(path))
    return data


def _yaml_error(path: Path, text: str, err: yaml.YAMLError) -> str:
    """``config file F is not valid YAML at line L, column C: problem ...``, naming the file."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    cmark = getattr(err, "context_mark", None)
    if context and cmark is not None and cmark is not mark:
        context += f" started at line {cmark.line + 1}, column {cmark.column + 1}"
    what = f"{problem} ({context})" if context else problem
    if mark is None:
        return f"config file {path} is not valid YAML: {what}. Fix the syntax of the file."
    lines = text.splitlines()
    line = lines[mark.line].rstrip() if mark.line < len(lines) else ""
    shown = f" The line reads {line!r}." if line.strip() else ""
    return (
        f"config file {path} is not valid YAML at line {mark.line + 1}, column {mark.column + 1}: "
        f"{what}.{shown} Fix the syntax there."
    )


def _path_keys() -> list[tuple[str, str]]:
    """``(section, key)`` of every path setting, e.g. ``("data", "dir")``."""
    out = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key, f in model.model_fields.items():
            if f.annotation is Path or Path in get_args(f.annotation):
                out.append((section, key))
    return out


def _anchor_layer(layer: dict[str, Any], base: Path) -> dict[str, Any]:
    """A copy of ``layer`` whose relative path settings are taken from ``base``."""
    out = dict(layer)
    for section, key in _path_keys():
        node = out.get(section)
        if isinstance(node, dict) and isinstance(node.get(key), str | Path):
            raw = node[key]
            if str(raw).strip():
                out[section] = {**node, key: str(absolute_path(raw, base))}
    return out


def _refuse_secrets(data: dict[str, Any], where: str, prefix: str = "") -> None:
    for k, v in data.items():
        if str(k).lower() in SECRET_KEYS:
            raise ConfigError(
                f"{where}: key {prefix}{k} holds a secret. Secrets are read only from the environment: "
                "remove it from the file and set GOGO2_API_KEY / GOGO2_API_SECRET / GOGO2_API_PASSWORD."
            )
        if isinstance(v, dict):
            _refuse_secrets(v, where, f"{prefix}{k}.")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = value
    return out


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    m: Any = model
    for part in loc[:-1]:
        if get_origin(m) is dict:  # models.per_model.<name>: the value type holds the keys
            m = get_args(m)[1]
            continue
        field = (
            m.model_fields.get(str(part))
            if isinstance(m, type) and issubclass(m, BaseModel)
            else None
        )
        if field is None:
            return []
        m = field.annotation
    if isinstance(m, type) and issubclass(m, BaseModel):
        return [k for k in m.model_fields if k != "sources"]
    return []


def _format_errors(err: ValidationError, sources: list[str]) -> str:
    where = " + ".join(sources) if sources else "defaults"
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc if p != "per_model")  # models.<name>.<key>
        if e["type"] == "extra_forbidden":
            hint = did_you_mean(str(loc[-1]), _known_keys(Settings, loc))
            known = ", ".join(_known_keys(Settings, loc))
            lines.append(
                f"unknown key {key} (value {e['input']!r}).{hint} Known keys here: {known}."
            )
        else:
            msg = e["msg"].removeprefix("Value error, ").rstrip(".")
            if msg.startswith("unknown key "):
                lines.append(f"{msg}.")
            else:
                lines.append(f"{key} = {e['input']!r}: {msg}.")
    return (
        f"invalid configuration ({where}): "
        + " ".join(lines)
        + " Fix the value in the file or the GOGO2__ variable."
    )


def find_default_config(root: Path | None = None) -> Path | None:
    """The project's ``config.yaml`` (in ``root``, default the project directory), if present."""
    candidate = Path(root or PROJECT_ROOT) / "config.yaml"
    return candidate if candidate.is_file() else None


def load_settings(
    path: str | Path | None = None,
    environ: dict[str, str] | None = None,
    *,
    root: str | Path | None = None,
) -> Settings:
    """Read the configuration: defaults < config.yaml < config.<GOGO2_ENV>.yaml < ``path`` < env vars.

    ``root`` is the project directory holding ``config.yaml`` (default: the one of this
    checkout, never the working directory). ``path`` (``--config``) is taken from the
    working directory like any command-line path. Relative path settings are resolved
    against the directory of the file that sets them; defaults and environment variables
    against ``root``.
    """
    environ = dict(os.environ if environ is None else environ)
    root = Path(absolute_path(root, Path.cwd())) if root is not None else PROJECT_ROOT
    merged: dict[str, Any] = {}
    sources: list[str] = []
    base = find_default_config(root)
    if base is not None:
        merged = _merge(merged, _anchor_layer(_read_yaml(base), base.parent))
        sources.append(base.name)
        env_name = environ.get("GOGO2_ENV")
        if env_name:
            overlay = base.with_name(f"config.{env_name}.yaml")
            if not overlay.is_file():
                raise ConfigError(
                    f"GOGO2_ENV={env_name!r} but {overlay.name} does not exist next to {base.name}. Create it or unset GOGO2_ENV."
                )
            merged = _merge(merged, _anchor_layer(_read_yaml(overlay), overlay.parent))
            sources.append(overlay.name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"--config {path}: no such file. Give the path of a YAML file.")
        merged = _merge(merged, _anchor_layer(_read_yaml(p), p.resolve().parent))
        sources.append(p.name)
    env = _env_overrides(environ)
    if env:
        merged = _merge(merged, _anchor_layer(env, root))
        sources.append("environment")
    for section, field in Settings.model_fields.items():
        # sections left out are validated too, so their default paths get anchored to root
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            if merged.get(section) is None:
                merged[section] = {}
    try:
        return Settings.model_validate(
            {**merged, "sources": tuple(sources)}, context={"root": root}
        )
    except ValidationError as e:
        raise ConfigError(_format_errors(e, sources)) from None
