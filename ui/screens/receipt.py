"""The receipt screen: the durable sale, its printout, reprint and the reprint queue."""

from __future__ import annotations

from typing import Any

from kivy.clock import Clock
from kivy.properties import BooleanProperty, NumericProperty

from appliance.till import SaleResult
from ui.devices import PrintReport
from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class ReceiptScreen(KScreen):
    receipt_seq = NumericProperty(0)
    queued = NumericProperty(0)
    engravable = BooleanProperty(False)
    armed = BooleanProperty(True)

    def print_sale(self, result: SaleResult) -> None:
        """Print the durable sale's receipt (and open the drawer for cash) on the worker."""
        a = self.ctx

        def printed(report: PrintReport) -> None:
            self.show_print(report)
            a.announce("sale_printed", report=report)
            a.mark_dirty()

        cash = result.payload["payment"]["method"] == "cash"
        a.hub.print_receipt(result.event.seq, printed, drawer=cash)

    def show_sale(self, result: SaleResult) -> None:
        a = self.ctx
        p = result.payload
        # The second tap of a hurried double tap on Pay lands here, where "New sale" is:
        # the buttons wake up only after a moment.
        self.armed = False
        Clock.schedule_once(lambda _dt: setattr(self, "armed", True), 0.8)
        self.receipt_seq = result.event.seq
        self.sale = result
        pay = p["payment"]
        head = f"{self.t('Sale recorded')}: {self.t('receipt')} {p['receipt_no']}"
        if pay["method"] == "cash":
            head += f"\n{self.t('Change')} {a.money(pay.get('change_minor', 0))}"
        else:
            head += f"\n{self.t('Card (offline)')} {a.money(pay['due_minor'])}"
        self.ids.headline.text = head
        self.ids.status.text = self.t("Printing the receipt...")
        self.ids.preview.text = ""
        self.engravable = any(ln.get("personalisation") for ln in p["lines"])
        a.screen("engrave").load_sale(result)

    def show_print(self, report: PrintReport) -> None:
        colour = "1b7a2e" if report.ok else "b01010"
        self.ids.status.text = f"[color={colour}]{report.message}[/color]"
        if report.preview:
            self.ids.preview.text = report.preview
        self.set_queue(report.queue)

    def set_queue(self, queue: list[int]) -> None:
        self.queued = len(queue)
        self.ids.queue.text = (
            f"{self.t('Waiting to print')}: " + ", ".join(map(str, queue))
            if queue
            else self.t("No receipts waiting to print")
        )
        self.ctx.mark_dirty()

    def refresh(self) -> None:
        self.set_queue(self.ctx.session.till.reprint_queue())
        if not self.receipt_seq:
            self.ids.headline.text = self.t("No sale yet")

    def reprint(self) -> None:
        self.ids.status.text = self.t("Printing the receipt...")
        self.ctx.hub.print_receipt(self.receipt_seq, self.show_print, reprint=True)

    def drain(self) -> None:
        self.ids.status.text = self.t("Printing queued receipts...")

        def done(outcomes: list[Any], queue: list[int]) -> None:  # drivers' print outcomes
            words = [o.message if hasattr(o, "message") else str(o) for o in outcomes]
            self.ids.status.text = "\n".join(words) or self.t("Nothing to print")
            self.set_queue(queue)

        self.ctx.hub.drain_reprints(done)
