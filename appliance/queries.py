"""Named read queries over a till's log and its projections, for the layers above.

Compliance, the CLIs and the services ask these questions instead of writing SQL:
the SQL stays in the core beside the schema it reads (:mod:`appliance.log`,
:mod:`appliance.projections`, :mod:`appliance.schema` and this module), so a schema
change is one search. Every function only reads; none opens a transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from appliance import projections

if TYPE_CHECKING:
    from appliance.log import EventLog


def count_events(log: EventLog, event_type: str) -> int:
    """How many events of ``event_type`` the log holds."""
    row = log.conn.execute("SELECT COUNT(*) FROM events WHERE type = ?", (event_type,)).fetchone()
    return int(row[0])


def latest_payload(log: EventLog, event_type: str) -> dict[str, Any] | None:
    """The payload of the newest event of ``event_type``; None when there is none."""
    row = log.conn.execute(
        "SELECT payload FROM events WHERE type = ? ORDER BY seq DESC LIMIT 1", (event_type,)
    ).fetchone()
    return json.loads(row[0]) if row else None


def recent_events(log: EventLog, wall_ms: int, limit: int) -> list[tuple[int, str, int]]:
    """(seq, type, wall_ms) of up to ``limit`` events stamped at or after ``wall_ms``,
    newest first (payloads are not read)."""
    return log.conn.execute(
        "SELECT seq, type, wall_ms FROM events WHERE wall_ms >= ? ORDER BY seq DESC LIMIT ?",
        (wall_ms, limit),
    ).fetchall()


def any_of_types_for_version(
    log: EventLog, types: tuple[str, ...], field: str, version: str
) -> bool:
    """Is there an event of ``types`` whose payload's ``field`` is ``version``?"""
    marks = ",".join("?" * len(types))
    row = log.conn.execute(
        f"SELECT 1 FROM events WHERE type IN ({marks}) "
        "AND json_extract(payload, '$.' || ?) = ? LIMIT 1",
        (*types, field, version),
    ).fetchone()
    return row is not None


def latest_of_types(
    log: EventLog, types: tuple[str, ...], limit: int
) -> list[tuple[int, str, int, dict[str, Any]]]:
    """(seq, type, wall_ms, payload) of the newest ``limit`` events of ``types``, newest first."""
    marks = ",".join("?" * len(types))
    rows = log.conn.execute(
        f"SELECT seq, type, wall_ms, payload FROM events WHERE type IN ({marks}) "
        "ORDER BY seq DESC LIMIT ?",
        (*types, limit),
    ).fetchall()
    return [(seq, type_, when, json.loads(text)) for seq, type_, when, text in rows]


def newest_by_type(
    log: EventLog, types: tuple[str, ...], after_seq: int, upto_seq: int
) -> dict[str, tuple[int, int, dict[str, Any]]]:
    """type -> (seq, wall_ms, payload) of the newest event of each of ``types`` with a seq
    in (``after_seq``, ``upto_seq``]; types with none there are absent.

    One pass over that range of the log (the sync agent's health message calls it with
    the range it has not seen yet, so each event is read once). SQLite takes the bare
    columns from the row MAX() picked."""
    marks = ",".join("?" * len(types))
    rows = log.conn.execute(
        f"SELECT type, MAX(seq), wall_ms, payload FROM events WHERE seq > ? AND seq <= ? "
        f"AND type IN ({marks}) GROUP BY type",
        (after_seq, upto_seq, *types),
    ).fetchall()
    return {type_: (seq, when, json.loads(text)) for type_, seq, when, text in rows}


def genesis_payload(log: EventLog) -> dict[str, Any] | None:
    """The payload of the device's first event (seq 1); None for an empty log."""
    row = log.conn.execute("SELECT payload FROM events WHERE seq = 1").fetchone()
    return json.loads(row[0]) if row else None


def event_hash(log: EventLog, seq: int) -> str | None:
    """The stored hash of event ``seq``; None when the log has no such event."""
    row = log.conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
    return row[0] if row else None


def event_wall_ms(log: EventLog, seq: int) -> int | None:
    """The wall clock event ``seq`` carries; None when the log has no such event."""
    row = log.conn.execute("SELECT wall_ms FROM events WHERE seq = ?", (seq,)).fetchone()
    return row[0] if row else None


# The columns of an event's export form, in the order :func:`export_rows` returns them.
EXPORT_COLUMNS = (
    "seq, event_id, device_id, type, payload, wall_ms, boot_id, mono_us, prev_hash, hash"
)


