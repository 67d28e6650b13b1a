"""The Kivy kiosk: screens over :class:`ui.session.Session` and :class:`ui.devices.DeviceHub`.

Import this module only after :func:`ui.boot.prepare` has set Kivy's environment and
window size (``tillbox kiosk`` does). The screens hold no business rules: totals,
limits and refunds come from the core, through the session; device work runs on
the hub's workers and comes back here through ``Clock.schedule_once``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.factory import Factory
from kivy.lang import Builder
from kivy.properties import (
    BooleanProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.modalview import ModalView
from kivy.uix.screenmanager import Screen

from appliance import sdnotify
from appliance.datadir import DataDir
from appliance.errors import TillError
from appliance.till import Till
from ui import fmt, i18n, probe
from ui import widgets as _widgets  # noqa: F401 - registers the widget classes with Factory
from ui.devices import DeviceHub, PrintReport
from ui.session import Session, strokes_digest

log = logging.getLogger("tillbox.ui")

KV_FILE = Path(__file__).with_name("layout.kv")


def app() -> KioskApp:
    return App.get_running_app()  # type: ignore[return-value]


def t(text: str) -> str:
    return app().t(text, app().lang)


def N_(text: str) -> str:  # noqa: N802 - the gettext convention: marks a string for the catalog
    return text


NO_PIN = N_("No technician PIN is set; run `tillbox kiosk --set-technician-pin`.")


def agent_note(sync: Any) -> str:  # noqa: ANN401 - appliance.sync_state.SyncView
    """The note "sync agent not running since 14:02", in the kiosk's language."""
    if not sync.stopped_since_ms:
        return t("sync agent never ran here")
    return t("sync agent not running since") + " " + sync.stopped_at_text()


# -- chrome -------------------------------------------------------------------------------
class StatusBar(BoxLayout):
    def show(self, info: dict[str, Any]) -> None:
        a = app()
        sync = info.get("sync")
        ids = self.ids
        if sync is not None:  # appliance.sync_state.SyncView
            waiting = sync.waiting
            word = t("Online") if sync.online else t("Offline")
            text = f"{word} · {waiting} " + t("waiting to sync")
            if not sync.agent_running:
                text += " · " + agent_note(sync)
            elif waiting and sync.drain_estimate_s is not None:
                text += f" · ~{int(sync.drain_estimate_s) + 1} s"
            ids.sync.text = text
            ids.sync.ok = bool(sync.online)
        states = info.get("states", {})
        for kind, label in (
            ("printer", N_("Printer")),
            ("engraver", N_("Engraver")),
            ("camera", N_("Camera")),
        ):
            state = states.get(kind)
            pill = ids[kind]
            if state is None:
                continue
            configured = state.detail.get("configured", True)
            pill.ok = state.ok or not configured
            mark = t("OK") if state.ok else ("-" if not configured else "!")
            pill.text = f"{t(label)} {mark}"
        gpio = states.get("gpio")
        if gpio is not None:
            battery = bool(gpio.detail.get("on_battery"))
            ids.power.ok = gpio.ok and not battery
            ids.power.text = (
                t("On battery") if battery else (t("Mains") if gpio.ok else t("Power ?"))
            )
        shift = a.session.shift() if a.session else None
        ids.shift.text = (t("Shift") + f" {shift}") if shift else t("No shift")
        ids.shift.ok = shift is not None


class NavBar(BoxLayout):
    pass


class Root(BoxLayout):
    pass


class CartRow(BoxLayout):
    label = StringProperty("")
    amount = StringProperty("")
    index = NumericProperty(0)
    personalised = BooleanProperty(False)
    screen = ObjectProperty(None)


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


class PinPad(ModalView):
    title = StringProperty("")
    pin = StringProperty("")
    shown = StringProperty("")  # what the pad shows of the digits typed
    on_ok: Callable[[str, PinPad], None] | None = None

    def __init__(self, **kw: Any) -> None:  # noqa: ANN401
        super().__init__(**kw)
        self.ids.keypad.pressed = self.key
        self.on_pin(self, self.pin)

    def on_pin(self, _pad: Any, digits: str) -> None:  # noqa: ANN401
        self.shown = "*" * len(digits)

    def key(self, k: str) -> None:
        if k == "C":
            self.pin = ""
        elif k == "<":
            self.pin = self.pin[:-1]
        elif len(self.pin) < 12:
            self.pin += k

    def submit(self) -> None:
        if self.on_ok:
            self.on_ok(self.pin, self)


class AmountPad(PinPad):
    """The pin pad's keys for an amount (typed in minor units), shown as money."""

    def on_pin(self, _pad: Any, digits: str) -> None:  # noqa: ANN401
        self.shown = app().money(fmt.parse_minor(digits, "") or 0)
        if "message" in self.ids:
            self.ids.message.text = ""  # a refusal was about the amount before this key


class TextPad(ModalView):
    title = StringProperty("")
    value = StringProperty("")
    on_ok: Callable[[str, TextPad], None] | None = None

    def __init__(self, **kw: Any) -> None:  # noqa: ANN401
        super().__init__(**kw)
        self.ids.keyboard.changed = lambda text: setattr(self, "value", text)

    def submit(self) -> None:
        if self.on_ok:
            self.on_ok(self.value, self)


# -- screens ------------------------------------------------------------------------------
class KScreen(Screen):
    def refresh(self) -> None:
        """Fill the screen from the session (called every time it is shown)."""

    def on_pre_enter(self, *_: Any) -> None:  # noqa: ANN401
        self.refresh()


