"""The run store: one DuckDB file (``<report_dir>/runs.duckdb``) with a manifest of every run.

Each ``backtest``, ``sweep`` and ``walk-forward`` adds one row to ``runs``: the resolved
config and its hash, a fingerprint of the candles read (and of the catalog files behind
them), the code version (git commit when available) and package versions, seeds,
timings, peak memory, metrics and output paths. A sweep also stores every combination's
parameters and metrics in ``sweep_results``; a walk-forward its windows in
``walkforward_windows``.

Writes are one transaction each (an interrupt leaves the old state or the new). DuckDB
allows one writing process at a time: gogo2 writers queue on a lock file beside the store
(``runs.duckdb.lock``, readers take it shared), and a writer that still finds the file
locked by another program retries with backoff, for up to ``LOCK_WAIT_S`` seconds each.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gogo2.errors import Gogo2Error, UserInputError

FILE_NAME = "runs.duckdb"
LOCK_WAIT_S = 30.0
PACKAGES = ("numpy", "pandas", "numba", "duckdb", "pyarrow", "quantstats", "optuna", "ray")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    created TIMESTAMP NOT NULL,
    strategy VARCHAR,
    timeframe VARCHAR,
    symbols VARCHAR,
    exchange VARCHAR,
    period VARCHAR,
    config JSON,
    config_hash VARCHAR,
    data_fingerprint VARCHAR,
    data_files JSON,
    git_commit VARCHAR,
    packages JSON,
    seed BIGINT,
    timings JSON,
    peak_rss_mb DOUBLE,
    metrics JSON,
    outputs JSON
);
CREATE TABLE IF NOT EXISTS sweep_results (
    run_id VARCHAR NOT NULL,
    rank INTEGER NOT NULL,
    params JSON,
    metrics JSON
);
CREATE TABLE IF NOT EXISTS walkforward_windows (
    run_id VARCHAR NOT NULL,
    window_no INTEGER NOT NULL,
    train VARCHAR,
    test VARCHAR,
    params JSON,
    in_sample JSON,
    out_of_sample JSON
);
"""


class RunStoreError(Gogo2Error):
    exit_code = 1


class UnknownRunError(UserInputError):
    """A run id that is not in the store."""


@dataclass
class Manifest:
    kind: str
    strategy: str
    timeframe: str
    symbols: Sequence[str]
    exchange: str
    period: str
    config: dict[str, Any]
    data_fingerprint: str
    data_files: list[dict[str, Any]]
    seed: int | None
    timings: dict[str, float]
    metrics: dict[str, Any]
    outputs: dict[str, str]
    id: str = ""
    created: str = ""
    config_hash: str = ""
    git_commit: str | None = None
    packages: dict[str, str] | None = None
    peak_rss_mb: float | None = None


def store_path(report_dir: Path) -> Path:
    return Path(report_dir) / FILE_NAME


