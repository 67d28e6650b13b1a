"""What the till's health message says, read from its own log (read-only, never a device).

The agent never opens the printer, the engraver or the GPIO: the kiosk owns them. It
reads what the kiosk and the core already record, through the agent's read-only
connection to ``log.db`` (named queries in :mod:`appliance.queries`):

* **self-test**: the newest ``selftest.recorded`` (its wall clock, verdict, and each
  check's name and result);
* **printer paper**: the newest print outcome (``receipt.printed`` / ``receipt.failed``
  / ``z_report.printed`` / ``z_report.failed``), whose ``paper`` is the printer's own
  status answer at that print (``near_end`` reads as ``low``); ``unknown`` before any
  print that recorded it. A self-test's printer check is in the self-test part;
* **engraver alarm**: the newest ``engraving.*`` event, when it is an
  ``engraving.failed`` of outcome ``alarm`` (or a refused job whose message names an
  alarm): its message; any later engraving event clears it;
* **power**: the newest ``power.lost`` (battery) or ``power.restored`` (mains) from the
  UPS's power-good line; ``unknown`` when none was recorded. Nothing measures the
  battery's charge yet, so ``battery_pct`` is null unless the event carries one;
* **card exposure**: the card payments after the acked seq, as
  ``Till.card_exposure_minor`` counts them, in the shop's currency;
* **update**: the newest ``update.*`` event, read as
  :func:`appliance.updates.logged_state` reads it (the versions and slots it records,
  and whether this boot recorded it: installed and waiting for the restart, or
  restarted into its trial). The agent never asks the updater: the kiosk and the
  boot-time check record every step, and a ``rauc status`` every few seconds is not
  free on a Pi.

Each event is read once: every call scans only the part of the log it has not seen
(:func:`appliance.queries.newest_by_type`), so the cost does not grow with the log.
"""

from __future__ import annotations

import json
import math
from typing import Any

from appliance import __version__, queries
from appliance import events as ev
from appliance.catalog import Catalog
from appliance.datadir import Config
from appliance.formats import telemetry
from appliance.log import EventLog, current_boot_id
from appliance.updates import LastUpdate, logged_state

PRINT_TYPES = (ev.RECEIPT_PRINTED, ev.RECEIPT_FAILED, ev.Z_REPORT_PRINTED, ev.Z_REPORT_FAILED)
ENGRAVING_TYPES = (
    ev.ENGRAVING_STARTED,
    ev.ENGRAVING_COMPLETED,
    ev.ENGRAVING_CANCELLED,
    ev.ENGRAVING_FAILED,
)
POWER_TYPES = (ev.POWER_LOST, ev.POWER_RESTORED)
TYPES = (ev.SELFTEST_RECORDED, *PRINT_TYPES, *ENGRAVING_TYPES, *POWER_TYPES, *ev.UPDATE_TYPES)
PAPER = {"ok": "ok", "near_end": "low", "out": "out"}

Newest = tuple[int, int, dict[str, Any]]  # (seq, wall_ms, payload)


def _newest(found: dict[str, Newest], types: tuple[str, ...]) -> tuple[str, Newest] | None:
    present = [(found[t][0], t) for t in types if t in found]
    if not present:
        return None
    _seq, type_ = max(present)
    return type_, found[type_]


def selftest_part(found: dict[str, Newest]) -> telemetry.Selftest | None:
    if ev.SELFTEST_RECORDED not in found:
        return None
    _seq, wall_ms, payload = found[ev.SELFTEST_RECORDED]
    checks = []
    for check in payload.get("checks") or []:
        if not isinstance(check, dict):
            continue
        name, result = check.get("name"), check.get("result")
        if (
            isinstance(name, str)
            and telemetry.CHECK_NAME.fullmatch(name)
            and result in telemetry.CHECK_STATUSES
        ):
            checks.append((name, result))
    return telemetry.Selftest(
        max(0, wall_ms), payload.get("verdict") == "pass", tuple(checks[: telemetry.MAX_CHECKS])
    )


def paper_part(found: dict[str, Newest]) -> str:
    newest = _newest(found, PRINT_TYPES)
    if newest is None:
        return "unknown"
    return PAPER.get(newest[1][2].get("paper"), "unknown")


def alarm_part(found: dict[str, Newest]) -> str | None:
    newest = _newest(found, ENGRAVING_TYPES)
    if newest is None or newest[0] != ev.ENGRAVING_FAILED:
        return None
    payload = newest[1][2]
    message = payload.get("message")
    if not isinstance(message, str):
        message = ""
    outcome = payload.get("outcome")
    if outcome != "alarm" and not (outcome is None and "alarm" in message.lower()):
        return None
    # one line, bounded: the text comes from the engraver's driver
    text = " ".join(message.split())[: telemetry.MAX_ALARM_CHARS]
    return text or "engraver alarm"


