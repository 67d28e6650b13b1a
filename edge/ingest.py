"""Segment ingest: authenticate, check the chain, store once, answer with a signed ack.

The order of checks is the security argument:

1. size (nothing larger than the limit is even hashed),
2. the device is enrolled for the topic's tenant (the key comes from the topic),
3. the Ed25519 signature over the whole message (nothing is parsed before this),
4. the header names the same device and tenant as the topic (a device publishing
   under another device's topic fails at 3 already; this catches a misfiled one),
5. every event: canonical JSON (the core's strict reader: no duplicate keys, integers
   only, within +/-(2**53-1), byte-identical to its re-encoding), its own hash, the
   in-segment chain, the fields the ledgers read,
6. in ONE transaction with the device row locked: a revoked device (signed NACK
   ``rejected:revoked``: ``tillbox edge device revoke``), already stored (re-ack), not
   the next in the chain (NACK naming where to resend from), or store events, ledgers,
   rollups and the device's new chain tip together. The ack goes out after COMMIT, so
   a crash in between only means the agent resends and gets a "duplicate" ack.

Anything rejected is logged, counted in ``rejections`` and never stored. Once the
signature verified, every failure is answered: a signed NACK ``rejected:<reason>``
(the till stops resending it), except a database that is unavailable right now
(:class:`StoreUnavailable`: no answer, the agent resends later). Each answer echoes
the nonce the agent sent with the segment (TBAK v2), so it answers that one publish.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import NamedTuple

from nacl.signing import SigningKey, VerifyKey

from appliance.formats import wire
from appliance.formats.canonical import CanonicalFormError, NotJSONError, parse_canonical
from appliance.formats.chain import line_hash_matches
from edge import ledger, rollups
from edge.store import Store, is_transient, is_write_conflict

log = logging.getLogger("tillbox.edge")

_EVENT_KEYS = frozenset(
    {"v", "seq", "id", "device", "type", "payload", "wall_ms", "boot", "mono_us", "prev", "hash"}
)


@dataclass(frozen=True)
class Outcome:
    status: str  # stored | duplicate | nack | rejected | ignored
    reason: str = ""
    device: str = ""
    events: int = 0
    ack: bytes | None = None
    ack_topic: str = ""
    moved_stock: bool = False  # a stored segment that moved stock (the stall's snapshot)


class ParsedEvent(NamedTuple):
    seq: int
    type: str
    hash: str
    prev: str
    line: bytes
    intent: ledger.Intent | None  # what a sale or refund means for the ledgers
    fact: rollups.Fact | None = None  # ... and for the rollups


class Prepared(NamedTuple):
    """A verified, parsed segment waiting for its transaction."""

    tenant: str
    device: str
    header: wire.SegmentHeader
    seg_id: str
    size: int
    events: list[ParsedEvent]
    nonce: str = ""  # hex of the publish's correlation data; echoed in the answer


class StoreUnavailable(Exception):
    """The database failed in a way that is not the segment's fault (down, locked,
    disk full): nothing was stored or answered, and the agent's resend will retry."""


class Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.header: wire.SegmentHeader | None = None  # set once the signature verified
        self.seg_id = ""


def parse_events(
    raw: bytes, header: wire.SegmentHeader, with_rollups: bool = True
) -> list[ParsedEvent]:
    """Every event line, checked on its own and against the one before it."""
    lines = raw.split(b"\n")
    if header.count < 1 or lines[-1] != b"" or len(lines) - 1 != header.count:
        raise Rejected("malformed", "event count does not match the header")
    events: list[ParsedEvent] = []
    append = events.append
    prev = None
    seq = header.first_seq - 1
    device = header.device
    for line in lines[:-1]:
        seq += 1
        try:
            obj = parse_canonical(line)
        except NotJSONError:
            raise Rejected("malformed", f"event seq {seq} is not JSON") from None
        except CanonicalFormError as exc:
            raise Rejected("non_canonical", f"event seq {seq}: {exc}") from None
        if type(obj) is not dict or obj.keys() != _EVENT_KEYS:
            raise Rejected("malformed", f"event seq {seq} lacks the export fields")
        digest = obj["hash"]
        if obj["seq"] != seq or obj["device"] != device or type(digest) is not str:
            raise Rejected("malformed", f"event seq {seq} has the wrong seq or device")
        if prev is not None and obj["prev"] != prev:
            raise Rejected("bad_event", f"event seq {seq} does not link to the one before")
        if not line_hash_matches(line, digest):
            raise Rejected("bad_event", f"event seq {seq} does not match its hash")
        type_ = obj["type"]
        intent = fact = None
        if type_ in ledger.TYPES:
            try:
                intent = ledger.extract(type_, obj["payload"])
                if with_rollups:
                    fact = rollups.extract(intent, obj["payload"], obj["wall_ms"])
            except (KeyError, TypeError, ValueError):
                raise Rejected(
                    "malformed", f"event seq {seq} lacks fields its type needs"
                ) from None
        elif type(obj["payload"]) is not dict:
            raise Rejected("malformed", f"event seq {seq} has no payload object")
        append(ParsedEvent(seq, type_, digest, obj["prev"], line, intent, fact))
        prev = digest
    return events


