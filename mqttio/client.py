"""One place that builds a paho-mqtt 2.x client the way tillbox needs it.

MQTT v5, a persistent session (clean start off plus a session expiry), QoS 1,
TLS and username/password when configured. The agent and the edge both use it.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

if TYPE_CHECKING:
    from appliance.formats.brokerurl import BrokerURL


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


class BrokerLogin(Protocol):
    """How a service reaches the broker: the sync agent's ``[sync]`` settings and the
    edge's serve options both have these."""

    broker: BrokerURL
    username: str
    password: str
    tls_ca: str
    tls_cert: str
    tls_key: str


class SessionCallbacks(NamedTuple):
    """A long-running service's reactions to its session (paho's callback API v2)."""

    on_connect: Callable[..., None]
    on_subscribe: Callable[..., None]
    on_disconnect: Callable[..., None]
    on_message: Callable[..., None]


def session_client(
    client_id: str,
    login: BrokerLogin,
    callbacks: SessionCallbacks,
    connect_timeout_s: float = 10.0,
) -> mqtt.Client:
    """A client for ``login``, wired to ``callbacks``; connect it with :func:`start_session`."""
    client = make_client(
        client_id,
        username=login.username,
        password=login.password,
        tls=login.broker.tls,
        tls_ca=login.tls_ca,
        tls_cert=login.tls_cert,
        tls_key=login.tls_key,
        connect_timeout_s=connect_timeout_s,
    )
    client.on_connect = callbacks.on_connect
    client.on_subscribe = callbacks.on_subscribe
    client.on_disconnect = callbacks.on_disconnect
    client.on_message = callbacks.on_message
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
