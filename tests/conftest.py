"""Shared fixtures. Tests that read ../shared skip cleanly where it is absent."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# A suite started in the background (`nohup`, `&` in a script) inherits SIGINT ignored, and so
# would every process it starts; the tests of Ctrl-C need it delivered, as at a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GOGO2_SHARED_DIR", ROOT.parent / "shared"))


@pytest.fixture(name="shared_datasets")
def fixture_shared_datasets() -> Path:
    """``../shared/datasets/real``; the test is skipped when it is not there."""
    path = SHARED / "datasets" / "real"
    if not path.is_dir():
        pytest.skip(f"shared real datasets not present ({path})")
    return path


@pytest.fixture(name="shared_responses")
def fixture_shared_responses() -> Path:
    """``../shared/exchange-responses/binance/ccxt_static``; skipped when absent."""
    path = SHARED / "exchange-responses" / "binance" / "ccxt_static"
    if not path.is_dir():
        pytest.skip(f"shared exchange responses not present ({path})")
    return path
