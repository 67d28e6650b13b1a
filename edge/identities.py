"""The region broker's identities: who may log in, under which client id, to which topics.

mosquitto's dynamic-security plugin holds them (``edge/mosquitto/mosquitto.conf`` loads
it); this module is the one home of what each kind of identity may do. Every identity
is one dynsec client whose client id is fixed to its username (and the listeners set
``use_username_as_clientid``), plus a role of its own that names its exact topics:

* a device (a till) publishes only ``tillbox/v1/<tenant>/<device>/seg`` and ``.../health``
  and subscribes only to its own ack topic, its own ``.../down/#`` messages and its own
  tenant's region topics: its tenant is fixed here, in the broker, not chosen by the device;
* an ingest worker subscribes to the segments and the health messages only through
  ``$share/tillbox-ingest``, writes acks, and may write to segment topics (to clear a
  retained copy a device left);
* a publisher writes the region's signed updates and the per-device ``down`` messages.

The file is created once with an admin (:func:`initial_config`, broker stopped).
Identities are added while the broker runs, through its ``$CONTROL`` topic (the JSON
commands ``mosquitto_ctrl`` sends): they apply at once and the plugin saves them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from appliance.errors import TillError
from appliance.formats import wire
from appliance.formats.brokerurl import BrokerURL
from appliance.identifiers import check_device_id, check_identifier
from mqttio.client import make_client

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
# Letters, digits, dot, dash, underscore: never an MQTT wildcard, a level separator or '$'.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# mosquitto's own format: PBKDF2-HMAC-SHA512, 12-byte salt, 101 rounds (PW_DEFAULT_ITERATIONS).
SALT_BYTES, PW_ITERATIONS = 12, 101


@dataclass(frozen=True)
class Identity:
    """One broker login: its username (= its client id) and its role's ACLs."""

    username: str
    kind: str
    acls: tuple[tuple[str, str], ...]  # (acltype, topic), all allow

    @property
    def rolename(self) -> str:
        return f"tillbox-role-{self.username}"


def check_name(what: str, name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise TillError(
            f"{what} {name!r} must be 1-64 letters, digits, '.', '-' or '_' (no '/', '+', "
            "'#' or '$'); choose another"
        )
    return name


def device(tenant: str, device_id: str) -> Identity:
    # the one rule a till's id and tenant follow everywhere else (init, edge enroll,
    # provisioning): a login the till could never be named by is refused here too
    check_identifier(tenant, "tenant")
    check_device_id(device_id)  # not "region": the tenant's broadcast tree
    seg, ack = wire.topic_seg(tenant, device_id), wire.topic_ack(tenant, device_id)
    health = wire.topic_health(tenant, device_id)
    down = wire.topic_down(tenant, device_id, "#")
    region = f"tillbox/v1/{tenant}/region/#"
    return Identity(
        device_id,
        "device",
        (
            ("publishClientSend", seg),
            ("publishClientSend", health),
            ("subscribePattern", down),
            ("publishClientReceive", down),
            ("subscribeLiteral", ack),
            ("publishClientReceive", ack),
            ("subscribePattern", region),
            ("publishClientReceive", region),
        ),
    )


def worker(name: str) -> Identity:
    check_name("worker name", name)
    return Identity(
        name,
        "worker",
        (
            # the subscribe ACL sees the whole filter, $share prefix included
            ("subscribeLiteral", wire.SHARED_SEG_SUBSCRIPTION),
            ("subscribeLiteral", wire.SHARED_HEALTH_SUBSCRIPTION),
            ("publishClientReceive", "tillbox/v1/+/+/seg"),
            ("publishClientReceive", "tillbox/v1/+/+/health"),
            ("publishClientSend", "tillbox/v1/+/+/ack"),
            ("publishClientSend", "tillbox/v1/+/+/seg"),  # only to clear a retained copy
            # the stalls' shared stock snapshots, signed by the region key after ingest
            ("publishClientSend", "tillbox/v1/+/region/stock/+"),
        ),
    )


def publisher(name: str) -> Identity:
    check_name("publisher name", name)
    return Identity(
        name,
        "publisher",
        (
            ("publishClientSend", "tillbox/v1/+/region/#"),
            ("publishClientSend", "tillbox/v1/+/+/down/#"),
        ),
    )


def superuser(name: str) -> Identity:
    """Reads and writes everything (tests that must bypass the device ACLs)."""
    check_name("name", name)
    return Identity(
        name,
        "superuser",
        (("publishClientSend", "#"), ("publishClientReceive", "#"), ("subscribePattern", "#")),
    )


def admin_acls() -> tuple[tuple[str, str], ...]:
    return (
        ("publishClientSend", CONTROL_TOPIC),
        ("subscribeLiteral", RESPONSE_TOPIC),
        ("publishClientReceive", RESPONSE_TOPIC),
    )


# -- the plugin's file ---------------------------------------------------------------------
def hash_password(password: str) -> dict[str, Any]:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PW_ITERATIONS)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": PW_ITERATIONS,
    }


