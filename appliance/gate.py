"""The self-test gate: may this till sell now? Decided from the log alone.

A till refuses sales and refunds while a check marked fatal failed in its latest
recorded self-test and no technician override was logged after that result. The
inputs are the ``selftest_checks`` and ``selftest_overrides`` projections (each
check's latest result; every override's seq), so every front end (the CLI, the
kiosk, scripts) gets the same answer, and the answer costs one small query.

A till that never recorded a self-test may sell: the boot unit and the kiosk run
one at every start, so "never" means a bench or a fresh test till.

What feeds the gate is checked here too: a self-test record's shape
(:func:`check_record`, the fields the gate reads) and a technician's override
(:func:`record_override`, in the caller's write transaction, after the PIN).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appliance import events as ev
from appliance.errors import RuleViolation
from appliance.projections import selftest_gate_rows

if TYPE_CHECKING:
    from appliance.formats.chain import Event
    from appliance.log import Transaction


@dataclass(frozen=True)
class FailedCheck:
    name: str
    seq: int  # the selftest.recorded event that holds this result
    value: str  # what was measured
    fix: str  # what a person does about it


@dataclass(frozen=True)
class GateState:
    ran: bool  # any self-test result recorded at all
    failed: list[FailedCheck] = field(default_factory=list)  # fatal, failed, not overridden
    overridden: bool = False  # an override was logged after the latest fatal failure

    @property
    def blocked(self) -> bool:
        return bool(self.failed)

    def reason(self) -> str:
        """The failed checks and their fixes, on one line."""
        parts = []
        for check in self.failed:
            text = f"{check.name} failed ({check.value})"
            if check.fix:
                text += f"; fix: {check.fix}"
            parts.append(text)
        return " | ".join(" ".join(p.split()) for p in parts)  # one line, whatever was recorded


class SellingBlocked(RuleViolation):
    """A fatal self-test check failed and no technician has overridden it."""


def state(conn: sqlite3.Connection) -> GateState:
    rows = selftest_gate_rows(conn)
    if not rows:
        return GateState(ran=False)
    override_seq = rows[0][6]
    fatal_fails = [r for r in rows if r[2] == "fail" and r[3]]
    failed = [FailedCheck(r[0], r[1], r[4], r[5]) for r in fatal_fails if r[1] > override_seq]
    overridden = bool(fatal_fails) and not failed
    return GateState(ran=True, failed=failed, overridden=overridden)


def require_open(conn: sqlite3.Connection, what: str = "selling") -> None:
    """Raise :class:`SellingBlocked` with the failed checks and their fixes."""
    gate = state(conn)
    if gate.blocked:
        raise SellingBlocked(
            f"{what} is blocked by the self-test: {gate.reason()}; then run "
            "`tillbox selftest` again, or a technician overrides with the PIN "
            "(`tillbox selftest override`)"
        )


def check_record(payload: dict[str, Any]) -> None:
    """Refuse a self-test record whose checks the gate could not read."""
    checks = payload.get("checks")
    if not isinstance(checks, list) or not all(
        isinstance(c, dict)
        and isinstance(c.get("name"), str)
        and c.get("result") in ("pass", "warn", "fail")
        and isinstance(c.get("fatal"), bool)
        for c in checks
    ):
        raise RuleViolation(
            "a self-test record needs checks[] with name, result (pass/warn/fail) "
            "and fatal; record it with `tillbox selftest`"
        )


def record_override(tx: Transaction, failed: Sequence[str] | None, reason: str) -> Event:
    """``selftest.override`` of ``failed`` (by default, the checks the gate holds);
    refused when nothing blocks selling."""
    gate = state(tx.conn)
    names = list(failed) if failed is not None else [c.name for c in gate.failed]
    if not names:
        raise RuleViolation("the self-test does not block selling; there is nothing to override")
    return tx.append(
        ev.SELFTEST_OVERRIDE,
        {
            "failed": names,
            "reason": (reason or gate.reason())[:500],
            "by": "technician-pin",
        },
    )
