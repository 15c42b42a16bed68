"""The model interfaces: what the registry and the orchestrator need from a model.

A model subclasses :class:`ModelInterface` and defines ``predict``; everything else
has a working default that acts on the ``torch.nn.Module`` attributes it holds:

* ``get_memory_usage()``: MB of its tensors, measured (``models/memory.py``);
* ``cleanup_memory()``: drops gradients outside training, collects garbage, empties the CUDA cache;
* ``save(path)`` / ``load(path)``: the modules' state dicts plus metadata (``models/checkpoint.py``);
* ``to(device)``: moves every module and records the device.

``predict(features)`` takes one window ``(window, n_features)`` or a batch
``(n, window, n_features)`` and returns ``(action_probs, confidence)``: probabilities over
(sell, hold, buy), shape ``(3,)`` or ``(n, 3)``, and a confidence in (0, 1]. The
orchestrator hands it a float32 ``torch.Tensor`` on the model's device; ``as_tensor``
turns numpy input into that for a model called directly.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.checkpoint import check_compatible, read_checkpoint, state_bytes, write_checkpoint
from models.errors import CheckpointError, ModelError
from models.memory import MB, free_unused, measure_bytes, modules_of

ACTIONS = ("sell", "hold", "buy")

_CLASSES: dict[str, type[ModelInterface]] = {}


def kind_of(cls: type) -> str:
    """``module:QualName`` of a model class, the key stored in its checkpoints."""
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve_kind(kind: str, path: str | Path = "?") -> type[ModelInterface]:
    """The class that wrote a checkpoint, imported by module name when not yet loaded."""
    cls = _CLASSES.get(kind)
    if cls is None and ":" in kind:
        module = kind.split(":", 1)[0]
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise CheckpointError(
                f"checkpoint {path} was written by class {kind}, whose module cannot be imported "
                f"({e}). Make the module importable (install it or add it to PYTHONPATH)."
            ) from None
        cls = _CLASSES.get(kind)
    if cls is None:
        raise CheckpointError(
            f"checkpoint {path} was written by class {kind!r}, which is not a ModelInterface "
            "subclass that can be found. Import the module that defines it before loading."
        )
    return cls


def as_tensor(features: Any, device: torch.device | str = "cpu") -> torch.Tensor:
    """``features`` (numpy or torch) as a contiguous float32 tensor on ``device``."""
    if isinstance(features, torch.Tensor):
        return features.to(device=device, dtype=torch.float32)
    arr = np.ascontiguousarray(features, dtype=np.float32)
    return torch.from_numpy(arr).to(device)


class ModelInterface(ABC):
    """A model the registry can hold and the orchestrator can ask.

    Parameters
    ----------
    name : str
        Unique name in the registry; also the key of its ``models.<name>`` config section
        (case-insensitive).
    config : dict or object, optional
        The model's own settings, stored in its checkpoints (keep it to plain values).

    Attributes a model may set so that checkpoints are checked against its input:
    ``feature_names`` (tuple of str), ``window_size`` (int), ``horizon`` (bars), and after
    training ``data_range`` and ``metrics`` (plain dicts), stored with ``save``.
    """

    def __init__(self, name: str, config: Any = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ModelError(f"model name {name!r} must be a non-empty string, e.g. 'cnn'.")
        self.name = name
        self.config = {} if config is None else config
        self.device = torch.device("cpu")
        self.feature_names: tuple[str, ...] | None = None
        self.window_size: int | None = None
        self.horizon: int = 1
        self.data_range: dict[str, Any] | None = None
        self.metrics: dict[str, Any] = {}
        self.training: dict[str, Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _CLASSES[kind_of(cls)] = cls

    # -- what every model defines -------------------------------------------------------
    @abstractmethod
    def predict(self, features: Any) -> tuple[np.ndarray, float]:
        """``(probabilities over (sell, hold, buy), confidence in (0, 1])``."""

    # -- defaults -----------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return kind_of(type(self))

    @classmethod
    def build(cls, name: str, config: Any) -> ModelInterface:
        """A fresh instance from a checkpoint's name and config; override when the
        constructor takes other arguments than ``(config)``."""
        try:
            model = cls(config)  # type: ignore[call-arg]
        except TypeError as first:
            try:
                model = cls(name, config)  # type: ignore[call-arg]
            except TypeError:
                raise CheckpointError(
                    f"cannot build {kind_of(cls)} from the config stored with model {name!r} "
                    f"({first}). Give the class a constructor taking (config) or (name, config), "
                    "or override its build(name, config) classmethod."
                ) from None
        model.name = name
        return model

    def modules(self) -> dict[str, torch.nn.Module]:
        """The torch modules this model holds, by attribute name."""
        return modules_of(self)

    def to(self, device: torch.device | str) -> ModelInterface:
        """Move every module to ``device``."""
        device = torch.device(device)
        for m in self.modules().values():
            m.to(device)
        self.device = device
        return self

    def get_memory_usage(self) -> int:
        """MB of every tensor the model holds (parameters, buffers, grads, optimizer state, caches)."""
        return math.ceil(measure_bytes(self) / MB)

    def cleanup_memory(self) -> None:
        """Free what can be freed without changing the model's predictions.

        Gradients of modules not in training mode are dropped; garbage is collected and
        the CUDA cache emptied. A model holding caches of its own overrides this, drops
        them and calls ``super().cleanup_memory()``.
        """
        for m in self.modules().values():
            if not m.training:
                for p in m.parameters():
                    p.grad = None
        free_unused(self.device)

    def checkpoint_meta(self) -> dict[str, Any]:
        """The metadata stored beside the weights."""
        state = {k: m.state_dict() for k, m in self.modules().items()}
        cfg = self.config
        if not isinstance(cfg, Mapping):
            dump = getattr(cfg, "model_dump", None)
            cfg = dump() if callable(dump) else vars(cfg) if hasattr(cfg, "__dict__") else cfg
        return {
            "name": self.name,
            "kind": self.kind,
            "config": cfg,
            "feature_names": list(self.feature_names) if self.feature_names else None,
            "window_size": self.window_size,
            "horizon": self.horizon,
            "data_range": self.data_range,
            "metrics": self.metrics,
            "training": self.training,
            "torch_version": torch.__version__,
            "bytes": state_bytes(state),
        }

    def save(self, path: str | Path) -> Path:
        """Write the modules' state dicts and the metadata to ``path`` atomically."""
        state = {k: m.state_dict() for k, m in self.modules().items()}
        if not state:
            raise ModelError(
                f"model {self.name!r} holds no torch module to save; keep its network as an "
                "attribute (self.model = ...) or override save/load."
            )
        return write_checkpoint(path, state, self.checkpoint_meta())

    def load(self, path: str | Path) -> ModelInterface:
        """Load weights saved by ``save``; the model is unchanged when they do not fit."""
        meta, state = read_checkpoint(path)
        if meta.get("kind") != self.kind:
            raise CheckpointError(
                f"checkpoint {path} was written by {meta.get('kind')}, not {self.kind}. Load it "
                "with that class (registry.register_checkpoint picks it)."
            )
        check_compatible(meta, path, self.feature_names, self.window_size)
        load_states(self, state, path)
        self.apply_meta(meta)
        return self

    def apply_meta(self, meta: Mapping[str, Any]) -> None:
        """Take over what a checkpoint says the weights are for."""
        if meta.get("feature_names") is not None:
            self.feature_names = tuple(meta["feature_names"])
        if meta.get("window_size") is not None:
            self.window_size = int(meta["window_size"])
        self.horizon = int(meta.get("horizon") or self.horizon)
        self.data_range = meta.get("data_range") or self.data_range
        self.metrics = dict(meta.get("metrics") or {})
        self.training = meta.get("training") or self.training

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device})"


