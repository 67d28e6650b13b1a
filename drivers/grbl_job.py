"""One engraving job: a stream of G-code lines sent over a :class:`GrblConnection` in a
worker thread, with hold, resume and cancel from any thread, and its progress and its
result reported through callbacks (the kiosk marshals them to the UI thread).

Cancel is a feed hold, a wait until the head has stopped, then a soft reset: a reset
while the head moves loses the position (GRBL's ALARM:3), so it is never sent then.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.common import DeviceFault
from drivers.grbl_connection import GrblConnection
from drivers.grbl_protocol import (
    CRITICAL_ALARMS,
    CYCLE_START,
    ERRORS,
    FEED_HOLD,
    RX_BUFFER,
    EngraverAlarm,
)

log = logging.getLogger("tillbox.drivers.grbl")


@dataclass(frozen=True)
class JobProgress:
    acked: int
    total: int
    state: str  # streaming | held | finishing | done
    position: tuple[float, ...] | None
    elapsed_s: float
    remaining_s: float | None

    @property
    def fraction(self) -> float:
        return self.acked / self.total if self.total else 1.0


@dataclass(frozen=True)
class JobResult:
    outcome: str  # completed | failed | cancelled | alarm
    message: str
    lines_acked: int
    total: int
    failed_line_no: int | None = None  # 1-based
    failed_line: str | None = None
    error_code: int | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "completed"

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "message": self.message,
            "lines_acked": self.lines_acked,
            "total": self.total,
            "failed_line_no": self.failed_line_no,
            "failed_line": self.failed_line,
            "error_code": self.error_code,
            "elapsed_ms": int(self.elapsed_s * 1000),
        }


class _Cancelled(Exception):
    pass


class EngraveJob:
    """One stream of G-code lines, run in a worker thread.

    ``on_progress(JobProgress)`` and ``on_done(JobResult)`` are called from the worker
    thread. :meth:`hold`, :meth:`resume` and :meth:`cancel` may be called from any thread.
    """

    def __init__(
        self,
        conn: GrblConnection,
        lines: Sequence[str],
        *,
        estimated_s: float | None = None,
        on_progress: Callable[[JobProgress], None] | None = None,
        on_done: Callable[[JobResult], None] | None = None,
        poll_s: float = 0.2,
        stall_s: float = 10.0,
    ) -> None:
        self.conn = conn
        self.lines = [ln.strip() for ln in lines if ln.strip()]
        for n, line in enumerate(self.lines, 1):
            if len(line) + 1 > RX_BUFFER:
                raise DeviceFault(
                    f"G-code line {n} is {len(line)} characters; GRBL takes at most {RX_BUFFER - 1}"
                )
            if not line.isascii():
                raise DeviceFault(f"G-code line {n} has non-ASCII characters")
        self.estimated_s = estimated_s
        self.on_progress = on_progress
        self.on_done = on_done
        self.poll_s = poll_s
        self.stall_s = stall_s
        self.acked = 0
        self.held = False
        self.result: JobResult | None = None
        self.max_in_flight = 0
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    # -- control (any thread) --------------------------------------------------------------
    def start(self) -> EngraveJob:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="engrave-job", daemon=True)
        self._thread.start()
        return self

    def run(self) -> JobResult:
        """Run in the calling thread (the CLI); returns when the job ends."""
        self._started = time.monotonic()
        self._run()
        assert self.result is not None
        return self.result

    def hold(self) -> None:
        self.conn.realtime(FEED_HOLD)
        self.held = True

    def resume(self) -> None:
        self.conn.realtime(CYCLE_START)
        self.held = False

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> JobResult | None:
        self._done.wait(timeout)
        return self.result

    # -- the worker ------------------------------------------------------------------------
    def _progress(self, state: str, pos: tuple[float, ...] | None = None) -> None:
        if not self.on_progress:
            return
        elapsed = time.monotonic() - self._started
        remaining = None
        if state == "done":
            remaining = 0.0
        elif self.estimated_s is not None:
            remaining = max(0.0, self.estimated_s - elapsed)
        elif self.acked:
            remaining = elapsed * (len(self.lines) - self.acked) / self.acked
        try:
            self.on_progress(
                JobProgress(self.acked, len(self.lines), state, pos, elapsed, remaining)
            )
        except Exception:
            log.exception("progress callback failed")

    def _finish(self, outcome: str, message: str, **kw: Any) -> None:
        self.result = JobResult(
            outcome,
            message,
            self.acked,
            len(self.lines),
            elapsed_s=time.monotonic() - self._started,
            **kw,
        )
        self._done.set()
        if self.on_done:
            try:
                self.on_done(self.result)
            except Exception:
                log.exception("done callback failed")

    def _run(self) -> None:
        try:
            self._stream()
            self._wait_idle()
        except _Cancelled:
            self._do_cancel()
        except EngraverAlarm as exc:
            note = self._reset_after_limit_alarm(exc.code)
            self._finish("alarm", str(self.conn.alarm_error(exc.code, note)), error_code=exc.code)
        except _LineError as exc:
            self._stop_after_error()
            self._finish(
                "failed",
                str(exc),
                failed_line_no=exc.line_no,
                failed_line=exc.line,
                error_code=exc.code,
            )
        except DeviceFault as exc:
            self._finish("failed", str(exc))
        else:
            self._finish("completed", f"engraving finished: {len(self.lines)} lines")

    def _stream(self) -> None:
        conn = self.conn
        conn.drain_acks()
        in_flight: deque[int] = deque()  # byte counts of unacknowledged lines
        used = 0
        sent = 0
        total = len(self.lines)
        last_poll = 0.0
        last_ack = time.monotonic()
        while self.acked < total:
            if self._cancel.is_set():
                raise _Cancelled
            while sent < total and used + len(self.lines[sent]) + 1 <= RX_BUFFER:
                data = self.lines[sent].encode("ascii") + b"\n"
                conn.write(data)
                in_flight.append(len(data))
                used += len(data)
                sent += 1
                self.max_in_flight = max(self.max_in_flight, used)
            now = time.monotonic()
            if now - last_poll >= self.poll_s:
                last_poll = now
                conn.poll_status()
                status = conn.last_status
                self._progress(
                    "held" if self.held else "streaming", status.position if status else None
                )
            try:
                kind, value = conn.acks.get(timeout=0.05)
            except queue.Empty:
                if self.held:
                    last_ack = time.monotonic()  # waiting on the operator is not a stall
                elif time.monotonic() - last_ack > self.stall_s and not self._moving():
                    raise DeviceFault(
                        f"engraver stopped answering after line {self.acked}; "
                        "check power and cable, then reset it"
                    ) from None
                continue
            if kind == "closed":
                raise DeviceFault(value)
            if kind == "alarm":
                raise conn.alarm_error(value)
            if kind == "reset":
                raise DeviceFault("engraver reset itself mid-job; check its power supply")
            if kind in ("ok", "error"):
                if not in_flight:
                    continue  # a stray ok (e.g. from before the job)
                used -= in_flight.popleft()
                self.acked += 1
                last_ack = time.monotonic()
                if kind == "error":
                    n = self.acked
                    raise _LineError(n, self.lines[n - 1], value)

    def _moving(self) -> bool:
        """True when status reports still arrive (a long move, not a dead controller)."""
        try:
            status = self.conn.query_status(timeout=1.0)
        except DeviceFault:
            return False
        return status.state in ("Run", "Jog", "Hold")

    def _wait_idle(self) -> None:
        """All lines are in the planner; wait until the motion has finished."""
        while True:
            if self._cancel.is_set():
                raise _Cancelled
            if self.conn.alarm is not None:
                raise self.conn.alarm_error(self.conn.alarm)
            try:
                status = self.conn.query_status()
            except DeviceFault:
                if self.conn.alarm is not None:  # a limit alarm: GRBL stops answering ?
                    raise self.conn.alarm_error(self.conn.alarm) from None
                raise
            if status.state == "Idle":
                self._progress("done", status.position)
                return
            if status.state == "Alarm":
                raise self.conn.alarm_error(self.conn.alarm)
            self._progress("held" if status.state == "Hold" else "finishing", status.position)
            time.sleep(self.poll_s)

    def _reset_after_limit_alarm(self, code: int | None) -> str:
        """After a hard or soft limit alarm GRBL hears nothing but a soft reset: send it.

        Returns what the operator is told about it ("" when no reset was needed).
        """
        conn = self.conn
        if code not in CRITICAL_ALARMS and not conn.needs_reset:
            return ""
        try:
            conn.soft_reset()
        except DeviceFault as exc:
            return f"GRBL waits for a reset and tillbox could not send it ({exc})"
        kept = "the position is kept" if code == 2 else "the position may be lost"
        log.warning("engraver alarm %s: soft reset sent to end the stream", code)
        return f"tillbox reset the controller to end the job, as GRBL requires ({kept})"

    def _stop_after_error(self) -> None:
        """After error:N the lines already queued would still burn: stop them all."""
        try:
            self._halt()
        except DeviceFault as exc:
            log.warning("could not stop the engraver after an error: %s", exc)

    def _halt(self) -> None:
        conn = self.conn
        # A report already on its way was written before this hold: it may say Idle (the
        # planner ran dry for a moment) or Hold:0 (a hold since resumed) while the head
        # moves again, and a reset in motion loses the position (ALARM:3). So let the
        # last poll's answer arrive first: every report after the ! answers a later ?.
        conn.settle_polls()
        conn.realtime(FEED_HOLD)
        deadline = time.monotonic() + conn.timeout
        while time.monotonic() < deadline:
            status = conn.query_status(timeout=1.0)
            if status.state in ("Idle", "Alarm") or (
                status.state == "Hold" and status.substate == 0
            ):
                break
            time.sleep(0.05)
        conn.soft_reset()

    def _do_cancel(self) -> None:
        try:
            self._halt()
        except DeviceFault as exc:
            self._finish("failed", f"cancel did not complete cleanly: {exc}")
            return
        self._finish(
            "cancelled",
            f"engraving cancelled after {self.acked} of "
            f"{len(self.lines)} lines; the piece is unfinished",
        )


class _LineError(DeviceFault):
    def __init__(self, line_no: int, line: str, code: int) -> None:
        self.line_no, self.line, self.code = line_no, line, code
        super().__init__(
            f"engraver rejected line {line_no} ({line!r}): error {code} "
            f"({ERRORS.get(code, 'see the GRBL manual')}); job stopped"
        )
