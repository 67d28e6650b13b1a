"""Derived state, maintained from events and rebuildable from the log.

:func:`apply` is called inside the append transaction for every new event,
and by :func:`rebuild` when replaying the whole log into empty tables. Using
the one function for both is what makes "the rebuild matches" a real check.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from appliance import events as ev
from appliance import schema
from appliance.formats.canonical import canonical_text
from appliance.formats.chain import Event

# One event's effect on the tables: (conn, seq, wall_ms, payload).
Handler = Callable[[sqlite3.Connection, int, int, dict[str, Any]], None]


def apply(conn: sqlite3.Connection, event: Event) -> None:
    handler = _HANDLERS.get(event.type)
    if handler is not None:
        handler(conn, event.seq, event.wall_ms, event.payload)


def _catalog_applied(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
    conn.execute("DELETE FROM catalog_items")
    for item in p["items"]:
        conn.execute(
            "INSERT INTO catalog_items (sku, name, price_minor, tax_rate, category, body) "
            "VALUES (?,?,?,?,?,?)",
            (
                item["sku"],
                item["name"],
                item["price_minor"],
                item["tax_rate"],
                item["category"],
                canonical_text(item),
            ),
        )
        if item.get("track_stock", True):
            conn.execute(
                "INSERT OR IGNORE INTO stock (sku, qty) VALUES (?, ?)",
                (item["sku"], item.get("initial_stock", 0)),
            )
    conn.execute(
        "INSERT OR REPLACE INTO catalog_meta (key, body) VALUES ('catalog', ?)",
        (canonical_text(p),),
    )
    # A small version stamp, so a till can tell cheaply whether its cached catalog is current.
    conn.execute(
        "INSERT OR REPLACE INTO catalog_meta (key, body) VALUES ('catalog_seq', ?)", (str(seq),)
    )


_ADD_TOTAL = (
    "INSERT INTO shift_totals (shift_no, kind, key, count, gross_minor, tax_minor, net_minor)"
    " VALUES (?,?,?,?,?,?,?) ON CONFLICT (shift_no, kind, key) DO UPDATE SET"
    " count = count + excluded.count, gross_minor = gross_minor + excluded.gross_minor,"
    " tax_minor = tax_minor + excluded.tax_minor, net_minor = net_minor + excluded.net_minor"
)


def _add_totals(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    """Add (shift, kind, key, count, gross, tax, net) rows into the shift's running totals."""
    conn.executemany(_ADD_TOTAL, rows)


