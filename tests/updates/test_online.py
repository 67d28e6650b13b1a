"""The online update delivery: the download over real HTTPS (resume after a cut, the
notice's size and hash, TLS against the region's CA, a sale pausing it), the token
bucket's waits, and the release notice on the till (signature first, then the rules).
"""

from __future__ import annotations

import hashlib
import os

import pytest
import tomli_w
from nacl.signing import SigningKey

from appliance import events as ev
from appliance import queries, region
from appliance.formats import region as fmt
from appliance.till import Till
from drivers import download
from drivers.download import DownloadRefused, TokenBucket, fetch
from systest.https import FileServer, make_cert

BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server(tmp_path):
    s = FileServer(tmp_path / "tls", BODY).start()
    yield s
    s.close()


def no_sleep(_s: float) -> None:
    pass


def test_a_cut_download_resumes_with_a_range_and_the_hash_matches(tmp_path, server):
    server.cut_after = 100_000
    target = tmp_path / "dl" / "b.raucb"
    got = fetch(server.url, target, size=len(BODY), sha256=SHA, ca_file=str(server.cert),
                sleep=no_sleep)  # fmt: skip
    assert got.status == "done" and target.read_bytes() == BODY
    # resumed from every byte that arrived before the cut, not from zero
    assert server.ranges == [None, "bytes=100000-"]
    assert not target.with_name("b.raucb.part").exists()


def test_a_wrong_hash_is_refused_and_nothing_is_kept(tmp_path, server):
    target = tmp_path / "dl" / "b.raucb"
    with pytest.raises(DownloadRefused, match="does not have the SHA-256") as exc:
        fetch(server.url, target, size=len(BODY), sha256="0" * 64, ca_file=str(server.cert))
    assert "\n" not in str(exc.value)
    assert list(target.parent.iterdir()) == []


def test_a_body_over_the_notices_size_is_refused(tmp_path, server):
    target = tmp_path / "dl" / "b.raucb"
    with pytest.raises(DownloadRefused, match="the region's notice says 1000"):
        fetch(server.url, target, size=1000, sha256=SHA, ca_file=str(server.cert))
    assert list(target.parent.iterdir()) == []


def test_tls_is_checked_against_the_regions_ca(tmp_path, server):
    other, _key = make_cert(tmp_path / "other", "not-the-region")
    with pytest.raises(DownloadRefused, match="TLS certificate"):
        fetch(server.url, tmp_path / "b.raucb", size=len(BODY), sha256=SHA, ca_file=str(other))


def test_the_test_certificate_also_names_the_hosts_asked_for(tmp_path):
    import ssl

    cert, _key = make_cert(tmp_path / "guest", "region", extra_sans=("IP:10.0.2.100",))
    names = ssl._ssl._test_decode_cert(str(cert))["subjectAltName"]  # the stdlib's own parser
    assert names == (("IP Address", "127.0.0.1"), ("DNS", "localhost"),
                     ("IP Address", "10.0.2.100"))  # fmt: skip
    plain, _key = make_cert(tmp_path / "plain")
    assert ssl._ssl._test_decode_cert(str(plain))["subjectAltName"] == names[:2]


def test_an_open_sale_pauses_the_download_and_it_resumes_after(tmp_path, server):
    target = tmp_path / "dl" / "b.raucb"
    chunks = iter(range(10**6))
    sale_open = lambda: next(chunks) >= 2  # noqa: E731 - the sale opens after 2 chunks
    got = fetch(server.url, target, size=len(BODY), sha256=SHA, ca_file=str(server.cert),
                keep_going=lambda: not sale_open())  # fmt: skip
    assert got.status == "paused" and not target.exists()
    kept = target.with_name("b.raucb.part").stat().st_size
    assert 0 < kept < len(BODY)
    got = fetch(server.url, target, size=len(BODY), sha256=SHA, ca_file=str(server.cert))
    assert got.status == "done" and target.read_bytes() == BODY
    assert server.ranges[-1] == f"bytes={kept}-"


