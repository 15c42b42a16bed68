"""Catalog writes under interrupts: journaled swap, temp cleanup, metadata vs files, read-only."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_catalog import HOUR, T0, candles

from datasets.catalog import Catalog
from datasets.series_meta import META_NAME, read_meta, series_meta, year_files
from datasets.storage import CatalogNotWritableError, dir_lock
from gogo2.errors import NoDataError, UnknownNameError, UserInputError

LEFTOVER = (".tmp-", ".bak-", ".journal")


class Died(BaseException):
    """Stands for the death of the process: nothing after it runs."""


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if any(m in p.name for m in LEFTOVER))


def assert_whole(root: Path, expected: list[pd.DataFrame | None]) -> int:
    """Reopen the catalog: the series equals one of ``expected`` (None: absent), whole.

    Whole means the rows read, the metadata on disk (checked against the files without
    any repair) and the coverage agree. Returns the index of the state found.
    """
    cat = Catalog(root)  # the open finishes or rolls back an interrupted swap
    assert leftovers(root) == []
    d = cat.series_dir("binance", "BTC/USDT", "1h")
    raw = read_meta({}, d)
    meta, problems, restamp = series_meta(raw, year_files(d), "binance", "BTC/USDT", "1h")
    assert problems == [] and not restamp, problems
    if meta is None:
        assert None in expected
        assert cat.coverage() == [] and cat.symbols() == []
        with pytest.raises(UnknownNameError):
            cat.load_frame("binance", "BTC/USDT", "1h")
        return expected.index(None)
    got = cat.load_frame("binance", "BTC/USDT", "1h")
    for i, want in enumerate(expected):
        if want is not None and got.equals(want):
            assert meta["rows"] == len(want) == cat.coverage()[0].rows
            assert meta["first"] == want.time.iloc[0] and meta["last"] == want.time.iloc[-1]
            return i
    raise AssertionError(f"the series is neither state: {len(got)} rows")


class Injector:
    """Count calls of the file operations a write makes; fail at call ``at``.

    ``die=False``: that one call raises KeyboardInterrupt and the process goes on (its
    handlers run). ``die=True``: that call and every later one raise :class:`Died`, as if the
    process had been killed there.
    """

    NAMES = ("replace", "link", "fsync", "unlink", "rename")

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: int, die: bool) -> None:
        import pyarrow.parquet as pq

        self.n, self.at, self.die, self.hit = 0, at, die, False
        self.real = {name: getattr(os, name) for name in self.NAMES}
        for name in self.NAMES:
            monkeypatch.setattr(os, name, self._wrap(self.real[name]))
        monkeypatch.setattr(pq, "write_table", self._wrap(pq.write_table))
        self.monkeypatch = monkeypatch

    def _wrap(self, fn):
        def call(*a, **kw):
            self.n += 1
            if self.n == self.at or (self.die and self.hit):
                self.hit = True
                raise Died() if self.die else KeyboardInterrupt()
            return fn(*a, **kw)

        return call

    def undo(self) -> None:
        self.monkeypatch.undo()


def _interrupt_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, die: bool, first_write: bool
) -> set[int]:
    old = candles(48, start=T0 - 24 * HOUR, step=HOUR)  # 2022 and 2023 files
    new = old.copy()
    new.loc[20:30, "volume"] += 1.0  # touches both year files and the metadata
    new = pd.concat([new, candles(5, start=T0 + 24 * HOUR, step=HOUR, price=new.close.iloc[-1])])
    new = new.reset_index(drop=True)
    states = set()
    at = 1
    while True:
        root = tmp_path / f"{at}"
        if not first_write:
            Catalog(root).write(old, "binance", "BTC/USDT", "1h")
        inj = Injector(monkeypatch, at, die)
        try:
            Catalog(root).write(new, "binance", "BTC/USDT", "1h")
        except (KeyboardInterrupt, Died):
            pass
        finally:
            inj.undo()
        expected = [None if first_write else old, new]
        states.add(assert_whole(root, expected))
        shutil.rmtree(root)
        if not inj.hit:  # the write ran through: every step was interrupted once
            break
        at += 1
    assert at > 10  # the write has many steps, every one was tried
    return states


@pytest.mark.parametrize("die", [False, True], ids=["interrupted", "killed"])
@pytest.mark.parametrize("first_write", [False, True], ids=["update", "first-write"])
def test_interrupt_at_every_step_leaves_old_or_new_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, die: bool, first_write: bool
) -> None:
    states = _interrupt_every_step(tmp_path, monkeypatch, die, first_write)
    # early interrupts keep the old state; once the journal is written a killed process is
    # rolled forward on the next open; the last run (not interrupted) is the new state
    assert 1 in states
    assert 0 in states


def test_journal_left_by_a_killed_writer_is_rolled_forward_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = Catalog(tmp_path)
    old = candles(48, start=T0 - 24 * HOUR, step=HOUR)
    cat.write(old, "binance", "BTC/USDT", "1h")
    new = old.copy()
    new["volume"] += 2.0
    real = {name: getattr(os, name) for name in ("replace", "unlink", "fsync")}
    dead = {"on": False}

    def patched(name):
        def call(*a, **kw):
            # killed just before the 2023 file is swapped in: 2022 is already the new one
            if dead["on"] or (name == "replace" and Path(a[1]).name == "year=2023.parquet"):
                dead["on"] = True
                raise Died()
            return real[name](*a, **kw)

        return call

    for name in real:
        monkeypatch.setattr(os, name, patched(name))
    with pytest.raises(Died):
        cat.write(new, "binance", "BTC/USDT", "1h")
    monkeypatch.undo()
    d = cat.series_dir("binance", "BTC/USDT", "1h")
    journals = [p.name for p in d.glob(".swap-*.journal")]
    assert len(journals) == 1
    assert json.loads((d / journals[0]).read_text())["state"] == "forward"
    assert assert_whole(tmp_path, [old, new]) == 1


def test_sigint_and_sigkill_to_a_writing_process(tmp_path: Path) -> None:
    """A real process writing in a loop is stopped at seeded random moments."""
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    script = f"""
import sys
sys.path[:0] = [{str(Path(__file__).resolve().parents[1])!r}, {str(Path(__file__).resolve().parent)!r}]
from datasets.catalog import Catalog
from test_catalog import candles, T0, HOUR
old = candles(2000, start=T0 - 1000 * HOUR, step=HOUR)
new = old.copy(); new["volume"] += 1.0
cat = Catalog(sys.argv[1])
cat.write(old, "binance", "BTC/USDT", "1h")
print("ready", flush=True)
i = 0
while True:
    cat.write(new if i % 2 == 0 else old, "binance", "BTC/USDT", "1h")
    i += 1
