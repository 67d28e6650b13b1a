"""A till's signed health message (``TBHL``): what the region's fleet page shows.

The sync agent publishes one on ``tillbox/v1/{tenant}/{device}/health`` (QoS 1, never
retained) at start, on a change and every ``[sync] health_interval_s`` while online.
The layout is the wire's common envelope (:mod:`appliance.formats.wire`)::

    "TBHL" | 0x01 | canonical JSON body | Ed25519 signature by the device key (64 bytes)

The receiver checks the size (at most :data:`MAX_HEALTH_BYTES`), the magic and the
signature against the device key it enrolled for the topic's device *before* it parses
a byte of the body; then the body must be canonical JSON (the core's strict reader)
with exactly the fields of :class:`Health`, each of its type and within its bounds. The
bounds keep every message the agent can build under the size limit (a test builds the
largest). docs/formats.md, section 4 ("Health") gives the bytes and a test vector.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from nacl.signing import SigningKey, VerifyKey

from appliance.formats.canonical import (
    CanonicalFormError,
    NotJSONError,
    canonical_bytes,
    parse_canonical,
)
from appliance.formats.wire import WireError, verify_signed
from appliance.identifiers import is_identifier

HEALTH_MAGIC = b"TBHL"
HEALTH_VERSION = 1
MAX_HEALTH_BYTES = 4096  # the whole message, signature included

PAPER_STATES = ("ok", "low", "out", "unknown")
POWER_SOURCES = ("mains", "battery", "unknown")
CHECK_STATUSES = ("pass", "warn", "fail")
MAX_CHECKS = 24
MAX_ALARM_CHARS = 200
MAX_VERSION_CHARS = 32
CHECK_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}")
_CURRENCY = re.compile(r"(?:[A-Z]{3})?")

_KEYS = frozenset(
    {
        "device",
        "tenant",
        "sent_ms",
        "version",
        "queued_events",
        "drain_estimate_s",
        "selftest",
        "printer_paper",
        "engraver_alarm",
        "power",
        "card_exposure_minor",
        "currency",
    }
)
_OPTIONAL = frozenset({"update"})  # absent from messages of tills before updates
UPDATE_STATES = (
    "none",
    "installing",
    "interrupted",
    "awaiting_reboot",
    "trial",
    "committed",
    "rolled_back",
    "failed",
)
SLOTS = ("A", "B")
MAX_REASON_CHARS = 160  # a 4-byte character each still fits the 4 KiB (a test)
_UPDATE_KEYS = frozenset({"at_ms", "reason", "running", "seq", "slot", "state", "version"})


@dataclass(frozen=True)
class Selftest:
    """The latest recorded self-test: when, its verdict, and each check's result."""

    at_ms: int  # the wall clock of its selftest.recorded event
    ok: bool  # verdict "pass": no fatal check failed
    checks: tuple[tuple[str, str], ...]  # (name, pass | warn | fail), in recorded order

    def to_json(self) -> dict[str, Any]:
        return {
            "at_ms": self.at_ms,
            "checks": [{"name": n, "status": s} for n, s in self.checks],
            "ok": self.ok,
        }


@dataclass(frozen=True)
class Update:
    """The till's system update state, from the newest ``update.*`` event in its log
    (:func:`appliance.updates.logged_state`)."""

    state: str  # one of UPDATE_STATES
    running: str | None  # the version it runs; None: not known from the log (never updated)
    slot: str | None  # A | B, the root slot it runs from; None when not known
    version: str | None  # the last update's version; None with state "none"
    reason: str | None  # why it rolled back or failed (one line); None otherwise
    seq: int | None  # the log seq of that update event; None with state "none"
    at_ms: int | None  # its wall clock

    def to_json(self) -> dict[str, Any]:
        return {
            "at_ms": self.at_ms,
            "reason": self.reason,
            "running": self.running,
            "seq": self.seq,
            "slot": self.slot,
            "state": self.state,
            "version": self.version,
        }


