import sqlite3

import pytest

from appliance import schema
from appliance.errors import IntegrityError, StorageError
from appliance.log import EventLog
from appliance.till import Till


def raw(data_dir) -> sqlite3.Connection:
    """A connection behind the tool's back, as a tamperer would open one."""
    return sqlite3.connect(data_dir.log_path, isolation_level=None)


def test_database_is_wal_full_sync_and_marked(data_dir):
    log = EventLog.open(data_dir.log_path)
    assert log.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert log.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert log.conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    assert log.conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET payload = '{}' WHERE seq = 1",
        "DELETE FROM events WHERE seq = 2",
        "DELETE FROM events",
    ],
)
def test_update_and_delete_are_aborted_by_triggers(data_dir, statement):
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw(data_dir).execute(statement)


def test_insert_must_continue_sequence_and_chain(data_dir):
    conn = raw(data_dir)
    last_seq, last_hash = conn.execute(
        "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    row = ("x", "d", "t", "{}", 0, "b", 0)
    with pytest.raises(sqlite3.IntegrityError, match="continue the sequence"):  # a gap
        conn.execute(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", (last_seq + 2, *row, last_hash, "h")
        )
    with pytest.raises(sqlite3.IntegrityError, match="continue the sequence"):  # a fork
        conn.execute(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", (last_seq + 1, *row, "0" * 64, "h")
        )


def test_verify_catches_a_row_changed_with_triggers_dropped(till, data_dir):
    from appliance.pricing import CartLine

    for _ in range(3):
        till.sell([CartLine("MUG-01", 1)], "cash")
    assert till.verify().ok
    conn = raw(data_dir)
    conn.execute("DROP TRIGGER events_append_only_update")
    report = EventLog.open(data_dir.log_path).verify()
    assert not report.ok and "events_append_only_update" in report.reason
    # put a trigger back with the same name but no teeth: still caught
    conn.execute(
        "CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events BEGIN SELECT 1; END"
    )
    assert not EventLog.open(data_dir.log_path).verify().ok
    # restore the real trigger text after editing a sale's total: the hash catches it
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute(
        "UPDATE events SET payload = replace(payload, '\"total_minor\":1200', "
        "'\"total_minor\":120') WHERE seq = 5"
    )
    conn.execute(schema.TRIGGERS["events_append_only_update"])
    report = EventLog.open(data_dir.log_path).verify()
    assert not report.ok and report.first_bad_seq == 5
    assert "hash does not match" in report.reason


def test_verify_catches_non_canonical_respelling(till, data_dir):
    conn = raw(data_dir)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("UPDATE events SET payload = ' ' || payload WHERE seq = 2")
    conn.execute(schema.TRIGGERS["events_append_only_update"])
    report = EventLog.open(data_dir.log_path).verify()
    assert report.first_bad_seq == 2 and "canonical" in report.reason


def test_verify_since_checks_only_the_tail(till, data_dir):
    report = till.verify(since=2)
    assert report.ok and report.checked == report.last_seq - 2


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)")
    with pytest.raises(StorageError, match="not a tillbox log"):
        EventLog.open(foreign)
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StorageError, match="corrupt or not a tillbox log"):
        EventLog.open(corrupt)
    with pytest.raises(StorageError, match="no till log"):
        EventLog.open(tmp_path / "missing.db")


def test_newer_schema_is_refused(data_dir):
    raw(data_dir).execute(f"PRAGMA user_version={schema.SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="newer tillbox"):
        EventLog.open(data_dir.log_path)


def test_migration_path_from_an_empty_marked_database(tmp_path, monkeypatch):
    """A version-N database is brought up to date by the migrations above N."""
    path = tmp_path / "old.db"
    log = EventLog.create(path, "dev")
    log.append("device.initialised", {"device_id": "dev"})
    log.close()
    extra = ["CREATE TABLE migration_probe (x INTEGER)"]
    monkeypatch.setitem(schema.MIGRATIONS, schema.SCHEMA_VERSION + 1, extra)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    log = EventLog.open(path)
    assert log.conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert log.conn.execute("SELECT count(*) FROM migration_probe").fetchone()[0] == 0
    assert log.verify().ok


def test_failed_transaction_writes_nothing(till):
    before = till.log.last()
    with pytest.raises(RuntimeError), till.log.transaction() as tx:
        tx.append("device.fault", {"device": "printer"})
        raise RuntimeError("boom")
    assert till.log.last() == before


def test_append_only_error_surfaces_as_integrity_error(till):
    with pytest.raises(IntegrityError), till.log.transaction() as tx:
        tx.conn.execute("DELETE FROM events WHERE seq = 1")


def test_two_processes_cannot_fork_the_chain(data_dir):
    a, b = Till.open(data_dir), Till.open(data_dir)
    a.open_shift()
    from appliance.pricing import CartLine

    for i in range(10):
        (a if i % 2 else b).sell([CartLine("CAFE", 1)], "cash")
    assert a.verify().ok and a.log.last() == b.log.last()
    receipts = [r[0] for r in a.log.conn.execute("SELECT receipt_no FROM sales ORDER BY 1")]
    assert receipts == list(range(1, 11))
