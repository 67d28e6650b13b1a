"""Consent for a personalised order: the customer's signature approves the engraving proof.

The signature is personal data, so it is stored only after ``consent.recorded`` for the
purposes signature and engraving, encrypted per customer (:mod:`appliance.privacy`).
The sale line then references it instead of carrying it: the personalisation dict
``{text, material, proof_sha256, signature: {customer, seq, sha256}}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from appliance import privacy
from appliance.till import Till

PURPOSES = ["signature", "engraving"]
WORDING = "Approval of the engraving proof for this order (signature)."

Strokes = Sequence[Sequence[Sequence[int]]]


def strokes_digest(strokes: Strokes) -> str:
    """SHA-256 of the signature strokes' canonical JSON (what the sale line references)."""
    data = json.dumps(strokes, separators=(",", ":")).encode("ascii")
    return hashlib.sha256(data).hexdigest()


def proof_digest(gcode: Sequence[str]) -> str:
    """SHA-256 of the proof's G-code, one line per command (what was shown and signed)."""
    return hashlib.sha256("\n".join(gcode).encode("ascii")).hexdigest()


def approve_proof(
    till: Till,
    *,
    sku: str,
    text: str,
    material: str,
    gcode: Sequence[str],
    strokes: list[list[list[int]]],
) -> dict[str, Any]:
    """Record consent, store the signature encrypted, and return the line's personalisation."""
    customer, _consent = privacy.record_consent(till, PURPOSES, wording=WORDING)
    stored = privacy.store_personal(
        till, customer, "signature", {"strokes": strokes, "text": text, "sku": sku}
    )
    return {
        "text": text,
        "material": material,
        "proof_sha256": proof_digest(gcode),
        "signature": {"customer": customer, "seq": stored.seq, "sha256": strokes_digest(strokes)},
    }
