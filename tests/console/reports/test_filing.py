"""Filing a period: the snapshot never changes, late offline sales show as amendments,
overlaps are refused (also when two reporters file at once), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import threading

import pytest
from pypdf import PdfReader

from appliance import events, refund_scan
from appliance.errors import NotFound, RuleViolation
from appliance.formats import receipt as receipt_sig
from appliance.pricing import CartLine
from appliance.till import Till
from console.reports import store as db
from console.reports.exports import export_filing
from console.reports.filing import (
    file_period,
    filing_status,
    filings_touching,
    get_filing,
    list_filings,
)
from console.reports.period import Period, ReportInputError, day_of_ms
from console.scope import OutOfScope, Scope
from edge.store import Store
from systest.multitill import deliver, roster_of
from systest.reports import edge_tax_ledger, ms_at, tax_by_day_from_logs, trading_at
from systest.tradeworld import AFTER, D1, D2, D3

TAX = Scope(user="tina", role="tax")


def oracle(world, devices, profile, start, end) -> dict[int, list[int]]:
    """rate_bp -> [net, tax, gross] of demo's ``profile`` over the days, from the logs."""
    out: dict[int, list[int]] = {}
    for (t, p, bp, day), v in tax_by_day_from_logs(world.folders(*devices)).items():
        if t == "demo" and p == profile and start <= day <= end:
            row = out.setdefault(bp, [0, 0, 0])
            for i in range(3):
                row[i] += v[i]
    return {bp: v for bp, v in out.items()}


def by_bp(rows) -> dict[int, list[int]]:
    return {r.rate_bp: [r.net_minor, r.tax_minor, r.gross_minor] for r in rows}


def test_late_offline_sales_are_an_amendment_and_the_filing_never_changes(world):
    filed = file_period(
        world.store, TAX, "demo", "eu-market", Period(D1, D2), audit=world.audit, now_ms=AFTER
    )
    assert by_bp(filed.rows) == oracle(world, ("t1", "t2", "t9"), "eu-market", D1, D2)
    assert (filed.filed_by, filed.filed_ms) == ("tina", AFTER)
    untouched = filing_status(world.store, TAX, filed.id)
    assert not untouched.amended and untouched.amendment == () and untouched.late == ()

    # t3 was offline at fair-1: it sold on day 2 (and once more on day 3), and also
    # retried a sale t1 had already recorded (same idempotency key: counted once, never).
    with Till.open(world.tills["t1"]) as t1:
        key = next(e for e in t1.log.events() if e.type == events.SALE_COMPLETED).payload[
            "idempotency_key"
        ]
    with Till.open(world.tills["t3"]) as t3, trading_at(f"{D2}T18:00"):
        t3.sell([CartLine("MUG-01", 1)], "cash", idempotency_key=key)
    world.push("t3")

    status = filing_status(world.store, TAX, filed.id)
    assert status.filing.rows == filed.rows  # as filed, to the cent, still
    assert get_filing(world.store, TAX, filed.id).rows == filed.rows
    now = oracle(world, ("t1", "t2", "t3", "t9"), "eu-market", D1, D2)
    assert by_bp(status.current.rows) == now != by_bp(filed.rows)
    amendment = by_bp(status.amendment)
    assert amendment == {
        bp: [now.get(bp, [0] * 3)[i] - by_bp(filed.rows).get(bp, [0] * 3)[i] for i in range(3)]
        for bp in set(now) | set(by_bp(filed.rows))
        if now.get(bp) != by_bp(filed.rows).get(bp)
    }
    # the late sales are listed, and they are exactly the amendment
    with Till.open(world.tills["t3"]) as t3:
        logged = [
            e
            for e in t3.log.events()
            if e.type in (events.SALE_COMPLETED, events.REFUND_ISSUED)
            and day_of_ms(e.wall_ms) == D2
            and e.payload.get("idempotency_key") != key
        ]
    assert [(e.device_id, e.seq, e.receipt_no) for e in status.late] == [
        ("t3", e.seq, e.payload["receipt_no"]) for e in logged
    ]
    assert [e.kind for e in status.late] == ["sale", "sale", "refund"]
    listed: dict[int, list[int]] = {}
    for entry in status.late:
        for r in entry.rows:
            row = listed.setdefault(r.rate_bp, [0, 0, 0])
            for i, v in enumerate((r.net_minor, r.tax_minor, r.gross_minor)):
                row[i] += v
    assert {bp: v for bp, v in listed.items() if any(v)} == amendment
    # the live ledger still equals the edge's, and the ledger page shows the filing
    from console.reports.tax import tax_ledger

    live = tax_ledger(world.store, TAX, "demo", Period(D1, D3), "eu-market")
    assert {
        bp: v for (p, bp), v in edge_tax_ledger(world.store, "demo").items() if p == "eu-market"
    } == by_bp(live.rows)
    (shown,) = filings_touching(world.store, TAX, "demo", Period(D2, D3))
    assert shown.filing.id == filed.id and shown.amended
    assert shown.to_json()["amendment"]["total_gross_minor"] == sum(
        v[2] for v in amendment.values()
    )


