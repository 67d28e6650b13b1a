"""The bookings screen: the stall's bookings, found by code, number or name, handed over.

The list, the finding and the handing over are the core's (``ui.bookingdesk`` over
``appliance.bookings``). A paid booking is handed over here with nothing to charge; one
paid at pickup goes to the pay screen and is handed over with its sale; a personalised
item's engraving text is queued for the engrave screen. A second hand-over on this till
is refused by the core, in its words.
"""

from __future__ import annotations

from typing import Any

from kivy.clock import Clock
from kivy.factory import Factory
from kivy.properties import BooleanProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from appliance.errors import TillError
from ui.pads import keyed
from ui.scanner import KeyboardScanner
from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class BookingLine(BoxLayout):
    label = StringProperty("")
    number = StringProperty("")
    redeemed = BooleanProperty(False)
    screen = ObjectProperty(None)


class BookingsScreen(KScreen):
    number = StringProperty("")  # the booking number typed on the keypad
    searched = StringProperty("")  # the name searched for (narrows the list)
    chosen = BooleanProperty(False)
    engrave_ready = BooleanProperty(False)
    error = BooleanProperty(False)
    scanning = BooleanProperty(False)
    SCAN_TIMEOUT_S = 15.0

    def on_kv_post(self, *_: Any) -> None:
        self.ids.keypad.pressed = self.key
        self.booking: Any = None  # appliance.formats.region.Booking
        self.via = ""
        self.handed: dict[str, Any] = {}  # the last paid hand-over's payload (to engrave)
        # a handheld scanner types the customer's code and Enter, like the camera's text
        self._scanner = KeyboardScanner(
            lambda text: self._found(lambda: self.ctx.session.find_booking(qr=text))
        )

    def on_enter(self, *_: Any) -> None:
        self._scanner.attach()

    def on_leave(self, *_: Any) -> None:
        self._scanner.detach()

    def refresh(self) -> None:
        self.show_rows()

    def say(self, text: str, error: bool = False) -> None:
        self.error = error
        self.ids.message.text = text
        self.ctx.mark_dirty()

    # -- the list ------------------------------------------------------------------------
    def show_rows(self) -> None:
        box = self.ids.rows
        box.clear_widgets()
        try:
            rows = self.ctx.session.bookings(self.searched)
        except TillError as exc:
            self.say(str(exc), True)
            return
        for row in rows:
            b = row.booking
            state = [self.t("paid online") if b.paid else self.t("pay at pickup")]
            if row.redeemed:
                state.append(self.t("handed over"))
            box.add_widget(
                Factory.BookingLine(
                    label=f"[b]{b.number}[/b]  {b.name} · {' · '.join(state)}\n{row.items}",
                    number=str(b.number),
                    redeemed=row.redeemed,
                    screen=self,
                )
            )
        self.ctx.mark_dirty()

    def key(self, k: str) -> None:
        self.number = keyed(self.number, k, 9)
        self.ctx.mark_dirty()

    # -- finding ------------------------------------------------------------------------
    def find(self) -> None:
        """By the number on the keypad (the core's lookup and its refusal)."""
        if not self.number:
            self.say(self.t("Type the booking number, search by name or scan the code."), True)
            return
        self._found(lambda: self.ctx.session.find_booking(number=int(self.number)))

    def ask_name(self) -> None:
        def ok(text: str, pad: Any) -> None:  # ui.pads.TextPad
            pad.dismiss()
            self.search_name(text)

        self.ctx.ask_text(self.t("Name the booking was made under"), ok)

    def search_name(self, text: str) -> None:
        self.searched = " ".join(text.split())
        self.show_rows()
        if self.searched:
            self._found(lambda: self.ctx.session.find_booking(name=self.searched), quiet_many=True)

    def clear_name(self) -> None:
        self.searched = ""
        self.show_rows()

    def open(self, number: str) -> None:
        """A tap on a row: the booking the customer named (by name when the list is narrowed)."""
        via = "name" if self.searched else "number"
        found = self.ctx.session.find_booking
        self._found(lambda: (found(number=int(number))[0], via))

    def _found(self, look: Any, quiet_many: bool = False) -> None:
        try:
            booking, via = look()
        except TillError as exc:
            self.select(None, "")
            if quiet_many and self.ids.rows.children:  # several match: they are listed
                self.say(f"{exc}; {self.t('tap the one to hand over')}", True)
            else:
                self.say(str(exc), True)
            return
        self.select(booking, via)

    def select(self, booking: Any, via: str) -> None:
        self.booking, self.via = booking, via
        self.chosen = booking is not None
        self.engrave_ready = False
        if booking is None:
            self.ids.detail.text = ""
            return
        rows = {r.booking.id: r for r in self.ctx.session.bookings()}
        row = rows.get(booking.id)
        pay = self.t("paid online") if booking.paid else self.t("pay at pickup")
        text = f"[b]{self.t('Booking')} {booking.number}[/b] · {booking.name} · {pay}"
        if row is not None:
            text += f"\n{row.items}"
            if row.redeemed:
                text += f"\n{self.t('Already handed over at this till.')}"
        self.ids.detail.text = text
        self.say(
            self.t("Hand it over: nothing to charge.")
            if booking.paid
            else self.t("Hand it over: take the payment next.")
        )

    # -- the camera ------------------------------------------------------------------------
    def scan(self) -> None:
        if self.scanning:
            return
        self.scanning = True
        self._scan_id = getattr(self, "_scan_id", 0) + 1
        token = self._scan_id
        self.say(self.t("Hold the booking's QR code in front of the camera..."))
        Clock.schedule_once(lambda _dt: self._scan_timeout(token), self.SCAN_TIMEOUT_S)
        self.ctx.hub.scan_booking(
            lambda text: self._scanned(token, text), lambda msg: self._scan_failed(token, msg)
        )

    def _scan_over(self, token: int) -> bool:
        if not self.scanning or token != self._scan_id:
            return False  # a late answer of a scan that timed out
        self.scanning = False
        return True

    def _scanned(self, token: int, text: str) -> None:
        if self._scan_over(token):
            self._found(lambda: self.ctx.session.find_booking(qr=text))

    def _scan_failed(self, token: int, message: str) -> None:
        if self._scan_over(token):
            self.select(None, "")
            self.say(message, True)

    def _scan_timeout(self, token: int) -> None:
        if self._scan_over(token):
            self.say(self.t("The camera did not answer; scan again or search by number."), True)

    # -- handing over --------------------------------------------------------------------
    def hand_over(self) -> None:
        a = self.ctx
        if self.booking is None:
            return
        booking = self.booking
        try:
            done = a.session.hand_over(booking, self.via)
        except TillError as exc:
            self.say(f"{self.t('Not handed over')}: {exc}", True)
            return
        if done is None:  # paid at pickup: the sale is taken on the pay screen
            a.go("pay")
            return
        self.handed = done
        message = (
            f"{self.t('Booking')} {booking.number} {self.t('handed over')}: "
            f"{self.t('paid online — nothing to charge')}."
        )
        texts = [ln["personalisation"]["text"] for ln in done["lines"] if ln.get("personalisation")]
        if texts:
            a.screen("engrave").load_order(done)
            self.engrave_ready = True
            quoted = ", ".join(f'"{text}"' for text in texts)
            message += f"\n{self.t('Engraving queued')}: {quoted}"
        a.announce("booking", redemption=done)
        self.show_rows()
        self.say(message)

    def engrave(self) -> None:
        self.ctx.go("engrave")
