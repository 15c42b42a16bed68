"""Where a backtest's files go, and how they are written without harming anything.

Layout
------
Without ``--report FILE`` every run gets its own folder under ``backtest.report_dir``::

    reports/
      sma_cross_1h_BTC-USDT+ETH-USDT_2023-01-03T0300_2025-01-01_1a2b3c4d/
        report.html  trades.csv  equity.parquet  metrics.json
      latest -> sma_cross_1h_BTC-USDT+ETH-USDT_2023-01-03T0300_2025-01-01_1a2b3c4d

The folder name holds the strategy, timeframe, symbols, the *actual* period
(first bar's open to last bar's close of the reported curve) and a short hash of
everything else that shapes the result (strategy parameters, exchange and every
simulation setting), so two different runs never share a name. ``latest`` is a
relative symlink replaced atomically after each run; where symlinks cannot be
made, ``latest.txt`` holds the folder's name instead.

With ``--report path/my.html`` the HTML goes exactly there and the other files
go beside it as ``my_trades.csv``, ``my_equity.parquet`` and ``my_metrics.json``.

Safety
------
* Targets are checked **before** any data is loaded: a target that exists and is
  not a regular file (a device such as ``/dev/null``, a FIFO, a directory) is
  refused, and so is a target whose folder is a file or is not writable. Missing
  parent folders are created at write time (the nearest existing one must be
  writable).
* Every file is first written to a temporary name in its folder; only when all
  of them are complete are they moved into place (``os.replace``) one after the
  other. A file of the set that this run does not write (the HTML of an older
  run with the same name, when this one has ``--no-report``) is removed, so the
  files under one name always come from one run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gogo2.errors import UserInputError

if TYPE_CHECKING:
    import pandas as pd

REPORT_NAME = "report.html"
TRADES_NAME = "trades.csv"
EQUITY_NAME = "equity.parquet"
METRICS_NAME = "metrics.json"
LATEST = "latest"
LATEST_TXT = "latest.txt"
MAX_SYMBOLS_IN_NAME = 3
PRICE_DIGITS = 10
"""Significant digits kept for prices and returns in the trades CSV."""
MONEY_DECIMALS = 8
"""Decimals kept for money (P&L, fees) in the trades CSV: 1e-8 of the quote currency."""


class OutputPathError(UserInputError):
    """A file the run would write cannot or must not be written there."""


# -- where -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputPlan:
    """The files of one run; ``None`` for a file not asked for.

    ``run_dir`` and ``report_dir`` are set for the per-run folder layout (``latest``
    is updated in ``report_dir``); both are None with an explicit ``--report FILE``.
    """

    html: Path | None
    trades: Path | None
    equity: Path | None
    metrics: Path | None
    unused: tuple[Path, ...] = ()
    run_dir: Path | None = None
    report_dir: Path | None = None

    def targets(self) -> list[Path]:
        return [p for p in (self.html, self.trades, self.equity, self.metrics) if p is not None]


def explicit_plan(report: Path, *, html: bool, save: bool) -> OutputPlan:
    """``--report my.html``: the HTML there, ``my_trades.csv`` etc. beside it."""
    stem = report.with_suffix("") if report.suffix.lower() in (".html", ".htm") else report
    named = {
        "html": report,
        "trades": stem.with_name(stem.name + "_trades.csv"),
        "equity": stem.with_name(stem.name + "_equity.parquet"),
        "metrics": stem.with_name(stem.name + "_metrics.json"),
    }
    return _plan(named, html=html, save=save)


def run_dir_plan(report_dir: Path, name: str, *, html: bool, save: bool) -> OutputPlan:
    """The per-run folder ``report_dir/name`` holding the four fixed names."""
    run_dir = report_dir / name
    named = {
        "html": run_dir / REPORT_NAME,
        "trades": run_dir / TRADES_NAME,
        "equity": run_dir / EQUITY_NAME,
        "metrics": run_dir / METRICS_NAME,
    }
    plan = _plan(named, html=html, save=save)
    return OutputPlan(
        plan.html,
        plan.trades,
        plan.equity,
        plan.metrics,
        plan.unused,
        run_dir=run_dir,
        report_dir=report_dir,
    )


def _plan(named: dict[str, Path], *, html: bool, save: bool) -> OutputPlan:
    wanted = {"html": html, "trades": save, "equity": save, "metrics": save}
    chosen = {k: (p if wanted[k] else None) for k, p in named.items()}
    unused = tuple(p for k, p in named.items() if not wanted[k])
    return OutputPlan(chosen["html"], chosen["trades"], chosen["equity"], chosen["metrics"], unused)


def run_dir_name(
    strategy: str,
    timeframe: str,
    symbols: Sequence[str],
    start_text: str,
    end_text: str,
    fingerprint: str,
) -> str:
    """``<strategy>_<timeframe>_<symbols>_<from>_<to>_<hash>``; symbols as ``BTC-USDT+ETH-USDT``.

    More than three symbols are shortened to the first three and ``+<n>more`` (the hash
    still tells the sets apart).
    """
    names = [s.replace("/", "-") for s in symbols]
    shown = "+".join(names[:MAX_SYMBOLS_IN_NAME])
    if len(names) > MAX_SYMBOLS_IN_NAME:
        shown += f"+{len(names) - MAX_SYMBOLS_IN_NAME}more"
    return f"{strategy}_{timeframe}_{shown}_{start_text}_{end_text}_{fingerprint}"


def fingerprint(inputs: dict[str, Any], length: int = 8) -> str:
    """Short hex hash of the run's inputs (JSON with sorted keys; other values as text)."""
    text = json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


