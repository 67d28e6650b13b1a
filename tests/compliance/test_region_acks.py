"""The region's signed acks in the inspection bundle: exported byte for byte, and checked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from nacl.signing import SigningKey

from compliance.bundle import export_bundle
from compliance.testing import REGION, REGION_PUB, forge_bundle
from compliance.verify import verify_bundle
from sync_agent.store import AgentStore

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"


def reference_verifier(tmp_path: Path) -> Path:
    match = re.search(r"\*\*Reference verifier\.\*\*.*?```python\n(.*?)```", DOC.read_text(), re.S)
    assert match, "the reference verifier is missing from docs/formats.md (section 5)"
    script = tmp_path / "verify.py"
    script.write_text(match.group(1))
    return script


def run_reference(script: Path, bundle: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), str(bundle)], capture_output=True, text=True, timeout=60
    )


def test_acks_are_exported_exactly_and_prove_storage_up_to_their_seq(synced, tmp_path):
    ddir, ids = synced
    out = tmp_path / "b.zip"
    export_bundle(ddir, out)
    store = AgentStore(ddir.sync_dir / "agent.db")
    kept = {i: store.ack(i) for i in ids}
    store.close()
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        records = [json.loads(ln) for ln in zf.read("sync/segments.jsonl").splitlines()]
        assert zf.read("sync/region.pub") == (REGION_PUB + "\n").encode()
        for seg_id in ids[:2]:
            assert zf.read(f"sync/acks/{seg_id}.tbak") == kept[seg_id]
        assert [kept[i][4] for i in ids[:2]] == [1, 2]  # both TBAK versions verify
        page = zf.read("index.html").decode()
    assert kept[ids[2]] is None and f"sync/acks/{ids[2]}.tbak" not in names
    assert [r["ack"] for r in records] == [f"sync/acks/{i}.tbak" for i in ids[:2]] + [""]
    assert "prove every event up to seq 6 reached the region" in page
    verdict = verify_bundle(out)
    assert verdict.ok, verdict.problem
    assert (verdict.acks, verdict.acked_seq, verdict.region_key) == (2, 6, REGION_PUB)
    assert verify_bundle(out, region_key=REGION_PUB).ok
    other = SigningKey(bytes(32)).verify_key.encode().hex()
    assert "not the expected region key" in verify_bundle(out, region_key=other).problem
    cli = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "inspect", "verify", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0 and "through seq 6" in cli.stdout, cli.stdout + cli.stderr
    assert "region acks: NOT proved" in cli.stdout  # the bundle's own region.pub proves nothing
    ref = run_reference(reference_verifier(tmp_path), out)
    assert ref.returncode == 0 and ref.stdout.rstrip().endswith("acked through seq 6"), ref.stdout


def _swap_ack(seg_id: str, new: bytes):
    return lambda name, data: new if name == f"sync/acks/{seg_id}.tbak" else data


def test_forged_acks_are_caught(synced, tmp_path, seal_ack):
    ddir, ids = synced
    good = tmp_path / "good.zip"
    export_bundle(ddir, good)
    script = reference_verifier(tmp_path)
    ack = zipfile.ZipFile(good).read(f"sync/acks/{ids[1]}.tbak")
    forged_control = tmp_path / "control.zip"  # the forge itself changes nothing else
    forge_bundle(good, forged_control, ddir, lambda n, d: d)
    assert (
        verify_bundle(forged_control).ok and run_reference(script, forged_control).returncode == 0
    )
    # the till's owner stretches an ack: a changed byte in the signed JSON (last_seq 6 -> 7)
    stretched = ack.replace(b'"last_seq":6', b'"last_seq":7')
    assert stretched != ack
    other = SigningKey(bytes(32))
    cases = {
        "tampered": (_swap_ack(ids[1], stretched), "does not verify with the region key"),
        "other region": (
            _swap_ack(ids[1], seal_ack(other, "till-1", ids[1], 4, 6)),
            "does not verify with the region key",
        ),
        "another device": (
            _swap_ack(ids[1], seal_ack(REGION, "till-2", ids[1], 4, 6)),
            "is an ack for device till-2",
        ),
        "unlisted segment": (
            _swap_ack(ids[1], seal_ack(REGION, "till-1", "ab" * 32, 4, 6)),
            "which sync/segments.jsonl does not list",
        ),
        "no region key": (
            lambda n, d: None if n == "sync/region.pub" else d,
            "pass --region-key",
        ),
    }
    for label, (change, expected) in cases.items():
        bad = tmp_path / f"{label}.zip"
        forge_bundle(good, bad, ddir, change)
        verdict = verify_bundle(bad)
        assert not verdict.ok and expected in verdict.problem, (label, verdict.problem)
        ref = run_reference(script, bad)
        assert ref.returncode == 1 and ref.stdout.startswith("NOT INTACT"), (label, ref.stdout)
    # a till that invents its own "region" (its key as region.pub, acks signed with it)
    # passes on its own terms; the inspector's --region-key is what exposes it
    fake = tmp_path / "fake-region.zip"
    fake_pub = other.verify_key.encode().hex()

    def own_region(name: str, data: bytes) -> bytes:
        if name == "sync/region.pub":
            return (fake_pub + "\n").encode()
        if name.startswith("sync/acks/"):
            seg_id = name.rsplit("/", 1)[1][: -len(".tbak")]
            first, last = (1, 3) if seg_id == ids[0] else (4, 6)
            return seal_ack(other, "till-1", seg_id, first, last)
        return data

    forge_bundle(good, fake, ddir, own_region)
    assert verify_bundle(fake).ok
    verdict = verify_bundle(fake, region_key=REGION_PUB)
    assert not verdict.ok and "not the expected region key" in verdict.problem
    assert verify_bundle(bad, region_key=REGION_PUB).ok  # the "no region key" bundle


def test_old_agent_db_without_ack_column_still_exports(till_dir, tmp_path):
    """A bundle taken before the agent (re)started on a migrated agent.db: no acks, no error."""
    import sqlite3

    db = till_dir.sync_dir / "agent.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE segments (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, "
        "id TEXT NOT NULL UNIQUE, prev TEXT NOT NULL, size INTEGER NOT NULL, data BLOB, "
        "sealed_ms INTEGER NOT NULL, acked_ms INTEGER)"
    )
    conn.execute("INSERT INTO segments VALUES (1, 3, ?, ?, 9, NULL, 1, 2)", ("cd" * 32, "0" * 64))
    conn.commit()
    conn.close()
    out = tmp_path / "old.zip"
    export_bundle(till_dir, out)
    with zipfile.ZipFile(out) as zf:
        record = json.loads(zf.read("sync/segments.jsonl"))
        assert not any(n.startswith("sync/acks/") for n in zf.namelist())
    assert record["acked_ms"] == 2 and record["ack"] == ""
    verdict = verify_bundle(out)
    assert verdict.ok and (verdict.acks, verdict.acked_seq) == (0, 0), verdict.problem
