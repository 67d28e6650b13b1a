"""Event types: business intents, not row diffs. Every type name is defined here, once.

The core writes the types in CORE_TYPES itself. The others (``device.fault``,
``power.lost``, ``engraving.started``, ...) are recorded through
:meth:`appliance.till.Till.record`, which also accepts any other dotted lower-case
name (a plugin's own types).
"""

from __future__ import annotations

import re

DEVICE_INITIALISED = "device.initialised"
CATALOG_APPLIED = "catalog.applied"
SALE_COMPLETED = "sale.completed"
REFUND_ISSUED = "refund.issued"
SHIFT_OPENED = "shift.opened"
SHIFT_CLOSED = "shift.closed"
DRAWER_OPENED = "drawer.opened"
RECEIPT_PRINTED = "receipt.printed"
RECEIPT_FAILED = "receipt.failed"
# Written by the core's device services (appliance.services), from what the drivers report.
Z_REPORT_PRINTED = "z_report.printed"
Z_REPORT_FAILED = "z_report.failed"
DEVICE_FAULT = "device.fault"
POWER_LOST = "power.lost"
POWER_RESTORED = "power.restored"
PHOTO_CAPTURED = "photo.captured"
ENGRAVING_STARTED = "engraving.started"
ENGRAVING_COMPLETED = "engraving.completed"
ENGRAVING_CANCELLED = "engraving.cancelled"
ENGRAVING_FAILED = "engraving.failed"
# Written by compliance (enrollment, the privacy workflow).
ENROLLMENT_SIGNED = "enrollment.signed"
CONSENT_RECORDED = "consent.recorded"
PERSONAL_RECORDED = "personal.recorded"
CONSENT_ERASED = "consent.erased"
# Written by the sync agent: the region's signed review of the till's enrollment, as it
# arrived and verified (appliance.formats.review); the self-test and the bundle read it.
ENROLLMENT_REVIEWED = "enrollment.reviewed"
# The self-test's verdict and a technician's override of it: the sell path's gate reads
# both (appliance.gate), so only the till's own methods write them.
SELFTEST_RECORDED = "selftest.recorded"
SELFTEST_OVERRIDE = "selftest.override"
# A/B system updates (appliance.services.updates): each carries the versions, the slots
# and, for a failure or a rollback, the reason. They sync up like any other event.
UPDATE_STARTED = "update.started"
UPDATE_INSTALLED = "update.installed"
UPDATE_COMMITTED = "update.committed"
UPDATE_ROLLED_BACK = "update.rolled_back"
UPDATE_FAILED = "update.failed"
# The region's release notice (appliance.region, kind "release"), and the download of
# its bundle (drivers.update_fetch). Not in UPDATE_TYPES: those are the install's steps,
# which the boot-time check reads (appliance.updates.after_boot).
UPDATE_OFFERED = "update.offered"
UPDATE_IGNORED = "update.ignored"
UPDATE_DOWNLOADED = "update.downloaded"
UPDATE_DOWNLOAD_FAILED = "update.download_failed"
UPDATE_TYPES = (
    UPDATE_STARTED,
    UPDATE_INSTALLED,
    UPDATE_COMMITTED,
    UPDATE_ROLLED_BACK,
    UPDATE_FAILED,
)
# Several tills, many events (issue 15): the region's signed lists as the till applied them
# (appliance.region), the event the till trades at (appliance.schedule) and the bookings it
# handed over (appliance.bookings). The sale path reads all of them.
SCHEDULE_APPLIED = "schedule.applied"
ROSTER_APPLIED = "roster.applied"
BOOKINGS_APPLIED = "bookings.applied"
EVENT_STARTED = "event.started"
EVENT_ENDED = "event.ended"
EVENT_CHOSEN = "event.chosen"
BOOKING_REDEEMED = "booking.redeemed"

# Types that only the core may write, because projections and money depend on them.
CORE_TYPES = frozenset(
    {
        DEVICE_INITIALISED,
        CATALOG_APPLIED,
        SALE_COMPLETED,
        REFUND_ISSUED,
        SHIFT_OPENED,
        SHIFT_CLOSED,
        SELFTEST_RECORDED,
        SELFTEST_OVERRIDE,
        SCHEDULE_APPLIED,
        ROSTER_APPLIED,
        BOOKINGS_APPLIED,
        UPDATE_OFFERED,
        UPDATE_IGNORED,
        EVENT_STARTED,
        EVENT_ENDED,
        EVENT_CHOSEN,
        BOOKING_REDEEMED,
    }
)

_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def valid_type_name(name: str) -> bool:
    return bool(_TYPE_NAME.match(name))
