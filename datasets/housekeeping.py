"""Catalog housekeeping: deleting stored series, and recovery when a catalog is opened.

Recovery on open
    :func:`recover_catalog` finishes swaps interrupted by a dead process (their journals are
    rolled forward or back, see :mod:`datasets.storage`), removes leftover temp files of the
    catalog's own naming in directories whose lock is free, and finishes deletions
    interrupted after their commit point. A catalog that cannot be written is left alone.

Deleting a series

The series directory (one timeframe, or the symbol's directory with every timeframe) is
moved in one ``rename`` into ``<root>/.trash-<token>/`` while the series locks are held and
SIGINT/SIGTERM are deferred (main thread), then the trash is deleted. The rename is the
commit point: an interrupt before it leaves the series whole, after it the series is gone
(what is left in ``.trash-*`` is removed on the next open of the catalog). Derived caches of
the symbol are removed first; they are rebuilt on demand if the series stays.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from datasets.derived import DERIVED_DIR, invalidate_derived
from datasets.series_meta import symbol_dirname
from datasets.storage import (
    deferred_signals,
    dir_lock,
    fsync_dir,
    needs_recovery,
    new_token,
    recover_directory,
)
from gogo2.timeframes import normalize

if TYPE_CHECKING:
    from datasets.catalog import Catalog

TRASH_PREFIX = ".trash-"


def delete_series(catalog: Catalog, exchange: str, symbol: str, timeframe: str | None) -> None:
    """Remove ``exchange``/``symbol`` (one timeframe, or all of them when None) from disk."""
    root = catalog.root
    exchange_dir = root / f"exchange={exchange}"
    symbol_dir = exchange_dir / f"symbol={symbol_dirname(symbol)}"
    if timeframe is None:
        victim = symbol_dir
        tf_dirs = sorted(p for p in symbol_dir.glob("timeframe=*") if p.is_dir())
    else:
        victim = symbol_dir / f"timeframe={normalize(timeframe)}"
        tf_dirs = [victim]
    with contextlib.ExitStack() as locks:
        for d in tf_dirs:
            locks.enter_context(dir_lock(d, create=False))
        invalidate_derived(root, exchange, symbol)
        trash = root / f"{TRASH_PREFIX}{new_token()}"
        with deferred_signals():
            trash.mkdir()
            os.rename(victim, trash / victim.name)
            fsync_dir(victim.parent)
    shutil.rmtree(trash, ignore_errors=True)
    for d in (symbol_dir, exchange_dir):
        with contextlib.suppress(OSError):
            d.rmdir()  # only when empty


def remove_trash(root: Path) -> None:
    """Finish deletions interrupted after their commit point (see the module docstring)."""
    for t in root.glob(f"{TRASH_PREFIX}*"):
        if t.is_dir():
            shutil.rmtree(t, ignore_errors=True)


def recover_catalog(root: Path) -> None:
    """Recovery on open (see the module docstring); prints a note per swap it finishes."""
    if not root.is_dir() or not os.access(root, os.W_OK):
        return
    dirs = [
        *root.glob("exchange=*/symbol=*/timeframe=*"),
        *root.glob(f"{DERIVED_DIR}/exchange=*/symbol=*"),
    ]
    for d in dirs:
        if needs_recovery(d):
            for journal, state in recover_directory(d).items():
                print(
                    f"note: {d.relative_to(root)}: a write interrupted earlier was rolled "
                    f"{state} ({journal}).",
                    file=sys.stderr,
                )
    remove_trash(root)
