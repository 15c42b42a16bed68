"""``dqn``: a DQN agent (replay buffer, target network, epsilon-greedy) trading on the engine's rules.

**State**: the feature window ``(window, n_features)`` plus the agent's position
(-1 short, 0 flat, 1 long). **Actions**: 0 sell, 1 hold, 2 buy. Sell targets a short
(flat when ``allow_short`` is false), buy a long, hold keeps the position.

**Environment.** An account of cash and a signed quantity in quote currency, starting
each episode (and each segment of an evaluation) flat with ``cash`` (the backtest's initial
capital). At the close of bar ``t`` the agent picks an action; a change of position is a
market order filled at the open of bar ``t + 1`` with the engine's taker rule
(``engine.nb.taker_price_nb``: slippage against the trader, clipped into the bar's
range), paying the taker fee on the notional of each leg: the old position is closed
first (an exit is never refused), then the new one opened at the same fill, as the
engine reverses. The entry is sized like the engine's kernel sizes an all-in market
order: the equity at the fill over ``price * (1 + fee)`` (the buying power at leverage
1), rounded down to ``lot_size`` (``engine.nb.round_lot_nb``), and not placed when its
notional is below ``min_notional`` (the agent stays flat). The quantity is then held
until the next change, as in a backtest. The reward is the log change of equity from the
close of ``t`` to the close of ``t + 1``, so fees, slippage and rounding are felt
exactly as in a backtest; an equity at or below zero ends the episode with a reward of -10.

**Learning.** Episodes of ``episode_length`` bars start at random points of the training
windows; actions are epsilon-greedy (epsilon falls linearly from ``epsilon_start`` to
``epsilon_end`` over the first half of ``steps``); transitions go to a replay buffer of
``buffer_size``; every ``train_every`` steps a batch is replayed with the Huber loss
against ``reward + gamma * max Q_target(next)``; the target network copies the online
one every ``target_update`` steps. Every ``eval_every`` steps the greedy policy is run
over the validation windows and the best network by validation return is kept
(early stopping).

**Probabilities.** ``predict`` maps the Q-values of a *flat* agent (position 0, what a
buy or a sell entry starts from) to (sell, hold, buy) probabilities with a softmax at
``temperature``: ``p = softmax(Q / temperature)``. Rewards are stored multiplied by
``reward_scale`` (100), so Q-values are discounted sums of log returns in percent; a
difference of one temperature (1.0, i.e. one percent of expected return) between two
actions makes one e times as likely as the other.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.nb import round_lot_nb, taker_price_nb
from models.interfaces import RLAgentInterface, as_tensor
from models.supervised import Scaler, model_config, seed_everything

DQN_DEFAULTS: dict[str, Any] = {
    "window_size": 20,
    "n_features": 8,
    "hidden": 64,
    "learning_rate": 0.0005,
    "gamma": 0.9,
    "epsilon_start": 1.0,
    "epsilon_end": 0.05,
    "buffer_size": 50000,
    "batch_size": 64,
    "target_update": 500,
    "train_every": 4,
    "steps": 12000,
    "episode_length": 256,
    "eval_every": 2000,
    "temperature": 1.0,
    "reward_scale": 100.0,
    "allow_short": True,
    "fee": 0.001,
    "slippage_bps": 2.0,
    "lot_size": 1e-5,
    "min_notional": 10.0,
    "cash": 10_000.0,
}

RUIN_REWARD = -10.0
_DUST = 1e-9  # the engine's: a negative cash residue this small after an all-in entry is 0


@nb.njit(cache=True)
def env_step_nb(cash, qty, target, c0, o1, h1, l1, c1, fee, slip, lot, min_notional):
    """One step of the account ``(cash, qty)`` from close ``c0`` to close ``c1``.

    ``target`` (-1, 0, 1) differing from the sign of ``qty`` is a market order at the
    next open ``o1`` (bar range ``l1``..``h1``): the old position is closed, then an
    all-in one opened at the same taker fill, rounded down to ``lot`` and skipped below
    ``min_notional``, as the engine's kernel does. Returns ``(cash, qty, reward)``, the
    reward the log change of equity (``RUIN_REWARD`` when the equity is not positive).
    """
    e0 = cash + qty * c0
    if e0 <= 0.0:
        return cash, qty, RUIN_REWARD
    pos = 1.0 if qty > 0.0 else (-1.0 if qty < 0.0 else 0.0)
    if target != pos:
        side = 1.0 if target > pos else -1.0
        px = taker_price_nb(o1, side, slip, l1, h1)
        if qty != 0.0:  # the exit: never refused
            cash += qty * px - abs(qty) * px * fee
            qty = 0.0
        if target != 0.0 and cash > 0.0:
            q = round_lot_nb(cash / (px * (1.0 + fee)), lot)
            notional = q * px
            if q > 0.0 and notional >= min_notional:
                cash -= target * notional + notional * fee
                if cash < 0.0 and cash > -_DUST * notional:
                    cash = 0.0
                qty = target * q
    e1 = cash + qty * c1
    if e1 <= 0.0:
        return cash, qty, RUIN_REWARD
    return cash, qty, math.log(e1 / e0)


class QNet(nn.Module):
    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        w, f, h = int(cfg["window_size"]), int(cfg["n_features"]), int(cfg["hidden"])
        self.scaler = Scaler(f)
        self.body = nn.Sequential(
            nn.Linear(w * f + 3, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 3)
        )

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        z = self.scaler(x).flatten(1)
        onehot = F.one_hot((pos + 1).long(), 3).to(z.dtype)
        return self.body(torch.cat([z, onehot], dim=1))


class ReplayBuffer:
    """A ring buffer of ``(window, position, action, reward, next window, next position, done)``."""

    def __init__(self, capacity: int, window: int, n_features: int) -> None:
        self.capacity = int(capacity)
        self.win = np.zeros((capacity, window, n_features), np.float32)
        self.next_win = np.zeros((capacity, window, n_features), np.float32)
        self.pos = np.zeros(capacity, np.int64)
        self.next_pos = np.zeros(capacity, np.int64)
        self.act = np.zeros(capacity, np.int64)
        self.rew = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.size = 0
        self._i = 0

    def add(self, s: Any, a: int, r: float, s2: Any, done: bool) -> None:
        i = self._i
        self.win[i], self.pos[i] = s[0], s[1]
        self.next_win[i], self.next_pos[i] = s2[0], s2[1]
        self.act[i], self.rew[i], self.done[i] = a, r, float(done)
        self._i = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(0, self.size, n)
        return tuple(
            torch.from_numpy(a[idx])
            for a in (
                self.win,
                self.pos,
                self.act,
                self.rew,
                self.next_win,
                self.next_pos,
                self.done,
            )
        )


@dataclass(frozen=True)
class Market:
    """Per window: the decision bar's close and the next bar's open, high, low and close."""

    close: np.ndarray
    next_open: np.ndarray
    next_high: np.ndarray
    next_low: np.ndarray
    next_close: np.ndarray
    segments: Sequence[tuple[int, int]]  # [start, end) runs of consecutive bars of one symbol


@dataclass(frozen=True)
class RLData:
    """What :meth:`DQNAgent.train` learns from: training and validation windows and markets."""

    x_train: np.ndarray
    m_train: Market
    x_val: np.ndarray
    m_val: Market
    seed: int = 0
    on_epoch: Any = None


class DQNAgent(RLAgentInterface):
    """Deep Q-network agent; see the module docstring for the environment and the mapping."""

    KIND = "dqn"

    def __init__(self, config: Mapping[str, Any] | None = None, name: str | None = None) -> None:
        cfg = model_config(DQN_DEFAULTS, config)
        super().__init__(name or self.KIND, cfg)
        self.window_size = int(cfg["window_size"])
        torch.manual_seed(int((config or {}).get("init_seed", 0)))
        self.qnet = QNet(cfg)
        self._target: QNet | None = None
        self._opt: torch.optim.Optimizer | None = None
        self._buffer: ReplayBuffer | None = None
        self._rng = np.random.default_rng(0)
        self._gen: torch.Generator | None = None
        self.epsilon = float(cfg["epsilon_start"])

    # -- acting ----------------------------------------------------------------------------
    def q_values(self, features: Any, position: int | np.ndarray = 0) -> np.ndarray:
        x = as_tensor(features, self.device)
        if x.ndim == 2:
            x = x[None]
        pos = torch.as_tensor(np.broadcast_to(position, (x.shape[0],)).copy(), device=self.device)
        with torch.no_grad():
            return self.qnet(x, pos).double().cpu().numpy()

    def predict(self, features: Any) -> tuple[np.ndarray, Any]:
        single = np.ndim(features) == 2
        q = self.q_values(features, 0)
        z = q / float(self.config["temperature"])
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        conf = p.max(axis=1)
        return (p[0], float(conf[0])) if single else (p, conf)

    def act(self, state: Any) -> int:
        """Epsilon-greedy action for ``state`` = ``(window, position)``."""
        if self._rng.random() < self.epsilon:
            return int(self._rng.integers(0, 3))
        return int(np.argmax(self.q_values(state[0], int(state[1]))[0]))

    def act_with_confidence(self, state: Any) -> tuple[int, float]:
        window, position = state if isinstance(state, tuple) else (state, 0)
        q = self.q_values(window, int(position))[0]
        z = np.exp((q - q.max()) / float(self.config["temperature"]))
        p = z / z.sum()
        return int(np.argmax(q)), float(p.max())

    # -- learning --------------------------------------------------------------------------
    def _setup(self, seed: int) -> None:
        cfg = self.config
        self._gen = seed_everything(seed)
        self._rng = np.random.default_rng(seed)
        self._target = copy.deepcopy(self.qnet)
        self._opt = torch.optim.Adam(self.qnet.parameters(), lr=float(cfg["learning_rate"]))
        self._buffer = ReplayBuffer(
            int(cfg["buffer_size"]), int(cfg["window_size"]), int(cfg["n_features"])
        )

    def remember(self, experience: Sequence[Any]) -> None:
        """Store ``((window, position), action, reward, (next window, next position), done)``."""
        if self._buffer is None:
            self._setup(0)
        s, a, r, s2, done = experience
        self._buffer.add(s, int(a), float(r), s2, bool(done))

    def replay(self) -> float:
        """One gradient step on a replayed batch; returns the Huber loss (NaN: buffer too small)."""
        cfg = self.config
        if self._buffer is None or self._buffer.size < int(cfg["batch_size"]):
            return float("nan")
        batch = self._buffer.sample(int(cfg["batch_size"]), self._rng)
        w, p, a, r, w2, p2, d = (t.to(self.device) for t in batch)
        q = self.qnet(w, p).gather(1, a[:, None])[:, 0]
        with torch.no_grad():
            q2 = self._target(w2, p2).max(dim=1).values
            target = r + float(cfg["gamma"]) * (1.0 - d) * q2
        loss = F.smooth_l1_loss(q, target)
        self._opt.zero_grad(set_to_none=True)
        loss.backward()
        self._opt.step()
        return float(loss.detach())

    def _target_of(self, action: int, pos: int) -> int:
        if action == 2:
            return 1
        if action == 0:
            return -1 if self.config["allow_short"] else 0
        return pos

    def step(
        self, m: Market, i: int, cash: float, qty: float, target: int
    ) -> tuple[float, float, float]:
        """The environment at window ``i``: ``(cash, qty, reward)`` after moving to ``target``."""
        cfg = self.config
        return env_step_nb(
            float(cash),
            float(qty),
            float(target),
            m.close[i],
            m.next_open[i],
            m.next_high[i],
            m.next_low[i],
            m.next_close[i],
            float(cfg["fee"]),
            float(cfg["slippage_bps"]) * 1e-4,
            float(cfg["lot_size"]),
            float(cfg["min_notional"]),
        )

    def episode_return(self, x: np.ndarray, m: Market) -> float:
        """Sum of log returns of the greedy policy over every segment of ``x`` (engine rules),
        each segment starting flat with ``cash``; a ruin ends its segment."""
        total = 0.0
        for s, e in m.segments:
            cash, qty, ruined = float(self.config["cash"]), 0.0, False
            for c in range(s, e, 4096):
                stop = min(c + 4096, e)
                xs = torch.from_numpy(np.ascontiguousarray(x[c:stop])).to(self.device)
                with torch.no_grad():
                    q = (
                        torch.stack(
                            [
                                self.qnet(xs, torch.full((stop - c,), pp, device=self.device))
                                for pp in (-1, 0, 1)
                            ],
                            dim=1,
                        )
                        .cpu()
                        .numpy()
                    )
                for i in range(c, stop):
                    pos = _sign(qty)
                    a = int(np.argmax(q[i - c, pos + 1]))
                    cash, qty, r = self.step(m, i, cash, qty, self._target_of(a, pos))
                    total += r
                    if r == RUIN_REWARD:
                        ruined = True
                        break
                if ruined:
                    break
        return total

    def train(self, training_data: RLData) -> dict[str, float]:
        """Learn on the training windows; keep the network with the best validation return."""
        cfg = self.config
        d = training_data
        self._setup(d.seed)
        self.qnet.scaler.fit(d.x_train)
        self._target.load_state_dict(self.qnet.state_dict())
        m, x = d.m_train, d.x_train
        segs = [(s, e) for s, e in m.segments if e - s >= 2]
        lengths = np.array([e - s for s, e in segs], dtype=np.float64)
        steps, length = int(cfg["steps"]), int(cfg["episode_length"])
        scale = float(cfg["reward_scale"])
        best = (-math.inf, 0, copy.deepcopy(self.qnet.state_dict()))
        i = pos = left = 0
        end = 0
        cash, qty = float(cfg["cash"]), 0.0
        losses: list[float] = []
        rewards = 0.0
        for step in range(1, steps + 1):
            if left <= 0 or i >= end - 1:
                k = int(self._rng.choice(len(segs), p=lengths / lengths.sum()))
                s, e = segs[k]
                i = int(self._rng.integers(s, max(s + 1, e - 1)))
                end, pos, left = e, 0, length
                cash, qty = float(cfg["cash"]), 0.0
            frac = min(1.0, step / max(1.0, steps / 2))
            self.epsilon = float(cfg["epsilon_start"]) + frac * (
                float(cfg["epsilon_end"]) - float(cfg["epsilon_start"])
            )
            a = self.act((x[i], pos))
            cash, qty, r = self.step(m, i, cash, qty, self._target_of(a, pos))
            nxt = _sign(qty)  # the target, or flat when the entry was too small to place
            rewards += r
            left -= 1
            if r == RUIN_REWARD:
                left = 0
            done = left <= 0 or i + 1 >= end - 1
            self.remember(((x[i], pos), a, r * scale, (x[i + 1], nxt), done))
            i, pos = i + 1, nxt
            if step % int(cfg["train_every"]) == 0:
                loss = self.replay()
                if math.isfinite(loss):
                    losses.append(loss)
            if step % int(cfg["target_update"]) == 0:
                self._target.load_state_dict(self.qnet.state_dict())
            if step % int(cfg["eval_every"]) == 0 or step == steps:
                val = self.episode_return(d.x_val, d.m_val)
                if val > best[0]:
                    best = (val, step, copy.deepcopy(self.qnet.state_dict()))
                if d.on_epoch is not None:
                    d.on_epoch(
                        {
                            "epoch": step,
                            "epochs": steps,
                            "loss": float(np.mean(losses[-500:])) if losses else float("nan"),
                            "val_loss": -val,
                            "val_acc": val,
                        }
                    )
        self.qnet.load_state_dict(best[2])
        self._target = self._opt = self._buffer = None
        self.metrics = {
            "val_return": best[0],
            "best_step": best[1],
            "steps": steps,
            "train_episode_reward": rewards,
        }
        return dict(self.metrics)

    def cleanup_memory(self) -> None:
        self._buffer = None
        super().cleanup_memory()


def _sign(qty: float) -> int:
    return 1 if qty > 0 else (-1 if qty < 0 else 0)
