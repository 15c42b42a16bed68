"""Checkpoint files: tensors plus JSON metadata, written atomically, read with ``weights_only``.

One ``.pt`` file per model, a ``torch.save`` of::

    {"format": "gogo2-model/1",
     "meta": "<JSON text>",          # see CheckpointMeta fields below
     "state": {attribute: state_dict}}  # one state dict per torch module the model holds

Only tensors, strings and plain containers are stored, so ``torch.load(...,
weights_only=True, map_location="cpu")`` reads it and no pickled object ever runs.
The metadata says what the weights are for: the class that built them (``kind``), the
model's name and config, the feature names in order, the window size and the horizon,
the data range and the metrics of training, the torch version and the bytes of the
tensors (the memory estimate of a model not loaded yet). A checkpoint made for other
features or another window size is refused by :func:`check_compatible`.

Writes go to a temporary file in the same directory, are flushed to disk and swapped
in with ``os.replace``: an interrupt leaves the old file or the new one, never half.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from models.errors import CheckpointError

FORMAT = "gogo2-model/1"
SUFFIX = ".pt"


def _jsonable(meta: Mapping[str, Any], path: Path) -> str:
    try:
        return json.dumps(meta, sort_keys=True, allow_nan=False, default=_plain)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"cannot save checkpoint {path}: its metadata is not plain JSON ({e}). Keep the "
            "model's config, metrics and data range to numbers, strings, lists and dicts."
        ) from None


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} value {value!r}")


def write_checkpoint(
    path: str | Path, state: Mapping[str, Mapping[str, torch.Tensor]], meta: Mapping[str, Any]
) -> Path:
    """Write ``state`` and ``meta`` to ``path`` atomically; returns the absolute path."""
    path = Path(path).expanduser().absolute()
    text = _jsonable(meta, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = {
        "format": FORMAT,
        "meta": text,
        "state": {k: {n: t.detach() for n, t in sd.items()} for k, sd in state.items()},
    }
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _fix(path: Path) -> str:
    return f"Save the model again with model.save('{path.name}') or delete {path}."


def read_checkpoint(
    path: str | Path, *, mmap: bool = False
) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """``(meta, state)`` of a checkpoint, on CPU; a clear error for a missing or damaged file.

    With ``mmap=True`` tensors are mapped from the file rather than read, so reading the
    metadata of a large checkpoint costs little memory.
    """
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        where = "is a directory" if path.is_dir() else "does not exist"
        raise CheckpointError(
            f"checkpoint {path} {where}. Give the path of a file written by model.save() "
            f"(*{SUFFIX}, kept in models.dir)."
        )
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read: it is damaged or not a gogo2 model checkpoint "
            f"({first[:200]}). {_fix(path)}"
        ) from None
    except Exception as e:  # the weights-only unpickler refuses anything but tensors and plain data
        if "Unsupported global" not in str(e):
            raise CheckpointError(
                f"checkpoint {path} cannot be read: it is damaged or not a gogo2 model "
                f"checkpoint ({type(e).__name__}). {_fix(path)}"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain data "
            f"({type(e).__name__}); it is refused rather than unpickled. {_fix(path)}"
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not a gogo2 model checkpoint (format {FORMAT} expected). "
            f"{_fix(path)}"
        )
    try:
        meta = json.loads(raw["meta"])
        state = raw["state"]
        if not isinstance(meta, dict) or not isinstance(state, dict):
            raise TypeError("meta or state is not a mapping")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path} has damaged metadata ({e}). {_fix(path)}"
        ) from None
    return meta, state


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint, its tensors left on disk."""
    return read_checkpoint(path, mmap=True)[0]


def check_compatible(
    meta: Mapping[str, Any],
    path: str | Path,
    feature_names: Sequence[str] | None = None,
    window_size: int | None = None,
) -> None:
    """Refuse a checkpoint made for other features or another window size than asked for."""
    name = meta.get("name", "?")
    if window_size is not None and meta.get("window_size") not in (None, window_size):
        raise CheckpointError(
            f"checkpoint {path} (model {name!r}) was trained on windows of "
            f"{meta.get('window_size')} bars, but {window_size} are expected here. Use a checkpoint "
            f"trained with window_size {window_size}, or set models.{str(name).lower()}.window_size "
            f"to {meta.get('window_size')} and feed windows of that size."
        )
    if feature_names is not None and meta.get("feature_names") is not None:
        have, want = list(meta["feature_names"]), list(feature_names)
        if have != want:
            missing = [f for f in want if f not in have]
            extra = [f for f in have if f not in want]
            detail = []
            if missing:
                detail.append(f"missing {', '.join(missing[:5])}")
            if extra:
                detail.append(f"not expected {', '.join(extra[:5])}")
            if not detail:
                detail.append("same names in another order")
            raise CheckpointError(
                f"checkpoint {path} (model {name!r}) was trained on {len(have)} other features "
                f"than the {len(want)} expected here ({'; '.join(detail)}). Retrain the model on "
                "the current features, or feed it the features it was trained on."
            )


def state_bytes(state: Mapping[str, Mapping[str, torch.Tensor]]) -> int:
    """Bytes of the tensors in a checkpoint's state (its size once loaded)."""
    return sum(t.numel() * t.element_size() for sd in state.values() for t in sd.values())


def list_checkpoints(directory: str | Path) -> list[Path]:
    """The ``*.pt`` files of ``directory`` (sorted; none when it does not exist)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob(f"*{SUFFIX}") if p.is_file() and not p.name.startswith("."))
