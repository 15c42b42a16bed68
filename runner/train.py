"""``python cli.py train``: labels, purged walk-forward splits, training, baselines, checkpoints.

Steps, for each model asked for:

1. **Data.** The candles of ``--symbols`` on ``--timeframe`` (default ``train.timeframe``,
   else ``backtest.timeframe``) from the catalog; the 8 features of
   ``datasets.features`` on that timeframe; windows of ``models.<name>.window_size`` bars.
2. **Labels.** ``r_t = log(close[t + h] / close[t])`` with ``h = train.horizon``: buy
   (2) when ``r_t > train.threshold``, sell (0) when ``r_t < -train.threshold``, hold (1)
   otherwise. Labels are computed inside each span (train, validation, test) after it is
   cut, so the last ``h`` bars of every span get no label.
3. **Splits.** The bars are cut into ``folds + 2`` equal blocks. Fold ``k`` trains on
   blocks ``0..k``, validates on block ``k + 1`` and tests on block ``k + 2``; each of the
   last two starts ``gap = h + train.embargo`` bars after the span before it ends (the
   purge gap covers the horizon; the embargo adds a margin for serial correlation).
4. **Training** with early stopping on the validation loss (the DQN: on the validation
   return of its greedy policy), a progress bar, then the held-out test: accuracy and
   log-loss against always-hold and the class prior of the training labels.
5. **Checkpoint.** The last fold's model (trained on the most data) is written to
   ``models.dir/<name>.pt`` atomically, with the metadata listed in :func:`train_model`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from gogo2.errors import UserInputError
from gogo2.timeframes import format_time, normalize, parse_time

ALL = ("cnn", "lstm", "transformer", "dqn")
P_FLOOR = 1e-6  # probabilities are floored here for the log-loss (as the orchestrator does)


# -- labels and splits --------------------------------------------------------------------------


def labels(close: np.ndarray, horizon: int, threshold: float) -> np.ndarray:
    """Labels of one span's closes: 0 sell, 1 hold, 2 buy; -1 where there is none.

    The last ``horizon`` rows get none (their future lies outside the span), nor does a
    row whose own or future close is missing.
    """
    c = np.asarray(close, dtype=np.float64)
    out = np.full(c.shape[0], -1, dtype=np.int64)
    if c.shape[0] <= horizon:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(c[horizon:] / c[:-horizon])
    ok = np.isfinite(r)
    lab = np.where(r > threshold, 2, np.where(r < -threshold, 0, 1))
    out[:-horizon][ok] = lab[ok]
    return out


@dataclass(frozen=True)
class Split:
    """Row ranges ``[start, end)`` of one walk-forward fold."""

    fold: int
    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]


def walk_forward(n: int, folds: int, horizon: int, embargo: int) -> list[Split]:
    """``folds`` expanding-window splits over ``n`` rows with a purge gap of ``horizon + embargo``."""
    blocks = folds + 2
    size = n // blocks
    gap = horizon + embargo
    out = []
    for k in range(folds):
        a = (k + 1) * size
        b = (k + 2) * size
        c = (k + 3) * size if k < folds - 1 else n
        out.append(Split(k + 1, (0, a), (a + gap, b), (b + gap, c)))
    return out


# -- data ---------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """Features and closes of every symbol on one time index."""

    symbols: tuple[str, ...]
    timeframe: str
    exchange: str
    synthetic: bool
    time: np.ndarray
    close_time: np.ndarray
    open: np.ndarray  # (n, s)
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    features: list[Any]  # FeatureMatrix per symbol
    fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return self.features[0].names

    @property
    def n(self) -> int:
        return int(self.time.shape[0])


def catalog_fingerprint(catalog: Any, exchange: str, symbols: Sequence[str]) -> str:
    """sha256 over the name, size and mtime of every stored candle file of the symbols."""
    from datasets.derived import fingerprint

    rows = []
    for sym in symbols:
        sym_dir = catalog.series_dir(exchange, sym, "1m").parent
        if not sym_dir.is_dir():
            continue
        for tf_dir in sorted(p for p in sym_dir.iterdir() if p.name.startswith("timeframe=")):
            rows.append([sym, tf_dir.name, fingerprint(tf_dir)])
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def bars_to_prepared(bars: Any, fingerprint: str = "") -> Prepared:
    """Features of every symbol of ``bars`` (one timeframe)."""
    from datasets.bars import MultiBars
    from datasets.features import feature_matrix

    data = MultiBars(bars.timeframe, {bars.timeframe: bars})
    feats = [feature_matrix(data, s) for s in bars.symbols]
    return Prepared(
        symbols=tuple(bars.symbols),
        timeframe=bars.timeframe,
        exchange=str(bars.exchange),
        synthetic=bool(bars.synthetic),
        time=bars.time,
        close_time=bars.close_time,
        open=bars.open,
        high=bars.high,
        low=bars.low,
        close=bars.close,
        features=feats,
        fingerprint=fingerprint,
    )


def load_prepared(
    settings: Any,
    symbols: Sequence[str],
    timeframe: str,
    start: int | None,
    end: int | None,
    exchange: str,
) -> Prepared:
    from datasets.catalog import Catalog

    catalog = Catalog(settings.data.path)
    if exchange == "synthetic":
        from datasets.synthetic import ensure_sample

        ensure_sample(catalog, settings.data.sample_seed)
    bars = catalog.load(
        symbols=list(symbols), timeframe=timeframe, start=start, end=end, exchange=exchange
    )
    return bars_to_prepared(bars, catalog_fingerprint(catalog, exchange, symbols))


@dataclass
class SpanData:
    x: np.ndarray  # (n, window, f) float32
    y: np.ndarray  # (n,) int64
    rows: np.ndarray  # decision rows
    sym: np.ndarray  # symbol column of each window


def span_windows(
    p: Prepared, span: tuple[int, int], window: int, horizon: int, thr: float
) -> SpanData:
    """Labelled windows whose decision bar lies in ``span``, labels computed on the cut span."""
    from datasets.features import window_tensor

    xs, ys, rows, syms = [], [], [], []
    s, e = span
    for j, fm in enumerate(p.features):
        lab = labels(p.close[s:e, j], horizon, thr)
        want = np.nonzero(lab >= 0)[0] + s
        w = window_tensor(fm, window, rows=want)
        xs.append(w.x)
        ys.append(lab[w.index - s])
        rows.append(w.index)
        syms.append(np.full(w.index.shape[0], j, dtype=np.int64))
    f = len(p.names)

    def cat(a, d):
        return np.concatenate(a) if a else np.empty((0,), d)

    x = np.concatenate(xs) if xs else np.empty((0, window, f), np.float32)
    return SpanData(x, cat(ys, np.int64), cat(rows, np.int64), cat(syms, np.int64))


def rl_market(p: Prepared, d: SpanData) -> Any:
    """The next bar's prices of each window, and runs of consecutive windows of one symbol."""
    from models.dqn import Market

    r, j = d.rows, d.sym
    nxt = np.minimum(r + 1, p.n - 1)
    m_close = p.close[r, j]
    o, h, lo, c = p.open[nxt, j], p.high[nxt, j], p.low[nxt, j], p.close[nxt, j]
    ok = (r + 1 < p.n) & np.isfinite(o) & np.isfinite(c)
    brk = np.nonzero((np.diff(r) != 1) | (np.diff(j) != 0) | ~ok[:-1])[0] + 1
    edges = [0, *brk.tolist(), len(r)]
    segs = [(a, b) for a, b in itertools.pairwise(edges) if b - a >= 2]
    segs = [(a, b - 1 if not ok[b - 1] else b) for a, b in segs]
    return Market(m_close, o, h, lo, c, segs)


