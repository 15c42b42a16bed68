"""A small project for the research commands: hourly candles in a catalog of its own."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from helpers import make_bars

from datasets.catalog import Catalog
from gogo2.config import Settings, load_settings
from gogo2.timeframes import parse_time

DAYS = 200


def write_candles(
    data_dir: Path, days: int = DAYS, seed: int = 3, symbol: str = "BTC/USDT"
) -> None:
    bars = make_bars(
        24 * days,
        symbols=(symbol,),
        timeframe="1h",
        seed=seed,
        start=parse_time("2023-01-01"),
        vol=0.01,
    )
    frame = pd.DataFrame(
        {
            "time": bars.time,
            "open": bars.open[:, 0],
            "high": bars.high[:, 0],
            "low": bars.low[:, 0],
            "close": bars.close[:, 0],
            "volume": bars.volume[:, 0],
        }
    )
    Catalog(data_dir).write(frame, "test", symbol, "1h")


def project(tmp: Path, days: int = DAYS, second: bool = False) -> tuple[Settings, Path]:
    """Settings whose catalog (exchange ``test``) and reports live under ``tmp``; with
    ``second`` an ETH/USDT series too (another seed)."""
    write_candles(tmp / "data", days)
    if second:
        write_candles(tmp / "data", days, seed=4, symbol="ETH/USDT")
    cfg = tmp / "cfg.yaml"
    cfg.write_text(
        "data: {dir: data, exchange: test}\n"
        "backtest: {report_dir: reports, symbols: BTC/USDT, timeframe: 1h}\n",
        encoding="utf-8",
    )
    return load_settings(cfg, environ={}), cfg