class StartScreen(KScreen):
    blocked = BooleanProperty(False)
    done = BooleanProperty(False)

    def run(self) -> None:
        self.done = False
        self.ids.checks.text = t("Checking the till...")
        self.ids.verdict.text = ""
        app().hub.selftest(self.show_report, self.show_error)

    def show_report(self, report: Any) -> None:  # noqa: ANN401
        a = app()
        gate = a.session.apply_selftest(report)
        a.selftest_report = report
        rows = []
        colours = {"pass": "1b7a2e", "warn": "a06000", "fail": "b01010"}
        for c in report.checks:
            mark = {"pass": t("OK"), "warn": t("Warning"), "fail": t("FAILED")}[c.result]
            line = f"[b][color={colours[c.result]}]{mark}[/color][/b]  {c.name}: {c.value}"
            if c.fix and c.result != "pass":
                line += f"\n        {t('Fix')}: {c.fix}"
            rows.append(line)
        self.ids.checks.text = "\n".join(rows)
        self._verdict(gate)

    def _verdict(self, gate: Any) -> None:  # noqa: ANN401
        self.blocked = gate.blocked
        self.done = True
        if gate.blocked:
            self.ids.verdict.text = (
                f"[color=b01010][b]{t('Selling is blocked')}:[/b] {gate.reason}[/color]"
            )
        elif gate.overridden:
            self.ids.verdict.text = t("Technician override recorded in the log. Selling allowed.")
        else:
            self.ids.verdict.text = f"[color=1b7a2e][b]{t('Ready to trade.')}[/b][/color]"
        app().facts["gate"] = {
            "blocked": gate.blocked,
            "failed": gate.failed,
            "overridden": gate.overridden,
        }
        app().mark_dirty()

    def show_error(self, message: str) -> None:
        self.ids.checks.text = message
        self._verdict(app().session.selftest_unavailable(message))

    def override(self) -> None:
        a = app()

        def ok(pin: str, pad: PinPad) -> None:
            try:
                gate = a.session.override(pin)
            except TillError as exc:
                pad.ids.message.text = str(exc)
                pad.pin = ""
                return
            pad.dismiss()
            self._verdict(gate)

        a.ask_pin(t("Technician PIN to override the self-test"), None, ok)


class SellScreen(KScreen):
    category = StringProperty("all")
    promo = StringProperty("")
    can_pay = BooleanProperty(False)
    show_open_shift = BooleanProperty(False)

    def on_kv_post(self, *_: Any) -> None:  # noqa: ANN401
        self._built_for = None

    def build_catalog(self) -> None:
        session = app().session
        tabs = self.ids.tabs
        tabs.clear_widgets()
        for cat in ["all", *session.categories()]:
            b = Factory.TToggle(
                text=t("All") if cat == "all" else t(cat.capitalize()),
                group="cat",
                probe=f"tab-{cat}",
                allow_no_selection=False,
                state="down" if cat == self.category else "normal",
            )
            b.font_size = app().k * 15
            b.bind(on_release=lambda _b, c=cat: self.pick(c))
            tabs.add_widget(b)
        grid = self.ids.grid
        grid.clear_widgets()
        items = session.products(self.category)
        grid.cols = 4 if len(items) > 6 else 3
        for item in items:
            label = f"[b]{item.name}[/b]\n{app().money(item.price_minor)}"
            if item.engravable:
                label += "\n[i]" + t("engraved") + "[/i]"
            b = Factory.TButton(text=label, probe=f"item-{item.sku}")
            b.font_size = b.font_size * 0.85
            b.bind(on_release=lambda _b, sku=item.sku, eng=item.engravable: self.add(sku, eng))
            grid.add_widget(b)
        for _ in range(max(0, 12 - len(items)) if len(items) > 6 else 0):
            grid.add_widget(Factory.Widget())
        self._built_for = (self.category, app().lang)

    def pick(self, category: str) -> None:
        self.category = category
        self.build_catalog()

    def refresh(self) -> None:
        if getattr(self, "_built_for", None) != (self.category, app().lang):
            self.build_catalog()
        self.show_cart()

    def add(self, sku: str, engravable: bool) -> None:
        if engravable:
            app().personalise(sku)
            return
        self._do(lambda: app().session.add(sku))

    def bump(self, index: int, delta: int) -> None:
        self._do(lambda: app().session.bump(index, delta))

    def remove(self, index: int) -> None:
        self._do(lambda: app().session.remove(index))

    def clear(self) -> None:
        self._do(app().session.clear)

    def _do(self, action: Callable[[], None]) -> None:
        self.ids.message.text = ""
        try:
            action()
        except TillError as exc:
            self.ids.message.text = str(exc)
        self.show_cart()

    def open_shift(self) -> None:
        self.ids.message.text = ""
        app().ask_float(self.show_cart)

    def enter_promo(self) -> None:
        session = app().session

        def ok(code: str, pad: TextPad) -> None:
            try:
                session.set_promo(code)
            except TillError as exc:
                pad.ids.message.text = str(exc)
                return
            pad.dismiss()
            self.show_cart()

        app().ask_text(t("Promo code"), ok)

    def show_cart(self) -> None:
        a = app()
        session = a.session
        self.promo = session.promo or ""
        self.show_open_shift = session.shift() is None
        cart = self.ids.cart
        cart.clear_widgets()
        try:
            quote = session.quote()
        except TillError as exc:
            quote = None
            self.ids.message.text = str(exc)
        if quote is None:
            self.ids.totals.text = t("Tap a product to add it.") if not session.cart else ""
            self.ids.total.text = a.money(0)
            self.can_pay = False
            a.mark_dirty()
            return
        for index, line in enumerate(quote.lines):
            label = f"{line.qty} x {line.name}"
            if line.personalisation:
                label += f' "{line.personalisation.get("text", "")}"'
            cart.add_widget(
                Factory.CartRow(
                    label=label,
                    amount=a.money(line.gross_minor),
                    index=index,
                    screen=self,
                    personalised=line.personalisation is not None,
                )
            )
        parts = []
        if quote.discount_minor:
            parts.append(f"{t('Discount')} -{a.money(quote.discount_minor)}")
        for tax in quote.taxes:
            parts.append(f"{t('Tax')} {tax['rate']} {a.money(tax['tax_minor'])}")
        self.ids.totals.text = "   ".join(parts)
        self.ids.total.text = f"{t('Total')} {a.money(quote.total_minor)}"
        self.can_pay = True
        a.mark_dirty()

    def pay(self) -> None:
        app().go("pay")


