"""The kiosk's workflows that live in the core: refund by scan, consent, engraving, inspection.

Each runs on a real till (SQLite files on disk) without Kivy; what they record is read
back from the log, and digests are recomputed here from the documented bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from nacl.signing import SigningKey

from appliance import inspection, keys, privacy, refund_scan
from appliance.errors import RuleViolation
from appliance.formats import receipt as receipt_sig
from appliance.pricing import CartLine
from appliance.services import consent
from appliance.services.engraving import EngravingJob


def kinds(till, prefix: str) -> list[str]:
    return [e.type for e in till.log.events() if e.type.startswith(prefix)]


# -- refund by scan ---------------------------------------------------------------------------
def test_a_genuine_sale_receipt_opens_its_sale_and_every_other_kind_is_refused(till):
    sale = till.sell([CartLine("MUG-01", 2)], "cash", tendered=5000)
    no = sale.payload["receipt_no"]
    payload = receipt_sig.receipt_qr_payload(till, sale.event)
    assert refund_scan.receipt_from_qr(till, payload) == no
    fields, _sig, _signed = receipt_sig.parse_payload(payload)
    before = till.log.last()

    forged = receipt_sig.sign_fields(fields, SigningKey(bytes(range(32))))
    with pytest.raises(RuleViolation, match=f"receipt {no} refused: its signature"):
        refund_scan.receipt_from_qr(till, forged)
    own = keys.load_signing_key(till.data_dir.private_key_path)
    foreign = receipt_sig.sign_fields(replace(fields, device_id="other-till"), own)
    with pytest.raises(RuleViolation, match="from till other-till.*refund it there"):
        refund_scan.receipt_from_qr(till, foreign)
    with pytest.raises(RuleViolation, match="not a tillbox receipt"):
        refund_scan.receipt_from_qr(till, "https://example.com/*x")
    altered = receipt_sig.sign_fields(replace(fields, method="card"), own)
    with pytest.raises(RuleViolation, match=f"does not match sale {no}"):
        refund_scan.receipt_from_qr(till, altered)
    refund = till.refund(no, [("MUG-01", 1)])
    refund_qr = receipt_sig.receipt_qr_payload(till, refund.event)
    with pytest.raises(RuleViolation, match="refund receipt and cannot be refunded again"):
        refund_scan.receipt_from_qr(till, refund_qr)
    assert till.log.last()[0] == before[0] + 1  # only the refund itself was logged


# -- consent for a personalised order -----------------------------------------------------------
def test_approving_a_proof_records_consent_then_the_encrypted_signature(till):
    strokes = [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 10]]]
    gcode = ["G21", "G90", "G0 X1 Y1", "M5"]
    pers = consent.approve_proof(
        till, sku="BOARD-ENG", text="FOR SAM", material="wood", gcode=gcode, strokes=strokes
    )
    assert kinds(till, "consent.") + kinds(till, "personal.") == [
        "consent.recorded",
        "personal.recorded",
    ]
    recorded = [e for e in till.log.events() if e.type == "consent.recorded"][0].payload
    assert recorded["purposes"] == ["engraving", "signature"]
    assert recorded["customer"] == pers["signature"]["customer"]
    compact = json.dumps(strokes, separators=(",", ":")).encode("ascii")
    assert pers["signature"]["sha256"] == hashlib.sha256(compact).hexdigest()
    assert pers["proof_sha256"] == hashlib.sha256(b"G21\nG90\nG0 X1 Y1\nM5").hexdigest()
    assert (pers["text"], pers["material"]) == ("FOR SAM", "wood")
    stored = privacy.read_personal(till.data_dir, till.log, pers["signature"]["customer"])
    assert stored[0]["seq"] == pers["signature"]["seq"]
    assert stored[0]["data"] == {"strokes": strokes, "text": "FOR SAM", "sku": "BOARD-ENG"}
    # the signature is never in the log in clear
    raw = [e.payload for e in till.log.events() if e.type == "personal.recorded"][0]
    assert "strokes" not in json.dumps(raw)


# -- the engraving lifecycle --------------------------------------------------------------------
def job(till) -> tuple[EngravingJob, dict]:
    sale = till.sell([CartLine("MUG-01", 1)], "card").payload
    return EngravingJob(till, sale, 1, text="ANNA", gcode_lines=40, estimated_ms=9000), sale


def test_a_job_the_engraver_refuses_is_failed_and_never_started(till):
    record, sale = job(till)
    record.refused("the job leaves the machine's travel: X 412.0 > 400.0 mm")
    assert kinds(till, "engraving.") == ["engraving.failed"]
    failed = [e for e in till.log.events() if e.type == "engraving.failed"][0].payload
    assert failed["sale_id"] == sale["sale_id"] and failed["line"] == 1
    assert "travel" in failed["message"]


def test_an_accepted_job_records_started_then_its_one_outcome(till):
    record, sale = job(till)
    record.accepted()
    record.accepted()  # a repeated report is not a second start
    record.finished("cancelled", {"outcome": "cancelled", "lines_acked": 3, "total": 40})
    record.finished("completed", {"outcome": "completed"})  # late: ignored
    assert kinds(till, "engraving.") == ["engraving.started", "engraving.cancelled"]
    started = [e for e in till.log.events() if e.type == "engraving.started"][0].payload
    assert started == {
        "sale_id": sale["sale_id"],
        "receipt_no": sale["receipt_no"],
        "line": 1,
        "text": "ANNA",
        "gcode_lines": 40,
        "estimated_ms": 9000,
    }


def test_a_result_that_overtakes_the_start_report_still_logs_started_first(till):
    record, _sale = job(till)
    record.finished("error", {"outcome": "error", "message": "alarm 1"})
    record.accepted()
    assert kinds(till, "engraving.") == ["engraving.started", "engraving.failed"]


# -- what the inspection screen reads -------------------------------------------------------------
def test_inspection_queries_read_the_log_newest_first(till):
    checks = [{"name": "printer", "result": "fail", "value": "no paper", "fix": "load paper"}]
    till.log.append("selftest.recorded", {"verdict": "fail", "trigger": "cli", "checks": checks})
    till.log.append("selftest.override", {"failed": ["printer"], "reason": "test", "by": "tech"})
    till.sell([CartLine("MUG-01", 1)], "card")
    today = inspection.events_since(till.log, 0)
    assert [e.seq for e in today] == sorted((e.seq for e in today), reverse=True)
    assert today[0].type == "sale.completed" and len(today) == till.log.last()[0]
    assert inspection.events_since(till.log, 2**62) == []
    history = inspection.selftest_history(till.log)
    assert [e.type for e in history] == ["selftest.override", "selftest.recorded"]
    assert history[0].payload["failed"] == ["printer"] and history[1].payload["checks"] == checks
    assert inspection.latest_enrollment_manifest(till.log) is None
    till.record("enrollment.signed", {"manifest": {"permits": [{"kind": "market"}]}})
    assert inspection.latest_enrollment_manifest(till.log) == {"permits": [{"kind": "market"}]}
