"""The PDF pages of the tax exports (fpdf2), as pure functions: figures in, bytes out.

Core Helvetica only (no font file to find on a region server); text outside Latin-1
is shown as ``?`` (identifiers and amounts are ASCII anyway; a user's name might not
be). Amounts are printed in major units with two decimals, as the product renders
money everywhere (appliance.money.format_minor), so a reader can check them to the
cent against the CSV's minor units.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from fpdf import FPDF

from console.reports.tax import TaxLedger, TaxRow, rate_label

_COLUMNS = (("Tax profile", 52), ("Rate", 26), ("Net", 36), ("Tax", 36), ("Gross", 36))


def amount(minor: int) -> str:
    """1234 -> ``12.34``; -5 -> ``-0.05`` (two decimals, no currency, no grouping)."""
    sign = "-" if minor < 0 else ""
    major, cents = divmod(abs(minor), 100)
    return f"{sign}{major}.{cents:02d}"


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def stamp(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


class _Doc:
    def __init__(self, title: str, generated_by: str, generated_ms: int) -> None:
        pdf = FPDF(format="A4")
        pdf.set_creation_date(dt.datetime.fromtimestamp(generated_ms / 1000, dt.UTC))
        pdf.set_title(_latin1(title))
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 15)
        pdf.cell(0, 9, _latin1(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        self.pdf = pdf
        self.line(f"Generated {stamp(generated_ms)} by {generated_by}")

    def line(self, text: str, bold: bool = False, size: int = 9) -> None:
        self.pdf.set_font("Helvetica", "B" if bold else "", size)
        self.pdf.multi_cell(0, 5, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    def heading(self, text: str) -> None:
        self.pdf.ln(3)
        self.line(text, bold=True, size=11)

    def table(
        self,
        rows: Sequence[TaxRow],
        total_label: str | None = "Total",
        empty: str = "(no sales or refunds)",
    ) -> None:
        pdf = self.pdf
        pdf.set_font("Helvetica", "B", 9)
        for name, width in _COLUMNS:
            pdf.cell(width, 6, name, border="B", align="L" if width == 52 else "R")
        pdf.ln()
        pdf.set_font("Helvetica", "", 9)
        for r in rows:
            self._row(
                r.tax_profile,
                rate_label(r.rate_bp),
                r.net_minor,
                r.tax_minor,
                r.gross_minor,
            )
        if not rows:
            pdf.cell(0, 6, empty, new_x="LMARGIN", new_y="NEXT")
        if total_label is not None:
            pdf.set_font("Helvetica", "B", 9)
            self._row(
                total_label,
                "",
                sum(r.net_minor for r in rows),
                sum(r.tax_minor for r in rows),
                sum(r.gross_minor for r in rows),
                border="T",
            )
            pdf.set_font("Helvetica", "", 9)

    def _row(self, label: str, rate: str, net: int, tax: int, gross: int, border: str = "") -> None:
        pdf = self.pdf
        cells = (label, rate, amount(net), amount(tax), amount(gross))
        for (_name, width), text in zip(_COLUMNS, cells, strict=True):
            pdf.cell(width, 6, _latin1(text), border=border, align="L" if width == 52 else "R")
        pdf.ln()

    def bytes(self) -> bytes:
        return bytes(self.pdf.output())


NOTE = (
    "Amounts in the tax profile's currency, two decimals. Refunds are negative, under the "
    "tax profile of the sale they refund, on the day they were refunded. Days are UTC."
)


def ledger_pdf(
    ledger: TaxLedger,
    generated_by: str,
    generated_ms: int,
    filings: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The ledger as one document. ``filings``: (heading, text) of each filing the period
    meets, printed under the table so an amended filed period is never shown bare."""
    doc = _Doc(f"Tax ledger: {ledger.tenant}", generated_by, generated_ms)
    doc.line(f"Period: {ledger.period.label()}")
    doc.heading("Ledger")
    doc.table(ledger.rows)
    for heading, text in filings:
        doc.heading(heading)
        doc.line(text)
    doc.pdf.ln(3)
    doc.line(NOTE)
    return doc.bytes()


def filing_pdf(
    title: str,
    summary: Sequence[str],
    filed: Sequence[TaxRow],
    current: Sequence[TaxRow],
    amendment: Sequence[TaxRow],
    late: Sequence[str],
    generated_by: str,
    generated_ms: int,
) -> bytes:
    """A filing: as filed, the figures now, the amendment and the late sales listed."""
    doc = _Doc(title, generated_by, generated_ms)
    for text in summary:
        doc.line(text)
    doc.heading("As filed")
    doc.table(filed)
    doc.heading("Amendment (now minus as filed)")
    doc.table(amendment, total_label="Amendment total", empty="(no change since filing)")
    doc.heading("Late sales and refunds (stored after filing)")
    for text in late or ["(none)"]:
        doc.line(text)
    doc.heading("Figures now")
    doc.table(current)
    doc.pdf.ln(3)
    doc.line(NOTE)
    return doc.bytes()
