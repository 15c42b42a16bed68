"""``cli.py data delete`` and ``Catalog.delete``: confirmation, scope, hints, interrupts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_catalog import HOUR, T0, candles

from datasets.catalog import Catalog
from datasets.catalog_cli import list_cmd
from datasets.delete_cli import delete_cmd
from gogo2.errors import UnknownNameError


@pytest.fixture(name="root")
def fixture_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A catalog with BTC/USDT 1m (two year files) and 1h, ETH/USDT 1m, and a derived cache."""
    root = tmp_path / "data"
    monkeypatch.setenv("GOGO2__DATA__DIR", str(root))
    monkeypatch.chdir(tmp_path)
    cat = Catalog(root)
    cat.write(candles(180, start=T0 - 60 * 60_000), "binance", "BTC/USDT", "1m")
    cat.write(candles(30, step=HOUR, seed=1), "binance", "BTC/USDT", "1h")
    cat.write(candles(60, seed=2), "binance", "ETH/USDT", "1m")
    cat.load(["BTC/USDT"], "15m", exchange="binance")  # cached under _derived/
    assert (root / "_derived" / "exchange=binance" / "symbol=BTC-USDT").is_dir()
    return root


def series(root: Path) -> list[tuple[str, str, int]]:
    return [(s.symbol, s.timeframe, s.rows) for s in Catalog(root).coverage() if not s.derived]


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(delete_cmd, list(args), input=input, catch_exceptions=False)


def test_delete_one_timeframe_with_yes(root: Path) -> None:
    res = invoke("--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m", "--yes")
    assert res.exit_code == 0, res.output
    assert "deleted binance BTC/USDT 1m (180 candles)" in res.output
    assert series(root) == [("BTC/USDT", "1h", 30), ("ETH/USDT", "1m", 60)]
    assert not (root / "exchange=binance" / "symbol=BTC-USDT" / "timeframe=1m").exists()
    assert not (root / "_derived" / "exchange=binance" / "symbol=BTC-USDT").exists()
    assert not list(root.glob(".trash-*"))
    listed = CliRunner().invoke(list_cmd, [], catch_exceptions=False).output
    assert "ETH/USDT" in listed and " 1h " in listed and "180" not in listed


def test_delete_every_timeframe_after_confirmation(root: Path) -> None:
    res = invoke("--exchange", "binance", "--symbol", "btc/usdt", input="y\n")
    assert res.exit_code == 0, res.output
    assert "BTC/USDT 1m: 180 real candles" in res.output  # shown before the question
    assert "Delete binance BTC/USDT (every timeframe)" in res.output
    assert series(root) == [("ETH/USDT", "1m", 60)]
    assert not (root / "exchange=binance" / "symbol=BTC-USDT").exists()
    # the last symbol of an exchange takes the exchange directory with it
    invoke("--exchange", "binance", "--symbol", "ETH/USDT", "--yes")
    assert series(root) == [] and not (root / "exchange=binance").exists()


def test_declined_confirmation_deletes_nothing(root: Path) -> None:
    before = series(root)
    res = invoke("--exchange", "binance", "--symbol", "BTC/USDT", input="n\n")
    assert res.exit_code == 0 and "Nothing deleted." in res.output
    res = invoke("--exchange", "binance", "--symbol", "BTC/USDT", input="")  # no answer at all
    assert "Nothing deleted." in res.output
    assert series(root) == before


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--exchange", "binance", "--symbol", "BTC/USDX"], "Did you mean 'BTC/USDT'?"),
        (["--exchange", "binanse", "--symbol", "BTC/USDT"], "Did you mean 'binance'?"),
        (
            ["--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "5m"],
            "Known: 1h, 1m.",
        ),
    ],
)
def test_unknown_series_is_exit_2_with_a_hint(root: Path, capsys, args, hint) -> None:
    import cli

    before = series(root)
    code = cli.main(["data", "delete", *args, "--yes"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: unknown ") and hint in err
    assert "Run `cli.py data list` to see what is stored." in err
    assert len(err.strip().splitlines()) == 1
    assert series(root) == before


def test_interrupt_before_the_rename_keeps_the_series(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Catalog(root).delete("binance", "BTC/USDT", "1m")
    monkeypatch.undo()
    assert series(root) == [
        ("BTC/USDT", "1m", 180),
        ("BTC/USDT", "1h", 30),
        ("ETH/USDT", "1m", 60),
    ]
    assert len(Catalog(root).load_frame("binance", "BTC/USDT", "1m")) == 180


def test_interrupt_after_the_rename_leaves_it_gone_and_open_cleans_up(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_rmtree = shutil.rmtree

    def interrupted(path, *a, **kw):
        if Path(path).name.startswith(".trash-"):  # right after the commit point
            raise KeyboardInterrupt
        return real_rmtree(path, *a, **kw)

    monkeypatch.setattr(shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Catalog(root).delete("binance", "BTC/USDT")
    monkeypatch.undo()
    assert list(root.glob(".trash-*"))  # the deleted series still waits in the trash
    assert series(root) == [("ETH/USDT", "1m", 60)]  # ... but is gone for every reader
    assert not list(root.glob(".trash-*"))  # and that open removed the trash
    with pytest.raises(UnknownNameError, match="Did you mean 'ETH/USDT'"):
        Catalog(root).load_frame("binance", "BTC/USDT", "1m")
