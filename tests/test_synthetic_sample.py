"""ensure_sample: the embedded sample lands in the catalog once per seed, marked synthetic."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import datasets.synthetic as synthetic
from datasets.catalog import Catalog
from datasets.synthetic import ensure_sample, generate_sample
from gogo2.timeframes import parse_time

SHORT_END = "2023-01-04"


@pytest.fixture
def short_sample(monkeypatch):
    """Shrink the sample span so behaviour tests stay fast."""
    monkeypatch.setattr(synthetic, "SAMPLE_END", SHORT_END)


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200), buf


def test_generates_once_then_reuses(tmp_path, short_sample, monkeypatch) -> None:
    cat = Catalog(tmp_path / "data")
    con, buf = _console()
    assert ensure_sample(cat, 7, console=con) is True
    assert "generating the embedded synthetic sample (not market data)" in buf.getvalue()
    infos = cat.coverage(exchange="synthetic")
    assert {i.symbol for i in infos} == {"BTC/USDT", "ETH/USDT"}
    for i in infos:
        assert i.source == "synthetic" and i.timeframe == "1m" and i.rows == 3 * 1440
        assert i.first == parse_time("2023-01-01") and i.gap_events == 0
    assert cat.series_source("synthetic", "BTC/USDT") == "synthetic"
    stored = cat.load_frame("synthetic", "ETH/USDT", "1m")
    want = generate_sample(7, end=SHORT_END)["ETH/USDT"]
    np.testing.assert_array_equal(stored["close"].to_numpy(), want["close"].to_numpy())

    def boom(*a, **k):
        raise AssertionError("must not regenerate")

    monkeypatch.setattr(synthetic, "generate_sample", boom)
    con2, buf2 = _console()
    assert ensure_sample(cat, 7, console=con2) is False
    assert buf2.getvalue() == ""


def test_other_seed_replaces_sample(tmp_path, short_sample) -> None:
    cat = Catalog(tmp_path / "data")
    assert ensure_sample(cat, 1, console=_console()[0])
    before = cat.load_frame("synthetic", "BTC/USDT", "1m")["close"].to_numpy()
    assert ensure_sample(cat, 2, console=_console()[0]) is True
    after = cat.load_frame("synthetic", "BTC/USDT", "1m")
    assert len(after) == len(before)
    np.testing.assert_array_equal(
        after["close"].to_numpy(), generate_sample(2, end=SHORT_END)["BTC/USDT"]["close"]
    )
    assert ensure_sample(cat, 2, console=_console()[0]) is False


def test_missing_series_is_regenerated(tmp_path, short_sample) -> None:
    import shutil

    cat = Catalog(tmp_path / "data")
    assert ensure_sample(cat, 3, console=_console()[0])
    shutil.rmtree(cat.series_dir("synthetic", "ETH/USDT", "1m"))
    assert ensure_sample(cat, 3, console=_console()[0]) is True
    assert cat.last_time("synthetic", "ETH/USDT", "1m") == parse_time(SHORT_END) - 60_000


def test_same_seed_gives_identical_parquet_files(tmp_path, short_sample) -> None:
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        ensure_sample(Catalog(root), 5, console=_console()[0])
    files_a = sorted(p.relative_to(roots[0]) for p in roots[0].rglob("*.parquet"))
    files_b = sorted(p.relative_to(roots[1]) for p in roots[1].rglob("*.parquet"))
    assert files_a == files_b and files_a
    for rel in files_a:
        assert (roots[0] / rel).read_bytes() == (roots[1] / rel).read_bytes()


def test_notice_goes_to_stderr_without_console(tmp_path, short_sample, capsys) -> None:
    ensure_sample(Catalog(tmp_path / "data"), 9)
    assert "generating the embedded synthetic sample" in capsys.readouterr().err


@pytest.mark.slow
def test_full_default_sample_in_catalog(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "data")
    assert ensure_sample(cat, 20230101, console=_console()[0])
    bars = cat.load(["BTC/USDT", "ETH/USDT"], "1h", exchange="synthetic")
    assert bars.synthetic
    assert bars.n == 731 * 24
    assert not np.isnan(bars.close).any()
    for info in cat.coverage(exchange="synthetic", timeframe="1m"):
        assert info.rows == 1_052_640
        assert info.last == parse_time("2024-12-31T23:59")
