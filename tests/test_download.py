"""ccxt download against the loopback fake Binance: paging, resume, retries, gaps, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fake_exchange import FakeBinance, FakeMarket

import cli
from datasets.catalog import Catalog
from datasets.download import (
    _describe,
    call_with_retry,
    check_request,
    download_series,
    make_exchange,
    override_api_urls,
    page_limit,
)
from gogo2.config import ExchangeConfig
from gogo2.errors import ExchangeFetchError, UnknownNameError, UserInputError
from gogo2.timeframes import parse_time

T0 = parse_time("2023-01-01")
MIN = 60_000
HOUR = 3_600_000
FAST = ExchangeConfig(rate_limit_ms=0, timeout_ms=2_000, retries=3, backoff_s=0.5)


@pytest.fixture
def fake():
    with FakeBinance(now_ms=T0 + 2 * 86_400_000 + 30_000) as server:  # 2023-01-03 00:00:30
        yield server


@pytest.fixture
def exchange(fake):
    ex = make_exchange("binance", FAST, fake.base_url)
    ex.load_markets()
    return ex


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "data")


def _stored_times(catalog: Catalog, symbol: str = "BTC/USDT", tf: str = "1m") -> np.ndarray:
    return catalog.load_frame("binance", symbol, tf)["time"].to_numpy()


def test_page_limit_from_ccxt(exchange) -> None:
    assert page_limit(exchange) == 1000


def test_pagination_fetches_every_closed_candle(fake, exchange, catalog) -> None:
    end = T0 + 2_500 * MIN  # two and a half pages
    sleeps: list[float] = []
    res = download_series(
        catalog, exchange, "BTC/USDT", "1m", T0, end, now_ms=fake.now(), sleep=sleeps.append
    )
    assert res.rows == 2_500 and res.gaps == [] and sleeps == []
    reqs = fake.kline_requests()
    assert len(reqs) == 3 == res.requests
    assert [int(q["startTime"]) for q in reqs] == [T0, T0 + 1000 * MIN, T0 + 2000 * MIN]
    assert all(q["limit"] == "1000" and q["symbol"] == "BTCUSDT" for q in reqs)
    stored = catalog.load_frame("binance", "BTC/USDT", "1m")
    np.testing.assert_array_equal(stored["time"].to_numpy(), T0 + MIN * np.arange(2_500))
    # the values are the exchange's, not re-generated: compare with what the fake serves
    served = fake.klines("BTCUSDT", "1m", T0 + 1_234 * MIN, None, 1)[0]
    row = stored.iloc[1_234]
    assert row["open"] == float(served[1]) and row["close"] == float(served[4])
    assert row["volume"] == float(served[5])
    assert catalog.series_source("binance", "BTC/USDT") == "real"


def test_resume_fetches_only_new_candles(fake, exchange, catalog) -> None:
    first = download_series(catalog, exchange, "BTC/USDT", "1h", T0, None, now_ms=fake.now())
    assert first.rows == 48  # 2023-01-01 00:00 .. 2023-01-02 23:00, all closed
    n_before = len(fake.kline_requests())
    fake.now_ms = fake.now() + 5 * HOUR
    second = download_series(catalog, exchange, "BTC/USDT", "1h", T0, None, now_ms=fake.now())
    new = fake.kline_requests()[n_before:]
    assert len(new) == 1 and int(new[0]["startTime"]) == T0 + 48 * HOUR
    assert second.rows == 5 and second.first == T0 + 48 * HOUR
    np.testing.assert_array_equal(_stored_times(catalog, tf="1h"), T0 + HOUR * np.arange(53))
    # nothing new: no request at all
    n_before = len(fake.kline_requests())
    third = download_series(catalog, exchange, "BTC/USDT", "1h", T0, None, now_ms=fake.now())
    assert third.up_to_date and third.rows == 0 and len(fake.kline_requests()) == n_before


def test_earlier_from_backfills_before_stored(fake, exchange, catalog) -> None:
    download_series(catalog, exchange, "BTC/USDT", "1h", T0 + 24 * HOUR, T0 + 30 * HOUR)
    res = download_series(catalog, exchange, "BTC/USDT", "1h", T0, T0 + 30 * HOUR)
    starts = [int(q["startTime"]) for q in fake.kline_requests()]
    assert starts == [T0 + 24 * HOUR, T0]
    assert res.rows == 24 and res.gaps == []
    np.testing.assert_array_equal(_stored_times(catalog, tf="1h"), T0 + HOUR * np.arange(30))


@pytest.mark.parametrize("kind", ["503", "429", "418"])
def test_transient_errors_are_retried_with_backoff(fake, exchange, catalog, kind) -> None:
    fake.fail_next(3, kind)
    sleeps: list[float] = []
    res = download_series(
        catalog, exchange, "BTC/USDT", "1h", T0, T0 + 10 * HOUR, retries=3, backoff_s=0.5,
        sleep=sleeps.append,
    )  # fmt: skip
    assert sleeps == [0.5, 1.0, 2.0]
    assert res.rows == 10 and res.requests == 4
    assert len(_stored_times(catalog, tf="1h")) == 10


def test_timeout_is_retried(fake, catalog) -> None:
    fake.timeout_delay = 1.0
    ex = make_exchange("binance", ExchangeConfig(rate_limit_ms=0, timeout_ms=200), fake.base_url)
    ex.load_markets()
    fake.fail_next(1, "timeout")
    sleeps: list[float] = []
    res = download_series(catalog, ex, "BTC/USDT", "1h", T0, T0 + 3 * HOUR, sleep=sleeps.append)
    assert len(sleeps) == 1 and res.rows == 3


def test_retries_exhausted_keeps_fetched_candles(fake, exchange, catalog) -> None:
    calls: list[int] = []

    def break_after_first_page(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 1:
            fake.fail_next(10, "503")

    with pytest.raises(ExchangeFetchError, match=r"binance BTC/USDT 1m.*after 2 retries"):
        download_series(
            catalog, exchange, "BTC/USDT", "1m", T0, T0 + 2_500 * MIN, retries=2,
            backoff_s=0.0, sleep=lambda s: None, progress=break_after_first_page,
        )  # fmt: skip
    np.testing.assert_array_equal(_stored_times(catalog), T0 + MIN * np.arange(1000))
    # the next run resumes after the stored page
    fake.clear_failures()
    res = download_series(catalog, exchange, "BTC/USDT", "1m", T0, T0 + 2_500 * MIN)
    assert res.rows == 1_500 and res.first == T0 + 1000 * MIN
    assert len(_stored_times(catalog)) == 2_500


def test_chunked_writes_store_the_same_candles(fake, exchange, tmp_path) -> None:
    writes: list[int] = []

    class CountingCatalog(Catalog):
        def write(self, df, *args, **kwargs):
            writes.append(len(df))
            return super().write(df, *args, **kwargs)

    chunked = CountingCatalog(tmp_path / "chunked")
    res = download_series(chunked, exchange, "BTC/USDT", "1m", T0, T0 + 2_500 * MIN, chunk_rows=1)
    assert writes == [1000, 1000, 500] and res.rows == 2_500
    whole = Catalog(tmp_path / "whole")
    download_series(whole, exchange, "BTC/USDT", "1m", T0, T0 + 2_500 * MIN)
    a = chunked.load_frame("binance", "BTC/USDT", "1m")
    b = whole.load_frame("binance", "BTC/USDT", "1m")
    assert a.equals(b)


def test_gap_is_reported_not_filled(fake, exchange, catalog) -> None:
    outage = (T0 + 1_100 * MIN, T0 + 1_160 * MIN)
    fake.add_gap("BTC/USDT", *outage)
    res = download_series(catalog, exchange, "BTC/USDT", "1m", T0, T0 + 2_000 * MIN)
    assert res.gaps == [(outage[0] - MIN, outage[1], 60)]
    assert res.rows == 2_000 - 60
    times = _stored_times(catalog)
    assert not np.any((times >= outage[0]) & (times < outage[1]))
    assert catalog.gaps("binance", "BTC/USDT", "1m") == [(outage[0] - MIN, outage[1], 60)]


def test_missing_tail_is_reported(fake, exchange, catalog) -> None:
    fake.add_gap("BTC/USDT", T0 + 8 * HOUR, T0 + 100 * HOUR)  # outage still going on
    res = download_series(catalog, exchange, "BTC/USDT", "1h", T0, T0 + 12 * HOUR)
    assert res.rows == 8 and res.gaps == []
    assert res.tail_missing == (T0 + 7 * HOUR, T0 + 12 * HOUR, 4)


def test_gap_across_resume_boundary_is_reported(fake, exchange, catalog) -> None:
    download_series(catalog, exchange, "BTC/USDT", "1h", T0, T0 + 10 * HOUR)
    fake.add_gap("BTC/USDT", T0 + 10 * HOUR, T0 + 12 * HOUR)
    res = download_series(catalog, exchange, "BTC/USDT", "1h", T0, T0 + 20 * HOUR)
    assert res.gaps == [(T0 + 9 * HOUR, T0 + 12 * HOUR, 2)]


def test_open_last_candle_is_dropped(fake, exchange, catalog) -> None:
    fake.now_ms = T0 + 5 * HOUR + 20 * MIN  # the 05:00 hourly candle is still open
    res = download_series(catalog, exchange, "BTC/USDT", "1h", T0, None, now_ms=fake.now())
    # the exchange did serve the open candle ...
    served = fake.klines("BTCUSDT", "1h", T0, None, 1000)
    assert int(served[-1][0]) == T0 + 5 * HOUR
    # ... but it is not stored
    assert res.dropped_open == 1 and res.last == T0 + 4 * HOUR
    np.testing.assert_array_equal(_stored_times(catalog, tf="1h"), T0 + HOUR * np.arange(5))
    # once it has closed, the next run stores it
    fake.now_ms = T0 + 6 * HOUR
    download_series(catalog, exchange, "BTC/USDT", "1h", T0, None, now_ms=fake.now())
    assert catalog.last_time("binance", "BTC/USDT", "1h") == T0 + 5 * HOUR


def test_start_is_aligned_to_the_grid(fake, exchange, catalog) -> None:
    res = download_series(catalog, exchange, "BTC/USDT", "1h", T0 + 30 * MIN, T0 + 4 * HOUR)
    assert int(fake.kline_requests()[0]["startTime"]) == T0 + HOUR
    assert res.rows == 3 and res.listed_from is None


def test_weekly_candles_open_on_monday(catalog) -> None:
    with FakeBinance(now_ms=parse_time("2023-06-01")) as f:
        ex = make_exchange("binance", FAST, f.base_url)
        res = download_series(
            catalog, ex, "BTC/USDT", "1w", T0, parse_time("2023-03-01"), now_ms=f.now()
        )
    days = (_stored_times(catalog, tf="1w") // 86_400_000 + 3) % 7  # 0 = Monday
    assert res.rows == 9 and res.listed_from is None and res.gaps == []
    assert set(days.tolist()) == {0}
    assert res.first == parse_time("2023-01-02")


def test_listing_start_is_noted(catalog) -> None:
    listed = T0 + 3 * HOUR
    with FakeBinance(
        [FakeMarket("SOL", "USDT", 10.0, listed_from=listed)], now_ms=T0 + 86_400_000
    ) as f:
        ex = make_exchange("binance", FAST, f.base_url)
        res = download_series(catalog, ex, "SOL/USDT", "1h", T0, T0 + 6 * HOUR)
    assert res.listed_from == listed and res.rows == 3 and res.gaps == []
    text = "\n".join(_describe(res))
    assert "no candles between 2023-01-01 00:00 and 2023-01-01 03:00" in text


def test_symbol_without_klines_is_a_user_error(catalog) -> None:
    markets = [FakeMarket("BTC", "USDT", 16_500.0), FakeMarket("OLD", "USDT", 1.0, klines=False)]
    with FakeBinance(markets, now_ms=T0 + 86_400_000) as f:
        ex = make_exchange("binance", FAST, f.base_url)
        with pytest.raises(UserInputError, match=r"binance has no market 'OLD/USDT'"):
            download_series(catalog, ex, "OLD/USDT", "1h", T0, T0 + 6 * HOUR)
    assert catalog.last_time("binance", "OLD/USDT", "1h") is None


def test_unknown_symbol_and_timeframe_refused_before_fetching(fake, exchange) -> None:
    with pytest.raises(UserInputError, match=r"binance has no market 'ETH/USTD'.*'ETH/USDT'"):
        check_request(exchange, ["BTC/USDT", "ETH/USTD"], ["1m"])
    with pytest.raises(UnknownNameError, match=r"timeframe on binance '7m'"):
        check_request(exchange, ["BTC/USDT"], ["7m"])
    assert fake.kline_requests() == []


def test_unknown_exchange_suggests_close_match() -> None:
    with pytest.raises(UnknownNameError, match=r"'binanse'.*Did you mean 'binance'"):
        make_exchange("binanse")


def test_api_url_override_keeps_paths() -> None:
    ex = make_exchange("binance")
    override_api_urls(ex, "http://127.0.0.1:9/")
    assert ex.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"
    assert ex.urls["api"]["fapiPublic"] == "http://127.0.0.1:9/fapi/v1"
    with pytest.raises(UserInputError, match="api-url"):
        override_api_urls(ex, "localhost:9")


def test_call_with_retry_does_not_retry_permanent_errors() -> None:
    import ccxt

    ex = make_exchange("binance")
    calls: list[int] = []

    def auth_fails():
        calls.append(1)
        raise ccxt.AuthenticationError('binance {"code":-2015,"msg":"Invalid API-key"}')

    with pytest.raises(UserInputError, match="refused"):
        call_with_retry(auth_fails, exchange=ex, retries=5, backoff_s=0, symbol="BTC/USDT")
    assert calls == [1]


# --------------------------------------------------------------------------- CLI end to end
def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\n"
        "exchange:\n  rate_limit_ms: 0\n  retries: 2\n  backoff_s: 0\n  timeout_ms: 2000\n"
    )
    return cfg


def test_cli_download_end_to_end(tmp_path, capsys) -> None:
    with FakeBinance() as f:  # wall clock: the requested range is long closed
        f.add_gap("ETH/USDT", T0 + 60 * MIN, T0 + 70 * MIN)
        f.fail_next(1, "503")
        argv = [
            "data", "download", "--exchange", "binance", "--symbols", "BTC/USDT,ETH/USDT",
            "--timeframes", "1m,1h", "--from", "2023-01-01", "--to", "2023-01-01T03:00",
            "--config", str(_config(tmp_path)), "--api-url", f.base_url,
        ]  # fmt: skip
        assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert "binance BTC/USDT 1m: 180 candles written" in out
    assert "binance ETH/USDT 1m: 170 candles written" in out
    assert "gap: 10 missing candle(s) between 2023-01-01 00:59 and 2023-01-01 01:10" in out
    assert "binance BTC/USDT 1h: 3 candles written" in out
    assert "retry 1/2" in err
    cat = Catalog(tmp_path / "data")
    infos = {(i.symbol, i.timeframe): i for i in cat.coverage(exchange="binance")}
    assert infos[("BTC/USDT", "1m")].rows == 180 and infos[("ETH/USDT", "1m")].missing_bars == 10
    assert all(i.source == "real" for i in infos.values())


def test_cli_bad_symbol_exits_2(tmp_path, capsys, monkeypatch) -> None:
    with FakeBinance() as f:
        monkeypatch.setenv("GOGO2_EXCHANGE_API_URL", f.base_url)  # same as --api-url
        argv = [
            "data", "download", "--symbols", "BTC/USDT,DOGE/USDT", "--from", "2023-01-01",
            "--to", "2023-01-02", "--config", str(_config(tmp_path)),
        ]  # fmt: skip
        assert cli.main(argv) == 2
        assert f.kline_requests() == []  # refused before anything was fetched
    err = capsys.readouterr().err
    assert err.startswith("error: binance has no market 'DOGE/USDT'")
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.parquet"))


def test_cli_unknown_exchange_and_bad_dates_exit_2(tmp_path, capsys) -> None:
    base = ["data", "download", "--symbols", "BTC/USDT", "--config", str(_config(tmp_path))]
    assert cli.main([*base, "--exchange", "binanse", "--from", "2023-01-01"]) == 2
    assert "Did you mean 'binance'" in capsys.readouterr().err
    assert cli.main([*base, "--from", "2023-02-01", "--to", "2023-01-01"]) == 2
    assert "is not after --from" in capsys.readouterr().err
    assert cli.main([*base, "--from", "yesterday"]) == 2
    assert "bad --from 'yesterday'" in capsys.readouterr().err


def test_fake_extra_route_and_request_log(fake, exchange) -> None:
    fake.add_route("/api/v3/ticker/price", lambda q: (200, {"symbol": q["symbol"], "price": "1.5"}))
    assert exchange.publicGetTickerPrice({"symbol": "BTCUSDT"})["price"] == "1.5"
    assert fake.count("/api/v3/ticker/price") == 1
    assert fake.count("/api/v3/exchangeInfo") == 1  # load_markets in the fixture


def test_fake_klines_match_real_binance_shape(shared_responses, fake, exchange) -> None:
    import json

    case = json.loads((shared_responses / "fetchOHLCV.json").read_text())
    real = case["httpResponse"]
    ours = fake.klines("BTCUSDT", "1h", T0, None, 3)
    assert len(ours[0]) == len(real[0]) == 12

    def kinds(row):
        return [type(v).__name__ for v in row]

    # Binance sends numbers as strings except times and trade counts
    assert kinds(ours[0])[1:6] == kinds(real[0])[1:6] == ["str"] * 5
    assert isinstance(ours[0][0], int) and isinstance(ours[0][6], int)
    assert ours[0][6] == ours[0][0] + HOUR - 1
    assert real[0][6] == real[0][0] + HOUR - 1
    parsed = exchange.parse_ohlcvs(ours, exchange.market("BTC/USDT"), "1h")
    assert [len(r) for r in parsed] == [len(r) for r in case["parsedResponse"]] == [6, 6, 6]