def export_rows(log: EventLog, since: int, limit: int) -> list[tuple]:
    """Up to ``limit`` stored rows after ``since``, in order, as :data:`EXPORT_COLUMNS`
    (the payload still its stored canonical text: the agent's fast path encodes them)."""
    return log.conn.execute(
        f"SELECT {EXPORT_COLUMNS} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        (since, since + limit, limit),
    ).fetchall()


def last_wall_ms(log: EventLog) -> int:
    """The latest wall clock any event carries; 0 for an empty log."""
    row = log.conn.execute("SELECT MAX(wall_ms) FROM events").fetchone()
    return int(row[0] or 0)


def first_seq_from(log: EventLog, wall_ms: int) -> int | None:
    """The first seq stamped at or after ``wall_ms``; None when none is."""
    row = log.conn.execute("SELECT MIN(seq) FROM events WHERE wall_ms >= ?", (wall_ms,)).fetchone()
    return row[0]


def last_seq_before(log: EventLog, wall_ms: int) -> int | None:
    """The last seq stamped before ``wall_ms``; None when none is."""
    row = log.conn.execute("SELECT MAX(seq) FROM events WHERE wall_ms < ?", (wall_ms,)).fetchone()
    return row[0]


def last_verified_point(log: EventLog, selftest_type: str) -> tuple[int, str]:
    """(seq, hash) up to which the newest self-test verified the chain; (0, '') if none."""
    row = log.conn.execute(
        "SELECT payload FROM events WHERE type = ? "
        "AND json_extract(payload, '$.log_verified.seq') IS NOT NULL "
        "ORDER BY seq DESC LIMIT 1",
        (selftest_type,),
    ).fetchone()
    if row is None:
        return 0, ""
    point = json.loads(row[0]).get("log_verified") or {}
    return int(point.get("seq", 0)), str(point.get("hash", ""))