def test_the_token_bucket_waits_what_the_rate_asks():
    now = [0.0]
    bucket = TokenBucket(1000, burst=1000, clock=lambda: now[0])
    assert bucket.take(1000) == 0.0  # the burst
    assert bucket.take(500) == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take(1000) == pytest.approx(1.0)
    now[0] += 10  # idle: the bucket refills only up to the burst
    assert bucket.take(1000) == 0.0
    assert bucket.take(1) == pytest.approx(0.001)


def test_a_measured_download_keeps_to_the_rate(tmp_path, server):
    # The waits the downloader asks for, on an injected clock that the waits advance:
    # bytes over (simulated) time is the configured rate.
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    rate = 50_000
    got = fetch(server.url, tmp_path / "b.raucb", size=len(BODY), sha256=SHA,
                ca_file=str(server.cert), rate=rate, clock=lambda: now[0],
                sleep=sleep)  # fmt: skip
    assert got.status == "done"
    burst = max(rate, download.CHUNK)
    assert now[0] == pytest.approx((len(BODY) - burst) / rate)


# -- the notice on the till -----------------------------------------------------------------
REGION = SigningKey(bytes(range(32, 64)))


def notice(**over) -> fmt.ReleaseNotice:
    fields = dict(version="9.0.0", compatible="tillbox-test", url="https://region.example/releases/b.raucb",
                  sha256=SHA, size=len(BODY), key_id="ab" * 32)  # fmt: skip
    return fmt.ReleaseNotice(**(fields | over))


@pytest.fixture
def keyed_till(till):
    till.config.update("sync", region_public_key=REGION.verify_key.encode().hex())
    return till


def test_a_notice_signed_by_another_key_is_refused_before_parsing(keyed_till):
    other = SigningKey(bytes(32))
    sealed = fmt.seal_region_data(other, keyed_till.tenant, notice(), 1, 1)
    with pytest.raises(region.RegionRefused) as exc:
        region.apply_signed(keyed_till, sealed, fmt.RELEASE, lambda n: pytest.fail("parsed"))
    assert exc.value.reason == "bad_signature"
    assert region.release_offer(keyed_till.log.conn) is None


def test_a_notice_is_offered_or_ignored_with_the_reason_once(keyed_till):
    sealed = fmt.seal_region_data(REGION, keyed_till.tenant, notice(), 5, 1)
    applied = region.apply_signed(keyed_till, sealed, fmt.RELEASE, lambda n: "other hardware")
    assert applied.status == "ignored"
    rows = queries.latest_of_types(keyed_till.log, (ev.UPDATE_IGNORED,), 5)
    assert [r[3]["reason"] for r in rows] == ["other hardware"]
    # the retained copy again at the next connect: nothing new in the log
    again = region.apply_signed(keyed_till, sealed, fmt.RELEASE, lambda n: "other hardware")
    assert again.status == "unchanged"
    assert region.release_offer(keyed_till.log.conn) is None
    newer = fmt.seal_region_data(REGION, keyed_till.tenant, notice(version="9.1.0"), 6, 2)
    assert region.apply_signed(keyed_till, newer, fmt.RELEASE, lambda n: "").status == "applied"
    assert region.release_offer(keyed_till.log.conn) == notice(version="9.1.0")


@pytest.mark.parametrize(
    "bad",
    [
        {"url": "http://region.example/b.raucb"},
        {"url": "https://user:pw@region.example/b.raucb"},
        {"size": 3 * 1024**3},
        {"size": 0},
        {"sha256": "AB" * 32},
        {"version": "9.0"},
    ],
)
def test_a_bad_notice_is_refused_whole(bad):
    with pytest.raises(fmt.wire.WireError) as exc:
        fmt.seal_region_data(REGION, "demo", notice(**bad), 1, 1)
    assert exc.value.reason == "malformed"


