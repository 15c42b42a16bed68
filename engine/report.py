"""QuantStats HTML tearsheet of a backtest against buy-and-hold of the same symbols.

The benchmark
-------------
``buy_and_hold_equity`` is an equal-weight, never-rebalanced portfolio of the
backtest's symbols, built from the *same bars' closes* the strategy traded on,
starting at the same time as the strategy's equity curve: at the close of the
first bar each symbol gets ``1 / n_symbols`` of the capital (a symbol that has
no close yet keeps its share in cash until its first close, then buys at it).
Each share then follows ``close_t / close_at_purchase``; a missing close carries
the last one. It pays no fee and no slippage: it is the passive yardstick, not a
tradeable alternative. Both curves are turned into daily returns with the same
rule (:func:`engine.metrics.daily_returns`), so the report compares like with like.

Starting from the initial capital
---------------------------------
QuantStats measures drawdowns from the first return it is given: a strategy
underwater from its first day would show no drawdown at all (Max Drawdown "-",
an empty "Worst 10 Drawdowns"). :func:`tearsheet_for_result` therefore prepends
one flat day (return 0, labelled the day before the first) to both series, so
the initial capital is the first peak, as in :mod:`engine.metrics`.

Fixes applied to QuantStats' HTML
---------------------------------
* the title is ours alone: QuantStats' " (Compounded)" suffix is removed and
  its date line shows the period run (not the prepended flat day);
* "﹪" (U+FE6A, a glyph most fonts lack, after "CAGR") becomes "%";
* a drawdown not recovered by the end is shown as "not recovered" (QuantStats
  puts the last day in "Recovered" and "Max DD Period End");
* on a period shorter than :data:`engine.metrics.MIN_ANNUALISED_DAYS` days the
  annualised figures read "n/a (period < 30 days)" and a note says why.

Quiet by design
---------------
quantstats and matplotlib are imported only inside :func:`write_tearsheet`,
with the Agg backend. Their FutureWarnings/RuntimeWarnings/UserWarnings are
silenced for that call only, and so is the ``matplotlib.font_manager`` logger
(quantstats asks for Arial, which most Linux machines lack). The font family is
set to DejaVu Sans, which matplotlib ships. The HTML is written to a temporary
file next to the target and moved into place, so an existing report is never
left half-written.
"""

from __future__ import annotations

import contextlib
import html
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engine.metrics import MIN_ANNUALISED_DAYS, daily_returns, max_drawdown

if TYPE_CHECKING:
    from datasets.bars import Bars

STRATEGY_TITLE = "Strategy"
BENCHMARK_TITLE = "Buy & hold (equal weight)"
FONT_FAMILY = "DejaVu Sans"
NOT_RECOVERED = "not recovered"
SHORT_PERIOD_CELL = f"n/a (period &lt; {MIN_ANNUALISED_DAYS} days)"
ANNUALISED_ROWS = (
    "CAGR%",
    "Sharpe",
    "Smart Sharpe",
    "Sortino",
    "Smart Sortino",
    "Sortino/√2",
    "Smart Sortino/√2",
    "Volatility (ann.)",
    "Calmar",
)
"""Rows of QuantStats' metrics table that are annualised (withheld on short periods)."""


def buy_and_hold_equity(bars: Bars, initial: float = 1.0) -> pd.Series:
    """Equal-weight buy-and-hold value of ``bars``' symbols after each bar.

    Parameters
    ----------
    bars : datasets.bars.Bars
        The bars the strategy ran on (base timeframe).
    initial : float
        Starting capital.

    Returns
    -------
    pd.Series
        Indexed by bar close times (tz-aware UTC), like ``BacktestResult.equity``.
    """
    close = np.asarray(bars.close, dtype="float64")
    if close.ndim == 1:
        close = close[:, None]
    n, k = close.shape
    # carry the last close over holes
    filled = pd.DataFrame(close).ffill().to_numpy()
    value = np.empty((n, k))
    for j in range(k):
        col = filled[:, j]
        valid = np.flatnonzero(np.isfinite(col) & (col > 0))
        if not len(valid):
            value[:, j] = 1.0
            continue
        first = valid[0]
        value[:first, j] = 1.0
        value[first:, j] = col[first:] / col[first]
    total = initial * value.mean(axis=1)
    index = pd.to_datetime(bars.close_time, unit="ms", utc=True)
    return pd.Series(total, index=index, name=BENCHMARK_TITLE)


def report_title(
    strategy: str,
    symbols: Sequence[str],
    start: str,
    end: str,
    synthetic: bool,
    timeframe: str = "",
) -> str:
    """Title naming the strategy, symbols, period (and timeframe), with "synthetic data" if so."""
    tf = f" {timeframe}" if timeframe else ""
    title = f"{strategy} on {', '.join(symbols)}{tf}, {start} to {end}"
    if synthetic:
        title += " (synthetic data, not market data)"
    return title


