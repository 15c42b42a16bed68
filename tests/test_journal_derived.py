"""The journal's per-bar answers (positions, orders with fills still to fetch, open orders)
are kept by the database in the transaction of each write: they must equal what the stored
rows say, for a fill stored before its order, a trade id stored twice, and a journal written
before the derived columns existed."""

from __future__ import annotations

import sqlite3

from adapters.journal import FILE_NAME, Journal


def fill(tid, cid, symbol, side, qty, price=100.0):
    return {
        "trade_id": tid,
        "client_id": cid,
        "symbol": symbol,
        "side": side,
        "price": price,
        "qty": qty,
        "fee": 0.0,
        "time": 1,
    }


def order(j, cid, symbol, side, status="open", filled=0.0):
    j.add_order(cid, symbol, side, "limit", 1.0, 100.0, 0, "entry long", 0, status, "x" + cid)
    j.update_order(cid, 1, filled=filled)


def test_positions_and_unsettled_orders_follow_every_write(tmp_path):
    j = Journal(tmp_path, durable=False)
    order(j, "a", "BTC/USDT", "buy", filled=0.5)  # the exchange says 0.5 filled, none stored
    order(j, "b", "ETH/USDT", "buy", status="closed")
    assert j.unfilled_symbols() == ["BTC/USDT"]
    assert j.positions() == {}
    j.add_fills([fill("t1", "a", "BTC/USDT", "buy", 0.25)])
    assert j.unfilled_symbols() == ["BTC/USDT"]  # 0.25 of 0.5 stored
    j.add_fills([fill("t1", "a", "BTC/USDT", "buy", 0.25)])  # the same trade again: skipped
    assert j.positions() == {"BTC/USDT": 0.25}
    j.add_fills([fill("t2", "a", "BTC/USDT", "buy", 0.25)])
    assert j.unfilled_symbols() == []
    assert j.positions() == {"BTC/USDT": 0.5}
    # a sell, and a fill of an order the journal does not hold yet (found by reconciliation)
    j.add_fills([fill("t3", "c", "BTC/USDT", "sell", 0.125), fill("t4", "d", "ETH/USDT", "buy", 2)])
    assert j.positions() == {"BTC/USDT": 0.375, "ETH/USDT": 2.0}
    order(j, "d", "ETH/USDT", "buy", filled=3.0)  # the row comes after its fill: 2 of 3 stored
    assert j.unfilled_symbols() == ["ETH/USDT"]
    assert [o.client_id for o in j.orders(live_only=True)] == ["a", "d"]
    j.update_order("a", 2, status="closed")
    assert [o.client_id for o in j.orders(live_only=True)] == ["d"]
    assert [o.client_id for o in j.orders()] == ["a", "b", "d"]
    j.close()


def test_a_journal_written_before_the_derived_columns_is_brought_up_to_date(tmp_path):
    j = Journal(tmp_path, durable=False)
    order(j, "a", "BTC/USDT", "buy", filled=1.0)
    order(j, "b", "BTC/USDT", "sell", filled=0.5)
    j.add_fills(
        [fill("t1", "a", "BTC/USDT", "buy", 1.0), fill("t2", "b", "BTC/USDT", "sell", 0.25)]
    )
    j.close()
    # take the journal back to the earlier layout: no stored column, no positions, no triggers
    db = sqlite3.connect(tmp_path / FILE_NAME)
    for name in ("fills_stored", "orders_stored"):
        db.execute(f"DROP TRIGGER {name}")
    for name in ("orders_unsettled", "orders_live"):
        db.execute(f"DROP INDEX {name}")
    db.execute("DROP TABLE positions")
    db.execute("ALTER TABLE orders DROP COLUMN stored")
    db.commit()
    db.close()
    j = Journal(tmp_path, durable=False)
    assert j.positions() == {"BTC/USDT": 0.75}  # 1 bought, 0.25 sold
    assert j.unfilled_symbols() == ["BTC/USDT"]  # b: 0.5 filled, 0.25 stored
    j.add_fills([fill("t3", "b", "BTC/USDT", "sell", 0.25)])  # the triggers work again
    assert j.unfilled_symbols() == []
    assert j.positions() == {"BTC/USDT": 0.5}
    j.close()