# -- checks ----------------------------------------------------------------------------------------


_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISSOCK, "socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "special file"


def check_file_target(path: Path, what: str = "--report") -> None:
    """Refuse ``path`` unless it is absent or a regular file in a writable folder.

    Nothing is created or written: the check only looks.

    Raises
    ------
    OutputPathError
        The path exists and is not a regular file (device, FIFO, directory, ...), or its
        folder cannot be created or written.
    """
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as e:
        raise OutputPathError(
            f"{what} {path}: cannot be inspected ({e.strerror}). Give another path."
        ) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputPathError(
            f"{what} {path} exists and is a {_kind(st.st_mode)}, not a regular file; it is "
            "never replaced. Give a file name (new or an existing regular file)."
        )
    check_dir_target(path.parent, what, for_file=path)


def check_dir_target(folder: Path, what: str, for_file: Path | None = None) -> None:
    """The folder exists and is writable, or its nearest existing ancestor is (to create it)."""
    target = for_file if for_file is not None else folder
    probe = folder
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if os.path.lexists(probe) and not probe.is_dir():
        raise OutputPathError(
            f"{what} {target}: {probe} is a file, not a directory, so nothing can be written "
            "under it. Give a path in an existing directory or a new one."
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        verb = "is" if probe == folder else f"is missing and {probe}, where it would be made, is"
        raise OutputPathError(
            f"{what} {target}: the directory {folder} {verb} not writable. "
            "Give a path in a directory you can write to."
        )


def check_plan(plan: OutputPlan, what: str = "--report") -> None:
    """:func:`check_file_target` for every file of the plan (written or removed)."""
    for path in (*plan.targets(), *plan.unused):
        check_file_target(path, what)
    if plan.run_dir is not None and os.path.lexists(plan.run_dir) and not plan.run_dir.is_dir():
        raise OutputPathError(
            f"{what}: {plan.run_dir} exists and is not a directory. Move it away or set "
            "backtest.report_dir to another folder."
        )


# -- writing ---------------------------------------------------------------------------------------


def write_all(plan: OutputPlan, writers: dict[Path, Callable[[Path], None]]) -> None:
    """Write every file to a temporary name, then move them all into place.

    ``writers`` maps each target to a function writing the complete file to the path it
    is given. Targets of the plan not in ``writers`` (and ``plan.unused``) are removed
    when they exist, so no file of an older run stays beside this run's files.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for target, write in writers.items():
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
                )
                os.close(fd)
                staged.append((tmp, target))
                write(Path(tmp))
                os.chmod(tmp, 0o644)
            except OSError as e:
                # disk full, quota, a folder that became read-only since the check, ...
                raise OutputPathError(
                    f"could not write {target}: {e.strerror or e}. No file of this run was "
                    "put in place; free space or give another --report path and run again."
                ) from None
        for tmp, target in staged:
            os.replace(tmp, target)
        for path in (*plan.unused, *(p for p in plan.targets() if p not in writers)):
            if os.path.isfile(path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    if plan.run_dir is not None and plan.report_dir is not None:
        update_latest(plan.report_dir, plan.run_dir)


def update_latest(report_dir: Path, run_dir: Path) -> Path:
    """Point ``report_dir/latest`` at ``run_dir`` (relative symlink, swapped atomically).

    Where a symlink cannot be made (or ``latest`` is a real file or folder of the user's),
    ``latest.txt`` is written atomically with the run folder's name instead.

    Returns
    -------
    Path
        The pointer written (``latest`` or ``latest.txt``).
    """
    link = report_dir / LATEST
    txt = report_dir / LATEST_TXT
    if not os.path.lexists(link) or os.path.islink(link):
        tmp = report_dir / f".{LATEST}.{os.getpid()}.tmp"
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(run_dir.name, tmp, target_is_directory=True)
            os.replace(tmp, link)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        else:
            if os.path.isfile(txt):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(txt)
            return link
    fd, tmp_txt = tempfile.mkstemp(prefix=f".{LATEST_TXT}.", suffix=".tmp", dir=report_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(run_dir.name + "\n")
        os.chmod(tmp_txt, 0o644)
        os.replace(tmp_txt, txt)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_txt)
    return txt


# -- contents --------------------------------------------------------------------------------------


def lot_decimals(lot_size: float) -> int | None:
    """Decimals of a lot size (0.00001 -> 5, 1 -> 0); None for no lot size (0)."""
    if not lot_size or not math.isfinite(lot_size) or lot_size <= 0:
        return None
    exponent = Decimal(repr(float(lot_size))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def round_significant(values: Any, digits: int = PRICE_DIGITS) -> Any:
    """Round to ``digits`` significant digits, element-wise (NaN and 0 stay as they are)."""
    import numpy as np

    a = np.asarray(values, dtype="float64")
    out = a.copy()
    ok = np.isfinite(a) & (a != 0)
    if ok.any():
        mag = np.floor(np.log10(np.abs(a[ok])))
        scale = 10.0 ** (digits - 1 - mag)
        out[ok] = np.round(a[ok] * scale) / scale
        # the division can leave float noise (e.g. ...0000002): print-and-parse drops it
        out[ok] = np.array([float(f"{x:.{digits}g}") for x in out[ok]])
    return out


def rounded_trades(trades: pd.DataFrame, lot_size: float) -> pd.DataFrame:
    """Trades for the CSV: prices and returns to 10 significant digits, sizes to the lot
    size's decimals, money (P&L, fees) to 1e-8; other columns untouched."""
    import numpy as np

    out = trades.copy()
    for col in ("entry_price", "exit_price", "return"):
        if col in out:
            out[col] = round_significant(out[col].to_numpy())
    decimals = lot_decimals(lot_size)
    if "size" in out:
        size = out["size"].to_numpy(dtype="float64")
        out["size"] = np.round(size, decimals) if decimals is not None else round_significant(size)
    for col in ("pnl", "fees"):
        if col in out:
            out[col] = np.round(out[col].to_numpy(dtype="float64"), MONEY_DECIMALS)
    return out


def compact_float(column: pd.Series) -> pd.Series:
    """``column`` as float32 when every value survives the round trip exactly, else as is."""
    import numpy as np

    a = column.to_numpy(dtype="float64")
    b = a.astype(np.float32)
    same = np.array_equal(b.astype(np.float64), a, equal_nan=True)
    return column.astype(np.float32) if same else column


def write_equity_parquet(frame: pd.DataFrame, path: Path) -> None:
    """The equity curve as Parquet, compressed with zstd.

    ``frame`` is indexed by bar close time. The time column is stored in milliseconds with
    delta encoding (a regular grid costs almost nothing), ``equity`` with byte-stream-split
    encoding (one new value per bar), ``cash`` and the position columns with dictionary
    encoding (they change only at fills); position columns are float32 when every value
    survives that cast exactly, else float64. Reading it back gives the same values.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = frame.copy()
    for col in out.columns:
        if str(col).startswith("position "):
            out[col] = compact_float(out[col])
    index_name = out.index.name or "time"
    out.index = out.index.astype("datetime64[ms, UTC]").rename(index_name)
    table = pa.Table.from_pandas(out)
    step = [c for c in out.columns if c == "cash" or str(c).startswith("position ")]
    encodings = {index_name: "DELTA_BINARY_PACKED"}
    if "equity" in out.columns:
        encodings["equity"] = "BYTE_STREAM_SPLIT"
    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=[str(c) for c in step],
        column_encoding=encodings,
    )
