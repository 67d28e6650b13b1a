"""One place that builds a paho-mqtt 2.x client the way tillbox needs it.

MQTT v5, a persistent session (clean start off plus a session expiry), QoS 1,
TLS and username/password when configured. The agent and the edge both use it.
"""

from __future__ import annotations

import random
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def make_client(
    client_id: str,
    *,
    username: str = "",
    password: str = "",
    tls: bool = False,
    tls_ca: str = "",
    tls_cert: str = "",
    tls_key: str = "",
    connect_timeout_s: float = 10.0,
    manual_ack: bool = False,
) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    client.connect_timeout = connect_timeout_s
    if username:
        client.username_pw_set(username, password or None)
    if tls or tls_ca or tls_cert:
        context = ssl.create_default_context(cafile=tls_ca or None)
        if tls_cert:
            context.load_cert_chain(tls_cert, tls_key or None)
        client.tls_set_context(context)
    return client


def connect_properties(session_expiry_s: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = int(session_expiry_s)
    return props


def jittered_backoff_s(attempt: int, min_s: float, max_s: float) -> float:
    """Delay before reconnect number ``attempt`` (0-based): exponential up to ``max_s``, drawn
    from the upper half of the window so a fleet that lost the broker together does not
    come back together (no thundering herd)."""
    ceiling = min(max_s, min_s * 2**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def start_session(
    client: mqtt.Client, host: str, port: int, keepalive_s: int, session_expiry_s: int
) -> None:
    """Begin a persistent MQTT v5 session (clean start off); raises OSError/ValueError."""
    client.connect(
        host,
        port,
        keepalive=keepalive_s,
        clean_start=False,
        properties=connect_properties(session_expiry_s),
    )


def close_quietly(client: Any) -> None:
    """Disconnect and close the socket of a client that may already be half dead."""
    if client is None:
        return
    try:
        sock = client.socket()
        client.disconnect()
        if sock is not None:
            sock.close()
    except Exception:  # noqa: BLE001 - a dying connection may fail in any way
        pass
