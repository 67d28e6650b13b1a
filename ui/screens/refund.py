"""The refund screen: by receipt number or the receipt's QR code, choose lines.

A receipt of another till of the stall (its QR code: the roster names that till) opens
too: the screen says which till sold it and what is still refundable here, per tax
rate, and the cashier gives back items from this till's catalog or all that is left.
"""

from __future__ import annotations

from typing import Any

from kivy.clock import Clock
from kivy.factory import Factory
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from appliance.errors import TillError
from ui.pads import keyed
from ui.scanner import KeyboardScanner
from ui.screens.base import KScreen, load_kv
from ui.session import ForeignReceipt

load_kv(__file__)


class RefundRow(BoxLayout):
    label = StringProperty("")
    line = NumericProperty(0)
    sold = NumericProperty(0)
    chosen = NumericProperty(0)
    sku = StringProperty("")
    refundable = BooleanProperty(True)
    screen = ObjectProperty(None)

    def change(self, delta: int) -> None:
        # the display stops at what was sold; the core checks what is left to refund
        self.chosen = max(0, min(self.sold, self.chosen + delta))
        self.screen.update_selection()


class RefundScreen(KScreen):
    number = StringProperty("")
    selected = BooleanProperty(False)
    error = BooleanProperty(False)
    scanning = BooleanProperty(False)
    foreign = BooleanProperty(False)  # the receipt is another till's
    SCAN_TIMEOUT_S = 15.0  # a camera that never answers must not leave the button dead

    def on_kv_post(self, *_: Any) -> None:
        self.ids.keypad.pressed = self.key
        self.receipt_no = 0
        self.other: ForeignReceipt | None = None
        self._scanner = KeyboardScanner(self.find)

    # A handheld QR scanner in keyboard mode "types" the receipt's QR text and Enter.
    def on_enter(self, *_: Any) -> None:
        self._scanner.attach()

    def on_leave(self, *_: Any) -> None:
        self._scanner.detach()

    def key(self, k: str) -> None:
        self.number = keyed(self.number, k, 9)
        self.ctx.mark_dirty()

    def say(self, text: str, error: bool = False) -> None:
        self.error = error
        self.ids.message.text = text
        self.ctx.mark_dirty()

    def find(self, ref: str | None = None) -> None:
        a = self.ctx
        self.ids.lines.clear_widgets()
        self.selected = False
        self.foreign, self.other = False, None
        self.ids.left.text = ""
        try:
            found = a.session.find_refund(ref if ref is not None else self.number)
        except TillError as exc:
            self.ids.sale.text = ""
            self.say(str(exc), True)
            return
        if isinstance(found, ForeignReceipt):
            self.show_foreign(found)
        else:
            self.show_own(found)
        self.say(self.t("Choose what to refund with +."))

    def show_own(self, payload: dict[str, Any]) -> None:
        a = self.ctx
        self.receipt_no = payload["receipt_no"]
        self.number = str(self.receipt_no)
        self.ids.sale.text = (
            f"{self.t('Receipt')} {payload['receipt_no']} · "
            f"{payload['payment']['method']} · "
            f"{a.money(payload['total_minor'])}"
        )
        for ln in payload["lines"]:
            label = f"{ln['qty']} x {ln['name']}"
            if ln.get("personalisation"):
                label += " (" + self.t("personalised") + ")"
            self.ids.lines.add_widget(
                Factory.RefundRow(
                    label=label,
                    line=ln["line"],
                    sold=ln["qty"],
                    sku=ln["sku"],
                    refundable=ln.get("refundable", True),
                    screen=self,
                )
            )

    def show_foreign(self, receipt: ForeignReceipt) -> None:
        """Another till's receipt lists no items: offer this till's items at its rates."""
        a = self.ctx
        sale = receipt.sale
        self.foreign, self.other = True, receipt
        self.receipt_no, self.number = 0, ""  # receipt numbers here are this till's own
        self.ids.sale.text = (
            f"{self.t('Sold at till')} {sale.device_id}, {self.t('receipt')} "
            f"{sale.receipt_no} · {sale.method} · {a.money(receipt.total_minor)}"
        )
        self.show_left(receipt)
        left = {bp: rest for bp, _gross, rest in receipt.rates()}
        for index, (item, gross, bp) in enumerate(a.session.refund_prices(receipt), start=1):
            label = f"{item.name} · {a.money(gross)}"
            if item.engravable:
                label += " (" + self.t("personalised") + ")"
            self.ids.lines.add_widget(
                Factory.RefundRow(
                    label=label,
                    line=index,
                    sold=left[bp] // gross if gross > 0 else 0,  # the display's stop only
                    sku=item.sku,
                    refundable=not item.engravable,
                    screen=self,
                )
            )

    def show_left(self, receipt: ForeignReceipt) -> None:
        a = self.ctx
        parts = [
            f"{a.money(rest)} {self.t('at')} {bp / 100:g} % ({self.t('of')} {a.money(gross)})"
            for bp, gross, rest in receipt.rates()
        ]
        self.ids.left.text = f"{self.t('Still refundable here')}: " + ", ".join(parts)

    def scan(self) -> None:
        """Capture and decode on a worker (never here); the answer comes back by the clock."""
        if self.scanning:
            return
        self.scanning = True
        self._scan_id = getattr(self, "_scan_id", 0) + 1
        token = self._scan_id
        self.say(self.t("Hold the receipt's QR code in front of the camera..."))
        Clock.schedule_once(lambda _dt: self._scan_timeout(token), self.SCAN_TIMEOUT_S)
        self.ctx.hub.scan_receipt(
            lambda text: self._scanned_qr(token, text),
            lambda msg: self._scan_failed(token, msg),
        )

    def _scan_over(self, token: int) -> bool:
        """True if this answer belongs to the scan in progress (a late one is dropped)."""
        if not self.scanning or token != self._scan_id:
            return False
        self.scanning = False
        return True

    def _scanned_qr(self, token: int, text: str) -> None:
        if self._scan_over(token):
            self.find(text)

    def _scan_failed(self, token: int, message: str) -> None:
        if self._scan_over(token):
            self.ids.lines.clear_widgets()
            self.ids.sale.text = ""
            self.selected = False
            self.say(message, True)

    def _scan_timeout(self, token: int) -> None:
        if self._scan_over(token):
            self.say(
                self.t("The camera did not answer; scan again or type the receipt number."), True
            )

    def rows(self) -> list[Any]:
        return list(reversed(self.ids.lines.children))

    def update_selection(self) -> None:
        self.selected = any(r.chosen for r in self.rows())
        self.ctx.mark_dirty()

    def refund(self, rest: bool = False) -> None:
        """Refund the chosen lines; ``rest``: all that is left of another till's receipt."""
        a = self.ctx
        items: dict[str, int] = {}
        for row in self.rows():
            if row.chosen:
                items[row.sku] = items.get(row.sku, 0) + row.chosen
        try:
            if self.other is not None:
                chosen = None if rest else sorted(items.items())
                result = a.session.refund_foreign(self.other, chosen)
            else:
                result = a.session.refund(self.receipt_no, sorted(items.items()))
        except TillError as exc:
            self.say(f"{self.t('Refund refused')}: {exc}", True)
            return
        p = result.event.payload
        message = (
            f"{self.t('Refund recorded')}: {self.t('receipt')} {p['receipt_no']}, "
            f"{self.t('give back')} {a.money(p['total_minor'])} ({p['payment']['method']})"
        )
        for row in self.rows():
            row.chosen = 0
        self.selected = False
        if self.other is not None:
            message += (
                f" · {self.t('sold at till')} {p['sale_device']}, "
                f"{self.t('receipt')} {p['sale_receipt_no']}"
            )
            try:  # what is left here now (the core's count, after this refund)
                again = a.session.find_refund(self.other.payload)
            except TillError:
                again = None
            if isinstance(again, ForeignReceipt):
                self.other = again
                self.show_left(again)
        self.say(message)
        a.announce("refund", result=result)
        a.hub.print_receipt(result.event.seq, lambda r: None)
