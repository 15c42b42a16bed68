"""The model registry: one per process, thread-safe, holding every model within its memory limits.

Limits (config.yaml): ``performance.total_memory_gb`` for all loaded models together and
``models.<name>.max_memory_mb`` per model (default ``models.default_max_memory_mb``).

Each model is charged the larger of what it says (``get_memory_usage()``) and what is
measured (``models/memory.py``; on CUDA also the allocator's growth while it was moved
there). A model over its own limit is refused; so is one that would take the total past
the total limit, unless ``models.when_full: offload_lru``, which first moves the
least-recently-used idle models to disk (their state dicts to a spill file, their
tensors freed) and reloads them on their next use. No model is ever charged more than
its limit, and the loaded total never exceeds the total limit.

A model may be registered from a checkpoint: only its metadata is read then, and it is
built and loaded on first use (``acquire``). One lock guards every change; a refusal
leaves the registry as it was.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gogo2.errors import UnknownNameError
from models.checkpoint import check_compatible, read_checkpoint, read_meta, write_checkpoint
from models.device import Placement, choose_placement
from models.errors import DuplicateModelError, ModelError, ModelMemoryError
from models.interfaces import ModelInterface, load_states, resolve_kind
from models.memory import (
    MB,
    cuda_allocated,
    free_unused,
    measure_bytes,
    process_rss_mb,
    release_cuda,
)

log = logging.getLogger("gogo2.models")

LOADED, LAZY, OFFLOADED = "loaded", "lazy", "offloaded"


@dataclass
class _Entry:
    name: str
    limit_mb: float
    model: ModelInterface | None = None
    state: str = LOADED
    charged_mb: float = 0.0  # what the model takes while loaded (the larger of the figures)
    measured_mb: float = 0.0
    declared_mb: float | None = None
    checkpoint: Path | None = None
    meta: dict[str, Any] | None = None
    spill: Path | None = None
    in_use: int = 0
    last_used: int = 0
    loads: int = 0
    offloads: int = 0
    expect: dict[str, Any] = field(default_factory=dict)
    residual_mb: float = 0.0

    @property
    def resident_mb(self) -> float:
        """What the model takes in memory now: all of it when loaded; once offloaded, what its
        modules do not hold (optimizer state, other tensors it keeps) is still charged."""
        if self.state == LOADED:
            return self.charged_mb
        return self.residual_mb if self.state == OFFLOADED else 0.0


class ModelRegistry:
    """Models by name, within a total and per-model memory limit.

    Parameters
    ----------
    total_limit_mb : float
        Memory all loaded models may take together.
    default_limit_mb : float
        Limit of a model without one of its own.
    limits : dict, optional
        Per-model limits in MB, by lower-case name.
    when_full : {"refuse", "offload_lru"}
        What happens when a model does not fit in the total.
    use_gpu, mixed_precision : bool
        Device choice (see ``models/device.py``).
    spill_dir : path, optional
        Where offloaded models go; a temporary directory (removed at exit) by default.
    """

    def __init__(
        self,
        total_limit_mb: float = 8192.0,
        default_limit_mb: float = 2048.0,
        limits: dict[str, float] | None = None,
        when_full: str = "refuse",
        use_gpu: bool = False,
        mixed_precision: bool = False,
        spill_dir: str | Path | None = None,
    ) -> None:
        for what, v in (("total_limit_mb", total_limit_mb), ("default_limit_mb", default_limit_mb)):
            _limit(v, f"<{what}>")
        for k, v in (limits or {}).items():
            _limit(v, k)
        if when_full not in ("refuse", "offload_lru"):
            raise ModelError(
                f"models.when_full {when_full!r} is not known; use 'refuse' or 'offload_lru'."
            )
        self.total_limit_mb = float(total_limit_mb)
        self.default_limit_mb = float(default_limit_mb)
        self.limits = {k.lower(): float(v) for k, v in (limits or {}).items()}
        self.when_full = when_full
        self.placement: Placement = choose_placement(use_gpu, mixed_precision)
        (log.warning if use_gpu and self.placement.device.type == "cpu" else log.info)(
            self.placement.note
        )
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._clock = itertools.count(1)
        self._spill_root = Path(spill_dir) if spill_dir is not None else None
        self._tmp: Path | None = None

    @classmethod
    def from_settings(cls, settings: Any = None) -> ModelRegistry:
        """A registry with the limits and policy of the loaded settings (``load_settings()``)."""
        if settings is None:
            from gogo2.config import load_settings

            settings = load_settings()
        perf, m = settings.performance, settings.models
        limits = {k: v.max_memory_mb for k, v in m.per_model.items() if v.max_memory_mb}
        return cls(
            total_limit_mb=perf.total_memory_gb * 1024.0,
            default_limit_mb=m.default_max_memory_mb,
            limits=limits,
            when_full=m.when_full,
            use_gpu=perf.use_gpu,
            mixed_precision=perf.mixed_precision,
        )

    # -- lookups ------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.placement.device

    def limit_mb(self, name: str) -> float:
        return self.limits.get(name.lower(), self.default_limit_mb)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _entry(self, name: str) -> _Entry:
        e = self._entries.get(name)
        if e is None:
            raise UnknownNameError(
                "model",
                name,
                self._entries,
                "Register it first (orchestrator.register_model or registry.register_checkpoint).",
            )
        return e

    def info(self, name: str) -> dict[str, Any]:
        """What the stats say about one model."""
        with self._lock:
            return self._stats_of(self._entry(name))

    # -- memory arithmetic ----------------------------------------------------------------
    def used_mb(self) -> float:
        with self._lock:
            return sum(e.resident_mb for e in self._entries.values())

    def _measure(self, model: ModelInterface) -> tuple[float, float | None]:
        measured = measure_bytes(model) / MB
        if type(model).get_memory_usage is ModelInterface.get_memory_usage:
            return measured, None  # the default declaration is the measurement, rounded up
        try:
            declared = model.get_memory_usage()
            declared = float(declared) if declared is not None else None
        except Exception as e:  # a broken declaration is ignored, the measurement stands
            log.warning(
                "model %r: get_memory_usage() failed (%s); using the measurement", model.name, e
            )
            declared = None
        return measured, declared

    def _in_use_text(self, exclude: str | None = None) -> str:
        parts = [
            f"{e.name} {e.resident_mb:.1f} MB"
            for e in self._entries.values()
            if e.state == LOADED and e.name != exclude
        ]
        return ", ".join(parts) if parts else "no model"

    def _check_own(self, name: str, need: float, limit: float, how: str) -> None:
        if need > limit:
            raise ModelMemoryError(
                f"model {name!r} needs {need:.1f} MB ({how}), over its limit of {limit:.1f} MB "
                f"(models.{name.lower()}.max_memory_mb). Raise that limit or use a smaller model."
            )

    def _make_room(self, name: str, need: float, how: str) -> None:
        """Offload idle models (``offload_lru``) until ``need`` MB fit; else refuse.

        Nothing is offloaded unless offloading can make the room: a refusal changes nothing.
        """
        if self.when_full == "offload_lru":
            pinned = sum(
                e.resident_mb
                for e in self._entries.values()
                if e.name != name and (e.in_use > 0 or e.state != LOADED)
            )
            if pinned + need > self.total_limit_mb + 1e-9:
                self._refuse_total(name, need, how, "the models in use leave too little room")
        while True:
            used = sum(e.resident_mb for e in self._entries.values() if e.name != name)
            if used + need <= self.total_limit_mb + 1e-9:
                return
            victims = [
                e
                for e in self._entries.values()
                if e.state == LOADED and e.in_use == 0 and e.name != name
            ]
            if self.when_full != "offload_lru" or not victims:
                policy = (
                    "no idle model is left to offload"
                    if self.when_full == "offload_lru"
                    else "set models.when_full: offload_lru to move idle models to disk"
                )
                self._refuse_total(name, need, how, policy)
            victim = min(victims, key=lambda e: e.last_used)
            self._offload(victim)
            if victim.residual_mb >= victim.charged_mb:  # nothing freed: do not loop for ever
                self._refuse_total(name, need, how, "offloading frees nothing more")

    def _refuse_total(self, name: str, need: float, how: str, policy: str) -> None:
        used = sum(e.resident_mb for e in self._entries.values() if e.name != name)
        free = self.total_limit_mb - used
        if self.when_full != "offload_lru":
            policy = "set models.when_full: offload_lru to move idle models to disk"
        raise ModelMemoryError(
            f"model {name!r} needs {need:.1f} MB ({how}) but {used:.1f} MB of the "
            f"{self.total_limit_mb:.1f} MB total are in use ({self._in_use_text(name)}), "
            f"{free:.1f} MB free. Unregister a model, raise performance.total_memory_gb, "
            f"or {policy}."
        )

    # -- registration ---------------------------------------------------------------------
    def register(self, model: ModelInterface, *, limit_mb: float | None = None) -> None:
        """Hold ``model``; raises ModelMemoryError (limits) or DuplicateModelError, changing nothing."""
        if not isinstance(model, ModelInterface):
            raise ModelError(
                f"{model!r} is not a ModelInterface; subclass models.ModelInterface and define predict()."
            )
        name = model.name
        with self._lock:
            if name in self._entries:
                raise DuplicateModelError(
                    f"a model named {name!r} is registered already. Unregister it first "
                    "(orchestrator.unregister_model) or give the new one another name."
                )
            limit = _limit(limit_mb, name) if limit_mb is not None else self.limit_mb(name)
            entry = _Entry(name=name, limit_mb=limit, model=model)
            self._place(entry)
            self._entries[name] = entry
            entry.last_used = next(self._clock)
            entry.loads = 1
        log.info("model %r registered: %.1f MB on %s", name, entry.charged_mb, model.device)

    def _place(self, entry: _Entry) -> None:
        """Check limits, make room, move to the device, re-check; on refusal undo everything."""
        model = entry.model
        assert model is not None
        measured, declared = self._measure(model)
        need = max(measured, declared or 0.0)
        how = _how(measured, declared)
        self._check_own(entry.name, need, entry.limit_mb, how)
        self._make_room(entry.name, need, how)
        dev, before_dev = self.device, model.device
        before = cuda_allocated(dev)
        try:
            model.to(dev)
            if dev.type == "cuda":  # the allocator's growth counts too
                grown = (cuda_allocated(dev) - before) / MB
                if grown > need:
                    need, how = grown, f"{how}; CUDA allocator grew {grown:.1f} MB"
                self._check_own(entry.name, need, entry.limit_mb, how)
                self._make_room(entry.name, need, how)
        except BaseException:
            model.to(before_dev)
            release_cuda(dev)
            raise
        for m in model.modules().values():
            m.eval()
        entry.charged_mb, entry.measured_mb, entry.declared_mb = need, measured, declared
        entry.state = LOADED

    def register_checkpoint(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        limit_mb: float | None = None,
        feature_names: Sequence[str] | None = None,
        window_size: int | None = None,
        load: bool = False,
    ) -> str:
        """Register a model from its checkpoint, built and loaded on first use (or now with ``load``).

        Only the metadata is read here; a checkpoint made for other ``feature_names`` or
        another ``window_size`` than given, or one whose class cannot be found, is refused.
        """
        path = Path(path).expanduser().absolute()
        meta = read_meta(path)
        check_compatible(meta, path, feature_names, window_size)
        resolve_kind(str(meta.get("kind")), path)
        name = name or str(meta.get("name") or path.stem)
        size = float(meta.get("bytes") or 0) / MB
        with self._lock:
            if name in self._entries:
                raise DuplicateModelError(
                    f"a model named {name!r} is registered already; {path} was not registered. "
                    "Unregister the other one first or pass another name."
                )
            limit = _limit(limit_mb, name) if limit_mb is not None else self.limit_mb(name)
            self._check_own(name, size, limit, f"its checkpoint holds {size:.1f} MB of tensors")
            if size > self.total_limit_mb:
                raise ModelMemoryError(
                    f"model {name!r} needs {size:.1f} MB (checkpoint {path}), more than the "
                    f"{self.total_limit_mb:.1f} MB total limit. Raise performance.total_memory_gb."
                )
            entry = _Entry(
                name=name,
                limit_mb=limit,
                state=LAZY,
                charged_mb=size,
                checkpoint=path,
                meta=meta,
                expect={"feature_names": feature_names, "window_size": window_size},
            )
            self._entries[name] = entry
            try:
                if load:
                    self._load(entry)
            except BaseException:
                del self._entries[name]
                raise
        return name

    def unregister(self, name: str) -> None:
        """Drop a model and free its share."""
        with self._lock:
            entry = self._entry(name)
            del self._entries[name]
        if entry.spill is not None:
            entry.spill.unlink(missing_ok=True)
        entry.model = None
        free_unused(self.device)
        log.info("model %r unregistered", name)

    # -- use, lazy loading, offload -------------------------------------------------------
    @contextlib.contextmanager
    def acquire(self, name: str) -> Iterator[ModelInterface]:
        """The model, loaded (from its checkpoint or spill) if needed and marked busy while held."""
        with self._lock:
            entry = self._entry(name)
            if entry.state != LOADED:
                self._load(entry)
            entry.in_use += 1
            entry.last_used = next(self._clock)
            model = entry.model
        assert model is not None
        try:
            yield model
        finally:
            with self._lock:
                entry.in_use -= 1

    def get(self, name: str) -> ModelInterface:
        """The model (loaded if needed); prefer ``acquire`` while using it."""
        with self.acquire(name) as m:
            return m

    def _load(self, entry: _Entry) -> None:
        t0 = time.perf_counter()
        need = entry.charged_mb
        self._check_own(entry.name, need, entry.limit_mb, "size when last measured")
        self._make_room(entry.name, need, "size when last measured")
        if entry.state == LAZY:
            assert entry.checkpoint is not None and entry.meta is not None
            meta, state = read_checkpoint(entry.checkpoint)
            check_compatible(meta, entry.checkpoint, **entry.expect)
            cls = resolve_kind(str(meta.get("kind")), entry.checkpoint)
            model = cls.build(entry.name, meta.get("config"))
            load_states(model, state, entry.checkpoint)
            model.apply_meta(meta)
            del state
            entry.model = model
            try:
                self._place(entry)
            except BaseException:
                entry.model = None  # stays lazy; nothing half-loaded is kept
                raise
        else:  # offloaded: the module skeletons are kept, their tensors come back from the spill
            assert entry.model is not None and entry.spill is not None
            _, state = read_checkpoint(entry.spill)
            mods = entry.model.modules()
            try:
                for attr, module in mods.items():
                    module.to_empty(device=self.device)
                    _restore(module, state[attr])
                del state
                entry.model.device = self.device
                self._place(entry)
            except BaseException:
                for module in mods.values():  # back to disk: the spill file still holds it
                    module.to(torch.device("meta"))
                raise
            entry.spill.unlink(missing_ok=True)
            entry.spill = None
        entry.loads += 1
        log.info(
            "model %r loaded in %.0f ms (%.1f MB)",
            entry.name,
            (time.perf_counter() - t0) * 1000,
            entry.charged_mb,
        )

    def _spill_dir(self) -> Path:
        if self._spill_root is not None:
            self._spill_root.mkdir(parents=True, exist_ok=True)
            return self._spill_root
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="gogo2-spill-"))
            weakref.finalize(self, shutil.rmtree, self._tmp, True)
        return self._tmp

    def _offload(self, entry: _Entry) -> None:
        """Write an idle model's state dicts to disk and free its tensors."""
        model = entry.model
        assert model is not None
        model.cleanup_memory()
        mods = model.modules()
        if not mods:
            raise ModelMemoryError(
                f"model {entry.name!r} holds no torch module and cannot be offloaded; "
                "set models.when_full: refuse or unregister it."
            )
        path = self._spill_dir() / f"{_safe(entry.name)}-{id(entry):x}.pt"
        write_checkpoint(path, {k: _tensors(m) for k, m in mods.items()}, {"name": entry.name})
        for module in mods.values():
            module.to(torch.device("meta"))
        entry.spill, entry.state = path, OFFLOADED
        entry.residual_mb = measure_bytes(model) / MB
        entry.offloads += 1
        release_cuda(self.device)
        log.info("model %r offloaded to %s (%.1f MB freed)", entry.name, path, entry.charged_mb)

    def offload(self, name: str) -> None:
        """Move an idle model to disk now (it comes back on its next use)."""
        with self._lock:
            entry = self._entry(name)
            if entry.state != LOADED:
                return
            if entry.in_use:
                raise ModelError(f"model {name!r} is in use and cannot be offloaded now.")
            self._offload(entry)

    # -- memory -------------------------------------------------------------------------
    def remeasure(self, name: str) -> float:
        """Measure a loaded model again (after training, say); refuse growth past its limits."""
        with self._lock:
            entry = self._entry(name)
            if entry.state != LOADED or entry.model is None:
                return 0.0
            measured, declared = self._measure(entry.model)
            need = max(measured, declared or 0.0)
            how = _how(measured, declared)
            self._check_own(name, need, entry.limit_mb, how)
            used = sum(e.resident_mb for e in self._entries.values() if e.name != name)
            if used + need > self.total_limit_mb:
                raise ModelMemoryError(
                    f"model {name!r} grew to {need:.1f} MB ({how}); with {used:.1f} MB in use by "
                    f"the others that passes the {self.total_limit_mb:.1f} MB total. Free memory "
                    "(cleanup_memory) or unregister a model."
                )
            entry.charged_mb, entry.measured_mb, entry.declared_mb = need, measured, declared
            return need

    def cleanup_memory(self) -> float:
        """Let every idle model free what it can, collect garbage, empty the CUDA cache.

        Returns the MB the registry's figures went down by (each model measured again).
        """
        with self._lock:
            before = self.used_mb()
            for entry in self._entries.values():
                if entry.state == LOADED and entry.model is not None and entry.in_use == 0:
                    entry.model.cleanup_memory()
            free_unused(self.device)
            for entry in self._entries.values():
                if entry.state == LOADED and entry.model is not None:
                    measured, declared = self._measure(entry.model)
                    entry.charged_mb = max(measured, declared or 0.0)
                    entry.measured_mb, entry.declared_mb = measured, declared
            return before - self.used_mb()

    def _stats_of(self, e: _Entry) -> dict[str, Any]:
        device = str(e.model.device) if e.state == LOADED and e.model is not None else "disk"
        return {
            "memory_mb": e.resident_mb,
            "device": device,
            "state": e.state,
            "size_mb": e.charged_mb,
            "measured_mb": e.measured_mb if e.state == LOADED else None,
            "declared_mb": e.declared_mb if e.state == LOADED else None,
            "limit_mb": e.limit_mb,
            "kind": e.model.kind if e.model is not None else (e.meta or {}).get("kind"),
            "checkpoint": str(e.checkpoint) if e.checkpoint else None,
            "loads": e.loads,
            "offloads": e.offloads,
        }

    def get_memory_stats(self) -> dict[str, Any]:
        """``{'total_limit_mb', 'models': {name: {'memory_mb', 'device', ...}}, 'total_used_mb',
        'total_free_mb', 'utilization_percent', ...}``; an offloaded or not yet loaded model
        shows device ``disk`` and 0 MB in use (its size in ``size_mb``)."""
        with self._lock:
            models = {name: self._stats_of(e) for name, e in self._entries.items()}
            used = sum(m["memory_mb"] for m in models.values())
        return {
            "total_limit_mb": self.total_limit_mb,
            "models": models,
            "total_used_mb": used,
            "total_free_mb": self.total_limit_mb - used,
            "utilization_percent": 100.0 * used / self.total_limit_mb,
            "process_rss_mb": process_rss_mb(),
            "device": str(self.device),
            "when_full": self.when_full,
        }


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``module`` (non-persistent buffers too), by name."""
    out = {n: p.detach() for n, p in module.named_parameters()}
    out.update({n: b.detach() for n, b in module.named_buffers()})
    return out


def _restore(module: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Copy ``saved`` (from ``_tensors``) into a module just materialised with ``to_empty``."""
    with torch.no_grad():
        for n, t in [*module.named_parameters(), *module.named_buffers()]:
            t.copy_(saved[n])


