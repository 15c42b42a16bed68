"""A spot account cannot sell short: ``live`` refuses to start while the effective
``backtest.allow_short`` is true (its backtest would open shorts the live run never sends),
with one line naming the setting, its value and the fix, before any request."""

from __future__ import annotations

import pytest

pytest.importorskip("ccxt")

from gogo2.config import load_settings
from gogo2.errors import UserInputError
from tests.fake_account import FakeAccount
from tests.fake_exchange import FakeBinance
from tests.test_live_run import KEYS, START, cli, env, run, write_config  # noqa: F401

ARGS = ["--i-understand-real-money", "--feed", "rest", "--symbols", "BTC/USDT"]
ARGS += ["--timeframe", "1m", "--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8"]


def _config(tmp_path, extra: str) -> str:
    """A config whose backtest section is ``extra`` only (``allow_short`` unset = the
    built-in default, true)."""
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  dir: {tmp_path / 'data'}\n" + extra)
    return str(path)


def _assert_refused(r, run_dir, fake) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr
    line = r.stderr
    assert "backtest.allow_short is true (settings from config.yaml + " in line  # and where
    assert "set `backtest.allow_short: false`" in line  # the fix
    assert "exits the long" in line and "backtest under that setting" in line
    # nothing reached the exchange and nothing was written
    assert fake.requests == [] and fake.private_log == []
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("dry", "extra"), [(False, ""), (True, "backtest:\n  allow_short: true\n")]
)
def test_live_refuses_allow_short_before_any_request(tmp_path, dry, extra):
    with FakeBinance() as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        cfg = _config(tmp_path, extra)
        env = dict(KEYS, GOGO2_EXCHANGE_API_URL=fake.base_url)
        args = ["--config", cfg, *ARGS, "--run", str(tmp_path / "r")]
        r = cli([*args, "--dry-check"] if dry else args, env)
        _assert_refused(r, tmp_path / "r", fake)


def test_the_effective_setting_counts_an_environment_override_lets_it_start(tmp_path):
    """The file says true, the environment false: the dry check runs (and does connect)."""
    with FakeBinance() as fake:  # the wall clock, as the command's
        FakeAccount(fake, {"USDT": 10_000.0})
        cfg = _config(tmp_path, "backtest:\n  allow_short: true\n")
        env = dict(KEYS, GOGO2_EXCHANGE_API_URL=fake.base_url, GOGO2__BACKTEST__ALLOW_SHORT="false")
        r = cli(["--config", cfg, *ARGS, "--run", str(tmp_path / "r"), "--dry-check"], env)
        assert r.returncode == 0, r.stderr
        assert "dry check" in r.stdout and fake.requests
        # and the reverse: the file says false, the environment true
        cfg = _config(tmp_path, "backtest:\n  allow_short: false\n")
        fake.requests.clear()
        fake.private_log.clear()
        env["GOGO2__BACKTEST__ALLOW_SHORT"] = "true"
        r = cli(["--config", cfg, *ARGS, "--run", str(tmp_path / "r2"), "--dry-check"], env)
        _assert_refused(r, tmp_path / "r2", fake)


def test_run_live_refuses_it_through_the_python_api(env, tmp_path):  # noqa: F811
    path = write_config(
        tmp_path / "c.yaml",
        {"data": {"dir": str(tmp_path / "data")}},
        "backtest:\n  allow_short: true\n",
    )
    settings = load_settings(path)
    assert settings.backtest.allow_short is True
    with FakeBinance(now_ms=START) as fake:
        FakeAccount(fake, {"USDT": 10_000.0})
        with pytest.raises(UserInputError, match=r"backtest\.allow_short is true"):
            run(settings, fake, tmp_path / "run", 5, [])
        assert fake.requests == [] and fake.private_log == []
    assert not (tmp_path / "run").exists()
