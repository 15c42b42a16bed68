"""Performance metrics of a backtest: returns, risk, drawdown and trade statistics.

Conventions
-----------
* **Daily returns.** Every return-based statistic is computed from the equity
  curve resampled to calendar days in UTC. A bar belongs to the UTC day during
  which it closes, and **a bar closing exactly at 00:00 UTC belongs to the day
  that just ended** (bins are right-closed: day D holds the closes in
  ``(D 00:00, D+1 00:00]``). So a 1m bar opened at 23:59 counts for the day it
  opened in, a 1h bar opened at 23:00 too, and a daily candle for the day it is
  labelled with. The day's equity is the equity after its last bar. The first day's return is measured against the initial cash, so
  a loss on day one is a drawdown from the starting equity. A day without any
  bar (a hole in the data) carries the previous equity: its return is 0.
* **Year length.** Crypto markets trade every day: ``periods = 365`` daily
  returns make one year. Volatility, Sharpe and Sortino are annualised with
  ``sqrt(365)``; CAGR uses ``years = number of daily returns / 365``.
* **Short periods.** Below ``MIN_ANNUALISED_DAYS`` (30) daily returns an
  annualised figure says more about the annualisation than about the strategy
  (five good days make a CAGR of hundreds of percent): :func:`compute_metrics`
  sets CAGR, volatility, Sharpe, Sortino and Calmar to NaN and ``short_period``
  to True; the summary shows "n/a (period < 30 days)", the JSON null.
* **Risk-free rate** is 0.
* **Sharpe** = mean / sample standard deviation (``ddof=1``) of the daily
  returns, times ``sqrt(365)``.
* **Sortino** uses the downside deviation ``sqrt(sum(min(r, 0)**2) / N)`` over
  *all* N daily returns (target 0, the Red Rock Capital definition, also used
  by QuantStats), times ``sqrt(365)``.
* **Max drawdown** is the deepest fall of daily equity from its running peak,
  the initial cash included as the first peak, as a negative fraction. Its
  dates are day labels: ``peak`` (last day at the peak before the fall; the
  period start when the fall starts on day one), ``trough`` and ``recovery``
  (first day back at or above the peak, ``None`` when it never recovered).
  ``max_drawdown_bar`` is the same depth measured on every bar's equity, which
  is always at least as deep: it is shown beside the daily figure.
* **Calmar** = CAGR / |max drawdown| (daily).
* **Trade statistics** come from the closed trades (pnl net of every fee):
  win rate = trades with pnl > 0 / trades; profit factor = gross profit /
  gross loss (``inf`` with no losing trade, NaN with no trade); expectancy =
  mean P&L per trade in quote currency, and ``expectancy_pct`` the mean of the
  trades' returns (pnl / entry notional). The two can have opposite signs when
  trades differ in size (many small winners, a few large losers): the summary
  labels them "mean P&L per trade" and "mean return per trade".
* **Warm-up.** :func:`from_result` measures from the first bar whose decision can
  act (``result.warmup``), like ``cli.py backtest``: equity, exposure and the
  period all exclude the warm-up bars.
* A ratio whose denominator is 0 (flat equity, no losing day) is NaN, shown
  as "n/a".

These match ``quantstats.stats`` called with ``periods=365`` (and ``rf=0``) on
the same daily returns; ``tests/test_metrics_quantstats.py`` checks it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

PERIODS = 365
"""Daily returns per year (crypto trades every day)."""
MIN_ANNUALISED_DAYS = 30
"""Fewer daily returns than this: annualised figures are not given (NaN, "n/a")."""
SHORT_PERIOD_NOTE = f"n/a (period < {MIN_ANNUALISED_DAYS} days)"
ANNUALISED = ("cagr", "volatility", "sharpe", "sortino", "calmar")
"""The figures withheld on a short period."""


@dataclass(frozen=True)
class Drawdown:
    """The deepest peak-to-trough fall of an equity curve.

    Attributes
    ----------
    depth : float
        Negative fraction (-0.25 = 25 % below the peak); 0.0 when equity never fell.
    peak, trough : pd.Timestamp or None
        Day of the peak before the fall and day of the lowest point (None when depth is 0).
    recovery : pd.Timestamp or None
        First day back at or above the peak; None when not recovered by the end.
    """

    depth: float
    peak: pd.Timestamp | None = None
    trough: pd.Timestamp | None = None
    recovery: pd.Timestamp | None = None

    @property
    def duration_days(self) -> int | None:
        """Days from peak to recovery; None when there was no fall or no recovery yet."""
        if self.peak is None or self.recovery is None:
            return None
        return int((self.recovery - self.peak) / pd.Timedelta(days=1))


@dataclass(frozen=True)
class Metrics:
    """Every figure of a backtest summary; see the module docstring for the conventions."""

    start: pd.Timestamp | None
    end: pd.Timestamp | None
    days: int
    initial_equity: float
    final_equity: float
    total_return: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: Drawdown
    max_drawdown_bar: float
    trades: int
    win_rate: float
    profit_factor: float
    expectancy: float
    expectancy_pct: float
    avg_win: float
    avg_loss: float
    best_trade: float
    worst_trade: float
    exposure: float
    fees_paid: float
    extra: dict[str, Any] = field(default_factory=dict)
    short_period: bool = False
    """True when the period has fewer than ``MIN_ANNUALISED_DAYS`` daily returns: the
    annualised figures (``ANNUALISED``) are then NaN."""

    def as_dict(self) -> dict[str, Any]:
        """Flat dict (drawdown fields prefixed ``max_drawdown_``), e.g. for JSON or a DataFrame row."""
        d = asdict(self)
        dd = d.pop("max_drawdown")
        d["max_drawdown"] = dd["depth"]
        d["max_drawdown_peak"] = dd["peak"]
        d["max_drawdown_trough"] = dd["trough"]
        d["max_drawdown_recovery"] = dd["recovery"]
        extra = d.pop("extra")
        d.update(extra)
        return d


# -- return series -------------------------------------------------------------------------------


def daily_equity(equity: pd.Series) -> pd.Series:
    """End-of-day equity, one value per UTC calendar day, labelled by the day.

    Parameters
    ----------
    equity : pd.Series
        Equity after each bar, indexed by bar *close* times (tz-aware UTC or naive UTC).

    Returns
    -------
    pd.Series
        Indexed by day (midnight UTC, tz-aware), a bar closing exactly at midnight
        counted in the day before. Days without a bar carry the previous value.
    """
    eq = _utc_series(equity).astype("float64")
    if eq.empty:
        return eq
    # Right-closed daily bins: a close at exactly 00:00 ends the previous day.
    day = (eq.index - pd.Timedelta(milliseconds=1)).floor("D")
    last = eq.groupby(day).last()
    full = pd.date_range(last.index[0], last.index[-1], freq="D", tz="UTC")
    return last.reindex(full).ffill()


def daily_returns(equity: pd.Series, initial: float | None = None) -> pd.Series:
    """Daily simple returns of an equity curve (see the module docstring).

    Parameters
    ----------
    equity : pd.Series
        Equity after each bar, indexed by bar close times.
    initial : float, optional
        Equity before the first bar; the first day's return is measured against it.
        Defaults to the first value of ``equity``.

    Returns
    -------
    pd.Series
        float64 returns indexed by day (UTC midnight, tz-aware), named ``"returns"``.
    """
    days = daily_equity(equity)
    if days.empty:
        return pd.Series([], index=days.index, dtype="float64", name="returns")
    start = float(equity.iloc[0]) if initial is None else float(initial)
    prev = days.shift(1)
    prev.iloc[0] = start
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = days / prev - 1.0
    # after a ruin (equity 0) nothing is left to gain or lose: the return is 0, not NaN
    ret = ret.where(prev != 0.0, 0.0)
    return ret.astype("float64").rename("returns")


def total_return(returns: pd.Series) -> float:
    """Compounded return over the whole series."""
    r = _clean(returns)
    return float(np.prod(1.0 + r) - 1.0) if len(r) else 0.0


def cagr(returns: pd.Series, periods: int = PERIODS) -> float:
    """Compound annual growth rate, ``years = len(returns) / periods``; NaN below -100 %."""
    r = _clean(returns)
    if not len(r):
        return math.nan
    wealth = 1.0 + total_return(r)
    if wealth < 0:
        return math.nan
    return float(wealth ** (periods / len(r)) - 1.0)


def volatility(returns: pd.Series, periods: int = PERIODS) -> float:
    """Annualised sample standard deviation (``ddof=1``)."""
    r = _clean(returns)
    if len(r) < 2:
        return math.nan
    return float(np.std(r, ddof=1) * math.sqrt(periods))


def sharpe(returns: pd.Series, periods: int = PERIODS) -> float:
    """Annualised Sharpe ratio with a zero risk-free rate; NaN when the returns do not vary."""
    r = _clean(returns)
    if len(r) < 2:
        return math.nan
    sd = float(np.std(r, ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return math.nan
    return float(np.mean(r) / sd * math.sqrt(periods))


def sortino(returns: pd.Series, periods: int = PERIODS) -> float:
    """Annualised Sortino ratio: mean over the downside deviation (target 0, all N returns)."""
    r = _clean(returns)
    if not len(r):
        return math.nan
    downside = math.sqrt(float(np.sum(np.minimum(r, 0.0) ** 2)) / len(r))
    if downside == 0.0:
        return math.nan
    return float(np.mean(r) / downside * math.sqrt(periods))


def max_drawdown(returns: pd.Series, start: pd.Timestamp | None = None) -> Drawdown:
    """Deepest fall of the compounded daily equity below its running peak.

    Parameters
    ----------
    returns : pd.Series
        Daily returns indexed by day.
    start : pd.Timestamp, optional
        Reported as the peak when the fall starts on the first day (the peak is then
        the initial equity). Defaults to the first day label.
    """
    r = returns.astype("float64").fillna(0.0)
    if r.empty:
        return Drawdown(0.0)
    wealth = np.concatenate([[1.0], np.cumprod(1.0 + r.to_numpy())])
    peaks = np.maximum.accumulate(wealth)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, wealth / peaks - 1.0, -1.0)
    i_trough = int(np.argmin(dd))
    depth = float(dd[i_trough])
    if depth >= 0.0:
        return Drawdown(0.0)
    # last time at the peak value before the trough
    i_peak = int(np.flatnonzero(wealth[: i_trough + 1] >= peaks[i_trough])[-1])
    labels = r.index
    first = start if start is not None else labels[0]
    peak = first if i_peak == 0 else labels[i_peak - 1]
    trough = labels[i_trough - 1]
    after = np.flatnonzero(wealth[i_trough:] >= peaks[i_trough])
    recovery = labels[i_trough + int(after[0]) - 1] if len(after) else None
    return Drawdown(depth, peak, trough, recovery)


def calmar(returns: pd.Series, periods: int = PERIODS) -> float:
    """CAGR over the absolute maximum drawdown; NaN without a drawdown."""
    depth = max_drawdown(returns).depth
    if depth == 0.0:
        return math.nan
    return cagr(returns, periods) / abs(depth)


def bar_max_drawdown(equity: pd.Series, initial: float | None = None) -> float:
    """Deepest fall below the running peak measured on every bar (negative fraction)."""
    v = equity.to_numpy(dtype="float64")
    v = v[np.isfinite(v)]
    if initial is not None:
        v = np.concatenate([[float(initial)], v])
    if not len(v):
        return 0.0
    peaks = np.maximum.accumulate(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, v / peaks - 1.0, -1.0)
    return float(min(dd.min(), 0.0))


# -- trades --------------------------------------------------------------------------------------


def trade_stats(trades: pd.DataFrame | None) -> dict[str, float | int]:
    """Win rate, profit factor, expectancy (quote and %) and extremes of closed trades.

    Parameters
    ----------
    trades : pd.DataFrame or None
        One row per closed trade with at least ``pnl`` (net of fees); ``return``
        (pnl / entry notional) is used for the percentage figures when present.
    """
    n = 0 if trades is None else len(trades)
    if n == 0:
        nan = math.nan
        return dict(
            trades=0,
            win_rate=nan,
            profit_factor=nan,
            expectancy=nan,
            expectancy_pct=nan,
            avg_win=nan,
            avg_loss=nan,
            best_trade=nan,
            worst_trade=nan,
        )
    assert trades is not None
    pnl = trades["pnl"].to_numpy(dtype="float64")
    ret = trades["return"].to_numpy(dtype="float64") if "return" in trades else None
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    if gross_loss > 0:
        pf = gross_win / gross_loss
    else:
        pf = math.inf if gross_win > 0 else math.nan
    return dict(
        trades=int(n),
        win_rate=float(len(wins) / n),
        profit_factor=float(pf),
        expectancy=float(pnl.mean()),
        expectancy_pct=float(ret.mean()) if ret is not None else math.nan,
        avg_win=float(wins.mean()) if len(wins) else math.nan,
        avg_loss=float(losses.mean()) if len(losses) else math.nan,
        best_trade=float(ret.max()) if ret is not None else float(pnl.max()),
        worst_trade=float(ret.min()) if ret is not None else float(pnl.min()),
    )


# -- everything ----------------------------------------------------------------------------------


def compute_metrics(
    equity: pd.Series,
    trades: pd.DataFrame | None = None,
    *,
    initial: float | None = None,
    exposure: float = math.nan,
    fees_paid: float | None = None,
    start: pd.Timestamp | None = None,
    periods: int = PERIODS,
    extra: dict[str, Any] | None = None,
    min_days: int = MIN_ANNUALISED_DAYS,
) -> Metrics:
    """All summary figures from an equity curve and its closed trades.

    Parameters
    ----------
    equity : pd.Series
        Equity after each bar, indexed by bar close times (UTC).
    trades : pd.DataFrame, optional
        Closed trades (``pnl``, ``return``, ``fees`` columns are used).
    initial : float, optional
        Equity before the first bar (the initial cash); defaults to ``equity.iloc[0]``.
    exposure : float
        Fraction of bars with an open position (from the engine).
    fees_paid : float, optional
        Total fees; defaults to the sum of ``trades["fees"]`` when present.
    start : pd.Timestamp, optional
        Start of the period (first bar's open time); defaults to the first day label.
    periods : int
        Daily returns per year.
    extra : dict, optional
        More figures to carry along; ``buy_and_hold_return`` is shown in the summary.
    min_days : int
        Fewer daily returns than this: CAGR, volatility, Sharpe, Sortino and Calmar are
        NaN and ``short_period`` is True.

    Returns
    -------
    Metrics
    """
    eq = _utc_series(equity)
    init = float(eq.iloc[0]) if initial is None and len(eq) else float(initial or 0.0)
    rets = daily_returns(eq, init)
    if start is None and len(rets):
        start = rets.index[0]
    end = eq.index[-1] if len(eq) else None
    if fees_paid is None:
        fees_paid = (
            float(trades["fees"].sum()) if trades is not None and "fees" in trades else math.nan
        )
    final = float(eq.iloc[-1]) if len(eq) else init
    short = len(rets) < min_days
    nan = math.nan
    return Metrics(
        start=start,
        end=end,
        days=len(rets),
        initial_equity=init,
        final_equity=final,
        total_return=(final / init - 1.0) if init else math.nan,
        cagr=nan if short else cagr(rets, periods),
        volatility=nan if short else volatility(rets, periods),
        sharpe=nan if short else sharpe(rets, periods),
        sortino=nan if short else sortino(rets, periods),
        calmar=nan if short else calmar(rets, periods),
        max_drawdown=max_drawdown(rets, start=start),
        max_drawdown_bar=bar_max_drawdown(eq, init),
        exposure=float(exposure),
        fees_paid=float(fees_paid),
        extra=dict(extra or {}),
        short_period=short,
        **trade_stats(trades),  # type: ignore[arg-type]
    )


def from_result(
    result: Any,
    start: pd.Timestamp | None = None,
    *,
    extra: dict[str, Any] | None = None,
    min_days: int = MIN_ANNUALISED_DAYS,
) -> Metrics:
    """Metrics of an ``engine.backtest.BacktestResult`` (equity, trades, exposure, fees, config).

    The period starts at the first bar whose decision can act (``result.warmup``): the
    warm-up bars, where no order can be placed, are left out of the equity curve, the
    exposure and the period, exactly as ``cli.py backtest`` reports them. ``start``
    defaults to that bar's open time.
    """
    cash = getattr(getattr(result, "config", None), "cash", None)
    warmup = int(getattr(result, "warmup", 0) or 0)
    equity = result.equity.iloc[warmup:]
    if start is None and warmup < len(result.equity):
        start = pd.Timestamp(int(result.time[warmup]), unit="ms", tz="UTC")
    return compute_metrics(
        equity,
        result.trades,
        initial=cash,
        exposure=float(getattr(result, "exposure", math.nan)),
        fees_paid=float(result.fees_paid) if hasattr(result, "fees_paid") else None,
        start=start,
        extra=extra,
        min_days=min_days,
    )


# -- presentation --------------------------------------------------------------------------------


def fmt_pct(x: float, digits: int = 2) -> str:
    """``0.1234 -> '12.34 %'``; NaN -> 'n/a'."""
    if x is None or not math.isfinite(x):
        return "inf" if x == math.inf else "n/a"
    return f"{x * 100:.{digits}f} %"


def fmt_num(x: float, digits: int = 2) -> str:
    """Fixed-point number; NaN -> 'n/a', infinity -> 'inf'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:,.{digits}f}"


