"""``lstm``: an LSTM over the window's feature rows; the last hidden state feeds a Linear head.

Sizes from ``models.lstm`` in config.yaml: ``hidden`` units, ``layers`` stacked layers,
``dropout`` between layers (when more than one) and before the head.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from models.supervised import SUPERVISED_DEFAULTS, Scaler, SupervisedModel


class LSTMNet(nn.Module):
    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        f, h, n = int(cfg["n_features"]), int(cfg["hidden"]), int(cfg["layers"])
        self.scaler = Scaler(f)
        self.lstm = nn.LSTM(
            f, h, num_layers=n, batch_first=True, dropout=float(cfg["dropout"]) if n > 1 else 0.0
        )
        self.drop = nn.Dropout(float(cfg["dropout"]))
        self.head = nn.Linear(h, 3)

    def forward(self, x: torch.Tensor, timeframe: str | None = None) -> torch.Tensor:
        out, _ = self.lstm(self.scaler(x))
        return self.head(self.drop(out[:, -1]))


class LSTMModel(SupervisedModel):
    """LSTM classifier over feature windows."""

    DEFAULTS: ClassVar[dict[str, Any]] = {**SUPERVISED_DEFAULTS, "layers": 1}
    KIND = "lstm"

    def build_net(self, cfg: Mapping[str, Any]) -> nn.Module:
        return LSTMNet(cfg)
