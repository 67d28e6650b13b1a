"""A behavioural GRBL 1.1 laser controller on a pseudo-terminal.

Open :attr:`GrblSimulator.port` (``/dev/pts/N``) with pyserial like a real
controller. What it models, because real jobs fail on exactly these:

* a **128-byte serial receive buffer**: bytes that arrive while it is full are
  dropped (:attr:`dropped`), which is how a sender that ignores flow control
  corrupts a job; lines leave the buffer only when the 16-block planner has room;
* ``ok`` / ``error:N`` per line, the start-up banner, ``$I``, ``$$``, ``$X``,
  ``$N=V``, ``$G``, ``$H`` (homing disabled);
* real-time commands picked out of the stream on arrival (``?``, ``!``, ``~``,
  Ctrl-X), status reports ``<Run|MPos:..|FS:..>`` that advance with simulated motion
  (``speed`` times faster than the programmed feed), feed hold and resume, soft
  reset (in motion: ``ALARM:3``, as the firmware does);
* faults: an alarm mid-job, garbage bytes, a garbled line (wrong baud rate), a
  stalled controller, a disconnect.

:attr:`executed` lists every block accepted (the text GRBL actually parsed) and
:attr:`burns` every laser-on move, so tests can check a job arrived intact and a
dry run never fired the laser.
"""

from __future__ import annotations

import math
import os
import re
import select
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass

RX_BUFFER = 128
PLANNER_BLOCKS = 16
LINE_MAX = 80
VERSION = "1.1h"
BANNER = f"Grbl {VERSION} ['$' for help]"
DEFAULT_SETTINGS: dict[int, float] = {
    0: 10,
    1: 25,
    2: 0,
    3: 0,
    4: 0,
    5: 0,
    6: 0,
    10: 1,
    11: 0.010,
    12: 0.002,
    13: 0,
    20: 0,
    21: 0,
    22: 0,
    23: 0,
    24: 25.0,
    25: 500.0,
    26: 250,
    27: 1.0,
    30: 1000,
    31: 0,
    32: 1,
    100: 80.0,
    101: 80.0,
    102: 80.0,
    110: 6000.0,
    111: 6000.0,
    112: 500.0,
    120: 500.0,
    121: 500.0,
    122: 100.0,
    130: 300.0,
    131: 200.0,
    132: 50.0,
}
_WORD = re.compile(r"([A-Z])([-+]?(?:\d+\.?\d*|\.\d+))")


@dataclass
class Block:
    text: str
    start: tuple[float, float, float]
    end: tuple[float, float, float]
    feed_mm_min: float
    power: float  # 0 = laser off
    dwell_s: float = 0.0

    @property
    def length(self) -> float:
        return math.dist(self.start, self.end)