# -- evaluation ---------------------------------------------------------------------------------


def scores(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy and mean log-loss (probabilities floored at 1e-6) of ``probs`` on ``y``."""
    if len(y) == 0:
        return {"accuracy": float("nan"), "log_loss": float("nan")}
    p = np.maximum(probs[np.arange(len(y)), y], P_FLOOR)
    # direction: on bars that did move (label buy or sell), is buy more likely than sell
    # exactly when the move was up? 0.5 is chance; volatility alone cannot lift it
    moved = y != 1
    up = probs[moved, 2] > probs[moved, 0]
    direction = float((up == (y[moved] == 2)).mean()) if moved.any() else float("nan")
    return {
        "accuracy": float((probs.argmax(axis=1) == y).mean()),
        "log_loss": float(-np.log(p).mean()),
        "direction": direction,
        "moved": int(moved.sum()),
    }


def baselines(y_train: np.ndarray, y_test: np.ndarray) -> dict[str, dict[str, float]]:
    """Always-hold (probability 1 on hold, floored) and the class prior of the training labels."""
    n = len(y_test)
    hold = np.tile([0.0, 1.0, 0.0], (n, 1))
    prior = np.bincount(y_train, minlength=3).astype(np.float64)
    prior /= max(prior.sum(), 1.0)
    return {
        "always_hold": scores(hold, y_test),
        "class_prior": scores(np.tile(prior, (n, 1)), y_test),
    }


def verdict(model: dict[str, float], base: dict[str, dict[str, float]]) -> tuple[bool, str]:
    """Whether the model beats both baselines on accuracy and the prior on log-loss, in words."""
    acc_ok = all(model["accuracy"] > b["accuracy"] for b in base.values())
    ll_ok = model["log_loss"] < base["class_prior"]["log_loss"]
    moved = int(model.get("moved") or 0)
    z = (model.get("direction", 0.5) - 0.5) / math.sqrt(0.25 / moved) if moved else 0.0
    direction = (
        f"; direction {model['direction']:.4f} on {moved:,} bars that moved is "
        + (
            "above chance (3 standard errors or more)"
            if z >= 3.0
            else "NOT above chance (0.5, within 3 standard errors)"
            + (
                ": the gain comes from telling when the price moves (volatility), not which way"
                if acc_ok and ll_ok
                else ""
            )
        )
        if moved
        else ""
    )
    if acc_ok and ll_ok:
        return True, "beats always-hold and the class prior on held-out data" + direction
    misses = []
    if not acc_ok:
        best = max(base.items(), key=lambda kv: kv[1]["accuracy"])
        misses.append(
            f"accuracy {model['accuracy']:.4f} is not above {best[0].replace('_', '-')} "
            f"({best[1]['accuracy']:.4f})"
        )
    if not ll_ok:
        misses.append(
            f"log-loss {model['log_loss']:.4f} is not below the class prior's "
            f"({base['class_prior']['log_loss']:.4f})"
        )
    return False, "does NOT beat the baselines: " + "; ".join(misses) + direction


# -- training -----------------------------------------------------------------------------------


@dataclass
class FoldResult:
    split: Split
    train_n: int
    val_n: int
    test_n: int
    fit: dict[str, Any]
    test: dict[str, float]
    base: dict[str, dict[str, float]]
    beats: bool
    words: str


@dataclass
class TrainResult:
    name: str
    path: Path
    folds: list[FoldResult]
    seconds: float
    meta: dict[str, Any]


def _day(p: Prepared, row: int) -> str:
    row = min(max(row, 0), p.n - 1)
    return format_time(int(p.time[row]))


def describe_splits(p: Prepared, splits: Sequence[Split], gap: int) -> list[str]:
    lines = [f"walk-forward splits ({p.n:,} {p.timeframe} bars, purge gap {gap} bars):"]
    for s in splits:
        lines.append(
            f"  fold {s.fold}: train {_day(p, s.train[0])} .. {_day(p, s.train[1] - 1)} | "
            f"val {_day(p, s.val[0])} .. {_day(p, s.val[1] - 1)} | "
            f"test {_day(p, s.test[0])} .. {_day(p, s.test[1] - 1)}"
        )
    return lines


def check_splits(
    p: Prepared, splits: Sequence[Split], window: int, min_train: int, what: str
) -> None:
    """A range too short for one split is refused before anything is trained."""
    if not splits or any(
        sp.val[1] - sp.val[0] < 2 * window
        or sp.test[1] - sp.test[0] < 2 * window
        or sp.train[1] - sp.train[0] < min_train + window
        for sp in splits
    ):
        too_short(p, len(splits), min_train, what)


def too_short(p: Prepared, folds: int, min_train: int, what: str) -> None:
    raise UserInputError(
        f"the training range {what} ({p.n:,} {p.timeframe} bars) is too short for "
        f"{folds} walk-forward fold(s) with at least {min_train} labelled training windows "
        "each, a validation and a test block, and the purge gaps: give an earlier --from or a "
        "later --to, a finer --timeframe, or fewer train.folds."
    )


def train_model(
    name: str,
    p: Prepared,
    settings: Any,
    *,
    seed: int,
    models_dir: Path,
    range_text: tuple[str, str],
    say: Callable[[str], None] = print,
    progress: Any = None,
    config: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``name`` over the walk-forward folds; write the last fold's model; return the results.

    The checkpoint's metadata: model kind and config, feature names and window size,
    horizon, ``data_range`` (symbols, timeframe, start, end, exchange, source real or
    synthetic, catalog fingerprint, the last fold's train/val/test spans),
    ``metrics`` (train, validation and test figures and the baselines), and ``training``
    (seed, torch version, device, time, seconds).
    """
    import torch

    from models import zoo
    from models.device import choose_placement
    from models.dqn import RLData
    from models.supervised import TrainingData

    tc = settings.train
    t0 = time.perf_counter()
    # the registry's device rule: CUDA when performance.use_gpu and present, else CPU;
    # training stays float32 (no autocast), so CPU runs are reproducible to the bit
    device = choose_placement(settings.performance.use_gpu, False).device
    model0 = zoo.create(name, settings, **(config or {}))
    window = int(model0.window_size)
    gap = tc.horizon + tc.embargo
    splits = walk_forward(p.n, tc.folds, tc.horizon, tc.embargo)
    check_splits(p, splits, window, tc.min_train, f"{range_text[0]} .. {range_text[1]}")
    for line in describe_splits(p, splits, gap):
        say(line)
    if name == "dqn":
        # the environment charges the backtest's own costs, short rule, lot size, minimum
        # notional and initial capital
        bt = settings.backtest
        config = {
            "fee": bt.fee_taker,
            "slippage_bps": bt.slippage_bps,
            "allow_short": bt.allow_short,
            "lot_size": bt.lot_size,
            "min_notional": bt.min_notional,
            "cash": bt.cash,
            **(config or {}),
        }
    results: list[FoldResult] = []
    model = model0
    for sp in splits:
        tr = span_windows(p, sp.train, window, tc.horizon, tc.threshold)
        va = span_windows(p, sp.val, window, tc.horizon, tc.threshold)
        te = span_windows(p, sp.test, window, tc.horizon, tc.threshold)
        if len(tr.y) < tc.min_train or len(va.y) == 0 or len(te.y) == 0:
            too_short(p, len(splits), tc.min_train, f"{range_text[0]} .. {range_text[1]}")
        model = zoo.create(name, settings, **(config or {}))
        model.to(device)
        model.feature_names = p.names
        task = None
        if progress is not None:
            task = progress.add_task(
                f"{name} fold {sp.fold}", total=None, loss=float("nan"), val=float("nan")
            )

        def on_epoch(info: dict[str, Any], task: Any = task) -> None:
            if progress is not None:
                progress.update(
                    task,
                    completed=info["epoch"],
                    total=info["epochs"],
                    loss=info["loss"],
                    val=info["val_loss"],
                )

        if name == "dqn":
            data = RLData(tr.x, rl_market(p, tr), va.x, rl_market(p, va), seed, on_epoch)
        else:
            data = TrainingData(tr.x, tr.y, va.x, va.y, seed, on_epoch)
        fit = model.train(data)
        if progress is not None:
            progress.update(task, completed=progress.tasks[-1].total or 1)
        probs = np.concatenate(
            [model.predict(te.x[s : s + 16384])[0] for s in range(0, len(te.y), 16384)]
        )
        test = scores(probs, te.y)
        if name == "dqn":
            test["return"] = model.episode_return(te.x, rl_market(p, te))
        base = baselines(tr.y, te.y)
        ok, words = verdict(test, base)
        results.append(FoldResult(sp, len(tr.y), len(va.y), len(te.y), fit, test, base, ok, words))
    last = results[-1]
    sp = last.split
    model.horizon = int(tc.horizon)
    model.data_range = {
        "symbols": list(p.symbols),
        "timeframe": p.timeframe,
        "start": _day(p, 0),
        "end": _day(p, p.n - 1),
        "start_ms": int(p.time[0]),
        "end_ms": int(p.close_time[-1]),
        "exchange": p.exchange,
        "source": "synthetic" if p.synthetic else "real",
        "fingerprint": p.fingerprint,
        # the weights were shaped by the train and the validation spans (early stopping);
        # the test span and anything later is out of sample
        "fit_end": _day(p, sp.val[1] - 1),
        "fit_end_ms": int(p.close_time[sp.val[1] - 1]),
        "train": [_day(p, sp.train[0]), _day(p, sp.train[1] - 1)],
        "val": [_day(p, sp.val[0]), _day(p, sp.val[1] - 1)],
        "test": [_day(p, sp.test[0]), _day(p, sp.test[1] - 1)],
        "horizon": int(tc.horizon),
        "threshold": float(tc.threshold),
    }
    model.metrics = {
        **{f"fit_{k}": v for k, v in last.fit.items()},
        **{f"test_{k}": v for k, v in last.test.items()},
        **{f"hold_{k}": v for k, v in last.base["always_hold"].items()},
        **{f"prior_{k}": v for k, v in last.base["class_prior"].items()},
        "beats_baselines": last.beats,
    }
    seconds = time.perf_counter() - t0
    model.training = {
        "seed": int(seed),
        "torch_version": torch.__version__,
        "device": str(model.device),
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(seconds, 2),
        "folds": len(results),
    }
    model.to("cpu")
    path = model.save(Path(models_dir) / f"{name}.pt")
    return TrainResult(name, path, results, seconds, model.checkpoint_meta())


def resolve(
    settings: Any,
    *,
    model: str,
    symbols: str | None,
    timeframe: str | None,
    start: str | None,
    end: str | None,
    exchange: str | None,
    seed: int | None,
) -> dict[str, Any]:
    """Check every input before anything is loaded."""
    from gogo2.clikit import parse_symbols

    names = list(ALL) if model == "all" else [m.strip() for m in model.split(",") if m.strip()]
    for n in names:
        if n not in ALL:
            from gogo2.errors import UnknownNameError

            raise UnknownNameError("model", n, [*ALL, "all"], "Pick one with --model.")
    t0 = parse_time(start, "--from") if start else None
    t1 = parse_time(end, "--to") if end else None
    if t0 is not None and t1 is not None and t0 >= t1:
        raise UserInputError(
            f"--from {start} is not before --to {end}. Give a start earlier than the end."
        )
    tf = normalize(timeframe or settings.train.timeframe or settings.backtest.timeframe)
    if seed is not None and seed < 0:
        raise UserInputError(f"--seed {seed} must be a whole number >= 0.")
    return {
        "names": names,
        "symbols": parse_symbols(symbols, settings.backtest.symbols),
        "timeframe": tf,
        "start": t0,
        "end": t1,
        "exchange": (exchange or settings.data.exchange).strip(),
        "seed": settings.train.seed if seed is None else int(seed),
    }
