"""QuantStats tearsheet against equal-weight buy-and-hold: content, benchmark maths, quietness."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.bars import Bars
from engine.metrics import daily_returns
from engine.report import buy_and_hold_equity, report_title, write_tearsheet

ROOT = Path(__file__).resolve().parents[1]
MIN = 60_000


def make_bars(close: np.ndarray, start_ms: int = 1_672_531_200_000) -> Bars:
    close = np.ascontiguousarray(close, dtype="float64")
    n, k = close.shape
    t = start_ms + MIN * np.arange(n, dtype="int64")
    return Bars(
        "1m",
        tuple(f"S{j}/USDT" for j in range(k)),
        t,
        close.copy(),
        close.copy(),
        close.copy(),
        close.copy(),
        np.ones_like(close),
    )


def test_buy_and_hold_is_equal_weight_from_the_first_close() -> None:
    close = np.array([[100.0, 10.0], [110.0, 10.0], [120.0, 5.0]])
    eq = buy_and_hold_equity(make_bars(close), initial=1000.0)
    np.testing.assert_allclose(eq.to_numpy(), [1000.0, 1050.0, 850.0])
    # indexed by close times, like the engine's equity
    assert eq.index[0] == pd.Timestamp("2023-01-01 00:01", tz="UTC")


def test_buy_and_hold_late_listing_holds_cash_and_gaps_carry() -> None:
    close = np.array([[100.0, np.nan], [200.0, np.nan], [200.0, 50.0], [np.nan, 100.0]])
    eq = buy_and_hold_equity(make_bars(close), initial=1.0)
    # second half stays cash (1.0) until its first close, then follows 50 -> 100
    np.testing.assert_allclose(eq.to_numpy(), [1.0, 1.5, 1.5, 2.0])


def test_title_names_strategy_symbols_period_and_synthetic() -> None:
    t = report_title("sma_cross", ["BTC/USDT", "ETH/USDT"], "2023-01-01", "2023-01-15", True, "1m")
    for part in ("sma_cross", "BTC/USDT, ETH/USDT", "2023-01-01", "2023-01-15", "synthetic data"):
        assert part in t
    assert "synthetic" not in report_title("x", ["BTC/USDT"], "a", "b", False)


def _returns(n: int, seed: int) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2023-01-01", periods=n, freq="D", tz="UTC")
    return (
        pd.Series(rng.normal(0.001, 0.02, n), idx),
        pd.Series(rng.normal(0.0005, 0.03, n), idx),
    )


@pytest.mark.parametrize("synthetic", [True, False])
def test_tearsheet_html_has_title_and_benchmark(tmp_path: Path, synthetic: bool) -> None:
    strat, bench = _returns(40, seed=11)
    title = report_title(
        "sma_cross", ["BTC/USDT", "ETH/USDT"], "2023-01-01", "2023-02-10", synthetic
    )
    out = write_tearsheet(strat, bench, tmp_path / "sub" / "r.html", title)
    assert out.is_file()
    text = out.read_text(encoding="utf-8")
    assert "sma_cross on BTC/USDT, ETH/USDT" in text
    # the browser tab shows it too
    assert f"<title>{title}</title>" in text
    assert ("synthetic data" in text) is synthetic
    assert "Buy &amp; hold" in text or "Buy & hold" in text
    assert not list(out.parent.glob("*.tmp"))  # atomic write leaves no temp file


def test_tearsheet_of_a_strategy_that_never_traded_replaces_the_old_file(
    tmp_path: Path,
) -> None:
    import quantstats as qs

    original = qs.stats.r_squared
    target = tmp_path / "r.html"
    target.write_text("old")
    _strat, bench = _returns(20, seed=5)
    flat = bench * 0.0  # no trade: every daily return is 0, R² against the benchmark undefined
    write_tearsheet(flat, bench, target, "never traded")
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<!") and "never traded" in text
    assert qs.stats.r_squared is original  # the workaround does not outlive the call


def test_tearsheet_prints_nothing_to_stderr(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import numpy as np, pandas as pd
        from engine.report import write_tearsheet
        rng = np.random.default_rng(1)
        idx = pd.date_range("2023-01-01", periods=30, freq="D", tz="UTC")
        s = pd.Series(rng.normal(0, 0.02, 30), idx)
        b = pd.Series(rng.normal(0, 0.02, 30), idx)
        s.iloc[:3] = 0.0  # a flat start: divisions by zero inside quantstats
        write_tearsheet(s, b, {str(tmp_path / "q.html")!r}, "quiet test (synthetic data)")
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "PYTHONWARNINGS")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout == ""
    assert (tmp_path / "q.html").is_file()


def test_benchmark_and_strategy_share_the_daily_rule() -> None:
    close = np.linspace(100, 200, 3 * 1440)[:, None]
    bars = make_bars(close)
    bench = daily_returns(buy_and_hold_equity(bars, 1.0), 1.0)
    assert len(bench) == 3
    assert float(np.prod(1 + bench) - 1) == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.5, 2.0), st.floats(0.5, 2.0)), min_size=1, max_size=30),
    st.floats(0.01, 1e4),
)
def test_buy_and_hold_properties(moves: list[tuple[float, float]], scale: float) -> None:
    close = np.cumprod(np.asarray(moves), axis=0) * np.array([100.0, 3.0])
    eq = buy_and_hold_equity(make_bars(close), initial=10.0).to_numpy()
    growth = close / close[0]
    # equal weight at the start, never rebalanced: the mean of the growths
    np.testing.assert_allclose(eq, 10.0 * growth.mean(axis=1), rtol=1e-12)
    # between the worst and the best holding, and blind to each symbol's price level
    assert np.all(eq <= 10.0 * growth.max(axis=1) + 1e-9)
    assert np.all(eq >= 10.0 * growth.min(axis=1) - 1e-9)
    rescaled = buy_and_hold_equity(make_bars(close * np.array([scale, 1.0])), initial=10.0)
    np.testing.assert_allclose(rescaled.to_numpy(), eq, rtol=1e-9)


def _cells(html: str, label: str) -> list[str]:
    import re

    row = re.search(r"<tr><td>" + re.escape(label) + r"</td>((?:<td>[^<]*</td>)+)</tr>", html)
    assert row is not None, label
    return re.findall(r"<td>([^<]*)</td>", row.group(1))


def _drawdown_table(html: str) -> list[list[str]]:
    import re

    start = html.index('<div id="ddinfo">')
    table = html[start : html.index("</table>", start)]
    body = table[table.index("<tbody>") :]
    return [re.findall(r"<td>([^<]*)</td>", row) for row in re.findall(r"<tr>.*?</tr>", body)]


def test_underwater_from_day_one_shows_its_drawdown_and_no_recovery(tmp_path: Path) -> None:
    from engine.report import from_initial_capital

    idx = pd.date_range("2023-01-01", periods=40, freq="D", tz="UTC")
    # loses 10 % on day one and never gets back to the initial capital
    steps = np.tile([-0.10, 0.05, -0.02, 0.03], 10)
    strat = pd.Series(steps, idx)
    bench = pd.Series(np.tile([0.01, -0.005], 20), idx)
    wealth = np.cumprod(1 + steps)
    assert wealth.max() < 1.0
    depth = wealth.min() - 1.0  # the initial capital is the peak
    out = write_tearsheet(
        from_initial_capital(strat), from_initial_capital(bench), tmp_path / "r.html", "t"
    )
    html = out.read_text(encoding="utf-8")
    _bench, ours = _cells(html, "Max Drawdown")
    assert float(ours.rstrip("%")) == pytest.approx(depth * 100, abs=0.006)
    assert _cells(html, "Max DD Period End")[1] == "not recovered"
    assert _cells(html, "Longest DD Days")[1] != "-"
    rows = _drawdown_table(html)
    assert rows, "Worst 10 Drawdowns is empty"
    worst = min(rows, key=lambda r: float(r[2]))
    assert float(worst[2]) == pytest.approx(depth * 100, abs=0.006)
    assert worst[1] == "not recovered"
    assert "2023-02-09" not in [r[1] for r in rows]  # the last day is no recovery date


def test_a_recovered_drawdown_keeps_its_date(tmp_path: Path) -> None:
    from engine.report import from_initial_capital

    idx = pd.date_range("2023-01-01", periods=40, freq="D", tz="UTC")
    steps = np.full(40, 0.01)
    steps[10] = -0.05  # wealth 1.01^10 * 0.95; back above the peak 6 days later
    strat = pd.Series(steps, idx)
    out = write_tearsheet(from_initial_capital(strat), None, tmp_path / "r.html", "t")
    html = out.read_text(encoding="utf-8")
    rows = _drawdown_table(html)
    assert len(rows) == 1
    # 0.95 * 1.01^k >= 1 first for k = 6: day 11 + 6 = 2023-01-17 is back at the peak,
    # QuantStats names the last day under water: 2023-01-16
    assert rows[0][1] == "2023-01-16"
    assert "not recovered" not in html


def test_html_fixes_title_glyph_and_short_periods(tmp_path: Path) -> None:
    strat, bench = _returns(10, seed=3)
    title = "sma_cross on BTC/USDT 1h, 2024-04-21 15:00 to 2024-05-01"
    html = write_tearsheet(strat, bench, tmp_path / "r.html", title).read_text(encoding="utf-8")
    assert f"<h1>{title} <dt>" in html  # no " (Compounded)" after it
    assert "Compounded" not in html
    assert "\ufe6a" not in html and "<td>CAGR%</td>" in html
    assert "Period shorter than 30 days" in html
    for label in ("CAGR%", "Sharpe", "Sortino", "Calmar", "Volatility (ann.)"):
        assert _cells(html, label) == ["n/a (period &lt; 30 days)"] * 2, label
    strat, bench = _returns(30, seed=3)
    html = write_tearsheet(strat, bench, tmp_path / "r.html", title).read_text(encoding="utf-8")
    assert "Period shorter" not in html and "n/a (period" not in html