class PayScreen(KScreen):
    method = StringProperty("cash")
    tendered = StringProperty("")
    busy = BooleanProperty(False)

    def on_kv_post(self, *_: Any) -> None:  # noqa: ANN401
        self.ids.keypad.pressed = self.key

    def refresh(self) -> None:
        self.busy = False
        self.tendered = ""
        self.ids.message.text = ""
        self.set_method("cash")

    def set_method(self, method: str) -> None:
        self.method = method
        self.ids.cash.state = "down" if method == "cash" else "normal"
        self.ids.card.state = "down" if method == "card" else "normal"
        self.ids.message.text = ""
        if method == "card":
            refusal = app().session.card_refusal()
            if refusal:
                self.ids.message.text = f"{t('Card refused')}: {refusal}"
        self.show_quick_tenders()
        self.update()

    def show_quick_tenders(self) -> None:
        """Exact amount and the next notes above it (the core's note table)."""
        a = app()
        box = self.ids.quick
        box.clear_widgets()
        if self.method != "cash":
            return
        due = a.session.due("cash")
        for amount in a.session.quick_tenders():
            exact = amount == due
            button = Factory.GreyButton(
                text=t("Exact") if exact else a.money(amount, whole=True),
                probe="tender-exact" if exact else f"tender-{amount}",
            )
            button.bind(on_release=lambda _b, v=amount: self.quick(v))
            box.add_widget(button)

    def quick(self, amount: int) -> None:
        self.tendered = str(amount)
        self.update()

    def key(self, k: str) -> None:
        if k == "C":
            self.tendered = ""
        elif k == "<":
            self.tendered = self.tendered[:-1]
        elif len(self.tendered) < 8:
            self.tendered = (self.tendered + k).lstrip("0")
        self.update()

    def update(self) -> None:
        a = app()
        due = a.session.due(self.method)
        self.ids.due.text = f"{t('Due')} {a.money(due)}"
        given = fmt.parse_minor(self.tendered, "") if self.tendered else None
        shown = a.money(given) if given is not None else t("exact amount")
        self.ids.tendered.text = f"{t('Given')}: {shown}"
        if self.method == "cash" and given is not None and given >= due:
            self.ids.change.text = f"{t('Change')} {a.money(given - due)}"
        else:
            self.ids.change.text = ""
        a.mark_dirty()

    def confirm(self) -> None:
        """Tap on Take cash / Charge card: the sale is confirmed once it is in the log."""
        a = app()
        if self.busy:
            return  # a second tap while the first is being handled
        tap = time.perf_counter()
        self.busy = True
        tendered = None
        if self.method == "cash" and self.tendered:
            tendered = fmt.parse_minor(self.tendered, "")
        try:
            result = a.session.pay(self.method, tendered)
        except TillError as exc:
            self.busy = False
            prefix = t("Card refused") if self.method == "card" else t("Not recorded")
            self.ids.message.text = f"{prefix}: {exc}"
            a.facts["last_error"] = str(exc)
            a.mark_dirty()
            return
        durable = time.perf_counter()
        a.facts["last_sale"] = {
            "receipt_no": result.payload["receipt_no"],
            "seq": result.event.seq,
            "replayed": result.replayed,
            "tap_to_durable_ms": round((durable - tap) * 1000, 3),
        }
        # The receipt goes to the printer's worker first; the screen changes on the next
        # frame, so drawing it does not compete with the print for the interpreter.
        receipt = a.receipt_screen()
        receipt.print_sale(result, tap)

        def show(_dt: float) -> None:
            receipt.show_sale(result)
            a.go("receipt")

        Clock.schedule_once(show, 0)


class ReceiptScreen(KScreen):
    receipt_seq = NumericProperty(0)
    queued = NumericProperty(0)
    engravable = BooleanProperty(False)
    armed = BooleanProperty(True)

    def print_sale(self, result: Any, tap: float | None = None) -> None:  # noqa: ANN401
        """Print the durable sale's receipt (and open the drawer for cash) on the worker."""
        a = app()

        def printed(report: PrintReport) -> None:
            self.show_print(report)
            if tap is not None and report.handed_at is not None and "last_sale" in a.facts:
                a.facts["last_sale"]["tap_to_printer_ms"] = round(
                    (report.handed_at - tap) * 1000, 3
                )
            a.facts["last_print"] = {"ok": report.ok, "receipt_no": report.receipt_no}
            a.mark_dirty()

        cash = result.payload["payment"]["method"] == "cash"
        a.hub.print_receipt(result.event.seq, printed, drawer=cash)

    def show_sale(self, result: Any) -> None:  # noqa: ANN401
        a = app()
        p = result.payload
        # The second tap of a hurried double tap on Pay lands here, where "New sale" is:
        # the buttons wake up only after a moment.
        self.armed = False
        Clock.schedule_once(lambda _dt: setattr(self, "armed", True), 0.8)
        self.receipt_seq = result.event.seq
        self.sale = result
        pay = p["payment"]
        head = f"{t('Sale recorded')}: {t('receipt')} {p['receipt_no']}"
        if pay["method"] == "cash":
            head += f"\n{t('Change')} {a.money(pay.get('change_minor', 0))}"
        else:
            head += f"\n{t('Card (offline)')} {a.money(pay['due_minor'])}"
        self.ids.headline.text = head
        self.ids.status.text = t("Printing the receipt...")
        self.ids.preview.text = ""
        self.engravable = any(ln.get("personalisation") for ln in p["lines"])
        a.engrave_screen().load_sale(result)

    def show_print(self, report: PrintReport) -> None:
        colour = "1b7a2e" if report.ok else "b01010"
        self.ids.status.text = f"[color={colour}]{report.message}[/color]"
        if report.preview:
            self.ids.preview.text = report.preview
        self.set_queue(report.queue)

    def set_queue(self, queue: list[int]) -> None:
        self.queued = len(queue)
        self.ids.queue.text = (
            f"{t('Waiting to print')}: " + ", ".join(map(str, queue))
            if queue
            else t("No receipts waiting to print")
        )
        app().mark_dirty()

    def refresh(self) -> None:
        self.set_queue(app().session.till.reprint_queue())
        if not self.receipt_seq:
            self.ids.headline.text = t("No sale yet")

    def reprint(self) -> None:
        self.ids.status.text = t("Printing the receipt...")
        app().hub.print_receipt(self.receipt_seq, self.show_print, reprint=True)

    def drain(self) -> None:
        self.ids.status.text = t("Printing queued receipts...")

        def done(outcomes: list[Any], queue: list[int]) -> None:  # noqa: ANN401
            words = [o.message if hasattr(o, "message") else str(o) for o in outcomes]
            self.ids.status.text = "\n".join(words) or t("Nothing to print")
            self.set_queue(queue)

        app().hub.drain_reprints(done)


