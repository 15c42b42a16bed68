"""File safety for the catalog: locks, fsync, temp files and the journaled all-or-nothing swap.

Temp files
    Every file the catalog writes is first written to a temporary name next to its target,
    ``.<name>.tmp-<token>`` (:func:`temp_path`), fsynced, then moved into place. Backups of
    replaced files are hard links named ``<name>.bak-<token>``; a swap journal is
    ``.swap-<token>.journal``. Only these names are ever cleaned up.

Journaled swap
    :func:`atomic_swap` moves several temp files over their targets in one directory. Before
    the first ``os.replace`` it writes and fsyncs a journal listing every ``(temp, target,
    backup)``; the journal is removed when the swap is complete. An exception in the middle
    (disk full, ``KeyboardInterrupt``) rolls the swap back in-process (the journal is first
    flipped to ``"back"``). When the process dies instead (``SIGKILL``, power loss, a second
    Ctrl-C during the rollback), :func:`recover_directory` finishes the job on the next open of
    the catalog: a ``"forward"`` journal is rolled forward (every listed temp was complete and
    fsynced before the journal existed), a ``"back"`` journal is rolled back from the backups.
    Either way the directory ends holding the old set of files or the new one, whole.

    In the main thread SIGINT and SIGTERM are also deferred while the swap runs
    (:func:`deferred_signals`), so a Ctrl-C lands after it; from other threads the journal is
    the only guard.

Locks
    Writers of one directory are serialized with ``flock`` on its ``.lock`` file
    (:func:`dir_lock`). Cleanup on open takes the lock without waiting and skips a directory
    whose lock is held, so a live writer's temp files are never touched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import threading
import uuid
from pathlib import Path

from gogo2.errors import DataError

LOCK_NAME = ".lock"
TEMP_RE = re.compile(r"^\..+\.tmp-[0-9a-f]{8}$")
BACKUP_RE = re.compile(r"^.+\.bak-[0-9a-f]{8}$")
JOURNAL_RE = re.compile(r"^\.swap-[0-9a-f]{8}\.journal$")
_READ_ONLY_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


class CatalogNotWritableError(DataError):
    """The catalog directory cannot be written (read-only mount, permissions)."""


class LockBusy(Exception):
    """:func:`dir_lock` with ``wait=False`` found the lock held by another writer."""


def is_read_only_error(exc: BaseException) -> bool:
    """True for the ``OSError`` of writing to a read-only or permission-denied location."""
    return isinstance(exc, PermissionError) or (
        isinstance(exc, OSError) and exc.errno in _READ_ONLY_ERRNOS
    )


def new_token() -> str:
    return uuid.uuid4().hex[:8]


def temp_path(target: Path, token: str) -> Path:
    """The temp name of ``target`` for one write (matched by :data:`TEMP_RE`)."""
    return target.with_name(f".{target.name}.tmp-{token}")


@contextlib.contextmanager
def dir_lock(directory: Path, *, wait: bool = True, create: bool = True):
    """Exclusive lock of ``directory`` (its ``.lock`` file; no-op where fcntl is missing).

    ``wait=False`` raises :class:`LockBusy` instead of waiting. The lock is taken again when
    the directory was moved away (deleted) while this call waited for it, so the holder always
    locks the directory that is at ``directory`` now.
    """
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    while True:
        fh = open(directory / LOCK_NAME, "a+")
        try:
            flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.flock(fh.fileno(), flags)
            except BlockingIOError:
                raise LockBusy(str(directory)) from None
            try:
                same = os.stat(directory / LOCK_NAME).st_ino == os.fstat(fh.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                if not create:
                    raise FileNotFoundError(errno.ENOENT, "series was removed", str(directory))
                directory.mkdir(parents=True, exist_ok=True)
                continue
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return
        finally:
            fh.close()


series_lock = dir_lock


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


@contextlib.contextmanager
def deferred_signals():
    """Hold SIGINT and SIGTERM until the block ends (main thread only; elsewhere a no-op).

    A signal that arrived meanwhile is delivered to the previous handler on exit, so Ctrl-C
    still interrupts the program, just not in the middle of the block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous: dict[int, object] = {}

    def hold(signum, frame):
        received.append(signum)

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is None:  # set outside Python: cannot be restored
                continue
            previous[sig] = signal.signal(sig, hold)
    except (ValueError, OSError):  # pragma: no cover - signals unavailable here
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        for sig in dict.fromkeys(received):
            handler = previous[sig]
            if callable(handler):
                handler(sig, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), sig)


def _write_journal(directory: Path, token: str, state: str, entries: list[list]) -> Path:
    journal = directory / f".swap-{token}.journal"
    tmp = temp_path(journal, token)
    try:
        with open(tmp, "w") as fh:
            json.dump({"state": state, "pairs": entries}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, journal)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(directory)
    return journal


