"""What ``tillbox inspect verify`` found: the verdict, and the first problem that stops it.

The checks (compliance/verify.py and the modules it calls) raise ``Problem`` at the
first failure and fill in the ``Verdict`` as they pass; the verdict also says, part by
part, what was *proved* and what only checked against keys the bundle itself carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.formats.inspection import BUILT_BY_REGION, REGION_PUB, SYNC_REGION_PUB


class Problem(Exception):
    """The first problem found: its message is the verdict's reason."""


@dataclass
class Verdict:
    ok: bool
    problem: str = ""
    device_id: str = ""
    public_key: str = ""
    files: int = 0
    events: int = 0
    receipts: int = 0
    first_seq: int = 0
    last_seq: int = 0
    acks: int = 0  # region-signed acks checked
    acked_seq: int = 0  # the highest seq those acks prove the region stored (0: none)
    region_key: str = ""  # the key they were checked with (hex)
    checks: list[str] = field(default_factory=list)
    tenant: str = ""
    exported_at_ms: int = 0  # signed: when the till wrote the bundle (its clock)
    nonce: str | None = None  # signed: the inspector's challenge it was exported with
    device_key_pinned: bool = False  # checked against --public-key, not device.pub only
    region_key_pinned: bool = False  # acks checked against --region-key
    nonce_asked: str | None = None
    unproved: list[str] = field(default_factory=list)  # asked for, not proved: exit 5
    built_by: str = "device"  # "region": a package the region built and signed
    reviews: list[dict[str, Any]] = field(default_factory=list)  # the region's, checked

    def proved(self) -> dict[str, str]:
        """What the checks proved, part by part, in words an inspector can quote."""
        region = self.built_by == BUILT_BY_REGION
        pinned = "proved with the pinned region key"
        if region:
            acks = (
                f"the region's signed package states it stored every event through seq "
                f"{self.acked_seq} (region/segments.jsonl): "
                + (pinned if self.region_key_pinned else "NOT proved; pass --region-key")
            )
        elif self.acks and self.region_key_pinned:
            acks = f"{pinned}: stored through seq {self.acked_seq}"
        elif self.acks:
            acks = (
                f"NOT proved (signed by the bundle's own sync/region.pub, which claims storage "
                f"through seq {self.acked_seq}); pass --region-key"
            )
        else:
            acks = "none in the bundle"
        if self.nonce_asked is None:
            nonce = "not asked (pass --nonce to prove the bundle was made after you asked)"
        elif self.nonce == self.nonce_asked:
            nonce = "matches --nonce: made after you asked"
        else:
            nonce = "NOT proved: " + ("absent" if self.nonce is None else "another nonce")
        if region:
            device = (
                "the package is signed by the region, not the device: its events chain from "
                "the device.initialised event naming device.pub, and its enrollments are "
                "device-signed; device.pub "
                + (
                    "is the pinned device key"
                    if self.device_key_pinned
                    else "is the region's word only; pass --public-key"
                )
            )
        elif self.device_key_pinned:
            device = "proved with the pinned device key"
        else:
            device = "checked with the bundle's own device.pub only; pass --public-key"
        out = {
            "built_by": (
                "the region (region.pub signed the manifest): "
                + (pinned if self.region_key_pinned else "NOT proved; pass --region-key")
            )
            if region
            else "the till (its device key signed the manifest)",
            "device_signature": device,
            "chain": "proved" if self.ok else "not proved",
            "region_acks": acks,
            "enrollment_review": self._review_text(),
            "nonce": nonce,
        }
        return out

    def _review_text(self) -> str:
        """The newest enrollment's review, and what its key check is worth."""
        if not self.reviews:
            return "none in the bundle"
        r = self.reviews[-1]
        day = _day(r["decided_wall_ms"])
        said = (
            f"enrollment {r['sequence']} approved by the region on {day} ({r['reviewer']})"
            if r["decision"] == "approve"
            else f"enrollment {r['sequence']} REJECTED by the region on {day} "
            f"({r['reviewer']}): {r['reason']}"
        )
        fp = r["region_key_fingerprint"]
        if self.region_key_pinned:
            return f"{said}: proved with the pinned region key (fingerprint {fp})"
        where = REGION_PUB if self.built_by == BUILT_BY_REGION else SYNC_REGION_PUB
        return (
            f"{said}: signed by {where}, whose fingerprint {fp} the review names (the till "
            "verified it with the key it pins); NOT proved unless that fingerprint is the "
            "region's: pass --region-key"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problem": self.problem,
            "device_id": self.device_id,
            "public_key": self.public_key,
            "files": self.files,
            "events": self.events,
            "receipts": self.receipts,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "acks": self.acks,
            "acked_seq": self.acked_seq,
            "region_key": self.region_key,
            "checks": self.checks,
            "tenant": self.tenant,
            "exported_at_ms": self.exported_at_ms,
            "nonce": self.nonce,
            "proved": self.proved() if self.ok else {},
            "unproved": self.unproved,
            "complete": self.ok and not self.unproved,
            "built_by": self.built_by,
            "reviews": self.reviews,
        }


def _day(wall_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(wall_ms / 1000, UTC).date().isoformat()
