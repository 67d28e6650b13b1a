"""The ``[sync]`` section of tillbox.toml and the broker URL, validated once.

Secrets (the broker password) are read here and never appear in a log line or
``repr``: :meth:`BrokerURL.redacted` is what gets printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from appliance.errors import TillError

DEFAULTS: dict[str, Any] = {
    "broker": "",
    "username": "",
    "password": "",
    "password_file": "",
    "tls_ca": "",
    "tls_cert": "",
    "tls_key": "",
    "region_public_key": "",
    "segment_max_events": 1000,
    "segment_max_age_s": 5,
    "window": 8,
    "ack_timeout_s": 30.0,
    "keepalive_s": 30,
    "connect_timeout_s": 10.0,
    "session_expiry_s": 7 * 24 * 3600,
    "backoff_min_s": 0.5,
    "backoff_max_s": 60.0,
    "client_id": "",
}


@dataclass(frozen=True)
class BrokerURL:
    host: str
    port: int
    tls: bool
    username: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, text: str) -> BrokerURL:
        parts = urlsplit(text.strip())
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise TillError(
                f"broker {cls._redact(text)!r} must look like mqtt://HOST:PORT or "
                "mqtts://HOST:PORT; set --broker or [sync] broker"
            )
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise TillError(f"broker {cls._redact(text)!r} has a bad port number") from None
        return cls(
            parts.hostname, port, tls, unquote(parts.username or ""), unquote(parts.password or "")
        )

    @staticmethod
    def _redact(text: str) -> str:
        parts = urlsplit(text)
        if parts.password:
            return text.replace(f":{parts.password}@", ":***@")
        return text

    def redacted(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


@dataclass(frozen=True)
class SyncConfig:
    broker: BrokerURL
    username: str
    password: str = field(repr=False)
    tls_ca: str
    tls_cert: str
    tls_key: str
    region_public_key: str
    segment_max_events: int
    segment_max_age_s: float
    window: int
    ack_timeout_s: float
    keepalive_s: int
    connect_timeout_s: float
    session_expiry_s: int
    backoff_min_s: float
    backoff_max_s: float
    client_id: str


def read_password(section: dict[str, Any]) -> str:
    if section.get("password_file"):
        path = Path(section["password_file"])
        try:
            return path.read_text().strip()
        except OSError:
            raise TillError(
                f"cannot read [sync] password_file {path}; check the path and its permissions"
            ) from None
    return str(section.get("password", ""))


def load(section: dict[str, Any], broker_override: str | None) -> SyncConfig:
    """Merge defaults, the config section and the --broker flag; validate."""
    merged = {**DEFAULTS, **section}
    broker_text = broker_override or merged["broker"]
    if not broker_text:
        raise TillError(
            "no broker given; pass --broker mqtt://HOST:PORT or set [sync] broker in tillbox.toml"
        )
    broker = BrokerURL.parse(broker_text)
    try:
        numbers = {
            "segment_max_events": int(merged["segment_max_events"]),
            "segment_max_age_s": float(merged["segment_max_age_s"]),
            "window": int(merged["window"]),
            "ack_timeout_s": float(merged["ack_timeout_s"]),
            "keepalive_s": int(merged["keepalive_s"]),
            "connect_timeout_s": float(merged["connect_timeout_s"]),
            "session_expiry_s": int(merged["session_expiry_s"]),
            "backoff_min_s": float(merged["backoff_min_s"]),
            "backoff_max_s": float(merged["backoff_max_s"]),
        }
    except (TypeError, ValueError) as exc:
        raise TillError(f"[sync] in tillbox.toml has a bad number ({exc}); fix it") from None
    if not 1 <= numbers["segment_max_events"] <= 10000:
        raise TillError("[sync] segment_max_events must be between 1 and 10000")
    if numbers["window"] < 1:
        raise TillError("[sync] window must be at least 1")
    return SyncConfig(
        broker=broker,
        username=broker.username or str(merged["username"]),
        password=broker.password or read_password(merged),
        tls_ca=str(merged["tls_ca"]),
        tls_cert=str(merged["tls_cert"]),
        tls_key=str(merged["tls_key"]),
        region_public_key=str(merged["region_public_key"]),
        client_id=str(merged["client_id"]),
        **numbers,
    )
