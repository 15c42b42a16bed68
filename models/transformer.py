"""``transformer``: a small Transformer encoder over the window's feature rows.

Each row is projected to ``hidden`` dimensions and given a learned position embedding;
``layers`` pre-norm encoder layers with ``heads`` attention heads (feed-forward
2 x hidden) follow, and the last position's output feeds a Linear head. Sizes from
``models.transformer`` in config.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from models.supervised import SUPERVISED_DEFAULTS, Scaler, SupervisedModel


class TransformerNet(nn.Module):
    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        f, d, w = int(cfg["n_features"]), int(cfg["hidden"]), int(cfg["window_size"])
        self.scaler = Scaler(f)
        self.proj = nn.Linear(f, d)
        self.pos = nn.Parameter(torch.zeros(1, w, d))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d,
            int(cfg["heads"]),
            dim_feedforward=2 * d,
            dropout=float(cfg["dropout"]),
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, int(cfg["layers"]), enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor, timeframe: str | None = None) -> torch.Tensor:
        z = self.proj(self.scaler(x)) + self.pos[:, : x.shape[1]]
        z = self.encoder(z)
        return self.head(self.norm(z[:, -1]))


class TransformerModel(SupervisedModel):
    """Transformer-encoder classifier over feature windows."""

    DEFAULTS: ClassVar[dict[str, Any]] = {**SUPERVISED_DEFAULTS, "heads": 4}
    KIND = "transformer"

    def build_net(self, cfg: Mapping[str, Any]) -> nn.Module:
        return TransformerNet(cfg)