def _fmt_day(ts: pd.Timestamp | None) -> str:
    return "-" if ts is None else pd.Timestamp(ts).strftime("%Y-%m-%d")


def summary_rows(m: Metrics, quote: str = "") -> list[tuple[str, str]]:
    """The metrics as (label, text) pairs in display order."""
    q = f" {quote}" if quote else ""
    dd = m.max_drawdown
    if dd.depth < 0:
        dd_dates = f"{_fmt_day(dd.peak)} -> {_fmt_day(dd.trough)}"
        recovered = _fmt_day(dd.recovery) if dd.recovery is not None else "no (not yet recovered)"
    else:
        dd_dates = recovered = "-"

    def annual(text: str) -> str:
        return SHORT_PERIOD_NOTE if m.short_period else text

    return [
        ("initial equity", fmt_num(m.initial_equity) + q),
        ("final equity", fmt_num(m.final_equity) + q),
        ("total return", fmt_pct(m.total_return)),
        *(
            [("buy & hold return", fmt_pct(m.extra["buy_and_hold_return"]))]
            if "buy_and_hold_return" in m.extra
            else []
        ),
        ("CAGR", annual(fmt_pct(m.cagr))),
        ("volatility (ann.)", annual(fmt_pct(m.volatility))),
        ("Sharpe", annual(fmt_num(m.sharpe))),
        ("Sortino", annual(fmt_num(m.sortino))),
        ("Calmar", annual(fmt_num(m.calmar))),
        ("max drawdown (daily)", fmt_pct(m.max_drawdown.depth)),
        ("max DD peak -> trough", dd_dates),
        ("max DD recovered", recovered),
        ("max drawdown (per bar)", fmt_pct(m.max_drawdown_bar)),
        ("trades", str(m.trades)),
        ("win rate", fmt_pct(m.win_rate, 1)),
        ("profit factor", fmt_num(m.profit_factor)),
        ("mean P&L per trade", fmt_num(m.expectancy) + q if m.trades else "n/a"),
        ("mean return per trade", fmt_pct(m.expectancy_pct, 3) if m.trades else "n/a"),
        (
            "best / worst trade",
            f"{fmt_pct(m.best_trade)} / {fmt_pct(m.worst_trade)}" if m.trades else "n/a",
        ),
        ("exposure", fmt_pct(m.exposure, 1)),
        ("fees paid", fmt_num(m.fees_paid) + q),
    ]