def _limit(value: Any, name: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ModelError(
            f"limit_mb {value!r} for model {name!r} must be a positive number of MB, e.g. 512."
        )
    return float(value)


def _how(measured: float, declared: float | None) -> str:
    if declared is None:
        return f"measured {measured:.1f} MB"
    if declared < measured:
        return f"measured {measured:.1f} MB; it declares only {declared:.1f} MB"
    return f"declared {declared:.1f} MB, measured {measured:.1f} MB"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "model"


_REGISTRY: ModelRegistry | None = None
_REGISTRY_LOCK = threading.Lock()


def get_model_registry() -> ModelRegistry:
    """The process's registry, created on first call from config.yaml's limits."""
    global _REGISTRY
    if _REGISTRY is None:
        with _REGISTRY_LOCK:
            if _REGISTRY is None:
                _REGISTRY = ModelRegistry.from_settings()
    return _REGISTRY


def configure_model_registry(
    registry: ModelRegistry | None = None, settings: Any = None
) -> ModelRegistry:
    """Replace the process's registry (by one given, or one built from ``settings``)."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        _REGISTRY = registry if registry is not None else ModelRegistry.from_settings(settings)
        return _REGISTRY


def reset_model_registry() -> None:
    """Forget the process's registry; the next ``get_model_registry()`` builds a new one."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        _REGISTRY = None