@dataclass(frozen=True)
class Health:
    device: str
    tenant: str
    sent_ms: int  # the till's wall clock when it built the message (skew = received - sent)
    version: str  # tillbox's version on the till
    queued_events: int  # events in the log after the acked seq
    drain_estimate_s: int | None  # whole seconds to drain once online; None when unknown
    selftest: Selftest | None  # None: no self-test recorded yet
    printer_paper: str  # ok | low | out | unknown
    engraver_alarm: str | None  # the engraver's last alarm text; None when not in alarm
    power_source: str  # mains | battery | unknown
    battery_pct: int | None  # 0-100; None when nothing measures it
    card_exposure_minor: int  # unsynced card payments (Till.card_exposure_minor)
    currency: str  # of card_exposure_minor: the shop's currency, "" before a catalog
    update: Update | None = field(default=None)  # absent from the body when None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "card_exposure_minor": self.card_exposure_minor,
            "currency": self.currency,
            "device": self.device,
            "drain_estimate_s": self.drain_estimate_s,
            "engraver_alarm": self.engraver_alarm,
            "power": {"battery_pct": self.battery_pct, "source": self.power_source},
            "printer_paper": self.printer_paper,
            "queued_events": self.queued_events,
            "selftest": None if self.selftest is None else self.selftest.to_json(),
            "sent_ms": self.sent_ms,
            "tenant": self.tenant,
            "version": self.version,
        }
        if self.update is not None:
            out["update"] = self.update.to_json()
        return out

    def status_key(self) -> tuple[Any, ...]:
        """What a change of publishes at once (the counters wait for the next interval)."""
        return (
            self.version,
            self.selftest,
            self.printer_paper,
            self.engraver_alarm,
            self.power_source,
            self.battery_pct,
            self.currency,
            self.update,
            self.queued_events == 0,  # drained (or not) is news; each count is not
        )


# -- reading ------------------------------------------------------------------------------
def _bad(what: str) -> WireError:
    return WireError("malformed", f"health {what}")


def _whole(value: Any, what: str, high: int | None = None) -> int:
    if type(value) is not int or value < 0 or (high is not None and value > high):
        raise _bad(f"{what} must be a whole number" + (f" 0-{high}" if high else ""))
    return value


def _text(value: Any, what: str, pattern: re.Pattern[str]) -> str:
    if type(value) is not str or pattern.fullmatch(value) is None:
        raise _bad(f"{what} is not of the allowed form")
    return value


def _choice(value: Any, what: str, choices: tuple[str, ...]) -> str:
    if type(value) is not str or value not in choices:
        raise _bad(f"{what} must be one of {', '.join(choices)}")
    return value


def _selftest(value: Any) -> Selftest | None:
    if value is None:
        return None
    if type(value) is not dict or value.keys() != {"at_ms", "checks", "ok"}:
        raise _bad("selftest must be null or {at_ms, checks, ok}")
    if type(value["ok"]) is not bool:
        raise _bad("selftest.ok must be true or false")
    checks = value["checks"]
    if type(checks) is not list or len(checks) > MAX_CHECKS:
        raise _bad(f"selftest.checks must be a list of at most {MAX_CHECKS}")
    out = []
    for check in checks:
        if type(check) is not dict or check.keys() != {"name", "status"}:
            raise _bad("selftest.checks[] must be {name, status}")
        out.append(
            (
                _text(check["name"], "check name", CHECK_NAME),
                _choice(check["status"], "check status", CHECK_STATUSES),
            )
        )
    return Selftest(_whole(value["at_ms"], "selftest.at_ms"), value["ok"], tuple(out))


def _opt(value: Any, read: Any, *args: Any) -> Any:
    return None if value is None else read(value, *args)


def _reason(value: Any) -> str | None:
    if value is not None and (
        type(value) is not str or not 0 < len(value) <= MAX_REASON_CHARS or not value.isprintable()
    ):
        raise _bad(f"update.reason must be null or 1-{MAX_REASON_CHARS} printable characters")
    return value