def load_states(model: ModelInterface, state: Mapping[str, Any], path: str | Path) -> None:
    """Copy ``state`` into the model's modules, after checking every key and shape fits."""
    mods = model.modules()
    if set(state) != set(mods):
        raise CheckpointError(
            f"checkpoint {path} holds modules {sorted(state)}, model {model.name!r} has "
            f"{sorted(mods)}. It was saved from another model; use the matching class and config."
        )
    for attr, sd in state.items():
        own = mods[attr].state_dict()
        if set(sd) != set(own):
            diff = sorted(set(sd) ^ set(own))[:3]
            raise CheckpointError(
                f"checkpoint {path} does not fit model {model.name!r}: module {attr!r} differs in "
                f"{', '.join(diff)}. It was saved with another configuration; build the model "
                "with the config stored in the checkpoint."
            )
        for k, t in sd.items():
            if tuple(t.shape) != tuple(own[k].shape):
                raise CheckpointError(
                    f"checkpoint {path} does not fit model {model.name!r}: {attr}.{k} has shape "
                    f"{tuple(t.shape)}, the model {tuple(own[k].shape)}. It was saved with another "
                    "configuration; build the model with the config stored in the checkpoint."
                )
    for attr, sd in state.items():
        mods[attr].load_state_dict(sd)


class CNNModelInterface(ModelInterface):
    """A supervised model over feature windows (CNN, LSTM, Transformer...)."""

    @abstractmethod
    def train(self, training_data: Any) -> dict[str, float]:
        """Fit on ``training_data``; returns metrics (loss, accuracy...), kept in ``self.metrics``."""

    def predict_timeframe(self, features: Any, timeframe: str) -> tuple[np.ndarray, float]:
        """A prediction from the features of one timeframe; single-timeframe models use ``predict``."""
        return self.predict(features)


class RLAgentInterface(ModelInterface):
    """A reinforcement-learning agent: acts on a state, learns from replayed experience."""

    def act(self, state: Any) -> int:
        """The action index (0 sell, 1 hold, 2 buy) for ``state``."""
        return self.act_with_confidence(state)[0]

    def act_with_confidence(self, state: Any) -> tuple[int, float]:
        """``(action index, confidence)``; by default the most probable action of ``predict``."""
        probs, confidence = self.predict(state)
        p = np.asarray(probs, dtype=np.float64).reshape(-1, 3)[-1]
        return int(np.argmax(p)), float(confidence)

    @abstractmethod
    def remember(self, experience: Sequence[Any]) -> None:
        """Store ``(state, action, reward, next_state, done)``."""

    @abstractmethod
    def replay(self) -> float:
        """Learn from a batch of stored experience; returns the loss."""


def model_classes() -> Mapping[str, type[ModelInterface]]:
    """Every ModelInterface subclass defined so far, by ``module:QualName``."""
    return dict(_CLASSES)
