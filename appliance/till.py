"""The till: every business rule the CLI and the kiosk share, behind one front door.

A :class:`Till` owns one data folder. Its write methods run in one log
transaction each: read the projections, check the rules, append the event(s),
commit. When a method returns, the result is durable; a method that raises
has written nothing.

The methods open the transactions; the rules they apply have modules of their own,
which read through the transaction's connection and append only to it:

* the event traded at, and the tax profile it sets: :mod:`appliance.tradingevent`
* how a sale is paid (cash tendered, the offline card limits): :mod:`appliance.payment`
* a refund's amounts: :mod:`appliance.refundplan`, of another till's receipt
  :mod:`appliance.crossrefund`
* a booking handed over: :mod:`appliance.bookings`
* shifts and the Z report: :mod:`appliance.shifts`
* the self-test gate, a record's shape and the override: :mod:`appliance.gate`
* what selling and refunding return: :mod:`appliance.results` (imported from here)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from appliance import (
    bookings,
    crossrefund,
    gate,
    keys,
    payment,
    projections,
    queries,
    refundplan,
    region,
    shifts,
    stallstock,
    sync_state,
    techpin,
    tradingevent,
)
from appliance import events as ev
from appliance import log as eventlog
from appliance import schedule as sched
from appliance.catalog import Catalog, TaxProfile, demo_catalog
from appliance.crossrefund import ForeignSale
from appliance.datadir import Config, DataDir
from appliance.errors import NotFound, RuleViolation, TillError
from appliance.formats.canonical import CanonicalFormError
from appliance.formats.chain import ChainReport, Event
from appliance.formats.region import Booking
from appliance.identifiers import check_device_id, check_identifier
from appliance.ids import new_id
from appliance.log import EventLog, Transaction
from appliance.money import format_minor, round_to_step
from appliance.pricing import CartLine, Quote, price_cart
from appliance.results import RefundResult, SaleResult

__all__ = ["RefundResult", "SaleResult", "Till"]  # the results are imported from here


class Till:
    def __init__(self, data_dir: DataDir, log: EventLog) -> None:
        self.data_dir = data_dir
        self.log = log
        self.config = data_dir.load_config()
        self._catalog: tuple[str, Catalog] | None = None
        self.lists = region.Lists()  # the region's schedule and roster, parsed once each
        self._tenant: str | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def open(cls, data_dir: DataDir) -> Till:
        data_dir.require()
        return cls(data_dir, EventLog.open(data_dir.log_path, projections.apply))

    @classmethod
    def init(
        cls, data_dir: DataDir, device_id: str, *, demo: bool = False, tenant: str = "demo"
    ) -> Till:
        """Create a till: key pair, log (with its first event), catalog, then the config."""
        check_device_id(device_id, "device id (it names the device's MQTT topic)")
        check_identifier(tenant, "tenant")
        if data_dir.exists() or data_dir.log_path.exists():
            raise TillError(
                f"{data_dir.root} already holds a till; choose an empty --data-dir "
                "(a device keeps its log and key for life)"
            )
        config = Config.initial(device_id, tenant)
        if demo:
            config.update(
                "shop",
                name="Riverside Makers' Stall",
                location="Riverside Market",
                permit="DEMO-PERMIT-2026",
            )
        data_dir.root.mkdir(parents=True, exist_ok=True)
        data_dir.media_dir.mkdir(exist_ok=True)
        verify_key = keys.generate(data_dir.private_key_path, data_dir.public_key_path)
        log = EventLog.create(data_dir.log_path, device_id, projections.apply)
        with log.transaction() as tx:
            tx.append(
                ev.DEVICE_INITIALISED,
                {"device_id": device_id, "tenant": tenant, "public_key": verify_key.encode().hex()},
            )
            if demo:
                tx.append(ev.CATALOG_APPLIED, {**demo_catalog().to_json(), "source": "demo"})
        data_dir.save_config(config)
        return cls(data_dir, log)

    def close(self) -> None:
        self.log.close()

    def __enter__(self) -> Till:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def device_id(self) -> str:
        return self.log.device_id

    def public_key_hex(self) -> str:
        return self.data_dir.public_key_path.read_text().strip()

    @property
    def tenant(self) -> str:
        """The tenant the log was created for (its first event's; the config can change)."""
        if self._tenant is None:
            first = queries.genesis_payload(self.log) or {}
            self._tenant = str(first.get("tenant", ""))
        return self._tenant

    # -- reading ---------------------------------------------------------------------------
    def catalog(self) -> Catalog:
        return self._catalog_at(queries.catalog_version(self.log))

    def _catalog_at(self, version: str | None) -> Catalog:
        """The parsed catalog, re-read from the projection only when its version changed."""
        if version is None:
            raise RuleViolation(
                "no catalog has been applied to this till; apply one with "
                "`tillbox catalog apply FILE` (or init with --demo)"
            )
        if self._catalog is None or self._catalog[0] != version:
            body = queries.catalog_body(self.log)
            self._catalog = (version, Catalog.from_json(json.loads(body)))
        return self._catalog[1]

    def profile(self) -> TaxProfile:
        """The tax profile a sale made now is taxed under: the current event's, else the
        shop's (``[shop] tax_profile``)."""
        pick, _current, _version = tradingevent.context(self, self.log.conn, eventlog.now_ms())
        return tradingevent.profile_for(self, self.catalog(), pick)

    def stock(self) -> dict[str, int]:
        return queries.stock(self.log)

    def stall_stock(self, sku: str) -> stallstock.StallStock | None:
        """``sku``'s stock at this till's stall: ``(qty, synced_ms)``, this till's own count
        plus the other tills' movements the region last sent (``appliance.stallstock``);
        None when the SKU's stock is not tracked."""
        return stallstock.stall_stock(self, sku)

    def stall_stocks(self) -> dict[str, stallstock.StallStock]:
        """:meth:`stall_stock` of every tracked SKU, by SKU."""
        return stallstock.stall_stocks(self)

    def current_shift(self) -> int | None:
        return queries.open_shift_no(self.log)

    def quote(self, cart: Sequence[CartLine], promo_code: str | None = None) -> Quote:
        pick = self.current_event()
        catalog = self.catalog()
        profile = tradingevent.profile_for(self, catalog, pick)
        return price_cart(catalog, profile, cart, promo_code, event_id=pick.event_id)

    def money(self, minor: int) -> str:
        return format_minor(minor, self.profile().currency)

    def find_sale(self, ref: str | int) -> Event:
        """A sale by its id or its receipt number."""
        text = str(ref).strip()
        if text.isdigit():
            value = int(text) if len(text) <= 15 else text
            seq = queries.sale_seq_by_receipt(self.log, value)
        else:
            seq = queries.sale_seq_by_id(self.log, text)
        if seq is None:
            raise NotFound(
                f"no sale {text} on this till; check the receipt number "
                "(`tillbox log export` lists every sale)"
            )
        event = self.log.event(seq)
        assert event is not None  # the projection only names seqs that exist
        return event

    def card_exposure_minor(self) -> int:
        """Card money taken but not yet confirmed by the region (offline risk)."""
        acked = sync_state.read(self.data_dir.sync_dir).acked_seq
        return queries.card_total_after(self.log, acked)

    def sync_view(self, now_ms: int | None = None) -> sync_state.SyncView:
        """What waits to sync, counted from this log, and whether the agent is alive."""
        return sync_state.view(
            self.data_dir.sync_dir,
            self.log.last()[0],
            interval_s=sync_state.interval_s(self.config.section("sync")),
            now_ms=now_ms,
        )

    def selftest_gate(self) -> gate.GateState:
        """May this till sell now, after its recorded self-tests (see appliance.gate)."""
        return gate.state(self.log.conn)

    def reprint_queue(self) -> list[int]:
        """Receipt numbers whose last print attempt failed, oldest first."""
        return queries.failed_receipts(self.log)

    def verify(self, since: int = 0) -> ChainReport:
        return self.log.verify(since)

    # -- the event the till trades at (appliance.tradingevent) -----------------------------
    def current_event(self, now_ms: int | None = None) -> sched.Pick:
        """Which event a sale made now belongs to, or what the cashier must be asked."""
        at = eventlog.now_ms() if now_ms is None else now_ms
        return tradingevent.context(self, self.log.conn, at)[0]

    def event_in_progress(self) -> dict[str, Any] | None:
        """The ``event.started`` payload of the event the log says is in progress."""
        return projections.event_state(self.log.conn)[0]

    def choose_event(self, event_id: str) -> Event:
        """The cashier's answer when asked: an event of the schedule, or "" for none."""
        with self.log.transaction() as tx:
            return tradingevent.choose(self, tx, event_id)

    # -- selling ---------------------------------------------------------------------------
    def _next_receipt_no(self, tx: Transaction) -> int:
        return (projections.last_receipt_no(tx.conn) or 0) + 1

    def check_card_limits(self, due_minor: int) -> None:
        """Raise with the reason when an offline card payment would exceed a limit."""
        payment.check_card_limits(self, due_minor)

    def sell(
        self,
        cart: Sequence[CartLine],
        method: str,
        *,
        tendered: int | None = None,
        promo_code: str | None = None,
        idempotency_key: str | None = None,
    ) -> SaleResult:
        """Record a completed sale durably; the receipt may be printed after this returns.

        Retrying with the same ``idempotency_key`` returns the first sale instead of
        charging twice (a double tap, or a kiosk restart between commit and screen).
        """
        key = idempotency_key or new_id()
        with self.log.transaction() as tx:
            return self._sell(tx, cart, method, tendered, promo_code, key)

    def _sell(
        self,
        tx: Transaction,
        cart: Sequence[CartLine],
        method: str,
        tendered: int | None,
        promo_code: str | None,
        key: str,
        extra: dict[str, Any] | None = None,
    ) -> SaleResult:
        """The sale inside the caller's transaction (``extra``: more payload keys, such as
        the booking a pickup pays for)."""
        # One round trip for everything a sale needs to know: the cashier's hot path.
        seen, shift, last_receipt, catalog_version = projections.sale_context(tx.conn, key)
        if seen is not None:
            event = self.log.event(seen)
            assert event is not None
            return SaleResult(event, replayed=True)
        gate.require_open(tx.conn)
        if shift is None:
            shifts.require_open(self)  # raises with the fix
        catalog = self._catalog_at(catalog_version)
        pick = tradingevent.for_record(self, tx)
        profile = tradingevent.profile_for(self, catalog, pick)
        quote = price_cart(catalog, profile, cart, promo_code, event_id=pick.event_id)
        paid = payment.payment(self, quote, method, tendered)
        payload = {
            "sale_id": new_id(),
            "receipt_no": last_receipt + 1,
            "shift_no": shift,
            "idempotency_key": key,
            **quote.to_json(),
            "payment": paid,
            "event_id": pick.event_id,
            **(extra or {}),
        }
        try:
            return SaleResult(tx.append(ev.SALE_COMPLETED, payload))
        except CanonicalFormError as exc:
            raise RuleViolation(f"sale refused: {exc}") from None

    def refund(
        self, sale_ref: str | int, items: Sequence[tuple[str, int]] | None = None
    ) -> RefundResult:
        """Refund whole lines or quantities of a sale; never more than was sold."""
        with self.log.transaction() as tx:
            gate.require_open(tx.conn, "refunding")
            sale = self.find_sale(sale_ref)
            shift = shifts.require_open(self)
            p = sale.payload
            rows = projections.sale_lines(tx.conn, p["receipt_no"])
            amounts = refundplan.amounts(p, rows, items)
            pick = tradingevent.for_record(self, tx, ask=False)
            payload = {
                "refund_id": new_id(),
                "sale_id": p["sale_id"],
                "sale_receipt_no": p["receipt_no"],
                "receipt_no": self._next_receipt_no(tx),
                "shift_no": shift,
                "currency": p["currency"],
                "lines": amounts.lines,
                "taxes": amounts.taxes,
                "gross_minor": amounts.gross_minor,
                "total_minor": amounts.total_minor,
                "payment": {"method": p["payment"]["method"]},
                "event_id": pick.event_id,
            }
            return RefundResult(tx.append(ev.REFUND_ISSUED, payload))

    def refund_foreign(
        self, sale: ForeignSale, items: Sequence[tuple[str, int]] | None = None
    ) -> RefundResult:
        """Refund another till's verified receipt (appliance.crossrefund: the rules)."""
        with self.log.transaction() as tx:
            gate.require_open(tx.conn, "refunding")
            shift = shifts.require_open(self)
            catalog = self._catalog_at(queries.catalog_version(self.log))
            pick = tradingevent.for_record(self, tx, ask=False)
            profile = tradingevent.profile_for(self, catalog, pick)
            refunded = projections.foreign_refunded(tx.conn, sale.device_id, sale.receipt_no)
            lines, taxes = crossrefund.plan(sale, refunded, catalog, profile, items)
            gross = sum(t["gross_minor"] for t in taxes)
            step = profile.cash_rounding_minor if sale.method == "cash" else 0
            payload = {
                "refund_id": new_id(),
                "sale_id": "",  # not known here: the region links the refund by sale_*
                **sale.ref(),
                "receipt_no": self._next_receipt_no(tx),
                "shift_no": shift,
                "currency": sale.currency,
                "lines": lines,
                "taxes": taxes,
                "gross_minor": gross,
                "total_minor": round_to_step(gross, step),
                "payment": {"method": sale.method},
                "event_id": pick.event_id,
            }
            return RefundResult(tx.append(ev.REFUND_ISSUED, payload))

    # -- bookings (appliance.bookings: finding them, the list, the lines handed over) ------
    def redeem_booking(
        self,
        booking: Booking,
        cart: Sequence[CartLine],
        via: str,
        bookings_version: int,
        *,
        method: str | None = None,
        tendered: int | None = None,
    ) -> tuple[Event, SaleResult | None]:
        """Hand a booking over, once on this till: a paid one with nothing due, one paid at
        pickup as a sale in the same transaction. (``booking.redeemed``, and the sale.)"""
        with self.log.transaction() as tx:
            bookings.require_not_redeemed(tx.conn, booking)
            gate.require_open(tx.conn, "handing over bookings")
            shift = shifts.require_open(self)
            sale = None
            if booking.paid:
                pick = tradingevent.for_record(self, tx, ask=False)  # nothing is taxed here
                catalog = self._catalog_at(queries.catalog_version(self.log))
                lines = bookings.handed_over(catalog, cart)
                due, sale_id, receipt_no, event_id = 0, "", 0, pick.event_id
            else:
                assert method is not None
                sale = self._sell(
                    tx, cart, method, tendered, None, new_id(), {"booking_id": booking.id}
                )
                p = sale.payload
                lines = bookings.handed_over_sold(p["lines"])
                due, sale_id, receipt_no = p["payment"]["due_minor"], p["sale_id"], p["receipt_no"]
                event_id = p["event_id"]
            event = tx.append(
                ev.BOOKING_REDEEMED,
                {
                    "redemption_id": new_id(),
                    "booking_id": booking.id,
                    "booking_number": booking.number,
                    "payment": booking.payment,
                    "due_minor": due,
                    "sale_id": sale_id,
                    "receipt_no": receipt_no,
                    "lines": lines,
                    "event_id": event_id,
                    "shift_no": shift,
                    "via": via,
                    "bookings_version": bookings_version,
                },
            )
            return event, sale

    # -- shifts ----------------------------------------------------------------------------
    def open_shift(self, opening_float_minor: int = 0) -> Event:
        """Open a shift with the cash counted into the drawer (the Z report starts from it)."""
        shifts.check_opening_float(self, opening_float_minor)  # before the write lock
        with self.log.transaction() as tx:
            return shifts.record_open(self, tx, opening_float_minor)

    def z_report(self, shift_no: int) -> dict[str, Any]:
        return shifts.z_report(self.log, shift_no)

    def close_shift(self) -> Event:
        """Close the open shift; the Z report goes into the event, so it is in the log."""
        with self.log.transaction() as tx:
            return shifts.record_close(self, tx)

    # -- catalog and other events ----------------------------------------------------------
    def apply_catalog(self, data: dict[str, Any], source: str = "local") -> Event:
        catalog = Catalog.from_json(data)  # refuse a bad catalog before it reaches the log
        return self.log.append(ev.CATALOG_APPLIED, {**catalog.to_json(), "source": source})

    def record_selftest(self, payload: dict[str, Any]) -> Event:
        """Append a self-test verdict; its checks feed the sell path's gate."""
        gate.check_record(payload)
        try:
            return self.log.append(ev.SELFTEST_RECORDED, payload)
        except CanonicalFormError as exc:
            raise RuleViolation(f"self-test record refused: {exc}") from None

    def override_selftest(
        self, pin: str, *, failed: Sequence[str] | None = None, reason: str = ""
    ) -> Event:
        """A technician lets the till trade despite failed fatal checks; logged as an event.

        ``failed`` names what is overridden when the kiosk's self-test could not run at
        all (nothing recorded to override); by default, the checks the gate holds.
        """
        stored = techpin.configured_hash(self.data_dir.load_config())  # set while running
        if not stored:
            raise RuleViolation(
                "no technician PIN is set on this till; set one with "
                "`tillbox kiosk --set-technician-pin`"
            )
        if not techpin.verify_pin(pin, stored):  # before the write lock: PBKDF2 is slow
            raise RuleViolation("wrong technician PIN; nothing was recorded; try again")
        with self.log.transaction() as tx:
            return gate.record_override(tx, failed, reason)

    def record(self, type: str, payload: dict[str, Any]) -> Event:
        """Append a non-core event (driver, compliance, sync)."""
        if type in ev.CORE_TYPES:
            raise RuleViolation(f"{type} events are written by the till's own methods only")
        if not ev.valid_type_name(type):
            raise RuleViolation(f"event type {type!r} must be dotted lower-case, e.g. device.fault")
        try:
            return self.log.append(type, payload)
        except CanonicalFormError as exc:
            raise RuleViolation(f"event refused: {exc}") from None