class GrblSimulator:
    """A GRBL controller in a thread, on the master side of a pty."""

    def __init__(
        self, speed: float = 20.0, settings: dict[int, float] | None = None, banner: bool = True
    ) -> None:
        self.speed = speed
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self._slave)
        self.rx = bytearray()
        self.dropped = 0
        self.received = bytearray()
        self.executed: list[str] = []
        self.errors: list[tuple[str, int]] = []
        self.burns: list[Block] = []
        self.planner: deque[Block] = deque()
        self.progress = 0.0  # mm (or s of dwell) done on planner[0]
        self.pos = [0.0, 0.0, 0.0]
        self.state = "Idle"
        self.hold_pending = False
        self.alarm: int | None = None
        self.modal = {"motion": 0, "absolute": True, "feed": 0.0, "spindle": 0.0, "laser": "M5"}
        self.check_mode = False
        self.stalled = False
        self.garble = False
        self.closed = False
        self._fail_after: tuple[int, int] | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._out = bytearray()
        if banner:
            self._send(f"\r\n{BANNER}\r\n")
        self._thread = threading.Thread(target=self._run, name="grbl-sim", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return self.port

    # -- fault injection -------------------------------------------------------------------
    def inject_alarm(self, code: int = 1) -> None:
        """An alarm now (1 = hard limit): motion stops, buffers are flushed."""
        with self._lock:
            self._enter_alarm(code)

    def alarm_after_blocks(self, blocks: int, code: int = 1) -> None:
        """Raise ALARM:``code`` once ``blocks`` more blocks have been executed."""
        with self._lock:
            self._fail_after = (len(self.executed) + blocks, code)

    def send_garbage(self, data: bytes) -> None:
        with self._lock:
            self._out += data

    def stall(self, stalled: bool = True) -> None:
        """Freeze: read nothing, answer nothing (a hung controller or a dead USB bridge)."""
        self.stalled = stalled

    def disconnect(self) -> None:
        """Pull the USB cable: close the pty, so the other side gets I/O errors."""
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.closed = True

    stop = disconnect

    # -- the loop --------------------------------------------------------------------------
    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self.master], [], [], 0.002)
            except (OSError, ValueError):
                return
            now = time.monotonic()
            dt, last = now - last, now
            if self.stalled:
                continue
            with self._lock:
                if readable:
                    try:
                        data = os.read(self.master, 4096)
                    except OSError:
                        data = b""
                    self._receive(data)
                self._parse_lines()
                self._move(dt)
                self._flush_out()

    def _receive(self, data: bytes) -> None:
        self.received += data
        for byte in data:
            if byte == ord("?"):
                self._send(self._status_report())
            elif byte == ord("!"):
                if self.state in ("Run", "Jog"):
                    self.state = "Hold:1"  # decelerating
                    self.hold_pending = True
                elif self.state == "Idle":
                    self.state = "Hold:0"  # as GRBL 1.1: a hold from Idle is complete at once
            elif byte == ord("~"):
                if self.state.startswith("Hold"):
                    self.state = "Run" if self.planner else "Idle"
            elif byte == 0x18:
                self._soft_reset()
            elif byte >= 0x80:
                continue  # overrides, jog cancel: accepted and ignored
            elif len(self.rx) < RX_BUFFER:
                self.rx.append(byte)
            else:
                self.dropped += 1

    def _soft_reset(self) -> None:
        moving = self.state in ("Run", "Jog", "Hold:1") and bool(self.planner)
        self.rx.clear()
        self.planner.clear()
        self.progress = 0.0
        self.modal.update(motion=0, spindle=0.0, laser="M5")
        self.hold_pending = False
        if moving:
            self._send("ALARM:3\r\n")
        self._send(f"\r\n{BANNER}\r\n")
        if moving or self.alarm is not None:
            self.alarm = self.alarm or 3
            self.state = "Alarm"
            self._send("[MSG:'$H'|'$X' to unlock]\r\n")
        else:
            self.state = "Idle"

    def _enter_alarm(self, code: int) -> None:
        self.alarm = code
        self.state = "Alarm"
        self.planner.clear()
        self.rx.clear()
        self.progress = 0.0
        self._send(f"ALARM:{code}\r\n")

    def _parse_lines(self) -> None:
        while len(self.planner) < PLANNER_BLOCKS:
            end = self.rx.find(b"\n")
            if end < 0:
                if len(self.rx) >= RX_BUFFER:  # a line longer than the buffer: GRBL errors
                    self.rx.clear()
                    self._send("error:11\r\n")
                return
            raw = bytes(self.rx[:end]).rstrip(b"\r")
            del self.rx[: end + 1]
            self._send(self._execute(raw.decode("latin-1")))

    def _execute(self, raw: str) -> str:
        line = re.sub(r"\([^)]*\)|;.*$", "", raw).replace(" ", "").upper()
        if not line:
            return "ok\r\n"
        if len(line) > LINE_MAX:
            return self._error(raw, 11)
        if line.startswith("$"):
            return self._dollar(line)
        if self.alarm is not None:
            return self._error(raw, 9)
        code = self._gcode(line, raw)
        if code == -2:  # soft limit: GRBL raises an alarm instead of answering the line
            self._enter_alarm(2)
            return ""
        if code:
            return self._error(raw, code)
        self.executed.append(raw)
        if self._fail_after and len(self.executed) >= self._fail_after[0]:
            _, alarm = self._fail_after
            self._fail_after = None
            self._enter_alarm(alarm)
            return ""
        return "ok\r\n"

    def _error(self, raw: str, code: int) -> str:
        self.errors.append((raw, code))
        return f"error:{code}\r\n"

    def _dollar(self, line: str) -> str:
        if line == "$X":
            self.alarm = None
            if self.state == "Alarm":
                self.state = "Idle"
            return "[MSG:Caution: Unlocked]\r\nok\r\n"
        if line == "$G":
            m = self.modal
            return (
                f"[GC:G{m['motion']} G54 G17 G21 G{90 if m['absolute'] else 91} G94 "
                f"{m['laser']} M9 T0 F{m['feed']:g} S{m['spindle']:g}]\r\nok\r\n"
            )
        if line == "$C":
            self.check_mode = not self.check_mode
            return f"[MSG:{'Enabled' if self.check_mode else 'Disabled'}]\r\nok\r\n"
        if self.state not in ("Idle", "Alarm"):
            return "error:8\r\n"
        if line == "$$":
            body = "".join(
                f"${k}={v:g}\r\n" if float(v).is_integer() else f"${k}={v:.3f}\r\n"
                for k, v in sorted(self.settings.items())
            )
            return body + "ok\r\n"
        if line == "$I":
            return f"[VER:{VERSION}.20190825:tillbox-sim]\r\n[OPT:V,15,128]\r\nok\r\n"
        if line == "$H":
            return "error:5\r\n"
        match = re.fullmatch(r"\$(\d+)=([-+]?\d*\.?\d+)", line)
        if match:
            self.settings[int(match.group(1))] = float(match.group(2))
            return "ok\r\n"
        return "error:3\r\n"

    def _gcode(self, line: str, raw: str) -> int:
        """Parse one block; 0 on success, else the GRBL error code."""
        if not line[0].isalpha():
            return 1
        words = _WORD.findall(line)
        if "".join(a + b for a, b in words) != line:
            return 2 if re.search(r"[A-Z](?![-+.\d])", line) else 1
        target = list(self.pos)
        motion = None
        dwell = 0.0
        axes = False
        for letter, value in words:
            v = float(value)
            if letter == "G":
                if v in (0, 1):
                    motion = int(v)
                elif v == 4:
                    motion = 4
                elif v in (90, 91):
                    self.modal["absolute"] = v == 90
                elif v not in (17, 21, 54, 94):
                    return 20
            elif letter == "M":
                if v in (3, 4):
                    self.modal["laser"] = f"M{int(v)}"
                elif v == 5:
                    self.modal["laser"] = "M5"
                elif v in (2, 30):
                    self.modal["laser"] = "M5"
                elif v not in (8, 9):
                    return 20
            elif letter in "XYZ":
                i = "XYZ".index(letter)
                target[i] = v if self.modal["absolute"] else self.pos[i] + v
                axes = True
            elif letter == "F":
                if v <= 0:
                    return 22
                self.modal["feed"] = v
            elif letter == "S":
                self.modal["spindle"] = v
            elif letter == "P":
                dwell = v
            elif letter == "N":
                continue
            else:
                return 20
        if motion is not None and motion != 4:
            self.modal["motion"] = motion
        if motion == 4:
            self._plan(Block(raw, tuple(self.pos), tuple(self.pos), 1, 0.0, dwell))
            return 0
        if axes and int(self.settings.get(20, 0)) == 1:
            travel = [self.settings.get(130 + i, 0) for i in range(3)]
            if any(not 0 <= t <= m for t, m in zip(target, travel, strict=True)):
                return -2
        if axes:
            mode = self.modal["motion"]
            if mode == 1 and self.modal["feed"] <= 0:
                return 22
            feed = self.settings[110] if mode == 0 else self.modal["feed"]
            on = mode == 1 and self.modal["laser"] != "M5" and self.modal["spindle"] > 0
            start = self._planned_end()
            block = Block(raw, start, tuple(target), feed, self.modal["spindle"] if on else 0)
            if not self.check_mode:
                self._plan(block)
        return 0

    def _planned_end(self) -> tuple[float, float, float]:
        return self.planner[-1].end if self.planner else tuple(self.pos)

    def _plan(self, block: Block) -> None:
        self.planner.append(block)
        if block.power > 0:
            self.burns.append(block)
        if self.state == "Idle":
            self.state = "Run"

    def _move(self, dt: float) -> None:
        if self.state == "Hold:1":
            self.state = "Hold:0"  # decelerated within one tick
            return
        if self.state != "Run":
            return
        budget = dt * self.speed
        while self.planner and budget > 0:
            block = self.planner[0]
            if block.dwell_s:
                need = block.dwell_s - self.progress
                if budget >= need:
                    budget -= need
                    self.planner.popleft()
                    self.progress = 0.0
                else:
                    self.progress += budget
                    budget = 0
                continue
            rate = block.feed_mm_min / 60.0
            need = (block.length - self.progress) / rate if rate else 0
            if budget >= need:
                budget -= need
                self.pos = list(block.end)
                self.planner.popleft()
                self.progress = 0.0
            else:
                self.progress += budget * rate
                frac = self.progress / block.length if block.length else 1
                self.pos = [a + (b - a) * frac for a, b in zip(block.start, block.end, strict=True)]
                budget = 0
        if not self.planner:
            self.state = "Idle"

    def _status_report(self) -> str:
        x, y, z = self.pos
        feed = self.planner[0].feed_mm_min if self.planner and self.state == "Run" else 0
        power = self.planner[0].power if self.planner and self.state == "Run" else 0
        report = f"<{self.state}|MPos:{x:.3f},{y:.3f},{z:.3f}|FS:{feed:g},{power:g}"
        if int(self.settings.get(10, 1)) & 2:
            report += f"|Bf:{PLANNER_BLOCKS - len(self.planner)},{RX_BUFFER - len(self.rx)}"
        return report + ">\r\n"

    def _send(self, text: str) -> None:
        self._out += text.encode("ascii")

    def _flush_out(self) -> None:
        if not self._out:
            return
        data = bytes(self._out)
        if self.garble:  # what a wrong baud rate looks like from the other end
            data = bytes((b * 37 + 11) % 256 | 0x80 for b in data)
        try:
            written = os.write(self.master, data)
        except BlockingIOError:
            written = 0  # the other side is not reading; keep it for later
        except OSError:
            written = len(data)
        if self.garble:
            self._out.clear()  # garbled output is not worth keeping
        else:
            del self._out[:written]
