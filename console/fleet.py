"""What the fleet page says about a till, from its enrolled row and its latest telemetry.

Pure code, no I/O: :func:`health` takes a row of :func:`console.queries.fleet` and the
time, and returns what the technician sees. The telemetry body is the health message the sync
agent signed and the edge verified (``TBHL``, docs/formats.md); a field the till did not
send shows as unknown rather than failing the page. A till is flagged
silent when it has not been heard for longer than ``silent_after_ms`` (``tillbox edge
web --silent-after MIN``), or never at all.
"""

from __future__ import annotations

from typing import Any

SILENT_AFTER_MS = 15 * 60 * 1000  # the agent reports every few minutes while online
SLOTS = ("A", "B")


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


def _selftest(body: dict[str, Any]) -> dict[str, Any] | None:
    """The last self-test as the till reported it: verdict, when, each check's status."""
    raw = body.get("selftest")
    if not isinstance(raw, dict):
        return None
    checks = [
        {"name": str(c.get("name", "?")), "result": str(c.get("status", "?"))}
        for c in raw.get("checks") or []
        if isinstance(c, dict)
    ]
    verdict = "pass" if raw.get("ok") is True else "fail"
    if verdict == "pass" and any(c["result"] == "warn" for c in checks):
        verdict = "warn"
    return {"verdict": verdict, "at_ms": _whole(raw.get("at_ms")), "checks": checks}


def _update(body: dict[str, Any]) -> dict[str, Any]:
    """The till's system update as it reported it (TBHL ``update``), with the line the
    fleet page shows. A till from before updates sends none: its tillbox version only."""
    raw = body.get("update")
    raw = raw if isinstance(raw, dict) else {}
    state = _text(raw.get("state"))
    running = _text(raw.get("running")) or _text(body.get("version"))
    slot = raw.get("slot") if raw.get("slot") in SLOTS else None
    version = _text(raw.get("version"))
    reason = _text(raw.get("reason"))
    where = f" in slot {slot}" if slot else ""
    now = f"{running or '?'}{where}"
    why = f": {reason}" if reason else ""
    text = {
        None: running or "?",
        "none": now,
        "committed": now,
        "trial": f"{running or '?'} on trial{where}",
        "installing": f"{now}, installing {version}",
        "interrupted": f"{now}; the install of {version} was cut off",
        "awaiting_reboot": f"{now}; {version} installed, starts at the restart",
        "rolled_back": f"rolled back from {version}{why}; runs {now}",
        "failed": f"the update to {version} failed{why}; runs {now}",
    }.get(state, f"{now} ({state})")
    return {
        "state": state,
        "running": running,
        "slot": slot,
        "version": version,
        "reason": reason,
        "at_ms": _whole(raw.get("at_ms")),
        "text": text,
    }


def health(row: dict[str, Any], now_ms: int, silent_after_ms: int = SILENT_AFTER_MS) -> dict:
    """The fleet page's view of one till (also the API's ``/api/v1/fleet`` device)."""
    body = row.get("telemetry") or {}
    received, sent = row.get("received_ms"), row.get("sent_ms")
    selftest = _selftest(body)
    silent_ms = None if received is None else max(0, now_ms - received)
    silent = received is None or silent_ms > silent_after_ms
    paper = _text(body.get("printer_paper"))
    alarm = _text(body.get("engraver_alarm"))
    source = _text(_get(body, "power", "source"))
    update = _update(body)
    flags = []
    if received is None:
        flags.append("never reported")
    elif silent:
        flags.append(f"silent for {_minutes(silent_ms)}")
    if row.get("revoked"):
        flags.append("key revoked")
    if paper in ("out", "low"):
        flags.append(f"paper {paper}")
    if alarm:
        flags.append(f"engraver alarm: {alarm}")
    if selftest and selftest["verdict"] == "fail":
        failed = [c["name"] for c in selftest["checks"] if c["result"] == "fail"]
        flags.append("self-test failed" + (f": {', '.join(failed)}" if failed else ""))
    if source == "battery":
        flags.append("on battery")
    if update["state"] in ("rolled_back", "failed", "interrupted"):
        flags.append(
            {"rolled_back": "update rolled back", "failed": "update failed"}.get(
                update["state"], "update cut off"
            )
        )
    return {
        "device_id": row["device_id"],
        "tenant": row["tenant"],
        "stall": row.get("stall", ""),
        "label": row.get("label", ""),
        "last_seen_ms": received,
        "silent_ms": silent_ms,
        "silent": silent,
        "version": _text(body.get("version")),
        "queued_events": _whole(body.get("queued_events")),
        "drain_estimate_s": _num(body.get("drain_estimate_s")),
        "selftest": selftest,
        "paper": paper,
        "engraver_alarm": alarm,
        "power": {"source": source, "battery_pct": _whole(_get(body, "power", "battery_pct"))},
        # the till's clock minus the region's when the message arrived (transit is small)
        "clock_skew_ms": None if received is None or sent is None else sent - received,
        "card_exposure_minor": _whole(body.get("card_exposure_minor")),
        "currency": _text(body.get("currency")) or "EUR",
        "update": update,
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
