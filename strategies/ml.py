"""``ml``: the orchestrated decision of trained models (``python cli.py train``) as signals.

    python cli.py backtest --strategy ml --param models=cnn,dqn --from 2023-06-01
    python cli.py check-lookahead --strategy ml --param models=cnn

For each symbol the 8 features of ``datasets.features`` are computed on the base
timeframe; every window of ``window_size`` bars ending at a decision bar goes through
the models (loaded from ``models.dir/<name>.pt`` through the model registry and
registered with the orchestrator) in chunks of ``batch`` windows, over a strided view of
the feature matrix: memory stays bounded whatever the history length. The
orchestrator combines them with weights that move causally (Hedge on each model's
log-loss, scored once a prediction's horizon has closed, ``models/weights.py``).

Decisions become signals: buy -> long entry, sell -> short entry (the engine turns it
into an exit of the long when ``allow_short`` is false), hold -> nothing; a combined
confidence below ``orchestrator.confidence_threshold`` is hold. A window holding a
missing candle or a feature still warming up decides nothing.

**Live equals backtest.** The features use EMAs and Wilder averages, and the
orchestrator's weights depend on their past, but both forget it geometrically: the
weights through the fixed-share floor (a factor ``1 - weight_floor`` per bar), the
features through their decay. ``settle`` extra bars (600 by default: 0.95^600 ~ 4e-14)
make a trailing window of ``warmup + 1`` bars give the same decision as the whole
history (tested). torch and the models are imported inside the methods, never here.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from datasets.bars import MultiBars
from engine.signals import Signals
from strategies.base import Param, Strategy

log = logging.getLogger("gogo2.strategies")

_SAID: set[str] = set()
FEATURE_WARMUP = 34  # datasets.features.FeatureSpec().warmup with the default lengths


class MLStrategy(Strategy):
    """Trade the orchestrator's decisions over trained models' checkpoints."""

    name = "ml"
    description = (
        "Orchestrated decision of trained torch models (train first: python cli.py train)."
    )
    base_timeframe = "1h"

    models = Param("cnn", doc="comma-separated model names, checkpoints in models.dir")
    settle = Param(
        600, min=0, doc="extra warm-up bars for features and weights to forget the start"
    )
    batch = Param(8192, min=1, doc="windows per inference chunk")

    def __init__(self, timeframe: str | None = None, **params: Any) -> None:
        super().__init__(timeframe, **params)
        self._orch: Any = None
        self._window: int | None = None
        self.report: dict[str, Any] = {}
        self.warnings: list[str] = []
        # log each warning (once per process) for commands that do not show ``warnings``;
        # the backtest turns this off: its summary, report and metrics JSON show them
        self.log_warnings = True
        self.settings: Any = None

    def validate(self) -> None:
        names = [m.strip() for m in self.models.split(",") if m.strip()]
        if not names:
            self.fail("models is empty; name at least one trained model, e.g. models=cnn.")

    @property
    def model_names(self) -> list[str]:
        return list(dict.fromkeys(m.strip() for m in self.models.split(",") if m.strip()))

    def window_size(self) -> int:
        if self._window is None:
            self._setup()
        assert self._window is not None
        return self._window

    def lookback(self) -> dict[str, int]:
        w = self._window or self._declared_window()
        return {self.timeframe: w + FEATURE_WARMUP + int(self.settle)}

    def _declared_window(self) -> int:
        from gogo2.clikit import active_settings

        settings = self.settings or active_settings()
        sizes = {settings.models.settings_for(n).window_size or 20 for n in self.model_names}
        return max(sizes)

    # -- models ------------------------------------------------------------------------------
    def _setup(self) -> Any:
        if self._orch is not None:
            return self._orch
        from gogo2.clikit import active_settings
        from models.checkpoint import read_meta
        from models.errors import CheckpointError
        from models.orchestrator import TradingOrchestrator
        from models.registry import ModelRegistry

        settings = self.settings or active_settings()
        directory = settings.models.dir
        registry = ModelRegistry.from_settings(settings)
        metas = {}
        for name in self.model_names:
            path = directory / f"{name}.pt"
            if not path.is_file():
                raise CheckpointError(
                    f"model {name!r} has no checkpoint {path}: it is not trained. Run "
                    f"python cli.py train --model {name} first (or name a trained model)."
                )
            meta = read_meta(path)
            tf = (meta.get("data_range") or {}).get("timeframe")
            if tf is not None and tf != self.timeframe:
                raise CheckpointError(
                    f"checkpoint {path} (model {name!r}) was trained on {tf} candles, but this "
                    f"backtest runs on {self.timeframe}. Pass --timeframe {tf}, or train it on "
                    f"{self.timeframe} (python cli.py train --model {name} --timeframe {self.timeframe})."
                )
            own = settings.models.settings_for(name)
            from datasets.features import FEATURE_NAMES

            expected = own.features or tuple(f"{self.timeframe}:{f}" for f in FEATURE_NAMES)
            window = own.window_size or int(meta.get("window_size") or 20)
            registry.register_checkpoint(
                path, feature_names=expected, window_size=window, load=True
            )
            metas[name] = meta
        windows = {int(m.get("window_size") or 20) for m in metas.values()}
        if len(windows) != 1:
            raise CheckpointError(
                f"models {', '.join(metas)} were trained on different window sizes "
                f"({sorted(windows)}); train them with one models.<name>.window_size."
            )
        horizons = {int(m.get("horizon") or 1) for m in metas.values()}
        bands = {
            float((m.get("data_range") or {}).get("threshold") or 0.001) for m in metas.values()
        }
        orch = TradingOrchestrator(
            registry,
            settings,
            parallel=False,
            horizon=max(horizons),
            hold_band=max(bands),
        )
        for name in metas:
            orch.register_model(name, weight=settings.models.settings_for(name).weight or 1.0)
        self._window = windows.pop()
        self._metas = metas
        self._orch = orch
        return orch

    # -- signals -----------------------------------------------------------------------------
    def generate(self, data: MultiBars) -> Signals:
        from numpy.lib.stride_tricks import sliding_window_view

        from datasets.features import feature_matrix

        orch = self._setup()
        w = int(self._window or 20)
        bars = data.bars
        n, k = bars.n, len(bars.symbols)
        entries = np.zeros((n, k), dtype=np.int8)
        base_only = MultiBars(data.base, {data.base: bars})
        report: dict[str, Any] = {"models": {}, "symbols": {}}
        hits = {m: [0, 0] for m in orch.model_names}
        for j, sym in enumerate(bars.symbols):
            fm = feature_matrix(base_only, sym)
            if n < w:
                continue
            vals = fm.values.astype(np.float32)
            bad = np.isnan(vals).any(axis=1)
            csum = np.concatenate([[0], np.cumsum(bad)])
            ends = np.arange(w - 1, n)
            valid = (csum[ends + 1] - csum[ends + 1 - w]) == 0
            if not valid.any():
                continue
            first = int(np.argmax(valid))
            ends, valid = ends[first:], valid[first:]
            vals[bad] = 0.0  # windows holding these rows decide nothing (below)
            view = sliding_window_view(vals, w, axis=0).transpose(0, 2, 1)[ends - (w - 1)]
            close = bars.close[ends, j].astype(np.float64)
            close = np.where(valid, close, np.nan)
            orch.reset()  # each symbol from the registered weights, as a fresh live run would
            res = orch.decide_batch(view, close=close, batch_size=int(self.batch))
            act = np.where(valid, res.action, 0).astype(np.int8)
            entries[ends, j] = act
            report["symbols"][sym] = {
                "final_weights": dict(zip(res.names, res.weights[-1].tolist(), strict=True))
            }
            self._hit_rates(res, close, bars.close_time[ends], orch.rule, hits)
        for m, (h, c) in hits.items():
            report["models"][m] = {
                "out_of_sample_hit_rate": h / c if c else None,
                "scored": c,
                "trained": {
                    key: (self._metas[m].get("data_range") or {}).get(key)
                    for key in ("start", "fit_end", "end", "source")
                },
            }
        self.report = report
        self.warnings = self._in_sample(bars)
        for msg in self.warnings if self.log_warnings else ():
            if msg not in _SAID:  # once per process, not at every re-decision
                _SAID.add(msg)
                log.warning(msg)
        return Signals(entries=entries, exits=np.zeros((n, k), dtype=np.bool_))

    def _hit_rates(
        self, res: Any, close: np.ndarray, close_time: np.ndarray, rule: Any, hits: dict
    ) -> None:
        """Per model: how often its most probable action matched the realised move after the
        horizon, over decision bars after the end of its training data."""
        h = rule.horizon
        if close.shape[0] <= h:
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(close[h:] / close[:-h])
        ok = np.isfinite(r)
        y = np.where(r > rule.hold_band, 2, np.where(r < -rule.hold_band, 0, 1))
        for i, m in enumerate(res.names):
            end = _fit_end(self._metas[m])
            oos = ok & (close_time[:-h] > end)
            pred = res.model_probs[:-h, i].argmax(axis=1)
            hits[m][0] += int((pred[oos] == y[oos]).sum())
            hits[m][1] += int(oos.sum())

    def _in_sample(self, bars: Any) -> list[str]:
        out = []
        if bars.n == 0:
            return out
        first, last = int(bars.time[0]), int(bars.close_time[-1])
        for m, meta in self._metas.items():
            r = meta.get("data_range") or {}
            s, e = r.get("start_ms"), _fit_end(meta)
            if s is not None and e and s < last and e > first:
                out.append(
                    f"in-sample: {m} trained on {r.get('start')} .. "
                    f"{r.get('fit_end') or r.get('end')}, which overlaps this backtest; its "
                    "results here are not out-of-sample."
                )
        return out


def _fit_end(meta: dict[str, Any]) -> int:
    """Close time (UTC ms) of the last bar that shaped the model's weights (training and
    validation spans); a checkpoint without it counts its whole data range."""
    r = meta.get("data_range") or {}
    return int(r.get("fit_end_ms") or r.get("end_ms") or 0)
