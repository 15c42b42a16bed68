"""Import candle files into the catalog.

    python cli.py data import PATH [PATH ...] [--exchange binance] [--symbol BTC/USDT]
        [--timeframe 1m] [--force] [--repair] [--max-jump 1.0] [--config PATH]

Formats (recognised by extension and content):

* **Binance public data** kline dumps (``BTCUSDT-1m-2023-01.csv`` or the ``.zip`` they are
  published in): 12 columns (open time, open, high, low, close, volume, close time, quote
  volume, trades, taker base, taker quote, ignore), with or without a header row. The open
  time is in milliseconds or, in newer dumps, microseconds: the unit is detected from the
  magnitude of each value.
* **freqtrade** data files (``BTC_USDT-1m.feather``, ``.parquet``, ``.json``, ``.json.gz``;
  futures ``BTC_USDT_USDT-1h-futures.feather``): feather/parquet with a ``date`` column
  (timezone-aware datetime) and ``open high low close volume``; json as a list of
  ``[ms, open, high, low, close, volume]`` rows.
* **Plain tables** (``.csv``, ``.parquet``, ``.feather``, ``.json``) with a header: a time
  column named ``timestamp``, ``time``, ``open_time``, ``date`` or ``datetime`` holding
  seconds, milliseconds, microseconds (detected by magnitude), ISO text or datetimes
  (naive ones are taken as UTC), and ``open high low close volume``; names are
  case-insensitive, other columns are ignored. A CSV without a header must have the
  Binance column order (the first six columns are used).

Symbol, timeframe and exchange come from the options when given, else from the file name
(``BTCUSDT-1m-...`` or ``BTC_USDT-1m...``) and the folder (freqtrade keeps files under
``.../data/<exchange>/``; a Binance dump implies ``binance``). A timeframe found nowhere is
taken from the most common spacing of the candles (and said so). A ``--symbol`` or
``--timeframe`` that contradicts the file name (``--symbol ETH/USDT`` for
``BTCUSDT-1h-2023-01.csv``) is refused unless ``--force``. In freqtrade names only the real
candle types count as a type (``-futures``; ``-mark``, ``-index``, ``-premiumIndex`` and
``-funding_rate`` are refused, as they are not traded prices); any other part after the
timeframe is just a part of the name. A CSV delimited by ``;``, tabs or ``|`` (with a
decimal comma or not) is recognised from its first lines and said so.

The extreme-jump threshold is ``--max-jump`` when given, else ``data.max_jump`` when the
configuration sets it, else the per-timeframe default of
:func:`datasets.schema.default_max_jump` (0.5 up to 1h, 0.75 up to 4h, 1.0 up to 1d, 2.0
above).

All files are read and validated before anything is written: a bad file (unreadable,
missing columns, bad candles without ``--repair``) stops the command and the catalog is left
untouched. Files of one series are merged (a later file wins on a repeated timestamp) and
written with one atomic ``Catalog.write`` per series. A write can still be refused by the
catalog when a new candle jumps too far from a *stored* neighbour; series written before
that one stay written, and the message says which series failed.

Reading files is :mod:`datasets.import_formats`, what names say is :mod:`datasets.import_names`;
their public names are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datasets.catalog_cli import max_jump_option
from datasets.import_formats import (  # noqa: F401  (re-exported: the reading API)
    BINANCE_COLUMNS,
    OHLCV,
    TIME_NAMES,
    _to_ms_numeric,
    infer_timeframe,
    normalize_table,
    read_candle_file,
    read_candles,
    sniff_delimiter,
)
from datasets.import_names import (  # noqa: F401  (re-exported: the naming API)
    DERIVED_CANDLE_TYPES,
    QUOTES,
    check_name_agrees,
    infer_from_name,
    split_pair,
    split_stem,
)
from gogo2.clikit import config_option
from gogo2.errors import DataError, UserInputError
from gogo2.timeframes import format_time, normalize, timeframe_ms

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ParsedFile:
    """One file read into schema columns, with what was inferred about it."""

    path: Path
    frame: pd.DataFrame
    fmt: str
    symbol: str | None = None
    timeframe: str | None = None
    exchange: str | None = None
    notes: list[str] = field(default_factory=list)


def parse_file(
    path: str | Path,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    exchange: str | None = None,
    force: bool = False,
) -> ParsedFile:
    """Read ``path`` and settle its series key (options first, then name and folder, then data).

    An option that contradicts the file name (``--symbol ETH/USDT`` for
    ``BTCUSDT-1h-2023-01.csv``, ``--timeframe 5m`` for ``BTC_USDT-1h.feather``) is refused
    unless ``force``.

    Raises
    ------
    DataError
        Unreadable file, an option contradicting the file name, or a symbol / exchange that
        cannot be inferred (the message says which option to give).
    """
    path = Path(path)
    hints = infer_from_name(path)
    frame, fmt, read_notes = read_candle_file(path)
    spacing = infer_timeframe(frame["time"].to_numpy())
    override_notes = check_name_agrees(path, hints, symbol, timeframe, force, spacing)
    pf = ParsedFile(path, frame, fmt, notes=[*read_notes, *override_notes])
    pf.symbol = symbol or hints.get("symbol")
    pf.exchange = exchange or hints.get("exchange")
    tf = timeframe or hints.get("timeframe")
    if tf is None:
        tf = infer_timeframe(frame["time"].to_numpy())
        if tf is not None:
            pf.notes.append(f"timeframe {tf} inferred from the candle spacing")
    if tf is not None and tf.endswith("M"):
        raise DataError(
            f"{path}: monthly candles ({tf}) have no fixed length and cannot be stored; "
            "import a finer timeframe."
        )
    if pf.symbol is None:
        raise DataError(
            f"{path}: cannot tell the symbol from the file name. Give it with --symbol "
            "(for example --symbol BTC/USDT), or name the file like BTCUSDT-1m-2023-01.csv or "
            "BTC_USDT-1m.feather."
        )
    if tf is None:
        raise DataError(
            f"{path}: cannot tell the timeframe from the file name or the data. Give it with "
            "--timeframe (for example --timeframe 1m)."
        )
    if pf.exchange is None:
        raise DataError(
            f"{path}: cannot tell the exchange. Give it with --exchange (for example "
            "--exchange binance)."
        )
    pf.timeframe = normalize(tf)
    if spacing is not None and timeframe_ms(spacing) > timeframe_ms(pf.timeframe):
        said = "--timeframe" if timeframe else "the file name"
        fix = f"--timeframe {spacing}"
        if "timeframe" in hints and not force:
            fix += " --force"  # the name says otherwise: the option must overrule it
        raise DataError(
            f"{path}: {said} says {pf.timeframe} but the candles are mostly {spacing} apart. "
            f"Give {fix} (or check the file)."
        )
    return pf


# --------------------------------------------------------------------------- import
@dataclass
class SeriesImport:
    """Validated candles of one series, ready to write."""

    exchange: str
    symbol: str
    timeframe: str
    files: list[Path]
    frame: pd.DataFrame
    changes: list[str]
    notes: list[str] = field(default_factory=list)


def prepare_import(
    paths: list[str | Path],
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    exchange: str | None = None,
    repair: bool = False,
    max_jump: float | None = None,
    force: bool = False,
) -> tuple[list[ParsedFile], list[SeriesImport]]:
    """Read and validate every file; nothing is written.

    Files of one (exchange, symbol, timeframe) are merged in the given order (a later file
    wins on a repeated timestamp) and validated again together, so a jump between files is
    caught too. ``max_jump`` None means the per-timeframe default
    (:func:`datasets.schema.default_max_jump`); ``force`` lets ``symbol`` / ``timeframe``
    overrule a file name that says otherwise.

    Raises
    ------
    DataError, CandleValidationError
        The first bad file (or pair of files), named in the message.
    """
    import pandas as pd

    from datasets.schema import check_candles, resolve_max_jump

    if not paths:
        raise UserInputError("data import: give at least one file.")
    parsed = [
        parse_file(p, symbol=symbol, timeframe=timeframe, exchange=exchange, force=force)
        for p in paths
    ]
    groups: dict[tuple[str, str, str], list[tuple[ParsedFile, pd.DataFrame, list[str]]]] = {}
    for pf in parsed:
        assert pf.exchange and pf.symbol and pf.timeframe
        clean, changes, _ = check_candles(
            pf.frame,
            pf.timeframe,
            origin=str(pf.path),
            repair=repair,
            max_jump=resolve_max_jump(pf.timeframe, max_jump),
        )
        groups.setdefault((pf.exchange, pf.symbol, pf.timeframe), []).append((pf, clean, changes))
    series = []
    for (ex, sym, tf), items in groups.items():
        changes = [f"{pf.path.name}: {c}" for pf, _, cs in items for c in cs]
        if len(items) == 1:
            frame = items[0][1]
        else:
            merged = pd.concat([f for _, f, _ in items], ignore_index=True)
            merged = merged.drop_duplicates("time", keep="last").sort_values("time", kind="stable")
            origin = " + ".join(str(pf.path) for pf, _, _ in items)
            frame, more, _ = check_candles(
                merged, tf, origin=origin, repair=repair, max_jump=resolve_max_jump(tf, max_jump)
            )
            changes += more
        notes = [f"{pf.path.name}: {n}" for pf, _, _ in items for n in pf.notes]
        files = [pf.path for pf, _, _ in items]
        series.append(SeriesImport(ex, sym, tf, files, frame, changes, notes))
    return parsed, series


def import_files(
    catalog: Any,
    paths: list[str | Path],
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    exchange: str | None = None,
    repair: bool = False,
    max_jump: float | None = None,
    force: bool = False,
) -> list[tuple[SeriesImport, Any]]:
    """Validate all ``paths`` first, then write each series to ``catalog`` (``source="real"``).

    ``max_jump`` (a fraction) replaces the per-timeframe extreme-jump threshold of
    :func:`datasets.schema.default_max_jump`, for the files and for the seams with what is
    stored; the catalog's own ``max_jump`` is not used here.

    Returns
    -------
    list of (SeriesImport, WriteReport)
    """
    from datasets.schema import resolve_max_jump

    _, series = prepare_import(
        paths,
        symbol=symbol,
        timeframe=timeframe,
        exchange=exchange,
        repair=repair,
        max_jump=max_jump,
        force=force,
    )
    out = []
    for s in series:
        report = catalog.write(
            s.frame,
            exchange=s.exchange,
            symbol=s.symbol,
            timeframe=s.timeframe,
            source="real",
            repair=repair,
            origin=" + ".join(str(p) for p in s.files),
            max_jump=resolve_max_jump(s.timeframe, max_jump),
        )
        out.append((s, report))
    return out


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--exchange", default=None, help="Exchange the candles come from (ccxt id).")
@click.option("--symbol", default=None, help="Symbol, e.g. BTC/USDT (default: from the file name).")
@click.option(
    "--timeframe", default=None, help="Timeframe, e.g. 1m (default: from the name or the data)."
)
@click.option(
    "--force",
    is_flag=True,
    help="Let --symbol / --timeframe overrule a file name that says otherwise.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Sort, de-duplicate and drop bad candles (each change is reported) instead of refusing.",
)
@max_jump_option
@config_option
def import_cmd(
    paths: tuple[str, ...],
    exchange: str | None,
    symbol: str | None,
    timeframe: str | None,
    force: bool,
    repair: bool,
    max_jump: float | None,
    config_path: str | None,
) -> None:
    """Import Binance, freqtrade or plain CSV candle files into the catalog.

    Every file is read and validated before anything is written; a bad file leaves the
    catalog untouched.
    """
    from rich.console import Console

    from datasets.catalog import Catalog
    from datasets.catalog_cli import stored_in
    from datasets.schema import configured_max_jump
    from gogo2.clikit import load

    settings = load(config_path)
    if timeframe is not None:
        timeframe = normalize(timeframe)
    catalog = Catalog.from_settings(settings)
    out = Console(highlight=False, soft_wrap=True)
    results = import_files(
        catalog,
        list(paths),
        symbol=symbol,
        timeframe=timeframe,
        exchange=exchange.strip().lower() if exchange else None,
        repair=repair,
        max_jump=max_jump if max_jump is not None else configured_max_jump(settings.data),
        force=force,
    )
    for s, report in results:
        out.print(
            f"{s.exchange} {s.symbol} {s.timeframe}: {report.rows_written} candles imported "
            f"({report.rows_new} new) from {len(s.files)} file(s), "
            f"{format_time(report.first)} .. {format_time(report.last)}.",
            markup=False,
        )
        for note in s.notes:
            out.print(f"  note: {note}", markup=False)
        for c in s.changes:
            out.print(f"  repaired: {c}", markup=False)
        for a, b, missing in report.gaps:
            out.print(
                f"  gap: {missing} missing candle(s) between {format_time(a)} and "
                f"{format_time(b)} (not filled).",
                markup=False,
            )
    out.print(stored_in(catalog), markup=False)