def summary_table(
    m: Metrics,
    header: list[tuple[str, str]] | None = None,
    title: str | None = "Backtest summary",
    quote: str = "",
) -> Table:
    """A two-column rich table: ``header`` rows (strategy, symbols, ...) then the metrics.

    ``title=None`` leaves the title out (rich pads a title to the table's width with
    trailing spaces; the CLI prints its own title line instead).
    """
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for label, value in header or []:
        table.add_row(label, value)
    if header:
        table.add_section()
    for label, value in summary_rows(m, quote):
        table.add_row(label, value)
    return table


def print_summary(
    m: Metrics,
    header: list[tuple[str, str]] | None = None,
    console: Console | None = None,
    title: str = "Backtest summary",
    quote: str = "",
) -> None:
    """Print :func:`summary_table` to ``console`` (a new rich Console on stdout by default)."""
    if console is None:
        from rich.console import Console

        console = Console()
    console.print(summary_table(m, header, title, quote))


# -- helpers -------------------------------------------------------------------------------------


def _clean(returns: pd.Series) -> np.ndarray:
    a = np.asarray(returns, dtype="float64")
    return a[np.isfinite(a)]


def _utc_series(s: pd.Series) -> pd.Series:
    if not isinstance(s.index, pd.DatetimeIndex):
        raise TypeError("equity must be indexed by a DatetimeIndex of bar close times")
    if s.index.tz is None:
        return s.tz_localize("UTC")
    return s.tz_convert("UTC")