def test_offer_problem_names_each_reason():
    from appliance.updates import SlotState, UpdaterStatus, offer_problem

    status = UpdaterStatus(
        "tillbox-test",
        SlotState("A", "rootfs.0", "booted", True, "2.0.0"),
        SlotState("B", "rootfs.1", "inactive", True),
        "A",
    )
    ids = ["ab" * 32]
    assert offer_problem(status, "2.1.0", "tillbox-test", "ab" * 32, ids) == ""
    assert "hardware" in offer_problem(status, "2.1.0", "tillbox-rpi4", "ab" * 32, ids)
    assert "keyring" in offer_problem(status, "2.1.0", "tillbox-test", "cd" * 32, ids)
    assert "not newer" in offer_problem(status, "2.0.0", "tillbox-test", "ab" * 32, ids)


# -- tillbox update install URL --------------------------------------------------------------
def test_install_url_downloads_the_offered_bundle_then_installs(sim_till, kit, tmp_path):
    from appliance.testing import run_cli
    from drivers.updates import open_updater
    from edge.releases import notice as make_notice

    from .conftest import COMPATIBLE

    bundle = kit.bundle("9.0.0", COMPATIBLE)
    server = FileServer(tmp_path / "tls", bundle.read_bytes(), bundle.name).start()
    try:
        with Till.open(sim_till) as t:
            t.config.update("sync", region_public_key=REGION.verify_key.encode().hex())
            t.config.update("updates", download_ca=str(server.cert))
            sim_till.config_path.write_text(tomli_w.dumps(t.config.data))
        with Till.open(sim_till) as t:
            value = make_notice(bundle, kit.cert, server.url)
            region.apply_signed(t, fmt.seal_region_data(REGION, t.tenant, value, 1, 1))
        server.cut_after = 5000
        result = run_cli("update", "install", server.url, "--data-dir", str(sim_till.root))
        assert result.code == 0, result.err
        assert "installed 9.0.0 into slot B" in result.out
        assert server.ranges == [None, "bytes=5000-"]
        with Till.open(sim_till) as t:
            assert open_updater(t.config, t.data_dir).status().other.version == "9.0.0"
            types = [e.type for e in t.log.events() if e.type.startswith("update.")]
        assert types == ["update.offered", "update.downloaded", "update.started",
                         "update.installed"]  # fmt: skip
        status = run_cli("update", "status", "--data-dir", str(sim_till.root))
        assert "the region offers 9.0.0: installed" in status.out
    finally:
        server.close()


def test_install_url_of_a_file_that_is_not_the_notices_is_refused_in_one_line(
    sim_till, kit, tmp_path
):
    from appliance.testing import run_cli
    from edge.releases import notice as make_notice

    from .conftest import COMPATIBLE

    bundle = kit.bundle("9.0.0", COMPATIBLE)
    server = FileServer(tmp_path / "tls", bundle.read_bytes(), bundle.name).start()
    try:
        with Till.open(sim_till) as t:
            t.config.update("sync", region_public_key=REGION.verify_key.encode().hex())
            t.config.update("updates", download_ca=str(server.cert))
            sim_till.config_path.write_text(tomli_w.dumps(t.config.data))
        with Till.open(sim_till) as t:
            value = make_notice(bundle, kit.cert, server.url)
            lying = fmt.ReleaseNotice(**(value.to_json() | {"sha256": "0" * 64}))
            region.apply_signed(t, fmt.seal_region_data(REGION, t.tenant, lying, 1, 1))
        result = run_cli("update", "install", server.url, "--data-dir", str(sim_till.root))
        assert result.code == 4 and result.err.count("\n") == 1
        assert "does not have the SHA-256" in result.err
        with Till.open(sim_till) as t:
            types = [e.type for e in t.log.events() if e.type.startswith("update.")]
        assert types == ["update.offered", "update.download_failed"]
        assert not any((sim_till.root / "updates" / "downloads").iterdir())
    finally:
        server.close()
