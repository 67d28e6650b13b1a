"""The refund screen: by receipt number or the receipt's QR code, choose lines."""

from __future__ import annotations

from typing import Any

from kivy.clock import Clock
from kivy.core.window import Window
from kivy.factory import Factory
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from appliance.errors import TillError
from ui.screens.base import KScreen, load_kv

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
    SCAN_TIMEOUT_S = 15.0  # a camera that never answers must not leave the button dead

    def on_kv_post(self, *_: Any) -> None:
        self.ids.keypad.pressed = self.key
        self.receipt_no = 0
        self._scanned = ""

    # A handheld QR scanner in keyboard mode "types" the receipt's QR text and Enter.
    def on_enter(self, *_: Any) -> None:
        self._scanned = ""
        Window.bind(on_textinput=self._scan_text, on_key_down=self._scan_key)

    def on_leave(self, *_: Any) -> None:
        Window.unbind(on_textinput=self._scan_text, on_key_down=self._scan_key)

    def _scan_text(self, _window: Any, text: str) -> None:
        if len(self._scanned) < 400:
            self._scanned += text

    def _scan_key(self, _window: Any, key: int, *_: Any) -> bool:
        if key in (13, 271) and self._scanned:  # Enter / keypad Enter ends a scan
            scanned, self._scanned = self._scanned, ""
            self.find(scanned)
            return True
        return False

    def key(self, k: str) -> None:
        if k == "C":
            self.number = ""
        elif k == "<":
            self.number = self.number[:-1]
        elif len(self.number) < 9:
            self.number += k
        self.ctx.mark_dirty()

    def say(self, text: str, error: bool = False) -> None:
        self.error = error
        self.ids.message.text = text
        self.ctx.mark_dirty()

    def find(self, ref: str | None = None) -> None:
        a = self.ctx
        self.ids.lines.clear_widgets()
        self.selected = False
        try:
            payload = a.session.find_sale(ref if ref is not None else self.number)
        except TillError as exc:
            self.ids.sale.text = ""
            self.say(str(exc), True)
            return
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
        self.say(self.t("Choose what to refund with +."))

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

    def refund(self) -> None:
        a = self.ctx
        items: dict[str, int] = {}
        for row in self.rows():
            if row.chosen:
                items[row.sku] = items.get(row.sku, 0) + row.chosen
        try:
            result = a.session.refund(self.receipt_no, sorted(items.items()))
        except TillError as exc:
            self.say(f"{self.t('Refund refused')}: {exc}", True)
            return
        p = result.event.payload
        self.say(
            f"{self.t('Refund recorded')}: {self.t('receipt')} {p['receipt_no']}, "
            f"{self.t('give back')} {a.money(p['total_minor'])} ({p['payment']['method']})"
        )
        for row in self.rows():
            row.chosen = 0
        self.selected = False
        a.announce("refund", result=result)
        a.hub.print_receipt(result.event.seq, lambda r: None)
