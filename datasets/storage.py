"""File safety for the catalog: series locks, fsync and the all-or-nothing swap of temp files.

Every file the catalog writes is first written to a temporary name next to its target
(``.<name>.tmp-<token>``), fsynced, then moved into place with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path


@contextlib.contextmanager
def series_lock(directory: Path):
    """Exclusive lock of one series directory (no-op where fcntl is missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(directory / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Persist renames in ``directory`` (best effort; not possible on every platform)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_swap(pairs: list[tuple[Path, Path]]) -> None:
    """Move each ``(temp, target)`` into place; all or nothing on exceptions.

    Existing targets are kept as hard links (copies where links are unsupported) until every
    swap succeeded; on failure the swapped targets are restored and the temps removed.
    """
    token = uuid.uuid4().hex[:8]
    backups: list[tuple[Path, Path | None]] = []
    done: list[int] = []
    try:
        for _, target in pairs:
            if target.exists():
                bak = target.with_name(f"{target.name}.bak-{token}")
                try:
                    os.link(target, bak)
                except OSError:
                    shutil.copy2(target, bak)
                backups.append((target, bak))
            else:
                backups.append((target, None))
        for i, (tmp, target) in enumerate(pairs):
            os.replace(tmp, target)
            done.append(i)
    except BaseException:
        for i in reversed(done):
            target, bak = backups[i]
            with contextlib.suppress(OSError):
                if bak is not None:
                    os.replace(bak, target)
                else:
                    target.unlink()
        for tmp, _ in pairs:
            with contextlib.suppress(OSError):
                tmp.unlink()
        for _, bak in backups:
            if bak is not None:
                with contextlib.suppress(OSError):
                    bak.unlink()
        raise
    for _, bak in backups:
        if bak is not None:
            with contextlib.suppress(OSError):
                bak.unlink()