def previous_receipt_seq(log: EventLog, seq: int, receipt_no: int | None = None) -> int | None:
    """The seq of the latest receipt event (sale or refund) before ``seq``; None when none.

    Given the event's ``receipt_no`` it uses the projections' primary keys (O(log n)):
    receipt numbers are assigned in log order, so the previous number is the previous
    receipt. Without it (a period that starts at an arbitrary seq) it scans by seq.
    """
    if receipt_no is not None:
        row = log.conn.execute(
            "SELECT MAX(s) FROM (SELECT seq AS s FROM sales WHERE receipt_no = "
            "(SELECT MAX(receipt_no) FROM sales WHERE receipt_no < ?) "
            "UNION ALL SELECT seq FROM refunds WHERE receipt_no = "
            "(SELECT MAX(receipt_no) FROM refunds WHERE receipt_no < ?))",
            (receipt_no, receipt_no),
        ).fetchone()
    else:
        row = log.conn.execute(
            "SELECT MAX(s) FROM (SELECT MAX(seq) AS s FROM sales WHERE seq < ? "
            "UNION ALL SELECT MAX(seq) FROM refunds WHERE seq < ?)",
            (seq, seq),
        ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def refund_seq(log: EventLog, receipt_no: int | None) -> int | None:
    """The seq of the refund printed as ``receipt_no``; None when there is none."""
    row = log.conn.execute("SELECT seq FROM refunds WHERE receipt_no = ?", (receipt_no,)).fetchone()
    return row[0] if row else None


def customer_events(
    log: EventLog, types: tuple[str, ...], customer: str
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(seq, type, payload) of every event of ``types`` about ``customer``, in log order."""
    marks = ",".join("?" * len(types))
    rows = log.conn.execute(
        f"SELECT seq, type, payload FROM events WHERE type IN ({marks}) "
        "AND json_extract(payload, '$.customer') = ? ORDER BY seq",
        (*types, customer),
    ).fetchall()
    for seq, type_, text in rows:
        yield seq, type_, json.loads(text)


def customers(log: EventLog, event_type: str) -> list[str]:
    """Every distinct ``customer`` named by an event of ``event_type``, first seen first."""
    rows = log.conn.execute(
        "SELECT json_extract(payload, '$.customer') FROM events WHERE type = ? "
        "GROUP BY 1 ORDER BY MIN(seq)",
        (event_type,),
    ).fetchall()
    return [customer for (customer,) in rows]


# -- the till's reads (appliance.till; the Z report's: appliance.shifts) ----------------------
# The till calls some of these inside its write transactions too: they read the log's one
# connection, which is the transaction's, so they see what the transaction sees.


def catalog_version(log: EventLog) -> str | None:
    """The seq (as text) of the catalog in force; None before any catalog is applied."""
    row = log.conn.execute("SELECT body FROM catalog_meta WHERE key = 'catalog_seq'").fetchone()
    return row[0] if row else None


def catalog_body(log: EventLog) -> str:
    """The canonical text of the catalog in force (call only once one is applied)."""
    return log.conn.execute("SELECT body FROM catalog_meta WHERE key = 'catalog'").fetchone()[0]


def stock(log: EventLog) -> dict[str, int]:
    """Units in stock of every tracked SKU, by SKU."""
    return dict(log.conn.execute("SELECT sku, qty FROM stock ORDER BY sku"))


def open_shift_no(log: EventLog) -> int | None:
    """The number of the open shift; None when no shift is open."""
    row = log.conn.execute(
        "SELECT shift_no FROM shifts WHERE closed_seq IS NULL ORDER BY shift_no DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def sale_seq_by_receipt(log: EventLog, receipt_no: int | str) -> int | None:
    """The seq of the sale printed as ``receipt_no``; None when there is none."""
    row = log.conn.execute("SELECT seq FROM sales WHERE receipt_no = ?", (receipt_no,)).fetchone()
    return row[0] if row else None


def sale_seq_by_id(log: EventLog, sale_id: str) -> int | None:
    """The seq of the sale ``sale_id``; None when there is none."""
    row = log.conn.execute("SELECT seq FROM sales WHERE sale_id = ?", (sale_id,)).fetchone()
    return row[0] if row else None


def foreign_refunded(log: EventLog, device_id: str, receipt_no: int) -> dict[int, int]:
    """rate_bp -> gross this till already refunded of another till's receipt (the
    kiosk shows what is left; the till's refund reads the same projection)."""
    return projections.foreign_refunded(log.conn, device_id, receipt_no)


def card_total_after(log: EventLog, seq: int) -> int:
    """The card money (minor units) of the sales logged after ``seq``."""
    row = log.conn.execute(
        "SELECT COALESCE(SUM(total_minor), 0) FROM sales WHERE method = 'card' AND seq > ?",
        (seq,),
    ).fetchone()
    return row[0]


def failed_receipts(log: EventLog) -> list[int]:
    """Receipt numbers whose last print attempt failed, oldest first."""
    return [
        r[0]
        for r in log.conn.execute(
            "SELECT receipt_no FROM receipt_status WHERE state = 'failed' ORDER BY receipt_no"
        )
    ]


def shift_totals(log: EventLog, shift_no: int) -> list[tuple]:
    """(kind, key, count, gross, tax, net) of ``shift_no``'s running totals, by kind and key."""
    return log.conn.execute(
        "SELECT kind, key, count, gross_minor, tax_minor, net_minor FROM shift_totals "
        "WHERE shift_no = ? ORDER BY kind, key",
        (shift_no,),
    ).fetchall()


def opening_float_minor(log: EventLog, shift_no: int) -> int:
    """The float counted into the drawer when ``shift_no`` opened; 0 when none was given."""
    opened = log.conn.execute(
        "SELECT json_extract(e.payload, '$.opening_float_minor') FROM shifts AS s "
        "JOIN events AS e ON e.seq = s.opened_seq WHERE s.shift_no = ?",
        (shift_no,),
    ).fetchone()
    return int(opened[0] or 0) if opened else 0


# The sync agent's own database (``sync/agent.db``), read-only, for the inspection export:
# compliance may not import the agent (they are peers), so the one read it needs lives here.


class AgentSegment(NamedTuple):
    first_seq: int
    last_seq: int
    id: str
    prev: str
    size: int
    sealed_ms: int | None
    acked_ms: int | None
    data: bytes | None
    ack: bytes | None


def agent_segments(db: Path) -> list[AgentSegment]:
    """Every segment the agent's database records, by first seq; raises sqlite3.Error."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
    try:
        # agent.db files from before acks were kept have no ack column (the agent
        # adds it when it next starts; the export never writes to its database)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(segments)")}
        ack_column = "ack" if "ack" in columns else "NULL"
        rows = conn.execute(
            "SELECT first_seq, last_seq, id, prev, size, sealed_ms, acked_ms, data, "
            f"{ack_column} FROM segments ORDER BY first_seq"
        ).fetchall()
    finally:
        conn.close()
    return [AgentSegment._make(row) for row in rows]