"""
    old = candles(2000, start=T0 - 1000 * HOUR, step=HOUR)
    new = old.copy()
    new["volume"] += 1.0
    rng = np.random.default_rng(7)
    for k, sig in enumerate([signal.SIGINT, signal.SIGKILL]):
        root = tmp_path / f"run{k}"
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 0.4)))
        proc.send_signal(sig)
        proc.wait(timeout=60)
        if sig == signal.SIGINT:
            assert "KeyboardInterrupt" in proc.stderr.read()
        assert assert_whole(root, [old, new]) in (0, 1)


def test_ctrl_c_in_the_main_thread_waits_for_the_end_of_the_swap() -> None:
    import signal

    from datasets.storage import deferred_signals

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("after the signal")  # still runs: the signal is held
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_orphan_temp_files_are_removed_on_open_unless_a_writer_holds_the_lock(
    tmp_path: Path,
) -> None:
    cat = Catalog(tmp_path)
    cat.write(candles(30), "binance", "BTC/USDT", "1m")
    d = cat.series_dir("binance", "BTC/USDT", "1m")
    orphan = d / ".year=2023.parquet.tmp-0123abcd"
    orphan.write_bytes(b"x" * 1000)
    backup = d / "year=2023.parquet.bak-89abcdef"
    backup.write_bytes(b"y")
    mine = d / "notes.tmp-0123abcd"  # not the catalog's naming: never touched
    mine.write_text("keep")
    with dir_lock(d, wait=True):  # a live writer of this series
        Catalog(tmp_path)
        assert orphan.exists() and backup.exists()
    Catalog(tmp_path)
    assert not orphan.exists() and not backup.exists()
    assert mine.read_text() == "keep"
    assert len(Catalog(tmp_path).load_frame("binance", "BTC/USDT", "1m")) == 30


def test_temp_is_on_the_cleanup_list_before_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    cat = Catalog(tmp_path)
    real = pq.write_table

    def half_then_interrupt(table, where, **kw):
        Path(where).write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        cat.write(candles(30), "binance", "BTC/USDT", "1m")
    monkeypatch.setattr(pq, "write_table", real)
    assert leftovers(tmp_path) == []
    assert cat.coverage() == []


def test_deleted_year_file_rebuilds_metadata_and_says_so_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = Catalog(tmp_path)
    cat.write(candles(48, start=T0 - 24 * HOUR, step=HOUR), "binance", "BTC/USDT", "1h")
    d = cat.series_dir("binance", "BTC/USDT", "1h")
    (d / "year=2022.parquet").unlink()  # by hand: the 24 candles of 2022-12-31
    cat = Catalog(tmp_path)
    assert [c.rows for c in cat.coverage()] == [24]
    assert cat.coverage()[0].first == T0
    err = capsys.readouterr().err
    assert err.count("did not match its files") == 1
    assert "year=2022.parquet is listed but missing" in err and "24 rows" in err
    # saved: the file on disk agrees again, and no further note
    assert json.loads((d / META_NAME).read_text())["rows"] == 24
    Catalog(tmp_path).coverage()
    assert "did not match" not in capsys.readouterr().err
    with pytest.raises(NoDataError, match=r"Stored: 1h 2023-01-01 00:00 \.\. 2023-01-01 23:00"):
        cat.load_frame("binance", "BTC/USDT", "1h", T0 - 24 * HOUR, T0)


def test_year_file_replaced_by_hand_is_detected(tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    cat.write(candles(48, start=T0 - 24 * HOUR, step=HOUR), "binance", "BTC/USDT", "1h")
    other = Catalog(tmp_path / "other")
    other.write(candles(5, step=HOUR), "binance", "BTC/USDT", "1h")
    d = cat.series_dir("binance", "BTC/USDT", "1h")
    shutil.copyfile(
        other.series_dir("binance", "BTC/USDT", "1h") / "year=2023.parquet", d / "year=2023.parquet"
    )
    assert Catalog(tmp_path).coverage()[0].rows == 24 + 5


def test_copied_catalog_with_new_mtimes_is_restamped_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = Catalog(tmp_path / "a")
    cat.write(candles(48, start=T0 - 24 * HOUR, step=HOUR), "binance", "BTC/USDT", "1h")
    shutil.copytree(tmp_path / "a", tmp_path / "b", copy_function=shutil.copyfile)  # new mtimes
    d = Catalog(tmp_path / "b").series_dir("binance", "BTC/USDT", "1h")
    before = json.loads((d / META_NAME).read_text())
    assert Catalog(tmp_path / "b").coverage()[0].rows == 48
    assert "did not match" not in capsys.readouterr().err
    after = json.loads((d / META_NAME).read_text())
    assert after["rows"] == 48 and after["files"] != before["files"]  # the new stamps are saved
    for name, entry in after["files"].items():
        assert entry["mtime_ns"] == (d / name).stat().st_mtime_ns


def test_old_metadata_without_stamps_is_checked_by_row_count(tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    cat.write(candles(30), "binance", "BTC/USDT", "1m")
    path = cat.series_dir("binance", "BTC/USDT", "1m") / META_NAME
    meta = json.loads(path.read_text())
    entry = meta["files"]["year=2023.parquet"]
    del entry["size"], entry["mtime_ns"]
    path.write_text(json.dumps(meta))
    assert Catalog(tmp_path).coverage()[0].rows == 30  # agrees: used as it is
    entry["rows"] = meta["rows"] = 58_415
    path.write_text(json.dumps(meta))
    assert Catalog(tmp_path).coverage()[0].rows == 30


def test_metadata_without_data_files_is_an_absent_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = Catalog(tmp_path)
    cat.write(candles(30), "binance", "BTC/USDT", "1m")
    cat.write(candles(30, seed=2), "binance", "ETH/USDT", "1m")
    d = cat.series_dir("binance", "BTC/USDT", "1m")
    (d / "year=2023.parquet").unlink()
    cat = Catalog(tmp_path)
    assert [c.symbol for c in cat.coverage()] == ["ETH/USDT"]
    assert cat.symbols() == ["ETH/USDT"]
    with pytest.raises(UnknownNameError, match="unknown symbol on binance 'BTC/USDT'") as e:
        cat.load(["BTC/USDT"], "1m", exchange="binance")
    assert "Did you mean 'BTC/USDT'" not in str(e.value)
    assert not (d / META_NAME).exists()
    assert "treated as absent" in capsys.readouterr().err


# -- read-only catalogs ------------------------------------------------------------------------


@pytest.fixture(name="read_only")
def fixture_read_only(monkeypatch: pytest.MonkeyPatch):
    """Make every write under the catalog root fail as on a read-only mount; record attempts."""
    import builtins

    attempts: list[str] = []
    roots: list[Path] = []

    def under(p) -> bool:
        try:
            path = Path(os.fsdecode(p)).resolve()
        except TypeError:
            return False
        return any(path == r or r in path.parents for r in roots)

    def refuse(name, p):
        attempts.append(f"{name} {p}")
        raise PermissionError(errno.EROFS, "Read-only file system", os.fsdecode(p))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def fake_open(file, mode="r", *a, **kw):
        if isinstance(file, (str, Path)) and under(file) and set(mode) & set("wax+"):
            refuse("open", file)
        return real_open(file, mode, *a, **kw)

    def fake_os_open(p, flags, *a, **kw):
        if under(p) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse("os.open", p)
        return real_os_open(p, flags, *a, **kw)

    def fake_mkdir(p, *a, **kw):
        if under(p):
            if os.path.exists(p):
                raise FileExistsError(errno.EEXIST, "File exists", os.fsdecode(p))
            refuse("mkdir", p)
        return real_mkdir(p, *a, **kw)

    def one_path(name):
        real = getattr(os, name)

        def fake(p, *a, **kw):
            if under(p):
                refuse(name, p)
            return real(p, *a, **kw)

        return fake

    def fake_access(p, mode, *a, **kw):
        if under(p) and mode & os.W_OK:
            return False
        return real_access(p, mode, *a, **kw)

    real_access = os.access

    def activate(root: Path) -> list[str]:
        roots.append(root.resolve())
        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
        monkeypatch.setattr(os, "mkdir", fake_mkdir)
        monkeypatch.setattr(os, "access", fake_access)
        for name in ("replace", "rename", "link", "unlink", "rmdir"):
            monkeypatch.setattr(os, name, one_path(name))
        return attempts

    return activate


def test_read_only_catalog_reads_and_refuses_writes_clearly(tmp_path: Path, read_only) -> None:
    cat = Catalog(tmp_path / "data")
    cat.write(candles(180), "binance", "BTC/USDT", "1m")
    orphan = cat.series_dir("binance", "BTC/USDT", "1m") / ".year=2023.parquet.tmp-0123abcd"
    orphan.write_bytes(b"x")
    attempts = read_only(tmp_path / "data")
    ro = Catalog(tmp_path / "data")
    assert len(ro.load_frame("binance", "BTC/USDT", "1m")) == 180
    assert len(ro.load_frame("binance", "BTC/USDT", "1h")) == 3  # derived in memory
    assert ro.coverage()[0].rows == 180
    assert attempts == []  # no lock, no temp cleanup, no cache write was even tried
    assert orphan.exists()
    with pytest.raises(CatalogNotWritableError) as e:
        ro.write(candles(5, start=T0 + 180 * 60_000), "binance", "BTC/USDT", "1m")
    msg = str(e.value)
    assert isinstance(e.value, UserInputError)
    assert f"the catalog at {tmp_path / 'data'} is not writable" in msg
    assert "Read-only file system" in msg and "data.dir" in msg
    with pytest.raises(CatalogNotWritableError, match="cannot store binance ETH/USDT 1m"):
        ro.write(candles(5), "binance", "ETH/USDT", "1m")
    with pytest.raises(CatalogNotWritableError, match="cannot delete binance BTC/USDT"):
        ro.delete("binance", "BTC/USDT")


def test_import_into_read_only_catalog_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, read_only
) -> None:
    import cli

    root = tmp_path / "data"
    Catalog(root).write(candles(5, seed=4), "binance", "ETH/USDT", "1m")
    csv = tmp_path / "candles.csv"
    candles(30).to_csv(csv, index=False)
    monkeypatch.setenv("GOGO2__DATA__DIR", str(root))
    read_only(root)
    code = cli.main(
        [
            "data",
            "import",
            str(csv),
            "--exchange",
            "binance",
            "--symbol",
            "BTC/USDT",
            "--timeframe",
            "1m",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: the catalog at ") and str(root) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_chmod_read_only_catalog(tmp_path: Path) -> None:  # pragma: no cover - not as root
    cat = Catalog(tmp_path / "data")
    cat.write(candles(30), "binance", "BTC/USDT", "1m")
    dirs = [p for p in (tmp_path / "data").rglob("*") if p.is_dir()] + [tmp_path / "data"]
    for p in dirs:
        p.chmod(0o555)
    try:
        ro = Catalog(tmp_path / "data")
        assert len(ro.load_frame("binance", "BTC/USDT", "1m")) == 30
        with pytest.raises(CatalogNotWritableError):
            ro.write(candles(5, start=T0 + 30 * 60_000), "binance", "BTC/USDT", "1m")
    finally:
        for p in dirs:
            p.chmod(0o755)
