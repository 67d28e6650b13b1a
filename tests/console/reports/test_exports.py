"""CSV and PDF exports, read back apart from the code that wrote them (the csv module,
pypdf's text extraction) and compared with the edge's tax_ledger and the tills' logs."""

from __future__ import annotations

import csv
import hashlib
import io
import re

import pytest
from pypdf import PdfReader

from console.reports.exports import export_ledger
from console.reports.period import Period, ReportInputError
from console.scope import OutOfScope, Scope
from systest.reports import edge_tax_ledger, tax_by_day_from_logs
from systest.tradeworld import AFTER, D1, D2, D3

TAX = Scope(user="tina", role="tax")
_PDF_ROW = re.compile(
    r"^(?P<profile>[A-Za-z0-9][A-Za-z0-9_-]*) (?P<rate>\d+\.\d\d) % "
    r"(?P<net>-?\d+\.\d\d) (?P<tax>-?\d+\.\d\d) (?P<gross>-?\d+\.\d\d)$"
)
_PDF_TOTAL = re.compile(r"^Total (-?\d+\.\d\d) (-?\d+\.\d\d) (-?\d+\.\d\d)$")


def cents(text: str) -> int:
    """``-12.05`` -> -1205, by the digits (no float)."""
    sign = -1 if text.startswith("-") else 1
    major, minor = text.lstrip("-").split(".")
    return sign * (int(major) * 100 + int(minor))


def read_csv(content: bytes) -> tuple[dict[tuple[str, int], list[int]], list[int]]:
    rows, total = {}, None
    for line in csv.DictReader(io.StringIO(content.decode("utf-8"), newline="")):
        figures = [int(line["net_minor"]), int(line["tax_minor"]), int(line["gross_minor"])]
        if line["record"] == "row":
            rows[(line["tax_profile"], int(line["rate_bp"]))] = figures
        elif line["record"] == "total":
            total = figures
    return rows, total


def read_pdf(content: bytes) -> tuple[dict[tuple[str, int], list[int]], list[int], str]:
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    rows, total = {}, None
    for line in text.splitlines():
        if m := _PDF_ROW.match(line.strip()):
            rate_bp = cents(m["rate"])
            rows[(m["profile"], rate_bp)] = [cents(m["net"]), cents(m["tax"]), cents(m["gross"])]
        elif m := _PDF_TOTAL.match(line.strip()):
            total = [cents(x) for x in m.groups()]
    return rows, total, text


def sums(rows: dict) -> list[int]:
    return [sum(v[i] for v in rows.values()) for i in range(3)]


@pytest.mark.parametrize("tenant", ["demo", "other"])
def test_csv_of_every_day_traded_equals_the_edge_tax_ledger(world, tenant):
    out = export_ledger(world.store, TAX, tenant, Period(D1, D3), "csv", audit=world.audit)
    rows, total = read_csv(out.content)
    expected = edge_tax_ledger(world.store, tenant)
    assert rows == expected
    assert total == sums(expected)
    assert out.media_type.startswith("text/csv") and out.filename.endswith(".csv")


@pytest.mark.parametrize("tenant", ["demo", "other"])
def test_pdf_of_every_day_traded_equals_the_edge_tax_ledger(world, tenant):
    out = export_ledger(
        world.store, TAX, tenant, Period(D1, D3), "pdf", audit=world.audit, now_ms=AFTER
    )
    assert out.content.startswith(b"%PDF-")
    rows, total, text = read_pdf(out.content)
    expected = edge_tax_ledger(world.store, tenant)
    assert rows == expected, text
    assert total == sums(expected)
    assert f"Tax ledger: {tenant}" in text and f"{D1}..{D3}" in text


def test_one_days_exports_equal_the_tills_own_logs(world):
    oracle = tax_by_day_from_logs(world.folders("t1", "t2", "t9"))
    expected = {(p, bp): v for (t, p, bp, d), v in oracle.items() if t == "demo" and d == D2}
    period = Period(D2, D2)
    csv_rows, _ = read_csv(
        export_ledger(world.store, TAX, "demo", period, "csv", audit=world.audit).content
    )
    pdf_rows, _, _ = read_pdf(
        export_ledger(world.store, TAX, "demo", period, "pdf", audit=world.audit).content
    )
    assert csv_rows == pdf_rows == expected


def test_every_export_is_audited_with_the_hash_of_what_left(world):
    period = Period(D1, D3, "fair-1")
    a = export_ledger(world.store, TAX, "demo", period, "csv", audit=world.audit)
    b = export_ledger(world.store, TAX, "demo", period, "pdf", audit=world.audit)
    assert [(u, action) for u, action, _ in world.audit_log] == [
        ("tina", "tax.export.csv"),
        ("tina", "tax.export.pdf"),
    ]
    for out, (_u, _a, detail) in zip((a, b), world.audit_log, strict=True):
        assert f"sha256={hashlib.sha256(out.content).hexdigest()}" in detail
        assert "tenant=demo" in detail and f"from={D1} to={D3} event=fair-1" in detail


def test_an_export_whose_audit_fails_is_not_handed_out(world):
    def broken(user: str, action: str, detail: str) -> None:
        raise OSError("audit log unavailable")

    with pytest.raises(OSError, match="audit log unavailable"):
        export_ledger(world.store, TAX, "demo", Period(D1, D3), "csv", audit=broken)


def test_an_export_outside_the_scope_is_refused_and_not_audited(world):
    merchant = Scope("mia", "merchant", tenant="demo")
    with pytest.raises(OutOfScope):
        export_ledger(world.store, merchant, "demo", Period(D1, D3), "csv", audit=world.audit)
    with pytest.raises(ReportInputError, match="csv or pdf"):
        export_ledger(world.store, TAX, "demo", Period(D1, D3), "xlsx", audit=world.audit)
    assert world.audit_log == []
