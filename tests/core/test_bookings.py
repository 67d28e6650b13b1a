"""Bookings at the till: the region's signed list for this stall, found by its code, number
or name, handed over once; a paid one is never charged, one paid at pickup is a sale, a
personalised one queues its engraving text. Customers' names stay out of the log."""

from __future__ import annotations

import pytest

from appliance import bookings, projections
from appliance import events as ev
from appliance.errors import NotFound, RuleViolation, TillError
from appliance.formats import region as fmt
from appliance.services.engraving import EngravingJob, engraving_queue
from appliance.till import Till
from systest.multitill import deliver, make_tills, roster_of

BOOKED = [
    {
        "id": "bk-paid",
        "number": 7,
        "name": "Ada Lovelace",
        "payment": "paid_online",
        "items": [
            {"sku": "BOARD-ENG", "qty": 1, "engraving": "Ada & Max"},
            {"sku": "HONEY", "qty": 2},
        ],
        "stall": "s1",
    },
    {
        "id": "bk-pickup",
        "number": 8,
        "name": "Charles Adams",
        "payment": "pay_at_pickup",
        "items": [{"sku": "KEYRING-ENG", "qty": 2, "engraving": "CB"}, {"sku": "MUG-01", "qty": 1}],
        "stall": "",
    },
    {
        "id": "bk-other",
        "number": 9,
        "name": "Ada Byron",
        "payment": "paid_online",
        "items": [{"sku": "MUG-01", "qty": 1}],
        "stall": "s2",
    },
]


@pytest.fixture
def folders(tmp_path, region):
    a, b = make_tills(tmp_path, region, ("a1", "b1"))
    roster = roster_of([a, b])
    listed = fmt.Bookings.from_json({"bookings": BOOKED})
    for folder in (a, b):
        deliver(folder, region, roster, 1)
        deliver(folder, region, listed, 5)
    return a, b


def test_the_list_is_this_stalls_and_the_log_keeps_no_names(folders, cli):
    a, _b = folders
    out = cli("booking", "list", "--data-dir", str(a.root), "--json")
    assert out.code == 0
    assert [b["number"] for b in out.json()["bookings"]] == [7, 8]  # 9 is stall s2's
    with Till.open(a) as till:
        applied = [e.payload for e in till.log.events() if e.type == ev.BOOKINGS_APPLIED]
        assert applied[0]["count"] == 3 and len(applied[0]["sha256"]) == 64
        text = till.log.path.read_bytes()
        assert b"Lovelace" not in text and b"Adams" not in text
        path = a.root / "region" / "bookings-5.tbru"
        assert path.stat().st_mode & 0o077 == 0


def test_a_paid_booking_is_handed_over_with_nothing_due_and_queues_its_engraving(folders, region):
    a, _b = folders
    qr = fmt.booking_qr(region.key, "demo", "bk-paid", 7)
    with Till.open(a) as till:
        before = till.stock()
        booking, via = bookings.find(till, qr=qr)
        done = bookings.redeem(till, booking, via)
        assert done["sale"] is None
        p = done["redemption"].payload
        assert (p["booking_id"], p["payment"], p["due_minor"], p["via"]) == (
            "bk-paid",
            "paid_online",
            0,
            "qr",
        )
        assert p["sale_id"] == "" and p["receipt_no"] == 0 and p["bookings_version"] == 5
        assert not [e for e in till.log.events() if e.type == ev.SALE_COMPLETED]
        after = till.stock()
        assert before["BOARD-ENG"] - after["BOARD-ENG"] == 1
        assert before["HONEY"] - after["HONEY"] == 2
        queue = engraving_queue(p)
        assert [ln["personalisation"]["text"] for ln in queue] == ["Ada & Max"]
        job = EngravingJob(
            till, p, queue[0]["line"], text="Ada & Max", gcode_lines=10, estimated_ms=1
        )
        started = job.accepted().payload
        assert started["booking_id"] == "bk-paid" and started["text"] == "Ada & Max"
        z = till.close_shift().payload["z_report"]
        assert z["bookings"] == [{"payment": "paid_online", "count": 1, "due_minor": 0}]
        assert z["sales_count"] == 0 and z["takings_minor"] == 0
        assert projections.rebuild(till.log.conn) == projections.snapshot(till.log.conn)


