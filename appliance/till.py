"""The till: every business rule the CLI and the kiosk share.

A :class:`Till` owns one data folder. Its write methods run in one log
transaction each: read the projections, check the rules, append the event(s),
commit. When a method returns, the result is durable; a method that raises
has written nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appliance import (
    crossrefund,
    gate,
    keys,
    projections,
    queries,
    region,
    stallstock,
    sync_state,
    techpin,
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
from appliance.identifiers import check_identifier
from appliance.ids import new_id
from appliance.log import EventLog, Transaction
from appliance.money import div_round, format_minor, round_to_step
from appliance.pricing import CartLine, Quote, price_cart, taxes_by_rate

PAYMENT_METHODS = ("cash", "card")
MAX_FLOAT_MINOR = 10_000_000  # 100,000.00: far above any stall's drawer, below any overflow


@dataclass(frozen=True)
class SaleResult:
    event: Event
    replayed: bool = False  # True when the idempotency key matched an earlier sale

    @property
    def payload(self) -> dict[str, Any]:
        return self.event.payload

    def to_json(self) -> dict[str, Any]:
        p = self.payload
        return {
            "sale_id": p["sale_id"],
            "seq": self.event.seq,
            "receipt_no": p["receipt_no"],
            "shift_no": p["shift_no"],
            "idempotency_key": p["idempotency_key"],
            "currency": p["currency"],
            "total_minor": p["total_minor"],
            "tax_minor": p["tax_minor"],
            "discount_minor": p["discount_minor"],
            "due_minor": p["payment"]["due_minor"],
            "method": p["payment"]["method"],
            "tendered_minor": p["payment"].get("tendered_minor"),
            "change_minor": p["payment"].get("change_minor", 0),
            "lines": [
                {
                    k: ln[k]
                    for k in ("line", "sku", "name", "qty", "gross_minor", "tax_minor", "tax_rate")
                }
                for ln in p["lines"]
            ],
            "taxes": p["taxes"],
            "promotions": p["promotions"],
            "replayed": self.replayed,
        }


@dataclass(frozen=True)
class RefundResult:
    event: Event

    def to_json(self) -> dict[str, Any]:
        p = self.event.payload
        other = {k: p[k] for k in ("sale_device", "sale_event_ref") if k in p}
        return {
            **other,
            "sale_receipt_no": p["sale_receipt_no"],
            "event_id": p.get("event_id", ""),
            "refund_id": p["refund_id"],
            "sale_id": p["sale_id"],
            "seq": self.event.seq,
            "receipt_no": p["receipt_no"],
            "total_minor": p["total_minor"],
            "method": p["payment"]["method"],
            "currency": p["currency"],
            "lines": [
                {k: ln[k] for k in ("line", "sku", "qty", "gross_minor")} for ln in p["lines"]
            ],
        }


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
        check_identifier(device_id, "device id (it names the device's MQTT topic)")
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
        pick, _current, _version = self._event_context(self.log.conn, eventlog.now_ms())
        return self._profile_for(self.catalog(), pick)

    def _profile_for(self, catalog: Catalog, pick: sched.Pick) -> TaxProfile:
        if pick.event is None:
            return catalog.profile(self.config.section("shop")["tax_profile"])
        profile = catalog.tax_profiles.get(pick.event.tax_profile)
        if profile is None:
            raise RuleViolation(
                f"event {pick.event.id}'s tax profile {pick.event.tax_profile!r} is not in "
                "this till's catalog; apply the region's catalog that defines it"
            )
        return profile

    # -- the event the till trades at (appliance.schedule) ---------------------------------
    def _event_context(
        self, conn: Any, now_ms: int
    ) -> tuple[sched.Pick, dict[str, Any] | None, int]:
        """(the pick for ``now_ms``, the event in progress's ``event.started`` payload,
        the schedule's version); cheap when no schedule was ever applied."""
        schedule = self.lists.schedule(conn)
        if schedule is None:  # never had one (a schedule is replaced, never removed)
            return sched.Pick(sched.NO_SCHEDULE), None, 0
        current, choice = projections.event_state(conn)
        result, boot, last_ms = projections.clock_state(conn)
        confirmed = sched.clock_confirmed(result, boot, eventlog.current_boot_id(), last_ms, now_ms)
        stall = self.lists.stall(conn, self.device_id)
        pick = sched.pick(schedule, stall, now_ms, confirmed, sched.Choice.from_payload(choice))
        return pick, current, region.version(conn, "schedule")

    def current_event(self, now_ms: int | None = None) -> sched.Pick:
        """Which event a sale made now belongs to, or what the cashier must be asked."""
        at = eventlog.now_ms() if now_ms is None else now_ms
        return self._event_context(self.log.conn, at)[0]

    def event_in_progress(self) -> dict[str, Any] | None:
        """The ``event.started`` payload of the event the log says is in progress."""
        return projections.event_state(self.log.conn)[0]

    def choose_event(self, event_id: str) -> Event:
        """The cashier's answer when asked: an event of the schedule, or "" for none."""
        with self.log.transaction() as tx:
            pick, current, version = self._event_context(tx.conn, eventlog.now_ms())
            if pick.how == sched.NO_SCHEDULE:
                raise RuleViolation(
                    "no event schedule has been applied to this till; there is nothing to "
                    "choose (apply one with `tillbox event apply FILE`)"
                )
            if pick.how == sched.CLOCK:
                raise RuleViolation(
                    f"the confirmed clock says event {pick.event_id} is current; there is "
                    "nothing to choose"
                )
            assert pick.question is not None
            schedule = self.lists.schedule(tx.conn)
            assert schedule is not None
            chosen = schedule.event(event_id) if event_id else None
            stall = self.lists.stall(tx.conn, self.device_id)
            if event_id and (chosen is None or not chosen.for_stall(stall)):
                known = ", ".join(e.id for e in schedule.for_stall(stall)) or "none"
                raise NotFound(
                    f"event {event_id!r} is not in this stall's schedule (known: {known}); "
                    "choose one of them or --none"
                )
            event = tx.append(
                ev.EVENT_CHOSEN,
                {
                    "event_id": event_id,
                    "question": pick.question.to_json(),
                    "schedule_version": version,
                },
            )
            sched.observe(tx, sched.Pick(sched.CHOSEN, chosen, pick.question), current, version)
            return event

    def _trading_event(self, tx: Transaction, *, ask: bool = True) -> sched.Pick:
        """The pick for something recorded now, with the switch recorded before it.

        ``ask``: an open question refuses (a sale must know its tax profile). Without
        it (refunds: money back is never refused for this) the event in progress stays.
        """
        pick, current, version = self._event_context(tx.conn, eventlog.now_ms())
        if pick.how == sched.ASK:
            if ask:
                raise RuleViolation(_ask_message(pick))
            if current is None:
                return sched.Pick(sched.ASK, None, pick.question)
            schedule = self.lists.schedule(tx.conn)
            ongoing = schedule.event(current["event_id"]) if schedule else None
            return sched.Pick(sched.ASK, ongoing, pick.question)
        sched.observe(tx, pick, current, version)
        return pick

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
        return price_cart(
            catalog, self._profile_for(catalog, pick), cart, promo_code, event_id=pick.event_id
        )

    def money(self, minor: int) -> str:
        return format_minor(minor, self.profile().currency)

    def _currency(self) -> str:
        """The shop's currency, or "" before any catalog is applied (a message still reads)."""
        try:
            return self.profile().currency
        except TillError:
            return ""

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

    # -- selling ---------------------------------------------------------------------------
    def _next_receipt_no(self, tx: Transaction) -> int:
        return (projections.last_receipt_no(tx.conn) or 0) + 1

    def _require_shift(self) -> int:
        shift = self.current_shift()
        if shift is None:
            raise RuleViolation(
                "no shift is open; open one first (`tillbox shift open` or the Shift screen)"
            )
        return shift

    def check_card_limits(self, due_minor: int) -> None:
        """Raise with the reason when an offline card payment would exceed a limit."""
        pay = self.config.section("payment")
        per_sale = int(pay["card_offline_limit_minor"])
        per_device = int(pay["card_offline_device_limit_minor"])
        if due_minor > per_sale:
            raise RuleViolation(
                f"card payment of {self.money(due_minor)} is above the offline card limit of "
                f"{self.money(per_sale)} per sale; take cash or split the sale"
            )
        exposure = self.card_exposure_minor()
        if exposure + due_minor > per_device:
            raise RuleViolation(
                f"this till already holds {self.money(exposure)} of unsynced card payments; "
                f"the device limit is {self.money(per_device)}; take cash or sync first"
            )

    def _payment(self, quote: Quote, method: str, tendered: int | None) -> dict[str, Any]:
        if method not in PAYMENT_METHODS:
            raise RuleViolation(f"payment method {method!r} is not supported; use cash or card")
        due = quote.due_minor(method)
        payment: dict[str, Any] = {
            "method": method,
            "due_minor": due,
            "rounding_minor": due - quote.total_minor,
        }
        if method == "cash":
            given = due if tendered is None else tendered
            if isinstance(given, bool) or not isinstance(given, int) or given < due:
                raise RuleViolation(
                    f"cash tendered {self.money(given or 0)} is less than the "
                    f"{self.money(due)} due; take more cash or pay by card"
                )
            payment.update(tendered_minor=given, change_minor=given - due)
        else:
            if tendered is not None:
                raise RuleViolation("--tendered is for cash only; leave it out for card")
            self.check_card_limits(due)
            payment["offline"] = True
        return payment

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
            self._require_shift()  # raises with the fix
        catalog = self._catalog_at(catalog_version)
        pick = self._trading_event(tx)
        profile = self._profile_for(catalog, pick)
        quote = price_cart(catalog, profile, cart, promo_code, event_id=pick.event_id)
        payment = self._payment(quote, method, tendered)
        payload = {
            "sale_id": new_id(),
            "receipt_no": last_receipt + 1,
            "shift_no": shift,
            "idempotency_key": key,
            **quote.to_json(),
            "payment": payment,
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
            shift = self._require_shift()
            p = sale.payload
            rows = projections.sale_lines(tx.conn, p["receipt_no"])
            by_line = {ln["line"]: ln for ln in p["lines"]}
            plan = _plan_refund(p["receipt_no"], rows, items)
            lines = []
            for line_no, qty, already in plan:
                sold = by_line[line_no]
                lines.append(_refund_line(sold, qty, already))
            taxes = taxes_by_rate(lines)
            gross = sum(ln["gross_minor"] for ln in lines)
            method = p["payment"]["method"]
            step = p.get("cash_rounding_minor", 0) if method == "cash" else 0
            pick = self._trading_event(tx, ask=False)
            payload = {
                "refund_id": new_id(),
                "sale_id": p["sale_id"],
                "sale_receipt_no": p["receipt_no"],
                "receipt_no": self._next_receipt_no(tx),
                "shift_no": shift,
                "currency": p["currency"],
                "lines": lines,
                "taxes": taxes,
                "gross_minor": gross,
                "total_minor": round_to_step(gross, step),
                "payment": {"method": method},
                "event_id": pick.event_id,
            }
            return RefundResult(tx.append(ev.REFUND_ISSUED, payload))

    def refund_foreign(
        self, sale: ForeignSale, items: Sequence[tuple[str, int]] | None = None
    ) -> RefundResult:
        """Refund another till's verified receipt (appliance.crossrefund: the rules)."""
        with self.log.transaction() as tx:
            gate.require_open(tx.conn, "refunding")
            shift = self._require_shift()
            catalog = self._catalog_at(queries.catalog_version(self.log))
            pick = self._trading_event(tx, ask=False)
            profile = self._profile_for(catalog, pick)
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

    # -- bookings (appliance.bookings: finding them, the list) ------------------------------
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
            done = projections.booking_redemption(tx.conn, booking.id)
            if done is not None:
                raise RuleViolation(
                    f"booking {booking.number} was already handed over at this till (seq "
                    f"{done[0]}); do not hand it over again"
                )
            gate.require_open(tx.conn, "handing over bookings")
            shift = self._require_shift()
            sale = None
            if booking.paid:
                pick = self._trading_event(tx, ask=False)  # nothing is taxed here
                catalog = self._catalog_at(queries.catalog_version(self.log))
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
                due, sale_id, receipt_no, event_id = 0, "", 0, pick.event_id
            else:
                assert method is not None
                sale = self._sell(
                    tx, cart, method, tendered, None, new_id(), {"booking_id": booking.id}
                )
                p = sale.payload
                lines = [
                    {
                        **{k: ln[k] for k in ("line", "sku", "name", "qty")},
                        **(
                            {"personalisation": ln["personalisation"]}
                            if "personalisation" in ln
                            else {}
                        ),
                    }
                    for ln in p["lines"]
                ]
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
        if isinstance(opening_float_minor, bool) or not isinstance(opening_float_minor, int):
            raise RuleViolation(
                f"opening float {opening_float_minor!r} must be a whole number of minor "
                "units (cents); count the drawer and give it again"
            )
        if not 0 <= opening_float_minor <= MAX_FLOAT_MINOR:
            currency = self._currency()

            def money(minor: int) -> str:
                return format_minor(minor, currency).strip()

            raise RuleViolation(
                f"opening float {money(opening_float_minor)} must be between {money(0)} and "
                f"{money(MAX_FLOAT_MINOR)}; count the drawer and give it again"
            )
        with self.log.transaction() as tx:
            current = self.current_shift()
            if current is not None:
                raise RuleViolation(
                    f"shift {current} is already open; close it first (`tillbox shift close`)"
                )
            return tx.append(
                ev.SHIFT_OPENED,
                {
                    "shift_no": projections.last_shift_no(tx.conn) + 1,
                    "opening_float_minor": opening_float_minor,
                },
            )

    def z_report(self, shift_no: int) -> dict[str, Any]:
        rows = queries.shift_totals(self.log, shift_no)
        taxes = [
            {"rate": k, "gross_minor": g, "tax_minor": t, "net_minor": n}
            for kind, k, _c, g, t, n in rows
            if kind == "tax"
        ]
        payments = [
            {"method": k, "count": c, "total_minor": g}
            for kind, k, c, g, _t, _n in rows
            if kind == "pay"
        ]
        refunds = [
            {"method": k, "count": c, "total_minor": g}
            for kind, k, c, g, _t, _n in rows
            if kind == "refund"
        ]
        rounding = sum(g for kind, _k, _c, g, _t, _n in rows if kind == "rounding")
        opening_float = queries.opening_float_minor(self.log, shift_no)
        # Cash takings are already net of cash refunds (a refund subtracts from "pay").
        cash = sum(p["total_minor"] for p in payments if p["method"] == "cash")
        extra: dict[str, Any] = {}
        events = [
            {"event_id": k, "sales_count": c, "gross_minor": g, "tax_minor": t, "net_minor": n}
            for kind, k, c, g, t, n in rows
            if kind == "event"
        ]
        if events:  # only a till that traded at scheduled events has these
            rest = {
                "event_id": "",
                "sales_count": sum(p["count"] for p in payments)
                - sum(e["sales_count"] for e in events),
            }
            for key in ("gross_minor", "tax_minor", "net_minor"):
                rest[key] = sum(t[key] for t in taxes) - sum(e[key] for e in events)
            if any(rest[k] for k in rest if k != "event_id"):
                events.append(rest)
            extra["events"] = events
        bookings = [
            {"payment": k, "count": c, "due_minor": g}
            for kind, k, c, g, _t, _n in rows
            if kind == "booking"
        ]
        if bookings:
            extra["bookings"] = bookings
        return {
            "shift_no": shift_no,
            "sales_count": sum(p["count"] for p in payments),
            "refunds_count": sum(r["count"] for r in refunds),
            "taxes": taxes,
            "payments": payments,
            "refunds": refunds,
            "gross_minor": sum(t["gross_minor"] for t in taxes),
            "tax_minor": sum(t["tax_minor"] for t in taxes),
            "cash_rounding_minor": rounding,
            "takings_minor": sum(p["total_minor"] for p in payments),
            "opening_float_minor": opening_float,
            "expected_cash_minor": opening_float + cash,
            **extra,
        }

    def close_shift(self) -> Event:
        """Close the open shift; the Z report goes into the event, so it is in the log."""
        with self.log.transaction() as tx:
            shift = self.current_shift()
            if shift is None:
                raise RuleViolation("no shift is open; there is nothing to close")
            return tx.append(ev.SHIFT_CLOSED, {"shift_no": shift, "z_report": self.z_report(shift)})

    # -- catalog and other events ----------------------------------------------------------
    def apply_catalog(self, data: dict[str, Any], source: str = "local") -> Event:
        catalog = Catalog.from_json(data)  # refuse a bad catalog before it reaches the log
        return self.log.append(ev.CATALOG_APPLIED, {**catalog.to_json(), "source": source})

    def record_selftest(self, payload: dict[str, Any]) -> Event:
        """Append a self-test verdict; its checks feed the sell path's gate."""
        checks = payload.get("checks")
        if not isinstance(checks, list) or not all(
            isinstance(c, dict)
            and isinstance(c.get("name"), str)
            and c.get("result") in ("pass", "warn", "fail")
            and isinstance(c.get("fatal"), bool)
            for c in checks
        ):
            raise RuleViolation(
                "a self-test record needs checks[] with name, result (pass/warn/fail) "
                "and fatal; record it with `tillbox selftest`"
            )
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
            state = gate.state(tx.conn)
            names = list(failed) if failed is not None else [c.name for c in state.failed]
            if not names:
                raise RuleViolation(
                    "the self-test does not block selling; there is nothing to override"
                )
            return tx.append(
                ev.SELFTEST_OVERRIDE,
                {
                    "failed": names,
                    "reason": (reason or state.reason())[:500],
                    "by": "technician-pin",
                },
            )

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


def _ask_message(pick: sched.Pick) -> str:
    """The one line that tells the cashier to choose the event (and from what)."""
    assert pick.question is not None
    why = {
        sched.CLOCK_UNCONFIRMED: "the clock is not confirmed (no time source since boot)",
        sched.OVERLAP: "two events of the schedule are on now",
        sched.NONE_CURRENT: "no event of the schedule is on now",
    }[pick.question.reason]
    offer = ", ".join(e.id for e in pick.candidates) or "no events"
    return (
        f"which event is this sale at? {why}; choose one with `tillbox event choose ID` "
        f"({offer}) or `tillbox event choose --none`"
    )


def _plan_refund(
    receipt_no: int, rows: list[tuple], items: Sequence[tuple[str, int]] | None
) -> list[tuple[int, int, int]]:
    """(line, qty to refund, qty refunded before) for each line touched."""
    open_lines = [(line, sku, qty, done, refundable) for line, sku, qty, done, refundable in rows]
    if items is None:
        plan = [
            (line, qty - done, done)
            for line, _sku, qty, done, refundable in open_lines
            if refundable and qty > done
        ]
        if not plan:
            raise RuleViolation(f"receipt {receipt_no} has nothing left to refund")
        return plan
    plan = []
    for sku, want in items:
        if isinstance(want, bool) or not isinstance(want, int) or want <= 0:
            raise RuleViolation(f"refund quantity for {sku} must be a whole number above zero")
        candidates = [r for r in open_lines if r[1] == sku]
        if not candidates:
            raise RuleViolation(f"{sku} is not on receipt {receipt_no}; check the items sold")
        if not any(r[4] for r in candidates):
            raise RuleViolation(
                f"{sku} is personalised and cannot be refunded (the customer approved the proof)"
            )
        left = sum(qty - done for _l, _s, qty, done, ok in candidates if ok)
        if want > left:
            sold = sum(r[2] for r in candidates)
            raise RuleViolation(
                f"cannot refund {want} x {sku} from receipt {receipt_no}: only "
                f"{left} of {sold} sold are left to refund"
            )
        for index, (line, s, qty, done, ok) in enumerate(open_lines):
            if s != sku or not ok or want == 0:
                continue
            take = min(want, qty - done)
            if take:
                plan.append((line, take, done))
                open_lines[index] = (line, s, qty, done + take, ok)
                want -= take
    return plan


def _refund_line(sold: dict[str, Any], qty: int, already: int) -> dict[str, Any]:
    """Refund ``qty`` units of a sold line, proportionally and cent-exact.

    Amounts are computed on cumulative quantities, so refunding a line in
    several parts always adds up to exactly what was paid for it.
    """

    def share(amount: int, units: int) -> int:
        return div_round(amount * units, sold["qty"])

    line = {
        "line": sold["line"],
        "sku": sold["sku"],
        "qty": qty,
        "tax_rate": sold["tax_rate"],
        "rate_bp": sold["rate_bp"],
    }
    for k in ("gross_minor", "tax_minor"):
        line[k] = share(sold[k], already + qty) - share(sold[k], already)
    line["net_minor"] = line["gross_minor"] - line["tax_minor"]
    return line