def test_a_late_refund_at_another_till_is_listed_under_the_refunded_sales_profile(world, region):
    """t3 (offline) refunds a receipt t1 sold on day 1 under eu-market; the refund names
    t1's receipt, not a sale id, and the late entries must find its profile the way the
    edge's ledger does, so that they still add up to the amendment."""
    filed = file_period(
        world.store, TAX, "demo", "eu-market", Period(D1, D2), audit=world.audit, now_ms=AFTER
    )
    deliver(world.tills["t3"], region, roster_of([world.tills["t1"], world.tills["t3"]]), 9)
    with Till.open(world.tills["t1"]) as t1:
        sold = [e for e in t1.log.events() if e.type == events.SALE_COMPLETED]
        tee = sold[1]  # day 1's tee, by card (the first sale was refunded in full)
        assert tee.payload["payment"]["method"] == "card" and day_of_ms(tee.wall_ms) == D1
        qr = receipt_sig.receipt_qr_payload(t1, tee)
    with Till.open(world.tills["t3"]) as t3, trading_at(f"{D2}T18:30"):
        refund = refund_scan.refund_by_receipt(t3, qr, None).event
    assert refund.payload["sale_id"] == "" and refund.payload["sale_device"] == "t1"
    world.push("t3")

    status = filing_status(world.store, TAX, filed.id)
    (entry,) = [e for e in status.late if e.seq == refund.seq]
    assert entry.kind == "refund" and entry.receipt_no == refund.payload["receipt_no"]
    assert sum(r.gross_minor for r in entry.rows) == -refund.payload["gross_minor"] != 0
    listed: dict[int, list[int]] = {}
    for late in status.late:
        for r in late.rows:
            row = listed.setdefault(r.rate_bp, [0, 0, 0])
            for i, v in enumerate((r.net_minor, r.tax_minor, r.gross_minor)):
                row[i] += v
    assert {bp: v for bp, v in listed.items() if any(v)} == by_bp(status.amendment)


def test_overlapping_filings_are_refused_with_one_line(world):
    file_period(
        world.store, TAX, "demo", "eu-market", Period(D1, D2), audit=world.audit, now_ms=AFTER
    )
    with pytest.raises(RuleViolation) as err:
        file_period(
            world.store, TAX, "demo", "eu-market", Period(D2, D3), audit=world.audit, now_ms=AFTER
        )
    message = str(err.value)
    assert "\n" not in message
    assert f"demo's eu-market is already filed for {D1}..{D2}" in message
    assert "file a period that does not overlap it" in message
    # not an overlap: the next day, another profile, another tenant
    for tenant, profile, period in (
        ("demo", "eu-market", Period(D3, D3)),
        ("demo", "us-fair", Period(D1, D3)),
        ("other", "eu-market", Period(D1, D2)),
    ):
        file_period(world.store, TAX, tenant, profile, period, audit=world.audit, now_ms=AFTER)
    assert len(list_filings(world.store, TAX)) == 4
    assert [f.tax_profile for f in list_filings(world.store, TAX, "other")] == ["eu-market"]
    assert [a for _u, a, _d in world.audit_log] == ["tax.file"] * 4


def test_a_period_not_over_or_of_one_event_or_outside_the_role_cannot_be_filed(world):
    with pytest.raises(RuleViolation, match="is not over yet"):
        file_period(
            world.store, TAX, "demo", "eu-market", Period(D1, D3), audit=world.audit,
            now_ms=ms_at(f"{D3}T23:59"),
        )  # fmt: skip
    with pytest.raises(ReportInputError, match="not one event"):
        file_period(
            world.store, TAX, "demo", "eu-market", Period(D1, D2, "fair-1"), audit=world.audit,
            now_ms=AFTER,
        )  # fmt: skip
    with pytest.raises(OutOfScope):
        file_period(
            world.store, Scope("mia", "merchant", tenant="demo"), "demo", "eu-market",
            Period(D1, D2), audit=world.audit, now_ms=AFTER,
        )  # fmt: skip
    with pytest.raises(ReportInputError, match="tax profile must be"):
        file_period(
            world.store, TAX, "demo", "eu market", Period(D1, D2), audit=world.audit, now_ms=AFTER
        )
    assert list_filings(world.store, TAX) == [] and world.audit_log == []


