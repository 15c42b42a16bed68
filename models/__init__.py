"""The model layer: model interfaces, the memory-managed registry and the orchestrator.

    from models import ModelInterface, get_model_registry, TradingOrchestrator

The names below are imported on first use (torch with them); nothing in ``datasets``,
``strategies`` or ``engine`` imports this package at module level, and ``cli.py --help``
does not load torch.
"""

import importlib
from typing import Any

_EXPORTS = {
    "CheckpointError": "models.errors",
    "DuplicateModelError": "models.errors",
    "FeatureError": "models.errors",
    "ModelError": "models.errors",
    "ModelMemoryError": "models.errors",
    "ModelOutputError": "models.errors",
    "WeightError": "models.errors",
    "ACTIONS": "models.interfaces",
    "CNNModelInterface": "models.interfaces",
    "ModelInterface": "models.interfaces",
    "RLAgentInterface": "models.interfaces",
    "as_tensor": "models.interfaces",
    "BatchDecision": "models.orchestrator",
    "Decision": "models.orchestrator",
    "TradingOrchestrator": "models.orchestrator",
    "ModelRegistry": "models.registry",
    "configure_model_registry": "models.registry",
    "get_model_registry": "models.registry",
    "reset_model_registry": "models.registry",
    "Rule": "models.weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Names are imported on first use, so ``models.cli`` (``cli.py models --help``) loads no torch."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
