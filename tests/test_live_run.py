"""``cli.py live`` end to end on the fake exchange (real ccxt client, REST feed, fake clock):
orders go through the journal, the journal equals the exchange afterwards, the kill switch
latches, and bad input stops with one line before anything is sent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ccxt")

from gogo2.config import load_settings
from gogo2.timeframes import parse_time
from tests.fake_account import FakeAccount
from tests.fake_exchange import FakeBinance
from tests.test_live_orders import KEY, SECRET, assert_journal_equals_exchange

ROOT = Path(__file__).resolve().parents[1]
START = parse_time("2024-01-10") + 4 * 3_600_000 + 30_000  # a cross up ~20 bars in, down ~140


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("GOGO2_API_KEY", KEY)
    monkeypatch.setenv("GOGO2_API_SECRET", SECRET)


def write_config(path, base: dict, extra: str = "") -> Path:
    """Write ``base`` (section -> settings) with the YAML text ``extra`` merged into it key
    by key: one block per section (in YAML a second ``backtest:`` would silently replace the
    first). A live run refuses ``backtest.allow_short: true``, so it is false unless
    ``extra`` sets it."""
    import yaml

    cfg: dict = {"backtest": {"allow_short": False}}
    for section, values in [*base.items(), *(yaml.safe_load(extra) or {}).items()]:
        cfg.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def settings_for(tmp_path, live: str = ""):
    """The live tests' settings (``tmp_path/c.yaml``); ``live`` is YAML merged into them."""
    base = {
        "data": {"dir": str(tmp_path / "data")},
        "backtest": {"report_dir": str(tmp_path / "reports")},
        "exchange": {"timeout_ms": 2000, "backoff_s": 0.01, "rate_limit_ms": 0},
    }
    return load_settings(write_config(tmp_path / "c.yaml", base, live))


def run(
    settings,
    fake,
    run_dir,
    max_bars,
    lines,
    params=("fast=3", "slow=8", "band=0"),
    strategy="sma_cross",
    **kw,
):
    from runner import paper as session
    from runner.live_session import LiveOptions, run_live

    clock, sleep = fake.clock, fake.sleep  # the fake's time

    req, cls = session.validate(
        settings,
        mode="rest",
        exchange="binance",
        symbols="BTC/USDT",
        timeframe="1m",
        strategy=strategy,
        params=list(params),
        max_bars=max_bars,
        api_url=fake.base_url,
    )
    opts = LiveOptions(run_dir, **kw)
    return run_live(
        settings,
        req,
        cls,
        opts,
        say=lines.append,
        clock=clock,
        sleep=sleep,
        feed_options={"grace_s": 5.0},
        retry_sleep=lambda s: None,
    )


def journal_of(run_dir):
    from adapters.journal import Journal

    return Journal(run_dir)


class _View:
    """What assert_journal_equals_exchange reads of an order manager."""

    def __init__(self, journal):
        self.journal = journal


def test_live_run_trades_through_the_journal_and_restarts(env, tmp_path):
    settings = settings_for(tmp_path)
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        lines: list[str] = []
        out = run(settings, fake, tmp_path / "run", 160, lines)
        assert out["bars"] == 160
        assert out["orders_sent"] >= 2  # sma_cross crosses on the fake's 4.8 h wave
        # printed before the first order: balances and limits
        assert lines[1].startswith("balances: USDT 10,000")
        assert lines[2].startswith("limits: max drawdown 20.0%")
        j = journal_of(tmp_path / "run")
        assert_journal_equals_exchange(_View(j), fake)
        sent = [r for r in j.orders() if r.status != "rejected"]
        assert len(sent) == len(fake.account.orders)
        # each order's client id is the exchange's, sent once
        assert {r.client_id for r in sent} == {o.client_id for o in fake.account.orders.values()}
        n_orders = len(fake.account.orders)
        j.close()
        # the keys reached the exchange (request header) and nowhere else
        assert KEY in fake.account.api_keys
        for text in lines:
            assert KEY not in text and SECRET not in text
        for f in (tmp_path / "run").iterdir():
            data = f.read_bytes()
            assert KEY.encode() not in data and SECRET.encode() not in data
        # restart with the same --run: continued, nothing resent
        lines2: list[str] = []
        run(settings, fake, tmp_path / "run", 5, lines2)
        assert "(continued)" in lines2[0]
        assert len(fake.account.orders) >= n_orders
        j = journal_of(tmp_path / "run")
        assert_journal_equals_exchange(_View(j), fake)
        j.close()


