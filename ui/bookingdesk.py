"""What the Bookings screen shows and does, without Kivy: the core's bookings, as rows.

The rules are the core's (:mod:`appliance.bookings`): which bookings this stall may hand
over, finding one by its signed code, number or name, handing it over once (a paid one
never charged, one paid at pickup as a sale, engraving text on personalised lines).
This module only turns them into what a cashier reads, and narrows the list while the
cashier types (a display filter; finding is still the core's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance import bookings, region
from appliance.errors import TillError
from appliance.formats import region as fmt
from appliance.till import Till


@dataclass(frozen=True)
class BookingRow:
    booking: fmt.Booking
    items: str  # "1 x Engraved oak board "ADA & MAX", 2 x Wildflower honey 250 g"
    redeemed: bool  # handed over at this till

    @property
    def engravings(self) -> list[str]:
        return [i.engraving for i in self.booking.items if i.engraving is not None]


def held(till: Till) -> bool:
    """True once the region's bookings list reached this till (the screen is offered)."""
    return region.version(till.log.conn, fmt.BOOKINGS) > 0


def items_text(till: Till, booking: fmt.Booking) -> str:
    try:
        names = {sku: item.name for sku, item in till.catalog().items.items()}
    except TillError:
        names = {}
    parts = []
    for item in booking.items:
        part = f"{item.qty} x {names.get(item.sku, item.sku)}"
        if item.engraving is not None:
            part += f' "{item.engraving}"'
        parts.append(part)
    return ", ".join(parts)


def rows(till: Till, name: str = "") -> list[BookingRow]:
    """This stall's bookings (``name``: only those whose name has it, as the core matches
    a name: case and spacing aside)."""
    wanted = " ".join(name.split()).casefold()
    out = []
    for view in bookings.listing(till):
        b = view.booking
        if wanted and wanted not in " ".join(b.name.split()).casefold():
            continue
        out.append(BookingRow(b, items_text(till, b), view.redeemed_seq is not None))
    return out


def find(
    till: Till, *, qr: str | None = None, number: int | None = None, name: str | None = None
) -> tuple[fmt.Booking, str]:
    """(the booking, how it was found); the core's one-line refusal otherwise."""
    return bookings.find(till, qr=qr, number=number, name=name)


def hand_over_paid(till: Till, booking: fmt.Booking, via: str) -> dict[str, Any]:
    """Hand a paid booking over: nothing is charged (the ``booking.redeemed`` payload)."""
    return bookings.redeem(till, booking, via)["redemption"].payload


def pickup_cart(till: Till, booking: fmt.Booking) -> list[Any]:  # appliance.pricing.CartLine
    """What a pay-at-pickup booking is sold as (personalised lines carry the engraving)."""
    return bookings.cart_of(till, booking)


def pay_pickup(
    till: Till, booking: fmt.Booking, via: str, method: str, tendered: int | None
) -> dict[str, Any]:
    """Hand a pay-at-pickup booking over as a sale: ``{"redemption", "sale"}``."""
    return bookings.redeem(till, booking, via, method=method, tendered=tendered)