def _acl_list(acls: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    return [{"acltype": t, "topic": topic, "priority": 0, "allow": True} for t, topic in acls]


def initial_config(admin_user: str, admin_password: str) -> dict[str, Any]:
    """The plugin's file with one admin that may only send $CONTROL commands; by default
    nobody may publish, receive or subscribe to anything."""
    check_name("admin user", admin_user)
    role = f"tillbox-role-{admin_user}"
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": [
            {
                "username": admin_user,
                "clientid": admin_user,
                "textname": "tillbox broker admin",
                "roles": [{"rolename": role}],
                **hash_password(admin_password),
            }
        ],
        "groups": [],
        "roles": [{"rolename": role, "acls": _acl_list(admin_acls())}],
    }


def write_initial_config(path: Path, admin_user: str, admin_password: str) -> None:
    """Create the plugin's file (0600), never over an existing one."""
    if path.exists():
        raise TillError(
            f"{path} already exists; the broker's identities live there (add more with "
            "`tillbox edge broker add-device`), or move it away to start over"
        )
    data = json.dumps(initial_config(admin_user, admin_password), indent=2).encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dynsec-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.link(tmp, path)  # fails if someone created it meanwhile: never overwrite
    finally:
        os.unlink(tmp)


# -- commands to a running broker ---------------------------------------------------------
def create_commands(identity: Identity, password: str) -> list[dict[str, Any]]:
    if not password:
        raise TillError(f"the password for {identity.username} is empty; put one in the file")
    return [
        {
            "command": "createRole",
            "rolename": identity.rolename,
            "acls": _acl_list(identity.acls),
        },
        {
            "command": "createClient",
            "username": identity.username,
            "password": password,
            "clientid": identity.username,
            "textname": f"tillbox {identity.kind}",
            "roles": [{"rolename": identity.rolename}],
        },
    ]


class Control:
    """Sends dynsec commands over MQTT as the broker admin and waits for the answers."""

    def __init__(
        self, broker: BrokerURL, admin_user: str, admin_password: str, tls_ca: str = ""
    ) -> None:
        self.broker = broker
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.tls_ca = tls_ca

    def run(self, commands: list[dict[str, Any]], timeout_s: float = 15.0) -> list[dict]:
        """Send ``commands`` in one request; return the broker's response for each."""
        tag = uuid.uuid4().hex
        for i, command in enumerate(commands):
            command["correlationData"] = f"{tag}-{i}"
        done = threading.Event()
        state: dict[str, Any] = {}
        client = make_client(
            self.admin_user,
            username=self.admin_user,
            password=self.admin_password,
            tls=self.broker.tls,
            tls_ca=self.tls_ca,
        )

        def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
            if reason.is_failure:
                state["error"] = f"the broker refused the admin login ({reason})"
                done.set()
                return
            c.subscribe(RESPONSE_TOPIC, qos=1)

        def on_subscribe(c: mqtt.Client, u: Any, mid: int, reasons: Any, props: Any) -> None:
            if any(r.is_failure for r in reasons):
                state["error"] = "the broker refused the admin the $CONTROL response topic"
                done.set()
                return
            c.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)

        def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
            try:
                responses = json.loads(msg.payload)["responses"]
            except (ValueError, KeyError, TypeError):
                return
            mine = [r for r in responses if str(r.get("correlationData", "")).startswith(tag)]
            if mine:
                state["responses"] = mine
                done.set()

        client.on_connect, client.on_subscribe, client.on_message = (
            on_connect,
            on_subscribe,
            on_message,
        )
        try:
            client.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as exc:
            raise TillError(
                f"cannot reach {self.broker.redacted()} ({exc}); check --broker"
            ) from None
        client.loop_start()
        try:
            if not done.wait(timeout_s):
                raise TillError(
                    f"no answer from {self.broker.redacted()}'s dynamic-security plugin within "
                    f"{timeout_s:g} s; check that mosquitto.conf loads it and the admin user"
                )
        finally:
            client.disconnect()
            client.loop_stop()
        if "error" in state:
            raise TillError(f"{state['error']}; check --admin-user and --admin-password-file")
        return state["responses"]

    def add(self, identity: Identity, password: str) -> dict[str, Any]:
        """Create ``identity``; refuse (and change nothing) if its name or role is taken."""
        existing = self.run(
            [
                {"command": "getClient", "username": identity.username},
                {"command": "getRole", "rolename": identity.rolename},
            ]
        )
        if any("error" not in r for r in existing):
            raise TillError(
                f"the broker already has {identity.username!r}; pick another name or delete "
                f"it first (mosquitto_ctrl dynsec deleteClient {identity.username}; "
                f"deleteRole {identity.rolename})"
            )
        commands = create_commands(identity, password)
        failed = [r for r in self.run(commands) if "error" in r]
        if failed:
            self.run([{"command": "deleteRole", "rolename": identity.rolename}])  # all or nothing
            raise TillError(
                f"the broker refused to create {identity.username!r} "
                f"({failed[0]['command']}: {failed[0]['error']}); nothing was added"
            )
        return {
            "username": identity.username,
            "client_id": identity.username,
            "kind": identity.kind,
            "topics": [{"acltype": t, "topic": topic} for t, topic in identity.acls],
        }
