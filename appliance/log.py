"""The append-only, hash-chained event log in one SQLite file.

Durability: WAL journal with ``synchronous=FULL`` means COMMIT returns only
after the WAL is fsynced, so an event whose ``append`` returned survives a
kill -9 or a pulled plug. Callers confirm a sale to the cashier only after
the transaction has committed.

Concurrency: any number of readers (the sync agent has its own connection)
and one writer at a time; writers take ``BEGIN IMMEDIATE`` and read the tail
inside their transaction, so two processes can never fork the chain.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from appliance import schema
from appliance.errors import IntegrityError, StorageError
from appliance.formats.canonical import canonical_text
from appliance.formats.chain import GENESIS_HASH, ChainReport, ChainVerifier, Event, envelope_hash
from appliance.ids import new_id

Projector = Callable[[sqlite3.Connection, Event], None]

_EVENT_COLUMNS = (
    "seq, event_id, device_id, type, payload, wall_ms, boot_id, mono_us, prev_hash, hash"
)


def boot_id() -> str:
    """The kernel's id of this boot; wall clocks on a Pi without RTC jump, this does not."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: one id per process is the best we can do
        return _PROCESS_BOOT_ID


_PROCESS_BOOT_ID = str(uuid.uuid4())
_BOOT_ID = boot_id()


def current_boot_id() -> str:
    """The boot id this process stamps on the events it appends."""
    return _BOOT_ID


def now_ms() -> int:
    """The wall clock the log stamps events with, in ms (the rules that read the time,
    such as which event is current, read this same clock)."""
    return time.time_ns() // 1_000_000


def _filesystem_state(folder: Path) -> str:
    """ "readonly", "full" or "" for the file system holding ``folder``.

    SQLite often reports a full or read-only disk as a generic I/O or open error,
    so we ask the file system itself.
    """
    try:
        st = os.statvfs(folder)
    except OSError:
        return ""
    if st.f_flag & os.ST_RDONLY or not os.access(folder, os.W_OK):
        return "readonly"
    if st.f_bavail * st.f_frsize < 256 * 1024:
        return "full"
    return ""


def storage_error(exc: BaseException, path: Path) -> StorageError:
    """Translate an SQLite/OS failure into a one-line instruction."""
    text = str(exc).lower()
    if "not a database" in text or "malformed" in text or "file is encrypted" in text:
        return StorageError(
            f"{path} is corrupt or not a tillbox log; restore it from a backup "
            "or point --data-dir at the right till"
        )
    state = _filesystem_state(path.parent)
    if (
        state == "full"
        or "disk is full" in text
        or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC)
    ):
        return StorageError(
            f"the disk holding {path} is full; free space (old photos, "
            "exports) and try again: nothing was recorded"
        )
    if state == "readonly" or "readonly" in text or "read-only" in text:
        return StorageError(
            f"{path} is on a read-only file system or folder; remount the data "
            "partition read-write (or fix its permissions) and try again: "
            "nothing was recorded"
        )
    if "locked" in text or "busy" in text:
        return StorageError(
            f"{path} is busy (another tillbox process holds the write lock "
            "too long); try again in a moment"
        )
    if "unable to open" in text:
        return StorageError(
            f"cannot open {path}; check that the data folder exists and is readable"
        )
    return StorageError(f"{path}: {exc}; check the disk and try again: nothing was recorded")


class Transaction:
    """One write transaction: read projections, then append events, all-or-nothing."""

    def __init__(self, log: EventLog, conn: sqlite3.Connection) -> None:
        self._log = log
        self.conn = conn
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        self.last_seq, self.last_hash = row if row else (0, GENESIS_HASH)
        self.appended: list[Event] = []

    def append(self, type: str, payload: dict[str, Any]) -> Event:
        seq = self.last_seq + 1
        event_id = new_id()
        wall_ms = time.time_ns() // 1_000_000
        mono_us = time.monotonic_ns() // 1000
        payload_text = canonical_text(payload)  # checks the payload once, here
        digest = envelope_hash(
            seq=seq,
            event_id=event_id,
            device_id=self._log.device_id,
            type=type,
            payload_text=payload_text,
            wall_ms=wall_ms,
            boot_id=_BOOT_ID,
            mono_us=mono_us,
            prev_hash=self.last_hash,
        )
        self.conn.execute(
            f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                seq,
                event_id,
                self._log.device_id,
                type,
                payload_text,
                wall_ms,
                _BOOT_ID,
                mono_us,
                self.last_hash,
                digest,
            ),
        )
        event = Event(
            seq,
            event_id,
            self._log.device_id,
            type,
            payload,
            wall_ms,
            _BOOT_ID,
            mono_us,
            self.last_hash,
            digest,
        )
        if self._log.projector is not None:
            self._log.projector(self.conn, event)
        self.last_seq, self.last_hash = seq, digest
        self.appended.append(event)
        return event


