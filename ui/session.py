"""The cashier's session: the cart, the payment, the refund and the shift, without Kivy.

This is the whole "view model". It holds what is on the screen (the cart lines, the
promo code, the idempotency key of the sale being paid) and asks the core for
everything that is a rule: prices, taxes, totals, limits, what can be refunded.
It runs on the UI thread with the UI thread's own :class:`~appliance.till.Till`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from appliance import crossrefund, queries, refund_scan
from appliance.catalog import Item
from appliance.errors import RuleViolation, TillError
from appliance.formats import receipt as receipt_sig
from appliance.pricing import CartLine, Quote
from appliance.saleopen import SaleMark
from appliance.till import RefundResult, SaleResult, Till
from ui import bookingdesk, eventpick


class SelftestCheck(Protocol):
    """What the gate reads of one self-test check (compliance.selftest.Check)."""

    name: str
    result: str
    fatal: bool
    value: Any
    fix: str


class SelftestReport(Protocol):
    """What the gate reads of a self-test run (compliance.selftest.SelftestReport)."""

    @property
    def checks(self) -> Sequence[SelftestCheck]: ...
    @property
    def recorded_seq(self) -> int | None: ...
    @property
    def record_problem(self) -> str: ...


@dataclass
class Gate:
    """What the start screen shows about the self-test gate (the rule is the core's)."""

    ran: bool = False
    blocked: bool = False
    reason: str = ""
    failed: list[str] = field(default_factory=list)
    overridden: bool = False


@dataclass(frozen=True)
class ForeignReceipt:
    """A receipt of another till of the roster, proved genuine by the core
    (:func:`appliance.crossrefund.check_receipt`), and what this till refunded of it."""

    payload: str  # the scanned text: the core checks it again when refunding
    sale: crossrefund.ForeignSale
    refunded: dict[int, int]  # rate_bp -> gross this till already refunded of it

    @property
    def total_minor(self) -> int:
        return sum(gross for _bp, gross in self.sale.totals)

    def rates(self) -> list[tuple[int, int, int]]:
        """(rate_bp, gross the receipt states, what is left to refund at this till)."""
        left = self.sale.left(self.refunded)
        return [(bp, gross, max(0, left[bp])) for bp, gross in self.sale.totals]

    @property
    def left_minor(self) -> int:
        return sum(left for _bp, _gross, left in self.rates())


class Session:
    def __init__(self, till: Till) -> None:
        self.till = till
        self.cart: list[CartLine] = []
        self.promo: str | None = None
        self.key = self._new_key()
        self._unrecorded = ""  # why selling is blocked when the log holds no verdict
        self._unrecorded_failed: list[str] = []
        self._overridden_unrecorded = False
        self.last_sale: SaleResult | None = None
        # a booking paid at pickup, waiting for its payment on the pay screen: (booking, via)
        self.pickup: tuple[Any, str] | None = None
        self._sale_mark = SaleMark(till.data_dir)

    @staticmethod
    def _new_key() -> str:
        return f"kiosk-{uuid.uuid4()}"

    # -- catalog ---------------------------------------------------------------------------
    def categories(self) -> list[str]:
        return sorted({item.category for item in self.till.catalog().items.values()})

    def products(self, category: str | None = None) -> list[Item]:
        items = self.till.catalog().items.values()
        return [i for i in items if category in (None, "", "all", i.category)]

    def engravable(self) -> list[Item]:
        return [i for i in self.till.catalog().items.values() if i.engravable]

    def price(self, sku: str) -> str:
        return self.till.money(self.till.catalog().item(sku).price_minor)

    # -- the cart --------------------------------------------------------------------------
    def _changed(self) -> None:
        """Any change to the cart is a new sale: a new idempotency key."""
        self.key = self._new_key()
        self._mark_sale()

    def _mark_sale(self) -> None:
        """Let other processes see whether a sale is open (an update waits for it)."""
        try:
            self._sale_mark.set(bool(self.cart) or self.pickup is not None)
        except OSError:
            pass  # a sale is never refused for this; an update only waits less for it

    def add(self, sku: str, personalisation: dict[str, Any] | None = None) -> None:
        self.till.catalog().item(sku)  # an unknown SKU is refused here, with the reason
        if personalisation is None:
            for index, line in enumerate(self.cart):
                if line.sku == sku and line.personalisation is None:
                    self.cart[index] = CartLine(sku, line.qty + 1)
                    self._changed()
                    return
        self.cart.append(CartLine(sku, 1, personalisation))
        self._changed()

    def bump(self, index: int, delta: int) -> None:
        line = self.cart[index]
        if line.personalisation is not None and delta > 0:
            raise RuleViolation(
                "a personalised item is made once per order; personalise "
                "another one from the Personalise screen"
            )
        qty = line.qty + delta
        if qty <= 0:
            del self.cart[index]
        else:
            self.cart[index] = CartLine(line.sku, qty, line.personalisation)
        self._changed()

    def remove(self, index: int) -> None:
        del self.cart[index]
        self._changed()

    def clear(self) -> None:
        self.cart = []
        self.promo = None
        self._changed()

    def set_promo(self, code: str | None) -> None:
        """Apply a promo code; the core refuses an unknown one (and the cart keeps none)."""
        code = (code or "").strip().upper() or None
        if code and self.cart:
            self.till.quote(self.cart, code)
        elif code:
            # no cart to price yet: check the code exists with any item
            first = next(iter(self.till.catalog().items))
            self.till.quote([CartLine(first, 1)], code)
        self.promo = code
        self._changed()

    def quote(self) -> Quote | None:
        if self.pickup is not None:  # what the booking is sold as; no promo code at pickup
            return self.till.quote(bookingdesk.pickup_cart(self.till, self.pickup[0]))
        if not self.cart:
            return None
        return self.till.quote(self.cart, self.promo)

    # -- paying ----------------------------------------------------------------------------
    def due(self, method: str) -> int:
        quote = self.quote()
        return quote.due_minor(method) if quote else 0

    def quick_tenders(self) -> list[int]:
        """Exact cash due, then the next banknotes above it (appliance.tender)."""
        from appliance.tender import quick_tenders

        quote = self.quote()
        return quick_tenders(quote.due_minor("cash"), quote.profile.currency) if quote else []

    def card_refusal(self) -> str | None:
        """Why a card payment would be refused now (the core's words), or None."""
        quote = self.quote()
        if quote is None:
            return None
        try:
            self.till.check_card_limits(quote.due_minor("card"))
        except TillError as exc:
            return str(exc)
        return None

    def pay(self, method: str, tendered: int | None = None) -> SaleResult:
        """Record the sale durably. Retrying with the same cart replays, never charges twice.

        With a booking waiting for its payment, the sale is the booking's: it is handed
        over in the same transaction (the core refuses a second hand-over)."""
        self.require_open_gate()
        if self.pickup is not None:
            booking, via = self.pickup
            done = bookingdesk.pay_pickup(self.till, booking, via, method, tendered)
            self.pickup = None
            self._mark_sale()
            self.last_sale = done["sale"]
            return done["sale"]
        result = self.till.sell(
            self.cart, method, tendered=tendered, promo_code=self.promo, idempotency_key=self.key
        )
        self.last_sale = result
        self.cart = []
        self.promo = None
        self._mark_sale()
        # the key stays until the cart changes: a late second tap replays this sale
        return result

    # -- the event the till trades at (the pick is the core's: ui.eventpick) ---------------
    def event_status(self) -> eventpick.EventStatus:
        return eventpick.status(self.till)

    def event_choices(self) -> tuple[Any, ...]:  # appliance.formats.region.ScheduledEvent
        return eventpick.choices(self.till)

    def choose_event(self, event_id: str) -> None:
        """The cashier's answer (``event.chosen``); the core refuses an unknown event."""
        eventpick.choose(self.till, event_id)

    # -- bookings (the rules are the core's: ui.bookingdesk, appliance.bookings) -----------
    def has_bookings(self) -> bool:
        return bookingdesk.held(self.till)

    def bookings(self, name: str = "") -> list[bookingdesk.BookingRow]:
        return bookingdesk.rows(self.till, name)

    def find_booking(
        self, *, qr: str | None = None, number: int | None = None, name: str | None = None
    ) -> tuple[Any, str]:  # (appliance.formats.region.Booking, how it was found)
        return bookingdesk.find(self.till, qr=qr, number=number, name=name)

    def hand_over(self, booking: Any, via: str) -> dict[str, Any] | None:
        """A paid booking is handed over now, nothing charged (its ``booking.redeemed``
        payload); one paid at pickup waits for its payment (None: the pay screen next)."""
        self.require_open_gate()
        if booking.paid:
            return bookingdesk.hand_over_paid(self.till, booking, via)
        bookingdesk.pickup_cart(self.till, booking)  # a booking the catalog cannot sell: now
        self.pickup = (booking, via)
        self._mark_sale()
        return None

    def cancel_pickup(self) -> None:
        if self.pickup is not None:
            self.pickup = None
            self._mark_sale()

    # -- refunds ---------------------------------------------------------------------------
    def find_sale(self, text: str) -> dict[str, Any]:
        """A sale by receipt number or by the text of its receipt QR code."""
        ref = text.strip()
        if "*" in ref:
            ref = str(self.receipt_from_qr(ref))
        if not ref.isdigit():
            raise RuleViolation("type the receipt number (digits only) or scan the receipt")
        event = self.till.find_sale(ref)
        return event.payload

    def find_refund(self, text: str) -> dict[str, Any] | ForeignReceipt:
        """What a refund starts from: this till's sale (its payload, as :meth:`find_sale`),
        or another roster till's receipt (:class:`ForeignReceipt`). A receipt of a till
        the roster does not name is this till's question: "refund it there"."""
        ref = text.strip()
        if "*" in ref and self._other_roster_till(ref):
            roster = self.till.lists.roster(self.till.log.conn)
            sale = crossrefund.check_receipt(ref, self.till.tenant, roster)
            done = queries.foreign_refunded(self.till.log, sale.device_id, sale.receipt_no)
            return ForeignReceipt(ref, sale, done)
        return self.find_sale(ref)

    def _other_roster_till(self, payload: str) -> bool:
        try:
            fields, _sig, _signed = receipt_sig.parse_payload(payload)
        except ValueError:
            return False  # find_sale says why it is not a receipt
        if fields.device_id == self.till.device_id:
            return False
        roster = self.till.lists.roster(self.till.log.conn)
        return roster is not None and roster.device(fields.device_id) is not None

    def receipt_from_qr(self, payload: str) -> int:
        """The sale's receipt number from a scanned receipt QR (the core's policy:
        :func:`appliance.refund_scan.receipt_from_qr`)."""
        return refund_scan.receipt_from_qr(self.till, payload)

    def refund(self, receipt_no: int, items: list[tuple[str, int]]) -> RefundResult:
        self.require_open_gate()
        if not items:
            raise RuleViolation("choose at least one item to refund (tap + on its line)")
        return self.till.refund(receipt_no, items)

    def refund_foreign(
        self, receipt: ForeignReceipt, items: list[tuple[str, int]] | None
    ) -> RefundResult:
        """Refund another till's receipt: the chosen items from this till's catalog, or
        (``None``) all that is left of it here. The core checks the receipt again."""
        self.require_open_gate()
        if items is not None and not items:
            raise RuleViolation(
                "choose at least one item to refund (tap + on its line), or refund all that is left"
            )
        return refund_scan.refund_by_receipt(self.till, receipt.payload, items)

    def refund_prices(self, receipt: ForeignReceipt) -> list[tuple[Item, int, int]]:
        """(item, gross now, rate_bp) of the catalog's items at the receipt's tax rates:
        what the cashier may give back against another till's receipt (it lists no items;
        the core prices and bounds the refund)."""
        rates = {bp for bp, _gross, left in receipt.rates() if left > 0}
        out = []
        for item in self.till.catalog().items.values():
            line = self.till.quote([CartLine(item.sku, 1)]).lines[0]
            if line.rate_bp in rates:
                out.append((item, line.gross_minor, line.rate_bp))
        return out

    # -- shifts ----------------------------------------------------------------------------
    def shift(self) -> int | None:
        return self.till.current_shift()

    def open_shift(self, float_minor: int = 0) -> int:
        return self.till.open_shift(float_minor).payload["shift_no"]

    def close_shift(self) -> dict[str, Any]:
        return self.till.close_shift().payload["z_report"]

    def z_lines(self, z: dict[str, Any], money: Callable[[int], str]) -> list[str]:
        """The Z report as lines (screen and paper); amounts through ``money(minor)``."""
        lines = [f"Z report - shift {z['shift_no']}", f"Till {self.till.device_id}", ""]
        lines.append(f"Sales: {z['sales_count']}   Refunds: {z['refunds_count']}")
        for p in z["payments"]:
            lines.append(f"  {p['method']:<6} {p['count']:>4}  {money(p['total_minor'])}")
        for r in z["refunds"]:
            lines.append(f"  refund {r['method']:<6} {r['count']:>3}  {money(-r['total_minor'])}")
        lines.append("")
        for t in z["taxes"]:
            lines.append(
                f"  tax {t['rate']:<9} gross {money(t['gross_minor'])}  tax {money(t['tax_minor'])}"
            )
        lines.append("")
        lines.append(f"Gross {money(z['gross_minor'])}   Tax {money(z['tax_minor'])}")
        if z.get("cash_rounding_minor"):
            lines.append(f"Cash rounding {money(z['cash_rounding_minor'])}")
        lines.append(f"Takings {money(z['takings_minor'])}")
        if "expected_cash_minor" in z:
            lines.append(
                f"Cash: float {money(z['opening_float_minor'])} + cash takings = "
                f"{money(z['expected_cash_minor'])} in the drawer"
            )
        return lines

    # -- the self-test gate ----------------------------------------------------------------
    # The rule (a fatal check failed in the latest recorded self-test and no override was
    # logged after it) is the core's: appliance.gate, enforced by Till.sell and refund.
    # The session only adds what the log cannot know: a self-test that could not run or
    # whose result could not be recorded.
    def gate(self) -> Gate:
        if self._unrecorded:
            return Gate(True, True, self._unrecorded, list(self._unrecorded_failed))
        core = self.till.selftest_gate()
        return Gate(
            core.ran,
            core.blocked,
            core.reason(),
            [c.name for c in core.failed],
            core.overridden or self._overridden_unrecorded,
        )

    def apply_selftest(self, report: SelftestReport) -> Gate:
        failed = [c for c in report.checks if c.fatal and c.result == "fail"]
        self._unrecorded, self._unrecorded_failed = "", []
        if failed and not report.recorded_seq:
            why = "; ".join(f"{c.name}: {c.value} ({c.fix})" for c in failed)
            self._unrecorded = f"{why}; not recorded: {report.record_problem}"
            self._unrecorded_failed = [c.name for c in failed]
        return self.gate()

    def selftest_unavailable(self, message: str) -> Gate:
        """The self-test itself could not run: that is a fatal failure too."""
        self._unrecorded = f"the self-test could not run: {message}"
        self._unrecorded_failed = ["selftest"]
        return self.gate()

    def override(self, pin: str) -> Gate:
        """A technician lets the till trade despite failed checks; the core logs it."""
        if self._unrecorded:
            self.till.override_selftest(
                pin, failed=self._unrecorded_failed, reason=self._unrecorded[:500]
            )
            self._unrecorded, self._unrecorded_failed = "", []
            self._overridden_unrecorded = True
        else:
            self.till.override_selftest(pin)
        return self.gate()

    def require_open_gate(self) -> None:
        """Only the kiosk-local block; the core refuses the rest inside sell/refund."""
        if self._unrecorded:
            raise RuleViolation(
                f"selling is blocked by the self-test: {self._unrecorded}; "
                "fix it, or a technician can override with the PIN"
            )