def _sale_completed(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
    shift, pay = p["shift_no"], p["payment"]
    conn.execute(
        "INSERT INTO sales (receipt_no, sale_id, seq, idem_key, shift_no, method, total_minor,"
        " wall_ms) VALUES (?,?,?,?,?,?,?,?)",
        (
            p["receipt_no"],
            p["sale_id"],
            seq,
            p["idempotency_key"],
            shift,
            pay["method"],
            pay["due_minor"],
            wall_ms,
        ),
    )
    conn.executemany(
        "INSERT INTO sale_lines (receipt_no, line, sku, qty, refundable) VALUES (?,?,?,?,?)",
        [
            (p["receipt_no"], ln["line"], ln["sku"], ln["qty"], int(ln["refundable"]))
            for ln in p["lines"]
        ],
    )
    conn.executemany(
        "UPDATE stock SET qty = qty - ? WHERE sku = ?",
        [(ln["qty"], ln["sku"]) for ln in p["lines"]],
    )
    totals = [
        (shift, "tax", t["rate"], 1, t["gross_minor"], t["tax_minor"], t["net_minor"])
        for t in p["taxes"]
    ]
    totals.append((shift, "pay", pay["method"], 1, pay["due_minor"], 0, 0))
    if pay.get("rounding_minor"):
        totals.append((shift, "rounding", "cash", 1, pay["rounding_minor"], 0, 0))
    if p.get("event_id"):  # the Z report's totals per event (a till without events: none)
        totals.append((shift, "event", p["event_id"], 1, *_sums(p["taxes"])))
    _add_totals(conn, totals)


def _sums(taxes: list[dict[str, Any]], sign: int = 1) -> tuple[int, int, int]:
    """(gross, tax, net) over a payload's taxes[], times ``sign``."""
    return (
        sign * sum(t["gross_minor"] for t in taxes),
        sign * sum(t["tax_minor"] for t in taxes),
        sign * sum(t["net_minor"] for t in taxes),
    )


def _refund_issued(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
    shift, method = p["shift_no"], p["payment"]["method"]
    conn.execute(
        "INSERT INTO refunds (receipt_no, refund_id, sale_id, seq, shift_no, total_minor)"
        " VALUES (?,?,?,?,?,?)",
        (p["receipt_no"], p["refund_id"], p["sale_id"], seq, shift, p["total_minor"]),
    )
    foreign = "sale_device" in p  # a receipt of another till (appliance.crossrefund)
    for ln in p["lines"]:
        if not foreign:  # another till's receipt numbers are not this till's sales
            conn.execute(
                "UPDATE sale_lines SET refunded_qty = refunded_qty + ? "
                "WHERE receipt_no = ? AND line = ?",
                (ln["qty"], p["sale_receipt_no"], ln["line"]),
            )
        conn.execute("UPDATE stock SET qty = qty + ? WHERE sku = ?", (ln["qty"], ln["sku"]))
    if foreign:
        conn.executemany(
            "INSERT INTO foreign_refunds (device_id, receipt_no, rate_bp, gross_minor) "
            "VALUES (?,?,?,?) ON CONFLICT (device_id, receipt_no, rate_bp) DO UPDATE SET "
            "gross_minor = gross_minor + excluded.gross_minor",
            [
                (p["sale_device"], p["sale_receipt_no"], t["rate_bp"], t["gross_minor"])
                for t in p["taxes"]
            ],
        )
    totals = [
        (shift, "tax", t["rate"], 0, -t["gross_minor"], -t["tax_minor"], -t["net_minor"])
        for t in p["taxes"]
    ]
    totals.append((shift, "pay", method, 0, -p["total_minor"], 0, 0))
    totals.append((shift, "refund", method, 1, p["total_minor"], 0, 0))
    if p.get("event_id"):
        totals.append((shift, "event", p["event_id"], 0, *_sums(p["taxes"], -1)))
    _add_totals(conn, totals)


def _shift_opened(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
    conn.execute("INSERT INTO shifts (shift_no, opened_seq) VALUES (?, ?)", (p["shift_no"], seq))


def _shift_closed(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
    conn.execute("UPDATE shifts SET closed_seq = ? WHERE shift_no = ?", (seq, p["shift_no"]))


def _receipt_outcome(state: str) -> Handler:
    def handler(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO receipt_status (receipt_no, state, seq, detail) "
            "VALUES (?,?,?,?)",
            (p["receipt_no"], state, seq, p.get("reason", "")),
        )

    return handler


def _selftest_recorded(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
    # Each check's latest result; a partial self-test leaves the other checks as they were.
    for check in p.get("checks") or []:
        if not (
            isinstance(check, dict)
            and isinstance(check.get("name"), str)
            and isinstance(check.get("result"), str)
        ):
            continue  # the same rows the schema-2 backfill keeps
        conn.execute(
            "INSERT OR REPLACE INTO selftest_checks (name, seq, result, fatal, value, fix) "
            "VALUES (?,?,?,?,?,?)",
            (
                check["name"],
                seq,
                check["result"],
                int(check.get("fatal") is True),
                str(check.get("value", "")),
                str(check.get("fix", "")),
            ),
        )


def _selftest_override(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
    conn.execute("INSERT INTO selftest_overrides (seq) VALUES (?)", (seq,))


def _region_applied(body_of: Callable[[dict[str, Any]], dict[str, Any]]) -> Handler:
    def handler(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO region_data (kind, version, seq, issued_wall_ms, body) "
            "VALUES (?,?,?,?,?)",
            (p["kind"], p["version"], seq, p["issued_wall_ms"], canonical_text(body_of(p))),
        )

    return handler


def _event_started(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO event_state (key, seq, body) VALUES ('current', ?, ?)",
        (seq, canonical_text(p)),
    )


def _event_ended(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
    conn.execute("DELETE FROM event_state WHERE key = 'current'")


def _event_chosen(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO event_state (key, seq, body) VALUES ('choice', ?, ?)",
        (seq, canonical_text(p)),
    )


def _booking_redeemed(conn: sqlite3.Connection, seq: int, wall_ms: int, p: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO booking_redemptions (booking_id, seq, receipt_no) VALUES (?,?,?)",
        (p["booking_id"], seq, p["receipt_no"]),
    )
    if p["payment"] == "paid_online":  # no sale: the goods leave the stall all the same
        conn.executemany(
            "UPDATE stock SET qty = qty - ? WHERE sku = ?",
            [(ln["qty"], ln["sku"]) for ln in p["lines"]],
        )
    _add_totals(conn, [(p["shift_no"], "booking", p["payment"], 1, p["due_minor"], 0, 0)])


_HANDLERS = {
    ev.CATALOG_APPLIED: _catalog_applied,
    ev.SALE_COMPLETED: _sale_completed,
    ev.REFUND_ISSUED: _refund_issued,
    ev.SHIFT_OPENED: _shift_opened,
    ev.SHIFT_CLOSED: _shift_closed,
    ev.RECEIPT_PRINTED: _receipt_outcome("printed"),
    ev.RECEIPT_FAILED: _receipt_outcome("failed"),
    ev.SELFTEST_RECORDED: _selftest_recorded,
    ev.SELFTEST_OVERRIDE: _selftest_override,
    ev.SCHEDULE_APPLIED: _region_applied(lambda p: {"events": p["events"]}),
    ev.ROSTER_APPLIED: _region_applied(lambda p: {"devices": p["devices"]}),
    ev.BOOKINGS_APPLIED: _region_applied(lambda p: {"count": p["count"], "sha256": p["sha256"]}),
    # an ignored notice is in force too: its retained copy at every connect changes nothing
    ev.UPDATE_OFFERED: _region_applied(lambda p: {"notice": p["notice"], "ignored": ""}),
    ev.UPDATE_IGNORED: _region_applied(lambda p: {"notice": p["notice"], "ignored": p["reason"]}),
    ev.EVENT_STARTED: _event_started,
    ev.EVENT_ENDED: _event_ended,
    ev.EVENT_CHOSEN: _event_chosen,
    ev.BOOKING_REDEEMED: _booking_redeemed,
}


def snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every projection table's rows, in a stable order, for comparison."""
    result = {}
    for table in schema.PROJECTION_TABLES:
        width = len(conn.execute(f"PRAGMA table_info({table})").fetchall())
        order = ", ".join(str(i) for i in range(1, width + 1))
        result[table] = conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
    return result


def rebuild(source: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Replay every event of ``source`` into fresh in-memory tables; return their snapshot."""
    target = sqlite3.connect(":memory:", isolation_level=None)
    for statement in schema.PROJECTION_DDL:
        target.execute(statement)
    target.execute("BEGIN")
    cursor = source.execute("SELECT seq, type, wall_ms, payload FROM events ORDER BY seq")
    for seq, type_, wall_ms, payload in cursor:
        handler = _HANDLERS.get(type_)
        if handler is not None:
            handler(target, seq, wall_ms, json.loads(payload))
    target.execute("COMMIT")
    result = snapshot(target)
    target.close()
    return result


# -- queries the printing service needs (appliance.services.printing) ------------------------
def printed_before(
    conn: sqlite3.Connection, event_type: str, key: str, value: int, after_seq: int = 0
) -> bool:
    """Whether the log holds an earlier print of this document, so the next one is a copy.

    ``event_type`` is the ``*.printed`` type; its ``*.failed`` twin counts too when the
    bytes had been sent (paper that ran out half way may have handed out an original;
    failures recorded before ``sent`` existed count, to be safe).
    """
    failed = event_type.rsplit(".", 1)[0] + ".failed"
    row = conn.execute(
        "SELECT 1 FROM events WHERE seq > ? AND type IN (?, ?) "
        "AND json_extract(payload, ?) = ? "
        "AND (type = ? OR json_extract(payload, '$.sent') IS NOT 0) LIMIT 1",
        (after_seq, event_type, failed, f"$.{key}", value, event_type),
    ).fetchone()
    return row is not None


def z_reprint_queue(conn: sqlite3.Connection) -> list[int]:
    """Shift numbers whose Z report's last print attempt failed, oldest first."""
    last: dict[int, str] = {}
    for shift_no, kind in conn.execute(
        "SELECT json_extract(payload, '$.shift_no'), type FROM events "
        "WHERE type IN (?, ?) ORDER BY seq",
        (ev.Z_REPORT_PRINTED, ev.Z_REPORT_FAILED),
    ):
        last[int(shift_no)] = kind
    return sorted(n for n, kind in last.items() if kind == ev.Z_REPORT_FAILED)


def shift_closed_seq(conn: sqlite3.Connection, shift_no: int) -> int | None:
    """The seq of ``shift_no``'s ``shift.closed`` event; None while it is open or unknown."""
    row = conn.execute(
        "SELECT closed_seq FROM shifts WHERE shift_no = ?", (int(shift_no),)
    ).fetchone()
    return row[0] if row and row[0] else None


def refund_seq(conn: sqlite3.Connection, receipt_no: int) -> int | None:
    """The seq of the ``refund.issued`` event with ``receipt_no``, if there is one."""
    row = conn.execute(
        "SELECT seq FROM refunds WHERE receipt_no = ?", (int(receipt_no),)
    ).fetchone()
    return row[0] if row else None


# -- reads inside the till's write transactions (appliance.till and its rule modules) --------
# Each takes the transaction's connection, so it reads what that ``BEGIN IMMEDIATE`` holds.
# The rule modules: appliance.gate, appliance.shifts, appliance.tradingevent and
# appliance.bookings, each given the transaction by a method of appliance.till.

# One round trip for everything a sale needs to know; this is the cashier's hot path.
_SALE_CONTEXT = (
    "SELECT (SELECT seq FROM sales WHERE idem_key = ?),"
    " (SELECT shift_no FROM shifts WHERE closed_seq IS NULL ORDER BY shift_no DESC LIMIT 1),"
    " MAX(COALESCE((SELECT MAX(receipt_no) FROM sales), 0),"
    "     COALESCE((SELECT MAX(receipt_no) FROM refunds), 0)),"
    " (SELECT body FROM catalog_meta WHERE key = 'catalog_seq')"
)


def sale_context(
    conn: sqlite3.Connection, idem_key: str
) -> tuple[int | None, int | None, int, str | None]:
    """(seq of the sale with ``idem_key`` or None, the open shift or None, the last receipt
    number or 0, the catalog version or None)."""
    return conn.execute(_SALE_CONTEXT, (idem_key,)).fetchone()


def last_receipt_no(conn: sqlite3.Connection) -> int | None:
    """The highest receipt number a sale or refund holds; None before the first."""
    row = conn.execute(
        "SELECT MAX(n) FROM (SELECT MAX(receipt_no) AS n FROM sales "
        "UNION ALL SELECT MAX(receipt_no) FROM refunds)"
    ).fetchone()
    return row[0]


def sale_lines(conn: sqlite3.Connection, receipt_no: int) -> list[tuple]:
    """(line, sku, qty, refunded_qty, refundable) of each line of sale ``receipt_no``."""
    return conn.execute(
        "SELECT line, sku, qty, refunded_qty, refundable FROM sale_lines "
        "WHERE receipt_no = ? ORDER BY line",
        (receipt_no,),
    ).fetchall()


def last_shift_no(conn: sqlite3.Connection) -> int:
    """The highest shift number ever opened; 0 before the first."""
    return conn.execute("SELECT COALESCE(MAX(shift_no), 0) FROM shifts").fetchone()[0]


_GATE_ROWS = (
    "SELECT name, seq, result, fatal, value, fix, "
    "(SELECT COALESCE(MAX(seq), 0) FROM selftest_overrides) FROM selftest_checks ORDER BY name"
)


def selftest_gate_rows(conn: sqlite3.Connection) -> list[tuple]:
    """(name, seq, result, fatal, value, fix, latest override seq or 0) of each check's
    latest self-test result, by name."""
    return conn.execute(_GATE_ROWS).fetchall()


# -- several tills, many events (appliance.region, appliance.schedule, appliance.bookings) ---
def region_row(conn: sqlite3.Connection, kind: str) -> tuple[int, int, int, str] | None:
    """(version, seq, issued_wall_ms, body) of the region list ``kind`` in force, or None."""
    return conn.execute(
        "SELECT version, seq, issued_wall_ms, body FROM region_data WHERE kind = ?", (kind,)
    ).fetchone()


def event_state(conn: sqlite3.Connection) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the ``event.started`` payload of the event in progress or None, the latest
    ``event.chosen`` payload or None), in one round trip: the sale path reads it."""
    current, choice = conn.execute(
        "SELECT (SELECT body FROM event_state WHERE key = 'current'),"
        " (SELECT body FROM event_state WHERE key = 'choice')"
    ).fetchone()
    return (json.loads(current) if current else None, json.loads(choice) if choice else None)


def clock_state(conn: sqlite3.Connection) -> tuple[str | None, str | None, int]:
    """(the latest self-test's ``clock`` result or None, the boot id of the event that
    recorded it, the latest wall clock the log recorded since that check, or 0).

    The latest since the check, not the last event's: a clock that jumped back stays
    behind what it said before the jump until a new check confirms it, even after an
    event (the cashier's choice) was written at the jumped-back time. A range of the
    events table by seq; with no check, only the last event."""
    row = conn.execute(
        "SELECT (SELECT c.result FROM selftest_checks c WHERE c.name = 'clock'),"
        " (SELECT e.boot_id FROM selftest_checks c JOIN events e ON e.seq = c.seq"
        "  WHERE c.name = 'clock'),"
        " (SELECT MAX(wall_ms) FROM events WHERE seq >= COALESCE("
        "   (SELECT seq FROM selftest_checks WHERE name = 'clock'),"
        "   (SELECT MAX(seq) FROM events)))"
    ).fetchone()
    return row[0], row[1], int(row[2] or 0)


def booking_redemption(conn: sqlite3.Connection, booking_id: str) -> tuple[int, int] | None:
    """(seq, sale receipt number or 0) of this till's redemption of ``booking_id``."""
    return conn.execute(
        "SELECT seq, receipt_no FROM booking_redemptions WHERE booking_id = ?", (booking_id,)
    ).fetchone()


def redeemed_bookings(conn: sqlite3.Connection) -> dict[str, int]:
    """booking id -> seq of its redemption on this till."""
    return dict(conn.execute("SELECT booking_id, seq FROM booking_redemptions"))


def foreign_refunded(conn: sqlite3.Connection, device_id: str, receipt_no: int) -> dict[int, int]:
    """rate_bp -> gross this till already refunded of another till's receipt."""
    return dict(
        conn.execute(
            "SELECT rate_bp, gross_minor FROM foreign_refunds WHERE device_id = ? "
            "AND receipt_no = ?",
            (device_id, receipt_no),
        )
    )
