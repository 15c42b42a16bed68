"""Small models for the model-layer tests: fixed outputs, exact sizes, a real linear softmax."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models import ModelInterface
from models.memory import MB


class FixedModel(ModelInterface):
    """Always the same probabilities (a tiny module so it can be saved and offloaded)."""

    def __init__(self, name: str, probs: Any, confidence: Any = None) -> None:
        super().__init__(name, {})
        self.probs = probs
        self.confidence = confidence
        self.net = torch.nn.Linear(1, 1)

    def predict(self, features: Any) -> tuple[np.ndarray, float]:
        p = np.asarray(self.probs, dtype=np.float64)
        conf = float(np.max(p)) if self.confidence is None else self.confidence
        if features.ndim == 3 and p.ndim == 1:
            p = np.tile(p, (features.shape[0], 1))
        return p, conf


class TableModel(ModelInterface):
    """Row ``k`` of ``table`` for a window whose last bar's first feature is ``k``."""

    def __init__(self, name: str, table: np.ndarray) -> None:
        super().__init__(name, {})
        self.table = np.asarray(table, dtype=np.float64)

    def predict(self, features: Any) -> tuple[np.ndarray, float]:
        x = features.cpu().numpy()
        idx = x[..., -1, 0].astype(np.int64)
        p = self.table[idx]
        return p, float(np.max(p))


class SizedModel(ModelInterface):
    """Holds a float32 buffer of exactly ``mb`` MB; declares ``declared`` MB (default: whole MB
    rounded down, as a parameter count × 4 // 2**20 declaration would)."""

    def __init__(self, name: str, mb: float, declared: int | None = None) -> None:
        super().__init__(name, {"mb": mb})
        self.net = torch.nn.Module()
        self.net.register_buffer("blob", torch.full((int(mb * MB) // 4,), 0.5))
        self.declared = declared

    def predict(self, features: Any) -> tuple[np.ndarray, float]:
        return np.array([0.2, 0.3, 0.5]), 0.5

    def get_memory_usage(self) -> int:
        return int(self.config["mb"]) if self.declared is None else self.declared


class CacheModel(SizedModel):
    """A model that also keeps a large cache tensor, released by cleanup_memory."""

    def __init__(self, name: str, mb: float, cache_mb: float) -> None:
        super().__init__(name, mb)
        self.cache = torch.ones(int(cache_mb * MB) // 4)

    def cleanup_memory(self) -> None:
        self.cache = None
        super().cleanup_memory()


class LinearModel(ModelInterface):
    """Softmax regression over a flattened window; ``config``: window, n_features, seed."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__("linear", config)
        self.window_size = int(config["window"])
        self.feature_names = tuple(f"f{i}" for i in range(int(config["n_features"])))
        g = torch.Generator().manual_seed(int(config.get("seed", 0)))
        self.model = torch.nn.Sequential(
            torch.nn.Flatten(-2), torch.nn.Linear(self.window_size * len(self.feature_names), 3)
        )
        with torch.no_grad():
            for p in self.model.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)

    def predict(self, features: Any) -> tuple[np.ndarray, float]:
        with torch.no_grad():
            probs = F.softmax(self.model(torch.as_tensor(features, dtype=torch.float32)), dim=-1)
        return probs.numpy(), float(probs.max())
