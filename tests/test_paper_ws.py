"""Paper runs over the websocket (ccxt.pro) against the loopback fake Binance, on a fake
clock: candles from the socket, a dropped socket falling back to REST and coming back."""

from __future__ import annotations

import time

from fake_exchange import FakeBinance, FakeKlineStream

from gogo2.config import load_settings
from gogo2.timeframes import parse_time

PRIVATE = (
    "/api/v3/order",
    "/api/v3/account",
    "/api/v3/myTrades",
    "/api/v3/openOrders",
    "/api/v3/userDataStream",
    "/sapi/",
)


def _run(tmp_path, max_bars, on_line=None, feed_options=None):
    from runner import paper as session

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data:\n  dir: {tmp_path / 'data'}\nbacktest:\n  report_dir: {tmp_path / 'reports'}\n"
    )
    settings = load_settings(cfg)
    start = parse_time("2024-01-10") + 30_000
    with FakeBinance(now_ms=start) as fake:
        stream = FakeKlineStream(fake).start()
        try:

            def clock() -> float:
                return fake.now_ms / 1000.0

            def sleep(s: float) -> None:
                if not stream.refuse:
                    stream.wait_subscribed(2)  # the fake clock waits for the client to connect
                fake.now_ms += int(s * 1000)
                stream.publish()
                time.sleep(0.03)  # let the socket deliver

            req, cls = session.validate(
                settings,
                mode="ws",
                exchange="binance",
                symbols="BTC/USDT,ETH/USDT",
                timeframe="1m",
                strategy="sma_cross",
                params=["fast=3", "slow=8"],
                max_bars=max_bars,
                api_url=stream.base_url,
            )
            lines: list[tuple[str, int]] = []

            def say(text: str) -> None:
                lines.append((text, fake.count("/api/v3/klines")))
                if on_line is not None:
                    on_line(text, stream, lines)

            out = session.run_paper(
                settings,
                req,
                cls,
                report=False,
                say=say,
                clock=clock,
                sleep=sleep,
                feed_options={"grace_s": 5.0, **(feed_options or {})},
            )
            paths = [p for p, _ in fake.requests]
            return out, lines, paths, list(stream.log)
        finally:
            stream.stop()


def test_paper_run_over_the_websocket(tmp_path):
    out, lines, paths, ws_log = _run(tmp_path, 6)
    rec = out.record
    assert len(rec.time) == 6
    assert all(b - a == 60_000 for a, b in zip(rec.time, rec.time[1:], strict=False))
    status = [(t, k) for t, k in lines if " equity " in t]
    # once the socket streams (the first bar may still come by REST while it connects),
    # no REST kline request: the bars came from the socket
    assert len({k for _, k in status[2:]}) == 1
    assert any(t == "websocket: streaming" for t, _ in lines)
    # the socket url kept /stream, and only kline streams were subscribed
    assert ws_log[0] == ("connect", "/stream/ws/0")
    subs = [p for kind, body in ws_log if kind == "message" for p in body["params"]]
    assert sorted(subs) == ["btcusdt@kline_1m", "ethusdt@kline_1m"]
    assert not [p for p in paths if p.startswith(PRIVATE)]


def test_a_dropped_socket_falls_back_to_rest_then_resumes(tmp_path):
    def on_line(text, stream, lines):
        n = sum(" equity " in t for t, _ in lines)
        if " equity " in text and n == 3:
            stream.refuse = True
            stream.drop()
        if " equity " in text and n == 7:
            stream.refuse = False

    out, lines, paths, ws_log = _run(
        tmp_path, 16, on_line, {"backoff_s": 0.05, "backoff_max_s": 0.2}
    )
    rec = out.record
    assert len(rec.time) == 16
    # no bar lost or doubled across the outage
    assert all(b - a == 60_000 for a, b in zip(rec.time, rec.time[1:], strict=False))
    texts = [t for t, _ in lines]
    assert any("polling REST" in t for t in texts)
    assert texts.count("websocket: streaming") >= 2  # back on the socket
    status = [k for t, k in lines if " equity " in t]
    # during the outage bars were fetched by REST; at the end the socket carries them again
    assert status[6] > status[2]
    assert status[-1] == status[-3]
    assert sum(kind == "connect" for kind, _ in ws_log) >= 2
    assert not [p for p in paths if p.startswith(PRIVATE)]
