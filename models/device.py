"""Where models run: CUDA when asked for and present, else CPU, decided once and logged once."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch

log = logging.getLogger("gogo2.models")


@dataclass(frozen=True)
class Placement:
    """The device every model of a registry runs on, and whether inference autocasts.

    ``note`` is the one line logged when the registry is created (the fallback to CPU,
    or the device chosen).
    """

    device: torch.device
    autocast_dtype: torch.dtype | None
    note: str

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Mixed precision around a forward pass where the device supports it, else nothing."""
        if self.autocast_dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
            yield


def choose_placement(use_gpu: bool, mixed_precision: bool) -> Placement:
    """CUDA (device 0) when ``use_gpu`` and CUDA is available; CPU otherwise.

    Mixed precision is float16 autocast on CUDA (bfloat16 when the GPU supports it);
    on CPU inference stays float32, so backtests on CPU are reproducible bit for bit.
    """
    if use_gpu and torch.cuda.is_available():
        dev = torch.device("cuda", 0)
        dtype = None
        if mixed_precision:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        amp = f", {str(dtype).removeprefix('torch.')} autocast" if dtype else ""
        return Placement(
            dev, dtype, f"models run on {torch.cuda.get_device_name(dev)} (cuda:0{amp})"
        )
    if use_gpu:
        note = (
            "performance.use_gpu is set but CUDA is not available: models run on CPU, float32 "
            "(set performance.use_gpu: false to silence this line)"
        )
    else:
        note = "models run on CPU, float32 (performance.use_gpu is false)"
    return Placement(torch.device("cpu"), None, note)
