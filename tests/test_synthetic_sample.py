"""ensure_sample: the embedded sample lands in the catalog once per seed, marked synthetic."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import datasets.synthetic as synthetic
from datasets.catalog import Catalog
from datasets.synthetic import ensure_sample, generate_sample
from gogo2.timeframes import parse_time

# three days across a year boundary, like the real sample (which starts in December 2022)
SHORT_START = "2022-12-31"
SHORT_END = "2023-01-03"


@pytest.fixture
def short_sample(monkeypatch):
    """Shrink the sample span so behaviour tests stay fast."""
    monkeypatch.setattr(synthetic, "SAMPLE_START", SHORT_START)
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
        assert i.first == parse_time(SHORT_START) and i.gap_events == 0
    assert cat.series_source("synthetic", "BTC/USDT") == "synthetic"
    stored = cat.load_frame("synthetic", "ETH/USDT", "1m")
    want = generate_sample(7, SHORT_START, SHORT_END)["ETH/USDT"]
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
        after["close"].to_numpy(), generate_sample(2, SHORT_START, SHORT_END)["BTC/USDT"]["close"]
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
    # December 2022 (31 days) + 2023 (365) + 2024 (366)
    assert bars.n == (31 + 365 + 366) * 24 == 18_288
    assert bars.time[0] == parse_time("2022-12-01")
    assert not np.isnan(bars.close).any()
    for info in cat.coverage(exchange="synthetic", timeframe="1m"):
        assert info.rows == 762 * 1440 == 1_097_280
        assert info.first == parse_time("2022-12-01")
        assert info.last == parse_time("2024-12-31T23:59")


def _stored_frames(cat: Catalog) -> dict[str, pd.DataFrame]:
    return {sym: cat.load_frame("synthetic", sym, "1m") for sym in synthetic.SAMPLE_SYMBOLS}


def _assert_exactly(cat: Catalog, seed: int, start: str, end: str) -> None:
    """The catalog holds exactly the sample of ``seed`` over [start, end), nothing else."""
    minutes = (parse_time(end) - parse_time(start)) // 60_000
    want = generate_sample(seed, start, end)
    for sym, stored in _stored_frames(cat).items():
        assert len(stored) == minutes
        assert stored["time"].iloc[0] == parse_time(start)
        assert stored["time"].iloc[-1] == parse_time(end) - 60_000
        for col in ("time", "open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(stored[col].to_numpy(), want[sym][col].to_numpy())
    for info in cat.coverage(exchange="synthetic", timeframe="1m"):
        assert info.rows == minutes and info.gap_events == 0


def _old_sample(monkeypatch, cat: Catalog, seed: int, start: str, end: str) -> None:
    """Store a sample as an older generator version (version 1, another span) left it."""
    version = synthetic.GENERATOR_VERSION
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", 1)
    monkeypatch.setattr(synthetic, "SAMPLE_START", start)
    monkeypatch.setattr(synthetic, "SAMPLE_END", end)
    assert ensure_sample(cat, seed, console=_console()[0]) is True
    manifest = json.loads((cat.root / synthetic.MANIFEST_NAME).read_text())
    assert manifest["version"] == 1 and manifest["start"] == start
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", version)
    monkeypatch.setattr(synthetic, "SAMPLE_START", SHORT_START)
    monkeypatch.setattr(synthetic, "SAMPLE_END", SHORT_END)


def test_old_version_sample_is_replaced(tmp_path, monkeypatch) -> None:
    # Version 1 started a day later (2023-01-01); the current one starts 2022-12-31 and
    # covers every time of the old one. The same seed over another span gives other
    # candles, so a surviving old row would show.
    cat = Catalog(tmp_path / "data")
    _old_sample(monkeypatch, cat, 7, "2023-01-01", SHORT_END)
    old = _stored_frames(cat)["BTC/USDT"]
    assert len(old) == 2 * 1440 and old["time"].iloc[0] == parse_time("2023-01-01")
    new = generate_sample(7, SHORT_START, SHORT_END)["BTC/USDT"].iloc[1440:]
    assert not np.array_equal(old["close"].to_numpy(), new["close"].to_numpy())
    # an hourly view derived from the old 1m candles is cached now
    old_hourly = cat.load(["BTC/USDT"], "1h", exchange="synthetic")
    assert old_hourly.n == 48

    con, buf = _console()
    assert ensure_sample(cat, 7, console=con) is True
    assert "generating the embedded synthetic sample" in buf.getvalue()
    _assert_exactly(cat, 7, SHORT_START, SHORT_END)
    manifest = json.loads((cat.root / synthetic.MANIFEST_NAME).read_text())
    assert manifest["version"] == synthetic.GENERATOR_VERSION
    assert manifest["origin"] == f"synthetic:seed=7:v{synthetic.GENERATOR_VERSION}"
    assert manifest["start"] == SHORT_START and manifest["end"] == SHORT_END
    # the derived hourly cache follows the new candles: 72 hours, the first opening at
    # the new first 1m open
    hourly = cat.load(["BTC/USDT"], "1h", exchange="synthetic")
    assert hourly.n == 72 and hourly.time[0] == parse_time(SHORT_START)
    want = generate_sample(7, SHORT_START, SHORT_END)["BTC/USDT"]
    assert hourly.open[0, 0] == want["open"].iloc[0]
    assert hourly.close[-1, 0] == want["close"].iloc[-1]
    # and the new sample is kept from then on
    assert ensure_sample(cat, 7, console=_console()[0]) is False


def test_old_sample_reaching_beyond_the_new_span_leaves_no_row(tmp_path, monkeypatch) -> None:
    # An old sample that ran later (to 2023-01-05) than the current span: its rows
    # after the new end are not overwritten by the new write and must go too.
    cat = Catalog(tmp_path / "data")
    _old_sample(monkeypatch, cat, 4, "2023-01-01", "2023-01-05")
    assert cat.last_time("synthetic", "ETH/USDT", "1m") == parse_time("2023-01-04T23:59")
    assert ensure_sample(cat, 4, console=_console()[0]) is True
    _assert_exactly(cat, 4, SHORT_START, SHORT_END)
    assert ensure_sample(cat, 4, console=_console()[0]) is False


def test_older_generator_version_over_the_same_span_is_regenerated(tmp_path, monkeypatch) -> None:
    # Same seed and span, older version: only the manifest's origin tells them apart.
    cat = Catalog(tmp_path / "data")
    _old_sample(monkeypatch, cat, 6, SHORT_START, SHORT_END)
    assert ensure_sample(cat, 6, console=_console()[0]) is True
    _assert_exactly(cat, 6, SHORT_START, SHORT_END)
    manifest = json.loads((cat.root / synthetic.MANIFEST_NAME).read_text())
    assert manifest["version"] == synthetic.GENERATOR_VERSION > 1
