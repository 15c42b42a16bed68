"""Downloads without a reachable exchange fail at the first attempt and name the cause;
--max-jump and the per-timeframe jump threshold on download; the "stored in" line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fake_exchange import FakeBinance

import cli
from datasets.catalog import Catalog
from datasets.download import (
    ExchangeUnreachableError,
    call_with_retry,
    download_series,
    make_exchange,
    unfixable_network_cause,
)
from gogo2.config import ExchangeConfig
from gogo2.errors import CandleValidationError
from gogo2.timeframes import format_time, parse_time

T0 = parse_time("2023-01-01")
HOUR = 3_600_000
FAST = ExchangeConfig(rate_limit_ms=0, timeout_ms=2_000, retries=5, backoff_s=1.0)


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\n"
        "exchange:\n  rate_limit_ms: 0\n  retries: 5\n  backoff_s: 0\n  timeout_ms: 2000\n"
    )
    return cfg


def _download(tmp_path: Path, api_url: str, *extra: str) -> list[str]:
    return [
        "data", "download", "--exchange", "binance", "--symbols", "BTC/USDT",
        "--timeframes", "1h", "--from", "2023-01-01", "--to", "2023-01-02",
        "--config", str(_config(tmp_path)), "--api-url", api_url, *extra,
    ]  # fmt: skip


@pytest.fixture
def fail_dns(monkeypatch):
    """Make every ``*.invalid`` host fail name resolution the way the resolver does.

    Hosts under ``.invalid`` never resolve (RFC 6761); answering here keeps the test
    independent of the machine's resolver (an offline one may stall before answering).
    Returns the list of hosts looked up and the error to answer (errno, text).
    """
    real = socket.getaddrinfo
    looked_up: list[str] = []
    state = {"errno": socket.EAI_NONAME, "text": "Name or service not known"}

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".invalid"):
            looked_up.append(host)
            raise socket.gaierror(state["errno"], state["text"])
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up, state


def test_connection_refused_is_not_retried(tmp_path) -> None:
    ex = make_exchange("binance", FAST, f"http://127.0.0.1:{_closed_port()}")
    calls: list[int] = []
    sleeps: list[float] = []

    def load() -> None:
        calls.append(1)
        ex.load_markets()

    with pytest.raises(ExchangeUnreachableError) as err:
        call_with_retry(load, exchange=ex, retries=5, backoff_s=1.0, sleep=sleeps.append)
    assert calls == [1] and sleeps == []  # one attempt of the six the budget allows
    assert err.value.cause == "refused" and err.value.exit_code == 1
    assert "connection refused" in str(err.value) and "127.0.0.1:" in str(err.value)
    # the same inside a download: no backoff sleep, nothing stored
    catalog = Catalog(tmp_path / "data")
    retried: list[int] = []
    with pytest.raises(ExchangeUnreachableError, match="binance BTC/USDT 1h: cannot reach"):
        download_series(
            catalog, ex, "BTC/USDT", "1h", T0, T0 + 5 * HOUR, retries=5, backoff_s=1.0,
            sleep=sleeps.append, on_retry=lambda *a: retried.append(1),
        )  # fmt: skip
    assert sleeps == [] and retried == []
    assert catalog.last_time("binance", "BTC/USDT", "1h") is None


def test_cli_connection_refused_one_error_line_exit_1(tmp_path, capsys) -> None:
    assert cli.main(_download(tmp_path, f"http://127.0.0.1:{_closed_port()}")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: binance: cannot reach 127.0.0.1:")
    assert "connection refused" in err and "--api-url" in err
    assert "retry 1/5" not in err  # the first attempt was the last
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (socket.EAI_NONAME, "Name or service not known"),  # the name does not exist
        (socket.EAI_AGAIN, "Temporary failure in name resolution"),  # no network at all
    ],
)
def test_cli_dns_failure_is_named_and_not_retried(tmp_path, capsys, fail_dns, code, text) -> None:
    looked_up, state = fail_dns
    state.update(errno=code, text=text)
    assert cli.main(_download(tmp_path, "http://nonexistent.invalid")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: binance: cannot reach nonexistent.invalid: DNS lookup failed")
    assert f"({text})" in err and "check the network connection and the host name" in err
    assert looked_up == ["nonexistent.invalid"]  # one attempt: one lookup
    assert "retry 1/5" not in err and len(err.strip().splitlines()) == 1


def test_tls_error_is_named_and_not_retried(tmp_path, capsys) -> None:
    with FakeBinance() as fake:  # plain HTTP: a TLS handshake with it fails
        https = fake.base_url.replace("http://", "https://")
        assert cli.main(_download(tmp_path, https)) == 1
    err = capsys.readouterr().err
    assert "cannot reach 127.0.0.1:" in err and "TLS handshake error" in err
    assert "retry 1/5" not in err and len(err.strip().splitlines()) == 1


def test_transient_causes_are_left_to_the_retry_loop() -> None:
    import ccxt

    reset = ccxt.NetworkError("binance GET http://x/api")
    reset.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    assert unfixable_network_cause(reset) is None
    assert unfixable_network_cause(ccxt.RequestTimeout("binance GET http://x/api")) is None
    assert unfixable_network_cause(ccxt.ExchangeNotAvailable("503")) is None
    wrapped = ccxt.NetworkError("binance GET http://x/api")
    wrapped.__context__ = OSError("wrapper")
    wrapped.__context__.__cause__ = socket.gaierror(socket.EAI_AGAIN, "Temporary failure")
    assert unfixable_network_cause(wrapped) == ("dns", "DNS lookup failed (Temporary failure)")


# --------------------------------------------------------------------------- --max-jump
def _jumpy_klines(fake: FakeBinance, move: float) -> None:
    """Serve six hourly candles from T0 whose close jumps by ``move`` at the fourth and stays."""

    def handler(q: dict[str, str]) -> tuple[int, list]:
        start = int(q.get("startTime", T0))
        rows = []
        for i in range(6):
            t = T0 + i * HOUR
            if t < start:
                continue
            prev = 100.0 if i < 3 else 100.0 * (1 + move)
            o = 100.0 if i <= 3 else prev
            c = prev
            rows.append(
                [t, f"{o:.2f}", f"{max(o, c):.2f}", f"{min(o, c):.2f}", f"{c:.2f}", "5.0",
                 t + HOUR - 1, "500.0", 10, "2.5", "250.0", "0"]
            )  # fmt: skip
        return 200, rows

    fake.add_route("/api/v3/klines", handler)


def test_download_uses_the_timeframe_threshold_and_max_jump_overrides(tmp_path) -> None:
    with FakeBinance(now_ms=T0 + 86_400_000) as fake:
        _jumpy_klines(fake, 0.57)
        ex = make_exchange("binance", FAST, fake.base_url)
        catalog = Catalog(tmp_path / "data")
        with pytest.raises(CandleValidationError) as err:
            download_series(catalog, ex, "BTC/USDT", "1h", T0, T0 + 6 * HOUR)
        msg = str(err.value)
        assert f"The largest move is +57.0% (at {format_time(T0 + 3 * HOUR)} UTC)" in msg
        assert "now 0.5 for 1h" in msg and "--max-jump 0.60" in msg
        assert catalog.last_time("binance", "BTC/USDT", "1h") is None
        res = download_series(catalog, ex, "BTC/USDT", "1h", T0, T0 + 6 * HOUR, max_jump=0.6)
        assert res.rows == 6


def test_cli_download_max_jump_and_stored_in_line(tmp_path, capsys) -> None:
    with FakeBinance(now_ms=T0 + 86_400_000) as fake:
        _jumpy_klines(fake, 0.57)
        argv = [*_download(tmp_path, fake.base_url)]
        argv[argv.index("2023-01-02")] = "2023-01-01T06:00"
        assert cli.main(argv) == 2
        assert "--max-jump 0.60" in capsys.readouterr().err
        assert cli.main([*argv, "--max-jump", "0.6"]) == 0
    out = capsys.readouterr().out
    assert "binance BTC/USDT 1h: 6 candles written" in out
    assert out.rstrip().splitlines()[-1] == f"stored in {(tmp_path / 'data').resolve()}"
