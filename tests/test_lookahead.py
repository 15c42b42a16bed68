"""Look-ahead checker: bundled strategies pass, deliberately biased ones are caught."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import make_bars, make_multibars
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cli
from datasets.align import take_asof
from datasets.bars import MultiBars
from engine.signals import Signals
from gogo2.errors import UserInputError
from gogo2.timeframes import format_time
from strategies import registry
from strategies.base import Param, Strategy, crossed_above, crossed_below
from strategies.lookahead import LookaheadReport, check_lookahead, check_warmup

# ------------------------------------------------------------------ biased strategies


class PeekNextClose(Strategy):
    """Biased on purpose: buys when the *next* bar's close is higher."""

    name = "biased_peek_next_close"
    base_timeframe = "5m"

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: 2}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close
        nxt = np.full_like(close, np.nan)
        nxt[:-1] = close[1:]
        with np.errstate(invalid="ignore"):
            entries = np.where(nxt > close * 1.001, 1, 0).astype(np.int8)
        return Signals(entries, np.zeros(close.shape, bool))


class OpenHourlyBar(Strategy):
    """Biased on purpose: aligns 1h candles by *open* time, so a base bar sees the close
    of the hour it is still inside."""

    name = "biased_open_hourly_bar"
    base_timeframe = "5m"
    informative = ("1h",)
    window = Param(3, min=2)

    def lookback(self) -> dict[str, int]:
        return {"1h": self.window}

    def generate(self, data: MultiBars) -> Signals:
        hourly = data["1h"]
        wrong = np.searchsorted(hourly.time, data.bars.time, side="right") - 1
        h_close = take_asof(hourly.close, wrong)
        mean = take_asof(pd.DataFrame(hourly.close).rolling(self.window).mean().to_numpy(), wrong)
        entries = np.where(crossed_above(h_close, mean), 1, 0).astype(np.int8)
        return Signals(entries, np.zeros(entries.shape, bool))


class FutureSize(Strategy):
    """Biased only in a secondary field: the order size uses the whole-history maximum."""

    name = "biased_future_size"
    base_timeframe = "5m"

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: 20}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close
        sma = pd.DataFrame(close).rolling(20).mean().to_numpy()
        entries = np.where(crossed_above(close, sma), 1, 0).astype(np.int8)
        size = np.where(entries != 0, close / np.nanmax(close, axis=0), np.nan)
        return Signals(entries, np.zeros(close.shape, bool), size=size)


@pytest.fixture(name="data")
def fixture_data() -> MultiBars:
    return make_multibars(3_000, base="5m", informative=("1h",), seed=21, vol=0.003)


# ------------------------------------------------------------------ honest strategies pass


@pytest.mark.parametrize("exhaustive", [True, False], ids=["exhaustive", "sampled"])
@pytest.mark.parametrize("name", ["sma_cross", "rsi_reversion", "mtf_trend"])
def test_bundled_strategies_have_no_lookahead(name: str, exhaustive: bool) -> None:
    params = {"sma_cross": ["band=0.001"], "rsi_reversion": ["short=true"]}.get(name, [])
    s = registry.create(name, params, timeframe="5m")
    data = make_multibars(4_000, base="5m", informative=("1h",), seed=5, vol=0.003, gaps=0.01)
    report = check_lookahead(s, data, cuts=15, seed=1, exhaustive=exhaustive)
    assert report.ok, report.summary()
    assert report.issues == [] and report.unverified == 0
    assert report.window == s.warmup + 1  # the warm-up rows plus the deciding bar
    if exhaustive:
        assert report.mode == "exhaustive" and report.n_cuts == 0
        assert report.rows_checked == 4_000 - s.warmup
        assert report.summary() == (
            f"no look-ahead found (exhaustive): all {4_000 - s.warmup} rows after the "
            f"warm-up re-decided from their {s.warmup + 1}-bar window"
        )
    else:
        assert report.mode == "sampled" and report.n_cuts == 15
        assert 0 < report.rows_checked < 4_000 - s.warmup
        assert report.summary().startswith("no look-ahead found (sampled): 15 cuts and ")
        assert all(c > int(data.bars.time[0]) for c in report.cuts)


def test_bundled_strategies_pass_with_limit_orders_and_stops(data: MultiBars) -> None:
    s = registry.create("rsi_reversion", ["entry=limit", "sl=0.02", "tp=0.05"], timeframe="5m")
    assert check_lookahead(s, data, cuts=10, seed=3).ok


