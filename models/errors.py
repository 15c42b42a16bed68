"""Errors of the model layer; each names the model, file or value and the fix.

    UserInputError (gogo2.errors)
    └── ModelError                 anything the model layer refuses
        ├── ModelOutputError       predict() returned something that is not (sell, hold, buy) probabilities
        ├── FeatureError           features with NaN, or of the wrong shape for a model
        ├── CheckpointError        a missing, corrupt or mismatched checkpoint
        ├── ModelMemoryError       a model does not fit its own limit or the total
        ├── DuplicateModelError    a name that is already registered
        └── WeightError            an orchestrator weight that is not a positive number
    UnknownNameError (gogo2.errors) covers unknown model names, with a close-match hint.

Every refusal leaves the registry and the orchestrator as they were.
"""

from __future__ import annotations

from gogo2.errors import UserInputError


class ModelError(UserInputError):
    """The model layer refused an input; nothing was changed."""


class ModelOutputError(ModelError):
    """A model's predict() output is not usable."""


class FeatureError(ModelError):
    """Features handed to the models are unusable (NaN, wrong shape)."""


class CheckpointError(ModelError):
    """A checkpoint is missing, damaged, or made for other features or another window size."""


class ModelMemoryError(ModelError):
    """A model does not fit within its own memory limit or the total limit."""


class DuplicateModelError(ModelError):
    """A model name is registered already."""


class WeightError(ModelError):
    """An orchestrator weight that is not a positive, finite number."""
