"""Signing and publishing a region update (a catalog) as a retained QoS 1 message.

Retained, so a till that was offline gets the latest catalog when it connects;
signed by the region key, so a till applies nothing a broker or a neighbour
could have forged. The till ignores versions it has already applied.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from nacl.signing import SigningKey

from appliance.catalog import Catalog
from appliance.errors import TillError
from appliance.formats import wire
from appliance.formats.brokerurl import BrokerURL
from mqttio.client import make_client


def publish_update(
    broker: BrokerURL,
    username: str,
    password: str,
    key: SigningKey,
    tenant: str,
    catalog: dict[str, Any],
    version: int | None = None,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    Catalog.from_json(catalog)  # refuse a bad catalog here, not on every till
    update = wire.RegionUpdate(
        tenant=tenant,
        kind="catalog",
        version=version or time.time_ns() // 1_000_000,
        issued_wall_ms=time.time_ns() // 1_000_000,
        data=catalog,
    )
    data = wire.seal_update(key, update)
    topic = wire.topic_region(tenant, "catalog")
    send_bytes(broker, username, password, topic, data, retain=True, timeout_s=timeout_s)
    return {"topic": topic, "version": update.version, "bytes": len(data)}


def send_bytes(
    broker: BrokerURL,
    username: str,
    password: str,
    topic: str,
    data: bytes,
    *,
    retain: bool = False,
    timeout_s: float = 15.0,
    client_id: str = "",
) -> mqtt.ReasonCode | None:
    """Connect, publish once at QoS 1, wait for the PUBACK; returns its reason code."""
    done = threading.Event()
    result: dict[str, Any] = {}
    client = make_client(
        # the region broker uses the username as the client id whatever is sent here
        client_id or username or f"tillbox-pub-{time.time_ns()}",
        username=username,
        password=password,
        tls=broker.tls,
    )

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            result["error"] = f"broker refused the connection ({reason})"
            done.set()
            return
        c.publish(topic, data, qos=1, retain=retain)

    def on_publish(c: mqtt.Client, u: Any, mid: int, reason: Any, props: Any) -> None:
        result["reason"] = reason
        done.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as exc:
        raise TillError(f"cannot reach {broker.redacted()} ({exc}); check --broker") from None
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            raise TillError(
                f"no answer from {broker.redacted()} within {timeout_s} s; check "
                "the broker and the credentials"
            )
    finally:
        client.disconnect()
        client.loop_stop()
    if "error" in result:
        raise TillError(f"{result['error']}; check --username and the password")
    reason = result.get("reason")
    if reason is not None and reason.is_failure:
        raise TillError(f"the broker refused the publish to {topic} ({reason}); check the ACL")
    return reason