def test_a_pay_at_pickup_booking_is_a_sale_with_personalised_lines(folders, cli):
    a, _b = folders
    refused = cli("booking", "redeem", "--data-dir", str(a.root), "--number", "8")
    assert refused.code == 1 and "--pay cash|card" in refused.err
    out = cli(
        "booking", "redeem", "--data-dir", str(a.root), "--number", "8", "--pay", "cash", "--json"
    )
    assert out.code == 0, out.err
    info = out.json()
    sale = info["sale"]
    assert (
        info["payment"] == "pay_at_pickup"
        and info["due_minor"] == sale["due_minor"] == 2 * 900 + 1200
    )
    assert info["receipt_no"] == sale["receipt_no"] and info["sale_id"] == sale["sale_id"]
    texts = [ln["personalisation"]["text"] for ln in info["lines"] if ln.get("personalisation")]
    assert texts == ["CB", "CB"]  # one engraving job per piece
    with Till.open(a) as till:
        logged = till.find_sale(sale["receipt_no"]).payload
        assert logged["booking_id"] == "bk-pickup"
        assert [ln["refundable"] for ln in logged["lines"]] == [False, False, True]
        types = [e.type for e in till.log.events()][-2:]
        assert types == [ev.SALE_COMPLETED, ev.BOOKING_REDEEMED]


def test_a_booking_is_handed_over_once_per_till(folders, cli):
    a, b = folders
    assert cli("booking", "redeem", "--data-dir", str(a.root), "--name", "lovelace").code == 0
    again = cli("booking", "redeem", "--data-dir", str(a.root), "--number", "7")
    assert again.code == 1 and "already handed over at this till" in again.err
    # another till cannot know while offline: it hands it over too (the region flags it)
    assert cli("booking", "redeem", "--data-dir", str(b.root), "--number", "7").code == 0
    listed = cli("booking", "list", "--data-dir", str(a.root), "--json").json()["bookings"]
    assert [x["redeemed"] for x in listed] == [True, False]


def test_finding_a_booking_says_what_to_do_when_it_is_not_one(folders, region):
    a, _b = folders
    with Till.open(a) as till:
        with pytest.raises(RuleViolation, match="2 bookings match 'ADA': 7 .*, 8 "):
            bookings.find(till, name="ADA")  # 9 (Ada Byron) is s2's: not offered here
        with pytest.raises(NotFound):
            bookings.find(till, name="byron")
        with pytest.raises(NotFound):
            bookings.find(till, number=9)  # another stall's
        with pytest.raises(NotFound):
            bookings.find(till, name="nobody")
        with pytest.raises(RuleViolation, match="region's"):
            bookings.find(till, qr=fmt.booking_qr(region.key, "demo", "bk-paid", 7)[:-3] + "AAA")
        with pytest.raises(NotFound):
            bookings.find(till, qr=fmt.booking_qr(region.key, "demo", "bk-new", 42))
        with pytest.raises(RuleViolation, match="tenant acme"):
            bookings.find(till, qr=fmt.booking_qr(region.key, "acme", "bk-paid", 7))
        booking, _via = bookings.find(till, number=7)
        with pytest.raises(RuleViolation, match="never charged again"):
            bookings.redeem(till, booking, "number", method="card")


def test_a_tampered_bookings_file_is_not_trusted(folders):
    a, _b = folders
    path = a.root / "region" / "bookings-5.tbru"
    data = bytearray(path.read_bytes())
    data[60] ^= 1
    path.write_bytes(bytes(data))
    with Till.open(a) as till, pytest.raises(TillError, match="not the bookings list"):
        bookings.listing(till)


def test_no_bookings_yet_says_how_to_get_them(tmp_path, region, cli):
    (a,) = make_tills(tmp_path, region, ("a1",))
    out = cli("booking", "list", "--data-dir", str(a.root))
    assert out.code == 1 and "tillbox sync --once" in out.err


def test_a_newer_list_replaces_the_file_and_an_engraving_on_a_plain_item_is_refused(
    folders, region
):
    a, _b = folders
    newer = fmt.Bookings.from_json(
        {
            "bookings": [
                {
                    "id": "bk-x",
                    "number": 1,
                    "name": "Grace",
                    "payment": "paid_online",
                    "items": [{"sku": "MUG-01", "qty": 1, "engraving": "G"}],
                    "stall": "",
                }
            ]
        }
    )
    deliver(a, region, newer, 6)
    assert sorted(p.name for p in (a.root / "region").iterdir()) == ["bookings-6.tbru"]
    with Till.open(a) as till:
        booking, via = bookings.find(till, number=1)
        with pytest.raises(RuleViolation, match="does not engrave"):
            bookings.redeem(till, booking, via)
