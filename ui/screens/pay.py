"""The pay screen: cash with quick tenders and change, or card (offline limits).

It takes the payment for the cart, or for a booking paid at pickup (the session holds
it from the Bookings screen until it is paid or the cashier leaves this screen).
"""

from __future__ import annotations

from typing import Any

from kivy.clock import Clock
from kivy.factory import Factory
from kivy.properties import BooleanProperty, StringProperty

from appliance.errors import TillError
from ui import fmt
from ui.pads import keyed
from ui.screens.base import KScreen, load_kv

load_kv(__file__)


class PayScreen(KScreen):
    method = StringProperty("cash")
    tendered = StringProperty("")
    busy = BooleanProperty(False)
    asking = BooleanProperty(False)  # the sale was refused until the event is chosen

    def on_kv_post(self, *_: Any) -> None:
        self.ids.keypad.pressed = self.key

    def refresh(self) -> None:
        self.busy = False
        self.asking = False
        self.tendered = ""
        self.ids.message.text = ""
        pickup = self.ctx.session.pickup
        self.ids.what.text = (
            f"{self.t('Booking')} {pickup[0].number} · {pickup[0].name} · "
            + self.t("pay at pickup")
            if pickup
            else ""
        )
        self.set_method("cash")

    def on_leave(self, *_: Any) -> None:
        self.ctx.session.cancel_pickup()  # a booking not paid for stays not handed over

    def back(self) -> None:
        self.ctx.go("bookings" if self.ctx.session.pickup else "sell")

    def set_method(self, method: str) -> None:
        self.method = method
        self.ids.cash.state = "down" if method == "cash" else "normal"
        self.ids.card.state = "down" if method == "card" else "normal"
        self.ids.message.text = ""
        if method == "card":
            refusal = self.ctx.session.card_refusal()
            if refusal:
                self.ids.message.text = f"{self.t('Card refused')}: {refusal}"
        self.show_quick_tenders()
        self.update()

    def show_quick_tenders(self) -> None:
        """Exact amount and the next notes above it (the core's note table)."""
        a = self.ctx
        box = self.ids.quick
        box.clear_widgets()
        if self.method != "cash":
            return
        due = a.session.due("cash")
        for amount in a.session.quick_tenders():
            exact = amount == due
            button = Factory.GreyButton(
                text=self.t("Exact") if exact else a.money(amount, whole=True),
                probe="tender-exact" if exact else f"tender-{amount}",
            )
            button.bind(on_release=lambda _b, v=amount: self.quick(v))
            box.add_widget(button)

    def quick(self, amount: int) -> None:
        self.tendered = str(amount)
        self.update()

    def key(self, k: str) -> None:
        self.tendered = keyed(self.tendered, k, 8).lstrip("0")  # no leading zeros
        self.update()

    def update(self) -> None:
        a = self.ctx
        due = a.session.due(self.method)
        self.ids.due.text = f"{self.t('Due')} {a.money(due)}"
        given = fmt.parse_minor(self.tendered, "") if self.tendered else None
        shown = a.money(given) if given is not None else self.t("exact amount")
        self.ids.tendered.text = f"{self.t('Given')}: {shown}"
        if self.method == "cash" and given is not None and given >= due:
            self.ids.change.text = f"{self.t('Change')} {a.money(given - due)}"
        else:
            self.ids.change.text = ""
        a.mark_dirty()

    def event_question(self) -> bool:
        """True when the till asks which event this is (the way out: choose it)."""
        try:
            return self.ctx.session.event_status().asking
        except TillError:
            return False

    def choose_event(self) -> None:
        self.ctx.ask_event(self.event_chosen)

    def event_chosen(self) -> None:
        """The answer is recorded: the sale is priced under the event's profile now."""
        self.asking = False
        self.set_method(self.method)  # clears the refusal; the bar names the event

    def confirm(self) -> None:
        """Tap on Take cash / Charge card: the sale is confirmed once it is in the log."""
        a = self.ctx
        if self.busy:
            return  # a second tap while the first is being handled
        self.busy = True
        tendered = None
        if self.method == "cash" and self.tendered:
            tendered = fmt.parse_minor(self.tendered, "")
        try:
            result = a.session.pay(self.method, tendered)
        except TillError as exc:
            self.busy = False
            prefix = self.t("Card refused") if self.method == "card" else self.t("Not recorded")
            self.ids.message.text = f"{prefix}: {exc}"
            self.asking = self.event_question()
            a.announce("sale_refused", message=str(exc))
            a.mark_dirty()
            return
        a.announce("sale", result=result)
        # The receipt goes to the printer's worker first; the screen changes on the next
        # frame, so drawing it does not compete with the print for the interpreter.
        receipt = a.screen("receipt")
        receipt.print_sale(result)

        def show(_dt: float) -> None:
            receipt.show_sale(result)
            a.go("receipt")

        Clock.schedule_once(show, 0)
