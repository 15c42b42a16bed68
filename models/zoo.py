"""The bundled torch models by name: ``cnn``, ``lstm``, ``transformer``, ``dqn``.

``create(name, settings, **extra)`` builds one with its defaults, updated by the
``models.<name>`` section of the config (window size, sizes, hyper-parameters).
Classes are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from gogo2.errors import UnknownNameError

MODELS: dict[str, tuple[str, str]] = {
    "cnn": ("models.cnn", "CNNModel"),
    "lstm": ("models.lstm", "LSTMModel"),
    "transformer": ("models.transformer", "TransformerModel"),
    "dqn": ("models.dqn", "DQNAgent"),
}

# models.<name> keys that are model hyper-parameters (the others are registry settings)
HYPER = (
    "window_size",
    "hidden",
    "layers",
    "heads",
    "kernel",
    "dropout",
    "epochs",
    "batch_size",
    "learning_rate",
    "patience",
    "gamma",
    "epsilon_start",
    "epsilon_end",
    "buffer_size",
    "target_update",
    "steps",
    "episode_length",
    "eval_every",
    "temperature",
)


def model_class(name: str) -> type:
    if name not in MODELS:
        raise UnknownNameError("model", name, MODELS, "Pick one of these with --model.")
    module, attr = MODELS[name]
    return getattr(importlib.import_module(module), attr)


def config_for(name: str, settings: Any) -> dict[str, Any]:
    """The hyper-parameters of ``models.<name>`` that are set."""
    own = settings.models.settings_for(name)
    return {k: getattr(own, k) for k in HYPER if getattr(own, k, None) is not None}


def create(name: str, settings: Any, **extra: Any) -> Any:
    """A fresh model ``name`` with the config's hyper-parameters (``extra`` wins)."""
    cfg = {**config_for(name, settings), **{k: v for k, v in extra.items() if v is not None}}
    return model_class(name)(cfg, name=name)
