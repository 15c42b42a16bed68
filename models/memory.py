"""Memory of a model, measured rather than declared.

A model is charged the bytes of the tensors it holds:

* the parameters and buffers of every ``torch.nn.Module`` it keeps as an attribute;
* the gradients of those parameters, when there are any (while training);
* the state of every ``torch.optim.Optimizer`` it keeps (Adam's two moments, ...);
* any other tensor it keeps as an attribute, directly or inside a list, tuple or dict
  (a feature cache, a replay buffer of tensors).

A storage shared by several tensors (tied weights, views) is counted once. On a GPU
the registry also reads torch's CUDA allocator around a load (``cuda_allocated``) and
charges the larger figure. The process's resident set size (``process_rss_mb``) is
shown beside the models' total; it is not charged to any model, since the allocator
keeps freed pages and the interpreter and libraries live there too.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import torch

log = logging.getLogger("gogo2.models")

MB = 1024 * 1024


def _tensors_in(value: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 2 and isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from _tensors_in(v, depth + 1)
    elif depth < 2 and isinstance(value, dict):
        for v in value.values():
            yield from _tensors_in(v, depth + 1)


def modules_of(obj: Any) -> dict[str, torch.nn.Module]:
    """The ``torch.nn.Module`` attributes of ``obj``, by attribute name."""
    return {k: v for k, v in vars(obj).items() if isinstance(v, torch.nn.Module)}


def held_tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor ``obj`` holds: module parameters, buffers and grads, optimizer state, attributes."""
    for value in vars(obj).values():
        if isinstance(value, torch.nn.Module):
            for p in value.parameters():
                yield p
                if p.grad is not None:
                    yield p.grad
            yield from value.buffers()
        elif isinstance(value, torch.optim.Optimizer):
            for state in value.state.values():
                yield from _tensors_in(state, 1)
        else:
            yield from _tensors_in(value)


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (meta tensors hold none)."""
    seen: set[tuple[str, int]] = set()
    total = 0
    for t in tensors:
        if t.device.type == "meta":
            continue
        storage = t.untyped_storage()
        key = (str(t.device), storage.data_ptr())
        if key in seen or storage.data_ptr() == 0:
            continue
        seen.add(key)
        total += storage.nbytes()
    return total


def measure_bytes(obj: Any) -> int:
    """Bytes of every tensor ``obj`` holds (see the module docstring)."""
    return tensor_bytes(held_tensors(obj))


def process_rss_mb() -> float:
    """Resident set size of this process, MB (``/proc``; peak RSS where that is missing)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MB
    except (OSError, ValueError, IndexError):  # not Linux
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (MB if os.uname().sysname == "Darwin" else 1024)


def cuda_allocated(device: torch.device) -> int:
    """Bytes torch's CUDA allocator holds on ``device`` (0 off CUDA)."""
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    return int(torch.cuda.memory_allocated(device))


def free_unused(device: torch.device | None = None) -> None:
    """Collect garbage and hand cached CUDA blocks back to the driver."""
    gc.collect()
    if torch.cuda.is_available() and (device is None or device.type == "cuda"):
        torch.cuda.empty_cache()


def release_cuda(device: torch.device) -> None:
    """Hand cached CUDA blocks back to the driver (no garbage collection: tensors freed by
    reference count need none, and a full collection costs ~0.1 s with torch loaded)."""
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
