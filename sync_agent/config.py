"""The ``[sync]`` section of tillbox.toml and the broker URL, validated once.

Secrets (the broker password) are read here and never appear in a log line or
``repr``: :meth:`BrokerURL.redacted` is what gets printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.boundedio import TEXT_FILE_LIMIT, read_text_bounded
from appliance.config import Section, Setting
from appliance.errors import TillError
from appliance.formats.brokerurl import BrokerURL

__all__ = ["DEFAULTS", "SECTIONS", "SyncConfig", "load", "read_password"]


def _num(kind: str, default: float, low: float, high: float) -> Setting:
    return Setting(kind, default, min=low, max=high)


# The [sync] section's schema, validated with the rest of tillbox.toml when it loads
# (the ``tillbox.config`` entry point names it).
SYNC = Section(
    {
        "broker": Setting("broker", ""),
        "username": Setting("text", ""),
        # inline password: accepted for old configs, but the self-test flags it; use
        # password_file (a 0600 file) instead
        "password": Setting("text", "", secret=True),
        "password_file": Setting("text", ""),
        "tls_ca": Setting("text", ""),
        "tls_cert": Setting("text", ""),
        "tls_key": Setting("text", ""),
        "region_public_key": Setting("text", ""),
        "segment_max_events": _num("int", 1000, 1, 10000),
        "segment_max_age_s": _num("float", 5, 0, 3600),
        "window": _num("int", 8, 1, 1000),
        "ack_timeout_s": _num("float", 30.0, 0.1, 3600),
        "keepalive_s": _num("int", 30, 1, 65535),
        "connect_timeout_s": _num("float", 10.0, 0.1, 3600),
        "session_expiry_s": _num("int", 7 * 24 * 3600, 0, 2**32 - 1),
        "backoff_min_s": _num("float", 0.5, 0, 3600),
        "backoff_max_s": _num("float", 60.0, 0, 86400),
        "client_id": Setting("text", ""),
        # state.json is rewritten at least this often while the agent runs; readers take
        # a file 3 intervals old to mean the agent is not running (appliance.sync_state)
        "state_interval_s": _num("float", 5.0, 0.5, 3600),
        # the signed health message (telemetry) goes out at start, on a change (looked
        # for every state_interval_s) and at least this often while online
        "health_interval_s": _num("float", 300.0, 1, 86400),
    }
)
SECTIONS = {"sync": SYNC}
DEFAULTS: dict[str, Any] = SYNC.defaults()


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
    state_interval_s: float = 5.0
    health_interval_s: float = 300.0


def read_password(section: dict[str, Any]) -> str:
    if section.get("password_file"):
        path = Path(section["password_file"])
        return read_text_bounded(path, TEXT_FILE_LIMIT, "[sync] password_file").strip()
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
            "state_interval_s": float(merged["state_interval_s"]),
            "health_interval_s": float(merged["health_interval_s"]),
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