@contextlib.contextmanager
def quiet_plotting() -> Iterator[None]:
    """Silence quantstats/pandas/matplotlib warnings and font noise inside the block only."""
    font_logger = logging.getLogger("matplotlib.font_manager")
    old_level = font_logger.level
    font_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (
                FutureWarning,
                RuntimeWarning,
                UserWarning,
                DeprecationWarning,
                PendingDeprecationWarning,
            ):
                warnings.simplefilter("ignore", category)
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        font_logger.setLevel(old_level)


def write_tearsheet(
    returns: pd.Series,
    benchmark: pd.Series | None,
    path: str | Path,
    title: str,
    *,
    parameters: dict[str, Any] | None = None,
    strategy_title: str = STRATEGY_TITLE,
    benchmark_title: str = BENCHMARK_TITLE,
    figfmt: str = "svg",
    period: str | None = None,
    short_period: bool | None = None,
) -> Path:
    """Write a QuantStats HTML tearsheet of daily ``returns`` against ``benchmark``.

    Parameters
    ----------
    returns, benchmark : pd.Series
        Daily simple returns indexed by day (tz-aware or naive UTC); see
        :func:`engine.metrics.daily_returns`. ``benchmark`` may be None.
    path : str or Path
        Output file; parent folders are created. Written atomically.
    title : str
        Shown at the top of the page and in the browser tab (see :func:`report_title`).
    parameters : dict, optional
        Shown in the subtitle (e.g. fee, slippage, strategy parameters).
    figfmt : str
        "svg" (sharp, larger file) or "png".
    period : str, optional
        Shown as the date line under the title (default: QuantStats' first to last day).
    short_period : bool, optional
        Withhold the annualised figures; default: fewer than ``MIN_ANNUALISED_DAYS``
        daily returns.

    Returns
    -------
    Path
        The written file.
    """
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no window, no display needed; leave a caller's backend alone
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rets = _naive_daily(returns, strategy_title)
    bench = _naive_daily(benchmark, benchmark_title) if benchmark is not None else None
    with quiet_plotting(), contextlib.ExitStack() as stack:
        import matplotlib.pyplot as plt
        import quantstats as qs

        # quantstats sets "Arial" on import; use a family matplotlib always has
        plt.rcParams["font.family"] = FONT_FAMILY
        stack.enter_context(_undefined_r_squared_is_nan(qs))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            qs.reports.html(
                rets,
                benchmark=bench,
                rf=0.0,
                title=html.escape(title),
                output=tmp,
                periods_per_year=365,
                compounded=True,
                figfmt=figfmt,
                match_dates=False,
                strategy_title=strategy_title,
                benchmark_title=benchmark_title,
                parameters={k: html.escape(str(v)) for k, v in (parameters or {}).items()},
            )
            _set_page_title(Path(tmp), title)
            if short_period is None:
                short_period = len(rets) < MIN_ANNUALISED_DAYS
            fix_html(
                Path(tmp),
                title,
                strategy=rets,
                benchmark=bench,
                period=period,
                short_period=short_period,
            )
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            plt.close("all")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return path


def tearsheet_for_result(
    result: Any,
    bars: Bars,
    path: str | Path,
    title: str,
    *,
    parameters: dict[str, Any] | None = None,
    figfmt: str = "svg",
    equity: pd.Series | None = None,
    metrics: Any = None,
) -> Path:
    """Tearsheet of a ``BacktestResult`` against equal-weight buy-and-hold of ``bars``.

    Both curves are reduced to daily returns by :func:`engine.metrics.daily_returns`
    from the same initial capital and the same first bar, and both get a flat first
    day (:func:`from_initial_capital`). ``equity`` replaces ``result.equity`` (e.g. the
    curve without the warm-up bars); ``metrics`` (an :class:`engine.metrics.Metrics`)
    decides whether the period is too short for annualised figures.
    """
    from gogo2.timeframes import format_time

    cash = float(result.config.cash)
    strat = daily_returns(result.equity if equity is None else equity, cash)
    bench = daily_returns(buy_and_hold_equity(bars, cash), cash)
    period = None
    if bars.n:
        first, last = format_time(int(bars.time[0])), format_time(int(bars.close_time[-1]))
        period = f"{first} to {last} UTC"
    short = None if metrics is None else bool(getattr(metrics, "short_period", False))
    return write_tearsheet(
        from_initial_capital(strat),
        from_initial_capital(bench),
        path,
        title,
        parameters=parameters,
        figfmt=figfmt,
        period=period,
        short_period=short if short is not None else len(strat) < MIN_ANNUALISED_DAYS,
    )


def from_initial_capital(returns: pd.Series) -> pd.Series:
    """``returns`` with one flat day (return 0) before the first: the initial capital.

    QuantStats compounds from the first return it is given; with this day the initial
    capital is the first peak of its drawdowns, as in :func:`engine.metrics.max_drawdown`.
    """
    if returns.empty:
        return returns
    first = returns.index[0] - pd.Timedelta(days=1)
    flat = pd.Series([0.0], index=pd.DatetimeIndex([first], tz=returns.index.tz))
    out = pd.concat([flat, returns.astype("float64")])
    out.name = returns.name
    return out