def _update(value: Any) -> Update | None:
    if value is None:
        return None
    if type(value) is not dict or value.keys() != _UPDATE_KEYS:
        raise _bad(f"update must be {{{', '.join(sorted(_UPDATE_KEYS))}}}")
    return Update(
        state=_choice(value["state"], "update.state", UPDATE_STATES),
        running=_opt(value["running"], _text, "update.running", VERSION),
        slot=_opt(value["slot"], _choice, "update.slot", SLOTS),
        version=_opt(value["version"], _text, "update.version", VERSION),
        reason=_reason(value["reason"]),
        seq=_opt(value["seq"], _whole, "update.seq"),
        at_ms=_opt(value["at_ms"], _whole, "update.at_ms"),
    )


def health_from_json(obj: Any) -> Health:
    """Check every field's type and bound; WireError("malformed") naming the first bad one."""
    if type(obj) is not dict:
        raise _bad("body is not a JSON object")
    keys = obj.keys()
    if not _KEYS <= keys or not keys <= _KEYS | _OPTIONAL:
        raise _bad(f"body must have exactly the keys {', '.join(sorted(_KEYS))} (+ update)")
    for name in ("device", "tenant"):
        if not is_identifier(obj[name]):
            raise _bad(f"{name} is not an identifier")
    drain = obj["drain_estimate_s"]
    alarm = obj["engraver_alarm"]
    if alarm is not None and (type(alarm) is not str or not 0 < len(alarm) <= MAX_ALARM_CHARS):
        raise _bad(f"engraver_alarm must be null or 1-{MAX_ALARM_CHARS} characters")
    power = obj["power"]
    if type(power) is not dict or power.keys() != {"battery_pct", "source"}:
        raise _bad("power must be {battery_pct, source}")
    battery = power["battery_pct"]
    if "update" in obj and obj["update"] is None:
        raise _bad("update must be an object when present")
    return Health(
        device=obj["device"],
        tenant=obj["tenant"],
        sent_ms=_whole(obj["sent_ms"], "sent_ms"),
        version=_text(obj["version"], "version", VERSION),
        queued_events=_whole(obj["queued_events"], "queued_events"),
        drain_estimate_s=None if drain is None else _whole(drain, "drain_estimate_s"),
        selftest=_selftest(obj["selftest"]),
        printer_paper=_choice(obj["printer_paper"], "printer_paper", PAPER_STATES),
        engraver_alarm=alarm,
        power_source=_choice(power["source"], "power.source", POWER_SOURCES),
        battery_pct=None if battery is None else _whole(battery, "power.battery_pct", 100),
        card_exposure_minor=_whole(obj["card_exposure_minor"], "card_exposure_minor"),
        currency=_text(obj["currency"], "currency", _CURRENCY),
        update=_update(obj.get("update")),
    )


def open_health(data: bytes, key: VerifyKey, max_len: int = MAX_HEALTH_BYTES) -> Health:
    """Verify (size, magic, signature: nothing parsed before), then read the body.

    Raises WireError: ``oversize``, ``bad_signature``, ``non_canonical`` (JSON, but not in
    the one canonical spelling) or ``malformed``.
    """
    signed = verify_signed(data, HEALTH_MAGIC, key, max_len, (HEALTH_VERSION,))
    try:
        obj = parse_canonical(signed[5:])
    except NotJSONError as exc:
        raise WireError("malformed", f"health body: {exc}") from None
    except CanonicalFormError as exc:
        raise WireError("non_canonical", f"health body: {exc}") from None
    return health_from_json(obj)


# -- writing ------------------------------------------------------------------------------
def health_body(health: Health) -> bytes:
    """The canonical JSON body (checked as a receiver would: a bad value is a bug here)."""
    body = canonical_bytes(health.to_json())
    health_from_json(parse_canonical(body))
    return body


def seal_health(key: SigningKey, health: Health) -> bytes:
    """Sign a health message; ValueError when it would be over :data:`MAX_HEALTH_BYTES`."""
    try:
        signed = HEALTH_MAGIC + bytes([HEALTH_VERSION]) + health_body(health)
    except WireError as exc:
        raise ValueError(f"not a valid health message: {exc}") from None
    data = signed + key.sign(signed).signature
    if len(data) > MAX_HEALTH_BYTES:
        raise ValueError(f"health message of {len(data)} bytes is over {MAX_HEALTH_BYTES}")
    return data