class PersPickScreen(KScreen):
    def refresh(self) -> None:
        grid = self.ids.grid
        grid.clear_widgets()
        for item in app().session.engravable():
            b = Factory.TButton(
                text=f"[b]{item.name}[/b]\n{app().money(item.price_minor)}",
                probe=f"pers-{item.sku}",
            )
            b.bind(on_release=lambda _b, sku=item.sku: app().personalise(sku))
            grid.add_widget(b)


class PersTextScreen(KScreen):
    def on_kv_post(self, *_: Any) -> None:  # noqa: ANN401
        self.ids.keyboard.changed = self.typed

    def refresh(self) -> None:
        a = app()
        order = a.order
        item = a.session.till.catalog().item(order["sku"])
        self.ids.item.text = f"{item.name}\n{a.money(item.price_minor)}"
        self.ids.keyboard.text = order.get("text", "")
        self.typed(self.ids.keyboard.text)

    def typed(self, text: str) -> None:
        app().order["text"] = text
        self.ids.text.text = text or f"[color=888888]{t('Type the text to engrave')}[/color]"
        self.ids.message.text = ""
        app().mark_dirty()

    def proof(self) -> None:
        a = app()
        try:
            a.order["toolpath"] = a.hub.toolpath(a.order.get("text", ""))
        except TillError as exc:
            self.ids.message.text = str(exc)
            return
        a.go("pers_proof")


class PersProofScreen(KScreen):
    def refresh(self) -> None:
        a = app()
        tp = a.order.get("toolpath")
        area = a.hub.work_area()
        self.ids.proof.area = area
        self.ids.proof.toolpath = tp
        self.ids.title.text = f'{t("Proof")}: "{a.order.get("text", "")}"'
        if tp is not None:
            x0, y0, x1, y1 = tp.bbox
            self.ids.facts.text = (
                f"{t('Work area')} {area.width_mm:g} x {area.height_mm:g} mm · "
                f"{t('text')} {x1 - x0:.1f} x {y1 - y0:.1f} mm · "
                f"{t('letters')} {tp.letter_mm:.1f} mm · ~{int(tp.estimated_s) + 1} s"
            )


class PersSignScreen(KScreen):
    def refresh(self) -> None:
        self.ids.pad.clear()
        self.ids.message.text = ""

    def accept(self) -> None:
        a = app()
        pad = self.ids.pad
        if pad.ink() < 8:
            self.ids.message.text = t("Please sign with a finger first (a tap is not a signature).")
            return
        strokes = [[list(p) for p in s] for s in pad.strokes]
        try:
            personalisation = a.approve_order(strokes)
            a.session.add(a.order["sku"], personalisation)
        except TillError as exc:
            self.ids.message.text = str(exc)
            return
        a.order = {}
        a.go("sell")


