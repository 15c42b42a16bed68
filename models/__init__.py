"""The model layer: model interfaces, the memory-managed registry and the orchestrator.

    from models import ModelInterface, get_model_registry, TradingOrchestrator

Importing this package imports torch; nothing in ``datasets``, ``strategies`` or
``engine`` imports it at module level, and ``cli.py --help`` does not load it.
"""

from models.errors import (
    CheckpointError,
    DuplicateModelError,
    FeatureError,
    ModelError,
    ModelMemoryError,
    ModelOutputError,
    WeightError,
)
from models.interfaces import (
    ACTIONS,
    CNNModelInterface,
    ModelInterface,
    RLAgentInterface,
    as_tensor,
)
from models.orchestrator import BatchDecision, Decision, TradingOrchestrator
from models.registry import (
    ModelRegistry,
    configure_model_registry,
    get_model_registry,
    reset_model_registry,
)
from models.weights import Rule

__all__ = [
    "ACTIONS",
    "BatchDecision",
    "CNNModelInterface",
    "CheckpointError",
    "Decision",
    "DuplicateModelError",
    "FeatureError",
    "ModelError",
    "ModelInterface",
    "ModelMemoryError",
    "ModelOutputError",
    "ModelRegistry",
    "RLAgentInterface",
    "Rule",
    "TradingOrchestrator",
    "WeightError",
    "as_tensor",
    "configure_model_registry",
    "get_model_registry",
    "reset_model_registry",
]