_PARAM_SPACE = {
    "sma_cross": lambda d: [
        f"fast={d.draw(st.integers(2, 15))}",
        f"slow={d.draw(st.integers(16, 60))}",
        f"band={d.draw(st.sampled_from([0.0, 0.001, 0.003]))}",
        f"short={d.draw(st.booleans())}",
    ],
    "rsi_reversion": lambda d: [
        f"window={d.draw(st.integers(2, 20))}",
        f"short={d.draw(st.booleans())}",
        f"entry={d.draw(st.sampled_from(['market', 'limit']))}",
    ],
    "mtf_trend": lambda d: [
        f"trend={d.draw(st.integers(2, 12))}",
        f"window={d.draw(st.integers(2, 20))}",
        f"pullback={d.draw(st.floats(20.0, 45.0))}",
    ],
}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(_PARAM_SPACE)),
    seed=st.integers(0, 2**16),
    draw=st.data(),
)
def test_bundled_strategies_have_no_lookahead_for_any_params(name: str, seed: int, draw) -> None:
    s = registry.create(name, _PARAM_SPACE[name](draw), timeframe="5m")
    data = make_multibars(1_800, base="5m", informative=("1h",), seed=seed, vol=0.004, gaps=0.01)
    report = check_lookahead(s, data, cuts=6, seed=seed)
    assert report.ok, report.summary()


# ------------------------------------------------------------------ biased strategies fail


def test_catches_next_bar_close(data: MultiBars) -> None:
    report = check_lookahead(PeekNextClose(), data, cuts=10, seed=0)
    assert not report.ok
    issue = report.issues[0]
    assert issue.field == "entries"
    assert issue.full_value == 1 and issue.cut_value == 0
    # the bar whose decision changed is the last one kept by that cut
    assert issue.bar_time + data.bars.tf_ms == issue.cut_time
    assert issue.symbol in data.bars.symbols
    text = report.summary()
    assert "look-ahead found" in text and format_time(issue.bar_time) in text
    assert "with full data" in text and issue.symbol in text


def test_catches_unclosed_hourly_bar(data: MultiBars) -> None:
    report = check_lookahead(OpenHourlyBar(), data, cuts=10, seed=0)
    assert not report.ok
    issue = report.issues[0]
    assert issue.field == "entries"
    # the base bar sits inside an hour that had not closed at the cut
    hour = 3_600_000
    assert issue.cut_time % hour != 0
    assert issue.bar_time // hour == (issue.cut_time - 1) // hour


def test_correct_alignment_of_the_same_rule_passes(data: MultiBars) -> None:
    class ClosedHourlyBar(OpenHourlyBar):
        name = "closed_hourly_bar"

        def generate(self, data: MultiBars) -> Signals:
            hourly = data["1h"]
            h_close = self.asof(data, "1h", hourly.close)
            mean = self.asof(
                data, "1h", pd.DataFrame(hourly.close).rolling(self.window).mean().to_numpy()
            )
            entries = np.where(crossed_above(h_close, mean), 1, 0).astype(np.int8)
            return Signals(entries, np.zeros(entries.shape, bool))

    assert check_lookahead(ClosedHourlyBar(), data, cuts=10, seed=0).ok


def test_catches_bias_in_a_secondary_field(data: MultiBars) -> None:
    report = check_lookahead(FutureSize(), data, cuts=10, seed=0)
    assert not report.ok
    assert {i.field for i in report.issues} == {"size"}
    assert all(i.cut_value > i.full_value or np.isnan(i.full_value) for i in report.issues)


def test_report_is_deterministic_for_a_seed(data: MultiBars) -> None:
    a = check_lookahead(PeekNextClose(), data, cuts=8, seed=4, exhaustive=False)
    b = check_lookahead(PeekNextClose(), data, cuts=8, seed=4, exhaustive=False)
    assert a.cuts == b.cuts and a.issues == b.issues
    c = check_lookahead(PeekNextClose(), data, cuts=8, seed=5, exhaustive=False)
    assert c.cuts != a.cuts


def test_bad_arguments(data: MultiBars) -> None:
    with pytest.raises(UserInputError, match="--cuts 0"):
        check_lookahead(PeekNextClose(), data, cuts=0)
    tiny = MultiBars("5m", {"5m": make_bars(2, timeframe="5m")})
    with pytest.raises(UserInputError, match="too few to cut"):
        check_lookahead(PeekNextClose(), tiny)
    report = LookaheadReport("x")
    assert report.ok and report.n_cuts == 0


# ------------------------------------------------------------------ warm-up