class EngraveScreen(KScreen):
    running = BooleanProperty(False)
    held = BooleanProperty(False)
    pending = BooleanProperty(False)

    def on_kv_post(self, *_: Any) -> None:  # noqa: ANN401
        self.sale = None
        self.queue: list[dict[str, Any]] = []
        self.job = None
        self.current: dict[str, Any] | None = None

    def load_sale(self, sale: Any) -> None:  # noqa: ANN401
        self.sale = sale
        self.queue = [ln for ln in sale.payload["lines"] if ln.get("personalisation")]
        self.pending = bool(self.queue)
        self.job = None
        self.ids.bar.value = 0

    def refresh(self) -> None:
        a = app()
        self.ids.proof.area = a.hub.work_area()
        if self.running:
            return
        if self.queue:
            line = self.queue[0]
            text = line["personalisation"].get("text", "")
            self.ids.title.text = f'{t("Engrave")} {line["name"]}: "{text}"'
            try:
                self.current = {
                    "line": line,
                    "toolpath": a.hub.toolpath(
                        text, line["personalisation"].get("material", "wood")
                    ),
                }
                self.ids.proof.toolpath = self.current["toolpath"]
                self.ids.proof.done_fraction = 0.0
                self.ids.status.text = t("Place the blank in the engraver, then start.")
            except TillError as exc:
                self.ids.status.text = str(exc)
                self.pending = False
        elif not self.ids.status.text:
            self.ids.title.text = t("Nothing to engrave")

    def start(self) -> None:
        a = app()
        if not self.current or self.running:
            return
        line, tp = self.current["line"], self.current["toolpath"]
        self.running = True
        self.held = False
        self.ids.status.text = t("Starting the engraver...")
        a.session.record_engraving(
            "started",
            self.sale,
            line["line"],
            {
                "text": line["personalisation"].get("text", ""),
                "gcode_lines": len(tp.gcode),
                "estimated_ms": int(tp.estimated_s * 1000),
            },
        )
        a.facts["engraving"] = {"state": "starting"}
        a.hub.engrave(
            tp.gcode, tp.estimated_s, self.progress, self.finished, self.failed, self.started
        )

    def started(self, job: Any) -> None:  # noqa: ANN401
        self.job = job
        self.ids.status.text = t("Engraving...")
        app().facts["engraving"] = {"state": "running"}
        app().mark_dirty()

    def progress(self, p: Any) -> None:  # noqa: ANN401
        self.ids.bar.value = int(p.fraction * 1000)
        self.ids.proof.done_fraction = p.fraction
        left = f" · ~{int(p.remaining_s) + 1} s" if p.remaining_s is not None else ""
        state = t("Held") if p.state == "held" else t("Engraving")
        self.ids.status.text = f"{state} {int(p.fraction * 100)} %{left}"
        app().facts["engraving"] = {"state": p.state, "fraction": round(p.fraction, 3)}
        app().mark_dirty()

    def finished(self, result: Any) -> None:  # noqa: ANN401
        a = app()
        line = self.current["line"] if self.current else {"line": 0}
        kind = result.outcome if result.outcome in ("completed", "cancelled") else "failed"
        a.session.record_engraving(kind, self.sale, line["line"], result.to_json())
        self.running = False
        self.held = False
        self.job = None
        if result.ok:
            self.ids.bar.value = 1000
            self.ids.proof.done_fraction = 1.0
            self.ids.status.text = t("Engraving complete.")
            self.queue.pop(0)
        else:
            self.ids.status.text = f"{t('Engraving stopped')}: {result.message}"
        self.pending = bool(self.queue)
        a.facts["engraving"] = {"state": result.outcome}
        a.mark_dirty()

    def failed(self, message: str) -> None:
        a = app()
        line = self.current["line"] if self.current else {"line": 0}
        a.session.record_engraving("failed", self.sale, line["line"], {"message": message})
        self.running = False
        self.ids.status.text = message
        a.facts["engraving"] = {"state": "failed", "message": message}
        a.mark_dirty()

    def toggle_hold(self) -> None:
        if self.job is None:
            return
        if self.held:
            self.job.resume()
        else:
            self.job.hold()
        self.held = not self.held

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.ids.status.text = t("Cancelling...")


