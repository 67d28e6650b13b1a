"""The ingest rollups the console reads: kept in the segment's transaction, never counting a
duplicate, adding up to the tax ledger, and recomputed by ``tillbox edge check``."""

from __future__ import annotations

import json

import pytest

from appliance.formats import wire
from appliance.pricing import CartLine
from appliance.till import Till
from edge import admin, ledger, rollups
from edge.ingest import Ingestor
from edge.store import Store
from systest.sync import enroll, make_till, run_tillbox, seal_log, sell


def topic(device: str) -> str:
    return wire.topic_seg("demo", device)


@pytest.fixture
def edge(any_db, region):
    store = Store.open(any_db)
    yield Ingestor(store, region.key)
    store.close()


def _ingest(edge, *tills, size: int = 7) -> None:
    for till in tills:
        device = till.load_config().device_id
        for data in seal_log(till, size=size):
            assert edge.handle(topic(device), data).status == "stored"


def _till_sales(*tills) -> list[tuple[str, dict, int]]:
    """(type, payload, wall_ms) of every sale and refund in the tills' own logs."""
    out = []
    for till in tills:
        with Till.open(till) as t:
            out += [
                (e.type, e.payload, e.wall_ms)
                for e in t.log.events()
                if e.type in (ledger.SALE, ledger.REFUND)
            ]
    return out


def _summed(rows: list[tuple], key: slice, values: slice) -> dict[tuple, list[int]]:
    out: dict[tuple, list[int]] = {}
    for row in rows:
        acc = out.setdefault(tuple(row[key]), [0] * len(row[values]))
        for i, v in enumerate(row[values]):
            acc[i] += int(v)
    return out


def test_rollups_add_up_to_the_tax_ledger_and_to_the_tills_own_sales(
    tmp_path, any_db, edge, region
):
    t1, t2 = make_till(tmp_path, "t1", region), make_till(tmp_path, "t2", region)
    sell(t1, 30, refund_every=4)
    sell(t2, 9, refund_every=3)
    with Till.open(t1) as t:  # a promo code, and a refund in a later segment than its sale
        coded = t.sell([CartLine("MUG-01", 2)], "card", promo_code="market10")
    sell(t1, 10, refund_every=0)
    with Till.open(t1) as t:
        t.refund(coded.payload["sale_id"])
    enroll(any_db, t1, t2)
    _ingest(edge, t1, t2)
    store = edge.store
    report = admin.check(store)
    assert report["ok"], report["problems"]
    assert report["rollup_rows_checked"] > 0
    rolled = store.rollup_rows()
    # Σ rollup_tax per (tenant, profile, rate) is the tax ledger, to the cent
    ledger_rows = {(t, p, r): [int(x) for x in rest] for t, p, r, *rest in store.tax_ledger()}
    assert _summed(rolled["tax"], slice(0, 3), slice(6, 10)) == ledger_rows
    # Σ gross − Σ refunds in rollup_sales is the ledger's gross; the counts are the tills'
    own = _till_sales(t1, t2)
    sales = [p for ty, p, _w in own if ty == ledger.SALE]
    refunds = [p for ty, p, _w in own if ty == ledger.REFUND]
    (totals,) = _summed(rolled["sales"], slice(0, 0), slice(6, 10)).values()
    assert totals == [
        len(sales),
        sum(p["total_minor"] for p in sales),
        len(refunds),
        sum(p["gross_minor"] for p in refunds),
    ]
    assert totals[1] - totals[3] == sum(v[1] for v in ledger_rows.values())
    per_device = _summed(rolled["sales"], slice(1, 2), slice(6, 7))
    assert per_device == {("t1",): [41], ("t2",): [9]}
    # items: what the tills sold, per SKU, with the line's name
    sold: dict[str, list] = {}
    for p in sales:
        for ln in p["lines"]:
            row = sold.setdefault(ln["sku"], [ln["name"], 0, 0])
            row[1] += ln["qty"]
            row[2] += ln["gross_minor"]
    assert {r[2]: [r[3], int(r[4]), int(r[5])] for r in rolled["items"]} == sold
    # promos: the code redeemed once, with its discount; the automatic bundle is not a code
    assert [(r[3], r[4], int(r[5]), int(r[6])) for r in rolled["promos"]] == [
        ("MARKET10", "", 1, coded.payload["promotions"][0]["discount_minor"])
    ]
    # the coded sale's refund went under the refunded sale's tax profile, negative
    assert all(r[1] == coded.payload["tax_profile"] for r in rolled["tax"])


