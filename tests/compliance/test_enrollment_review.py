"""The region's review on the till: recorded by the agent, shown by the self-test, carried
in the bundle and checked by `tillbox inspect verify` against sync/region.pub."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime

from nacl.signing import SigningKey

from appliance import events, queries
from appliance.datadir import DataDir
from appliance.formats import review as review_format
from appliance.log import EventLog
from appliance.till import Till
from compliance.bundle import export_bundle
from compliance.selftest import run_selftest
from compliance.testing import REGION, REGION_PUB, forge_bundle, set_region_key
from compliance.verify import verify_bundle
from sync_agent.enrollment import handle_review
from sync_agent.store import AgentStore

DECIDED = int(datetime(2026, 11, 27, 15, 30, tzinfo=UTC).timestamp() * 1000)
OTHER = SigningKey(bytes(32))


def latest_manifest_sha(ddir: DataDir) -> str:
    log = EventLog.open(ddir.log_path, readonly=True)
    try:
        return queries.latest_payload(log, events.ENROLLMENT_SIGNED)["manifest_sha256"]
    finally:
        log.close()


def sealed(ddir: DataDir, key: SigningKey = REGION, **changes) -> bytes:
    fields = {
        "tenant": "demo",
        "device_id": "till-1",
        "sequence": 1,
        "manifest_sha256": latest_manifest_sha(ddir),
        "decision": "approve",
        "reason": "permit TP-2291 and photos checked",
        "reviewer": "R. Inspector",
        "decided_wall_ms": DECIDED,
        "region_key_fingerprint": review_format.fingerprint(key.verify_key),
        **changes,
    }
    return review_format.seal_review(key, review_format.Review(**fields))


def deliver(ddir: DataDir, message: bytes, pinned: SigningKey = REGION) -> str:
    """What the sync agent does with a message on its down/enrollment topic."""
    store = AgentStore(ddir.sync_dir / "agent.db")
    try:
        return handle_review(ddir, pinned.verify_key, "till-1", "demo", message, store)
    finally:
        store.close()


def counters(ddir: DataDir) -> dict[str, int]:
    store = AgentStore(ddir.sync_dir / "agent.db")
    try:
        return store.counters(("reviews_",))
    finally:
        store.close()


def reviews_in_log(ddir: DataDir) -> list[dict]:
    log = EventLog.open(ddir.log_path, readonly=True)
    try:
        return [e.payload for e in log.events() if e.type == events.ENROLLMENT_REVIEWED]
    finally:
        log.close()


def enrollment_check(ddir: DataDir, probes):
    report = run_selftest(ddir, probes, only=["enrollment"], record=False)
    return report, report.checks[0]


def test_the_self_test_warns_until_the_region_approves_then_says_so(enrolled, probes):
    set_region_key(enrolled, REGION_PUB)
    report, check = enrollment_check(enrolled, probes)
    assert check.result == "warn" and "not reviewed by the region yet" in check.value
    assert report.ok  # a missing review never stops a till
    assert deliver(enrolled, sealed(enrolled)) == "recorded"
    report, check = enrollment_check(enrolled, probes)
    assert check.result == "pass", check
    assert check.value == "enrollment approved by the region on 2026-11-27 (R. Inspector)"
    recorded = reviews_in_log(enrolled)
    assert len(recorded) == 1 and recorded[0]["decision"] == "approve"
    assert bytes.fromhex(recorded[0]["message"]) == sealed(enrolled)
    assert deliver(enrolled, sealed(enrolled)) == "duplicate"  # the retained copy, again
    assert len(reviews_in_log(enrolled)) == 1
    assert counters(enrolled) == {"reviews_recorded": 1}


def test_a_rejection_fails_loudly_with_its_reason_and_can_stop_sales(enrolled, probes):
    set_region_key(enrolled, REGION_PUB)
    message = sealed(enrolled, decision="reject", reason="permit scan unreadable")
    assert deliver(enrolled, message) == "recorded"
    report, check = enrollment_check(enrolled, probes)
    assert check.result == "fail"
    assert check.value == (
        "enrollment rejected by the region on 2026-11-27 (R. Inspector): permit scan unreadable"
    )
    assert "re-enroll" in check.fix
    assert report.ok  # not fatal by default ...
    config = enrolled.load_config()
    config.update("selftest", fatal=["enrollment"])
    import tomli_w

    enrolled.config_path.write_text(tomli_w.dumps(config.data))
    report, check = enrollment_check(enrolled, probes)
    assert not report.ok and check.fatal  # ... and a deployment can make it stop sales
    # a later approval supersedes the rejection
    assert deliver(enrolled, sealed(enrolled, decided_wall_ms=DECIDED + 1000)) == "recorded"
    assert enrollment_check(enrolled, probes)[1].result == "pass"


def test_the_agent_refuses_reviews_that_are_not_for_this_enrollment(enrolled, probes):
    set_region_key(enrolled, REGION_PUB)
    assert deliver(enrolled, sealed(enrolled, manifest_sha256="ab" * 32)) == (
        "refused:wrong_manifest"
    )
    assert deliver(enrolled, sealed(enrolled, device_id="till-2")) == "refused:wrong_device"
    assert deliver(enrolled, sealed(enrolled, tenant="other")) == "refused:wrong_device"
    assert deliver(enrolled, sealed(enrolled, key=OTHER)) == "refused:bad_signature"
    forged = bytearray(sealed(enrolled))
    forged[30] ^= 1
    assert deliver(enrolled, bytes(forged)) == "refused:bad_signature"
    assert deliver(enrolled, b"") == "cleared"
    assert reviews_in_log(enrolled) == []
    assert counters(enrolled) == {
        "reviews_rejected.bad_signature": 2,
        "reviews_rejected.wrong_device": 2,
        "reviews_rejected.wrong_manifest": 1,
    }
    assert deliver(enrolled, sealed(enrolled)) == "recorded"
    older = sealed(enrolled, decided_wall_ms=DECIDED - 1, decision="reject")
    assert deliver(enrolled, older) == "refused:stale"  # a replayed older review
    assert enrollment_check(enrolled, probes)[1].result == "pass"


def test_a_forged_review_in_the_log_fails_the_self_test(enrolled, probes):
    """Someone with write access to the log records a review the region never signed."""
    set_region_key(enrolled, REGION_PUB)
    fake = sealed(enrolled, key=OTHER)
    payload = review_format.event_payload(review_format.open_review(fake, OTHER.verify_key), fake)
    with Till.open(enrolled) as till:
        till.record(events.ENROLLMENT_REVIEWED, payload)
    check = enrollment_check(enrolled, probes)[1]
    assert check.result == "fail" and "does not verify" in check.value


def test_the_bundle_carries_the_review_and_verify_ties_it_to_region_pub(enrolled, tmp_path):
    set_region_key(enrolled, REGION_PUB)
    assert deliver(enrolled, sealed(enrolled)) == "recorded"
    out = tmp_path / "b.zip"
    export_bundle(enrolled, out)
    with zipfile.ZipFile(out) as zf:
        assert zf.read("enrollment/0001/review.tber") == sealed(enrolled)
        assert "Region review</b>: approved" in zf.read("index.html").decode()
    verdict = verify_bundle(out)
    assert verdict.ok, verdict.problem
    assert [r["decision"] for r in verdict.reviews] == ["approve"]
    assert verdict.reviews[0]["region_key_fingerprint"] == review_format.fingerprint(
        REGION.verify_key
    )
    text = verdict.proved()["enrollment_review"]
    assert "approved by the region on 2026-11-27 (R. Inspector)" in text and "NOT proved" in text
    pinned = verify_bundle(out, region_key=REGION_PUB).proved()["enrollment_review"]
    assert "proved with the pinned region key (fingerprint " in pinned
    assert "NOT proved" not in pinned
    cli = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "inspect", "verify", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert json.loads(cli.stdout)["reviews"][0]["reviewer"] == "R. Inspector"


def test_verify_refuses_a_review_region_pub_did_not_sign_or_of_another_enrollment(
    enrolled, tmp_path
):
    set_region_key(enrolled, REGION_PUB)
    assert deliver(enrolled, sealed(enrolled)) == "recorded"
    good = tmp_path / "good.zip"
    export_bundle(enrolled, good)
    # the till's owner swaps sync/region.pub for a key of their own (and re-signs)
    swapped = tmp_path / "swapped.zip"
    other_pub = (OTHER.verify_key.encode().hex() + "\n").encode()
    forge_bundle(good, swapped, enrolled, lambda n, d: other_pub if n == "sync/region.pub" else d)
    problem = verify_bundle(swapped).problem
    assert "review.tber" in problem and "does not verify with the region key" in problem
    # ... and a review they signed with that key names it, so it passes on its own word only
    own = tmp_path / "own.zip"
    fake = sealed(enrolled, key=OTHER)
    forge_bundle(
        good,
        own,
        enrolled,
        lambda n, d: (
            other_pub if n == "sync/region.pub" else fake if n.endswith("review.tber") else d
        ),
    )
    assert "NOT proved" in verify_bundle(own).proved()["enrollment_review"]
    assert "not the expected region key" in verify_bundle(own, region_key=REGION_PUB).problem
    # a genuine review of another enrollment, filed under this one
    moved = tmp_path / "moved.zip"
    another = sealed(enrolled, manifest_sha256="cd" * 32)
    forge_bundle(good, moved, enrolled, lambda n, d: another if n.endswith("review.tber") else d)
    assert "reviews another enrollment" in verify_bundle(moved).problem
    # a review in a bundle with no region key at all cannot be checked
    bare = tmp_path / "bare.zip"
    forge_bundle(good, bare, enrolled, lambda n, d: None if n == "sync/region.pub" else d)
    assert "pass --region-key" in verify_bundle(bare).problem
    assert verify_bundle(bare, region_key=REGION_PUB).ok


def test_a_till_bundle_cannot_pass_for_a_region_package(enrolled, tmp_path):
    """The device key's holder adds a top-level region.pub naming their own key."""
    good = tmp_path / "good.zip"
    export_bundle(enrolled, good)
    device_pub = enrolled.public_key_path.read_bytes()
    posing = tmp_path / "posing.zip"
    forge_bundle(good, posing, enrolled, lambda n, d: d, add={"region.pub": device_pub})
    verdict = verify_bundle(posing)
    assert not verdict.ok and "built by 'device', but the region key signed it" in verdict.problem
    assert "another region" in verify_bundle(posing, region_key=REGION_PUB).problem
