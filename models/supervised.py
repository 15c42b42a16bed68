"""What the supervised models (CNN, LSTM, Transformer) share: input scaling, prediction, training.

Each model is a ``torch.nn.Module`` (``self.net``) mapping windows ``(n, window,
n_features)`` to logits over (sell, hold, buy). The first layer of every net is a
:class:`Scaler` whose mean and standard deviation are buffers fitted on the training
windows only, so they travel in the checkpoint and the live path scales exactly as
training did.

Training (:meth:`SupervisedModel.train`) is mini-batch AdamW on cross-entropy with early
stopping on the validation loss: after ``patience`` epochs without a better validation
loss it stops and keeps the best epoch's weights. Shuffling uses a ``torch.Generator``
seeded from the run seed, so the same seed and data give the same weights bit for bit
on CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.interfaces import CNNModelInterface, as_tensor

SUPERVISED_DEFAULTS: dict[str, Any] = {
    "window_size": 20,
    "n_features": 8,
    "hidden": 32,
    "layers": 2,
    "dropout": 0.1,
    "epochs": 20,
    "batch_size": 256,
    "learning_rate": 0.002,
    "weight_decay": 0.0001,
    "patience": 3,
}


class Scaler(nn.Module):
    """Standardises each feature with the training set's mean and standard deviation (buffers)."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def fit(self, x: np.ndarray) -> None:
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
        mean = flat.mean(axis=0)
        std = flat.std(axis=0)
        std[~(std > 1e-12)] = 1.0
        self.mean.copy_(torch.from_numpy(mean).float().to(self.mean.device))
        self.std.copy_(torch.from_numpy(std).float().to(self.std.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class TrainingData:
    """Windows and labels (0 sell, 1 hold, 2 buy) for training and validation."""

    x_train: np.ndarray  # float32 (n, window, n_features)
    y_train: np.ndarray  # int64 (n,)
    x_val: np.ndarray
    y_val: np.ndarray
    seed: int = 0
    on_epoch: Callable[[dict[str, Any]], None] | None = None


def model_config(
    defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``defaults`` updated with the set (non-None) values of ``overrides``."""
    cfg = dict(defaults)
    for k, v in (overrides or {}).items():
        if v is not None and k in cfg:
            cfg[k] = v
    return cfg


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch, numpy's legacy state and ``random`` from one seed; a torch Generator for shuffles."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code may draw from it)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _batches(n: int, size: int, gen: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    return list(torch.split(order, size))


class SupervisedModel(CNNModelInterface):
    """A classifier over feature windows; subclasses define ``DEFAULTS`` and ``build_net``."""

    DEFAULTS: dict[str, Any] = SUPERVISED_DEFAULTS
    KIND = "supervised"

    def __init__(self, config: Mapping[str, Any] | None = None, name: str | None = None) -> None:
        cfg = model_config(self.DEFAULTS, config)
        cfg["timeframes"] = list((config or {}).get("timeframes") or cfg.get("timeframes") or [])
        super().__init__(name or self.KIND, cfg)
        self.window_size = int(cfg["window_size"])
        torch.manual_seed(int((config or {}).get("init_seed", 0)))
        self.net = self.build_net(cfg)

    # -- what subclasses define ------------------------------------------------------------
    def build_net(self, cfg: Mapping[str, Any]) -> nn.Module:
        raise NotImplementedError

    # -- prediction ------------------------------------------------------------------------
    def logits(self, x: torch.Tensor, timeframe: str | None = None) -> torch.Tensor:
        return self.net(x) if timeframe is None else self.net(x, timeframe)

    def predict(self, features: Any) -> tuple[np.ndarray, Any]:
        return self._predict(features, None)

    def predict_timeframe(self, features: Any, timeframe: str) -> tuple[np.ndarray, Any]:
        return self._predict(features, timeframe)

    def _predict(self, features: Any, timeframe: str | None) -> tuple[np.ndarray, Any]:
        x = as_tensor(features, self.device)
        single = x.ndim == 2
        if single:
            x = x[None]
        was = self.net.training
        self.net.eval()
        with torch.no_grad():
            p = F.softmax(self.logits(x, timeframe).float(), dim=-1)
        self.net.train(was)
        probs = p.double().cpu().numpy()
        conf = probs.max(axis=1)
        if single:
            return probs[0], float(conf[0])
        return probs, conf

    def predict_batches(self, x: np.ndarray, batch_size: int = 16384) -> np.ndarray:
        """Probabilities ``(n, 3)`` over many windows, ``batch_size`` at a time."""
        out = np.empty((x.shape[0], 3))
        for s in range(0, x.shape[0], batch_size):
            out[s : s + batch_size] = self.predict(x[s : s + batch_size])[0]
        return out

    # -- training --------------------------------------------------------------------------
    def train(self, training_data: TrainingData) -> dict[str, float]:
        """Fit on ``training_data``; early stopping on the validation loss; returns the metrics."""
        cfg = self.config
        d = training_data
        gen = seed_everything(d.seed)
        scaler = self.net.scaler
        scaler.fit(d.x_train)
        xt = torch.from_numpy(np.ascontiguousarray(d.x_train, dtype=np.float32))
        yt = torch.from_numpy(np.asarray(d.y_train, dtype=np.int64))
        xv = torch.from_numpy(np.ascontiguousarray(d.x_val, dtype=np.float32))
        yv = torch.from_numpy(np.asarray(d.y_val, dtype=np.int64))
        opt = torch.optim.AdamW(
            self.net.parameters(),
            lr=float(cfg["learning_rate"]),
            weight_decay=float(cfg["weight_decay"]),
        )
        best = (float("inf"), -1, {k: v.clone() for k, v in self.net.state_dict().items()})
        history = []
        bad = 0
        for epoch in range(1, int(cfg["epochs"]) + 1):
            self.net.train()
            total, count = 0.0, 0
            for idx in _batches(len(yt), int(cfg["batch_size"]), gen):
                opt.zero_grad(set_to_none=True)
                xb, yb = xt[idx].to(self.device), yt[idx].to(self.device)
                loss = F.cross_entropy(self.net(xb), yb)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            val_loss, val_acc = self.evaluate(xv, yv)
            history.append(val_loss)
            better = val_loss < best[0] - 1e-6
            if better:
                best = (val_loss, epoch, {k: v.clone() for k, v in self.net.state_dict().items()})
                bad = 0
            else:
                bad += 1
            if d.on_epoch is not None:
                d.on_epoch(
                    {
                        "epoch": epoch,
                        "epochs": int(cfg["epochs"]),
                        "loss": total / max(count, 1),
                        "val_loss": val_loss,
                        "val_acc": val_acc,
                    }
                )
            if bad >= int(cfg["patience"]):
                break
        self.net.load_state_dict(best[2])
        self.net.eval()
        opt.state.clear()
        del opt
        val_loss, val_acc = self.evaluate(xv, yv)
        train_loss, train_acc = self.evaluate(xt, yt)
        self.metrics = {
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "best_epoch": best[1],
            "epochs_run": len(history),
        }
        return dict(self.metrics)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """Mean cross-entropy and accuracy of the model on ``(x, y)`` (eval mode, no grad)."""
        was = self.net.training
        self.net.eval()
        loss_sum, hits = 0.0, 0
        with torch.no_grad():
            for s in range(0, len(y), 8192):
                out = self.net(x[s : s + 8192].to(self.device))
                yb = y[s : s + 8192].to(self.device)
                loss_sum += float(F.cross_entropy(out, yb, reduction="sum"))
                hits += int((out.argmax(dim=1) == yb).sum())
        self.net.train(was)
        n = max(len(y), 1)
        return loss_sum / n, hits / n
