"""``cnn``: a 1-D convolutional network over (window x features), one output head per timeframe.

Architecture (sizes from ``models.cnn`` in config.yaml): the :class:`Scaler`, then
``layers`` blocks of Conv1d(kernel, padding to keep the length) + ReLU over the time
axis with ``hidden`` channels, then the last time step's channels and their mean over
the window (2 x hidden), dropout, and a Linear head to the three logits. Each timeframe
in ``timeframes`` has a head of its own (``predict_timeframe(features, "1h")``); the
first head is the one ``predict`` uses, the one ``train`` fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from models.errors import ModelError
from models.supervised import SUPERVISED_DEFAULTS, Scaler, SupervisedModel


class CNNNet(nn.Module):
    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        f, h, k = int(cfg["n_features"]), int(cfg["hidden"]), int(cfg["kernel"])
        self.scaler = Scaler(f)
        blocks: list[nn.Module] = []
        for i in range(int(cfg["layers"])):
            blocks += [nn.Conv1d(f if i == 0 else h, h, k, padding=k // 2), nn.ReLU()]
        self.body = nn.Sequential(*blocks)
        self.drop = nn.Dropout(float(cfg["dropout"]))
        tfs = list(cfg.get("timeframes") or ["default"])
        self.head_names = tfs
        self.heads = nn.ModuleDict({tf: nn.Linear(2 * h, 3) for tf in tfs})

    def forward(self, x: torch.Tensor, timeframe: str | None = None) -> torch.Tensor:
        z = self.body(self.scaler(x).transpose(1, 2))  # (n, hidden, window)
        z = self.drop(torch.cat([z[:, :, -1], z.mean(dim=2)], dim=1))
        name = self.head_names[0] if timeframe is None else timeframe
        if name not in self.heads:
            raise ModelError(
                f"the cnn model has heads for {', '.join(self.head_names)}, not {timeframe!r}. "
                "Train it for that timeframe (python cli.py train --model cnn --timeframe ...)."
            )
        return self.heads[name](z)


class CNNModel(SupervisedModel):
    """1-D CNN classifier over feature windows, one head per timeframe."""

    DEFAULTS: ClassVar[dict[str, Any]] = {**SUPERVISED_DEFAULTS, "kernel": 3, "timeframes": []}
    KIND = "cnn"

    def build_net(self, cfg: Mapping[str, Any]) -> nn.Module:
        return CNNNet(cfg)