def _json(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=_plain, allow_nan=False)


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _clean(v: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, recursively (JSON has no NaN)."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        try:
            v = v.item()
        except (ValueError, TypeError):
            return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def config_hash(config: dict[str, Any]) -> str:
    text = json.dumps(_clean(config), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's commit (``+dirty`` when files differ), None outside git."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        out["gogo2"] = metadata.version("gogo2")
    except metadata.PackageNotFoundError:
        pass
    return out


def peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def fingerprint_bars(multibars: Any) -> str:
    """Hash of every candle array read (times, prices, volumes; every timeframe)."""
    import numpy as np

    h = hashlib.blake2b(digest_size=16)
    frames = getattr(multibars, "frames", None) or {"": getattr(multibars, "bars", multibars)}
    for tf in sorted(frames):
        b = frames[tf]
        h.update(tf.encode())
        h.update(",".join(b.symbols).encode())
        for name in ("time", "open", "high", "low", "close", "volume"):
            a = getattr(b, name, None)
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def catalog_files(
    data_root: Path, exchange: str, symbols: Sequence[str], timeframes: Sequence[str]
) -> list[dict[str, Any]]:
    """Name, size and mtime of the stored files behind the series read (base and derived)."""
    files = []
    root = Path(data_root)
    for sym in symbols:
        sym_dir = sym.replace("/", "-")
        for tf in timeframes:
            for folder in (root, root / "_derived"):
                d = folder / f"exchange={exchange}" / f"symbol={sym_dir}" / f"timeframe={tf}"
                if not d.is_dir():
                    continue
                for p in sorted(d.glob("*.parquet")):
                    st = p.stat()
                    files.append(
                        {
                            "path": str(p.relative_to(root)),
                            "bytes": st.st_size,
                            "mtime_ns": st.st_mtime_ns,
                        }
                    )
    return files


def new_id(kind: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{kind[:2]}-{stamp}-{uuid.uuid4().hex[:6]}"


# -- writing --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[None]:
    """Hold ``<store>.lock`` (exclusive for writers, shared for readers) across processes.

    DuckDB lets one process write a file at a time and a second process that opens it
    while it is being created can see a partial file: gogo2 processes queue on this lock
    first, waiting up to ``LOCK_WAIT_S`` seconds.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: DuckDB's own lock and the retries
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + LOCK_WAIT_S
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RunStoreError(
                        f"the run store {path} stayed locked by another gogo2 process for "
                        f"{LOCK_WAIT_S:g} s; run again when it has finished."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        yield
    finally:
        os.close(fd)  # releases the lock


def _connect(path: Path, read_only: bool = False) -> Any:
    """Open the store, retrying while another program holds DuckDB's write lock."""
    import duckdb

    deadline = time.monotonic() + LOCK_WAIT_S
    delay = 0.05
    while True:
        try:
            if read_only:
                return duckdb.connect(str(path), read_only=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            return duckdb.connect(str(path))
        except duckdb.IOException as e:
            if "lock" not in str(e).lower() or time.monotonic() > deadline:
                raise RunStoreError(
                    f"could not open the run store {path}: {e}. Another process may be "
                    "writing it; run again when it has finished."
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def record(
    report_dir: Path,
    manifest: Manifest,
    *,
    sweep_rows: list[tuple[dict[str, Any], dict[str, Any]]] | None = None,
    windows: list[dict[str, Any]] | None = None,
) -> str:
    """Write ``manifest`` (and a sweep's rows or a walk-forward's windows) in one transaction."""
    m = manifest
    m.id = m.id or new_id(m.kind)
    m.created = m.created or time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    m.config = _clean(m.config)
    m.config_hash = m.config_hash or config_hash(m.config)
    if m.git_commit is None:
        m.git_commit = git_commit()
    if m.packages is None:
        m.packages = package_versions()
    if m.peak_rss_mb is None:
        m.peak_rss_mb = peak_rss_mb()
    path = store_path(report_dir)
    with _locked(path, exclusive=True):
        return _write(path, m, sweep_rows, windows)


def _write(path: Path, m: Manifest, sweep_rows: Any, windows: Any) -> str:
    con = _connect(path)
    try:
        con.execute(SCHEMA)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    m.id,
                    m.kind,
                    m.created,
                    m.strategy,
                    m.timeframe,
                    ",".join(m.symbols),
                    m.exchange,
                    m.period,
                    _json(m.config),
                    m.config_hash,
                    m.data_fingerprint,
                    _json(m.data_files),
                    m.git_commit,
                    _json(m.packages),
                    m.seed,
                    _json(_clean(m.timings)),
                    m.peak_rss_mb,
                    _json(_clean(m.metrics)),
                    _json(_clean(m.outputs)),
                ],
            )
            if sweep_rows:
                con.executemany(
                    "INSERT INTO sweep_results VALUES (?, ?, ?, ?)",
                    [
                        [m.id, i + 1, _json(_clean(p)), _json(_clean(x))]
                        for i, (p, x) in enumerate(sweep_rows)
                    ],
                )
            if windows:
                con.executemany(
                    "INSERT INTO walkforward_windows VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        [
                            m.id,
                            w["window"],
                            w["train"],
                            w["test"],
                            _json(_clean(w["params"])),
                            _json(_clean(w["in_sample"])),
                            _json(_clean(w["out_of_sample"])),
                        ]
                        for w in windows
                    ],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    return m.id


# -- reading --------------------------------------------------------------------------------------


def _rows(report_dir: Path, sql: str, args: list[Any]) -> tuple[list[str], list[tuple]]:
    path = store_path(report_dir)
    if not path.exists():
        return [], []
    with _locked(path, exclusive=False):
        con = _connect(path, read_only=True)
        try:
            cur = con.execute(sql, args)
            cols = [d[0] for d in cur.description]
            return cols, cur.fetchall()
        finally:
            con.close()


def list_runs(report_dir: Path, strategy: str | None = None, last: int | None = None) -> list[dict]:
    where = "WHERE strategy = ?" if strategy else ""
    args: list[Any] = [strategy] if strategy else []
    limit = f"LIMIT {int(last)}" if last else ""
    cols, rows = _rows(
        report_dir,
        f"SELECT id, kind, created, strategy, timeframe, symbols, period, metrics FROM runs "
        f"{where} ORDER BY created DESC, id DESC {limit}",
        args,
    )
    return [dict(zip(cols, r, strict=True)) for r in rows]


def get_run(report_dir: Path, run_id: str) -> dict[str, Any]:
    cols, rows = _rows(report_dir, "SELECT * FROM runs WHERE id = ?", [run_id])
    if not rows:
        _, near = _rows(report_dir, "SELECT id FROM runs WHERE id LIKE ?", [run_id + "%"])
        if len(near) == 1:
            return get_run(report_dir, near[0][0])
        from gogo2.errors import did_you_mean

        _, ids = _rows(report_dir, "SELECT id FROM runs", [])
        hint = did_you_mean(run_id, [i[0] for i in ids]) if ids else ""
        raise UnknownRunError(
            f"run {run_id!r} is not in the run store {store_path(report_dir)}.{hint} "
            "List the runs with: python cli.py runs list"
        )
    out = dict(zip(cols, rows[0], strict=True))
    for key in ("config", "data_files", "packages", "timings", "metrics", "outputs"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def sweep_rows(report_dir: Path, run_id: str, top: int = 10) -> list[tuple[dict, dict]]:
    _, rows = _rows(
        report_dir,
        "SELECT params, metrics FROM sweep_results WHERE run_id = ? ORDER BY rank LIMIT ?",
        [run_id, top],
    )
    return [(json.loads(p), json.loads(m)) for p, m in rows]


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Config and metric differences of two runs, and whether they read the same data."""
    ca, cb = flatten(a["config"]), flatten(b["config"])
    ma, mb = flatten(a["metrics"]), flatten(b["metrics"])
    config = [
        (k, ca.get(k), cb.get(k)) for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)
    ]
    metrics = [(k, ma.get(k), mb.get(k)) for k in sorted(set(ma) | set(mb))]
    return {
        "config": config,
        "metrics": metrics,
        "same_data": a["data_fingerprint"] == b["data_fingerprint"],
        "same_code": a["git_commit"] == b["git_commit"],
    }


def env_disabled() -> bool:
    """``GOGO2_NO_RUN_STORE=1`` skips recording (for throwaway runs)."""
    return os.environ.get("GOGO2_NO_RUN_STORE", "") not in ("", "0")