class EventLog:
    """A till's log. Open with :meth:`open` (existing) or :meth:`create` (new)."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        device_id: str,
        projector: Projector | None = None,
    ) -> None:
        self.path = path
        self.conn = conn
        self.device_id = device_id
        self.projector = projector

    # -- opening ---------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}?mode=rw"
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, timeout=10.0, check_same_thread=False
        )
        if not readonly:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StorageError(
                    f"{path}: cannot switch to WAL mode ({mode}); "
                    "the data folder must be on a local file system"
                )
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @classmethod
    def create(cls, path: Path, device_id: str, projector: Projector | None = None) -> EventLog:
        path = Path(path)
        if path.exists():
            raise StorageError(f"{path} already exists; choose an empty --data-dir")
        try:
            sqlite3.connect(path).close()  # creates the empty file
            conn = cls._connect(path)
            conn.execute(f"PRAGMA application_id={schema.APPLICATION_ID}")
            _migrate(conn, 0)
        except (sqlite3.Error, OSError) as exc:
            raise storage_error(exc, path) from exc
        return cls(path, conn, device_id, projector)

    @classmethod
    def open(
        cls, path: Path, projector: Projector | None = None, *, readonly: bool = False
    ) -> EventLog:
        path = Path(path)
        if not path.is_file():
            raise StorageError(
                f"no till log at {path}; run `tillbox init --data-dir DIR "
                "--device-id ID` first or point --data-dir at an existing till"
            )
        try:
            conn = cls._connect(path, readonly=readonly)
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except (sqlite3.Error, OSError) as exc:
            if not (readonly and _filesystem_state(path.parent) == "readonly"):
                raise storage_error(exc, path) from exc
            # A WAL database on read-only media cannot be opened in place (SQLite needs
            # its -shm file). Read a private copy of the file and its WAL instead, so an
            # inspector can verify a card mounted read-only, recent commits included.
            return cls.open(_private_copy(path), projector, readonly=True)
        if app_id != schema.APPLICATION_ID:
            raise StorageError(
                f"{path} is not a tillbox log (a foreign SQLite file); "
                "point --data-dir at a till created by `tillbox init`"
            )
        if version > schema.SCHEMA_VERSION:
            raise StorageError(
                f"{path} was written by a newer tillbox (schema {version}); "
                "upgrade tillbox before using this till"
            )
        if version < schema.SCHEMA_VERSION and not readonly:
            try:
                _migrate(conn, version)
            except sqlite3.Error as exc:
                raise storage_error(exc, path) from exc
        row = conn.execute("SELECT device_id FROM events WHERE seq = 1").fetchone()
        if row is None:
            raise StorageError(
                f"{path} holds no device record; run `tillbox init` again in an empty folder"
            )
        return cls(path, conn, row[0], projector)

    def close(self) -> None:
        self.conn.close()

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; any exception rolls everything back."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path) from exc
        try:
            tx = Transaction(self, self.conn)
            yield tx
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError) and "append-only" in str(exc):
                raise IntegrityError(str(exc)) from exc
            if isinstance(exc, sqlite3.Error | OSError):
                raise storage_error(exc, self.path) from exc
            raise

    def append(self, type: str, payload: dict[str, Any]) -> Event:
        with self.transaction() as tx:
            return tx.append(type, payload)

    # -- reading ---------------------------------------------------------------------------
    def last(self) -> tuple[int, str]:
        row = self.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return row if row else (0, GENESIS_HASH)

    def events(
        self, since: int = 0, until: int | None = None, batch: int = 2000
    ) -> Iterator[Event]:
        """Events with ``since < seq <= until`` in order, read in batches (constant memory)."""
        for _payload_text, event in self._rows(since, until, batch):
            yield event

    def _rows(self, since: int, until: int | None, batch: int) -> Iterator[tuple[str, Event]]:
        last = since
        limit = until if until is not None else 2**62
        while True:
            rows = self.conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? AND seq <= ? "
                "ORDER BY seq LIMIT ?",
                (last, limit, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield (
                    row[4],
                    Event(
                        row[0],
                        row[1],
                        row[2],
                        row[3],
                        json.loads(row[4]),
                        row[5],
                        row[6],
                        row[7],
                        row[8],
                        row[9],
                    ),
                )
            last = rows[-1][0]

    def event(self, seq: int) -> Event | None:
        return next(self.events(seq - 1, seq), None)

    # -- checking --------------------------------------------------------------------------
    def verify(self, since: int = 0) -> ChainReport:
        """Structure (triggers, quick_check) then the chain from ``since`` to the tail."""
        problem = self.structure_problem()
        if problem:
            return ChainReport(False, 0, since, "", since + 1 if since else 1, problem)
        start_prev = GENESIS_HASH
        if since:
            row = self.conn.execute("SELECT hash FROM events WHERE seq = ?", (since,)).fetchone()
            if row is None:
                return ChainReport(False, 0, 0, "", since, f"no event with seq {since}")
            start_prev = row[0]
        verifier = ChainVerifier(start_prev, since + 1)
        for text, ev in self._rows(since, None, 5000):
            if not verifier.feed(ev, text):
                break
        return verifier.report()

    def structure_problem(self) -> str:
        """Empty when the append-only triggers are intact and SQLite's quick_check passes."""
        rows = dict(
            self.conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
            ).fetchall()
        )
        for name, sql in schema.TRIGGERS.items():
            if rows.get(name) != sql:
                return f"append-only trigger {name} is missing or altered"
        check = self.conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            return f"SQLite quick_check failed: {check}"
        return ""


def _private_copy(path: Path) -> Path:
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tillbox-ro-"))
    atexit.register(shutil.rmtree, folder, True)
    for suffix in ("", "-wal"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            shutil.copyfile(source, folder / f"{path.name}{suffix}")
    return folder / path.name


def _migrate(conn: sqlite3.Connection, from_version: int) -> None:
    """Apply every migration above ``from_version`` in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for version in sorted(v for v in schema.MIGRATIONS if v > from_version):
            for statement in schema.MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