@contextlib.contextmanager
def _undefined_r_squared_is_nan(qs: Any) -> Iterator[None]:
    """R² of a strategy that never moved (no trade: all daily returns 0) is undefined.

    quantstats lets scipy's ``linregress`` raise on it and the whole tearsheet fails;
    inside this block it is reported as NaN instead, which is what it is.
    """
    original = qs.stats.r_squared

    def r_squared(*args: Any, **kwargs: Any) -> float:
        try:
            return original(*args, **kwargs)
        except ValueError:
            return float("nan")

    qs.stats.r_squared = r_squared
    try:
        yield
    finally:
        qs.stats.r_squared = original


def _set_page_title(path: Path, title: str) -> None:
    """Put ``title`` in the browser tab too (quantstats writes a fixed ``<title>``)."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find("<title>"), text.find("</title>")
    if 0 <= start < end:
        text = text[: start + len("<title>")] + html.escape(title) + text[end:]
        path.write_text(text, encoding="utf-8")


def fix_html(
    path: Path,
    title: str,
    *,
    strategy: pd.Series,
    benchmark: pd.Series | None,
    period: str | None = None,
    short_period: bool = False,
) -> None:
    """Correct QuantStats' HTML in place (see the module docstring, "Fixes")."""
    import re

    text = path.read_text(encoding="utf-8")
    safe = html.escape(title)
    text = text.replace(f"{safe} (Compounded)", safe)
    text = text.replace("\ufe6a", "%")
    if period is not None:
        text = re.sub(
            r"(<h1>.*?<dt>)(.*?)(</dt>)",
            lambda m: m.group(1) + html.escape(period) + m.group(3),
            text,
            count=1,
            flags=re.S,
        )
    # metrics table columns: benchmark first (when given), then the strategy
    columns = ([benchmark] if benchmark is not None else []) + [strategy]
    unrecovered = [_max_drawdown_unrecovered(r) for r in columns]
    text = _replace_row_cells(
        text, "Max DD Period End", [NOT_RECOVERED if u else None for u in unrecovered]
    )
    if _ends_underwater(strategy):
        last = strategy.index[-1].strftime("%Y-%m-%d")
        text = _mark_open_drawdown(text, last)
    if short_period:
        for label in ANNUALISED_ROWS:
            text = _replace_row_cells(text, label, [SHORT_PERIOD_CELL] * len(columns))
        note = (
            f'<p class="note"><strong>Period shorter than {MIN_ANNUALISED_DAYS} days:</strong> '
            "annualised figures (CAGR, volatility, Sharpe, Sortino, Calmar) are not given; "
            "on so few days they say more about the annualisation than about the strategy.</p>"
        )
        text = re.sub(r"(</h1>)", lambda m: m.group(1) + note, text, count=1)
    path.write_text(text, encoding="utf-8")


def _wealth(returns: pd.Series) -> np.ndarray:
    r = returns.astype("float64").fillna(0.0).to_numpy()
    return np.concatenate([[1.0], np.cumprod(1.0 + r)])


def _ends_underwater(returns: pd.Series) -> bool:
    w = _wealth(returns)
    return bool(w[-1] < w.max())


def _max_drawdown_unrecovered(returns: pd.Series) -> bool:
    dd = max_drawdown(returns)
    return dd.depth < 0 and dd.recovery is None


def _replace_row_cells(text: str, label: str, cells: list[str | None]) -> str:
    """Replace the value cells of the metrics-table row ``label`` (None keeps a cell)."""
    import re

    pattern = re.compile(r"<tr><td>" + re.escape(label) + r"</td>((?:<td>.*?</td>)+)</tr>")

    def swap(m: re.Match[str]) -> str:
        values = re.findall(r"<td>(.*?)</td>", m.group(1))
        new = [c if c is not None else v for v, c in zip(values, cells, strict=False)]
        new += values[len(new) :]
        return f"<tr><td>{label}</td>" + "".join(f"<td>{v}</td>" for v in new) + "</tr>"

    return pattern.sub(swap, text, count=1)


def _mark_open_drawdown(text: str, last_day: str) -> str:
    """In "Worst 10 Drawdowns", the drawdown still open at the end is not recovered."""
    import re

    start = text.find('<div id="ddinfo">')
    if start < 0:
        return text
    end = text.find("</table>", start)
    table = text[start:end]
    table = re.sub(
        r"(<tr><td>[^<]*</td><td>)" + re.escape(last_day) + r"(</td>)",
        lambda m: m.group(1) + NOT_RECOVERED + m.group(2),
        table,
        count=1,
    )
    return text[:start] + table + text[end:]


def _naive_daily(returns: pd.Series, name: str) -> pd.Series:
    s = returns.astype("float64").copy()
    if isinstance(s.index, pd.DatetimeIndex) and s.index.tz is not None:
        s.index = s.index.tz_convert("UTC").tz_localize(None)
    s.name = name
    return s