def test_day_and_hour_are_utc_of_the_events_wall_clock(tmp_path, any_db, edge, region):
    till = make_till(tmp_path, "t1", region)
    sell(till, 5, refund_every=0)
    enroll(any_db, till)
    _ingest(edge, till)
    own = _till_sales(till)
    expected = {rollups.day_hour(w) for _t, _p, w in own}
    got = {(r[3], int(r[4])) for r in edge.store.rollup_rows()["sales"]}
    assert got == expected
    import datetime as dt

    day, hour = rollups.day_hour(own[0][2])
    when = dt.datetime.fromtimestamp(own[0][2] / 1000, dt.UTC)
    assert (day, hour) == (when.strftime("%Y-%m-%d"), when.hour)


def test_a_duplicate_sale_is_in_no_rollup(tmp_path, any_db, edge, region):
    t1, t2 = make_till(tmp_path, "t1", region), make_till(tmp_path, "t2", region)
    sell(t1, 1, refund_every=0, idempotency_key="shared-key", card_every=0)
    sell(t2, 1, refund_every=0, idempotency_key="shared-key", card_every=0)
    enroll(any_db, t1, t2)
    _ingest(edge, t1, t2)
    rolled = edge.store.rollup_rows()
    assert [(r[1], int(r[6])) for r in rolled["sales"]] == [("t1", 1)]  # t2's is the dup
    assert sum(int(r[4]) for r in rolled["items"]) == 1  # CARTS[0]: one mug
    assert admin.check(edge.store)["ok"]


def test_a_replayed_segment_changes_no_rollup(tmp_path, any_db, edge, region):
    till = make_till(tmp_path, "t1", region)
    sell(till, 12)
    enroll(any_db, till)
    segments = seal_log(till, size=5)
    for data in segments:
        edge.handle(topic("t1"), data)
    before = edge.store.rollup_rows()
    assert edge.handle(topic("t1"), segments[1]).status == "duplicate"
    assert edge.store.rollup_rows() == before


@pytest.mark.parametrize(
    "table, sql",
    [
        ("rollup_tax", "UPDATE rollup_tax SET tax_minor = tax_minor + 1"),
        ("rollup_sales", "UPDATE rollup_sales SET sales = sales - 1"),
        ("rollup_items", "UPDATE rollup_items SET qty = qty + 2"),
        ("rollup_promos", "DELETE FROM rollup_promos"),
        ("rollup_sales", "DELETE FROM rollup_sales"),
    ],
)
def test_a_tampered_rollup_fails_edge_check(tmp_path, any_db, edge, region, table, sql):
    till = make_till(tmp_path, "t1", region)
    sell(till, 6)
    with Till.open(till) as t:
        t.sell([CartLine("TEE-M", 1)], "cash", promo_code="FIVEOFF")
    enroll(any_db, till)
    _ingest(edge, till)
    ok = run_tillbox("edge", "check", "--db", any_db)
    assert ok.returncode == 0, ok.stderr
    assert "ledgers and rollups match" in ok.stdout
    edge.store.execute(sql)
    report = admin.check(edge.store)
    assert not report["ok"]
    assert any(p.startswith(table) for p in report["problems"]), report["problems"]
    bad = run_tillbox("edge", "check", "--db", any_db)
    assert bad.returncode == 4
    assert bad.stderr.count("\n") == 1 and "rollups" in bad.stderr
    assert table in bad.stdout


def test_a_rollup_tax_row_moved_to_another_day_is_caught_by_the_recomputation(
    tmp_path, any_db, edge, region
):
    """The sums still equal the tax ledger; only the recomputation sees the wrong day."""
    till = make_till(tmp_path, "t1", region)
    sell(till, 4, refund_every=0)
    enroll(any_db, till)
    _ingest(edge, till)
    edge.store.execute("UPDATE rollup_tax SET day = '2000-01-01'")
    problems = admin.check(edge.store)["problems"]
    assert problems and all(p.startswith("rollup_tax") for p in problems)
    assert not any("tax ledger holds" in p for p in problems)


# -- the pure fold -------------------------------------------------------------------------
def _sale(key: str, event_id: str | None = None, promo: str | None = "SPRING") -> dict:
    payload = {
        "idempotency_key": key,
        "sale_id": f"s-{key}",
        "tax_profile": "p1",
        "currency": "EUR",
        "lines": [{"sku": "A", "name": "Apple", "qty": 2, "gross_minor": 300}],
        "promotions": [
            {"id": "auto", "kind": "percent", "code": None, "discount_minor": 10},
            {"id": "x", "kind": "amount", "code": promo, "discount_minor": 50},
        ],
        "taxes": [
            {"rate": "std", "rate_bp": 2000, "gross_minor": 300, "tax_minor": 50, "net_minor": 250}
        ],
    }
    if event_id is not None:
        payload["event_id"] = event_id
    return payload