def power_part(found: dict[str, Newest]) -> tuple[str, int | None]:
    newest = _newest(found, POWER_TYPES)
    if newest is None:
        return "unknown", None
    type_, (_seq, _wall, payload) = newest
    pct = payload.get("battery_pct")
    battery = pct if type(pct) is int and 0 <= pct <= 100 else None
    return ("battery" if type_ == ev.POWER_LOST else "mains"), battery


def _version(value: str | None) -> str | None:
    return value if value is not None and telemetry.VERSION.fullmatch(value) else None


def _one_line(text: str, limit: int) -> str:
    """``text`` on one line of printable characters, at most ``limit`` long."""
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(cleaned.split())[:limit]


def update_part(found: dict[str, Newest], this_boot: bool) -> telemetry.Update:
    """The update state from the newest ``update.*`` event; ``this_boot``: its event was
    recorded in the running boot."""
    newest = _newest(found, ev.UPDATE_TYPES)
    if newest is None:
        return telemetry.Update("none", __version__, None, None, None, None, None)
    type_, (seq, wall_ms, payload) = newest
    state = logged_state(LastUpdate(seq, type_, payload), this_boot)
    slot = state.slot if state.slot in telemetry.SLOTS else None
    reason = _one_line(state.reason, telemetry.MAX_REASON_CHARS) if state.reason else ""
    return telemetry.Update(
        state=state.kind,
        running=_version(state.running),
        slot=slot,
        version=_version(state.version),
        reason=reason or None,
        seq=seq,
        at_ms=max(0, wall_ms),
    )


class HealthReader:
    """Builds the device's :class:`~appliance.formats.telemetry.Health` from its log."""

    def __init__(self, log: EventLog, config: Config, device: str, tenant: str) -> None:
        self.log = log
        self.device = device
        self.tenant = tenant
        self.tax_profile = str(config.section("shop").get("tax_profile", ""))
        self.seen = 0  # every event up to this seq has been looked at
        self.found: dict[str, Newest] = {}
        self._currency: tuple[str | None, str] = (None, "")
        self._boots: tuple[int, bool] = (0, False)  # (seq, recorded in this boot)

    def _scan(self, tail: int) -> None:
        if tail < self.seen:  # not this log any more (a restore): look at all of it again
            self.seen, self.found = 0, {}
        if tail > self.seen:
            self.found.update(queries.newest_by_type(self.log, TYPES, self.seen, tail))
            self.seen = tail

    def currency(self) -> str:
        """The shop's currency from the catalog in force ("" before one, or on a bad one)."""
        version = queries.catalog_version(self.log)
        if version != self._currency[0]:
            currency = ""
            if version is not None:
                try:
                    catalog = Catalog.from_json(json.loads(queries.catalog_body(self.log)))
                    currency = catalog.profile(self.tax_profile).currency
                except Exception:  # noqa: BLE001 - the till sells under it; health only says ""
                    currency = ""
            self._currency = (version, currency)
        return self._currency[1]

    def _this_boot(self) -> bool:
        """Whether the newest update event was recorded in this boot (one read a change)."""
        newest = _newest(self.found, ev.UPDATE_TYPES)
        if newest is None:
            return False
        seq = newest[1][0]
        if self._boots[0] != seq:
            event = self.log.event(seq)
            self._boots = (seq, event is not None and event.boot_id == current_boot_id())
        return self._boots[1]

    def health(
        self, *, tail: int, acked_seq: int, drain_estimate_s: float | None, now_ms: int
    ) -> telemetry.Health:
        self._scan(tail)
        source, battery = power_part(self.found)
        return telemetry.Health(
            device=self.device,
            tenant=self.tenant,
            sent_ms=max(0, now_ms),
            version=__version__,
            queued_events=max(0, tail - acked_seq),
            drain_estimate_s=None if drain_estimate_s is None else math.ceil(drain_estimate_s),
            selftest=selftest_part(self.found),
            printer_paper=paper_part(self.found),
            engraver_alarm=alarm_part(self.found),
            power_source=source,
            battery_pct=battery,
            card_exposure_minor=max(0, int(queries.card_total_after(self.log, acked_seq))),
            currency=self.currency(),
            update=update_part(self.found, self._this_boot()),
        )