class RefundScreen(KScreen):
    number = StringProperty("")
    selected = BooleanProperty(False)
    error = BooleanProperty(False)
    scanning = BooleanProperty(False)
    SCAN_TIMEOUT_S = 15.0  # a camera that never answers must not leave the button dead

    def on_kv_post(self, *_: Any) -> None:  # noqa: ANN401
        self.ids.keypad.pressed = self.key
        self.receipt_no = 0
        self._scanned = ""

    # A handheld QR scanner in keyboard mode "types" the receipt's QR text and Enter.
    def on_enter(self, *_: Any) -> None:  # noqa: ANN401
        self._scanned = ""
        Window.bind(on_textinput=self._scan_text, on_key_down=self._scan_key)

    def on_leave(self, *_: Any) -> None:  # noqa: ANN401
        Window.unbind(on_textinput=self._scan_text, on_key_down=self._scan_key)

    def _scan_text(self, _window: Any, text: str) -> None:  # noqa: ANN401
        if len(self._scanned) < 400:
            self._scanned += text

    def _scan_key(self, _window: Any, key: int, *_: Any) -> bool:  # noqa: ANN401
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
        app().mark_dirty()

    def say(self, text: str, error: bool = False) -> None:
        self.error = error
        self.ids.message.text = text
        app().mark_dirty()

    def find(self, ref: str | None = None) -> None:
        a = app()
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
            f"{t('Receipt')} {payload['receipt_no']} · "
            f"{payload['payment']['method']} · "
            f"{a.money(payload['total_minor'])}"
        )
        for ln in payload["lines"]:
            label = f"{ln['qty']} x {ln['name']}"
            if ln.get("personalisation"):
                label += " (" + t("personalised") + ")"
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
        self.say(t("Choose what to refund with +."))

    def scan(self) -> None:
        """Capture and decode on a worker (never here); the answer comes back by the clock."""
        if self.scanning:
            return
        self.scanning = True
        self._scan_id = getattr(self, "_scan_id", 0) + 1
        token = self._scan_id
        self.say(t("Hold the receipt's QR code in front of the camera..."))
        Clock.schedule_once(lambda _dt: self._scan_timeout(token), self.SCAN_TIMEOUT_S)
        app().hub.scan_receipt(
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
            self.say(t("The camera did not answer; scan again or type the receipt number."), True)

    def rows(self) -> list[Any]:
        return list(reversed(self.ids.lines.children))

    def update_selection(self) -> None:
        self.selected = any(r.chosen for r in self.rows())
        app().mark_dirty()

    def refund(self) -> None:
        a = app()
        items: dict[str, int] = {}
        for row in self.rows():
            if row.chosen:
                items[row.sku] = items.get(row.sku, 0) + row.chosen
        try:
            result = a.session.refund(self.receipt_no, sorted(items.items()))
        except TillError as exc:
            self.say(f"{t('Refund refused')}: {exc}", True)
            return
        p = result.event.payload
        self.say(
            f"{t('Refund recorded')}: {t('receipt')} {p['receipt_no']}, "
            f"{t('give back')} {a.money(p['total_minor'])} ({p['payment']['method']})"
        )
        for row in self.rows():
            row.chosen = 0
        self.selected = False
        a.facts["last_refund"] = {"receipt_no": p["receipt_no"], "seq": result.event.seq}
        a.hub.print_receipt(result.event.seq, lambda r: None)


class ShiftScreen(KScreen):
    open_no = NumericProperty(0)

    def refresh(self) -> None:
        shift = app().session.shift()
        self.open_no = shift or 0
        self.ids.state.text = (
            f"{t('Shift')} {shift} {t('is open')}" if shift else t("No shift is open")
        )
        app().mark_dirty()

    def open_shift(self) -> None:
        def opened() -> None:
            self.ids.message.text = ""
            self.ids.z.text = ""
            self.refresh()

        app().ask_float(opened)

    def close_shift(self) -> None:
        a = app()
        try:
            z = a.session.close_shift()
        except TillError as exc:
            self.ids.message.text = str(exc)
            return
        lines = a.session.z_lines(z, a.money)
        self.ids.z.text = "\n".join(lines)
        self.ids.message.text = t("Printing the Z report...")

        def printed(problem: str) -> None:
            self.ids.message.text = (
                f"{t('Z report not printed')}: {problem}" if problem else t("Z report printed.")
            )
            a.mark_dirty()

        a.hub.print_z(z["shift_no"], printed)
        a.facts["last_z"] = {"shift_no": z["shift_no"]}
        self.refresh()
        a.poll_now()


class InspectScreen(KScreen):
    tab = StringProperty("log")

    def refresh(self) -> None:
        self.show(self.tab)

    def show(self, tab: str) -> None:
        self.tab = tab
        till = app().session.till
        if tab == "log":
            self.ids.body.text = self._log(till)
        elif tab == "permits":
            self.ids.body.text = self._permits(till)
        else:
            self.ids.body.text = self._selftests(till)
        app().mark_dirty()

    @staticmethod
    def _today_ms() -> int:
        now = datetime.now()
        return int(datetime(now.year, now.month, now.day).timestamp() * 1000)

    def _log(self, till: Till) -> str:
        start = self._today_ms()
        rows = []
        for seq, etype, wall_ms in till.log.conn.execute(
            "SELECT seq, type, wall_ms FROM events WHERE wall_ms >= ? ORDER BY seq DESC LIMIT 200",
            (start,),
        ):
            rows.append(f"{seq:>6}  {fmt.clock(wall_ms)}  {etype}")
        head = f"{t('Events today')}: {len(rows)} ({t('newest first, read-only')})"
        return "\n".join([head, "", *rows])

    def _permits(self, till: Till) -> str:
        shop = till.config.section("shop")
        lines = [
            f"{t('Shop')}: {shop.get('name', '')}",
            f"{t('Location')}: {shop.get('location', '')}",
            f"{t('Permit (config)')}: {shop.get('permit', '') or '-'}",
            "",
        ]
        row = till.log.conn.execute(
            "SELECT seq, payload FROM events WHERE type = 'enrollment.signed' "
            "ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is None:
            lines.append(t("No enrollment recorded (no permit scans)."))
        else:
            import json

            manifest = json.loads(row[1]).get("manifest", {})
            for permit in manifest.get("permits", []):
                lines.append(
                    f"{permit.get('kind', 'permit')} {permit.get('number', '')} · "
                    f"{t('valid until')} {permit.get('expires', '?')}"
                )
        return "\n".join(lines)

    def _selftests(self, till: Till) -> str:
        import json

        lines = []
        for seq, payload, wall_ms in till.log.conn.execute(
            "SELECT seq, payload, wall_ms FROM events WHERE type IN "
            "('selftest.recorded', 'selftest.override') ORDER BY seq DESC LIMIT 50"
        ):
            p = json.loads(payload)
            when = datetime.fromtimestamp(wall_ms / 1000).strftime("%Y-%m-%d %H:%M")
            if "verdict" in p:
                failed = [c["name"] for c in p.get("checks", []) if c.get("result") == "fail"]
                lines.append(f"{seq:>6}  {when}  {p['verdict'].upper():<5} {', '.join(failed)}")
            else:
                lines.append(f"{seq:>6}  {when}  OVERRIDE {', '.join(p.get('failed', []))}")
        return "\n".join(lines) or t("No self-test recorded yet.")

    def export(self) -> None:
        a = app()
        target = Path(a.usb_path())
        if not target.is_dir():
            self.ids.message.text = (
                f"{t('No USB stick found at')} {target}; {t('plug one in and try again')}"
            )
            a.mark_dirty()
            return
        name = f"tillbox-{a.session.till.device_id}-{datetime.now():%Y%m%d-%H%M%S}.zip"
        self.ids.message.text = t("Exporting the inspection bundle...")

        def done(result: Any) -> None:  # noqa: ANN401
            self.ids.message.text = (
                f"{t('Bundle written')}: {result.path} "
                f"({result.events} {t('events')}, "
                f"{result.receipts} {t('receipts')})"
            )
            a.facts["last_export"] = str(result.path)
            a.mark_dirty()

        def failed(message: str) -> None:
            self.ids.message.text = f"{t('Export failed')}: {message}"
            a.mark_dirty()

        a.hub.export_bundle(target / name, done, failed)


class SettingsScreen(KScreen):
    def refresh(self) -> None:
        a = app()
        langs = self.ids.langs
        langs.clear_widgets()
        for code in i18n.available():
            b = Factory.TToggle(
                text=i18n.NAMES.get(code, code),
                group="lang",
                probe=f"lang-{code}",
                allow_no_selection=False,
                state="down" if code == a.lang else "normal",
            )
            b.bind(on_release=lambda _b, c=code: a.set_language(c))
            langs.add_widget(b)
        rows = []
        for kind, state in sorted(a.device_states.items()):
            mark = "OK" if state.ok else "!!"
            rows.append(f"[b]{kind}[/b] {mark}  {state.url}\n    {state.message}")
        sync = a.sync
        if sync is not None:
            rows.append(
                f"[b]sync[/b] {'online' if sync.online else 'offline'} · "
                f"acked seq {sync.acked_seq} of {sync.last_seq} · waiting {sync.waiting} · "
                f"{agent_note(sync) if not sync.agent_running else sync.state.detail}"
            )
        rows.append(f"[b]{t('Unsynced card payments')}[/b] {a.money(a.exposure)}")
        self.ids.devices.text = "\n".join(rows)


# -- the app ------------------------------------------------------------------------------
class KioskApp(App):
    title = "tillbox kiosk"
    k = NumericProperty(1.0)  # scale: 1.0 on the 800x480 display
    lang = StringProperty("en")

    def __init__(
        self, data_dir: DataDir, lang: str | None = None, started: float | None = None, **kw: Any
    ) -> None:  # noqa: ANN401
        super().__init__(**kw)
        # Device workers (and the in-process simulators) wait on sockets and ptys; a short
        # GIL switch interval hands them the interpreter sooner while the UI thread draws.
        sys.setswitchinterval(0.001)
        self.data_dir = data_dir
        self.started = started or time.perf_counter()
        self.till = Till.open(data_dir)
        self.session = Session(self.till)
        self.hub = DeviceHub(data_dir, lambda fn: Clock.schedule_once(lambda _dt: fn(), 0))
        config_lang = str(self.till.config.section("ui").get("lang", "en"))
        self.lang = lang or config_lang
        self._translations: dict[str, Any] = {}
        self.money_locale = str(self.till.config.section("shop").get("locale", "en"))
        self.facts: dict[str, Any] = {"ready": False}
        self.order: dict[str, Any] = {}
        self.selftest_report = None
        self.device_states: dict[str, Any] = {}
        self.sync = None
        self.exposure = 0
        self._probe = probe.probe_path()
        self._dirty = True
        self._last_probe = ""
        self._polling = False

    # -- helpers used by KV ---------------------------------------------------------------
    def t(self, text: str, lang: str | None = None) -> str:
        lang = lang or self.lang
        if lang == "en":
            return text
        if lang not in self._translations:
            self._translations[lang] = i18n.translation(lang)
        return self._translations[lang].gettext(text)

    def money(self, minor: int, *, whole: bool = False) -> str:
        return fmt.money(minor, self.till.profile().currency, self.money_locale, whole=whole)

    def pin_hash(self) -> str:
        return str(self.data_dir.load_config().section("ui").get("technician_pin_hash", ""))

    def usb_path(self) -> str:
        return str(self.till.config.section("ui").get("usb_path", "/media/usb0"))

    def receipt_screen(self) -> ReceiptScreen:
        return self.root.ids.sm.get_screen("receipt")

    def engrave_screen(self) -> EngraveScreen:
        return self.root.ids.sm.get_screen("engrave")

    # -- building -------------------------------------------------------------------------
    def build(self) -> Root:
        Builder.load_file(str(KV_FILE))
        Window.clearcolor = (0.93, 0.93, 0.90, 1)
        self._rescale()
        Window.bind(size=lambda *_: self._rescale())
        root = Root()
        sm = root.ids.sm
        for name, cls in (
            ("start", StartScreen),
            ("sell", SellScreen),
            ("pay", PayScreen),
            ("receipt", ReceiptScreen),
            ("pers_pick", PersPickScreen),
            ("pers_text", PersTextScreen),
            ("pers_proof", PersProofScreen),
            ("pers_sign", PersSignScreen),
            ("engrave", EngraveScreen),
            ("refund", RefundScreen),
            ("shift", ShiftScreen),
            ("inspect", InspectScreen),
            ("settings", SettingsScreen),
        ):
            sm.add_widget(cls(name=name))
        sm.current = "start"
        root.ids.nav.opacity = 0
        root.ids.nav.disabled = True
        sm.bind(current=lambda *_: self.mark_dirty())
        return root

    def _rescale(self) -> None:
        self.k = min(Window.width / 800, Window.height / 480)
        self.mark_dirty()

    def on_start(self) -> None:
        # systemd stops the kiosk with SIGTERM: finish the frame, close devices and the log.
        signal.signal(signal.SIGTERM, lambda *_: Clock.schedule_once(lambda _dt: self.stop(), 0))
        Window.bind(on_draw=self._first_draw)
        Clock.schedule_interval(lambda _dt: self.poll_now(), 3.0)
        self.poll_now()
        interval = sdnotify.watchdog_interval_s()
        if interval:
            # From the Kivy clock: a hung UI thread stops the heartbeat and systemd restarts us.
            Clock.schedule_interval(lambda _dt: sdnotify.notify("WATCHDOG=1"), interval)
        if self._probe is not None:
            Clock.schedule_interval(lambda _dt: self._write_probe(), 0.05)
            Window.bind(on_touch_down=self._seen_touch, on_touch_up=self._seen_touch)

    def _seen_touch(self, _window: Any, touch: Any) -> None:  # noqa: ANN401
        """Test-only: the last touches as the app saw them (X coords), to debug lost taps."""
        seen = self.facts.setdefault("touches", [])
        seen.append(
            [
                touch.phase if hasattr(touch, "phase") else "",
                round(touch.x),
                round(Window.height - touch.y),
                self.root.ids.sm.current,
            ]
        )
        del seen[:-6]

    def _first_draw(self, *_: Any) -> None:  # noqa: ANN401
        Window.unbind(on_draw=self._first_draw)

        def ready(_dt: float) -> None:
            # the self-test starts after the first frame, so it never delays the screen
            self.root.ids.sm.get_screen("start").run()
            self.facts["ready"] = True
            self.facts["first_frame_s"] = round(time.perf_counter() - self.started, 3)
            sdnotify.notify("READY=1")
            self.mark_dirty()

        Clock.schedule_once(ready, 0)

    def on_stop(self) -> None:
        self.hub.close()
        self.till.close()

    # -- navigation and pop-ups -----------------------------------------------------------
    def go(self, name: str) -> None:
        sm = self.root.ids.sm
        if name == sm.current:
            sm.current_screen.refresh()
        else:
            sm.current = name
        self.root.ids.nav.opacity = 0 if name == "start" else 1
        self.root.ids.nav.disabled = name == "start"
        self.mark_dirty()

    def personalise(self, sku: str) -> None:
        self.order = {"sku": sku, "text": "", "material": "wood"}
        self.go("pers_text")

    def approve_order(self, strokes: list[list[list[int]]]) -> dict[str, Any]:
        """Store the signature as personal data (consent for this order) and reference it."""
        from compliance import privacy

        order = self.order
        tp = order["toolpath"]
        till = self.session.till
        wording = "Approval of the engraving proof for this order (signature)."
        customer, _consent = privacy.record_consent(
            till, ["signature", "engraving"], wording=wording
        )
        stored = privacy.store_personal(
            till,
            customer,
            "signature",
            {"strokes": strokes, "text": order["text"], "sku": order["sku"]},
        )
        import hashlib

        gcode_sha = hashlib.sha256("\n".join(tp.gcode).encode("ascii")).hexdigest()
        return {
            "text": order["text"],
            "material": order.get("material", "wood"),
            "proof_sha256": gcode_sha,
            "signature": {
                "customer": customer,
                "seq": stored.seq,
                "sha256": strokes_digest(strokes),
            },
        }

    def ask_pin(
        self,
        title: str,
        then: Callable[[], None] | None,
        on_ok: Callable[[str, PinPad], None] | None = None,
    ) -> None:
        pad = PinPad(title=title)

        def check(pin: str, p: PinPad) -> None:
            from appliance.techpin import verify_pin

            stored = self.pin_hash()
            if not stored:
                p.ids.message.text = t(NO_PIN)
            elif verify_pin(pin, stored):
                p.dismiss()
                if then:
                    then()
            else:
                p.ids.message.text = t("Wrong PIN; try again.")
                p.pin = ""
            self.mark_dirty()

        pad.on_ok = on_ok or check
        pad.bind(on_dismiss=self._dismissed)
        pad.open()
        Clock.schedule_once(lambda _dt: self.mark_dirty(), 0.3)

    def ask_float(self, opened: Callable[[], None]) -> None:
        """Open a shift with the counted opening float (the Z report's cash starts there)."""
        pad = AmountPad(title=t("Count the drawer: opening float"))

        def ok(digits: str, p: PinPad) -> None:
            try:
                self.session.open_shift(fmt.parse_minor(digits, "") or 0)
            except TillError as exc:
                p.ids.message.text = str(exc)
                self.mark_dirty()
                return
            p.dismiss()
            opened()
            self.poll_now()

        pad.on_ok = ok
        pad.bind(on_dismiss=self._dismissed)
        pad.open()
        Clock.schedule_once(lambda _dt: self.mark_dirty(), 0.3)

    def ask_text(self, title: str, on_ok: Callable[[str, TextPad], None]) -> None:
        pad = TextPad(title=title)
        pad.on_ok = on_ok
        pad.bind(on_dismiss=self._dismissed)
        pad.open()
        Clock.schedule_once(lambda _dt: self.mark_dirty(), 0.3)

    def _dismissed(self, *_: Any) -> None:  # noqa: ANN401
        # must return None: a truthy return from on_dismiss keeps the pop-up open
        Clock.schedule_once(lambda _dt: self.mark_dirty(), 0)

    def set_language(self, lang: str) -> None:
        """Switch language now and keep it (``[ui] lang`` in tillbox.toml)."""
        config = self.data_dir.load_config()
        config.update("ui", lang=lang)
        self.data_dir.save_config(config)
        self.lang = lang
        self.root.ids.status.show(getattr(self, "_status_info", {}))
        self.root.ids.sm.current_screen.refresh()
        self.mark_dirty()

    # -- status ---------------------------------------------------------------------------
    def poll_now(self) -> None:
        if self._polling:
            return
        self._polling = True

        def done(info: dict[str, Any]) -> None:
            self._polling = False
            self.device_states = info["states"]
            self.sync = info["sync"]
            self.exposure = info["exposure_minor"]
            self._status_info = info
            self.root.ids.status.show(info)
            self.facts["status"] = {
                "online": bool(info["sync"].online),
                "queued_events": info["sync"].waiting,
                "agent_running": info["sync"].agent_running,
                "devices": {k: s.ok for k, s in info["states"].items()},
                "on_battery": bool(
                    info["states"].get("gpio") and info["states"]["gpio"].detail.get("on_battery")
                ),
            }
            self.mark_dirty()

        self.root.ids.status.show({})
        self.hub.poll(done)

    def mark_dirty(self) -> None:
        self._dirty = True

    def _screenshot_request(self) -> None:
        """Test-only: ``<probe>.shot`` names a PNG to save of the current frame.

        Taken by Kivy (glReadPixels) because some virtual X servers show a GL window's
        pixels garbled to ``xwd``; the file appears in ``shots`` when written.
        """
        request = self._probe.with_name(self._probe.name + ".shot")
        try:
            target = request.read_text().strip()
            request.unlink()
        except OSError:
            return
        if target:
            written = Window.screenshot(name=target + ".tmp.png")
            if written:
                os.replace(written, target)
            self.facts.setdefault("shots", []).append(target)

    def _write_probe(self) -> None:
        # Layout settles a frame or two after a change, so snapshot every tick (with the
        # frame number, so a reader can tell a fresh snapshot from a stale one).
        if self._probe is None or self.root is None:
            return
        self._screenshot_request()
        facts = {
            **self.facts,
            "screen": self.root.ids.sm.current,
            "lang": self.lang,
            "frame": Clock.frames,
            "pid": os.getpid(),
            "popup": any(isinstance(w, ModalView) for w in Window.children),
        }
        text = probe.encode(probe.snapshot(Window, facts))
        if text != self._last_probe:
            self._last_probe = text
            probe.write(self._probe, text)
