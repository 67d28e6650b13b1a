"""What the fleet page says about a till, from its enrolled row and its latest telemetry.

Pure code, no I/O: :func:`health` takes a row of :func:`console.queries.fleet` and the
time, and returns what the technician sees. The telemetry body is the JSON the sync
agent signed and the edge verified (its keys are in docs/console.md, "Fleet"); a key the
till did not send shows as unknown rather than failing the page. A till is flagged
silent when it has not been heard for longer than ``silent_after_ms`` (``tillbox edge
web --silent-after MIN``), or never at all.
"""

from __future__ import annotations

from typing import Any

SILENT_AFTER_MS = 15 * 60 * 1000  # the agent reports every few minutes while online


def _get(body: dict[str, Any], *path: str) -> Any:
    value: Any = body
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _num(value: Any) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _whole(value: Any) -> int | None:
    return value if type(value) is int else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def health(row: dict[str, Any], now_ms: int, silent_after_ms: int = SILENT_AFTER_MS) -> dict:
    """The fleet page's view of one till (also the API's ``/api/v1/fleet`` device)."""
    body = row.get("telemetry") or {}
    received, sent = row.get("received_ms"), row.get("sent_ms")
    queued = _whole(_get(body, "queued_events"))
    drain = _num(_get(body, "drain_estimate_s"))
    checks = _get(body, "selftest", "checks")
    selftest = None
    if isinstance(_get(body, "selftest"), dict):
        selftest = {
            "verdict": _text(_get(body, "selftest", "verdict")) or "unknown",
            "at_ms": _whole(_get(body, "selftest", "wall_ms")),
            "checks": [
                {
                    "name": str(c.get("name", "?")),
                    "result": str(c.get("result", "?")),
                    "value": "" if c.get("value") is None else str(c.get("value")),
                    "fix": str(c.get("fix", "") or ""),
                }
                for c in checks
                if isinstance(c, dict)
            ]
            if isinstance(checks, list)
            else [],
        }
    silent_ms = None if received is None else max(0, now_ms - received)
    flags = []
    if received is None:
        flags.append("never reported")
    elif silent_ms > silent_after_ms:
        flags.append(f"silent for {_minutes(silent_ms)}")
    if row.get("revoked"):
        flags.append("key revoked")
    paper = _text(_get(body, "printer", "paper"))
    if paper in ("out", "low"):
        flags.append(f"paper {paper}")
    alarm = _text(_get(body, "engraver", "alarm"))
    if alarm:
        flags.append(f"engraver alarm: {alarm}")
    if selftest and selftest["verdict"] not in ("pass", "unknown"):
        flags.append(f"self-test {selftest['verdict']}")
    on_battery = _get(body, "power", "source") == "battery"
    if on_battery:
        flags.append("on battery")
    return {
        "device_id": row["device_id"],
        "tenant": row["tenant"],
        "stall": row.get("stall", ""),
        "label": row.get("label", ""),
        "last_seen_ms": received,
        "silent_ms": silent_ms,
        "silent": received is None or silent_ms > silent_after_ms,
        "version": _text(_get(body, "version")),
        "queued_events": queued,
        "drain_estimate_s": drain,
        "selftest": selftest,
        "paper": paper,
        "engraver_alarm": alarm,
        "power": {
            "source": _text(_get(body, "power", "source")),
            "battery_pct": _num(_get(body, "power", "battery_pct")),
        },
        # the till's clock minus the region's, at the moment the message arrived
        "clock_skew_ms": None if received is None or sent is None else sent - received,
        "card_exposure_minor": _whole(_get(body, "card_exposure_minor")),
        "card_limit_minor": _whole(_get(body, "card_limit_minor")),
        "currency": _text(_get(body, "currency")) or "EUR",
        "events_stored": row.get("events_stored", 0),
        "revoked": row.get("revoked"),
        "flags": flags,
    }


def _minutes(ms: int) -> str:
    minutes = ms // 60000
    if minutes < 1:
        return f"{ms // 1000} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
