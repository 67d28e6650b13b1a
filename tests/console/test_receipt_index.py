"""The receipt index's watermark: it never skips an event that commits late (PostgreSQL's
ingest workers commit in any order), and it does not wait forever for one that never
comes (a rolled-back insert)."""

from __future__ import annotations

import json

import pytest

from appliance import events as ev
from console import receipts, tables
from console.receipts import HOLE_SETTLE_MS, _contiguous_end
from edge.store import Store


def test_the_watermark_stops_at_the_first_missing_id_until_it_has_settled():
    assert _contiguous_end([1, 2, 3], 0, (0, 0), 0, pg=True) == (3, (0, 0))
    assert _contiguous_end([1, 2, 5, 6], 0, (0, 0), 100, pg=True) == (2, (3, 100))
    # the same hole, seen again before it settled: still waiting, since when it was first seen
    assert _contiguous_end([5, 6], 2, (3, 100), 200, pg=True) == (2, (3, 100))
    # it stayed longer than any transaction: an insert that rolled back, skipped
    later = 100 + HOLE_SETTLE_MS
    assert _contiguous_end([5, 6, 8], 2, (3, 100), later, pg=True) == (6, (7, later))
    # SQLite has one writer: what is visible is a prefix
    assert _contiguous_end([1, 2, 5], 0, (0, 0), 0, pg=False) == (5, (0, 0))


def _sale(seq: int) -> tuple:
    payload = {
        "sale_id": f"sale-{seq}",
        "receipt_no": seq,
        "currency": "EUR",
        "total_minor": 100 * seq,
        "payment": {"method": "cash"},
    }
    body = json.dumps({"payload": payload, "wall_ms": 1_790_000_000_000 + seq})
    return ("t1", seq, ev.SALE_COMPLETED, f"{seq:064x}", body, None)


def _indexed(store: Store) -> list[int]:
    return [int(r[0]) for r in store.all("SELECT receipt_no FROM console_receipts ORDER BY 1")]


@pytest.fixture
def stores(pg_url):
    opened = [Store.open(pg_url) for _ in range(3)]
    tables.ensure_schema(opened[0])
    opened[0].insert_device("t1", "demo", "00" * 32, 0, "00" * 32)
    yield opened
    for s in opened:
        s.close()


def test_an_event_that_commits_after_a_later_one_is_still_indexed(stores):
    slow, fast, console = stores
    open_tx = slow.transaction()
    open_tx.__enter__()
    slow.insert_events([_sale(1)])  # its ingest id is taken, not yet visible
    fast.insert_events([_sale(2)])  # a later id, committed first
    receipts.catch_up(console, 1_000)
    assert _indexed(console) == []  # waits at the missing id instead of passing it
    open_tx.__exit__(None, None, None)
    receipts.catch_up(console, 2_000)
    assert _indexed(console) == [1, 2]


def test_an_insert_that_rolled_back_is_skipped_once_it_settled(stores):
    slow, fast, console = stores
    fast.insert_events([_sale(1)])
    with pytest.raises(RuntimeError):
        with slow.transaction():
            slow.insert_events([_sale(2)])
            raise RuntimeError("the segment's transaction failed")
    fast.insert_events([_sale(3)])
    receipts.catch_up(console, 1_000)
    assert _indexed(console) == [1]
    receipts.catch_up(console, 1_000 + HOLE_SETTLE_MS - 1)
    assert _indexed(console) == [1]
    receipts.catch_up(console, 1_000 + HOLE_SETTLE_MS)
    assert _indexed(console) == [1, 3]
    assert tables.watermark(console, receipts.INDEX)[1:] == (0, 0)


def test_a_stored_sale_the_index_cannot_read_is_skipped_not_a_stuck_index(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'edge.db'}")
    try:
        tables.ensure_schema(store)
        store.insert_device("t1", "demo", "00" * 32, 0, "00" * 32)
        broken = json.dumps({"payload": {"sale_id": "x", "receipt_no": "one"}, "wall_ms": 1})
        printed = json.dumps({"payload": {"receipt_no": 3, "code": "AAAAA-BBBBB"}, "wall_ms": 2})
        store.insert_events(
            [
                _sale(1),
                ("t1", 2, ev.SALE_COMPLETED, "ab" * 32, broken, None),
                _sale(3),
                ("t1", 4, ev.RECEIPT_PRINTED, "cd" * 32, printed, None),
            ]
        )
        receipts.catch_up(store, 0)
        assert _indexed(store) == [1, 3]
        assert store.one("SELECT code FROM console_receipts WHERE receipt_no = 3")[0] == (
            "AAAAA-BBBBB"
        )
        assert tables.watermark(store, receipts.INDEX)[0] == 4
    finally:
        store.close()
