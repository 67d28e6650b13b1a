"""A behavioural GRBL 1.1 laser controller on a pseudo-terminal.

Open :attr:`GrblSimulator.port` (``/dev/pts/N``) with pyserial like a real
controller. What it models, because real jobs fail on exactly these:

* a **128-byte serial receive buffer**: bytes that arrive while it is full are
  dropped (:attr:`dropped`), which is how a sender that ignores flow control
  corrupts a job; lines leave the buffer only when the 16-block planner has room;
* ``ok`` / ``error:N`` per line, the start-up banner, ``$I``, ``$$``, ``$X``,
  ``$N=V``, ``$G``, ``$#``, ``$H``;
* **homing and machine space** as GRBL 1.1 (``grbl/limits.c``): ``$H`` with ``$22=1``
  puts the whole machine space in negative coordinates (``-$130..0``), the head at
  ``-$27`` from the switch end that ``$23`` names; without homing ``$H`` is
  ``error:5``. With homing enabled the controller powers up in Alarm
  (``[MSG:'$H'|'$X' to unlock]``, no code), and a soft reset keeps an Alarm;
* **work coordinates**: ``G54``..``G59`` (kept like EEPROM), ``G10 L2``/``L20``,
  ``G92``/``G92.1``, status reports ``MPos`` or ``WPos`` as ``$10`` asks, with a
  ``WCO`` field every 10 (idle) or 30 (busy) reports and right after an offset change;
* **soft limits** (``$20=1``, refused with ``error:10`` unless ``$22=1``): a move whose
  machine target leaves the travel raises ``ALARM:2`` and ``[MSG:Reset to continue]``;
  after ``ALARM:1``/``ALARM:2`` the controller answers nothing (not even ``?``) until a
  soft reset, then stays in Alarm. An alarm's code is sent once; status reports say
  only ``Alarm``;
* real-time commands picked out of the stream on arrival (``?``, ``!``, ``~``,
  Ctrl-X), status reports ``<Run|MPos:..|FS:..>`` that advance with simulated motion
  (``speed`` times faster than the programmed feed), feed hold (``Hold:1`` while it
  decelerates at ``$120``/``$121``, then ``Hold:0``; ``~`` resumes only a complete
  hold), soft reset (in motion, which includes ``Hold:1``: ``ALARM:3``, as the
  firmware does);
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
CRITICAL_ALARMS = (1, 2)  # hard and soft limit: GRBL then waits for a reset
WCO_REFRESH_IDLE = 10
WCO_REFRESH_BUSY = 30
UNLOCK_MESSAGE = "[MSG:'$H'|'$X' to unlock]"
HOMING = {22: 1, 20: 1}  # settings of a machine with homing and soft limits
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
        self,
        speed: float = 20.0,
        settings: dict[int, float] | None = None,
        banner: bool = True,
        force_origin: bool = False,
    ) -> None:
        self.speed = speed
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        if self.settings[20] and not self.settings[22]:
            # GRBL refuses to store this ($20=1 is error:10 without $22=1)
            raise ValueError("soft limits ($20=1) need homing ($22=1), as in GRBL")
        # HOMING_FORCE_SET_ORIGIN (build option "Z" in $I): home is 0 and axes homed
        # towards negative ($23 bit set) get the positive space 0..max travel
        self.force_origin = force_origin
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
        self.pos = [0.0, 0.0, 0.0]  # machine position
        self.coords: dict[int, list[float]] = {n: [0.0, 0.0, 0.0] for n in range(54, 60)}
        self.g92 = [0.0, 0.0, 0.0]
        self.coord_select = 54
        self.wco_counter = 0  # the next status report carries WCO
        self.homed = False
        self.homing_left = 0.0  # s of simulated homing still to run
        self.critical = False  # after ALARM:1/2: deaf to all but a soft reset
        self.decel_left = 0.0  # s (machine time) of a feed hold's deceleration still to run
        self.alarm: int | None = None  # the last code raised (sent once, on its line)
        # HOMING_INIT_LOCK (GRBL's default): with homing on, power up locked in Alarm
        self.state = "Alarm" if self.settings[22] else "Idle"
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
            if self.state == "Alarm":
                self._send(UNLOCK_MESSAGE + "\r\n")
        self._thread = threading.Thread(target=self._run, name="grbl-sim", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return self.port

    # -- fault injection -------------------------------------------------------------------
    @property
    def wco(self) -> list[float]:
        """The work coordinate offset: the active G54..G59 plus G92."""
        return [a + b for a, b in zip(self.coords[self.coord_select], self.g92, strict=True)]

    @property
    def wpos(self) -> list[float]:
        return [p - o for p, o in zip(self.pos, self.wco, strict=True)]

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
                self._home(dt)
                self._parse_lines()
                self._move(dt)
                self._flush_out()

    def _receive(self, data: bytes) -> None:
        self.received += data
        for byte in data:
            if self.critical and byte != 0x18:
                # GRBL's critical-event loop: bytes still land in the RX buffer, but
                # nothing is parsed and no real-time command (not even ?) is answered
                if len(self.rx) < RX_BUFFER:
                    self.rx.append(byte)
                else:
                    self.dropped += 1
                continue
            if byte == ord("?"):
                self._send(self._status_report())
            elif byte == ord("!"):
                if self.state in ("Run", "Jog"):
                    self.state = "Hold:1"  # decelerating, at $120 from the current feed
                    self.decel_left = self._deceleration_s()
                elif self.state == "Idle":
                    self.state = "Hold:0"  # as GRBL 1.1: a hold from Idle is complete at once
            elif byte == ord("~"):
                # as protocol.c: a cycle start resumes only a completed hold (Hold:0);
                # during the deceleration it is ignored
                if self.state == "Hold:0":
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
        homing = self.state == "Home"
        self.rx.clear()
        self.planner.clear()
        self.progress = 0.0
        self.modal.update(motion=0, spindle=0.0, laser="M5", absolute=True)
        self.g92 = [0.0, 0.0, 0.0]  # G92 is not kept over a reset; G54..G59 are (EEPROM)
        self.coord_select = 54
        self.wco_counter = 0
        self.decel_left = 0.0
        self.homing_left = 0.0
        self.critical = False
        if homing:
            self._raise(6)  # homing fail: reset during homing
        elif moving:
            self._raise(3)  # position lost
        self._send(f"\r\n{BANNER}\r\n")
        if self.state == "Alarm":  # GRBL keeps the prior Alarm over a reset
            self._send(UNLOCK_MESSAGE + "\r\n")
        else:
            self.state = "Idle"

    def _raise(self, code: int) -> None:
        """Send ``ALARM:code`` (the only time its code is told) and lock."""
        self.alarm = code
        self.state = "Alarm"
        if code in (1, 3, 6, 7, 8, 9, 10):
            self.homed = False  # steps lost or homing incomplete
        self._send(f"ALARM:{code}\r\n")
        if code in CRITICAL_ALARMS:
            self.critical = True
            self._send("[MSG:Reset to continue]\r\n")

    def _enter_alarm(self, code: int) -> None:
        self.planner.clear()
        self.progress = 0.0
        if code not in CRITICAL_ALARMS:
            self.rx.clear()
        self._raise(code)

    def _parse_lines(self) -> None:
        while len(self.planner) < PLANNER_BLOCKS and not self.critical and not self.homing_left:
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
        if self.state == "Alarm":
            return self._error(raw, 9)
        code = self._gcode(line, raw)
        if code == -2:  # soft limit: GRBL stops and raises an alarm instead of answering
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
            if self.state == "Alarm":
                self.alarm = None
                self.state = "Idle"
                return "[MSG:Caution: Unlocked]\r\nok\r\n"
            return "ok\r\n"
        if line == "$G":
            m = self.modal
            return (
                f"[GC:G{m['motion']} G{self.coord_select} G17 G21 "
                f"G{90 if m['absolute'] else 91} G94 "
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
        if line == "$#":
            return self._parameters()
        if line == "$I":
            options = "VZ" if self.force_origin else "V"
            return f"[VER:{VERSION}.20190825:tillbox-sim]\r\n[OPT:{options},15,128]\r\nok\r\n"
        if line == "$H":
            if not self.settings[22]:
                return "error:5\r\n"  # homing is not enabled
            self.state = "Home"
            # seek the switches at $25, then locate: simulated at ``speed``
            travel = max(self.settings[130], self.settings[131])
            self.homing_left = (travel / max(self.settings[25], 1.0) * 60 + 1.0) / self.speed
            return ""  # ok comes when homing is done
        match = re.fullmatch(r"\$(\d+)=([-+]?\d*\.?\d+)", line)
        if match:
            key, value = int(match.group(1)), float(match.group(2))
            if key == 20 and value and not self.settings[22]:
                return "error:10\r\n"  # soft limits cannot be enabled without homing
            self.settings[key] = value
            if key == 22 and not value:
                self.settings[20] = 0  # GRBL forces soft limits off with homing
            if key == 10:
                self.wco_counter = 0
            return "ok\r\n"
        return "error:3\r\n"

    def _parameters(self) -> str:
        """``$#``: the stored offsets, as GRBL 1.1 prints them."""

        def axes(v: list[float]) -> str:
            return ",".join(f"{a:.3f}" for a in v)

        out = [f"[G{n}:{axes(self.coords[n])}]" for n in range(54, 60)]
        out += ["[G28:0.000,0.000,0.000]", "[G30:0.000,0.000,0.000]"]
        out += [f"[G92:{axes(self.g92)}]", "[TLO:0.000]", "[PRB:0.000,0.000,0.000:0]"]
        return "\r\n".join(out) + "\r\nok\r\n"

    def _home(self, dt: float) -> None:
        """Finish a running ``$H``: the machine space becomes -max travel..0 (limits.c)."""
        if not self.homing_left:
            return
        self.homing_left = max(0.0, self.homing_left - dt)
        if self.homing_left:
            return
        pulloff = self.settings[27]
        for i in range(3):
            toward_negative = int(self.settings[23]) >> i & 1
            if self.force_origin:
                self.pos[i] = 0.0
            elif toward_negative:
                self.pos[i] = -self.settings[130 + i] + pulloff
            else:
                self.pos[i] = -pulloff
        self.homed = True
        self.alarm = None
        self.state = "Idle"
        self._send("ok\r\n")

    def machine_range(self, axis: int) -> tuple[float, float]:
        """The travel GRBL's soft-limit check allows on ``axis``, in machine coordinates."""
        travel = self.settings[130 + axis]
        if self.force_origin and int(self.settings[23]) >> axis & 1:
            return 0.0, travel
        return -travel, 0.0

    def _gcode(self, line: str, raw: str) -> int:
        """Parse one block; 0 on success, -2 for a soft-limit violation, else GRBL's error."""
        if not line[0].isalpha():
            return 1
        words = _WORD.findall(line)
        if "".join(a + b for a, b in words) != line:
            return 2 if re.search(r"[A-Z](?![-+.\d])", line) else 1
        motion = None
        dwell = 0.0
        axis_words: dict[int, float] = {}
        non_modal = None  # 10, 92, 92.1, 53
        select = None
        l_word = p_word = None
        for letter, value in words:
            v = float(value)
            if letter == "G":
                if v in (0, 1):
                    motion = int(v)
                elif v == 4:
                    motion = 4
                elif v in (90, 91):
                    self.modal["absolute"] = v == 90
                elif v in (10, 92, 92.1, 53):
                    non_modal = v
                elif v in (54, 55, 56, 57, 58, 59):
                    select = int(v)
                elif v not in (17, 21, 94):
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
                axis_words["XYZ".index(letter)] = v
            elif letter == "F":
                if v <= 0:
                    return 22
                self.modal["feed"] = v
            elif letter == "S":
                self.modal["spindle"] = v
            elif letter == "P":
                p_word = v
                dwell = v
            elif letter == "L":
                l_word = v
            elif letter == "N":
                continue
            else:
                return 20
        if select is not None and select != self.coord_select:
            self.coord_select = select
            self.wco_counter = 0
        if non_modal == 10:
            return self._g10(l_word, p_word, axis_words)
        if non_modal in (92, 92.1):
            here = self._planned_end()
            for i in range(3):
                if non_modal == 92.1:
                    self.g92[i] = 0.0
                elif i in axis_words:
                    self.g92[i] = here[i] - self.coords[self.coord_select][i] - axis_words[i]
            self.wco_counter = 0
            return 0
        if motion is not None and motion != 4:
            self.modal["motion"] = motion
        if motion == 4:
            self._plan(Block(raw, tuple(self.pos), tuple(self.pos), 1, 0.0, dwell))
            return 0
        if not axis_words:
            return 0
        start = self._planned_end()
        target = list(start)
        for i, v in axis_words.items():
            if non_modal == 53:
                target[i] = v  # machine coordinates
            elif self.modal["absolute"]:
                target[i] = v + self.wco[i]
            else:
                target[i] = start[i] + v
        if int(self.settings[20]) == 1:
            for i in range(3):
                low, high = self.machine_range(i)
                if not low <= target[i] <= high:
                    return -2
        mode = self.modal["motion"]
        if mode == 1 and self.modal["feed"] <= 0:
            return 22
        feed = self.settings[110] if mode == 0 else self.modal["feed"]
        on = mode == 1 and self.modal["laser"] != "M5" and self.modal["spindle"] > 0
        block = Block(raw, start, tuple(target), feed, self.modal["spindle"] if on else 0)
        if not self.check_mode:
            self._plan(block)
        return 0

    def _g10(self, l_word: float | None, p_word: float | None, axis_words: dict) -> int:
        """``G10 L2 Pn`` sets G5x to the values; ``G10 L20 Pn`` so that here reads them."""
        if l_word not in (2, 20) or p_word is None or not axis_words:
            return 26 if not axis_words else 20
        if not 0 <= p_word <= 6 or p_word != int(p_word):
            return 29
        system = self.coord_select if p_word == 0 else 53 + int(p_word)
        here = self._planned_end()
        for i, v in axis_words.items():
            if l_word == 2:
                self.coords[system][i] = v
            else:
                self.coords[system][i] = here[i] - self.g92[i] - v
        if system == self.coord_select:
            self.wco_counter = 0
        return 0

    def _planned_end(self) -> tuple[float, float, float]:
        return self.planner[-1].end if self.planner else tuple(self.pos)

    def _plan(self, block: Block) -> None:
        self.planner.append(block)
        if block.power > 0:
            self.burns.append(block)
        if self.state == "Idle":
            self.state = "Run"

    def _deceleration_s(self) -> float:
        """How long the current move takes to stop at the slowest axis's $120..$122."""
        if not self.planner or self.planner[0].dwell_s:
            return 0.0
        accel = min(self.settings[120], self.settings[121]) or 1.0
        return self.planner[0].feed_mm_min / 60.0 / accel

    def _move(self, dt: float) -> None:
        if self.state == "Hold:1":
            # the head still travels while it slows down (on average at half the feed);
            # a reset before Hold:0 is a reset in motion
            step = min(dt * self.speed, self.decel_left)
            self.decel_left -= step
            self._advance(step / 2)
            if self.decel_left <= 0:
                self.state = "Hold:0"
            return
        if self.state != "Run":
            return
        self._advance(dt * self.speed)
        if not self.planner:
            self.state = "Idle"

    def _advance(self, budget: float) -> None:
        """Run the planner for ``budget`` seconds of machine time."""
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

    def _status_report(self) -> str:
        x, y, z = self.pos if int(self.settings[10]) & 1 else self.wpos
        kind = "MPos" if int(self.settings[10]) & 1 else "WPos"
        feed = self.planner[0].feed_mm_min if self.planner and self.state == "Run" else 0
        power = self.planner[0].power if self.planner and self.state == "Run" else 0
        report = f"<{self.state}|{kind}:{x:.3f},{y:.3f},{z:.3f}|FS:{feed:g},{power:g}"
        if int(self.settings[10]) & 2:
            report += f"|Bf:{PLANNER_BLOCKS - len(self.planner)},{RX_BUFFER - len(self.rx)}"
        if self.wco_counter > 0:
            self.wco_counter -= 1
        else:  # as report.c: WCO now and then, not in every report
            busy = self.state.split(":")[0] in ("Run", "Hold", "Home", "Jog", "Door")
            self.wco_counter = (WCO_REFRESH_BUSY if busy else WCO_REFRESH_IDLE) - 1
            report += "|WCO:" + ",".join(f"{v:.3f}" for v in self.wco)
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