def _roll_forward(directory: Path, entries: list[list]) -> None:
    """Move every temp still present over its target (each was complete before the journal)."""
    for tmp_name, target_name, _ in entries:
        tmp = directory / tmp_name
        if tmp.exists():
            os.replace(tmp, directory / target_name)
    fsync_dir(directory)


def _drop_backups(directory: Path, entries: list[list]) -> None:
    for _, _, bak_name in entries:
        if bak_name is not None:
            with contextlib.suppress(FileNotFoundError):
                (directory / bak_name).unlink()


def _roll_back(directory: Path, entries: list[list]) -> None:
    for _, target_name, bak_name in reversed(entries):
        target = directory / target_name
        if bak_name is not None:
            bak = directory / bak_name
            if bak.exists():
                os.replace(bak, target)  # a no-op when both name the same file ...
                with contextlib.suppress(FileNotFoundError):
                    bak.unlink()  # ... so the name is dropped here
        else:
            # there was no old file: whatever is at the target is the new one
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
    for tmp_name, _, _ in entries:
        with contextlib.suppress(FileNotFoundError):
            (directory / tmp_name).unlink()
    fsync_dir(directory)


def atomic_swap(pairs: list[tuple[Path, Path]]) -> None:
    """Move each ``(temp, target)`` into place, journaled; all or nothing.

    All targets must be in one directory; each temp must be complete (fsynced) already.
    Existing targets are kept as hard links (copies where links are unsupported) until every
    swap succeeded; on an exception the swapped targets are restored and the temps removed.
    See the module docstring for what happens when the process dies in the middle.
    """
    if not pairs:
        return
    directory = pairs[0][1].parent
    if any(t.parent != directory or p.parent != directory for p, t in pairs):
        raise ValueError("atomic_swap: every temp and target must be in one directory")
    token = new_token()
    entries: list[list] = []
    journal: Path | None = None
    with deferred_signals():
        try:
            for tmp, target in pairs:
                bak_name = None
                if target.exists():
                    bak = target.with_name(f"{target.name}.bak-{token}")
                    bak_name = bak.name
                    entries.append([tmp.name, target.name, bak_name])
                    try:
                        os.link(target, bak)
                    except OSError:
                        shutil.copy2(target, bak)
                else:
                    entries.append([tmp.name, target.name, bak_name])
            journal = _write_journal(directory, token, "forward", entries)
            _roll_forward(directory, entries)
        except BaseException:  # every backup still exists here: the rollback is possible
            if journal is None:  # nothing replaced yet: drop the backups and temps
                _discard(directory, entries)
                raise
            try:
                # flip the journal first: from here on, recovery rolls back too
                _write_journal(directory, token, "back", entries)
            except BaseException:
                # the rollback cannot be recorded: complete the swap instead (the journal
                # still says "forward", so recovery would do the same)
                with contextlib.suppress(OSError):
                    _roll_forward(directory, entries)
                    journal.unlink()
                    _drop_backups(directory, entries)
                raise
            with contextlib.suppress(OSError):
                _roll_back(directory, entries)
                journal.unlink()
            raise
        # committed: the journal goes first, then the backups (leftovers of an interrupt
        # here are plain .bak- files, removed on the next open)
        journal.unlink()
        _drop_backups(directory, entries)


def _discard(directory: Path, entries: list[list]) -> None:
    for tmp_name, _, bak_name in entries:
        for name in (tmp_name, bak_name):
            if name is not None:
                with contextlib.suppress(OSError):
                    (directory / name).unlink()


def needs_recovery(directory: Path) -> bool:
    """True when ``directory`` holds a swap journal, a temp file or a backup of the catalog's."""
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    return any(JOURNAL_RE.match(n) or TEMP_RE.match(n) or BACKUP_RE.match(n) for n in names)


def recover_directory(directory: Path) -> dict[str, str]:
    """Finish interrupted swaps of ``directory`` and remove its leftover temp files.

    Runs only when the directory's lock is free (a live writer's files are never touched) and
    the directory is writable; otherwise nothing is done. Returns ``{journal name: "forward"
    or "back"}`` of the swaps finished.
    """
    done: dict[str, str] = {}
    try:
        with dir_lock(directory, wait=False, create=False):
            names = sorted(os.listdir(directory))
            for name in names:
                if not JOURNAL_RE.match(name):
                    continue
                journal = directory / name
                try:
                    info = json.loads(journal.read_text())
                    entries = info["pairs"]
                    state = info["state"]
                except (OSError, ValueError, KeyError):
                    continue  # unreadable: left for a person to look at
                if state == "forward":
                    _roll_forward(directory, entries)
                    _drop_backups(directory, entries)
                else:
                    _roll_back(directory, entries)
                journal.unlink()
                done[name] = state
            fsync_dir(directory)
            for name in os.listdir(directory):
                if TEMP_RE.match(name) or BACKUP_RE.match(name):
                    with contextlib.suppress(FileNotFoundError):
                        (directory / name).unlink()
    except (LockBusy, OSError):
        return done
    return done
