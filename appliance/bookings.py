"""Bookings at the till: the list for this stall, finding one, handing it over once.

The region's signed bookings list (:mod:`appliance.region`) says who booked what and
whether it is paid. A cashier finds a booking by scanning the customer's code (TBB1,
signed by the region: :func:`appliance.formats.region.open_booking_qr`), by its number,
or by the name it was booked under, and redeems it (``booking.redeemed``):

* **paid online**: never charged again. The redemption records ``due_minor`` 0 and no
  sale; the goods leave this till's stock.
* **pay at pickup**: the redemption is a sale (``sale.completed`` with ``booking_id``),
  paid by cash or card as any sale, in the same transaction as the redemption.
* **personalised**: an item with engraving text becomes a personalised line (its
  ``personalisation.text``), the line the engraving service
  (:mod:`appliance.services.engraving`) and the kiosk's engrave screen work from.
* **once per till**: a second redemption of the same booking on this till is refused.
  Two tills that redeem it while both are offline cannot know of each other: the region
  flags it (``edge/reconcile.py``); nothing is silently doubled.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance import projections, region
from appliance.catalog import Catalog
from appliance.errors import NotFound, RuleViolation
from appliance.formats import region as fmt
from appliance.pricing import CartLine

if TYPE_CHECKING:
    from appliance.till import Till

VIA = ("qr", "number", "name")


@dataclass(frozen=True)
class BookingView:
    booking: fmt.Booking
    redeemed_seq: int | None  # this till's redemption, if any

    def to_json(self) -> dict[str, Any]:
        return {
            **self.booking.to_json(),
            "redeemed": self.redeemed_seq is not None,
            "redeemed_seq": self.redeemed_seq,
        }


def _require(till: Till) -> fmt.Bookings:
    found = region.bookings(till)
    if found is None:
        raise RuleViolation(
            "no bookings have reached this till; sync (`tillbox sync --once`) or apply the "
            "region's bookings file (`tillbox region apply FILE`)"
        )
    return found


def for_this_stall(till: Till, bookings: fmt.Bookings) -> list[fmt.Booking]:
    """The bookings this till may hand over: its stall's and those for any stall (all of
    them when the roster names no stall for this till)."""
    stall = till.lists.stall(till.log.conn, till.device_id)
    return [b for b in bookings.bookings if not stall or b.stall in ("", stall)]


def listing(till: Till) -> list[BookingView]:
    redeemed = projections.redeemed_bookings(till.log.conn)
    return [BookingView(b, redeemed.get(b.id)) for b in for_this_stall(till, _require(till))]


def find(
    till: Till, *, qr: str | None = None, number: int | None = None, name: str | None = None
) -> tuple[fmt.Booking, str]:
    """(the booking, how it was found: qr|number|name); one line to act on otherwise."""
    here = for_this_stall(till, _require(till))
    if qr is not None:
        try:
            ref = fmt.open_booking_qr(qr, region.region_key(till))
        except ValueError as exc:
            raise RuleViolation(f"booking code refused: {exc}; search by number instead") from None
        if ref.tenant != till.tenant:
            raise RuleViolation(
                f"that booking is for tenant {ref.tenant}, not this till's ({till.tenant})"
            )
        match = [b for b in here if b.id == ref.booking_id and b.number == ref.number]
        if not match:
            raise NotFound(
                f"booking {ref.number} is not in this stall's bookings (version "
                f"{region.version(till.log.conn, fmt.BOOKINGS)}); sync and scan again"
            )
        return match[0], "qr"
    if number is not None:
        match = [b for b in here if b.number == number]
        if not match:
            raise NotFound(f"no booking number {number} for this stall; check the number")
        return match[0], "number"
    if name is not None:
        wanted = " ".join(name.split()).casefold()
        if len(wanted) < 2:
            raise RuleViolation("give at least 2 letters of the name to search for")
        match = [b for b in here if wanted in " ".join(b.name.split()).casefold()]
        if not match:
            raise NotFound(f"no booking for this stall under a name with {name!r}")
        if len(match) > 1:
            shown = ", ".join(f"{b.number} ({b.name})" for b in match[:5])
            raise RuleViolation(
                f"{len(match)} bookings match {name!r}: {shown}; redeem by --number"
            )
        return match[0], "name"
    raise RuleViolation("find the booking by --qr PAYLOAD, --number N or --name TEXT")


def cart_of(till: Till, booking: fmt.Booking) -> list[CartLine]:
    """The booking's items as cart lines; an engraving makes a personalised line."""
    catalog = till.catalog()
    cart = []
    for item in booking.items:
        known = catalog.item(item.sku)  # an unknown SKU: refused with the catalog's fix
        if item.engraving is None:
            cart.append(CartLine(item.sku, item.qty))
            continue
        if not known.engravable:
            raise RuleViolation(
                f"booking {booking.number} asks to engrave {item.sku}, which this till's "
                "catalog does not engrave; hand it over without, or ask the region to fix it"
            )
        # one personalised line per piece: each is engraved (and approved) on its own
        personal = {"text": item.engraving, "booking_id": booking.id}
        cart.extend(CartLine(item.sku, 1, dict(personal)) for _ in range(item.qty))
    return cart


def redeem(
    till: Till,
    booking: fmt.Booking,
    via: str,
    *,
    method: str | None = None,
    tendered: int | None = None,
) -> dict[str, Any]:
    """Hand the booking over: the ``booking.redeemed`` payload (and the sale's, if any)."""
    if via not in VIA:
        raise RuleViolation(f"a booking is found by {', '.join(VIA)}, not {via!r}")
    if booking.paid and (method is not None or tendered is not None):
        raise RuleViolation(
            f"booking {booking.number} is paid online; it is never charged again (leave out "
            "--pay and --tendered)"
        )
    if not booking.paid and method is None:
        raise RuleViolation(
            f"booking {booking.number} is paid at pickup; take the payment: --pay cash|card"
        )
    version = region.version(till.log.conn, fmt.BOOKINGS)
    event, sale = till.redeem_booking(
        booking, cart_of(till, booking), via, version, method=method, tendered=tendered
    )
    return {"redemption": event, "sale": sale}


# -- what a redemption records (Till.redeem_booking, in its transaction) ---------------------
def require_not_redeemed(conn: sqlite3.Connection, booking: fmt.Booking) -> None:
    """Refuse a booking this till already handed over."""
    done = projections.booking_redemption(conn, booking.id)
    if done is not None:
        raise RuleViolation(
            f"booking {booking.number} was already handed over at this till (seq "
            f"{done[0]}); do not hand it over again"
        )


def handed_over(catalog: Catalog, cart: Sequence[CartLine]) -> list[dict[str, Any]]:
    """The ``booking.redeemed`` lines of a booking paid online: the goods, no amounts."""
    lines = []
    for number, entry in enumerate(cart, start=1):
        line = {
            "line": number,
            "sku": entry.sku,
            "name": catalog.item(entry.sku).name,
            "qty": entry.qty,
        }
        if entry.personalisation is not None:
            line["personalisation"] = entry.personalisation
        lines.append(line)
    return lines


def handed_over_sold(sale_lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``booking.redeemed`` lines of a booking paid at pickup: its sale's, no amounts."""
    return [
        {
            **{k: ln[k] for k in ("line", "sku", "name", "qty")},
            **({"personalisation": ln["personalisation"]} if "personalisation" in ln else {}),
        }
        for ln in sale_lines
    ]