def _refund(sale_id: str, event_id: str | None = None) -> dict:
    payload = {
        "sale_id": sale_id,
        "currency": "EUR",
        "lines": [{"sku": "A", "qty": 1, "gross_minor": 150}],
        "taxes": [
            {"rate": "std", "rate_bp": 2000, "gross_minor": 150, "tax_minor": 25, "net_minor": 125}
        ],
    }
    if event_id is not None:
        payload["event_id"] = event_id
    return payload


DAY1 = 1767225600000  # 2026-01-01 00:00 UTC


def test_the_fold_keys_by_event_day_and_hour_and_books_refunds_like_the_ledger():
    rows = [
        ("demo", "t1", 1, ledger.SALE, DAY1 + 3_600_000 * 13 + 5, _sale("k1", "fair-7")),
        ("demo", "t1", 2, ledger.SALE, DAY1 + 3_600_000 * 13 + 9, _sale("k1", "fair-7")),  # dup
        ("demo", "t2", 1, ledger.REFUND, DAY1 + 86_400_000, _refund("s-k1", "fair-7")),
        ("demo", "t2", 2, ledger.REFUND, DAY1, _refund("s-unknown")),
    ]
    fresh = rollups.recompute(rows)
    assert fresh.sales == {
        ("demo", "t1", "fair-7", "2026-01-01", 13, "EUR"): [1, 300, 0, 0],
        ("demo", "t2", "fair-7", "2026-01-02", 0, "EUR"): [0, 0, 1, 150],
        ("demo", "t2", "", "2026-01-01", 0, "EUR"): [0, 0, 1, 150],
    }
    assert fresh.tax == {
        ("demo", "p1", "std", 2000, "2026-01-01", "fair-7"): [1, 300, 50, 250],
        ("demo", "p1", "std", 2000, "2026-01-02", "fair-7"): [0, -150, -25, -125],
        ("demo", "unknown", "std", 2000, "2026-01-01", ""): [0, -150, -25, -125],
    }
    assert fresh.items == {("demo", "2026-01-01", "A"): ["Apple", 2, 300]}
    assert fresh.promos == {("demo", "fair-7", "2026-01-01", "SPRING", ""): [1, 50]}
    books = ledger.recompute((t, d, s, ty, p) for t, d, s, ty, _w, p in rows)
    summed: dict = {}
    for (t, p, r, _bp, _day, _ev), values in fresh.tax.items():
        acc = summed.setdefault((t, p, r), [0, 0, 0, 0])
        for i, v in enumerate(values):
            acc[i] += v
    assert summed == books.tax


def test_a_wall_clock_outside_1970_to_9999_is_counted_on_the_nearest_day():
    assert rollups.day_hour(-5) == ("1970-01-01", 0)
    assert rollups.day_hour(2**53 - 1) == ("9999-12-31", 23)
    assert rollups.day_hour(DAY1 + 3_600_000 * 23 + 3_599_999) == ("2026-01-01", 23)


@pytest.mark.parametrize(
    "broken",
    [
        lambda p: {**p, "event_id": 7},
        lambda p: {**p, "currency": None},
        lambda p: {**p, "taxes": [{**p["taxes"][0], "rate_bp": "2000"}]},
        lambda p: {**p, "lines": [{**p["lines"][0], "name": 5}]},
        lambda p: {k: v for k, v in p.items() if k != "promotions"},
    ],
)
def test_a_sale_missing_what_the_rollups_read_is_refused_by_extract(broken):
    payload = broken(_sale("k"))
    with pytest.raises((KeyError, TypeError)):
        rollups.extract(ledger.extract(ledger.SALE, payload), payload, DAY1)


def test_a_signed_sale_without_what_the_rollups_read_is_refused_malformed(
    tmp_path, any_db, edge, region
):
    from appliance.formats.chain import GENESIS_HASH
    from sync_agent.reader import LogReader
    from systest.sync import sign_raw

    till = make_till(tmp_path, "t1", region)
    sell(till, 1, refund_every=0)
    enroll(any_db, till)
    reader = LogReader(till.log_path)
    try:
        lines = reader.lines(0, 100)
    finally:
        reader.close()
    sale = json.loads(lines[-1])
    assert sale["type"] == ledger.SALE
    del sale["payload"]["currency"]
    sale.pop("hash")
    import hashlib

    text = json.dumps(sale, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode()).hexdigest()
    cut = text.index(',"id":')
    bad = (text[:cut] + f',"hash":"{digest}"' + text[cut:]).encode()
    out = edge.handle(topic("t1"), sign_raw(till, [*lines[:-1], bad], 1, GENESIS_HASH))
    assert (out.status, out.reason) == ("rejected", "malformed")
    assert edge.store.one("SELECT COUNT(*) FROM events")[0] == 0
