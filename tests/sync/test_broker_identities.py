"""`tillbox edge broker ...`: a region creates its broker identities on the real mosquitto."""

from __future__ import annotations

import json
import signal
import stat

import paho.mqtt.client as mqtt
import pytest

from appliance.errors import TillError
from edge.broker import CONTROL_USER, LocalBroker
from systest.sync import run_tillbox

pytestmark = pytest.mark.slow


def login(port: int, username: str, password: str, client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=5)
    client.username_pw_set(username, password)
    return client


def publish_reason(port: int, username: str, password: str, topic: str) -> str:
    """Connect, publish once at QoS 1; the CONNACK's failure or the PUBACK's reason."""
    import threading

    done, out = threading.Event(), {}
    client = login(port, username, password, "anything")

    def on_connect(c, u, f, reason, p):
        if reason.is_failure:
            out["reason"] = f"connect: {reason}"
            done.set()
        else:
            c.publish(topic, b"x", qos=1)

    def on_publish(c, u, mid, reason, p):
        out["reason"] = str(reason)
        done.set()

    client.on_connect, client.on_publish = on_connect, on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    return out["reason"]


def test_init_add_device_and_worker_through_the_cli(tmp_path):
    broker = LocalBroker(tmp_path / "broker", {})
    # the identities file comes from `tillbox edge broker init`, not from the fixture
    (tmp_path / "admin-pw").write_text("the admin password\n")
    broker.control_password = "the admin password"
    dynsec = broker.dir / "dynamic-security.json"
    dynsec.unlink()
    args = ["--admin-password-file", str(tmp_path / "admin-pw"), "--admin-user", CONTROL_USER]
    made = run_tillbox("edge", "broker", "init", "--config", str(dynsec), *args)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(dynsec.stat().st_mode) == 0o600
    assert "the admin password" not in dynsec.read_text()
    again = run_tillbox("edge", "broker", "init", "--config", str(dynsec), *args)
    assert again.returncode == 1 and "already exists" in again.stderr
    broker.start()  # no identities yet: the CLI below logs in with the admin init wrote
    try:
        (tmp_path / "till-pw").write_text("till secret\n")
        (tmp_path / "worker-pw").write_text("worker secret\n")
        common = ["--broker", broker.url, *args, "--json"]
        added = run_tillbox(
            "edge", "broker", "add-device", *common,
            "--password-file", str(tmp_path / "till-pw"),
            "--tenant", "acme", "--device-id", "stall-9",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["client_id"] == "stall-9"
        worker = run_tillbox(
            "edge", "broker", "add-worker", *common,
            "--password-file", str(tmp_path / "worker-pw"), "--name", "tillbox-edge-7",
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr

        # the device logs in with its password and writes only under its own tenant and id
        port = broker.port
        assert publish_reason(port, "stall-9", "till secret", "tillbox/v1/acme/stall-9/seg") in (
            "Success",
            "No matching subscribers",
        )
        assert publish_reason(port, "stall-9", "till secret", "tillbox/v1/demo/stall-9/seg") == (
            "Not authorized"
        )
        assert publish_reason(port, "stall-9", "wrong", "tillbox/v1/acme/stall-9/seg").startswith(
            "connect:"
        )
        assert publish_reason(port, "tillbox-edge-7", "worker secret", "tillbox/v1/acme/x/ack") in (
            "Success",
            "No matching subscribers",
        )

        # refusals: a taken name, a wildcard in a name, an empty password; nothing changes
        twice = run_tillbox(
            "edge", "broker", "add-device", *common,
            "--password-file", str(tmp_path / "worker-pw"),
            "--tenant", "demo", "--device-id", "stall-9",
        )  # fmt: skip
        assert twice.returncode == 1 and "already has 'stall-9'" in twice.stderr
        assert publish_reason(port, "stall-9", "till secret", "tillbox/v1/acme/stall-9/seg") in (
            "Success",
            "No matching subscribers",
        )
        wild = run_tillbox(
            "edge", "broker", "add-device", *common,
            "--password-file", str(tmp_path / "till-pw"), "--tenant", "+", "--device-id", "x",
        )  # fmt: skip
        assert wild.returncode == 1 and "tenant must be a string of A-Z" in wild.stderr
        assert "got '+'" in wild.stderr
        (tmp_path / "empty").write_text("\n")
        empty = run_tillbox(
            "edge", "broker", "add-worker", *common,
            "--password-file", str(tmp_path / "empty"), "--name", "tillbox-edge-8",
        )  # fmt: skip
        assert empty.returncode == 1 and "is empty" in empty.stderr
        for out in (added, worker, twice, wild, empty):
            assert "till secret" not in out.stdout + out.stderr
            assert len(out.stderr.strip().splitlines()) <= 1
    finally:
        broker.stop(sig=signal.SIGKILL)


def test_the_suite_runs_the_shipped_config_with_only_ports_and_paths_substituted(tmp_path):
    from edge.broker import render_config, shipped_config

    shipped = shipped_config()
    broker = LocalBroker(tmp_path / "b", {}, tls=(tmp_path / "c.crt", tmp_path / "c.key"))
    rendered = broker.config_path.read_text().splitlines()
    directives = [line for line in shipped.splitlines() if line and not line.startswith("#")]
    substituted = ("plugin ", "plugin_opt_config_file ", "persistence_location ", "listener ")
    substituted += ("certfile ", "keyfile ")
    for line in directives:
        assert line in rendered or line.startswith(substituted), f"the suite drops {line!r}"
    added = [line for line in rendered if line not in shipped.splitlines()]
    assert all(
        line.startswith((*substituted, "log_dest ", "log_type ", "user root")) for line in added
    ), added
    for bound in ("max_packet_size", "max_queued_bytes", "use_username_as_clientid"):
        assert any(line.startswith(bound) for line in directives), f"{bound} is not shipped"
    assert sum(line == "use_username_as_clientid true" for line in rendered) == 2  # both listeners
    with pytest.raises(TillError, match="no longer has"):
        render_config(shipped, {"acl_file /etc/mosquitto/tillbox-acl.conf": "x"}, [])