class ShortWarmup(Strategy):
    """Honest about time, dishonest about its warm-up: a 30-bar SMA declared as 5 bars."""

    name = "short_warmup"
    base_timeframe = "5m"

    def lookback(self) -> dict[str, int]:
        return {self.timeframe: 5}

    def generate(self, data: MultiBars) -> Signals:
        close = data.bars.close
        sma = pd.DataFrame(close).rolling(30).mean().to_numpy()
        entries = np.where(crossed_above(close, sma), 1, 0).astype(np.int8)
        entries[crossed_below(close, sma)] = -1
        return Signals(entries, np.zeros(close.shape, bool))


@pytest.mark.parametrize("name", ["sma_cross", "rsi_reversion", "mtf_trend"])
def test_bundled_warmups_are_long_enough(name: str) -> None:
    params = {"mtf_trend": ["trend=12"], "sma_cross": ["band=0.001"]}.get(name, [])
    s = registry.create(name, params, timeframe="5m")
    data = make_multibars(3_000, base="5m", informative=("1h",), seed=41, vol=0.003)
    report = check_warmup(s, data, starts=6, seed=2)
    assert report.ok, report.summary()
    assert len(report.starts) == 6
    assert f"warm-up of {s.warmup} bars is enough" in report.summary()


def test_short_warmup_is_caught(data: MultiBars) -> None:
    assert check_lookahead(ShortWarmup(), data, cuts=10).ok  # no look-ahead...
    report = check_warmup(ShortWarmup(), data, starts=5)  # ...but too little history
    assert not report.ok
    issue = report.issues[0]
    assert issue.field == "entries" and issue.full_value != issue.cut_value
    # the difference lies after the declared warm-up of the later start
    assert issue.bar_time >= issue.cut_time + ShortWarmup().warmup * data.bars.tf_ms
    assert "too short" in report.summary()
    with pytest.raises(UserInputError, match="starts"):
        check_warmup(ShortWarmup(), data, starts=0)
    # warm-up 4 (5 candles: rows 0 .. 4): 5 bars leave no decision after a later start
    tiny = MultiBars("5m", {"5m": make_bars(5, timeframe="5m")})
    with pytest.raises(UserInputError, match="too few"):
        check_warmup(ShortWarmup(), tiny)


# ------------------------------------------------------------------ through the CLI


@pytest.fixture(name="cli_env")
def fixture_cli_env(tmp_path, monkeypatch):
    """A catalog with two symbols of random-walk 1m candles under exchange 'testex'."""
    from datasets.catalog import Catalog

    root = tmp_path / "data"
    cat = Catalog(root)
    bars = make_bars(4 * 24 * 60, timeframe="1m", seed=13, vol=0.001)
    for j, sym in enumerate(bars.symbols):
        df = pd.DataFrame(
            {
                "time": bars.time,
                **{f: getattr(bars, f)[:, j] for f in ("open", "high", "low", "close", "volume")},
            }
        )
        cat.write(df, exchange="testex", symbol=sym, timeframe="1m", source="synthetic")
    cfg = tmp_path / "config.test.yaml"
    cfg.write_text(f"data:\n  dir: {root}\n  exchange: testex\n")
    monkeypatch.chdir(tmp_path)
    return str(cfg)


@pytest.mark.parametrize("name", ["sma_cross", "rsi_reversion", "mtf_trend"])
def test_cli_passes_bundled_strategies(cli_env: str, name: str, capsys) -> None:
    # four days of candles: shorter indicators keep the warm-ups inside them (rsi_reversion's
    # 661 bars of 15m alone would need seven days)
    extra = {"mtf_trend": ["--param", "trend=10"], "rsi_reversion": ["--param", "window=5"]}
    args = ["check-lookahead", "--strategy", name, "--config", cli_env, "--cuts", "6"]
    code = cli.main([*args, *extra.get(name, [])])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "no look-ahead found (exhaustive): all " in out.out
    assert "bars is enough: decisions match the full history in 5 later starts" in out.out


def test_cli_warns_about_a_short_warmup(cli_env: str, capsys, monkeypatch) -> None:
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    registry.register(ShortWarmup)
    args = ["check-lookahead", "--strategy", "short_warmup", "--config", cli_env, "--days", "1"]
    code = cli.main(args)
    out = capsys.readouterr().out
    assert code == 0
    assert "warning: warm-up of 4 bars is too short" in out  # 5 candles: rows 0 .. 4
    assert "no look-ahead found (exhaustive)" in out


def test_cli_fails_a_biased_strategy_with_exit_code_1(cli_env: str, capsys, monkeypatch) -> None:
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    registry.register(PeekNextClose)
    code = cli.main(
        [
            "check-lookahead",
            "--strategy",
            "biased_peek_next_close",
            "--config",
            cli_env,
            "--from",
            "2023-01-02",
            "--days",
            "1",
            "--symbols",
            "BTC/USDT",
        ]
    )
    out = capsys.readouterr()
    assert code == 1
    assert "look-ahead found" in out.err
    assert "BTC/USDT entries: 1 with full data, 0 with data cut at" in out.out


