"""The region's review of this till's enrollment, as it arrives on the device's down topic.

``tillbox/v1/{tenant}/{device}/down/enrollment`` carries one retained ``TBER``
message (appliance/formats/review.py). It is verified with the region key the till
pins (``[sync] region_public_key``) before a byte of it is parsed, must name this
device and tenant and the manifest of the till's latest enrollment, and is then
recorded in the log as ``enrollment.reviewed``: durable, chained, synced up like any
event, read by the self-test and carried in the inspection bundle. Anything refused
is logged and counted (``reviews_rejected.<reason>`` in ``tillbox sync status``);
the retained copy that comes again at every connect is recognised and not recorded
twice.
"""

from __future__ import annotations

import hashlib
import logging

from nacl.signing import VerifyKey

from appliance import events, queries
from appliance.datadir import DataDir
from appliance.errors import TillError
from appliance.formats import review as review_format
from appliance.formats import wire
from sync_agent.store import AgentStore

log = logging.getLogger("tillbox.sync")


def handle_review(
    data_dir: DataDir,
    region_key: VerifyKey,
    device: str,
    tenant: str,
    payload: bytes,
    store: AgentStore,
) -> str:
    """Verify, check and record one review; the outcome (``recorded``, ``duplicate``,
    ``cleared`` or ``refused:<reason>``). Never raises for bad input."""
    if not payload:
        return "cleared"  # the region cleared the retained message
    try:
        review = review_format.open_review(payload, region_key)
    except wire.WireError as exc:
        return _refuse(store, exc.reason, str(exc))
    if review.device_id != device or review.tenant != tenant:
        return _refuse(
            store, "wrong_device", f"it is for {review.tenant}/{review.device_id}, not this till"
        )
    from appliance.till import Till

    digest = hashlib.sha256(payload).hexdigest()
    try:
        with Till.open(data_dir) as till:
            signed = queries.latest_payload(till.log, events.ENROLLMENT_SIGNED)
            if signed is None or signed.get("manifest_sha256") != review.manifest_sha256:
                return _refuse(
                    store,
                    "wrong_manifest",
                    f"it reviews manifest {review.manifest_sha256[:16]}..., not this till's "
                    "latest enrollment (re-enrolled since? the region must review the new one)",
                )
            before = queries.latest_payload(till.log, events.ENROLLMENT_REVIEWED)
            if before is not None and before.get("message_sha256") == digest:
                return "duplicate"  # the retained copy, delivered again at connect
            if (
                before is not None
                and before.get("manifest_sha256") == review.manifest_sha256
                and int(before.get("decided_wall_ms", 0)) >= review.decided_wall_ms
            ):
                return _refuse(store, "stale", "an older review than the one recorded")
            event = till.record(
                events.ENROLLMENT_REVIEWED, review_format.event_payload(review, payload)
            )
    except TillError as exc:
        # the log cannot take it now (disk full, busy): the retained copy comes again
        store.bump("reviews_rejected.unrecorded")
        log.error("sync enrollment review not recorded: %s", exc)
        return "refused:unrecorded"
    store.bump("reviews_recorded")
    log.info(
        "sync enrollment review recorded decision=%s reviewer=%r enrollment=%d seq=%d",
        review.decision,
        review.reviewer,
        review.sequence,
        event.seq,
    )
    return "recorded"


def _refuse(store: AgentStore, reason: str, detail: str) -> str:
    store.bump(f"reviews_rejected.{reason}")
    log.warning("sync enrollment review refused reason=%s detail=%s", reason, detail)
    return f"refused:{reason}"
