"""The region's review of an enrollment: sign the decision, keep it, send it down.

The decision is a ``TBER`` message (appliance/formats/review.py) signed by the region
key and bound to the device, its tenant and the SHA-256 of the manifest the device
signed. It is stored with the enrollment and published retained, QoS 1, on the
device's own ``tillbox/v1/{tenant}/{device}/down/enrollment`` through the publisher
identity, so a till that is offline gets it the next time it connects; the till's
sync agent verifies it with the region key it pins and records it in its log.
"""

from __future__ import annotations

from typing import Any

from nacl.signing import SigningKey

from appliance.errors import RuleViolation
from appliance.formats import review as review_format
from appliance.formats import wire
from appliance.formats.brokerurl import BrokerURL
from edge.enrollments import ReviewRecord, require_enrollment
from edge.store import Store


def review_enrollment(
    store: Store,
    device_id: str,
    decision: str,
    reason: str,
    reviewer: str,
    region_key: SigningKey,
    now_ms: int,
) -> ReviewRecord:
    """Sign and store the decision on the device's latest imported enrollment.

    ``decision`` is ``approve`` or ``reject``; ``reason`` (1-500 characters) and
    ``reviewer`` (1-100) are one line of printable text each. A later review of the
    same enrollment supersedes an earlier one (its time is later: ``decided_ms`` is
    kept strictly increasing per enrollment). Returns the record with the signed
    message and its topic; publish it with :func:`publish_review`. Raises RuleViolation
    (a bad decision, reason or reviewer) or NotFound (no enrollment imported).
    """
    if decision not in review_format.DECISIONS:
        raise RuleViolation(f"the decision must be approve or reject, not {decision!r}")
    for value, what, limit in (
        (reason, "reason", review_format.REASON_MAX),
        (reviewer, "reviewer", review_format.REVIEWER_MAX),
    ):
        problem = review_format.text_problem(value, what, limit)
        if problem:
            raise RuleViolation(f"{problem}; give --{what} as one line of 1-{limit} characters")
    enrollment = require_enrollment(store, device_id)
    with store.transaction():
        earlier = store.review_rows(device_id, enrollment.manifest_sha256)
        decided_ms = max([now_ms, *[int(row[4]) + 1 for row in earlier]])
        review = review_format.Review(
            tenant=enrollment.tenant,
            device_id=device_id,
            sequence=enrollment.sequence,
            manifest_sha256=enrollment.manifest_sha256,
            decision=decision,
            reason=reason.strip(),
            reviewer=reviewer.strip(),
            decided_wall_ms=decided_ms,
            region_key_fingerprint=review_format.fingerprint(region_key.verify_key),
        )
        message = review_format.seal_review(region_key, review)
        store.insert_review(
            device_id,
            enrollment.manifest_sha256,
            decision,
            review.reason,
            review.reviewer,
            decided_ms,
            message,
        )
    return ReviewRecord(
        device_id,
        enrollment.tenant,
        enrollment.manifest_sha256,
        decision,
        review.reason,
        review.reviewer,
        decided_ms,
        message,
        review_topic(enrollment.tenant, device_id),
    )


def review_topic(tenant: str, device_id: str) -> str:
    return wire.topic_down(tenant, device_id, review_format.KIND)


def latest_review(store: Store, device_id: str) -> ReviewRecord:
    """The newest review of the device's latest enrollment (to publish it again)."""
    enrollment = require_enrollment(store, device_id)
    if enrollment.review is None:
        raise RuleViolation(
            f"enrollment {enrollment.sequence} of {device_id} has not been reviewed; review "
            "it first (`tillbox edge enrollment review`)"
        )
    from dataclasses import replace

    return replace(enrollment.review, topic=review_topic(enrollment.tenant, device_id))


def publish_review(
    broker: BrokerURL,
    username: str,
    password: str,
    record: ReviewRecord,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    """Publish the signed decision retained, QoS 1, on the device's down topic; wait for
    the broker's PUBACK (a refusal, e.g. a login that may not write there, is an error)."""
    from edge.publish import send_bytes

    topic = record.topic or review_topic(record.tenant, record.device_id)
    send_bytes(broker, username, password, topic, record.message, retain=True, timeout_s=timeout_s)
    return {"topic": topic, "bytes": len(record.message)}