@pytest.mark.parametrize("mode", ["--sampled", "--exhaustive"])
def test_cli_mode_flags(cli_env: str, capsys, monkeypatch, mode: str) -> None:
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    registry.register(PeekNextClose)
    args = ["check-lookahead", "--strategy", "biased_peek_next_close", "--config", cli_env]
    code = cli.main([*args, "--days", "1", "--cuts", "3", mode])
    out = capsys.readouterr()
    assert code == 1
    name = mode.removeprefix("--")
    assert f"look-ahead found in biased_peek_next_close[5m]() ({name})" in out.err
    assert ("3 cuts and " in out.err) is (name == "sampled")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--strategy", "sma_crss"], "Did you mean 'sma_cross'"),
        (["--param", "fats=3"], "Did you mean 'fast'"),
        (["--cuts", "x"], "--cuts 'x' is not a number"),
        (["--cuts", "0"], "--cuts 0 must be >= 1"),
        (["--from", "2023-02-01", "--to", "2023-01-01"], "is not before --to"),
        (["--symbols", "BTCUSDT"], "BASE/QUOTE"),
        (["--timeframe", "1x"], "bad timeframe"),
        (["--symbols", "XRP/USDT"], "XRP/USDT"),
    ],
)
def test_cli_bad_input_exits_2(cli_env: str, args: list[str], match: str, capsys) -> None:
    code = cli.main(["check-lookahead", "--config", cli_env, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and match in err
    assert "Traceback" not in err


def test_cli_lists_strategies(capsys) -> None:
    assert cli.main(["check-lookahead", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("sma_cross", "rsi_reversion", "mtf_trend"):
        assert f"{name}: " in out
    assert "--param slow: int = 50" in out


def test_cli_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from cli import main\n"
        "main(['check-lookahead', '--help'])\n"
        "heavy = [m for m in ('numpy', 'numba', 'pandas', 'duckdb', 'strategies.base') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    assert "--cuts" in out and "--param" in out
    assert "HEAVY []" in out
    from strategies.lookahead import EXHAUSTIVE_MAX_ROWS

    assert f"exhaustive up to {EXHAUSTIVE_MAX_ROWS:,} base bars" in " ".join(out.split())


# ------------------------------------------------------------------ real candles


def test_real_binance_candles(shared_datasets) -> None:
    """Five days of Binance BTC/USDT 1m: the aggregation helper reproduces Binance's own
    5m candles, and the bundled strategies show no look-ahead on real prices."""
    from helpers import aggregate

    from datasets.bars import Bars

    folder = shared_datasets / "nic_tradingstrategyga"
    m1 = pd.read_parquet(folder / "BTC_USDT-1m.parquet")
    m5 = pd.read_parquet(folder / "BTC_USDT-5m.parquet")

    def to_bars(df: pd.DataFrame, tf: str) -> Bars:
        cols = [df[c].to_numpy(np.float64).reshape(-1, 1).copy() for c in ("open", "high")]
        cols += [df[c].to_numpy(np.float64).reshape(-1, 1).copy() for c in ("low", "close")]
        vol = df["volume"].to_numpy(np.float64).reshape(-1, 1).copy()
        return Bars(tf, ("BTC/USDT",), df["timestamp"].to_numpy(np.int64), *cols, vol)

    base = to_bars(m1, "1m")
    own5 = aggregate(base, "5m")
    ref5 = to_bars(m5, "5m")
    n = own5.n
    np.testing.assert_array_equal(own5.time, ref5.time[:n])
    np.testing.assert_allclose(own5.close, ref5.close[:n])
    np.testing.assert_allclose(own5.high, ref5.high[:n])
    np.testing.assert_allclose(own5.volume, ref5.volume[:n], rtol=1e-9)

    data_1m = MultiBars("1m", {"1m": base})
    report = check_lookahead(registry.create("sma_cross", ["band=0.001"]), data_1m, cuts=10)
    assert report.ok, report.summary()
    data_5m = MultiBars("5m", {"5m": ref5, "1h": aggregate(ref5, "1h")})
    for name, params in (("mtf_trend", ["trend=10"]), ("rsi_reversion", ["short=true"])):
        s = registry.create(name, params, timeframe="5m")
        report = check_lookahead(s, data_5m, cuts=10)
        assert report.ok, report.summary()
    biased = check_lookahead(PeekNextClose(), data_5m, cuts=10)
    assert not biased.ok