def test_dry_check_sends_nothing(env, tmp_path):
    settings = settings_for(tmp_path)
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        lines: list[str] = []
        out = run(settings, fake, tmp_path / "run", 5, lines, dry_check=True)
        assert out["orders_sent"] == 0 and fake.account.creates() == 0
        assert (
            lines[-1].startswith("dry check: at the close of") and "Nothing was sent" in lines[-1]
        )


def test_kill_switch_fires_cancels_latches_and_clears(env, tmp_path):
    from adapters.killswitch import KilledRunError, KillSwitchTripped

    settings = settings_for(tmp_path, "live:\n  max_position_notional: 1000\n")
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        lines: list[str] = []
        with pytest.raises(KillSwitchTripped, match="max_position_notional"):
            run(settings, fake, tmp_path / "run", 160, lines)
        assert fake.account.creates() == 0  # stopped before the order that would pass it
        j = journal_of(tmp_path / "run")
        assert "max_position_notional" in j.meta("killed")
        assert j.events("kill")
        j.close()
        with pytest.raises(KilledRunError, match="--clear-kill"):
            run(settings, fake, tmp_path / "run", 5, [])
        r = subprocess.run(
            [sys.executable, "cli.py", "live", "--run", str(tmp_path / "run"), "--clear-kill"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0 and "kill switch cleared" in r.stdout
        j = journal_of(tmp_path / "run")
        assert j.meta("killed") is None and j.events("kill_cleared")
        j.close()


def test_kill_switch_cancels_open_orders_and_flattens(env, tmp_path):
    import numpy as np

    from adapters.broker import BarRow
    from adapters.ccxt_broker import CcxtBroker
    from adapters.journal import Journal
    from adapters.killswitch import KillSwitch, KillSwitchTripped
    from adapters.orders import OrderManager, RetryPolicy
    from gogo2.config import LiveConfig
    from tests.test_live_orders import client

    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        j = Journal(tmp_path)
        om = OrderManager(
            client(fake), j, "r", RetryPolicy(sleep=lambda s: None), clock_ms=fake.now
        )
        om.reconcile(("BTC/USDT",))
        om.submit("BTC/USDT", "buy", "market", 0.01, None, START - 60_000, "entry long", 16_000.0)
        om.submit("BTC/USDT", "buy", "limit", 0.01, 10_000.0, START, "entry long", 16_000.0)
        kill = KillSwitch(LiveConfig(max_drawdown=0.01), j)
        broker = CcxtBroker(om, ("BTC/USDT",), None, kill, flatten_on_kill=True)
        kill.check_equity(START, 10_000.0)  # the peak
        fake.account.balances["USDT"] -= 500.0  # a 5 % loss while the limit order rests
        bar = BarRow(START, *(np.array([16_000.0]) for _ in range(4)), np.array([1.0]))
        with pytest.raises(KillSwitchTripped, match="drawdown"):
            broker.on_bar(bar)
        orders = sorted(fake.account.orders.values(), key=lambda o: o.id)
        assert [o.status for o in orders] == ["FILLED", "CANCELED", "FILLED"]
        assert orders[2].side == "SELL" and orders[2].type == "MARKET"
        # bought 0.01, fee 0.00001 BTC: 0.00999 sold, nothing left
        assert orders[2].qty == pytest.approx(0.00999)
        assert fake.account.total("BTC") == pytest.approx(0.0, abs=1e-12)
        om.sync()
        assert [r.status for r in j.orders()] == ["closed", "canceled", "closed"]
        assert j.orders()[2].intent == "flatten"
        assert "drawdown" in j.meta("killed")


def cli(args, env_extra=None, cwd=ROOT):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOGO2_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "cli.py", "live", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


KEYS = {"GOGO2_API_KEY": KEY, "GOGO2_API_SECRET": SECRET}


def test_bad_input_no_confirmation_and_missing_keys(tmp_path):
    r = cli(["--run", str(tmp_path / "r")], KEYS)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "--i-understand-real-money" in r.stderr
    r = cli(["--run", str(tmp_path / "r"), "--i-understand-real-money"])
    assert r.returncode == 2 and "GOGO2_API_KEY" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_bad_input_keys_in_a_config_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("exchange:\n  api_key: abc\n")
    r = cli(["--config", str(cfg), "--i-understand-real-money"], KEYS)
    assert r.returncode == 2 and "environment" in r.stderr and r.stderr.count("\n") == 1


def _cli_fake(tmp_path, fake, extra):
    cfg = write_config(tmp_path / "c.yaml", {"data": {"dir": str(tmp_path / "data")}}, extra)
    env = dict(KEYS, GOGO2_EXCHANGE_API_URL=fake.base_url)
    return cli(["--config", str(cfg), "--i-understand-real-money", "--feed", "rest"], env)


def test_bad_input_unknown_symbol_small_size_and_foreign_journal(tmp_path):
    with FakeBinance() as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        cfg = write_config(tmp_path / "c.yaml", {"data": {"dir": str(tmp_path / "data")}})
        env = dict(KEYS, GOGO2_EXCHANGE_API_URL=fake.base_url)
        base = ["--config", str(cfg), "--i-understand-real-money", "--feed", "rest"]
        base += [
            "--timeframe",
            "1m",
            "--strategy",
            "sma_cross",
            "--param",
            "fast=3",
            "--param",
            "slow=8",
        ]
        r = cli([*base, "--symbols", "DOGE/USDT", "--run", str(tmp_path / "a")], env)
        assert r.returncode == 2 and "DOGE/USDT" in r.stderr and r.stderr.count("\n") == 1
        assert not (tmp_path / "a").exists()
        small = write_config(
            tmp_path / "s.yaml",
            {"data": {"dir": str(tmp_path / "data")}},
            "backtest:\n  size_type: cash\n  size: 2\n",
        )
        args = [a if a != str(cfg) else str(small) for a in base]
        r = cli([*args, "--symbols", "BTC/USDT", "--run", str(tmp_path / "b")], env)
        assert r.returncode == 2 and "minimum order cost 5" in r.stderr
        assert r.stderr.count("\n") == 1
        assert not (tmp_path / "b").exists()  # nothing written
        # a journal of another strategy
        r = cli([*base, "--symbols", "BTC/USDT", "--run", str(tmp_path / "c"), "--dry-check"], env)
        assert r.returncode == 0, r.stderr
        other = [a if a != "sma_cross" else "rsi_reversion" for a in base]
        other = [a for a in other if a not in ("--param", "fast=3", "slow=8")]
        r = cli([*other, "--symbols", "BTC/USDT", "--run", str(tmp_path / "c")], env)
        assert r.returncode == 2 and "sma_cross" in r.stderr and r.stderr.count("\n") == 1
        assert fake.account.creates() == 0


def test_refused_keys_exit_2_in_one_line_without_the_key(tmp_path):
    with FakeBinance() as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        fake.account.refused_keys.add(KEY)
        cfg = write_config(tmp_path / "c.yaml", {"data": {"dir": str(tmp_path / "data")}})
        env = dict(KEYS, GOGO2_EXCHANGE_API_URL=fake.base_url)
        r = cli(
            [
                "--config",
                str(cfg),
                "--i-understand-real-money",
                "--feed",
                "rest",
                "--symbols",
                "BTC/USDT",
                "--timeframe",
                "1m",
                "--run",
                str(tmp_path / "r"),
            ],
            env,
        )
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "refused the account's keys" in r.stderr and "AuthenticationError" in r.stderr
        assert KEY not in r.stderr + r.stdout and SECRET not in r.stderr + r.stdout
        assert fake.account.creates() == 0 and not (tmp_path / "r").exists()
