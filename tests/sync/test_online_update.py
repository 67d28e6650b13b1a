"""The online update delivery end to end: the region signs a release notice for a real
RAUC bundle (`tillbox edge release publish`), publishes it retained through the suite's
mosquitto with the shipped config, the till's sync agent applies it and downloads the
bundle over real HTTPS from the region (cut once half-way: it resumes); root's
`tillbox update apply` installs it into the simulated A/B card between shifts and
restarts into it. A sale open on the kiosk holds it back."""

from __future__ import annotations

import json

import pytest
import tomli_w

from appliance import events as ev
from appliance.saleopen import SaleMark
from appliance.till import Till
from drivers import update_fetch
from drivers.updates import open_updater
from systest.https import FileServer
from systest.sync import agent_proc, make_till, run_tillbox, wait_for
from systest.updates import TOOLS, ReleaseKit, missing
from tests.sync.test_region_agent import publisher_args

pytestmark = pytest.mark.slow
COMPATIBLE = "tillbox-test"


@pytest.fixture
def kit(tmp_path):
    gone = missing(TOOLS)
    if gone:
        pytest.skip(f"needs {', '.join(gone)} (Debian: rauc squashfs-tools)")
    return ReleaseKit(tmp_path / "release")


def types(folder) -> list[str]:
    with Till.open(folder) as t:
        return [e.type for e in t.log.events()]


def online_till(tmp_path, region, kit, server):
    till = make_till(tmp_path, "t1", region)
    with Till.open(till) as t:
        t.close_shift()  # installs happen between shifts
    config = till.load_config()
    config.update("updates", backend="sim://", keyring=str(kit.cert), compatible=COMPATIBLE,
                  download_ca=str(server.cert), download_rate=0, download_check_s=0.5)  # fmt: skip
    till.config_path.write_text(tomli_w.dumps(config.data))
    return till


def publish(tmp_path, broker, db_url, region, kit, bundle, url) -> dict:
    out = run_tillbox(
        "edge", "release", "publish", "--db", db_url, "--key", str(region.key_path),
        "--tenant", "demo", "--bundle", str(bundle), "--cert", str(kit.cert), "--url", url,
        *publisher_args(tmp_path, broker), "--json", timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_notice_comes_through_the_broker_and_the_till_installs(
    tmp_path, broker, db_url, region, kit
):
    bundle = kit.bundle("9.0.0", COMPATIBLE)
    server = FileServer(tmp_path / "tls", bundle.read_bytes(), bundle.name).start()
    try:
        server.cut_after = bundle.stat().st_size // 2
        till = online_till(tmp_path, region, kit, server)
        info = publish(tmp_path, broker, db_url, region, kit, bundle, server.url)
        assert info["delivered"] == ["published retained on tillbox/v1/demo/region/release"]
        assert info["notice"]["version"] == "9.0.0"
        agent = agent_proc(till, broker.url).start()
        try:
            wait_for(lambda: ev.UPDATE_DOWNLOADED in types(till), 60, "the download")
            # the agent is not root: it never installs (RAUC is root's)
            assert ev.UPDATE_STARTED not in types(till)
            applied = run_tillbox("update", "apply", "--data-dir", str(till.root), timeout=120)
        finally:
            agent.stop()
        assert applied.returncode == 0, applied.stderr
        assert "restarting into update 9.0.0" in applied.stdout
        seen = [t for t in types(till) if t.startswith("update.")]
        assert seen == ["update.offered", "update.downloaded", "update.started",
                        "update.installed"]  # fmt: skip
        assert server.ranges[0] is None and server.ranges[1].startswith("bytes=")
        with Till.open(till) as t:
            status = open_updater(t.config, t.data_dir).status()
        assert status.booted.version == "9.0.0"  # restarted into it: no shift was open
    finally:
        server.close()


def test_an_older_or_foreign_release_is_ignored_with_the_reason(
    tmp_path, broker, db_url, region, kit
):
    other = ReleaseKit(tmp_path / "other", name="not our release")
    bundle = other.bundle("9.0.0", COMPATIBLE)
    server = FileServer(tmp_path / "tls", b"unused").start()
    try:
        till = online_till(tmp_path, region, kit, server)
        publish(tmp_path, broker, db_url, region, other, bundle, server.url)
        agent = agent_proc(till, broker.url).start()
        try:
            wait_for(lambda: ev.UPDATE_IGNORED in types(till), 30, "the notice")
        finally:
            agent.stop()
        with Till.open(till) as t:
            ignored = [e.payload for e in t.log.events() if e.type == ev.UPDATE_IGNORED]
        assert "not in this till's keyring" in ignored[0]["reason"]
        assert server.ranges == []  # nothing fetched
    finally:
        server.close()


def test_an_open_sale_holds_the_download_and_the_install(tmp_path, region, kit):
    from appliance import region as till_region
    from appliance.formats import region as fmt
    from edge.releases import notice

    bundle = kit.bundle("9.0.0", COMPATIBLE)
    server = FileServer(tmp_path / "tls", bundle.read_bytes(), bundle.name).start()
    try:
        till = online_till(tmp_path, region, kit, server)
        sealed = fmt.seal_region_data(region.key, "demo", notice(bundle, kit.cert, server.url),
                                      1, 1)  # fmt: skip
        mark = SaleMark(till)
        with Till.open(till) as t:
            till_region.apply_signed(t, sealed, fmt.RELEASE, update_fetch.offer_checker(t))
            mark.set(True)  # the kiosk has a sale on its screen
            assert update_fetch.step(t) == "paused"
            assert server.ranges == []
            mark.set(False)
            t.open_shift()
            assert update_fetch.step(t) == "downloaded"
            updater = open_updater(t.config, t.data_dir)
            assert update_fetch.install_offered(t, updater) == "waiting"  # a shift is open
            assert ev.UPDATE_STARTED not in types(till)
            t.close_shift()
            assert update_fetch.install_offered(t, updater) == "installed"
            assert update_fetch.step(t) == "done"
            assert update_fetch.install_offered(t, updater) == "none"
    finally:
        server.close()