def test_the_database_refuses_to_change_a_filing(world):
    filed = file_period(
        world.store, TAX, "demo", "eu-market", Period(D1, D2), audit=world.audit, now_ms=AFTER
    )
    for sql in (
        "UPDATE console_tax_filings SET snapshot = '[]' WHERE id = ?",
        "DELETE FROM console_tax_filings WHERE id = ?",
    ):
        with pytest.raises(Exception, match=db.LOCKED):
            world.store.execute(sql, (filed.id,))
    assert get_filing(world.store, TAX, filed.id).rows == filed.rows
    with pytest.raises(NotFound, match=f"there is no filing {filed.id + 1}"):
        get_filing(world.store, TAX, filed.id + 1)


def test_two_reporters_filing_overlapping_periods_at_once_cannot_both_win(world):
    start = threading.Barrier(2)
    results: list[object] = []

    def file(period: Period) -> None:
        store = Store.open(world.url)
        try:
            start.wait()
            results.append(
                file_period(
                    store, TAX, "demo", "eu-market", period, audit=world.audit, now_ms=AFTER
                )
            )
        except RuleViolation as exc:
            results.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=file, args=(p,)) for p in (Period(D1, D2), Period(D2, D3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(r).__name__ for r in results) == ["Filing", "RuleViolation"]
    assert len(list_filings(world.store, TAX, "demo")) == 1


def test_a_filings_exports_show_what_was_filed_and_what_came_late(world):
    filed = file_period(
        world.store, TAX, "demo", "eu-market", Period(D1, D2), audit=world.audit, now_ms=AFTER
    )
    world.push("t3")
    out = export_filing(world.store, TAX, filed.id, "csv", audit=world.audit)
    lines = list(csv.DictReader(io.StringIO(out.content.decode("utf-8"), newline="")))

    def figures(record: str) -> dict[int, list[int]]:
        total: dict[int, list[int]] = {}
        for line in lines:
            if line["record"] == record:
                row = total.setdefault(int(line["rate_bp"]), [0, 0, 0])
                for i, k in enumerate(("net_minor", "tax_minor", "gross_minor")):
                    row[i] += int(line[k])
        return total

    assert figures("filed") == oracle(world, ("t1", "t2", "t9"), "eu-market", D1, D2)
    assert figures("current") == oracle(world, ("t1", "t2", "t3", "t9"), "eu-market", D1, D2)
    assert figures("late") == figures("amendment") != {}
    assert {line["device_id"] for line in lines if line["record"] == "late"} == {"t3"}

    pdf = export_filing(world.store, TAX, filed.id, "pdf", audit=world.audit, now_ms=AFTER)
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "AMENDED" in text and f"Tax filing {filed.id}: demo" in text
    for entry in filing_status(world.store, TAX, filed.id).late:
        assert f"{entry.kind} receipt {entry.receipt_no} on {D2}, till t3 seq {entry.seq}" in text
    assert [a for _u, a, _d in world.audit_log] == [
        "tax.file",
        "tax.filing.export.csv",
        "tax.filing.export.pdf",
    ]


def test_a_filers_name_cannot_become_a_spreadsheet_formula(world):
    sneaky = Scope(user='=HYPERLINK("http://x","y")', role="tax")
    filed = file_period(
        world.store, sneaky, "demo", "eu-market", Period(D1, D2), audit=world.audit, now_ms=AFTER
    )
    out = export_filing(world.store, TAX, filed.id, "csv", audit=world.audit)
    names = {line["filed_by"] for line in csv.DictReader(io.StringIO(out.content.decode()))}
    assert names == {"'" + sneaky.user}


@pytest.mark.parametrize("bad", [0, -1, 2**63, True, "1"])
def test_a_filing_id_out_of_range_is_one_clear_message(world, bad):
    with pytest.raises(ReportInputError, match="a filing id is a positive whole number"):
        get_filing(world.store, TAX, bad)