class Ingestor:
    def __init__(
        self,
        store: Store,
        region_key: SigningKey,
        max_segment_bytes: int = wire.MAX_SEGMENT_BYTES,
        key_store: Store | None = None,
        with_rollups: bool = True,
    ) -> None:
        self.store = store  # writes: only the thread that calls commit() uses it
        self.key_store = key_store or store  # reads enrolled keys during prepare()
        self.region_key = region_key
        self.max_segment_bytes = max_segment_bytes
        # False only for the drain benchmark's baseline (bench/drain.py): the console's
        # pages read the rollups, and `tillbox edge check` would report them missing
        self.with_rollups = with_rollups
        self._keys: dict[str, tuple[str, VerifyKey]] = {}

    def _device(self, device: str) -> tuple[str, VerifyKey] | None:
        if device not in self._keys:
            row = self.key_store.device_key(device)
            if row is None:
                return None
            self._keys[device] = (row[0], VerifyKey(bytes.fromhex(row[1])))
        return self._keys[device]

    def handle(self, topic: str, payload: bytes, nonce: str = "") -> Outcome:
        """Process one message from the segment topic tree; never raises for bad input.

        ``nonce``: :func:`wire.nonce_hex` of the publish's correlation data. Raises
        :class:`StoreUnavailable` only when the database is down (retry later).
        """
        return self.commit(self.prepare(topic, payload, nonce))

    def prepare(self, topic: str, payload: bytes, nonce: str = "") -> Prepared | Outcome:
        """Everything that needs no write: size, key, signature, parsing (CPU-bound).

        Returns what :meth:`commit` stores, or the outcome for a message that is not
        a segment; a rejection is an ``Outcome`` that commit() counts.
        """
        where = wire.parse_seg_topic(topic)
        if where is None:
            return Outcome("ignored", "not a segment topic")
        tenant, device = where
        try:
            return self._prepare(tenant, device, payload, nonce)
        except Rejected as exc:
            log.warning(
                "edge rejected segment device=%s tenant=%s reason=%s detail=%s bytes=%d",
                device,
                tenant,
                exc.reason,
                exc,
                len(payload),
            )
            if exc.header is None:
                return Outcome("rejected", exc.reason, device)
            # The device's own key signed contents the region cannot store: tell it (it
            # stops resending and says so), instead of letting it resend in silence.
            return self._refusal(
                self.key_store, tenant, device, exc.header, exc.seg_id, exc.reason, nonce
            )

    def _refusal(
        self,
        store: Store,
        tenant: str,
        device: str,
        header: wire.SegmentHeader,
        seg_id: str,
        reason: str,
        nonce: str,
    ) -> Outcome:
        """The signed NACK ``rejected:<reason>`` for a validly signed segment."""
        stored_seq, tip = store.device_tip(device)
        nack = wire.Ack(
            tenant=tenant,
            device=device,
            status="nack",
            segment=seg_id,
            first_seq=header.first_seq,
            last_seq=header.last_seq,
            stored_seq=stored_seq,
            tip=tip,
            resend_from=0,
            reason=f"rejected:{reason}",
            nonce=nonce,
        )
        return Outcome(
            "rejected",
            reason,
            device,
            0,
            wire.seal_ack(self.region_key, nack),
            wire.topic_ack(tenant, device),
        )

    def commit(self, prepared: Prepared | Outcome) -> Outcome:
        """Store a prepared segment (one transaction) or count a rejection."""
        if isinstance(prepared, Outcome):
            if prepared.status == "rejected":
                counted = prepared.device if prepared.reason != "unknown_device" else ""
                self.store.count_rejection(counted, prepared.reason)
            return prepared
        for attempt in (1, 2):
            try:
                return self._store(*prepared)
            except Exception as exc:
                # ROLLBACK already ran (Store.transaction): nothing of it is stored.
                if is_transient(exc):
                    log.warning(
                        "edge database unavailable device=%s seqs=%d-%d (%s); no answer, "
                        "the agent will resend",
                        prepared.device,
                        prepared.header.first_seq,
                        prepared.header.last_seq,
                        exc,
                    )
                    raise StoreUnavailable(str(exc)) from exc
                if attempt == 1 and is_write_conflict(exc):
                    continue  # another worker won a unique key: once more sees its row
                return self._unstorable(prepared, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _unstorable(self, prepared: Prepared, exc: Exception) -> Outcome:
        """A validly signed segment whose storing failed for a reason of its own
        (a number the database cannot hold, ...): counted and refused, never retried."""
        log.warning(
            "edge rejected segment device=%s tenant=%s reason=unstorable detail=%s: %s bytes=%d",
            prepared.device,
            prepared.tenant,
            type(exc).__name__,
            exc,
            prepared.size,
        )
        outcome = self._refusal(
            self.store,
            prepared.tenant,
            prepared.device,
            prepared.header,
            prepared.seg_id,
            "unstorable",
            prepared.nonce,
        )
        self.store.count_rejection(prepared.device, "unstorable")
        return outcome

    def _prepare(self, tenant: str, device: str, payload: bytes, nonce: str) -> Prepared:
        if len(payload) > self.max_segment_bytes:
            raise Rejected(
                "oversize", f"{len(payload)} bytes is over the {self.max_segment_bytes}-byte limit"
            )
        enrolled = self._device(device)
        if enrolled is None:
            raise Rejected("unknown_device", "device is not enrolled")
        if enrolled[0] != tenant:
            raise Rejected("wrong_tenant", f"device is enrolled for tenant {enrolled[0]}")
        try:
            header, raw = wire.open_segment(payload, enrolled[1], self.max_segment_bytes)
        except wire.WireError as exc:
            raise Rejected(exc.reason, str(exc)) from None
        if header.device != device or header.tenant != tenant:
            raise Rejected("device_mismatch", f"segment names {header.tenant}/{header.device}")
        seg_id = wire.segment_id(payload)
        try:
            events = parse_events(raw, header, self.with_rollups)
        except Rejected as exc:
            exc.header, exc.seg_id = header, seg_id
            raise
        except Exception as exc:  # noqa: BLE001 - signed input must get an answer, not a crash
            rejected = Rejected("malformed", f"{type(exc).__name__}: {exc}")
            rejected.header, rejected.seg_id = header, seg_id
            raise rejected from None
        return Prepared(tenant, device, header, seg_id, len(payload), events, nonce)

    # -- the one transaction -----------------------------------------------------------------
    def _store(
        self,
        tenant: str,
        device: str,
        header: wire.SegmentHeader,
        seg_id: str,
        size: int,
        events: list[ParsedEvent],
        nonce: str = "",
    ) -> Outcome:
        s = self.store
        # A refund of another till's receipt reads that till's sales, and a sale reads
        # the refunds waiting for it: lock both devices' rows (in id order), so one of the
        # two transactions sees the other's commit (PostgreSQL runs them side by side).
        named = {
            e.intent.sale_device
            for e in events
            if e.intent is not None and e.intent.sale_device not in ("", device)
        }
        with s.transaction():
            if named:
                s.lock_devices(sorted(named | {device}))
            row = s.lock_device(device)
            assert row is not None  # enrolled devices are never deleted
            _dev, _tenant, last_seq, last_hash, tip = row
            status, reason, resend = "stored", "", 0
            moved = False
            if s.revocation(device) is not None:
                # checked under the device's row lock: nothing is stored once it commits
                status, reason = "rejected", "revoked"
            elif s.segment_stored(seg_id):
                status, reason = "duplicate", "duplicate"
                s.count_duplicates(device, header.count)
            elif header.first_seq != last_seq + 1:
                status, resend = "nack", last_seq + 1
                reason = "gap" if header.first_seq > last_seq + 1 else "overlap"
            elif header.prev != tip or events[0].prev != last_hash:
                status, reason, resend = "nack", "chain_mismatch", last_seq + 1
            else:
                moved = self._insert(tenant, device, header, seg_id, size, events)
                last_seq, tip = header.last_seq, seg_id
            if status != "stored":
                s.record_rejection(device, reason)
        ack = wire.Ack(
            tenant=tenant,
            device=device,
            status="ack" if status in ("stored", "duplicate") else "nack",
            segment=seg_id,
            first_seq=header.first_seq,
            last_seq=header.last_seq,
            stored_seq=last_seq,
            tip=tip,
            resend_from=resend,
            reason=f"rejected:{reason}" if status == "rejected" else reason,
            nonce=nonce,
        )
        if status == "stored":
            log.debug("edge stored device=%s seqs=%d-%d", device, header.first_seq, header.last_seq)
        else:
            log.info(
                "edge %s device=%s seqs=%d-%d reason=%s stored_seq=%d",
                status,
                device,
                header.first_seq,
                header.last_seq,
                reason,
                last_seq,
            )
        return Outcome(
            status,
            reason,
            device,
            len(events) if status == "stored" else 0,
            wire.seal_ack(self.region_key, ack),
            wire.topic_ack(tenant, device),
            moved,
        )

    def _waiting(
        self, tenant: str, device: str, receipt_nos: list[int]
    ) -> dict[int, list[ledger.Pending]]:
        """Receipt no -> the stored refunds (at other tills) waiting for that sale of
        ``device``, read back from their stored events."""
        out: dict[int, list[ledger.Pending]] = {}
        for receipt_no, refund_device, seq, body in self.store.pending_refunds(
            tenant, device, receipt_nos
        ):
            event = json.loads(body)  # stored by ingest, so it parsed and checked before
            intent = ledger.extract(ledger.REFUND, event["payload"])
            assert intent is not None
            fact = (
                rollups.extract(intent, event["payload"], event["wall_ms"])
                if self.with_rollups
                else None
            )
            out.setdefault(receipt_no, []).append(ledger.Pending(refund_device, seq, intent, fact))
        return out

    def _insert(
        self,
        tenant: str,
        device: str,
        header: wire.SegmentHeader,
        seg_id: str,
        size: int,
        events: list[ParsedEvent],
    ) -> bool:
        """Store the segment and its ledger changes; whether it moved any stock."""
        s = self.store
        intents = [e for e in events if e.intent is not None]
        sales = [e.intent for e in intents if e.type == ledger.SALE]
        refunds = [e.intent for e in intents if e.type == ledger.REFUND]
        known = s.sale_ids_by_key(tenant, [i.idem_key for i in sales]) if sales else {}
        by_id = [i.sale_id for i in refunds if not i.sale_device]
        profiles = s.sale_profiles(tenant, by_id) if by_id else {}
        named = [(i.sale_device, i.receipt_no) for i in refunds if i.sale_device]
        by_receipt = s.sale_profiles_by_receipt(tenant, named) if named else {}
        waiting = self._waiting(tenant, device, [i.receipt_no for i in sales]) if sales else {}
        delta = ledger.LedgerDelta()
        dups = delta.dups
        rolled = rollups.RollupDelta()
        for e in intents:
            profile = delta.add(
                tenant,
                device,
                e.seq,
                e.intent,
                known.__contains__,
                profiles.get,
                lambda d, r: by_receipt.get((d, r)),
                lambda _d, r: waiting.pop(r, []),
                e.fact,
            )
            if profile is not None and e.fact is not None:  # None: a duplicate sale
                rolled.add(tenant, device, e.intent, e.fact, profile)
        for t, refund, profile in delta.relinked:  # refunds this segment's sales settled
            if refund.extra is not None:
                rolled.move(t, refund.intent, refund.extra, profile)
        s.insert_events(
            [
                (device, e.seq, e.type, e.hash, e.line.decode(), dups.get((device, e.seq)))
                for e in events
            ]
        )
        if delta.sales:
            s.insert_sales([(t, key, *value) for (t, key), value in delta.sales.items()])
        s.add_device_stock([(*k, v) for k, v in sorted(delta.by_device.items())])
        for (t, sku), change in sorted(delta.stock.items()):
            qty, tracked = s.add_stock(t, sku, change)
            if tracked and qty < 0 and (t, sku) in delta.touched:
                # Two tills sold the last one offline: the sale happened; tell the merchant.
                s.flag_stock(t, sku, device, delta.touched[(t, sku)], qty)
                log.warning(
                    "edge stock negative tenant=%s sku=%s qty=%d device=%s", t, sku, qty, device
                )
        for (t, profile, rate), (count, gross, tax, net) in sorted(delta.tax.items()):
            s.add_tax(t, profile, rate, count, gross, tax, net)
        s.insert_pending_refunds(
            [
                (r.device, r.seq, t, sale_device, receipt_no)
                for (t, sale_device, receipt_no), waiting_refunds in delta.pending.items()
                for r in waiting_refunds
            ]
        )
        s.delete_pending_refunds(delta.resolved)
        if rolled:
            # sorted: two workers upsert shared rows (a tenant's day) in the same order
            s.add_rollup_sales([(*k, *v) for k, v in sorted(rolled.sales.items())])
            if rolled.tax:
                s.add_rollup_tax([(*k, *v) for k, v in sorted(rolled.tax.items())])
            if rolled.items:
                s.add_rollup_items([(*k, *v) for k, v in sorted(rolled.items.items())])
            if rolled.promos:
                s.add_rollup_promos([(*k, *v) for k, v in sorted(rolled.promos.items())])
        if delta.relinked:
            s.drop_settled(tenant, ledger.UNKNOWN)
        s.insert_segment(
            seg_id, device, header.first_seq, header.last_seq, size, time.time_ns() // 1_000_000
        )
        s.advance_device(
            device, header.last_seq, events[-1].hash, seg_id, len(events), len(delta.dups)
        )
        return bool(delta.by_device)
